"""normalize() is total: any input gives a CanonicalEvent or InvalidEvent (stable code, short reason), never
another exception. The poison pills of the reliability issue, one by one (the fuzz test in tests/fuzz/
generates many more)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from operators.normalize import MAX_PAYLOAD_BYTES, InvalidEvent, epoch_ms, normalize, preview

NOW = 1_795_737_600_000  # 2026-11-27T00:00:00Z
T = 1_795_687_200_000  # 2026-11-26T10:00:00Z
BASE = {"type": "track", "event": "Product Viewed", "messageId": "m1", "userId": "u1", "timestamp": T}
MAX_REASON = 700


def with_raw(field: str, value_json: str) -> bytes:
    """BASE with ``field`` (top level, or ``properties.<key>``) set to raw JSON text."""
    msg: dict[str, Any] = dict(BASE)
    if field.startswith("properties."):
        msg["properties"] = {field.removeprefix("properties."): "@@"}
    else:
        msg[field] = "@@"
    return orjson.dumps(msg).replace(b'"@@"', value_json.encode())


def rejected(raw: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        normalize(raw, now_ms=NOW)
    assert 0 < len(info.value.reason) <= MAX_REASON
    return info.value


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("userId", "invalid_user_id"),
        ("anonymousId", "invalid_anonymous_id"),
        ("messageId", "invalid_message_id"),
        ("timestamp", "invalid_timestamp"),
        ("properties.product_id", "invalid_properties"),
        ("properties.category", "invalid_properties"),
        ("type", "missing_type"),
        ("event", "missing_event_name"),
        ("context", None),  # not read: accepted, as deep as the parser goes
        ("sentAt", None),  # a fallback not read (timestamp is present)
    ],
)
@pytest.mark.parametrize("depth", [1, 500, 1_000, 1_021, 1_022, 1_023, 1_024, 3_000])
def test_normalize_handles_deeply_nested_values_without_recursing(field: str, code: str | None, depth: int) -> None:
    raw = with_raw(field, "[" * depth + "]" * depth)
    levels = depth + (2 if field.startswith("properties.") else 1)  # the enclosing objects count

    if levels > 1_024:  # orjson's limit
        assert rejected(raw).code == "invalid_json"
    elif code is None:
        assert normalize(raw, now_ms=NOW).user_key == "u1"
    else:
        assert rejected(raw).code == code


def test_normalize_turns_a_tombstone_into_its_own_code() -> None:
    error = rejected(None)

    assert (error.code, error.reason) == (
        "tombstone",
        "the record has no value (a tombstone); expected a JSON object",
    )


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: b.decode()])
def test_normalize_accepts_every_bytes_like_form(wrap: Any) -> None:
    assert normalize(wrap(orjson.dumps(BASE)), now_ms=NOW).user_key == "u1"


def test_normalize_reads_a_memoryview_of_any_shape() -> None:
    raw = orjson.dumps(BASE)
    raw += b" " * (-len(raw) % 4)

    assert normalize(memoryview(raw).cast("I"), now_ms=NOW).user_key == "u1"


@pytest.mark.parametrize("value", [42, 4.5, ["x"], {"a": 1}, object()])
def test_normalize_rejects_payloads_that_are_not_bytes_or_text(value: Any) -> None:
    assert rejected(value).code == "invalid_json"


@pytest.mark.parametrize(
    "literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 5_000, '"\\ud800"']
)
@pytest.mark.parametrize("field", ["userId", "timestamp", "properties.product_id"])
def test_normalize_rejects_literals_json_does_not_allow(literal: str, field: str) -> None:
    assert rejected(with_raw(field, literal)).code == "invalid_json"


@pytest.mark.parametrize(
    "value", ["1e308", "-1e308", "18446744073709551615", "18446744073709551616", "-9223372036854775809", "5e-324"]
)
def test_normalize_rejects_absurd_epoch_numbers_as_timestamps(value: str) -> None:
    error = rejected(with_raw("timestamp", value))

    assert error.code == "invalid_timestamp"
    assert "outside 2000-01-01 .. now+1 day" in error.reason


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e308, 2**63, -(2**63) - 1, "", None])
def test_epoch_ms_never_raises(value: Any) -> None:
    assert epoch_ms(value) is None


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("userId", "18446744073709551615", "invalid_user_id"),  # an integer, but beyond 64 signed bits
        ("userId", "1e300", "invalid_user_id"),
        ("messageId", "-9223372036854775809", "invalid_message_id"),  # orjson reads it as the float -2**63
        ("properties.product_id", "1e20", "invalid_properties"),
        ("properties.sku", "true", "invalid_properties"),
        ("properties.category", "[1]", "invalid_properties"),
        ("properties.id", '{"a": 1}', "invalid_properties"),
        ("properties.item_id", "1.5", "invalid_properties"),
    ],
)
def test_normalize_rejects_ids_that_are_not_strings_or_64_bit_integers(field: str, value: str, code: str) -> None:
    assert rejected(with_raw(field, value)).code == code


def test_normalize_reads_integral_floats_as_the_integer_ids_they_equal() -> None:
    raw = with_raw("userId", "1001.0").replace(b'"m1"', b"17.0")

    event = normalize(raw, now_ms=NOW)

    assert (event.user_key, event.message_id) == ("1001", "17")


def test_normalize_treats_empty_item_ids_and_categories_as_absent() -> None:
    raw = orjson.dumps({**BASE, "properties": {"product_id": "", "sku": "S1", "category": ""}})

    event = normalize(raw, now_ms=NOW)

    assert (event.item_id, event.category) == ("S1", None)


def test_normalize_rejects_overlong_item_ids_and_event_names() -> None:
    props = rejected(orjson.dumps({**BASE, "properties": {"category": "c" * 257}}))
    name = rejected(orjson.dumps({**BASE, "event": "e" * 201}))

    assert (props.code, name.code) == ("invalid_properties", "invalid_event_name")
    assert name.reason == "field 'event' is longer than 200 characters"
    assert normalize(orjson.dumps({**BASE, "event": "e" * 200}), now_ms=NOW).name == "e" * 200


def test_normalize_counts_the_utf8_bytes_of_a_text_payload() -> None:
    raw = orjson.dumps({**BASE, "context": {"pad": "é" * (MAX_PAYLOAD_BYTES // 2)}}).decode()

    assert len(raw) < MAX_PAYLOAD_BYTES
    assert rejected(raw).code == "too_large"


@pytest.mark.parametrize("raw", ['{"type": "track", "userId": "\ud800"}', "\udcff"])
def test_normalize_rejects_text_with_lone_surrogates_as_invalid_utf8(raw: str) -> None:
    assert rejected(raw).code == "invalid_utf8"


def test_normalize_accepts_the_type_in_ascii_letter_case_only() -> None:
    # U+212A KELVIN SIGN lower-cases to "k": "TRAC\u212a".lower() == "track", but it is not the word.
    assert rejected(orjson.dumps({**BASE, "type": "TRAC\u212a"})).code == "unknown_type"
    assert rejected(orjson.dumps({**BASE, "type": "track\n"})).code == "unknown_type"


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-26T10:00:00z", "2026-11-26x10:00:00Z", "20261126T100000Z", "2026-W48-4T10:00:00Z", "2026-11-26T10Z",
     "2026-11-26T10:00:00.Z", "2026-11-26T10:00:00Z\n", "２０２６-11-26T10:00:00Z", "2023-02-29T10:00:00Z",
     "2026-11-26T10:00:00.1234567890Z", "2026-11-26T10:00:00+05:30:15"],
)
def test_normalize_reads_only_the_published_timestamp_profile(timestamp: str) -> None:
    assert rejected(orjson.dumps({**BASE, "timestamp": timestamp})).code == "invalid_timestamp"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-26t10:00:00Z", T),
        ("2026-11-26 10:00:00Z", T),
        ("2026-11-26T10:00Z", T),
        ("2026-11-26T10:00:00,5Z", T + 500),
        ("2026-11-26T10:00:00.123456789Z", T + 123),  # Java's nanoseconds: cut to the millisecond
        ("2026-11-26T15:00:00+05", T),
        ("2026-11-26T15:30:00+0530", T),
    ],
)
def test_normalize_reads_every_variant_of_the_timestamp_profile(timestamp: str, expected: int) -> None:
    assert normalize(orjson.dumps({**BASE, "timestamp": timestamp}), now_ms=NOW).timestamp == expected


def test_preview_is_short_and_shallow_for_any_value() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep, "x" * 1_000]

    assert len(preview(deep)) < 200
    assert len(preview({f"k{i}" * 50: ["y" * 500] * 50 for i in range(50)})) < 600
