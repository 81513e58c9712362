"""Segment's HTTP Tracking API, the request side: what one call to ``/v1/<method>`` means as messages.

An SDK (analytics-python, analytics-node, RudderStack's) posts one message to ``/v1/track``,
``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/group`` or ``/v1/alias``, or many to ``/v1/batch``
(``/v1/import`` is its alias), authenticated by its write key (HTTP Basic user name, empty password, or
a ``writeKey`` field). ``messages`` turns a parsed body into the messages to store, as Segment's servers
would: the endpoint sets ``type``; a batch's top-level ``context`` and ``integrations`` fill what a
message lacks; ``receivedAt`` is stamped; a missing ``timestamp`` is ``receivedAt`` corrected for the
device clock (``receivedAt - (sentAt - originalTimestamp)``), else ``receivedAt``; a missing
``messageId`` becomes ``api-`` + a hash of the message as sent, so a retried request is still
deduplicated (and two identical calls without ``messageId`` or ``timestamp`` count once: SDKs set both).
Limits are Segment's: 32 KB per message, 500 KB per request (``TrackingApiError`` with status 400 or
413 otherwise). Validation against the event schema is the job's own ``operators.normalize``.

>>> [m["type"] for m in messages("track", {"event": "Viewed", "userId": "u1", "messageId": "m1"}, 0)]
['track']
>>> batch = {"batch": [{"type": "page", "userId": "u1", "messageId": "m1"}], "context": {"ip": "10.0.0.1"}}
>>> m = messages("batch", batch, received_ms=1_795_687_200_000)[0]
>>> m["context"], m["receivedAt"], m["timestamp"]
({'ip': '10.0.0.1'}, '2026-11-26T10:00:00.000Z', '2026-11-26T10:00:00.000Z')
>>> messages("track", {"event": "x", "userId": "u1"}, 0)[0]["messageId"].startswith("api-")
True
>>> write_key("Basic " + base64.b64encode(b"KEY:").decode(), {})
'KEY'
>>> messages("order", {}, 0)
Traceback (most recent call last):
...
operators.tracking_api.TrackingApiError: 404: no endpoint /v1/order; the Tracking API has /v1/alias, /v1/batch, /v1/group, /v1/identify, /v1/import, /v1/page, /v1/screen, /v1/track
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from operators.event_names import canonical_name
from operators.identity import MERGE, TRANSFER
from operators.rules_updates import BROADCAST_USER, RULES_UPDATED
from settings.errors import TailorError
from state_schemas.events import ERASED

RESERVED: Final = frozenset({ERASED, MERGE, TRANSFER, RULES_UPDATED})  # canonical names only Tailor itself may send

MAX_MESSAGE_BYTES: Final = 32 * 1024
MAX_REQUEST_BYTES: Final = 500 * 1024
SINGLE: Final = frozenset({"track", "identify", "page", "screen", "group", "alias"})
BATCH: Final = frozenset({"batch", "import"})
_BATCH_DEFAULTS: Final = ("context", "integrations")


class TrackingApiError(TailorError):
    """A request the API refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def write_key(authorization: str | None, body: dict[str, Any]) -> str | None:
    """The write key of a request: HTTP Basic user name (analytics SDKs), else the body's ``writeKey``."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            user, _, _ = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    key = body.get("writeKey")
    return key if isinstance(key, str) and key else None


def messages(method: str, body: dict[str, Any], received_ms: int) -> list[dict[str, Any]]:
    """The messages one call to ``/v1/<method>`` stores, stamped and completed as described above."""
    defaults: dict[str, Any] = {}
    batch: list[dict[str, Any]]
    if method in SINGLE:
        batch = [dict(body, type=method)]
    elif method in BATCH:
        raw = body.get("batch")
        if not isinstance(raw, list) or not raw:
            raise TrackingApiError(400, "a batch needs a non-empty 'batch' array of messages")
        if not all(isinstance(m, dict) for m in raw):
            raise TrackingApiError(400, "every element of 'batch' must be a JSON object")
        batch, defaults = raw, {k: body[k] for k in _BATCH_DEFAULTS if k in body}
    else:
        known = ", ".join(f"/v1/{m}" for m in sorted(SINGLE | BATCH))
        raise TrackingApiError(404, f"no endpoint /v1/{method}; the Tracking API has {known}")
    received_at = _iso(received_ms)
    sent_at = _parse_time(body.get("sentAt"))
    out = []
    for n, given in enumerate(batch):
        message: dict[str, Any] = {**defaults, **given}
        message.pop("writeKey", None)
        name = message.get("event")
        if isinstance(name, str) and canonical_name(name) in RESERVED:
            raise TrackingApiError(403, f"message {n}: the event name {name!r} is reserved for Tailor's own "
                                        "control events (tailor erase, identity merges, tailor rules apply)")
        if BROADCAST_USER in (message.get("userId"), message.get("anonymousId")):
            raise TrackingApiError(403, f"message {n}: the id {BROADCAST_USER!r} is reserved for Tailor's own "
                                        "control events (every bucket of the job receives its events)")
        if not message.get("messageId"):  # from the message as sent: a retry of it gets the same id
            digest = hashlib.blake2b(_dumps(message, n, orjson.OPT_SORT_KEYS), digest_size=12)
            message["messageId"] = "api-" + digest.hexdigest()
        message["receivedAt"] = received_at
        if "timestamp" not in message:
            original = _parse_time(message.get("originalTimestamp"))
            sent = _parse_time(message.get("sentAt")) or sent_at
            skew = received_ms - sent if sent is not None and original is not None else 0
            message["timestamp"] = _iso(original + skew) if original is not None else received_at
        if len(_dumps(message, n)) > MAX_MESSAGE_BYTES:
            raise TrackingApiError(400, f"message {n} is larger than {MAX_MESSAGE_BYTES // 1024} KB")
        out.append(message)
    return out


def _dumps(message: dict[str, Any], n: int, option: int = 0) -> bytes:
    try:
        return orjson.dumps(message, option=option)
    except TypeError as e:  # orjson writes 254 levels of nesting (it reads 1024)
        raise TrackingApiError(400, f"message {n} cannot be stored: {e} (nested too deeply?)") from e


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _parse_time(value: Any) -> int | None:
    """Epoch ms of an ISO-8601 string, None if absent or unreadable (the schema check reports those)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
