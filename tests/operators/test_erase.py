"""Erase: every segment exited (trigger "erase"), the profile replaced by a suppression marker that drops the
id's later events, the models told to forget; the collector refuses the request from outside."""

import orjson
import pytest

from operators.segment_rules import SegmentRules
from operators.segmenter import EncodedProfileStore, Segmenter
from operators.tracking_api import TrackingApiError, messages
from state_schemas import events, profile_state
from state_schemas.model_input import ERASE

RULES = SegmentRules.from_dict({"session_gap": "30m", "segments": [
    {"name": "browsing", "when": "session.product_views >= 2"}, {"name": "seen", "when": "sessions_total >= 1"}]})


def view(n: int, user: str = "u1") -> bytes:
    return orjson.dumps({"type": "track", "event": "Product Viewed", "messageId": f"m{n}", "userId": user,
                         "timestamp": 1_700_000_000_000 + n, "properties": {"product_id": "p1"}})


def test_erase_exits_everything_suppresses_later_events_and_tells_the_models() -> None:
    inputs, forgotten = [], []
    seg = Segmenter(RULES, store=EncodedProfileStore(), on_model_input=inputs.append,
                    on_forget=lambda user, changes, encoded: forgotten.append(user))
    for n in range(3):
        seg.process(view(n))
    request = orjson.dumps(events.erase_request("u1", "erase-1", 1_700_000_000_010))
    exits = seg.process(request)
    assert sorted((e.change.segment, e.change.change, e.change.trigger) for e in exits) == [
        ("browsing", "exit", "erase"), ("seen", "exit", "erase")]
    assert forgotten == ["u1"] and inputs[-1].event_name == ERASE
    assert seg.process(view(20)) == [] and seg.erased_dropped == 1
    marker = seg.store.load("u1")
    assert marker is not None and marker.erased_at == 1_700_000_000_010 and marker.segments == []
    assert seg.process(request) == []  # a repeated request: nothing left to do
    assert [e.change.segment for e in seg.process(view(1, user="u2"))] == ["seen"]  # others unaffected


def test_profile_state_v2_reads_as_never_erased() -> None:
    v2 = profile_state.encode(profile_state.ProfileState(sessions_total=3))
    row = orjson.loads(v2)
    row[0] = 2
    decoded = profile_state.decode(orjson.dumps(row[:14]))
    assert decoded.sessions_total == 3 and decoded.erased_at == 0


def test_the_collector_refuses_the_erase_event_from_outside() -> None:
    with pytest.raises(TrackingApiError) as refused:
        messages("track", {"userId": "u1", "event": "tailor erase"}, 0)
    assert refused.value.status == 403 and "reserved" in refused.value.message
