"""Read the Taobao UserBehavior CSV as Segment-Spec track events.

The file (Alibaba's public "User Behavior Data from Taobao") has no header and five columns::

    user_id,item_id,category_id,behavior,timestamp        behavior: pv | cart | fav | buy
    543462,1715,1464116,pv,1511658000                     timestamp: epoch SECONDS (UTC)

Each good row becomes a Segment e-commerce track event whose ``messageId`` is derived from the line
number, so replaying the same file yields the same ids (the job drops the duplicates). Bad rows are
data too: they come out as :class:`RejectedRow` with the raw text and a reason, for the dead-letter
topic, and reading goes on. The sample we ship ends in a row cut off mid-timestamp, which is caught by
the timestamp plausibility check (2000-01-01 .. now + 1 day, the same window ``operators.normalize``
enforces).

>>> rows = list(parse_lines(["543462,1715,1464116,pv,1511658000\\n", "1,2,3,pv,15"]))
>>> rows[0].event["event"], rows[0].event["timestamp"], rows[0].event["properties"]
('Product Viewed', '2017-11-26T01:00:00.000Z', {'product_id': '1715', 'category': '1464116'})
>>> print(rows[1])
line 2: timestamp '15' is not a plausible epoch-seconds value (row looks truncated: no trailing newline)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from operators.normalize import MAX_FUTURE_SKEW_MS, MIN_TIMESTAMP_MS

COLUMNS = ("user_id", "item_id", "category_id", "behavior", "timestamp")

# Taobao behavior code -> Segment e-commerce event name (operators.event_names maps both to canonical).
EVENT_NAMES = {
    "pv": "Product Viewed",
    "cart": "Product Added",
    "fav": "Product Added to Wishlist",
    "buy": "Order Completed",
}


class TaobaoEvent(NamedTuple):
    """A good row: its 1-based line number and the Segment-Spec event dict."""

    line: int
    event: dict[str, Any]


class RejectedRow(NamedTuple):
    """A row that is not a usable event: where it is, its text, a stable ``error`` code and why."""

    line: int
    raw: str
    error: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


TaobaoRow = TaobaoEvent | RejectedRow


def read_taobao(path: str | Path, now_ms: int | None = None) -> Iterator[TaobaoRow]:
    """Every row of the file at ``path`` in order, as :class:`TaobaoEvent` or :class:`RejectedRow`.

    ``now_ms`` (default: wall clock) bounds how far in the future a timestamp may be.
    """
    with open(path, encoding="utf-8", errors="replace", newline="") as lines:
        yield from parse_lines(lines, now_ms)


def parse_lines(lines: Iterable[str], now_ms: int | None = None) -> Iterator[TaobaoRow]:
    """Parse CSV lines (each with its line ending, as a file yields them); line numbers start at 1.

    >>> for rejected in parse_lines(["1,2,3,like,1511658000\\n", "1,2,3,pv\\n", "x,2,3,pv,1511658000\\n"]):
    ...     print(rejected)
    line 1: behavior 'like' is unknown; expected one of buy, cart, fav, pv
    line 2: expected 5 columns (user_id,item_id,category_id,behavior,timestamp), got 4
    line 3: user_id 'x' must be a non-negative integer
    """
    max_seconds = ((int(time.time() * 1000) if now_ms is None else now_ms) + MAX_FUTURE_SKEW_MS) // 1000
    for number, text in enumerate(lines, start=1):
        row = text.rstrip("\r\n")
        fields = row.split(",")
        if len(fields) != len(COLUMNS):
            yield RejectedRow(
                number, row, "wrong_column_count",
                f"expected {len(COLUMNS)} columns ({','.join(COLUMNS)}), got {len(fields) if row else 0}",
            )
            continue
        user_id, item_id, category_id, behavior, seconds = [f.strip() for f in fields]
        problem = _check_ids(user_id, item_id, category_id)
        if problem:
            yield RejectedRow(number, row, "invalid_number", problem)
            continue
        name = EVENT_NAMES.get(behavior)
        if name is None:
            yield RejectedRow(
                number, row, "unknown_behavior",
                f"behavior {behavior!r} is unknown; expected one of {', '.join(sorted(EVENT_NAMES))}",
            )
            continue
        if not _is_integer(seconds) or not MIN_TIMESTAMP_MS // 1000 <= int(seconds) <= max_seconds:
            hint = " (row looks truncated: no trailing newline)" if not text.endswith("\n") else ""
            yield RejectedRow(
                number, row, "implausible_timestamp",
                f"timestamp {seconds!r} is not a plausible epoch-seconds value{hint}",
            )
            continue
        yield TaobaoEvent(
            number,
            {
                "type": "track",
                "event": name,
                "messageId": f"taobao-{number}",
                "userId": user_id,
                "timestamp": iso_from_seconds(int(seconds)),
                "properties": {"product_id": item_id, "category": category_id},
            },
        )


@lru_cache(maxsize=1 << 16)  # rows come roughly in time order: consecutive rows share seconds
def iso_from_seconds(seconds: int) -> str:
    """ISO-8601 UTC with milliseconds, as Segment libraries send it.

    >>> iso_from_seconds(1511658000)
    '2017-11-26T01:00:00.000Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def _check_ids(*values: str) -> str | None:
    for column, value in zip(COLUMNS, values, strict=False):
        if not _is_integer(value):
            return f"{column} {value!r} must be a non-negative integer"
    return None


def _is_integer(value: str) -> bool:
    return value.isascii() and value.isdigit()
