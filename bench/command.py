"""The ``tailor bench`` command line: options -> :class:`bench.runner.BenchOptions`, or the profiler.

    tailor bench                         every contender on 1M simulated events (50k users, 10k items)
    tailor bench --smoke                 tiny sizes, seconds per contender: checks the harness
    tailor bench --only a,b,thread       pick contenders (ids or group letters a-g; see below)
    tailor bench --workloads simulated,taobao --max-seconds 120 --no-latency
    tailor bench profile [--events N]    pyinstrument over the per-event Python path, top hot spots
    tailor bench collector               `tailor collect` under wrk: events/s, p50/p99, acknowledged = stored
    tailor bench serve                   `tailor serve` under wrk: Redis warm and Redis stopped
    tailor bench exchange                a recommender replica applying model updates from Kafka in PyFlink
"""

from __future__ import annotations

import argparse

from bench.contenders import CONTENDERS
from settings import Settings

DESCRIPTION = (
    "Benchmark the real path (Kafka -> Flink job -> Kafka + Redis) side by side with what a user could run "
    "instead, on the same pre-loaded data: sustained events/s (first to last event, consumer lag back to 0), "
    "CPU s per 1k events, peak RSS of JVM and Python processes, Redis and Flink-state bytes per user, then "
    "p50/p95/p99 event -> Redis and event -> Kafka (read_committed) latency at 25/50/75/100 % of each "
    "contender's measured rate. Every contender gets its own consumer group, output topics and Redis prefix "
    "(all deleted afterwards unless --keep). Results: bench-results/<name>-<tag>.json (schema in "
    "bench/report.py), .md and .png. `tailor bench profile` profiles the per-event Python path instead."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table = "; ".join(f"{c.id} ({c.group}): {c.label}" for c in CONTENDERS)
    parser.description = DESCRIPTION
    parser.add_argument("action", nargs="?", choices=("run", "profile", "collector", "serve", "exchange"),
                        default="run",
                        help="run the benchmark, profile the per-event Python path, load-test `tailor collect` "
                             "or `tailor serve`, or time the sharded recommender's update exchange in PyFlink")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (3,000 events, 300 users), one 4 s latency step: seconds per contender")
    parser.add_argument("--only", help=f"comma-separated contender ids or group letters; default all. {table}")
    parser.add_argument("--workloads", default="simulated", help="comma-separated: simulated, taobao")
    parser.add_argument("--events", type=int, help="simulated events (default 1,000,000; smoke 3,000)")
    parser.add_argument("--users", type=int, help="simulated users (default 50,000; smoke 300)")
    parser.add_argument("--items", type=int, help="simulated catalog items (default 10,000; smoke 500)")
    parser.add_argument("--taobao-events", type=int, help="first N good Taobao rows (default: the whole sample)")
    parser.add_argument("--seed", type=int, default=11, help="simulator seed (same seed, same events)")
    parser.add_argument("--exposed-share", type=float, default=0.0,
                        help="simulated: share of users first exposed to an experiment (an extra Experiment Viewed "
                             "event each), to measure the job's experiment metrics (default 0)")
    parser.add_argument("--max-seconds", type=float,
                        help="time box per contender and workload, from its first event (default 300; smoke 60); "
                             "a run cut short reports the rate over what it processed, marked time-boxed")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency-under-load sweeps")
    parser.add_argument("--latency-fractions", help="loads for the latency sweep, as fractions of each contender's "
                                                    "measured rate (default 0.25,0.5,0.75,1.0; smoke 0.5)")
    parser.add_argument("--latency-seconds", type=float, help="seconds per latency step (default 20; smoke 4)")
    parser.add_argument("--latency-warmup-seconds", type=float,
                        help="seconds at the first fraction before the measured steps, on a freshly started "
                             "contender (default 5; smoke 1); the models path needs ~120 to reach its steady rate")
    parser.add_argument("--latency-base-rate", type=float, metavar="EVENTS_PER_S",
                        help="apply the latency fractions to this rate instead of each contender's measured one "
                             "(to compare two builds at the same load)")
    parser.add_argument("--keep", action="store_true", help="keep the bench topics and Redis keys for inspection")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--rest-port", type=int, default=8091,
                        help="Flink REST port for the bench's jobs and cluster (the demo's 8081 stays free)")
    parser.add_argument("--profile-events", type=int, default=100_000, help="profile: events replayed")
    parser.add_argument("--http-seconds", type=float, default=10.0,
                        help="collector, serve: seconds per wrk scenario")
    parser.add_argument("--exchange-batch", type=int, default=64,
                        help="exchange: model updates per Kafka record (default 64)")
    parser.add_argument("--profile-path", choices=("job", "models", "baseline"), default="job",
                        help="profile: the job's per-event Python (wire + state codecs), the model hub's per "
                             "model input, or the plain baseline's")


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.replace(rest_port=args.rest_port)
    if args.action == "profile":
        from bench.profile import profile_per_event_path

        profile_per_event_path(settings, events=args.profile_events, path=args.profile_path)
        return 0
    if args.action == "collector":
        from bench.collector_load import run as run_collector_bench

        return run_collector_bench(settings, seconds=args.http_seconds)
    if args.action == "exchange":
        from bench.model_update_exchange import run as run_exchange_bench

        return run_exchange_bench(settings, events=args.taobao_events, batch=args.exchange_batch)
    if args.action == "serve":
        from bench.serving_load import run as run_serving_bench

        return run_serving_bench(settings, seconds=args.http_seconds)
    from bench.runner import BenchOptions, run_bench

    changes: dict = {"workloads": tuple(w.strip() for w in args.workloads.split(",") if w.strip()),
                     "seed": args.seed, "only": args.only, "latency": not args.no_latency,
                     "keep": args.keep, "plots": not args.no_plots, "exposed_share": args.exposed_share}
    for name in ("events", "users", "items", "taobao_events", "max_seconds", "latency_seconds"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.latency_warmup_seconds is not None:
        changes["latency_warmup_s"] = args.latency_warmup_seconds
    if args.latency_base_rate is not None:
        changes["latency_base_rate"] = args.latency_base_rate
    if args.latency_fractions:
        changes["latency_fractions"] = tuple(float(f) for f in args.latency_fractions.split(","))
    options = BenchOptions.smoke(**changes) if args.smoke else BenchOptions(**changes)
    run_bench(settings, options)
    return 0
