"""Next-item prediction, Tailor against the baselines a user would pick instead, on the same events.

``Contest`` replays one stream test-then-learn: before an event (user u, item i) is learned, every
contender ranks items for u and scores a hit at k if i is in its top k. The contenders:

* ``tailor``   -- the hybrid recommender (the caller passes its list, so it runs exactly as configured);
* ``repeat``   -- the user's last 10 distinct items (``operators.next_item_baselines.RepeatRecent``);
* ``item-knn`` -- co-occurrence neighbours of the user's last item (``ItemCoOccurrence``, window 5);
* ``popular``  -- time-decayed popularity with the recommender's half-life (``operators.popularity``).

Every event also lands in one of two groups: ``repeat item`` (u interacted with i before) or
``novel item`` (never), so a model that only repeats the history shows up as such.

>>> contest = Contest(ks=(2,), half_life_ms=1_000_000)
>>> for user, item in [("u", "a"), ("v", "a"), ("v", "b"), ("u", "b")]:
...     contest.test(user, item, ["a"], groups=("all",), now=0)
...     contest.learn(user, item, now=0)
>>> contest.recall("all", 2)
{'tailor': 0.5, 'repeat': 0.0, 'item-knn': 0.25, 'popular': 0.5}
>>> contest.recall("novel item", 2)["popular"]
0.5
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

from evaluation.replay_metrics import NextItemHits
from operators.next_item_baselines import ItemCoOccurrence, RepeatRecent
from operators.popularity import DecayedPopularity

CONTENDERS = ("tailor", "repeat", "item-knn", "popular")
BASELINES = CONTENDERS[1:]
REPEAT_ITEM, NOVEL_ITEM = "repeat item", "novel item"


class Contest:
    def __init__(self, ks: Sequence[int], half_life_ms: int, repeat_n: int = 10, knn_window: int = 5) -> None:
        self.ks = tuple(ks)
        self.repeat = RepeatRecent(repeat_n)
        self.knn = ItemCoOccurrence(knn_window)
        self.popular = DecayedPopularity(half_life_ms, board_size=max(100, 2 * max(self.ks)))
        self.history: dict[str, set[str]] = {}
        self.hits = {name: NextItemHits(self.ks) for name in CONTENDERS}

    def test(
        self, user: str, item: str, tailor: Sequence[str], groups: Iterable[str], now: int,
        exclude: Container[str] = (),
    ) -> None:
        """Score every contender on the event before it is learned; ``tailor`` is Tailor's ranked list."""
        k = max(self.ks)
        kind = REPEAT_ITEM if item in self.history.get(user, ()) else NOVEL_ITEM
        groups = (*groups, kind)
        ranked = {
            "tailor": tailor,
            "repeat": self.repeat.recommend(user, k, exclude),
            "item-knn": self.knn.recommend(user, k, exclude),
            "popular": [i for i, _ in self.popular.top(k, None, exclude, now)],
        }
        for name, items in ranked.items():
            self.hits[name].update(list(items), item, groups)

    def learn(self, user: str, item: str, now: int, weight: float = 1.0) -> None:
        self.history.setdefault(user, set()).add(item)
        self.repeat.learn_one(user, item)
        self.knn.learn_one(user, item)
        if weight > 0:
            self.popular.learn_one(item, now, weight)

    def recall(self, group: str, k: int) -> dict[str, float]:
        return {name: hits.row(group)[f"recall@{k}"] for name, hits in self.hits.items()}

    def groups(self) -> list[str]:
        return self.hits["tailor"].groups()

    def table(self, k: int = 10) -> tuple[list[str], list[list[object]]]:
        """Headers and rows: per group, events, Recall@k of each contender, Tailor / best baseline."""
        headers = ["group", "events", *(f"{name} R@{k}" for name in CONTENDERS), "tailor / best baseline"]
        rows: list[list[object]] = []
        for group in self.groups():
            recall = self.recall(group, k)
            best = max(recall[name] for name in BASELINES)
            ratio = recall["tailor"] / best if best else float("inf")
            rows.append([group, self.hits["tailor"].row(group)["events"], *recall.values(), round(ratio, 2)])
        return headers, rows
