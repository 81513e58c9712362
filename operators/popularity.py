"""Trending items: exponentially time-decayed popularity, overall and per segment, in event time.

An item's popularity at time ``now`` is ``sum(w * 2 ** -((now - t) / half_life))`` over its events.
We keep it in *forward-decay* form: ``level = log2(sum(w * 2 ** (t / half_life)))``, so an event only
touches its own item, the ranking never needs refreshing as time passes (every item decays by the same
factor) and ``2 ** (level - now / half_life)`` recovers the decayed count. Logs never overflow, and
out-of-order events are exact.

Because levels only ever go up, each table keeps an exact top-``board_size`` board incrementally
(an item enters by beating the board's minimum), so ``top`` costs O(board), not O(items). Ties are
broken by item id so the board is a pure function of the levels (a restored table rebuilds the same
board). Per-segment tables hold at most ``segment_cap`` items: past that, the lowest are dropped in a
batch (a heavy-hitters approximation: a dropped item that comes back restarts from zero there).

>>> pop = DecayedPopularity(half_life_ms=1000)
>>> pop.learn_one("a", 0, segments=("vip",))
>>> pop.learn_one("b", 1000, weight=1.5)
>>> [(i, round(s, 3)) for i, s in pop.top(2, now=1000)]
[('b', 1.5), ('a', 0.5)]
>>> pop.top(5, segment="vip", now=2000)
[('a', 0.25)]
>>> pop.top(5, exclude={"b"}, now=1000)
[('a', 0.5)]
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Container, Iterable

OVERALL = ""  # the table of all events; segment names are never empty
# Largest exponent a decayed count may have. ``level - now / half_life`` is at most log2(total weight)
# for events at or before ``now``; it is larger only for events after ``now`` (other partitions ahead, an
# older user's turn in a years-long replay), where ``2 **`` would overflow past 1024. No real total
# weight reaches 2**64, so the clamp changes no legitimate score.
MAX_EXPONENT = 64.0


def _decayed(level: float, ref: float) -> float:
    """``2 ** (level - ref)``, clamped so it stays finite for any event-time span.

    >>> _decayed(3.0, 1.0), _decayed(5_000.0, 1.0) == 2.0 ** MAX_EXPONENT, _decayed(1.0, 5_000.0)
    (4.0, True, 0.0)
    """
    return math.pow(2.0, min(level - ref, MAX_EXPONENT))


def _merge(level: float | None, x: float) -> float:
    """``log2(2**level + 2**x)`` without overflow."""
    if level is None:
        return x
    hi, lo = (level, x) if level >= x else (x, level)
    return hi + math.log2(1.0 + 2.0 ** (lo - hi))


class _Table:
    """Levels of the items of one segment plus the exact top board, kept sorted.

    Every event changes a board (the overall one almost always), and every recommendation reads several:
    the board is a list sorted as ``(level, item)`` ascending, updated in place by bisection, rather than
    re-sorted per read (measured: that sort and its generator were a third of ``top``).
    """

    __slots__ = ("board", "board_size", "levels")

    def __init__(self, board_size: int) -> None:
        self.levels: dict[str, float] = {}
        self.board: list[tuple[float, str]] = []  # (level, item) ascending: the minimum first, the leader last
        self.board_size = board_size

    def add(self, item: str, x: float) -> float:
        level = _merge(self.levels.get(item), x)
        self.set_level(item, level)
        return level

    def set_level(self, item: str, level: float) -> None:
        """Levels only go up, which keeps the board exact (an item enters by beating its minimum)."""
        old = self.levels.get(item)
        self.levels[item] = level
        board = self.board
        if old is not None:
            at = bisect_left(board, (old, item))
            if at < len(board) and board[at] == (old, item):
                del board[at]
                insort(board, (level, item))
                return
        if len(board) < self.board_size:
            insort(board, (level, item))
        elif (level, item) > board[0]:
            del board[0]
            insort(board, (level, item))

    def remove(self, item: str) -> None:
        level = self.levels.pop(item, None)
        if level is None:
            return
        at = bisect_left(self.board, (level, item))
        if at < len(self.board) and self.board[at] == (level, item):
            self.rebuild_board()

    def rebuild_board(self) -> None:
        self.board = sorted(heapq.nlargest(self.board_size, ((v, k) for k, v in self.levels.items())))

    def top(self, n: int, exclude: Container[str]) -> list[tuple[str, float]]:
        out = []
        for v, k in reversed(self.board):
            if k not in exclude:
                out.append((k, v))
                if len(out) == n:
                    break
        if len(out) < n and len(self.levels) > len(self.board):
            # The exclusions ate into the board: fall back to a full scan (rare; bounded by the table).
            ranked = heapq.nlargest(n + len(self.board) + 32, ((v, k) for k, v in self.levels.items()))
            out = [(k, v) for v, k in ranked if k not in exclude][:n]
        return out


class DecayedPopularity:
    """Time-decayed item popularity, overall and per named segment.

    ``half_life_ms``: event-time half-life. ``board_size``: how many leaders each table tracks exactly.
    ``segment_cap``: items kept per segment table (the overall table is bounded by the caller, which
    removes items it evicts).
    """

    def __init__(self, half_life_ms: int, board_size: int = 100, segment_cap: int = 1000) -> None:
        if half_life_ms <= 0:
            raise ValueError(f"half_life_ms must be > 0, got {half_life_ms}")
        self.half_life_ms = half_life_ms
        self.board_size = board_size
        self.segment_cap = segment_cap
        self.tables: dict[str, _Table] = {OVERALL: _Table(board_size)}
        # item -> names of the tables holding it: export and removal touch only those, not every table
        self._tables_of: dict[str, dict[str, None]] = {}
        self._dropped: set[str] = set()  # items whose segment levels a trim removed (their state changed)

    def learn_one(self, item_id: str, timestamp: int, weight: float = 1.0, segments: Iterable[str] = ()) -> None:
        if weight <= 0:
            return
        x = math.log2(weight) + timestamp / self.half_life_ms
        self.tables[OVERALL].add(item_id, x)
        names = self._tables_of.get(item_id)
        if names is None:
            names = self._tables_of[item_id] = {OVERALL: None}
        for segment in segments:
            table = self.tables.get(segment)
            if table is None:
                table = self.tables[segment] = _Table(self.board_size)
            table.add(item_id, x)
            names[segment] = None
            if len(table.levels) > self.segment_cap + max(1, self.segment_cap // 8):
                self._trim(segment, table)

    def _trim(self, name: str, table: _Table) -> None:
        keep = heapq.nlargest(self.segment_cap, ((v, k) for k, v in table.levels.items()))
        kept = {k for _, k in keep}
        dropped = [k for k in table.levels if k not in kept]
        for item_id in dropped:
            self._tables_of[item_id].pop(name, None)
        self._dropped.update(dropped)
        table.levels = {k: v for v, k in keep}
        table.rebuild_board()

    def take_dropped(self) -> set[str]:
        """Items whose per-segment levels were trimmed since the last call (to persist them again)."""
        dropped, self._dropped = self._dropped, set()
        return dropped

    def top(
        self, k: int, segment: str | None = None, exclude: Container[str] = (), now: int | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` most popular items as ``(item_id, decayed count at now)``; ``[]`` for an unknown segment.

        ``now`` defaults to the scale of the leader (scores are then relative to it).
        """
        table = self.tables.get(OVERALL if segment is None else segment)
        if table is None:
            return []
        board = table.board
        if not exclude and (k <= len(board) or len(table.levels) == len(board)):
            # Nothing to skip (most users bought nothing): the board's last k, at C speed. ~4 tables per list.
            ranked = [(item, level) for level, item in reversed(board[-k:])] if k > 0 else []
        else:
            ranked = table.top(k, exclude)
        if not ranked:
            return []
        ref = ranked[0][1] if now is None else now / self.half_life_ms
        if ranked[0][1] - ref <= MAX_EXPONENT:  # the leader is the largest: no clamp for any (_decayed)
            return [(item, 2.0 ** (level - ref)) for item, level in ranked]
        return [(item, _decayed(level, ref)) for item, level in ranked]

    def score(self, item_id: str, now: int, segment: str | None = None) -> float:
        table = self.tables.get(OVERALL if segment is None else segment)
        level = None if table is None else table.levels.get(item_id)
        return 0.0 if level is None else _decayed(level, now / self.half_life_ms)

    def level(self, item_id: str) -> float | None:
        """The item's overall forward-decay level (comparable across items; None = never seen)."""
        return self.tables[OVERALL].levels.get(item_id)

    # -- persistence: an item's levels live in its own payload -------------------------------------
    def export_item(self, item_id: str) -> dict[str, float]:
        """``{segment: level}`` of the item (overall under ``""``)."""
        tables = self.tables
        return {name: tables[name].levels[item_id] for name in self._tables_of.get(item_id, ())}

    def import_item(self, item_id: str, levels: dict[str, float]) -> None:
        names = self._tables_of.setdefault(item_id, {})
        for name, level in levels.items():
            names[name] = None
            table = self.tables.get(name)
            if table is None:
                table = self.tables[name] = _Table(self.board_size)
            if item_id in table.levels:  # replacing a level may lower it: recompute the board
                table.levels[item_id] = level
                table.rebuild_board()
            else:
                table.set_level(item_id, level)

    def remove_item(self, item_id: str) -> None:
        for name in self._tables_of.pop(item_id, ()):
            table = self.tables[name]
            table.remove(item_id)
            if name != OVERALL and not table.levels:
                del self.tables[name]
