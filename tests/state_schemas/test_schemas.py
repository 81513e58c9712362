"""Versioned payloads: profile state, emitted records, the wire form, and the published input schema."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from operators.normalize import InvalidEvent, normalize
from state_schemas import dead_letter, events, profile_state, segment_change
from state_schemas.events import CanonicalEvent
from state_schemas.profile_state import ProfileState, StateVersionError
from state_schemas.segment_change import SegmentChange

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "state_schemas" / "segment_event.schema.json"
T = 1_795_687_200_000  # 2026-11-26T10:00:00Z
NOW = T + 14 * 3_600_000

FULL_STATE = ProfileState(
    clock=T + 9,
    last_seen=T + 8,
    session_start=T,
    session_last=T + 8,
    session_events=4,
    session_views=2,
    session_cart_adds=1,
    session_purchases=1,
    cart_pending_since=T + 3,
    sessions_total=7,
    purchases_total=3,
    active_days=[20_780, 20_783],
    segments=["cart_abandoner", "active"],
    recent_ids=[2**63 - 1, 5],
    timer_at=T + 1_800_000,
    last_purchase_at=T + 2,
    behavior=[3, 1.5],
)


# -- profile state ---------------------------------------------------------------------------------


def test_profile_state_round_trips_every_field() -> None:
    assert profile_state.decode(profile_state.encode(FULL_STATE)) == FULL_STATE


def test_profile_state_default_round_trips() -> None:
    assert profile_state.decode(profile_state.encode(ProfileState())) == ProfileState()


def test_profile_state_encoding_follows_the_documented_layout() -> None:
    assert orjson.loads(profile_state.encode(FULL_STATE)) == [
        5,
        T + 9,
        T + 8,
        T,
        T + 8,
        [4, 2, 1, 1],
        T + 3,
        [7, 3],
        [20_780, 20_783],
        ["cart_abandoner", "active"],
        [2**63 - 1, 5],
        T + 1_800_000,
        T + 2,
        [3, 1.5],
        0,  # erased_at: never erased
        [],  # linked_ids: no other id merged in
        "",  # merged_into: not merged into another id
        [],  # exposures: never in an experiment
    ]


def test_profile_state_version_4_is_upgraded_on_read() -> None:
    v4 = b'[4,9,8,1,8,[4,2,1,1],3,[7,3],[5],["active"],[5],0,0,[],0,["anon-1"],""]'

    state = profile_state.decode(v4)

    assert (state.clock, state.linked_ids, state.exposures) == (9, ["anon-1"], [])


def test_profile_state_version_1_is_upgraded_on_read() -> None:
    v1 = b"[1,9,8,1,8,[4,2,1,1],3,[7,3],[5],[\"active\"],[5],0]"

    state = profile_state.decode(v1)

    assert (state.clock, state.segments, state.last_purchase_at, state.behavior) == (9, ["active"], 0, [])


@pytest.mark.parametrize(
    ("payload", "version"),
    [
        (b'[6,0,0,0,0,[0,0,0,0],0,[0,0],[],[],[],0,0,[],0,[],"",[]]', "6"),
        (b"[0]", "0"),
        (b'{"version": 1}', "None"),
        (b"[]", "None"),
        (b'["1"]', "'1'"),
        (b"null", "None"),
    ],
)
def test_profile_state_unknown_version_says_what_to_do(payload: bytes, version: str) -> None:
    with pytest.raises(StateVersionError) as info:
        profile_state.decode(payload)

    assert str(info.value) == (
        f"profile state version {version} is not readable by this Tailor (knows 1..5); "
        "restore with the Tailor version that wrote the savepoint"
    )


@pytest.mark.parametrize(
    "payload", [b"[1]", b"[1,0,0,0,0,5,0,[0,0],[],[],[],0]", b"[1,0,0,0,0,[0,0,0,0],0,[0],[],[],[],0]"]
)
def test_profile_state_corrupted_version_1_payload_is_a_state_version_error(payload: bytes) -> None:
    with pytest.raises(StateVersionError) as info:
        profile_state.decode(payload)

    assert str(info.value).startswith("profile state is corrupted (")
    assert "version-1 layout" in str(info.value)


def test_profile_state_version_error_is_a_value_error() -> None:
    assert issubclass(StateVersionError, ValueError)


def test_profile_state_session_open_follows_session_start() -> None:
    assert (ProfileState().session_open, ProfileState(session_start=T).session_open) == (False, True)


# -- tailor.segment_change/2 -----------------------------------------------------------------------


def test_segment_change_encode_has_every_documented_field_in_order() -> None:
    change = SegmentChange(
        "u1",
        "cart_abandoner",
        "rule",
        "enter",
        "Added to cart and has not bought within 30 minutes",
        {"cart.pending_ms": 1_800_000},
        "timer",
        T,
        None,
        "0123456789ab",
    )

    record = segment_change.decode(segment_change.encode(change, emit_time=T + 42))

    assert list(record.items()) == [
        ("schema", "tailor.segment_change/2"),
        ("user_id", "u1"),
        ("segment", "cart_abandoner"),
        ("kind", "rule"),
        ("change", "enter"),
        ("reason", "Added to cart and has not bought within 30 minutes"),
        ("facts", {"cart.pending_ms": 1_800_000}),
        ("trigger", "timer"),
        ("event_time", T),
        ("emit_time", T + 42),
        ("message_id", None),
        ("rules_version", "0123456789ab"),
    ]


def test_segment_change_decode_reads_version_1_without_a_rules_version() -> None:
    record = segment_change.decode(b'{"schema": "tailor.segment_change/1", "user_id": "u1"}')

    assert record["rules_version"] is None


def test_segment_change_encode_keeps_the_triggering_message_id() -> None:
    change = SegmentChange("u1", "vip", "rule", "exit", "r", {}, "event", T, "m-7")

    assert json.loads(segment_change.encode(change, emit_time=T))["message_id"] == "m-7"


@pytest.mark.parametrize("payload", [b'{"schema": "tailor.segment_change/3"}', b'{"user_id": "u1"}'])
def test_segment_change_decode_refuses_other_schemas(payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"expected schema 'tailor.segment_change/2', got "):
        segment_change.decode(payload)


# -- tailor.dead_letter/1 --------------------------------------------------------------------------


def test_dead_letter_keeps_the_original_text_and_every_field() -> None:
    original = b'{"type": "track", "userId": "u1"}'

    record = dead_letter.decode(
        dead_letter.encode(
            "missing_message_id", "field 'messageId' is required", original, "tailor.events:0@17", T
        )
    )

    assert record == {
        "schema": "tailor.dead_letter/1",
        "error": "missing_message_id",
        "reason": "field 'messageId' is required",
        "original": '{"type": "track", "userId": "u1"}',
        "source": "tailor.events:0@17",
        "received_at": T,
    }


def test_dead_letter_accepts_str_originals_unchanged() -> None:
    record = dead_letter.decode(dead_letter.encode("invalid_json", "not JSON", "{oops ü", "file.jsonl:3", T))

    assert (record["original"], "original_b64" in record) == ("{oops ü", False)


def test_dead_letter_keeps_invalid_utf8_exactly_in_base64() -> None:
    original = b'\xff\xfe{"type": "track"}'

    record = dead_letter.decode(
        dead_letter.encode("invalid_utf8", "payload is not valid UTF-8 text", original, "t", T)
    )

    assert record["original"] == '\ufffd\ufffd{"type": "track"}'
    assert base64.b64decode(record["original_b64"]) == original


def test_dead_letter_round_trips_what_normalize_rejects() -> None:
    original = b'{"type": "track", "event": "x", "messageId": "m1", "timestamp": 1}'
    with pytest.raises(InvalidEvent) as info:
        normalize(original, now_ms=NOW)

    record = dead_letter.decode(dead_letter.encode(info.value.code, info.value.reason, original, "t", T))

    assert (record["error"], record["reason"], record["original"].encode()) == (
        "missing_user",
        info.value.reason,
        original,
    )


def test_dead_letter_decode_refuses_other_schemas() -> None:
    with pytest.raises(
        ValueError, match=r"expected schema 'tailor.dead_letter/1', got 'tailor.segment_change/2'"
    ):
        dead_letter.decode(b'{"schema": "tailor.segment_change/2"}')


# -- wire form of CanonicalEvent -------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        CanonicalEvent("m1", 2**63 - 1, "u1", "u1", "a1", "track", "product_added", T, "42", "shoes"),
        CanonicalEvent("m2", 0, "anon", None, "anon", "page", "page_viewed", T),
        CanonicalEvent("m-ü", 5, "ユーザー", "ユーザー", None, "track", "x", T, None, "ß"),
    ],
)
def test_events_wire_round_trips(event: CanonicalEvent) -> None:
    assert events.from_wire(events.to_wire(event)) == event


def test_events_wire_is_a_versioned_array() -> None:
    event = CanonicalEvent("m1", 9, "u1", "u1", None, "track", "product_viewed", T, "42", None)

    assert orjson.loads(events.to_wire(event)) == [
        1,
        "m1",
        9,
        "u1",
        "u1",
        None,
        "track",
        "product_viewed",
        T,
        "42",
        None,
        None,  # consent: none stated
    ]
    with_consent = CanonicalEvent("m1", 9, "u1", "u1", None, "track", "x", T, None, None, (("Ads", False),))
    assert orjson.loads(events.to_wire(with_consent))[-1] == [["Ads", False]]
    assert events.from_wire(events.to_wire(with_consent)) == with_consent
    assert events.from_wire(b'[1, "m1", 9, "u1", "u1", null, "track", "x", 1, null, null]').consent is None


def test_events_wire_refuses_an_unknown_version() -> None:
    with pytest.raises(ValueError, match=r"normalized event wire version 2 is unknown \(expected 1\)"):
        events.from_wire(b'[2, "m1", 9, "u1", "u1", null, "track", "x", 1, null, null]')


def test_events_wire_round_trips_what_normalize_produces() -> None:
    event = normalize(
        b'{"type":"track","event":"Product Added","messageId":"m1","anonymousId":"a1",'
        b'"timestamp":"2026-11-26T10:00:00.123Z","properties":{"sku":"S1","category":"shoes"}}',
        now_ms=NOW,
    )

    assert events.from_wire(events.to_wire(event)) == event


# -- the published input schema agrees with normalize ----------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def base(**fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m1",
        "userId": "u1",
        "timestamp": "2026-11-26T10:00:00Z",
    }
    msg.update(fields)
    return {k: v for k, v in msg.items() if v is not ...}


GOOD = {
    "track_v2_with_properties": base(
        event="Product Added", properties={"product_id": "p1", "sku": "S1", "category": "shoes", "price": 9.5}
    ),
    "track_v1": base(event="Viewed Product", properties={"id": "p1"}),
    "taobao_epoch_ms_anonymous": base(event="pv", userId=..., anonymousId="a1", timestamp=T),
    "integer_user_id": base(userId=1001),
    "page_original_timestamp": base(type="page", event=..., name="Home", timestamp=..., originalTimestamp=T),
    "screen": base(type="screen", event=..., name="Cart"),
    "identify_sent_at": base(
        type="identify",
        event=...,
        traits={"email": "x@example.com"},
        timestamp=...,
        sentAt="2026-11-26T10:00:00+01:00",
    ),
    "alias": base(type="alias", event=..., previousId="a1"),
    "group": base(type="group", event=..., groupId="g1"),
    "unknown_fields_ignored": base(context={"ip": "1.2.3.4"}, integrations={"All": True}, version=2),
}

BAD = {
    "missing_type": (base(type=...), "missing_type"),
    "unknown_type": (base(type="purchase"), "unknown_type"),
    "missing_message_id": (base(messageId=...), "missing_message_id"),
    "empty_message_id": (base(messageId=""), "missing_message_id"),
    "overlong_message_id": (base(messageId="m" * 257), "invalid_message_id"),
    "missing_user": (base(userId=...), "missing_user"),
    "empty_user": (base(userId=""), "missing_user"),
    "null_users": (base(userId=None, anonymousId=None), "missing_user"),
    "object_user_id": (base(userId={"id": 1}), "invalid_user_id"),
    "boolean_user_id": (base(userId=True), "invalid_user_id"),
    "missing_timestamp": (base(timestamp=...), "missing_timestamp"),
    "boolean_timestamp": (base(timestamp=True), "invalid_timestamp"),
    "track_without_event": (base(event=...), "missing_event_name"),
    "track_with_empty_event": (base(event=""), "missing_event_name"),
    "properties_not_an_object": (base(properties=["p1"]), "invalid_properties"),
    "array_payload": ([base()], "not_an_object"),
    "string_payload": ("track", "not_an_object"),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_segment_event_schema_and_normalize_accept_the_same_good_examples(
    validator: jsonschema.protocols.Validator, name: str
) -> None:
    message = GOOD[name]

    errors = [e.message for e in validator.iter_errors(message)]
    event = normalize(orjson.dumps(message), now_ms=NOW)

    assert errors == []
    assert event.message_id == "m1"


@pytest.mark.parametrize("name", sorted(BAD))
def test_segment_event_schema_and_normalize_reject_the_same_structural_errors(
    validator: jsonschema.protocols.Validator, name: str
) -> None:
    message, code = BAD[name]

    schema_accepts = validator.is_valid(message)
    with pytest.raises(InvalidEvent) as info:
        normalize(orjson.dumps(message), now_ms=NOW)

    assert (schema_accepts, info.value.code) == (False, code)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(base(type="TRACK"), id="type-in-upper-case"),  # the schema's own description allows it
        pytest.param(base(messageId=17), id="integer-message-id"),
        pytest.param(base(properties=None), id="null-properties"),
    ],
)
def test_segment_event_schema_states_the_variants_normalize_tolerates(
    validator: jsonschema.protocols.Validator, message: dict[str, Any]
) -> None:
    """Once known divergences (normalize accepted these harmless variants, the schema did not); the schema now
    states them, and tests/operators/test_normalize_schema.py holds the schema and normalize equal."""
    assert validator.is_valid(message) is True
    assert normalize(orjson.dumps(message), now_ms=NOW).user_key == "u1"
