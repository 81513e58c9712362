"""Rows of CRM and third-party exports, with their line numbers (``tailor import``).

Two formats: CSV with a header row (UTF-8, a BOM is dropped; every value is text) and JSONL (one JSON
object per line; values keep their JSON types). A line that is not a row becomes a :class:`BadRow`,
never an exception, so one broken line does not stop an import of millions.

>>> import io
>>> list(csv_rows(io.StringIO('id,plan\\nc1,gold\\n"c2,silver\\n')))
[(2, {'id': 'c1', 'plan': 'gold'}), BadRow(line=3, reason='unterminated quoted field at the end of the file')]
>>> list(jsonl_rows(io.BytesIO(b'{"id": "c1"}\\n[1]\\n')))
[(1, {'id': 'c1'}), BadRow(line=2, reason='a line must hold one JSON object, got a JSON array')]
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

FORMATS = ("csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
# A CRM export may hold long free-text notes; csv's default limit (128 KiB) would end the whole file.
csv.field_size_limit(16 * 1024 * 1024)


class BadRow(NamedTuple):
    line: int
    reason: str


Row = tuple[int, dict[str, Any]]


def detect_format(path: Path) -> str | None:
    """``csv`` or ``jsonl`` by extension; None if the extension says neither."""
    return _EXTENSIONS.get(path.suffix.lower())


def read_rows(path: Path, fmt: str) -> Iterator[Row | BadRow]:
    """Every row of ``path`` in ``fmt``, with the line it starts on."""
    if fmt == "csv":
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as text:
            yield from csv_rows(text)
    else:
        with open(path, "rb") as lines:
            yield from jsonl_rows(lines)


def csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as text:
        return next(csv.reader(text), [])


def csv_rows(text: IO[str]) -> Iterator[Row | BadRow]:
    reader = csv.reader(text, strict=True)
    header = next(reader, None)
    if header is None:
        return
    while True:
        line = reader.line_num + 1  # where the next record starts (a quoted field may span lines)
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadRow(line, _csv_reason(exc))
            return  # the reader cannot resync after a broken quote: the rest is one field
        if not fields:
            continue
        if len(fields) != len(header):
            yield BadRow(line, f"{len(fields)} fields; the header has {len(header)}")
        else:
            yield line, dict(zip(header, fields, strict=True))


def jsonl_rows(lines: IO[bytes]) -> Iterator[Row | BadRow]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield BadRow(number, f"not valid JSON ({str(exc)[:200]})")
            continue
        if isinstance(value, dict):
            yield number, value
        else:
            yield BadRow(number, f"a line must hold one JSON object, got a JSON {_JSON_KINDS.get(type(value), 'null')}")


def _csv_reason(exc: csv.Error) -> str:
    message = str(exc)
    if "unexpected end of data" in message or "EOF" in message:
        return "unterminated quoted field at the end of the file"
    return f"not valid CSV ({message})"
