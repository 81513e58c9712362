"""MovieLens-100K as implicit feedback: which movie will a user rate next? Recall@10, Tailor vs the baselines.

Every rating is an interaction (weight 1, whatever the stars), replayed test-then-learn in timestamp order
(ties keep file order). Before a rating is learned each contender (``evaluation.next_item``) ranks movies
for its user, never one the user already rated -- the next movie is always a new one, so "repeat the
history" scores zero by construction and the test measures personalization. The catalog (titles,
genres as tags) is loaded first, as the catalog topic would be. Popularity here is the all-time count
(a half-life far longer than the data), which reaches Recall@10 0.077 -- the anchor the issue quotes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from connectors.catalog_files import read_movielens_items
from evaluation.movielens import DATA, read_ratings
from evaluation.next_item import BASELINES, CONTENDERS, Contest
from evaluation.replay_metrics import Stopwatch, markdown_table, print_table, write_results
from evaluation.taobao import config_with, models_section
from operators.recommender import HybridRecommender, RecommenderConfig
from settings import PROJECT_ROOT, Settings
from settings.progress import progress_bar

HELP = "MovieLens-100K next movie: Recall@10 of Tailor vs repeat / item-KNN / popularity (implicit feedback)"
KS = (10, 20)
ALL_TIME_MS = 100 * 365 * 86_400_000  # popularity half-life for the baseline: a century = plain counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DATA, help="MovieLens-100K directory (u.data, u.item)")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N ratings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recommendations setting, e.g. --set blend.mf=1.0")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def replay(
    config: RecommenderConfig, data: Path = DATA, limit: int | None = None, quiet: bool = True
) -> dict[str, Any]:
    """Test-then-learn over the ratings; Recall@10 per contender for ``all`` and the users' n-th rating."""
    ratings = read_ratings(data, limit)
    rec = HybridRecommender(config)
    for item in read_movielens_items(data):
        rec.add_catalog_item(item)
    rec.take_dirty()
    contest = Contest(KS, ALL_TIME_MS)
    rated: dict[str, set[str]] = {}
    sources: dict[str, int] = {}
    clock = Stopwatch()
    bar = progress_bar(len(ratings), "movielens next movie", "ratings", enabled=False if quiet else None)
    for user, item, _, ts in ratings:
        now = ts * 1000
        seen = rated.setdefault(user, set())
        history = "first 20 ratings" if len(seen) < 20 else "after 20 ratings"
        t0 = time.thread_time()
        recs = rec.recommend(user, k=max(KS), now=now, exclude=seen)
        clock.add("recommend", time.thread_time() - t0)
        contest.test(user, item, [r.item_id for r in recs], ("all", history), now=now, exclude=seen)
        for r in recs[:10]:
            if r.item_id == item:
                sources[r.source] = sources.get(r.source, 0) + 1
        t1 = time.thread_time()
        rec.learn_one(user, item, "product_viewed", now)
        rec.take_dirty()
        clock.add("learn_one", time.thread_time() - t1)
        contest.learn(user, item, now)
        seen.add(item)
        bar.update()
    bar.close()
    return {
        "ratings": len(ratings),
        "recall@10": {g: contest.recall(g, 10) for g in contest.groups()},
        "recall@20": {g: contest.recall(g, 20) for g in contest.groups()},
        "hit_sources@10": sources,
        "us_per_call": clock.us_per_call(),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    config = config_with(models_section(settings), args.set)
    result = replay(config, args.data, args.limit, args.quiet)
    headers = ["group", *(f"{name} R@10" for name in CONTENDERS), "vs popular", "vs best baseline"]
    rows = []
    for group, recall in result["recall@10"].items():
        best = max(recall[name] for name in BASELINES)
        rows.append([group, *(recall[n] for n in CONTENDERS),
                     round(recall["tailor"] / recall["popular"], 2) if recall["popular"] else float("inf"),
                     round(recall["tailor"] / best, 2) if best else float("inf")])
    print_table(headers, rows)
    timing = result["us_per_call"]
    summary = (f"{result['ratings']:,} ratings; Tailor's hits by source: {result['hit_sources@10']}; "
               f"µs per call: recommend {timing['recommend']:.0f}, learn_one {timing['learn_one']:.0f}")
    print("\n" + summary)
    result["config"] = dict(vars(config))
    paths = write_results("movielens-next-movie", result, markdown_table(headers, rows) + "\n\n" + summary)
    print("wrote " + ", ".join(str(p.relative_to(PROJECT_ROOT)) for p in paths))
    return 0
