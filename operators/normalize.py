"""Validate a raw Segment-Spec message and turn it into a :class:`CanonicalEvent`.

Anything unusable raises :class:`InvalidEvent` with a stable ``code`` and a reason that says what was
expected; the job sends those to the dead-letter topic with the original payload. ``normalize`` is total:
for any input at all (bytes, text, a ``None`` tombstone, deeply nested or huge JSON, numbers of any size)
it returns an event or raises ``InvalidEvent``, never anything else, so no record can crash the job.

The checks are exactly the published JSON Schema (``state_schemas/segment_event.schema.json``), written
by hand because a compiled validator costs more than the whole of ``normalize`` (README, Contracts), plus
three rules a static schema cannot state: the event time lies in 2000-01-01 .. now + 1 day, the payload
is at most 64 KiB and JSON nests at most 1024 levels (orjson's limit). A property test
(``tests/operators/test_normalize_schema.py``) holds the two equal.

Reasons quote offending values through a size- and depth-bounded preview (``reprlib``), never ``repr()``:
a value nested a thousand levels deep would overflow the stack, a long one would bloat the dead letter.

>>> e = normalize(b'{"type":"track","event":"Product Added","messageId":"m1","userId":"u1",'
...               b'"timestamp":"2026-11-26T10:00:00Z","properties":{"product_id":42,"category":"shoes"}}')
>>> (e.user_key, e.name, e.timestamp, e.item_id, e.category)
('u1', 'product_added', 1795687200000, '42', 'shoes')
>>> normalize(b'{"type":"track","event":"x","messageId":"m1","timestamp":1}')
Traceback (most recent call last):
...
operators.normalize.InvalidEvent: missing_user: the event has neither userId nor anonymousId; one of them must be a non-empty string
>>> normalize(b'{"type":"page","messageId":"m1","userId":' + b'[' * 1000 + b']' * 1000 + b'}')
Traceback (most recent call last):
...
operators.normalize.InvalidEvent: invalid_user_id: field 'userId' must be a string, got [[[...]]]
>>> normalize(None)
Traceback (most recent call last):
...
operators.normalize.InvalidEvent: tombstone: the record has no value (a tombstone); expected a JSON object
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

import hashlib
import re
import reprlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from operators.event_names import canonical_name
from settings.errors import TailorError
from state_schemas import events as ev

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_ID_LENGTH: Final = 256
MAX_EVENT_NAME_LENGTH: Final = 200
# Integer ids (userId 1001) are read as decimal strings, within ±(2**63 - 1). A JSON number with a zero
# fraction (1001.0) is the same integer, as JSON Schema has it. The bound leaves out -2**63 because orjson
# reads any integer below it as the float -2**63: the text -9223372036854775809 must not pass as in range.
MIN_INTEGER_ID: Final = -(2**63 - 1)
MAX_INTEGER_ID: Final = 2**63 - 1
# Earliest plausible event time (2000-01-01); anything older is a unit mistake (seconds for ms) or
# a truncated value.
MIN_TIMESTAMP_MS: Final = 946_684_800_000
# Events stamped further in the future than this are clock errors on the device.
MAX_FUTURE_SKEW_MS: Final = 24 * 3_600_000
# Epoch milliseconds live in Java longs downstream (Kafka record timestamps, Flink watermarks).
_MIN_LONG, _MAX_LONG = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")
# Where the product id may be, first found wins: Segment v2, SKU, Segment v1 ``id``, Taobao ``item_id``.
_ITEM_ID_KEYS = ("product_id", "sku", "id", "item_id")

# The ISO-8601 profile accepted for timestamps, verbatim the schema's ``pattern`` (ECMA-262 and Python
# alike): a calendar date YYYY-MM-DD (leap years included, no year 0000), ``T``/``t``/space, hh:mm with
# optional :ss and a fraction of 1-9 digits (``.`` or ``,``; below the millisecond it is dropped), and a
# zone: ``Z`` or ±hh, ±hhmm, ±hh:mm. ``(?![\s\S])`` ends the string (Python's ``$`` would allow a "\n").
TIMESTAMP_PATTERN: Final = (
    r"^(?!0000)(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
    r"[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]{1,9})?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)(?![\s\S])"
)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)

_TYPE_NAMES = {
    "page": ev.PAGE_VIEWED,
    "screen": ev.SCREEN_VIEWED,
    "identify": ev.IDENTIFIED,
    "alias": ev.ALIASED,
    "group": "grouped",
}

# Previews of offending values in reasons: two levels deep, three items, strings cut to 40 characters;
# at most ~500 characters whatever the value.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel = 2
_PREVIEW.maxdict = _PREVIEW.maxlist = _PREVIEW.maxtuple = _PREVIEW.maxset = _PREVIEW.maxfrozenset = 3
_PREVIEW.maxstring = _PREVIEW.maxother = 40
_PREVIEW.maxlong = 40


class InvalidEvent(TailorError):
    """An input message that cannot be used. ``code`` is stable; ``reason`` is for humans."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def dedup_key(message_id: str) -> int:
    """A 63-bit hash of a message id that is the same in every process (``hash()`` is salted).

    >>> dedup_key("m1") == dedup_key("m1") and dedup_key("m1") != dedup_key("m2")
    True
    """
    digest = hashlib.blake2b(message_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def preview(value: object) -> str:
    """A short repr of any JSON value, safe for values nested thousands of levels deep.

    >>> preview([[[[1]]]]), preview("x" * 100)
    ('[[[...]]]', "'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx'")
    """
    try:
        return _PREVIEW.repr(value)
    except Exception:  # noqa: BLE001 - a reason must never fail: fall back to the type
        return f"<a {type(value).__name__}>"


def normalize(
    payload: bytes | bytearray | memoryview | str | None, now_ms: int | None = None
) -> ev.CanonicalEvent:
    """Validate one message; ``now_ms`` (default: wall clock) bounds how far in the future it may be."""
    msg = _parse(payload)

    kind = msg.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidEvent("missing_type", "field 'type' is required: track, page, screen, identify or alias")
    # Any letter case, ASCII only: str.lower() also folds e.g. the Kelvin sign U+212A into "k".
    lowered = kind.lower() if kind.isascii() else kind
    if lowered not in ev.MESSAGE_TYPES:
        raise InvalidEvent(
            "unknown_type", f"field 'type' must be one of {sorted(ev.MESSAGE_TYPES)}, got {preview(kind)}"
        )

    message_id = _id(msg, "messageId")
    if message_id is None:
        raise InvalidEvent(
            "missing_message_id", "field 'messageId' is required (a non-empty string) to drop duplicates"
        )

    user_id, anonymous_id = _id(msg, "userId"), _id(msg, "anonymousId")
    user_key = user_id if user_id is not None else anonymous_id
    if user_key is None:
        raise InvalidEvent(
            "missing_user", "the event has neither userId nor anonymousId; one of them must be a non-empty string"
        )

    timestamp = _timestamp(msg, now_ms)

    if lowered == "track":
        raw_name = msg.get("event")
        if not isinstance(raw_name, str) or not raw_name.strip():
            raise InvalidEvent("missing_event_name", "track events need a non-empty string field 'event'")
        if len(raw_name) > MAX_EVENT_NAME_LENGTH:
            raise InvalidEvent(
                "invalid_event_name", f"field 'event' is longer than {MAX_EVENT_NAME_LENGTH} characters"
            )
        name = canonical_name(raw_name)
        if not name:  # only punctuation: nothing to name it by, and a forwarded copy would lose it
            raise InvalidEvent("invalid_event_name", f"field 'event' {raw_name[:40]!r} has no letter or digit")
    elif lowered == "identify" and _inactive(msg):
        name = ev.TRAITS_UPDATED
    else:
        name = _TYPE_NAMES[lowered]

    props = msg.get("properties")
    item_id = category = None
    if props is not None:
        if not isinstance(props, dict):
            raise InvalidEvent("invalid_properties", f"'properties' must be an object, got a JSON {_json_kind(props)}")
        for key in _ITEM_ID_KEYS:
            value = props.get(key)
            if value is not None:
                item = _property(key, value)
                if item_id is None:
                    item_id = item
        value = props.get("category")
        if value is not None:
            category = _property("category", value)

    return ev.CanonicalEvent(
        message_id=message_id,
        dedup_key=dedup_key(message_id),
        user_key=user_key,
        user_id=user_id,
        anonymous_id=anonymous_id,
        type=lowered,
        name=name,
        timestamp=timestamp,
        item_id=item_id,
        category=category,
        consent=_consent(msg),
        previous_id=_optional_id(msg, "previousId") if lowered == "alias" else None,
    )


MAX_CONSENT_CATEGORIES: Final = 64


def _inactive(msg: dict[str, Any]) -> bool:
    """Segment's ``context.active: false``: the call updates traits and is not the user being active."""
    context = msg.get("context")
    return isinstance(context, dict) and context.get("active") is False


def _consent(msg: dict[str, Any]) -> tuple[tuple[str, bool], ...] | None:
    """``context.consent.categoryPreferences`` as sorted (category, granted) pairs; entries that are not
    a string name with a boolean are ignored (consent is read, never a reason to reject an event)."""
    context = msg.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict):
        return None
    pairs = [(k, v) for k, v in preferences.items() if isinstance(k, str) and isinstance(v, bool)]
    return tuple(sorted(pairs)[:MAX_CONSENT_CATEGORIES])


def _parse(payload: object) -> dict[str, Any]:
    if payload is None:
        raise InvalidEvent("tombstone", "the record has no value (a tombstone); expected a JSON object")
    if isinstance(payload, memoryview):
        payload = payload.tobytes()  # any shape or item format: its bytes
    if isinstance(payload, str):
        size = len(payload) if payload.isascii() else len(payload.encode("utf-8", "surrogatepass"))
    elif isinstance(payload, bytes | bytearray):
        size = len(payload)
    else:
        raise InvalidEvent("invalid_json", f"payload must be bytes or text, got a {type(payload).__name__}")
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidEvent("too_large", f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        detail = str(exc)[:200]  # orjson's own message and position; it never quotes the input
        if "utf-8" in detail.lower():
            raise InvalidEvent("invalid_utf8", "payload is not valid UTF-8 text") from None
        raise InvalidEvent("invalid_json", f"payload is not valid JSON ({detail})") from None
    if not isinstance(msg, dict):
        raise InvalidEvent("not_an_object", f"payload must be a JSON object, got a JSON {_json_kind(msg)}")
    return msg


def _scalar(value: object) -> str | None:
    """A string, or an integer (a number with a zero fraction counts) within 64 bits, as a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if MIN_INTEGER_ID <= value <= MAX_INTEGER_ID else None
    if isinstance(value, float) and value.is_integer() and MIN_INTEGER_ID <= value <= MAX_INTEGER_ID:
        return str(int(value))
    return None


def _is_integer(value: object) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _id(msg: dict[str, Any], field: str) -> str | None:
    value = msg.get(field)
    if value is None or value == "":
        return None
    text = _scalar(value)
    if text is None:
        code = f"invalid_{_snake(field)}"
        if _is_integer(value):
            raise InvalidEvent(code, f"field {field!r} = {preview(value)} does not fit 64 bits; send it as a string")
        raise InvalidEvent(code, f"field {field!r} must be a string, got {preview(value)}")
    if len(text) > MAX_ID_LENGTH:
        raise InvalidEvent(f"invalid_{_snake(field)}", f"field {field!r} is longer than {MAX_ID_LENGTH} characters")
    return text


def _optional_id(msg: dict[str, Any], field: str) -> str | None:
    """An id read as ``_id`` reads it, but never a reason to reject the message: a bad one is absent."""
    try:
        return _id(msg, field)
    except InvalidEvent:
        return None


def _property(key: str, value: object) -> str | None:
    """An item id or category: a string or an integer; an empty string counts as absent."""
    text = _scalar(value)
    if text is None:
        raise InvalidEvent(
            "invalid_properties",
            f"'properties.{key}' must be a string or an integer within 64 bits, got {preview(value)}",
        )
    if len(text) > MAX_ID_LENGTH:
        raise InvalidEvent("invalid_properties", f"'properties.{key}' is longer than {MAX_ID_LENGTH} characters")
    return text or None


def _timestamp(msg: dict[str, Any], now_ms: int | None) -> int:
    for field in _TIME_FIELDS:
        raw = msg.get(field)
        if raw is not None:
            break
    else:
        raise InvalidEvent("missing_timestamp", "field 'timestamp' is required: ISO-8601 with a zone, or epoch ms")
    ms = epoch_ms(raw)
    is_number = isinstance(raw, int | float) and not isinstance(raw, bool)
    if ms is None and not is_number:
        raise InvalidEvent(
            "invalid_timestamp",
            f"field {field!r} must be ISO-8601 with a zone or epoch milliseconds; got {preview(raw)}",
        )
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if ms is None or ms < MIN_TIMESTAMP_MS or ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise InvalidEvent(
            "invalid_timestamp",
            f"field {field!r} = {preview(raw)} is outside 2000-01-01 .. now+1 day; "
            "epoch values must be milliseconds (is it seconds, or truncated?)",
        )
    return ms


def epoch_ms(raw: object) -> int | None:
    """Epoch milliseconds from an ISO-8601 string with a zone (``TIMESTAMP_PATTERN``) or a number of ms;
    None if neither, or if the number is not finite or does not fit a Java long.

    >>> epoch_ms("2017-11-26T09:00:00+08:00"), epoch_ms(1511658000123), epoch_ms("yesterday")
    (1511658000000, 1511658000123, None)
    >>> epoch_ms(float("nan")), epoch_ms(1e308), epoch_ms(True)
    (None, None, None)
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if _MIN_LONG <= raw <= _MAX_LONG else None
    if isinstance(raw, float):
        # Comparisons are exact (and false for NaN), so int() below can neither overflow nor fail.
        return int(raw) if _MIN_LONG <= raw <= _MAX_LONG else None
    if isinstance(raw, str):
        return _parse_iso(raw)
    return None


def _parse_iso(raw: str) -> int | None:
    if _TIMESTAMP.match(raw) is None:
        return None
    try:  # the pattern admits only what fromisoformat reads; the guard is for what nobody foresaw
        parsed = datetime.fromisoformat(raw)
        # Integer arithmetic: ``int(parsed.timestamp() * 1000)`` loses a millisecond to float rounding.
        return (parsed - _EPOCH) // _ONE_MS
    except (ValueError, OverflowError, TypeError):
        return None


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return kinds.get(type(value), "null")


def _snake(field: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in field)
