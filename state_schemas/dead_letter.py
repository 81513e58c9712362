"""``tailor.dead_letter/1``: an input record the job could not use, kept whole with the reason.

Layout::

    schema        "tailor.dead_letter/1"
    error         stable machine-readable code, e.g. "invalid_json", "missing_user" (list below)
    reason        what is wrong and what was expected, for a human
    original      the original payload, decoded as UTF-8 (invalid bytes replaced) ...
    original_b64  ... and, only when the payload was not valid UTF-8, the exact bytes in base64
    source        where it came from (topic, file:line)
    received_at   epoch ms (wall clock) when it was rejected
    operator      (only for ``internal_error:<ExceptionType>``) the job operator that failed on the record

Codes of records ``operators.normalize`` rejects (``InvalidEvent.code``)::

    tombstone             the record has no value (a Kafka tombstone); ``original`` is empty
    invalid_json invalid_utf8 not_an_object too_large
    missing_type unknown_type missing_message_id invalid_message_id
    missing_user invalid_user_id invalid_anonymous_id
    missing_timestamp invalid_timestamp missing_event_name invalid_event_name invalid_properties

A record that makes the job's own code raise (a bug, or an input no check foresaw) becomes a dead letter
too, with code ``internal_error:<ExceptionType>``: the job never dies on input, and the record is kept.

>>> rec = decode(encode("invalid_json", "not JSON", b"{oops", "tailor.events", 1))
>>> rec["error"], rec["original"]
('invalid_json', '{oops')
"""

from __future__ import annotations

import base64
from typing import Any, Final

import orjson

SCHEMA: Final = "tailor.dead_letter/1"
MAX_REASON_CHARS: Final = 500


def encode(
    error: str, reason: str, original: bytes | str, source: str, received_at: int, operator: str | None = None
) -> bytes:
    record: dict[str, Any] = {"schema": SCHEMA, "error": error, "reason": reason}
    if isinstance(original, str):
        record["original"] = original
    else:
        try:
            record["original"] = original.decode("utf-8")
        except UnicodeDecodeError:
            record["original"] = original.decode("utf-8", errors="replace")
            record["original_b64"] = base64.b64encode(original).decode("ascii")
    record["source"] = source
    record["received_at"] = received_at
    if operator is not None:
        record["operator"] = operator
    return orjson.dumps(record)


def encode_internal_error(
    exc: BaseException, original: bytes | str, source: str, received_at: int, operator: str
) -> bytes:
    """The dead letter of a record on which ``operator`` raised ``exc``.

    >>> rec = decode(encode_internal_error(ZeroDivisionError("x"), "{}", "tailor.events", 1, "track_segments"))
    >>> rec["error"], rec["operator"], rec["reason"]
    ('internal_error:ZeroDivisionError', 'track_segments', 'track_segments raised ZeroDivisionError: x')
    """
    kind = type(exc).__name__
    try:  # an exception's text can itself recurse (a deeply nested value in its args)
        message = str(exc)[:MAX_REASON_CHARS]
    except Exception:  # noqa: BLE001 - any failure to print it leaves the code and the record
        message = "(its message cannot be printed)"
    reason = f"{operator} raised {kind}: {message}"
    return encode(f"internal_error:{kind}", reason, original, source, received_at, operator)


def decode(payload: bytes | str) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads(payload)
    if record.get("schema") != SCHEMA:
        raise ValueError(f"expected schema {SCHEMA!r}, got {record.get('schema')!r}")
    return record
