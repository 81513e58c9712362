"""``tailor bench``: the quick benchmark of the real path, Kafka -> Flink job -> Kafka + Redis.

Two runs, each on fresh topics and Redis keys, with seeded simulated shoppers:

1. **Throughput.** ``events`` simulated events are loaded into Kafka first, then the job (embedded
   mini-cluster, bounded source) works through them. Sustained events/s is read from Flink's own
   ``read-records`` count of the ``track_segments`` vertex, sampled every second through the REST API,
   between 5 % and 95 % of the input (start-up and the final timer flush excluded).
2. **Latency.** The job runs unbounded while the simulator publishes at ``latency_rate`` events/s for
   ``latency_seconds`` with wall-clock event times. Every segment change caused by an event is received
   from Redis pub/sub; latency = received - event time (producer linger + Kafka + Flink + Redis).

Prints a table and writes ``bench-results/quick-<time>.json``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import redis

from tailor import local_job
from tailor.settings import PROJECT_ROOT, Settings
from tailor.simulator import ShopperSimulator, simulate
from tailor.stack import topics
from tailor import stack

RESULTS_DIR = PROJECT_ROOT / "bench-results"


def run_quick_bench(
    settings: Settings, events: int, users: int, latency_rate: float, latency_seconds: float, out=print
) -> dict:
    stack.up(settings, progress=lambda _line: None)
    results = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "execution_mode": settings.execution_mode,
        "parallelism": settings.parallelism,
    }
    out(f"bench: throughput run, {events:,} simulated events, {users:,} users ...")
    results["throughput"] = throughput_run(_fresh(settings, "tput"), events, users, out)
    out(f"bench: latency run, {latency_rate:,.0f} events/s for {latency_seconds:.0f} s ...")
    results["latency"] = latency_run(_fresh(settings, "lat"), latency_rate, latency_seconds, users, out)
    _print_table(results, out)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"quick-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    out(f"bench: results in {path.relative_to(PROJECT_ROOT)}")
    return results


def throughput_run(settings: Settings, events: int, users: int, out) -> dict:  # type: ignore[no-untyped-def]
    sim = ShopperSimulator(seed=11, users=users)
    load = simulate(settings, rate=2_000, count=events, fast=True, simulator=sim, progress=False, echo=None)
    out(f"bench:   loaded {load.sent:,} events into Kafka ({load.events_per_s:,.0f}/s from kafka-python)")
    job = local_job.spawn(settings, settings.segments_file, settings.home / "logs" / "bench-throughput.log", bounded=True)
    samples: list[tuple[float, int]] = []
    try:
        job_id = local_job.wait_until_running(settings, job)
        while job.poll() is None:
            count = _records_into(settings, job_id, "track_segments")
            if count is not None:
                samples.append((time.monotonic(), count))
            time.sleep(1.0)
    finally:
        if job.poll() is None:
            job.kill()
    if job.returncode != 0:
        raise RuntimeError(f"throughput job failed (exit {job.returncode}); see .tailor/logs/bench-throughput.log")
    rate = _sustained_rate(samples, events)
    out(f"bench:   sustained {rate:,.0f} events/s")
    return {"events": events, "users": users, "events_per_s": round(rate)}


def latency_run(settings: Settings, rate: float, seconds: float, users: int, out) -> dict:  # type: ignore[no-untyped-def]
    job = local_job.spawn(settings, settings.segments_file, settings.home / "logs" / "bench-latency.log")
    latencies: list[int] = []
    stop = threading.Event()
    try:
        local_job.wait_until_running(settings, job)
        listener = threading.Thread(target=_collect_latencies, args=(settings, latencies, stop), daemon=True)
        listener.start()
        time.sleep(1.0)  # subscribed before the first event
        argv = [sys.executable, "-m", "tailor", "simulate", "--rate", str(rate), "--duration", str(seconds),
                "--users", str(users), "--seed", "13"]
        subprocess.run(argv, env={**os.environ, **settings.to_environ()}, cwd=PROJECT_ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.0)  # let the last changes arrive
    finally:
        stop.set()
        job.terminate()
        try:
            job.wait(timeout=30)
        except subprocess.TimeoutExpired:
            job.kill()
    if not latencies:
        raise RuntimeError("no segment changes reached Redis during the latency run; see .tailor/logs/bench-latency.log")
    latencies.sort()
    result = {"rate": rate, "seconds": seconds, "changes": len(latencies), **_percentiles(latencies)}
    out(f"bench:   event -> Redis p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms over {len(latencies):,} changes")
    return result


def _collect_latencies(settings: Settings, into: list[int], stop: threading.Event) -> None:
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{settings.redis_prefix}segment-changes")
    while not stop.is_set():
        message = pubsub.get_message(timeout=0.2)
        if message is None:
            continue
        received = int(time.time() * 1000)
        change = orjson.loads(message["data"])
        if change["trigger"] == "event":
            into.append(received - change["event_time"])
    pubsub.close()


def _percentiles(values: list[int]) -> dict:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": round(q[49]), "p95_ms": round(q[94]), "p99_ms": round(q[98]), "max_ms": values[-1]}


def _sustained_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Events/s between the samples where 5 % and 95 % of the input had been read."""
    low = next(((t, c) for t, c in samples if c >= 0.05 * total), None)
    high = next(((t, c) for t, c in samples if c >= 0.95 * total), None)
    if low is None or high is None or high[0] <= low[0]:
        raise RuntimeError(f"too few samples to measure a rate ({len(samples)}); use more --events")
    return (high[1] - low[1]) / (high[0] - low[0])


def _records_into(settings: Settings, job_id: str, operator: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.rest_port}/jobs/{job_id}", timeout=2) as r:
            vertices = orjson.loads(r.read())["vertices"]
    except OSError:
        return None
    for vertex in vertices:
        if vertex["name"].startswith(operator):
            return int(vertex["metrics"]["read-records"])
    return None


def _fresh(settings: Settings, name: str) -> Settings:
    tag = f"bench-{name}-{int(time.time())}"
    fresh = settings.replace(
        events_topic=f"{tag}.events", segment_changes_topic=f"{tag}.segment-changes",
        dead_letters_topic=f"{tag}.dead-letters", consumer_group=tag, redis_prefix=f"{tag}:",
    )
    topics.ensure_topics(fresh, [fresh.events_topic, fresh.segment_changes_topic, fresh.dead_letters_topic])
    return fresh


def _print_table(results: dict, out) -> None:  # type: ignore[no-untyped-def]
    t, lat = results["throughput"], results["latency"]
    out("")
    out(f"| machine | {results['machine']} |")
    out("|---|---|")
    out(f"| sustained throughput | {t['events_per_s']:,} events/s ({t['events']:,} events, {t['users']:,} users) |")
    out(f"| event -> Redis at {lat['rate']:,.0f} ev/s | p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms |")
    out("")
