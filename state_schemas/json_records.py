"""Tailor's JSON output records carry their layout's name and version in ``schema``; a reader checks it.

>>> decode_record(b'{"schema": "tailor.x/2", "a": 1}', "tailor.x/2")["a"]
1
>>> decode_record(b'[1]', "tailor.x/2")
Traceback (most recent call last):
...
ValueError: expected schema 'tailor.x/2', got [1]
"""

from __future__ import annotations

from typing import Any

import orjson


def decode_record(payload: bytes | str, schema: str) -> dict[str, Any]:
    """The record as a dict; ``ValueError`` if it is not a JSON object of layout ``schema``."""
    record = orjson.loads(payload)
    if not isinstance(record, dict) or record.get("schema") != schema:
        got = record.get("schema") if isinstance(record, dict) else record
        raise ValueError(f"expected schema {schema!r}, got {got!r}")
    return record
