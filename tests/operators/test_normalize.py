"""normalize(): Segment-Spec bytes -> CanonicalEvent, or InvalidEvent with a stable code and a reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from operators.normalize import MAX_PAYLOAD_BYTES, InvalidEvent, dedup_key, normalize
from state_schemas.events import CanonicalEvent

T = 1_795_687_200_000  # 2026-11-26T10:00:00Z
NOW = 1_795_737_600_000  # 2026-11-27T00:00:00Z: the wall clock every test pins
DAY = 86_400_000
DROP = object()  # a field value meaning "leave the field out"


def payload(**fields: Any) -> bytes:
    """A valid track message with ``fields`` replaced (``DROP`` removes one)."""
    msg: dict[str, Any] = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m1",
        "userId": "u1",
        "timestamp": "2026-11-26T10:00:00Z",
    }
    msg.update(fields)
    return orjson.dumps({k: v for k, v in msg.items() if v is not DROP})


def ok(raw: bytes | str) -> CanonicalEvent:
    return normalize(raw, now_ms=NOW)


def rejected(raw: bytes | str) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        normalize(raw, now_ms=NOW)
    return info.value


# -- happy paths --------------------------------------------------------------------------------------


def test_normalize_track_event_gives_every_canonical_field() -> None:
    raw = payload(event="Product Added", properties={"product_id": 42, "category": "shoes"})

    event = ok(raw)

    assert event == CanonicalEvent(
        message_id="m1",
        dedup_key=dedup_key("m1"),
        user_key="u1",
        user_id="u1",
        anonymous_id=None,
        type="track",
        name="product_added",
        timestamp=T,
        item_id="42",
        category="shoes",
    )


@pytest.mark.parametrize(
    ("raw_name", "canonical"),
    [
        # Segment e-commerce v2
        ("Product Viewed", "product_viewed"),
        ("Product Clicked", "product_viewed"),
        ("Product Added", "product_added"),
        ("Product Removed", "product_removed"),
        ("Product Added to Wishlist", "product_favorited"),
        ("Checkout Started", "checkout_started"),
        ("Order Completed", "order_completed"),
        # Segment e-commerce v1
        ("Viewed Product", "product_viewed"),
        ("Added Product", "product_added"),
        ("Removed Product", "product_removed"),
        ("Started Checkout", "checkout_started"),
        ("Completed Order", "order_completed"),
        # Taobao UserBehavior codes
        ("pv", "product_viewed"),
        ("cart", "product_added"),
        ("fav", "product_favorited"),
        ("buy", "order_completed"),
        # no alias: kept, snake_cased
        ("  Newsletter Signed-Up ", "newsletter_signed_up"),
    ],
)
def test_normalize_maps_event_names_onto_canonical_names(raw_name: str, canonical: str) -> None:
    assert ok(payload(event=raw_name)).name == canonical


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("page", "page_viewed"),
        ("screen", "screen_viewed"),
        ("identify", "identified"),
        ("alias", "aliased"),
        ("group", "grouped"),
    ],
)
def test_normalize_names_non_track_types_after_the_type(kind: str, name: str) -> None:
    event = ok(payload(type=kind, event=DROP, name="Home"))

    assert (event.type, event.name) == (kind, name)


def test_normalize_accepts_the_type_in_any_letter_case() -> None:
    assert ok(payload(type="TRACK")).type == "track"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-26T10:00:00Z", T),
        ("2026-11-26T10:00:00+00:00", T),
        ("2026-11-26T12:00:00+02:00", T),
        ("2026-11-26T05:00:00-05:00", T),
        ("2026-11-26T15:30:00+0530", T),
        ("2026-11-26T10:00:00.123Z", T + 123),
        ("2026-11-26T10:00:00.5Z", T + 500),
        ("2026-11-26T10:00:00.999999Z", T + 999),  # microseconds are floored to the millisecond
        ("2026-11-26T12:00:00.007+02:00", T + 7),
        (T, T),
        (T + 123, T + 123),
        (float(T + 123), T + 123),
    ],
)
def test_normalize_parses_iso_with_zone_and_epoch_ms(timestamp: Any, expected: int) -> None:
    assert ok(payload(timestamp=timestamp)).timestamp == expected


def test_normalize_parses_iso_milliseconds_exactly_in_any_year() -> None:
    # Regression: int(datetime.timestamp() * 1000) dropped one ms for some instants (float rounding),
    # e.g. this one in 2038.
    assert normalize(payload(timestamp="2038-11-20T21:25:19.535Z"), now_ms=2_200_000_000_000).timestamp == (
        2_173_901_119_535
    )


def test_normalize_falls_back_to_original_timestamp_then_sent_at() -> None:
    from_original = ok(payload(timestamp=DROP, originalTimestamp="2026-11-26T10:00:00Z", sentAt=T + 5))
    from_sent_at = ok(payload(timestamp=DROP, sentAt=T + 5))
    timestamp_wins = ok(payload(timestamp=T + 1, originalTimestamp=T + 2, sentAt=T + 3))

    assert (from_original.timestamp, from_sent_at.timestamp, timestamp_wins.timestamp) == (T, T + 5, T + 1)


def test_normalize_accepts_a_timestamp_exactly_one_day_ahead_of_now() -> None:
    assert ok(payload(timestamp=NOW + DAY)).timestamp == NOW + DAY


def test_normalize_coerces_a_numeric_user_id_to_a_string() -> None:
    event = ok(payload(userId=1001))

    assert (event.user_key, event.user_id) == ("1001", "1001")


def test_normalize_keys_by_anonymous_id_when_user_id_is_absent() -> None:
    event = ok(payload(userId=DROP, anonymousId="anon-7"))

    assert (event.user_key, event.user_id, event.anonymous_id) == ("anon-7", None, "anon-7")


def test_normalize_keys_by_user_id_when_both_ids_are_present() -> None:
    event = ok(payload(userId="u1", anonymousId="anon-7"))

    assert (event.user_key, event.user_id, event.anonymous_id) == ("u1", "u1", "anon-7")


def test_normalize_treats_empty_or_null_user_id_as_absent() -> None:
    assert ok(payload(userId="", anonymousId="a")).user_key == "a"
    assert ok(payload(userId=None, anonymousId="a")).user_key == "a"


@pytest.mark.parametrize(
    ("properties", "item_id", "category"),
    [
        ({"product_id": "p-1", "category": "shoes"}, "p-1", "shoes"),
        ({"product_id": 42}, "42", None),
        ({"sku": "SKU-9", "category": 7}, "SKU-9", "7"),
        ({"id": "v1-id"}, "v1-id", None),  # Segment e-commerce v1 carries the product in `id`
        ({"item_id": 3}, "3", None),
        ({"product_id": "p-1", "sku": "SKU-9", "id": "x"}, "p-1", None),  # product_id wins
        ({"product_id": None, "sku": "SKU-9"}, "SKU-9", None),  # a null id is skipped
        ({}, None, None),
        (DROP, None, None),
        (None, None, None),
    ],
)
def test_normalize_reads_product_and_category_from_properties(
    properties: Any, item_id: str | None, category: str | None
) -> None:
    event = ok(payload(properties=properties))

    assert (event.item_id, event.category) == (item_id, category)


def test_normalize_accepts_str_payloads_like_bytes() -> None:
    raw = payload()

    assert ok(raw.decode()) == ok(raw)


def test_normalize_derives_the_same_dedup_key_from_the_same_message_id() -> None:
    first, again, other = (
        ok(payload(messageId="m-9")),
        ok(payload(messageId="m-9", timestamp=T + 1)),
        ok(payload(messageId="m-10")),
    )

    assert first.dedup_key == again.dedup_key == dedup_key("m-9")
    assert first.dedup_key != other.dedup_key
    assert 0 <= first.dedup_key < 2**63


# -- every invalid kind, with its code and what was expected ---------------------------------------


def test_normalize_rejects_malformed_json_as_invalid_json() -> None:
    error = rejected(b'{"type": "track", oops')

    assert error.code == "invalid_json"
    assert "not valid JSON" in error.reason


def test_normalize_rejects_an_empty_payload_as_invalid_json() -> None:
    assert rejected(b"").code == "invalid_json"


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b'{"type": "track", "event": "\xff"}', b"\xc3\x28"])
def test_normalize_rejects_bad_bytes_as_invalid_utf8(raw: bytes) -> None:
    error = rejected(raw)

    assert (error.code, error.reason) == ("invalid_utf8", "payload is not valid UTF-8 text")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"[1, 2]", "array"),
        (b"42", "number"),
        (b"4.5", "number"),
        (b'"track"', "string"),
        (b"true", "boolean"),
        (b"null", "null"),
    ],
)
def test_normalize_rejects_non_objects_naming_what_it_got(raw: bytes, kind: str) -> None:
    error = rejected(raw)

    assert error.code == "not_an_object"
    assert error.reason == f"payload must be a JSON object, got a JSON {kind}"


@pytest.mark.parametrize("value", [DROP, None, "", 7])
def test_normalize_rejects_a_missing_type_listing_the_types(value: Any) -> None:
    error = rejected(payload(type=value))

    assert error.code == "missing_type"
    assert "'type' is required" in error.reason
    assert "track, page, screen, identify" in error.reason


def test_normalize_rejects_an_unknown_type_listing_the_allowed_ones() -> None:
    error = rejected(payload(type="purchase"))

    assert error.code == "unknown_type"
    assert "['alias', 'group', 'identify', 'page', 'screen', 'track']" in error.reason
    assert "got 'purchase'" in error.reason


@pytest.mark.parametrize("value", [DROP, None, ""])
def test_normalize_rejects_a_missing_message_id(value: Any) -> None:
    error = rejected(payload(messageId=value))

    assert error.code == "missing_message_id"
    assert "'messageId' is required" in error.reason
    assert "duplicates" in error.reason


@pytest.mark.parametrize("value", [{"id": 1}, True, ["m1"], 1.5])
def test_normalize_rejects_a_non_string_message_id(value: Any) -> None:
    error = rejected(payload(messageId=value))

    assert error.code == "invalid_message_id"
    assert "'messageId' must be a string" in error.reason


def test_normalize_rejects_an_overlong_id() -> None:
    error = rejected(payload(messageId="m" * 257))

    assert error.code == "invalid_message_id"
    assert "longer than 256 characters" in error.reason


def test_normalize_accepts_an_id_of_exactly_256_characters() -> None:
    assert ok(payload(userId="u" * 256)).user_key == "u" * 256


@pytest.mark.parametrize(
    "fields",
    [
        {"userId": DROP},
        {"userId": None},
        {"userId": "", "anonymousId": ""},
        {"userId": None, "anonymousId": None},
    ],
)
def test_normalize_rejects_an_event_without_any_user_id(fields: dict[str, Any]) -> None:
    error = rejected(payload(**fields))

    assert error.code == "missing_user"
    assert (
        error.reason == "the event has neither userId nor anonymousId; one of them must be a non-empty string"
    )


@pytest.mark.parametrize("value", [{"id": "u1"}, True, False, ["u1"], 1.5])
def test_normalize_rejects_a_user_id_that_is_not_a_string_or_integer(value: Any) -> None:
    error = rejected(payload(userId=value))

    assert error.code == "invalid_user_id"
    assert error.reason == f"field 'userId' must be a string, got {value!r}"


def test_normalize_rejects_a_non_string_anonymous_id() -> None:
    error = rejected(payload(userId=DROP, anonymousId={"a": 1}))

    assert error.code == "invalid_anonymous_id"
    assert "'anonymousId' must be a string" in error.reason


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-11-26T10:00:00",
        "2026-11-26",
        "15",
        "",
        "2026-13-01T00:00:00Z",
        True,
        {"ms": T},
        [T],
    ],
)
def test_normalize_rejects_unparseable_or_zoneless_timestamps(value: Any) -> None:
    error = rejected(payload(timestamp=value))

    assert error.code == "invalid_timestamp"
    assert (
        error.reason == f"field 'timestamp' must be ISO-8601 with a zone or epoch milliseconds; got {value!r}"
    )


@pytest.mark.parametrize(
    "value",
    [
        1_511_658_000,  # epoch seconds (Taobao dataset): 1970 in milliseconds
        15,  # truncated
        -1,
        "1999-12-31T23:59:59.999Z",  # just before the earliest plausible instant
        NOW + DAY + 1,  # a device clock far in the future
        "2027-06-01T00:00:00Z",
    ],
)
def test_normalize_rejects_implausible_timestamps_suggesting_a_unit_mistake(value: Any) -> None:
    error = rejected(payload(timestamp=value))

    assert error.code == "invalid_timestamp"
    assert f"field 'timestamp' = {value!r} is outside 2000-01-01 .. now+1 day" in error.reason
    assert "must be milliseconds (is it seconds, or truncated?)" in error.reason


def test_normalize_names_the_fallback_field_a_bad_timestamp_came_from() -> None:
    error = rejected(payload(timestamp=DROP, sentAt="later"))

    assert error.code == "invalid_timestamp"
    assert "field 'sentAt'" in error.reason


def test_normalize_does_not_fall_back_when_timestamp_is_present_but_invalid() -> None:
    error = rejected(payload(timestamp="yesterday", originalTimestamp=T))

    assert error.code == "invalid_timestamp"


@pytest.mark.parametrize(
    "fields", [{"timestamp": DROP}, {"timestamp": None, "originalTimestamp": None, "sentAt": None}]
)
def test_normalize_rejects_a_missing_timestamp(fields: dict[str, Any]) -> None:
    error = rejected(payload(**fields))

    assert error.code == "missing_timestamp"
    assert error.reason == "field 'timestamp' is required: ISO-8601 with a zone, or epoch ms"


@pytest.mark.parametrize("value", [DROP, None, "", "   ", 5, ["Product Viewed"]])
def test_normalize_rejects_a_track_event_without_a_name(value: Any) -> None:
    error = rejected(payload(event=value))

    assert error.code == "missing_event_name"
    assert error.reason == "track events need a non-empty string field 'event'"


@pytest.mark.parametrize("value", [":", " -- ", "\u200b", "!?"])
def test_normalize_rejects_a_track_event_name_without_a_letter_or_digit(value: str) -> None:
    # its canonical name would be empty: a copy forwarded to a merged id would then carry "event": ""
    error = rejected(payload(event=value))

    assert error.code == "invalid_event_name"
    assert error.reason.endswith("has no letter or digit")


@pytest.mark.parametrize(
    ("value", "kind"), [([1, 2], "array"), ("shoes", "string"), (3, "number"), (True, "boolean")]
)
def test_normalize_rejects_properties_that_are_not_an_object(value: Any, kind: str) -> None:
    error = rejected(payload(properties=value))

    assert error.code == "invalid_properties"
    assert error.reason == f"'properties' must be an object, got a JSON {kind}"


def test_normalize_rejects_a_payload_over_64_kib_before_parsing_it() -> None:
    raw = b"{" + b" " * MAX_PAYLOAD_BYTES  # not even JSON: the size check comes first

    error = rejected(raw)

    assert error.code == "too_large"
    assert error.reason == f"payload is {MAX_PAYLOAD_BYTES + 1} bytes; the limit is {MAX_PAYLOAD_BYTES}"


def test_normalize_accepts_a_payload_of_exactly_64_kib() -> None:
    base = payload(context={"pad": ""})
    raw = base.replace(b'"pad":""', b'"pad":"' + b"x" * (MAX_PAYLOAD_BYTES - len(base)) + b'"')

    assert len(raw) == MAX_PAYLOAD_BYTES
    assert ok(raw).message_id == "m1"


def test_normalize_reports_the_first_problem_in_field_order() -> None:
    # type, then messageId, then user, then timestamp, then event name, then properties
    raw = orjson.dumps({"type": "track", "properties": [], "timestamp": "x"})

    assert rejected(raw).code == "missing_message_id"


def test_normalize_error_message_starts_with_the_code() -> None:
    error = rejected(payload(userId=DROP))

    assert str(error) == f"missing_user: {error.reason}"


@pytest.mark.parametrize(
    ("context", "name"),
    [({"active": False}, "traits_updated"), ({"active": True}, "identified"), (None, "identified"),
     ({"active": "false"}, "identified"), ("active", "identified")],
)
def test_normalize_an_identify_with_context_active_false_updates_traits_only(context: object, name: str) -> None:
    # Segment's context.active=false means "update the traits, not last seen" (tailor import sends it).
    raw = payload(type="identify", event=DROP, context=context if context is not None else DROP)

    assert ok(raw).name == name


def test_normalize_context_active_false_on_a_track_event_is_still_activity() -> None:
    assert ok(payload(context={"active": False})).name == "product_viewed"
