"""Identity stitching through the job's own per-user step, driven in one process (``Segmenter``): the
control events the job writes back to its input are processed at once here, in the job one checkpoint
later. Whatever the order, a visitor who browsed anonymously and then logged in counts once."""

from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from operators.identity import MAX_HOPS, MAX_LINKED_IDS, MERGE_EVENT, TRANSFER_EVENT
from operators.segment_rules import SegmentRules
from operators.segmenter import Segmenter
from settings import PROJECT_ROOT
from state_schemas import profile_state
from state_schemas.profile_state import ProfileState

T0 = 1_795_000_000_000
RULES = SegmentRules.from_yaml(PROJECT_ROOT / "config" / "segments.yaml")


def message(n: int, event: str = "Product Viewed", type_: str = "track", **ids: str) -> bytes:
    body = {"type": type_, "messageId": f"m{n}", "timestamp": T0 + n * 1_000,
            "properties": {"product_id": f"p{n}", "category": "c1"}, **ids}
    if type_ == "track":
        body["event"] = event
    return orjson.dumps(body)


def audiences(segmenter: Segmenter, raws: list[bytes]) -> dict[str, set[str]]:
    """Members per segment after the messages, from the changes the step emitted (what Redis holds)."""
    members: dict[str, set[str]] = defaultdict(set)
    for raw in raws:
        for e in segmenter.process(raw):
            (members[e.change.segment].add if e.change.change == "enter" else members[e.change.segment].discard)(
                e.user_id)
    return members


def test_a_visitor_who_browsed_then_logged_in_counts_once_and_is_hesitant() -> None:
    seg = Segmenter(RULES, out_of_orderness_ms=None)
    browsing = [message(n, anonymousId="anon-1") for n in range(6)]
    login = message(6, type_="identify", userId="u-42", anonymousId="anon-1")
    cart = message(7, "Product Added", userId="u-42", anonymousId="anon-1")

    members = audiences(seg, [*browsing, login, cart])

    assert members["interested_but_hesitant"] == {"u-42"}  # six views as anon-1, the cart add as u-42
    assert all("anon-1" not in users for users in members.values())
    assert members["active"] == {"u-42"}
    known = seg.store.load("u-42")
    assert known.session_views == 6 and known.linked_ids == ["anon-1"] and known.sessions_total == 1
    assert seg.store.load("anon-1").merged_into == "u-42"


def test_the_anonymous_ids_exits_say_why() -> None:
    seg = Segmenter(RULES, out_of_orderness_ms=None)
    seg.process(message(0, anonymousId="anon-1"))
    out = seg.process(message(1, type_="identify", userId="u-42", anonymousId="anon-1"))
    exits = [e.change for e in out if e.user_id == "anon-1"]
    assert [(c.segment, c.change, c.trigger) for c in exits] == [
        ("weekly_active", "exit", "merge"), ("active", "exit", "merge")]
    assert "merged into u-42" in exits[0].reason


def test_later_anonymous_events_are_forwarded_to_the_known_id() -> None:
    seg = Segmenter(RULES, out_of_orderness_ms=None)
    members = audiences(seg, [message(0, anonymousId="anon-1"),
                              message(1, type_="identify", userId="u-42", anonymousId="anon-1"),
                              *[message(n, anonymousId="anon-1") for n in range(2, 8)],  # logged out
                              message(8, "Product Added", anonymousId="anon-1")])
    assert members["interested_but_hesitant"] == {"u-42"}
    assert seg.store.load("u-42").session_views == 7 and seg.store.load("anon-1").merged_into == "u-42"


def test_alias_links_the_previous_id() -> None:
    seg = Segmenter(RULES, out_of_orderness_ms=None)
    members = audiences(seg, [message(0, userId="old-crm-id"),
                              message(1, type_="alias", userId="u-42", previousId="old-crm-id")])
    assert members["active"] == {"u-42"} and seg.store.load("u-42").linked_ids == ["old-crm-id"]


@pytest.mark.parametrize("blocked", ["undefined", "null", "0", " NULL ", "anonymous"])
def test_blocked_id_values_are_never_merged(blocked: str) -> None:
    seg = Segmenter(RULES, out_of_orderness_ms=None)
    members = audiences(seg, [message(0, anonymousId=blocked),
                              message(1, type_="identify", userId="u-42", anonymousId=blocked)])
    assert members["active"] == {blocked, "u-42"} and seg.store.load("u-42").linked_ids == []


def test_a_profile_links_at_most_max_linked_ids() -> None:
    seg = Segmenter(RULES, out_of_orderness_ms=None)
    for n in range(MAX_LINKED_IDS + 5):
        seg.process(message(2 * n, anonymousId=f"anon-{n}"))
        seg.process(message(2 * n + 1, type_="identify", userId="u-42", anonymousId=f"anon-{n}"))
    assert len(seg.store.load("u-42").linked_ids) == MAX_LINKED_IDS
    assert seg.store.load(f"anon-{MAX_LINKED_IDS}").merged_into == ""  # not merged: over the cap


def test_two_ids_aliased_to_each_other_do_not_bounce_for_ever() -> None:
    fed_back: list[tuple[str, bytes]] = []
    seg = Segmenter(RULES, out_of_orderness_ms=None, on_feedback=lambda key, payload: fed_back.append((key, payload)))
    pending = [message(0, userId="a"), message(1, userId="b"),
               message(2, type_="alias", userId="a", previousId="b"),
               message(3, type_="alias", userId="b", previousId="a"), message(4, userId="b")]
    hops = 0
    while pending and hops < 100:  # the job's loop through Kafka, by hand
        for raw in pending:
            seg.process(raw)
        pending, fed_back[:] = [payload for _, payload in fed_back], []
        hops += 1
    assert hops <= MAX_HOPS
    assert seg.store.load("a").merged_into == seg.store.load("b").merged_into == ""  # neither lost its state


def test_control_events_are_delivered_to_the_right_key_and_replays_are_harmless() -> None:
    fed_back: list[tuple[str, bytes]] = []
    seg = Segmenter(RULES, out_of_orderness_ms=None, on_feedback=lambda key, payload: fed_back.append((key, payload)))
    seg.process(message(0, anonymousId="anon-1"))
    seg.process(message(1, type_="identify", userId="u-42", anonymousId="anon-1"))
    [(key, merge)] = fed_back
    assert key == "anon-1" and orjson.loads(merge)["event"] == MERGE_EVENT
    fed_back.clear()
    seg.process(merge)
    seg.process(merge)  # a replay after a restore: once
    [(key, transfer)] = fed_back
    assert key == "u-42" and orjson.loads(transfer)["event"] == TRANSFER_EVENT
    assert orjson.loads(transfer)["timestamp"] == T0 + 1_000  # the link's event time, for the watermarks
    seg.process(transfer)
    seg.process(transfer)
    assert seg.store.load("u-42").sessions_total == 1 and seg.duplicates >= 1


def test_profile_state_v4_round_trip_and_v3_upgrade() -> None:
    s = ProfileState(clock=5, linked_ids=["a1"], merged_into="")
    assert profile_state.decode(profile_state.encode(s)) == s
    v3 = orjson.dumps([3, 1, 1, 0, 0, [0, 0, 0, 0], 0, [1, 0], [], [], [], 0, 0, [], 0])
    upgraded = profile_state.decode(v3)
    assert upgraded.linked_ids == [] and upgraded.merged_into == "" and upgraded.clock == 1


def test_a_user_who_withdrew_consent_after_the_link_takes_no_history() -> None:
    from operators.privacy import ConsentPolicy, Privacy

    fed_back: list[tuple[str, bytes]] = []
    privacy = Privacy(consent=ConsentPolicy.from_settings("Personalization", "allow"))
    seg = Segmenter(RULES, out_of_orderness_ms=None, privacy=privacy,
                    on_feedback=lambda key, payload: fed_back.append((key, payload)))
    seg.process(message(0, anonymousId="anon-1"))
    seg.process(message(1, type_="identify", userId="u-42", anonymousId="anon-1"))
    withdraw = orjson.loads(message(2, userId="u-42"))
    withdraw["context"] = {"consent": {"categoryPreferences": {"Personalization": False}}}
    seg.process(orjson.dumps(withdraw))
    for _ in range(2):  # the merge request, then the transfer
        pending, fed_back[:] = [payload for _, payload in fed_back], []
        for payload in pending:
            seg.process(payload)
    assert seg.store.load("u-42") is None and seg.store.load("anon-1").merged_into == "u-42"


def test_forwarding_rebuilds_the_event_so_deep_values_and_traits_stay_behind() -> None:
    """Found by the fuzz suite: a valid event nested deeper than orjson writes (255 levels) made forwarding
    raise. The forwarded event carries only what the job reads."""
    fed_back: list[tuple[str, bytes]] = []
    seg = Segmenter(RULES, out_of_orderness_ms=None, on_feedback=lambda key, payload: fed_back.append((key, payload)))
    seg.process(message(0, anonymousId="anon-1"))
    seg.process(message(1, type_="identify", userId="u-42", anonymousId="anon-1"))
    for _ in range(2):
        pending, fed_back[:] = [payload for _, payload in fed_back], []
        for payload in pending:
            seg.process(payload)
    deep = message(2, anonymousId="anon-1")[:-1] + (  # orjson could not write this one
        b',"traits":{"email":"someone@example.com"},"sentAt":' + b"[" * 300 + b"]" * 300 + b"}")
    assert seg.process(deep) == [] and seg.dead_letters == 0
    [(key, forwarded)] = fed_back
    assert key == "u-42" and b"someone@example.com" not in forwarded and orjson.loads(forwarded)["userId"] == "u-42"
