"""``tailor evaluate clusters``: compare KMeans, STREAMKMeans and DBSTREAM as ML segments on Taobao.

The replay runs the job's own code: Taobao rows -> ``operators.normalize`` -> the job's per-user step
(``operators.segmentation_step``, the rules in config/segments.yaml, so features see the same sessions;
its model input carries the behavior features) -> ``BehaviorClusterer.learn_one`` then ``predict_one``
-> ``cluster_changes``, event by event. For each algorithm (the ``clustering:`` settings of
config/models.yaml, algorithm swapped):

* **silhouette** of the final model's assignment of every user's latest feature vector (z-scaled), on a
  seeded sample of users (exact silhouette is quadratic);
* **µs per learn / predict** (``learn_one`` / ``predict_one`` of the clusterer, scaling included);
* **ARI run vs run**: adjusted Rand index of the final assignments of two runs with different seeds
  (DBSTREAM has no seed: it is deterministic, so 1.0 by construction);
* **ARI p1 vs p2**: parallelism 2 simulated: users hashed into 2 partitions, each partition's events in
  order, the two streams merged in a different (seeded, random block) interleaving, as the single model
  hub would receive them from two upstream subtasks. Both runs learn in the order the hub's clusterer
  does (``learning_order``: each input waits for the watermark, the least of the partitions' event times
  minus ``out_of_orderness_ms``, then (event time, user) order, ``operators.event_time_order``), so the
  interleaving changes only what arrives behind the watermark;
* cluster switches per 1k events, with the hysteresis margin and without it (a replay at margin 0);
* **stability**: switches per user per active day, and the share of switches reverted within an hour
  (A -> B, then B -> A within 60 min: churn, not a change of behavior); ``--hysteresis`` sweeps the
  margin for the configured algorithm and prints these next to ARI p1/p2, to choose it by measurement;
* cluster sizes, and each cluster's name and z-scores.

Writes ``clusters-<time>.json``, ``.md`` and ``.png`` into evaluation-results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from operators.behavior_clusters import BehaviorClusterer, ClusteringConfig
from operators.behavior_features import FEATURE_NAMES
from operators.cluster_segments import cluster_changes
from operators.event_time_order import EventTimeOrder
from operators.models_config import ModelsConfig
from operators.normalize import InvalidEvent, normalize
from operators.segment_rules import SegmentRules
from operators.segmentation_step import SegmentationStep
from settings import PROJECT_ROOT
from settings.progress import Bar, progress_bar

HELP = "ML segments on Taobao: KMeans vs STREAMKMeans vs DBSTREAM (silhouette, speed, stability)"
TAOBAO = PROJECT_ROOT.parent / "shared" / "data" / "taobao" / "user_behavior_sample.csv"
ALGORITHMS = ("kmeans", "streamkmeans", "dbstream")

# (user_id, event time, feature vector) in the order the model hub sees them
FeatureEvent = tuple[str, int, dict[str, float]]
Arrival = tuple[int, FeatureEvent]  # (upstream partition, event)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=TAOBAO, help="Taobao UserBehavior CSV")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N rows (0 = all)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated algorithms to compare")
    parser.add_argument("--sample", type=int, default=4_000, help="users sampled for the silhouette")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default evaluation-results/)")
    parser.add_argument("--simulated", type=int, default=0, metavar="USERS",
                        help="replay `tailor demo`'s simulated shoppers instead of Taobao: this many users, 100 "
                             "events/s for 75 s, its rules (config/demo-segments.yaml) and its 200-event warm-up")
    parser.add_argument("--hysteresis", default="", metavar="M1,M2,...",
                        help="also sweep these hysteresis margins (z units) for the first algorithm, e.g. 0,0.25,0.5,1")


def run(args: argparse.Namespace, settings: Any) -> int:
    from evaluation import RESULTS_DIR

    base = ModelsConfig.from_yaml(settings.models_file).clustering
    rules = SegmentRules.from_yaml(settings.segments_file)
    if args.simulated:
        base = dataclasses.replace(base, warmup_events=200)
        rules = SegmentRules.from_yaml(PROJECT_ROOT / "config" / "demo-segments.yaml")
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    if unknown := set(algorithms) - set(ALGORITHMS):
        print(f"error: unknown algorithm(s) {sorted(unknown)}; expected some of {ALGORITHMS}", file=sys.stderr)
        return 2
    if not args.data.exists():
        print(f"error: {args.data} does not exist (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    print(f"replaying {args.data} through the profile tracker ...", file=sys.stderr)
    with progress_bar(None, "features", "rows") as bar:  # rows read, reported every 5,000: no total to reach
        if args.simulated:
            from evaluation.simulator import ShopperSimulator

            simulated = ShopperSimulator(seed=7, users=args.simulated).events(int(time.time() * 1000), 100.0, 7_500)
            stream, rejected = feature_stream(simulated, rules, args.limit, progress=_advance(bar))
        else:
            stream, rejected = feature_stream(read_taobao_rows(args.data), rules, args.limit, progress=_advance(bar))
    print(f"{len(stream):,} events, {len({u for u, _, _ in stream}):,} users, {rejected} rows rejected",
          file=sys.stderr)
    results = []
    for a in algorithms:
        with progress_bar(len(stream), a) as bar:
            config = dataclasses.replace(base, algorithm=a)
            results.append(evaluate(config, stream, args.sample, _advance(bar), settings.out_of_orderness_ms))
            bar.update(len(stream) - bar.n)
    sweep = []
    for margin in [float(m) for m in args.hysteresis.split(",") if m.strip()]:
        config = dataclasses.replace(base, algorithm=algorithms[0], hysteresis=margin)
        with progress_bar(len(stream), f"hysteresis {margin}") as bar:
            sweep.append({"hysteresis": margin,
                          **_stability_row(config, stream, _advance(bar), settings.out_of_orderness_ms)})
    data = f"simulated shoppers ({args.simulated} users)" if args.simulated else args.data.name
    report = {"data": data, "events": len(stream), "rejected_rows": rejected,
              "config": dataclasses.asdict(base), "results": results, "hysteresis_sweep": sweep}
    table = markdown(report)
    print(table)
    out = args.out or RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"clusters-{time.strftime('%Y%m%dT%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    stem.with_suffix(".md").write_text(table)
    plot(report, stem.with_suffix(".png"))
    print(f"wrote {stem}.json, .md, .png", file=sys.stderr)
    return 0


# -- replay --------------------------------------------------------------------------------------------
def read_taobao_rows(path: Path) -> Iterator[dict[str, Any] | None]:
    """The CSV's rows as Segment-Spec events; ``None`` for a row the reader rejects."""
    from connectors.taobao_csv import TaobaoEvent, read_taobao

    for row in read_taobao(path):
        yield row.event if isinstance(row, TaobaoEvent) else None


def feature_stream(
    events: Iterable[dict[str, Any] | None], rules: SegmentRules, limit: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[FeatureEvent], int]:
    """Every good event as (user, time, features), exactly as the rule operator computes them; + rejects."""
    step = SegmentationStep(rules, model_inputs=True)
    states: dict[str, Any] = {}
    stream: list[FeatureEvent] = []
    rejected = 0
    for n, raw in enumerate(events, start=1):
        if limit and n > limit:
            break
        if raw is None:
            rejected += 1
            continue
        try:
            event = normalize(orjson.dumps(raw))
        except InvalidEvent:
            rejected += 1
            continue
        user = event.user_key
        out = step.on_event(states.get(user), event, emit_time=0)
        if out is None or out.model_input is None:
            continue  # a duplicate
        states[user] = out.state
        stream.append((user, event.timestamp, dict(zip(FEATURE_NAMES, out.model_input.features, strict=True))))
        if progress and n % 5_000 == 0:
            progress(n, limit)
    return stream, rejected


def parallelism_2(stream: Sequence[FeatureEvent], seed: int = 1) -> list[Arrival]:
    """The stream as a hub behind 2 upstream subtasks sees it: per-partition order, other interleaving.

    >>> s = [(u, t, {}) for t, u in enumerate("abcdabcd")]
    >>> sorted(e for _, e in parallelism_2(s)) == sorted(s), {p for p, _ in parallelism_2(s)}
    (True, {0, 1})
    """
    parts: list[list[FeatureEvent]] = [[], []]
    for e in stream:
        parts[zlib.crc32(e[0].encode()) % 2].append(e)
    rng = random.Random(seed)
    merged: list[Arrival] = []
    pos = [0, 0]
    while pos[0] < len(parts[0]) or pos[1] < len(parts[1]):
        p = rng.randrange(2) if pos[0] < len(parts[0]) and pos[1] < len(parts[1]) else int(pos[0] >= len(parts[0]))
        block = rng.randint(1, 500)  # one subtask's network buffer at a time
        merged.extend((p, e) for e in parts[p][pos[p]:pos[p] + block])
        pos[p] += block
    return merged


def learning_order(arrivals: Sequence[Arrival], partitions: int, out_of_orderness_ms: int = 5_000,
                   max_waiting: int = 100_000) -> list[FeatureEvent]:
    """The order the hub's clusterer learns ``(partition, event)`` arrivals in: an event waits until the
    watermark (the least over the partitions of their latest event time - out-of-orderness - 1, Flink's
    bounded out-of-orderness) passes it; one already behind it (late) is learned at once.

    >>> s = [(0, ("a", 9_000, {})), (1, ("b", 1_000, {})), (0, ("a", 12_000, {})), (1, ("b", 20_000, {}))]
    >>> [(u, t) for u, t, _ in learning_order(s, partitions=2)]
    [('b', 1000), ('a', 9000), ('a', 12000), ('b', 20000)]
    """
    latest: list[int | None] = [None] * partitions
    waiting: EventTimeOrder[FeatureEvent] = EventTimeOrder(max_waiting)
    order: list[FeatureEvent] = []
    watermark = -(1 << 62)
    for partition, event in arrivals:
        user, ts, _ = event
        seen = latest[partition]
        latest[partition] = ts if seen is None else max(seen, ts)
        if None not in latest:  # a partition without data holds event time back (it is not idle in a replay)
            watermark = max(watermark, min(t for t in latest if t is not None) - out_of_orderness_ms - 1)
        order.extend(e for _, e in waiting.pop_due(watermark))
        if ts <= watermark:
            order.append(event)
        else:
            waiting.push(user, ts, event)
    order.extend(e for _, e in waiting.pop_due(1 << 62))
    return order


def replay(config: ClusteringConfig, stream: Sequence[FeatureEvent], timed: bool = False,
           progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Test-then-learn the stream through the clusterer and the segment changes, as the model hub does."""
    clusterer = BehaviorClusterer(config)
    current: dict[str, str | None] = {}
    switches: list[Switch] = []
    learn_ns = predict_ns = predictions = changes = 0
    clock = time.perf_counter_ns
    for n, (user, ts, features) in enumerate(stream, start=1):
        t0 = clock()
        clusterer.learn_one(features, now=ts)
        t1 = clock()
        predicted = clusterer.predict_one(features)
        t2 = clock()
        learn_ns += t1 - t0
        if predicted is not None:
            predict_ns += t2 - t1
            predictions += 1
        before = current.get(user)
        current[user], emitted = cluster_changes(user, before, predicted, clusterer, ts, None, features=features)
        if before is not None and current[user] != before:
            switches.append((user, ts, before, current[user]))
        changes += sum(1 for c in emitted if c.change == "exit")
        if progress and n % 5_000 == 0:
            progress(n, len(stream))
    return {"clusterer": clusterer, "us_learn": learn_ns / 1e3 / max(len(stream), 1),
            "us_predict": predict_ns / 1e3 / max(predictions, 1), "switches": changes,
            "stability": switch_stability(switches, user_days(stream))}


def _stability_row(config: ClusteringConfig, stream: Sequence[FeatureEvent],
                   progress: Callable[[int, int], None] | None = None,
                   out_of_orderness_ms: int = 5_000) -> dict[str, Any]:
    """Stability and ARI p1 vs p2 of one configuration (the hysteresis sweep's row)."""
    p1_order, p2_order = hub_orders(stream, out_of_orderness_ms, config.max_waiting)
    base = replay(config, p1_order, progress=progress)
    latest = {user: features for user, _, features in stream}
    users = sorted(latest)
    p2 = replay(config, p2_order)["clusterer"]
    labels = [base["clusterer"].predict_one(latest[u]) for u in users]
    return {**base["stability"],
            "ari_p1_vs_p2": adjusted_rand_index(labels, [p2.predict_one(latest[u]) for u in users])}


# (user, event time, cluster left, cluster entered)
Switch = tuple[str, int, str, str]
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def user_days(stream: Sequence[FeatureEvent]) -> int:
    """Distinct (user, UTC day) pairs with an event: the exposure switches are counted against."""
    return len({(user, ts // DAY_MS) for user, ts, _ in stream})


def switch_stability(switches: Sequence[Switch], active_user_days: int, within_ms: int = HOUR_MS) -> dict[str, Any]:
    """Switches per user per active day, and the share reverted (A -> B, then B -> A) within ``within_ms``.

    >>> s = [("u", 0, "A", "B"), ("u", 600_000, "B", "A"), ("v", 0, "A", "B"), ("v", 2 * HOUR_MS, "B", "A")]
    >>> switch_stability(s, active_user_days=4)
    {'switches': 4, 'switches_per_user_day': 1.0, 'reverted_within_1h': 0.25}
    """
    last: dict[str, Switch] = {}
    reverted = 0
    for switch in sorted(switches, key=lambda s: (s[0], s[1])):
        user, ts, left, entered = switch
        previous = last.get(user)
        if previous is not None and previous[2] == entered and previous[3] == left and ts - previous[1] <= within_ms:
            reverted += 1
        last[user] = switch
    return {"switches": len(switches),
            "switches_per_user_day": len(switches) / active_user_days if active_user_days else 0.0,
            f"reverted_within_{within_ms // HOUR_MS}h": reverted / len(switches) if switches else 0.0}


def hub_orders(stream: Sequence[FeatureEvent], out_of_orderness_ms: int = 5_000,
               max_waiting: int = 100_000) -> tuple[list[FeatureEvent], list[FeatureEvent]]:
    """The stream in the order the clusterer learns it behind one upstream partition, and behind two."""
    p1 = learning_order([(0, e) for e in stream], 1, out_of_orderness_ms, max_waiting)
    return p1, learning_order(parallelism_2(stream), 2, out_of_orderness_ms, max_waiting)


def evaluate(config: ClusteringConfig, stream: Sequence[FeatureEvent], sample: int = 4_000,
             progress: Callable[[int, int], None] | None = None, out_of_orderness_ms: int = 5_000) -> dict[str, Any]:
    """One algorithm: base run, a second seed, and the parallelism-2 interleaving."""
    latest: dict[str, dict[str, float]] = {}
    for user, _, features in stream:
        latest[user] = features
    users = sorted(latest)
    p1_order, p2_order = hub_orders(stream, out_of_orderness_ms, config.max_waiting)
    base = replay(config, p1_order, progress=progress)
    clusterer = base["clusterer"]
    labels = [clusterer.predict_one(latest[u]) for u in users]
    other = replay(dataclasses.replace(config, seed=config.seed + 1000), p1_order)["clusterer"]
    p2 = replay(config, p2_order)["clusterer"]
    # The same stream without the hysteresis margin: every change of nearest cluster is a switch.
    no_margin = replay(dataclasses.replace(config, hysteresis=0.0), p1_order)
    rng = random.Random(0)
    picked = sorted(rng.sample(range(len(users)), min(sample, len(users))))
    z = np.array([[clusterer._scale([latest[users[i]][f] for f in FEATURE_NAMES])[f] for f in FEATURE_NAMES]
                  for i in picked])
    sizes: dict[str, int] = {}
    for label in labels:
        sizes[str(label)] = sizes.get(str(label), 0) + 1
    return {
        "algorithm": config.algorithm,
        "clusters": len(clusterer.names()),
        "silhouette": silhouette(z, [labels[i] for i in picked]),
        "us_learn": base["us_learn"],
        "us_predict": base["us_predict"],
        "ari_run_vs_run": adjusted_rand_index(labels, [other.predict_one(latest[u]) for u in users]),
        "ari_p1_vs_p2": adjusted_rand_index(labels, [p2.predict_one(latest[u]) for u in users]),
        "switches_per_1k_events": 1000 * base["switches"] / max(len(stream), 1),
        "switches_per_1k_events_no_hysteresis": 1000 * no_margin["switches"] / max(len(stream), 1),
        **base["stability"],
        "sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "explanations": {n: {f: round(v, 2) for f, v in clusterer.explain(n).items()} for n in clusterer.names()},
        "descriptions": [clusterer.describe(n) for n in clusterer.names()],
        "p2_names": p2.names(),
    }


# -- metrics ---------------------------------------------------------------------------------------------
def silhouette(x: np.ndarray, labels: Sequence[Any]) -> float:
    """Mean silhouette (Euclidean); NaN with fewer than 2 clusters.

    >>> round(silhouette(np.array([[0.0], [0.1], [5.0], [5.1]]), [0, 0, 1, 1]), 3)
    0.98
    """
    ids = {label: i for i, label in enumerate(dict.fromkeys(labels))}
    if len(ids) < 2:
        return math.nan
    y = np.array([ids[label] for label in labels])
    sq = (x * x).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))
    k = len(ids)
    sums = np.stack([d[:, y == c].sum(1) for c in range(k)], axis=1)
    counts = np.bincount(y, minlength=k).astype(float)
    own = counts[y]
    a = sums[np.arange(len(y)), y] / np.maximum(own - 1, 1)
    mean_other = sums / counts[None, :]
    mean_other[np.arange(len(y)), y] = np.inf
    b = mean_other.min(1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def adjusted_rand_index(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Adjusted Rand index of two labelings (1 = identical partitions, ~0 = chance).

    >>> adjusted_rand_index(["x", "x", "y", "y"], [1, 1, 0, 0]), adjusted_rand_index([1, 1, 2], [1, 2, 3])
    (1.0, 0.0)
    """
    _, ia = np.unique(np.array(a, dtype=str), return_inverse=True)
    _, ib = np.unique(np.array(b, dtype=str), return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1)

    def pairs(v: np.ndarray) -> float:
        return float((v * (v - 1) / 2).sum())

    index, rows, cols, total = pairs(table), pairs(table.sum(1)), pairs(table.sum(0)), pairs(np.array([len(a)]))
    expected = rows * cols / total if total else 0.0
    top = (rows + cols) / 2
    return 1.0 if top == expected else float((index - expected) / (top - expected))


# -- output ----------------------------------------------------------------------------------------------
def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Clustering {report['data']}: {report['events']:,} events ({report['rejected_rows']} rows rejected)",
        "",
        "| algorithm | clusters | silhouette | µs/learn | µs/predict | ARI run vs run | ARI p1 vs p2 "
        "| switches / 1k events (no hysteresis) | switches / user-day | reverted within 1 h | cluster sizes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        sizes = ", ".join(f"{n} {c:,}" for n, c in r["sizes"].items())
        lines.append(
            f"| {r['algorithm']} | {r['clusters']} | {r['silhouette']:.3f} | {r['us_learn']:.1f} | "
            f"{r['us_predict']:.1f} | {r['ari_run_vs_run']:.3f} | {r['ari_p1_vs_p2']:.3f} | "
            f"{r['switches_per_1k_events']:.1f} ({r['switches_per_1k_events_no_hysteresis']:.1f}) | "
            f"{r['switches_per_user_day']:.3f} | {r['reverted_within_1h']:.1%} | {sizes} |"
        )
    if report.get("hysteresis_sweep"):
        lines += ["", "| hysteresis (z) | switches | switches / user-day | reverted within 1 h | ARI p1 vs p2 |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['hysteresis']} | {r['switches']:,} | {r['switches_per_user_day']:.3f} | "
                  f"{r['reverted_within_1h']:.1%} | {r['ari_p1_vs_p2']:.3f} |" for r in report["hysteresis_sweep"]]
    for r in report["results"]:
        lines += ["", f"{r['algorithm']} clusters (centroid z-scores):"]
        lines += [f"- {d}" for d in r["descriptions"]]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    fig, axes = plt.subplots(1, 1 + len(results), figsize=(5 + 5 * len(results), 4.5))
    names = [r["algorithm"] for r in results]
    width = 0.25
    for k, (metric, label) in enumerate([("silhouette", "silhouette"), ("ari_run_vs_run", "ARI run/run"),
                                         ("ari_p1_vs_p2", "ARI p1/p2")]):
        axes[0].bar(np.arange(len(names)) + (k - 1) * width, [r[metric] for r in results], width, label=label)
    axes[0].set_xticks(np.arange(len(names)), names)
    axes[0].axhline(0.9, color="grey", linestyle=":", linewidth=1)
    axes[0].set_title("quality and stability")
    axes[0].legend(fontsize=8)
    for ax, r in zip(axes[1:], results, strict=True):
        clusters = list(r["explanations"])
        if clusters:
            grid = np.array([[r["explanations"][c][f] for f in FEATURE_NAMES] for c in clusters])
            lim = max(float(np.abs(grid).max()), 0.5)
            ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
            ax.set_yticks(range(len(clusters)), [f"{c} ({r['sizes'].get(c, 0):,})" for c in clusters], fontsize=8)
            ax.set_xticks(range(len(FEATURE_NAMES)), FEATURE_NAMES, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{r['algorithm']}: centroid z-scores", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _advance(bar: Bar) -> Callable[[int, int], None]:
    """A replay's progress callback (done so far, total) drawn on ``bar``."""

    def show(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return show

