"""The recommender sharded by user (``operators.model_updates``) against the single one, on the same events.

For each dataset the ratings or events are replayed test-then-learn, once through one recommender and
once through ``--replicas`` replicas that each own the users hashing to them and exchange their item-side
updates every ``--exchange-every`` interactions (the staleness; the job would exchange once per
checkpoint). Rows:

* MovieLens-100K RMSE (explicit ratings, the ``movielens`` settings; clipped to 1..5);
* MovieLens-100K next movie Recall@10 (implicit feedback, never a movie already rated);
* Taobao next interaction Recall@10, overall and on novel items (no rule segments).

Cost columns (thread CPU time, µs per interaction): the busiest replica's own work (learning its users'
side and recommending for them), its share of the exchange (applying every replica's updates), and the
wire (encoding and decoding ``tailor.model_update/1``, bytes per update). ``speedup`` = the single
recommender's CPU time over the busiest replica's: what N task slots could gain on the recommender alone,
before the network and the rest of the hub.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import Any

import orjson

from connectors.catalog_files import read_movielens_items, read_taobao_items
from connectors.taobao_csv import RejectedRow, read_taobao
from evaluation.movielens import DATA as MOVIELENS
from evaluation.movielens import movielens_section, read_ratings
from evaluation.next_item import NOVEL_ITEM, Contest
from evaluation.replay_metrics import RatingErrors, markdown_table, print_table, write_results
from evaluation.taobao import DATA as TAOBAO
from evaluation.taobao import config_with, models_section
from operators.model_updates import RecommenderReplicas, owner_of
from operators.normalize import normalize
from operators.recommender import RecommenderConfig
from settings import PROJECT_ROOT, Settings
from settings.progress import progress_bar
from state_schemas import model_update
from state_schemas.catalog_item import CatalogItem

HELP = "the recommender sharded by user with exchanged item-side updates vs the single one: quality and CPU"
ALL_TIME_MS = 100 * 365 * 86_400_000  # MovieLens next movie: popularity as plain counts (evaluation.movielens_next)
# (user, item, event name, event time ms, category, rating or None)
Interaction = tuple[str, str, str, int, str | None, float | None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", type=int, default=2, help="replicas to shard users over (default 2)")
    parser.add_argument("--exchange-every", default="1,100,1000", metavar="N[,N...]",
                        help="interactions between exchanges, one row each (default 1,100,1000)")
    parser.add_argument("--datasets", default="movielens-rmse,movielens-next,taobao", metavar="NAME[,NAME...]",
                        help="which replays (default all three)")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N interactions of each")
    parser.add_argument("--read-own-writes", action="store_true",
                        help="each replica applies its own updates at once (the exchange brings the others')")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _movielens(limit: int | None, rating: bool) -> tuple[list[Interaction], list[CatalogItem]]:
    rows: list[Interaction] = [(u, i, "product_viewed", ts * 1000, None, r if rating else None)
                               for u, i, r, ts in read_ratings(MOVIELENS, limit)]
    return rows, list(read_movielens_items(MOVIELENS))


def _taobao(limit: int | None) -> tuple[list[Interaction], list[CatalogItem]]:
    rows: list[Interaction] = []
    for row in read_taobao(TAOBAO, now_ms=int(time.time() * 1000)):
        if isinstance(row, RejectedRow):
            continue
        event = normalize(orjson.dumps(row.event))
        assert event.item_id is not None
        rows.append((event.user_key, event.item_id, event.name, event.timestamp, event.category, None))
        if limit is not None and len(rows) >= limit:
            break
    return rows, list(read_taobao_items(TAOBAO))


class _Scores:
    """What one replay measures: RMSE (ratings) or Recall@10 overall and on novel items (``Contest``)."""

    def __init__(self, rating: bool, half_life_ms: int, exclude_seen: bool) -> None:
        self.errors = RatingErrors() if rating else None
        self.contest = None if rating else Contest((10,), half_life_ms)
        self.exclude_seen = exclude_seen
        self.seen: dict[str, set[str]] = {}

    def test(self, replicas: RecommenderReplicas, x: Interaction) -> None:
        user, item, _, now, _, rating = x
        if self.errors is not None:
            assert rating is not None
            self.errors.update(min(5.0, max(1.0, replicas.owner(user).mf.predict_one(user, item))), rating)
            return
        assert self.contest is not None
        exclude = self.seen.setdefault(user, set()) if self.exclude_seen else ()
        recs = replicas.recommend(user, k=10, now=now, exclude=exclude)
        self.contest.test(user, item, [r.item_id for r in recs], ("all",), now=now, exclude=exclude)

    def learn(self, x: Interaction, weight: float) -> None:
        if self.contest is not None:
            self.contest.learn(x[0], x[1], x[3], weight)
            if self.exclude_seen:
                self.seen[x[0]].add(x[1])

    def row(self) -> dict[str, float]:
        if self.errors is not None:
            return {"rmse": self.errors.rmse}
        assert self.contest is not None
        return {"recall@10": self.contest.recall("all", 10)["tailor"],
                "novel recall@10": self.contest.recall(NOVEL_ITEM, 10)["tailor"]}


def replay(
    config: RecommenderConfig, stream: list[Interaction], catalog: list[CatalogItem], replicas: int,
    exchange_every: int, scores: _Scores, quiet: bool = True, label: str = "", read_own_writes: bool = False,
) -> dict[str, Any]:
    """Test-then-learn through ``replicas`` replicas; quality (``scores``) and CPU per replica."""
    shards = RecommenderReplicas(config, replicas, read_own_writes)
    for item in catalog:
        shards.add_catalog_item(item)
    own = [0.0] * replicas  # learning and recommending for the replica's users
    applying = [0.0] * replicas
    wire, wire_bytes, updates = 0.0, 0, 0
    bar = progress_bar(len(stream), label, "interactions", enabled=False if quiet else None)
    for x in stream:
        user, item, name, now, category, rating = x
        r = owner_of(user, replicas)
        start = time.thread_time()
        scores.test(shards, x)
        update = shards.learn_one(user, item, name, now, category, rating=rating)
        own[r] += time.thread_time() - start  # with read_own_writes: its own apply too
        if update is not None:
            start = time.thread_time()
            payload = model_update.encode(update)
            model_update.decode(payload)
            wire += time.thread_time() - start
            wire_bytes += len(payload)
            updates += 1
        if shards.pending >= exchange_every:
            applying = [a + s for a, s in zip(applying, shards.exchange(), strict=True)]
        scores.learn(x, config.event_weights.get(name, 0.0) if rating is None else rating)
        bar.update()
    applying = [a + s for a, s in zip(applying, shards.exchange(), strict=True)]
    bar.close()
    n = max(1, len(stream))
    busiest = max(range(replicas), key=lambda i: own[i] + applying[i])
    return {
        **scores.row(),
        "own_us": 1e6 * own[busiest] / n,
        "apply_us": 1e6 * applying[busiest] / n,
        # a replica decodes every update and encodes its own: about one encode + decode per update overall
        "wire_us": 1e6 * wire / n if replicas > 1 else 0.0,
        "bytes_per_update": wire_bytes / max(1, updates),
    }


DATASETS = ("movielens-rmse", "movielens-next", "taobao")


def dataset(name: str, settings: Settings, limit: int | None) -> tuple[RecommenderConfig, list[Interaction],
                                                                        list[CatalogItem]]:
    """The recommender config, the interactions and the catalog of one of ``DATASETS``."""
    if name == "movielens-rmse":
        return config_with(movielens_section(settings), []), *_movielens(limit, rating=True)
    if name == "movielens-next":
        return config_with(models_section(settings), []), *_movielens(limit, rating=False)
    return config_with(models_section(settings), []), *_taobao(limit)


def scores_for(name: str, config: RecommenderConfig) -> _Scores:
    if name == "movielens-rmse":
        return _Scores(True, 0, False)
    if name == "movielens-next":  # never a movie already rated; popularity as plain counts
        return _Scores(False, ALL_TIME_MS, True)
    return _Scores(False, config.half_life_ms, False)


def _rows(args: argparse.Namespace, settings: Settings) -> Iterator[list[Any]]:
    for name in args.datasets.split(","):
        config, stream, catalog = dataset(name, settings, args.limit)
        single = replay(config, stream, catalog, 1, 1, scores_for(name, config), args.quiet, f"{name} single")
        yield [name, "single", "-", *_cells(single, single)]
        for every in (int(n) for n in args.exchange_every.split(",")):
            sharded = replay(config, stream, catalog, args.replicas, every, scores_for(name, config), args.quiet,
                             f"{name} {args.replicas} replicas / {every}", args.read_own_writes)
            label = f"{args.replicas} replicas" + (", own writes at once" if args.read_own_writes else "")
            yield [name, label, every, *_cells(sharded, single)]


def _cells(r: dict[str, Any], single: dict[str, Any]) -> list[Any]:
    quality = [r.get("rmse", ""), r.get("recall@10", ""), r.get("novel recall@10", "")]
    busiest = r["own_us"] + r["apply_us"] + r["wire_us"]
    speedup = (single["own_us"] + single["apply_us"]) / busiest if busiest else 0.0
    return [*quality, round(r["own_us"]), round(r["apply_us"]), round(r["wire_us"]),
            round(r["bytes_per_update"]), round(speedup, 2)]


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.replicas < 2:
        raise SystemExit("--replicas must be at least 2 (the single recommender is always the first row)")
    unknown = [name for name in args.datasets.split(",") if name not in DATASETS]
    if unknown:
        raise SystemExit(f"--datasets: unknown {', '.join(unknown)}; known: {', '.join(DATASETS)}")
    try:
        every = [int(n) for n in args.exchange_every.split(",")]
    except ValueError:
        raise SystemExit(f"--exchange-every takes whole numbers, comma-separated: {args.exchange_every!r}") from None
    if min(every) < 1:
        raise SystemExit("--exchange-every: each value must be at least 1")
    headers = ["dataset", "recommender", "exchange every", "RMSE", "Recall@10", "novel Recall@10",
               "own µs", "apply µs", "wire µs", "bytes/update", "speedup"]
    rows = []
    for row in _rows(args, settings):
        rows.append(row)
        if args.quiet:
            continue
        print(" | ".join(str(c) for c in row), flush=True)
    print_table(headers, rows)
    payload = {"headers": headers, "rows": rows, "replicas": args.replicas}
    paths = write_results("recommender-replicas", payload, markdown_table(headers, rows))
    print("wrote " + ", ".join(str(p.relative_to(PROJECT_ROOT)) for p in paths))
    return 0
