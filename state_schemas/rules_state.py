"""The segment rules a bucket of the job has in force, when they came by ``tailor rules apply``.

A compact JSON array ``[version, applied_at, rules]``: layout version 1, the update's epoch ms, and the
rules file's mapping (``SegmentRules.source``, compiled again on restore). A bucket without it uses the
rules the job was started with.

>>> decode(encode(1_700_000_000_000, {"segments": []}))
(1700000000000, {'segments': []})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

VERSION: Final = 1


def encode(applied_at: int, rules: Mapping[str, Any]) -> str:
    return orjson.dumps([VERSION, applied_at, dict(rules)], default=str).decode()


def decode(payload: str | bytes) -> tuple[int, dict[str, Any]]:
    """``(applied_at, rules mapping)``; ValueError for a layout this version does not know."""
    record = orjson.loads(payload)
    if not isinstance(record, list) or len(record) != 3 or record[0] != VERSION:
        raise ValueError(f"rules state: expected layout [{VERSION}, applied_at, rules], got {str(record)[:80]}")
    return record[1], record[2]
