"""Validate a raw Segment-Spec message and turn it into a :class:`CanonicalEvent`.

Anything unusable raises :class:`InvalidEvent` with a stable ``code`` and a reason that says what was
expected; the job sends those to the dead-letter topic with the original payload. The checks mirror the
published JSON Schema (``state_schemas/segment_event.schema.json``) but are hand-written for speed.

>>> e = normalize(b'{"type":"track","event":"Product Added","messageId":"m1","userId":"u1",'
...               b'"timestamp":"2026-11-26T10:00:00Z","properties":{"product_id":42,"category":"shoes"}}')
>>> (e.user_key, e.name, e.timestamp, e.item_id, e.category)
('u1', 'product_added', 1795687200000, '42', 'shoes')
>>> normalize(b'{"type":"track","event":"x","messageId":"m1","timestamp":1}')
Traceback (most recent call last):
...
operators.normalize.InvalidEvent: missing_user: the event has neither userId nor anonymousId; one of them must be a non-empty string
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from operators.event_names import canonical_name
from settings.errors import TailorError
from state_schemas import events as ev

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ID_LENGTH = 256
# Earliest plausible event time (2000-01-01); anything older is a unit mistake (seconds for ms) or
# a truncated value.
MIN_TIMESTAMP_MS = 946_684_800_000
# Events stamped further in the future than this are clock errors on the device.
MAX_FUTURE_SKEW_MS = 24 * 3_600_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Where the product id may be, first found wins: Segment v2, SKU, Segment v1 ``id``, Taobao ``item_id``.
_ITEM_ID_KEYS = ("product_id", "sku", "id", "item_id")

_TYPE_NAMES = {
    "page": ev.PAGE_VIEWED,
    "screen": ev.SCREEN_VIEWED,
    "identify": ev.IDENTIFIED,
    "alias": ev.ALIASED,
    "group": "grouped",
}


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
    return int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=8).digest(), "big") >> 1


def normalize(payload: bytes | str, now_ms: int | None = None) -> ev.CanonicalEvent:
    """Validate one message; ``now_ms`` (default: wall clock) bounds how far in the future it may be."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent("too_large", f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        if "utf-8" in str(exc).lower():
            raise InvalidEvent("invalid_utf8", "payload is not valid UTF-8 text") from None
        raise InvalidEvent("invalid_json", f"payload is not valid JSON ({exc})") from None
    if not isinstance(msg, dict):
        raise InvalidEvent("not_an_object", f"payload must be a JSON object, got a JSON {_json_kind(msg)}")

    kind = msg.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidEvent("missing_type", "field 'type' is required: track, page, screen, identify or alias")
    kind = kind.lower()
    if kind not in ev.MESSAGE_TYPES:
        raise InvalidEvent(
            "unknown_type", f"field 'type' must be one of {sorted(ev.MESSAGE_TYPES)}, got {msg['type']!r}"
        )

    message_id = _id(msg, "messageId")
    if message_id is None:
        raise InvalidEvent(
            "missing_message_id", "field 'messageId' is required (a non-empty string) to drop duplicates"
        )

    user_id, anonymous_id = _id(msg, "userId"), _id(msg, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidEvent(
            "missing_user", "the event has neither userId nor anonymousId; one of them must be a non-empty string"
        )

    timestamp = _timestamp(msg, now_ms)

    if kind == "track":
        raw_name = msg.get("event")
        if not isinstance(raw_name, str) or not raw_name.strip():
            raise InvalidEvent("missing_event_name", "track events need a non-empty string field 'event'")
        name = canonical_name(raw_name)
    else:
        name = _TYPE_NAMES[kind]

    props = msg.get("properties")
    item_id = category = None
    if props is not None:
        if not isinstance(props, dict):
            raise InvalidEvent("invalid_properties", f"'properties' must be an object, got a JSON {_json_kind(props)}")
        item = next((props[k] for k in _ITEM_ID_KEYS if props.get(k) is not None), None)
        item_id = None if item is None else str(item)
        cat = props.get("category")
        category = None if cat is None else str(cat)

    return ev.CanonicalEvent(
        message_id=message_id,
        dedup_key=dedup_key(message_id),
        user_key=user_id if user_id is not None else anonymous_id,  # type: ignore[arg-type]
        user_id=user_id,
        anonymous_id=anonymous_id,
        type=kind,
        name=name,
        timestamp=timestamp,
        item_id=item_id,
        category=category,
    )


def _id(msg: dict[str, Any], field: str) -> str | None:
    value = msg.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(f"invalid_{_snake(field)}", f"field {field!r} must be a string, got {value!r}")
    value = str(value)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(f"invalid_{_snake(field)}", f"field {field!r} is longer than {MAX_ID_LENGTH} characters")
    return value


def _timestamp(msg: dict[str, Any], now_ms: int | None) -> int:
    for field in ("timestamp", "originalTimestamp", "sentAt"):
        raw = msg.get(field)
        if raw is not None:
            break
    else:
        raise InvalidEvent("missing_timestamp", "field 'timestamp' is required: ISO-8601 with a zone, or epoch ms")
    ms = epoch_ms(raw)
    if ms is None:
        raise InvalidEvent(
            "invalid_timestamp", f"field {field!r} must be ISO-8601 with a zone or epoch milliseconds; got {raw!r}"
        )
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if ms < MIN_TIMESTAMP_MS or ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise InvalidEvent(
            "invalid_timestamp",
            f"field {field!r} = {raw!r} is outside 2000-01-01 .. now+1 day; "
            "epoch values must be milliseconds (is it seconds, or truncated?)",
        )
    return ms


def epoch_ms(raw: Any) -> int | None:
    """Epoch milliseconds from an ISO-8601 string with a zone or a number of ms; None if neither.

    >>> epoch_ms("2017-11-26T09:00:00+08:00"), epoch_ms(1511658000123), epoch_ms("yesterday")
    (1511658000000, 1511658000123, None)
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return int(raw)
    if isinstance(raw, str):
        return _parse_iso(raw)
    return None


def _parse_iso(raw: str) -> int | None:
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    # Integer arithmetic: ``int(parsed.timestamp() * 1000)`` loses a millisecond to float rounding.
    return (parsed - _EPOCH) // _ONE_MS


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")


def _snake(field: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in field)
