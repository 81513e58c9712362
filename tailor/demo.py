"""``tailor demo``: the whole thing, live, in one command.

Starts the local stack, runs the segmentation job on the embedded mini-cluster (Flink Web UI included),
feeds it simulated shoppers, and prints every segment change as Redis publishes it. The demo works in
its own namespace (``tailor-demo.*`` topics, ``tailor-demo:`` Redis keys), reset at every start, so it
is repeatable and never touches real data. Its rules compress days into minutes so that timer-driven
changes (cart abandonment, lapsing, dormant) show up within a few minutes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis

from tailor import local_job, stack
from tailor.settings import PROJECT_ROOT, Settings
from tailor.stack import topics
from tailor.watch import watch_changes


def demo_settings(settings: Settings) -> Settings:
    return settings.replace(
        events_topic="tailor-demo.events",
        segment_changes_topic="tailor-demo.segment-changes",
        dead_letters_topic="tailor-demo.dead-letters",
        consumer_group="tailor-demo-v1",
        redis_prefix="tailor-demo:",
        checkpoint_interval_ms=1000,
    )


def run_demo(settings: Settings, rules: Path, rate: float, duration_s: float, users: int) -> int:
    demo = demo_settings(settings)
    say = lambda line: print(f"demo: {line}", flush=True)  # noqa: E731
    stack.up(demo, progress=lambda line: say(line))
    names = [demo.events_topic, demo.segment_changes_topic, demo.dead_letters_topic]
    topics.recreate_topics(demo, names)
    _delete_keys(demo)
    say(f"fresh topics {', '.join(names)} and Redis keys {demo.redis_prefix}*")

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
        argv += ["--duration", str(duration_s if duration_s else 10 * 365 * 86400)]
        simulator = subprocess.Popen(
            argv, env={**_environ(), **demo.to_environ()}, cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        say(f"simulating {users} shoppers at {rate:g} events/s; live segment changes ({rules.name}):")
        say("time(UTC)     +enter/-exit segment             user          facts  (trigger, latency)")
        seen = watch_changes(demo, duration_s=duration_s)
        say(f"{seen} segment changes in {duration_s:g} s")
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
        _print_audiences(demo, say)
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


def _print_audiences(settings: Settings, say) -> None:  # type: ignore[no-untyped-def]
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, decode_responses=True)
    prefix = f"{settings.redis_prefix}segment:"
    sizes = {key.removeprefix(prefix): client.scard(key) for key in client.scan_iter(f"{prefix}*")}
    if sizes:
        say("audiences now: " + ", ".join(f"{name}={n}" for name, n in sorted(sizes.items())))
