"""Shared pieces of the replay evaluations: running metrics, timing and result files (progress bars:
:mod:`settings.progress`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evaluation import RESULTS_DIR


class RatingErrors:
    """Running RMSE and MAE of predicted vs true ratings.

    >>> e = RatingErrors(); e.update(3.0, 4.0); e.update(5.0, 5.0)
    >>> round(e.rmse, 4), e.mae
    (0.7071, 0.5)
    """

    def __init__(self) -> None:
        self.n, self.se, self.ae = 0, 0.0, 0.0

    def update(self, y_pred: float, y_true: float) -> None:
        self.n += 1
        self.se += (y_pred - y_true) ** 2
        self.ae += abs(y_pred - y_true)

    @property
    def rmse(self) -> float:
        return math.sqrt(self.se / self.n) if self.n else float("nan")

    @property
    def mae(self) -> float:
        return self.ae / self.n if self.n else float("nan")


class NextItemHits:
    """Precision@k / Recall@k of next-interaction prediction, per group (one relevant item per event).

    Recall@k = share of events whose item is in the top k; Precision@k = hits / (events * k).

    >>> h = NextItemHits((1, 2)); h.update(["a", "b"], "b", groups=("all",)); h.update(["c"], "b", groups=("all",))
    >>> h.row("all")
    {'events': 2, 'precision@1': 0.0, 'recall@1': 0.0, 'precision@2': 0.25, 'recall@2': 0.5}
    """

    def __init__(self, ks: Sequence[int] = (10, 20)) -> None:
        self.ks = tuple(ks)
        self.events: dict[str, int] = {}
        self.hits: dict[str, list[int]] = {}

    def update(self, recommended: Sequence[str], target: str, groups: Iterable[str]) -> None:
        try:
            rank = recommended.index(target)
        except ValueError:
            rank = None
        for g in groups:
            self.events[g] = self.events.get(g, 0) + 1
            hits = self.hits.setdefault(g, [0] * len(self.ks))
            if rank is not None:
                for n, k in enumerate(self.ks):
                    if rank < k:
                        hits[n] += 1

    def row(self, group: str) -> dict[str, Any]:
        n = self.events.get(group, 0)
        out: dict[str, Any] = {"events": n}
        for k, hits in zip(self.ks, self.hits.get(group, [0] * len(self.ks)), strict=True):
            out[f"precision@{k}"] = hits / (n * k) if n else 0.0
            out[f"recall@{k}"] = hits / n if n else 0.0
        return out

    def groups(self) -> list[str]:
        return sorted(self.events, key=lambda g: -self.events[g])


class Stopwatch:
    """Accumulated microseconds per call of a named step."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, seconds: float) -> None:
        self.total[name] = self.total.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + 1

    def us_per_call(self) -> dict[str, float]:
        return {n: 1e6 * self.total[n] / self.calls[n] for n in self.total}


class PersistedState:
    """What the model hub writes to Flink state after each event: every dirty user and item payload (and
    the globals), evicted ones deleted. Keeps the latest payload size per id, to report bytes per user/item.

    >>> from operators.recommender import HybridRecommender, RecommenderConfig
    >>> rec = HybridRecommender(RecommenderConfig()); rec.learn_one("u", "i", "product_viewed", 0)
    >>> state = PersistedState(); state.add(rec); sorted(state.sizes())
    ['globals', 'items', 'max_user', 'mean_item', 'mean_user', 'users']
    """

    def __init__(self) -> None:
        self.users: dict[str, int] = {}
        self.items: dict[str, int] = {}
        self.globals = 0

    def add(self, rec: Any) -> None:
        dirty_users, dirty_items = rec.take_dirty()
        evicted_users, evicted_items = rec.take_evicted()
        for user in dirty_users - evicted_users:
            self.users[user] = len(rec.export_user(user))
        for item in dirty_items - evicted_items:
            self.items[item] = len(rec.export_item(item))
        for user in evicted_users:
            self.users.pop(user, None)
        for item in evicted_items:
            self.items.pop(item, None)
        self.globals = len(rec.export_globals())

    def sizes(self) -> dict[str, float]:
        users, items = self.users.values(), self.items.values()
        return {
            "users": len(users), "mean_user": sum(users) / max(1, len(users)), "max_user": max(users, default=0),
            "items": len(items), "mean_item": sum(items) / max(1, len(items)), "globals": self.globals,
        }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """
    >>> print(markdown_table(["a", "b"], [[1, 0.12345]]))
    | a | b |
    |---|---|
    | 1 | 0.1235 |
    """

    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    text = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in text:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def write_results(name: str, payload: dict[str, Any], markdown: str, out_dir: Path = RESULTS_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text(markdown + "\n")
    return [json_path, md_path]
