"""``tailor demo``: the whole thing, live, in one command.

Starts the local stack, runs the segmentation job on the embedded mini-cluster (Flink Web UI included),
publishes the simulator's product catalog, feeds the job simulated shoppers, and prints every rule
segment change, ML segment (cluster) change and new recommendation list as Redis publishes it. The demo
works in its own namespace (``tailor-demo.*`` topics, ``tailor-demo:`` Redis keys), reset at every
start, so it is repeatable and never touches real data. Its rules compress days into minutes so that
timer-driven changes (cart abandonment, lapsing, dormant) show up within a few minutes, and its models
(``config/demo-models.yaml``) warm up in seconds instead of minutes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis

from operators.segment_rules import SegmentRules
from tailor import local_job, stack
from tailor.catalog import load_catalog
from tailor.settings import PROJECT_ROOT, Settings
from tailor.simulator import ShopperSimulator
from tailor.stack import topics
from tailor.watch import HEADER, KINDS, watch

DEMO_MODELS = PROJECT_ROOT / "config" / "demo-models.yaml"
DEMO_SEED = 7  # the simulator's seed; its catalog is generated with the same one


def demo_settings(settings: Settings) -> Settings:
    return settings.replace(
        events_topic="tailor-demo.events",
        segment_changes_topic="tailor-demo.segment-changes",
        dead_letters_topic="tailor-demo.dead-letters",
        recommendations_topic="tailor-demo.recommendations",
        catalog_topic="tailor-demo.catalog",
        consumer_group="tailor-demo-v1",
        redis_prefix="tailor-demo:",
        checkpoint_interval_ms=1000,
        models_enabled=True,
        models_file=DEMO_MODELS,
    )


def run_demo(
    settings: Settings, rules: Path, rate: float, duration_s: float, users: int, show: tuple[str, ...] = KINDS
) -> int:
    demo = demo_settings(settings)
    say = lambda line: print(f"demo: {line}", flush=True)  # noqa: E731
    stack.up(demo, progress=lambda line: say(line))
    names = topics.tailor_topics(demo)
    topics.recreate_topics(demo, names)
    _delete_keys(demo)
    say(f"fresh topics {', '.join(names)} and Redis keys {demo.redis_prefix}*")
    # Before the job starts: its recommender then knows every product (titles, categories) from the first event.
    report = load_catalog(demo, ShopperSimulator(seed=DEMO_SEED, users=users).catalog(), "simulated", progress=False)
    say(f"published the simulated catalog: {report.sent:,} products to {report.topic}")

    log_file = demo.home / "logs" / "demo-job.log"
    job = local_job.spawn(demo, rules, log_file)
    simulator = None
    try:
        say(f"starting the segmentation job on the embedded Flink mini-cluster (log: {log_file}) ...")
        t0 = time.monotonic()
        job_id = local_job.wait_until_running(demo, job)
        say(f"job {job_id} RUNNING after {time.monotonic() - t0:.0f} s")
        say(f"Flink Web UI: http://127.0.0.1:{demo.rest_port}/#/job/running  (operators, metrics in group 'tailor')")
        argv = [sys.executable, "-m", "tailor", "simulate", "--rate", str(rate), "--users", str(users)]
        argv += ["--seed", str(DEMO_SEED)]
        argv += ["--duration", str(duration_s if duration_s else 10 * 365 * 86400)]
        simulator = subprocess.Popen(
            argv, env={**_environ(), **demo.to_environ()}, cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        say(f"simulating {users} shoppers at {rate:g} events/s; live changes (rules: {rules.name}, "
            f"models: {demo.models_file.name}; ML segments appear after the clustering warm-up, ~10 s):")
        say(HEADER)
        counts = watch(demo, duration_s=duration_s, show=show, out=lambda line: say(line))
        say(f"{counts.rules} rule changes, {counts.clusters} ML segment changes, {counts.recs} recommendation "
            f"lists in {duration_s:g} s")
    except KeyboardInterrupt:
        pass
    finally:
        for child in (simulator, job):
            if child is not None and child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
        _print_audiences(demo, rules, say)
        say("stopped the job and the simulator; the stack keeps running (`bin/tailor stack down` stops it)")
    return 0


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def _delete_keys(settings: Settings) -> None:
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    keys = list(client.scan_iter(f"{settings.redis_prefix}*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])


def _print_audiences(settings: Settings, rules: Path, say) -> None:  # type: ignore[no-untyped-def]
    """Audience sizes, rule segments and ML segments apart: a segment set no rule names is a cluster."""
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, decode_responses=True)
    prefix = f"{settings.redis_prefix}segment:"
    sizes = {key.removeprefix(prefix): client.scard(key) for key in client.scan_iter(f"{prefix}*")}
    rule_names = {rule.name for rule in SegmentRules.from_yaml(rules).rules}
    with_recs = sum(1 for _ in client.scan_iter(f"{settings.redis_prefix}recs:*", count=1000))
    rule_sizes = {n: k for n, k in sizes.items() if n in rule_names}
    cluster_sizes = {n: k for n, k in sizes.items() if n not in rule_names}
    if rule_sizes:
        say("rule audiences now: " + ", ".join(f"{name}={n}" for name, n in sorted(rule_sizes.items())))
    if cluster_sizes:
        say("ML segments now:    " + ", ".join(f"{name}={n}" for name, n in sorted(cluster_sizes.items(), key=lambda kv: -kv[1])))
    say(f"users with recommendations: {with_recs}  (`TAILOR_REDIS_PREFIX={settings.redis_prefix} bin/tailor show user <id>`)")
