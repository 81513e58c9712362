"""Baselines a user would pick instead of a recommender: repeat the last items, and item-KNN on the last item.

Both learn one interaction at a time and recommend a ranked list of item ids, like the hybrid recommender
(``operators.recommender``) and popularity (``operators.popularity``), so an evaluation replays all of
them on the same events and compares like with like. ``ItemCoOccurrence`` is also the hybrid's
item-to-item neighbour source: the baseline and the model share one implementation.

``RepeatRecent``: the user's last ``n`` distinct items, newest first.

>>> repeat = RepeatRecent(n=3)
>>> for item in ["a", "b", "a", "c", "d"]:
...     repeat.learn_one("u", item)
>>> repeat.recommend("u", k=10)
['d', 'c', 'a']

``ItemCoOccurrence``: items that appeared in the same user's recent window (``window`` items), scored by
cosine of co-occurrence counts (``n(a, b) / sqrt(n(a) * n(b))``); recommendations are the neighbours of
the user's last item.

>>> knn = ItemCoOccurrence(window=2)
>>> for user, item in [("u", "a"), ("u", "b"), ("v", "a"), ("v", "b"), ("w", "a"), ("w", "c")]:
...     knn.learn_one(user, item)
>>> [(item, round(score, 3)) for item, score in knn.similar("a", k=5)]
[('b', 0.816), ('c', 0.577)]
>>> knn.learn_one("x", "a")
>>> knn.recommend("x", k=1)
['b']
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Container, Iterable, Mapping


class RepeatRecent:
    """The user's last ``n`` distinct items, newest first; forgets the least recent users past ``max_users``."""

    def __init__(self, n: int = 10, max_users: int = 100_000) -> None:
        self.n, self.max_users = n, max_users
        self.history: OrderedDict[str, list[str]] = OrderedDict()

    def learn_one(self, user_id: str, item_id: str) -> None:
        items = self.history.pop(user_id, [])
        if item_id in items:
            items.remove(item_id)
        items.append(item_id)
        del items[: -self.n]
        self.history[user_id] = items
        if len(self.history) > self.max_users:
            self.history.popitem(last=False)

    def recommend(self, user_id: str, k: int, exclude: Container[str] = ()) -> list[str]:
        items = self.history.get(user_id, [])
        return [i for i in reversed(items) if i not in exclude][:k]


class ItemCoOccurrence:
    """Item-to-item co-occurrence within each user's last ``window`` items (item-KNN).

    Memory is bounded: each item keeps at most ``max_neighbours`` counts (the smallest are dropped in a
    batch when it holds twice that), and users beyond ``max_users`` are forgotten least recent first.
    """

    def __init__(self, window: int = 5, max_neighbours: int = 100, max_users: int = 100_000) -> None:
        self.window, self.max_neighbours, self.max_users = window, max_neighbours, max_users
        self.counts: dict[str, dict[str, float]] = {}
        self.occurrences: dict[str, float] = {}
        self.recent = RepeatRecent(window, max_users)

    def learn_one(self, user_id: str, item_id: str) -> None:
        self.learn_context(item_id, self.recent.history.get(user_id, ()))
        self.recent.learn_one(user_id, item_id)

    def learn_context(self, item_id: str, context: Iterable[str]) -> set[str]:
        """Count ``item_id`` once and once with each item of ``context`` (the user's window before it);
        returns the items whose counts changed (for incremental persistence)."""
        self.occurrences[item_id] = self.occurrences.get(item_id, 0.0) + 1.0
        touched = {item_id}
        for other in context:
            if other != item_id:
                self._count(other, item_id)
                self._count(item_id, other)
                touched.add(other)
        return touched

    def _count(self, a: str, b: str) -> None:
        row = self.counts.setdefault(a, {})
        row[b] = row.get(b, 0.0) + 1.0
        if len(row) > 2 * self.max_neighbours:
            keep = sorted(row.items(), key=lambda e: (-e[1], e[0]))[: self.max_neighbours]
            self.counts[a] = dict(keep)

    def similar_to_profile(
        self, profile: Mapping[str, float], k: int, exclude: Container[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` items with the highest weighted sum of similarities to the profile's items."""
        scores: dict[str, float] = {}
        for item, weight in profile.items():
            row = self.counts.get(item)
            if not row:
                continue
            n_a = self.occurrences.get(item, 1.0)
            for other, count in row.items():
                if other not in exclude:
                    scores[other] = scores.get(other, 0.0) + weight * count / math.sqrt(
                        n_a * self.occurrences.get(other, 1.0)
                    )
        if len(scores) > 8 * k:
            return heapq.nsmallest(k, scores.items(), key=_by_score_then_id)
        # nsmallest's heap costs more than a sort below a few hundred candidates (the usual case); same order
        return sorted(scores.items(), key=_by_score_then_id)[:k]

    def export_item(self, item_id: str) -> tuple[float, dict[str, float]]:
        return self.occurrences.get(item_id, 0.0), dict(self.counts.get(item_id, {}))

    def import_item(self, item_id: str, occurrences: float, row: Mapping[str, float]) -> None:
        if occurrences:
            self.occurrences[item_id] = occurrences
        if row:
            self.counts[item_id] = dict(row)

    def remove_item(self, item_id: str) -> None:
        """Forget the item's own counts (neighbours that still name it keep their entry until trimmed)."""
        self.occurrences.pop(item_id, None)
        self.counts.pop(item_id, None)

    def similar(self, item_id: str, k: int, exclude: Container[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` items most often seen near ``item_id``, by cosine, ties by id."""
        row = self.counts.get(item_id)
        if not row:
            return []
        n_a = self.occurrences.get(item_id, 1.0)
        scored = [
            (other, count / math.sqrt(n_a * self.occurrences.get(other, 1.0)))
            for other, count in row.items() if other not in exclude
        ]
        scored.sort(key=lambda e: (-e[1], e[0]))
        return scored[:k]

    def last_item(self, user_id: str) -> str | None:
        items = self.recent.history.get(user_id)
        return items[-1] if items else None

    def recommend(self, user_id: str, k: int, exclude: Container[str] = ()) -> list[str]:
        last = self.last_item(user_id)
        return [] if last is None else [item for item, _ in self.similar(last, k, exclude)]


def _by_score_then_id(entry: tuple[str, float]) -> tuple[float, str]:
    return -entry[1], entry[0]
