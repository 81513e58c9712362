"""``tailor.dead_letter/1``: an input record the job could not use, kept whole with the reason.

Layout::

    schema        "tailor.dead_letter/1"
    error         stable machine-readable code, e.g. "invalid_json", "missing_user"
    reason        what is wrong and what was expected, for a human
    original      the original payload, decoded as UTF-8 (invalid bytes replaced) ...
    original_b64  ... and, only when the payload was not valid UTF-8, the exact bytes in base64
    source        where it came from (topic, file:line)
    received_at   epoch ms (wall clock) when it was rejected

>>> rec = decode(encode("invalid_json", "not JSON", b"{oops", "tailor.events", 1))
>>> rec["error"], rec["original"]
('invalid_json', '{oops')
"""

from __future__ import annotations

import base64
from typing import Any, Final

import orjson

SCHEMA: Final = "tailor.dead_letter/1"


def encode(error: str, reason: str, original: bytes | str, source: str, received_at: int) -> bytes:
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
    return orjson.dumps(record)


def decode(payload: bytes | str) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads(payload)
    if record.get("schema") != SCHEMA:
        raise ValueError(f"expected schema {SCHEMA!r}, got {record.get('schema')!r}")
    return record
