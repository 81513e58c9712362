"""Consent: without personalization consent nothing is segmented; a withdrawal exits every segment, deletes
the user's state and tells the models to forget them; a later grant starts from nothing."""

import orjson

from operators.privacy import ConsentPolicy, Privacy
from operators.segment_rules import SegmentRules
from operators.segmenter import EncodedProfileStore, Segmenter
from state_schemas.model_input import FORGET

RULES = SegmentRules.from_dict({"session_gap": "30m", "segments": [
    {"name": "browsing", "when": "session.product_views >= 2"}, {"name": "seen", "when": "sessions_total >= 1"}]})
POLICY = Privacy(consent=ConsentPolicy(("Personalization",), default_allow=True))


def event(n: int, granted: bool | None = None, user: str = "u1") -> bytes:
    message = {"type": "track", "event": "Product Viewed", "messageId": f"m{n}", "userId": user,
               "timestamp": 1_700_000_000_000 + n, "properties": {"product_id": "p1"}}
    if granted is not None:
        message["context"] = {"consent": {"categoryPreferences": {"Personalization": granted, "Ads": True}}}
    return orjson.dumps(message)


def test_withdrawal_exits_every_segment_deletes_state_and_forgets_models() -> None:
    forgotten, inputs = [], []
    seg = Segmenter(RULES, privacy=POLICY, store=EncodedProfileStore(), on_model_input=inputs.append,
                    on_forget=lambda user, changes, encoded: forgotten.append((user, [c.segment for c in changes])))
    entered = [(e.change.segment, e.change.change) for n in range(3) for e in seg.process(event(n, True))]
    assert sorted(entered) == [("browsing", "enter"), ("seen", "enter")]
    exits = seg.process(event(3, False))
    assert sorted((e.change.segment, e.change.change, e.change.trigger) for e in exits) == [
        ("browsing", "exit", "consent"), ("seen", "exit", "consent")]
    assert forgotten == [("u1", ["browsing", "seen"])]
    assert list(seg.store.users()) == [] and inputs[-1].event_name == FORGET
    assert seg.process(event(4, False)) == [] and seg.consent_dropped == 2
    # consent granted again: a new profile, from this event on
    assert [(e.change.segment, e.change.change) for e in seg.process(event(5, True))] == [("seen", "enter")]


def test_the_default_policy_decides_events_that_state_nothing() -> None:
    deny = Segmenter(RULES, privacy=Privacy(consent=ConsentPolicy(("Personalization",), default_allow=False)))
    assert deny.process(event(1)) == [] and list(deny.store.users()) == []
    allow = Segmenter(RULES, privacy=POLICY)
    assert [e.change.segment for e in allow.process(event(1))] == ["seen"]
    unchecked = Segmenter(RULES)  # no categories configured: consent is not read
    assert [e.change.segment for e in unchecked.process(event(1, False))] == ["seen"]
