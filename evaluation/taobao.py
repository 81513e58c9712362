"""Taobao sample: next-interaction Precision@k / Recall@k of the hybrid recommender vs the baselines.

Test-then-learn, event by event in file order: before learning event e of user u, recommend for u (with
u's rule segments at that moment, from the job's per-user step (``operators.segmentation_step``) on
``config/segments.yaml``); a hit at k if e's item is in the top k. The baselines, on the same events
(``evaluation.next_item``): repeat the user's last 10 distinct items, item-KNN on the last item, and the
trending list (same half-life and event weights); every group is split into repeat and novel items. The
catalog (item -> category) is loaded first, as the compacted catalog topic would be. Rows the CSV reader
rejects (the sample's last row is truncated) are counted and reported. Per-cluster rows: see ``CLUSTER_HOOK`` below.

Cost per event, in CPU time of this thread (steadier than wall time on a shared machine): ``recommend``
(the test), ``learn_one``, ``recommend_if_due`` and ``export`` -- the model hub's per-event path is the
last three: it persists every dirty user and item plus the globals after each event
(``replay_metrics.PersistedState`` does the same and reports payload bytes per user and item).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from connectors.catalog_files import read_taobao_items
from connectors.taobao_csv import RejectedRow, read_taobao
from evaluation import RESULTS_DIR
from evaluation.next_item import BASELINES, CONTENDERS, Contest
from evaluation.plots import bar_plot
from evaluation.replay_metrics import (
    PersistedState,
    Stopwatch,
    markdown_table,
    print_table,
    write_results,
)
from operators.models_config import ModelsConfig
from operators.normalize import normalize
from operators.recommender import HybridRecommender, RecommenderConfig
from operators.segment_rules import SegmentRules
from operators.segmentation_step import SegmentationStep
from settings import PROJECT_ROOT, Settings
from settings.progress import progress_bar
from state_schemas.segment_change import ENTER

HELP = "Taobao sample: next-interaction Recall@10, hybrid vs repeat / item-KNN / popularity, per segment"
DATA = PROJECT_ROOT.parent / "shared" / "data" / "taobao" / "user_behavior_sample.csv"
KS = (10, 20)
# Per-cluster rows: when the model hub replays the same events, pass each user's cluster name as one
# more group (``f"cluster:{name}"``) to ``NextItemHits.update``; the rows and plot pick it up unchanged.
CLUSTER_HOOK = "cluster:"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DATA, help="Taobao UserBehavior CSV")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N events (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recommendations setting, e.g. --set blend.mf=0.2 (YAML value)")
    parser.add_argument("--no-segments", action="store_true", help="skip rule segments (faster)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def config_with(section: dict[str, Any], overrides: list[str]) -> RecommenderConfig:
    """The models.yaml section with ``key=value`` / ``section.key=value`` overrides applied."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in section.items()}
    for override in overrides:
        key, _, raw = override.partition("=")
        value = yaml.safe_load(raw)
        if "." in key:
            head, sub = key.split(".", 1)
            merged.setdefault(head, {})[sub] = value
        else:
            merged[key] = value
    return RecommenderConfig.from_dict(merged)


def models_section(settings: Settings) -> dict[str, Any]:
    return ModelsConfig.from_yaml(settings.models_file).section("recommendations")


def replay(
    config: RecommenderConfig, data: Path = DATA, limit: int | None = None, segments: bool = True,
    quiet: bool = True,
) -> dict[str, Any]:
    """Replay the sample; returns per-group metrics of ``hybrid`` (Tailor), Recall@10 of every contender
    per group (``contest``), timings and state sizes."""
    rec = HybridRecommender(config)
    for item in read_taobao_items(data):
        rec.add_catalog_item(item)
    rec.take_dirty()
    contest = Contest(KS, config.half_life_ms)
    step = SegmentationStep(SegmentRules.from_yaml(PROJECT_ROOT / "config" / "segments.yaml")) if segments else None
    profiles: dict[str, Any] = {}
    user_segments: dict[str, set[str]] = {}
    sources: dict[str, int] = {}
    clock = Stopwatch()
    persisted = PersistedState()
    rejected: list[str] = []
    total = limit or 96_168
    bar = progress_bar(total, "taobao replay", enabled=False if quiet else None)
    n = 0
    for row in read_taobao(data, now_ms=int(time.time() * 1000)):
        if isinstance(row, RejectedRow):
            rejected.append(str(row))
            continue
        if limit is not None and n >= limit:
            break
        n += 1
        event = normalize(orjson.dumps(row.event))
        user, item = event.user_key, event.item_id
        assert item is not None
        segs = tuple(sorted(user_segments.get(user, ())))
        groups = ("all", *segs) if segs else ("all", "(no segment)")
        t0 = time.thread_time()
        recs = rec.recommend(user, k=max(KS), now=event.timestamp, segments=segs)
        t1 = time.thread_time()
        clock.add("recommend", t1 - t0)
        contest.test(user, item, [r.item_id for r in recs], groups, now=event.timestamp)
        for r in recs[:10]:
            sources[r.source] = sources.get(r.source, 0) + 1
        t2 = time.thread_time()
        rec.learn_one(user, item, event.name, event.timestamp, event.category, segs)
        t3 = time.thread_time()
        clock.add("learn_one", t3 - t2)
        rec.recommend_if_due(user, now=event.timestamp, segments=segs)
        t4 = time.thread_time()
        clock.add("recommend_if_due", t4 - t3)
        persisted.add(rec)  # what the model hub writes to Flink state after every event
        clock.add("export", time.thread_time() - t4)
        contest.learn(user, item, event.timestamp, config.event_weights.get(event.name, 0.0))
        out = step.on_event(profiles.get(user), event, emit_time=0) if step is not None else None
        if out is not None:
            profiles[user] = out.state
            for change in out.changes:
                members = user_segments.setdefault(user, set())
                (members.add if change.change == ENTER else members.discard)(change.segment)
        bar.set_postfix_str(f"recall@10 {contest.recall('all', 10)['tailor']:.4f}", refresh=False)
        bar.update()
    bar.close()
    return {
        "events": n,
        "rejected_rows": rejected,
        "hybrid": {g: contest.hits["tailor"].row(g) for g in contest.groups()},
        "contest": {g: contest.recall(g, 10) for g in contest.groups()},
        "sources_in_top10": sources,
        "us_per_call": clock.us_per_call(),
        "state_bytes": persisted.sizes(),
        "model_version": rec.model_version,
        "users_kept": len(rec.users),
        "items_kept": len(rec.items),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    config = config_with(models_section(settings), args.set)
    result = replay(config, args.data, args.limit, segments=not args.no_segments, quiet=args.quiet)
    headers = ["group", "events", "P@10", "R@20", *(f"{name} R@10" for name in CONTENDERS), "vs best baseline"]
    rows = []
    for group, h in result["hybrid"].items():
        recall = result["contest"][group]
        best = max(recall[name] for name in BASELINES)
        rows.append([group, h["events"], h["precision@10"], h["recall@20"], *(recall[n] for n in CONTENDERS),
                     round(recall["tailor"] / best, 2) if best else float("inf")])
    print_table(headers, rows)
    timing = result["us_per_call"]
    size = result["state_bytes"]
    cost = (f"µs per call: learn_one {timing['learn_one']:.0f}, recommend {timing['recommend']:.0f}, "
            f"recommend_if_due {timing['recommend_if_due']:.0f}, export per event {timing['export']:.0f}; "
            f"state bytes: user mean {size['mean_user']:.0f} / max {size['max_user']}, "
            f"item mean {size['mean_item']:.0f}")
    print(f"\n{cost}  (model {result['model_version']})")
    print(f"top-10 sources: {result['sources_in_top10']}")
    for line in result["rejected_rows"]:
        print(f"skipped {line}")
    result["config"] = dict(vars(config))
    markdown = markdown_table(headers, rows) + (
        f"\n\n{cost}; "
        f"{result['events']:,} events; skipped rows: {len(result['rejected_rows'])}; model {result['model_version']}"
    )
    paths = write_results("taobao-recommendations", result, markdown)
    groups = [r[0] for r in rows]
    paths.append(bar_plot(RESULTS_DIR / "taobao-recommendations.png", "Taobao next-interaction Recall@10",
                          "recall@10", groups, {name: [r[4 + n] for r in rows] for n, name in enumerate(CONTENDERS)}))
    print("wrote " + ", ".join(str(p.relative_to(PROJECT_ROOT)) for p in paths))
    return 0
