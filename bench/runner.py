"""``tailor bench``: load each workload once, run every contender over it, then latency sweeps; report.

Per contender and workload (**throughput run**), on the shared pre-loaded topic with a consumer group,
a segment-changes topic and a Redis prefix of its own:

1. start it and wait until it reports a count (Flink: the job is RUNNING and ``track_segments``
   reports ``read-records``; baselines: their progress file); the last tick at which the count is still
   0 is the *anchor* (start-up, JVM launch and job submission are excluded);
2. sample every ``TICK_S``: records processed, CPU seconds and RSS of its process tree (and, apart, of
   the Kafka broker and Redis server);
3. stop when the count reaches the records in the topic (consumer lag back to zero) or when
   ``max_seconds`` have passed since the anchor (**time-boxed**: the rate is then over what was
   processed, and ``complete`` is false);
4. events/s = records between anchor and end / seconds between them (and, for a time-boxed run, the
   rate over its last ``TAIL_S`` seconds: the steady rate of a contender that warms up for minutes);
   CPU seconds per 1,000 events over the same interval; Flink state = size of the first checkpoint
   completed after the end; Redis bytes per user from ``MEMORY USAGE``; then the contender is stopped
   and its keys and topics deleted (unless ``keep``).

**Latency sweep** (contenders that write, right after their throughput runs): a fresh events topic, the
contender started and warmed up, then a paced simulator (event time = send time) at 25/50/75/100 % of
the contender's measured sustained rate (a time-boxed run's tail rate: its steady rate, not its average
over the warm-up), after ``latency_warmup_s`` at the first fraction (a fresh JVM compiles for minutes on
the models path), ``latency_seconds`` per step, draining between steps; every
event-triggered change is timed to Redis pub/sub and to a ``read_committed`` Kafka consumer
(:mod:`bench.latency`).
"""

from __future__ import annotations

import os
import platform
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import stack
from bench import contenders as contenders_mod
from bench import latency, measure, report, workloads
from bench.contenders import Contender, Running
from bench.flink_runs import BenchCluster
from connectors.redis_reader import RedisReader
from settings import PROJECT_ROOT, Settings
from stack import process, topics

TICK_S = 0.25
TAIL_S = 30.0
PROGRESS_EVERY_S = 10.0
RESULTS_DIR = PROJECT_ROOT / "bench-results"


@dataclass
class BenchOptions:
    workloads: tuple[str, ...] = ("simulated",)
    events: int = 1_000_000
    users: int = 50_000
    items: int = 10_000
    taobao_events: int | None = None  # None: the whole sample
    seed: int = 11
    only: str | None = None
    max_seconds: float = 300.0
    startup_timeout_s: float = 240.0
    latency: bool = True
    latency_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    latency_seconds: float = 20.0
    latency_warmup_s: float = 5.0
    # Pace the sweep from this rate instead of the contender's measured one: two builds compared at the
    # same absolute load (their measured rates differ by the run-to-run noise, ~10 % on this machine).
    latency_base_rate: float | None = None
    keep: bool = False
    out_dir: Path = RESULTS_DIR
    plots: bool = True
    name: str = "bench"
    exposed_share: float = 0.0  # simulated: share of users first exposed to an experiment (its metrics' cost)

    @classmethod
    def smoke(cls, **changes) -> BenchOptions:  # type: ignore[no-untyped-def]
        """Tiny sizes: seconds per contender; checks the harness, not the engine."""
        base = {"events": 3_000, "users": 300, "items": 500, "taobao_events": 3_000, "max_seconds": 60.0,
                "latency_fractions": (0.5,), "latency_seconds": 4.0, "latency_warmup_s": 1.0, "name": "smoke"}
        return cls(**{**base, **changes})


@dataclass
class _Bench:
    settings: Settings
    options: BenchOptions
    tag: str
    scratch: Path
    out: object
    infra_pids: list[int]
    cluster: BenchCluster | None = None
    created_topics: list[str] = field(default_factory=list)


def run_bench(settings: Settings, options: BenchOptions, out=print) -> dict:  # type: ignore[no-untyped-def]
    chosen = contenders_mod.select(options.only)
    if threading.current_thread() is threading.main_thread():
        # Contenders run in sessions of their own (a Ctrl-C must not half-kill a JVM): on SIGTERM unwind
        # through the `finally` blocks that stop them, like on Ctrl-C.
        signal.signal(signal.SIGTERM, _raise_interrupt)
    stack.up(settings, progress=lambda _line: None)
    tag = f"bench-{time.strftime('%m%d%H%M%S')}"
    scratch = settings.home / "bench" / tag
    scratch.mkdir(parents=True, exist_ok=True)
    infra = [p for p in (process.listener_pid(settings.kafka_port), process.listener_pid(settings.redis_port)) if p]
    b = _Bench(settings, options, tag, scratch, out, infra)
    results: dict = {
        "schema": report.SCHEMA,
        "name": options.name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": _machine(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "settings": {k: v for k, v in settings.to_dict().items() if k in (
            "kafka_partitions", "checkpoint_interval_ms", "out_of_orderness_ms", "segments_file")},
        "contenders": {c.id: {"group": c.group, "label": c.label, "execution_mode": c.execution_mode,
                              "parallelism": c.parallelism, "taskmanagers": c.taskmanagers,
                              "models_enabled": c.models_enabled, "models_sharded": c.models_sharded}
                  for c in chosen},
        "workloads": {},
        "throughput": [],
        "latency": [],
        "notes": _notes(chosen),
    }
    out(f"bench: {tag}: contenders {', '.join(c.id for c in chosen)}; logs in {process.relative(scratch)}")
    try:
        if any(c.kind == "cluster" for c in chosen):
            b.cluster = BenchCluster(settings, progress=lambda line: out(f"bench:   {line}"))
        loaded = [_load(b, kind) for kind in options.workloads]
        results["workloads"] = {w.kind: w.to_dict() for w in loaded}
        # Contender by contender (its latency sweep right after its throughput runs): the embedded
        # mini-cluster and the standalone cluster share the bench's REST port, so never overlap.
        for contender in _cluster_last(chosen):
            runs = [_throughput_run(b, contender, workload) for workload in loaded]
            results["throughput"] += runs
            rate = options.latency_base_rate or _sustained_rate(runs[0])
            if options.latency and contender.writes and rate:
                results["latency"].append(_latency_run(b, contender, rate))
    finally:
        if b.cluster is not None:
            b.cluster.stop()
        if not options.keep and b.created_topics:
            try:
                topics.delete_topics(settings, b.created_topics)
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the results
                out(f"bench: could not delete the bench topics: {exc}")
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    paths = report.write(results, options.out_dir, f"{options.name}-{tag}", with_plots=options.plots)
    out("")
    out(report.markdown(results))
    out(f"bench: results in {', '.join(process.relative(p) for p in paths)}")
    results["files"] = [str(p) for p in paths]
    return results


# -- workloads ---------------------------------------------------------------------------------------
def _load(b: _Bench, kind: str) -> workloads.Workload:
    topic = f"{b.tag}.{kind}.events"
    b.created_topics.append(topic)
    say = b.out
    if kind == "simulated":
        o = b.options
        b.out(f"bench: loading {o.events:,} simulated events ({o.users:,} users, {o.items:,} items) into {topic}")
        w = workloads.load_simulated(b.settings, topic, o.events, o.users, o.items, o.seed, progress=say,
                                     exposed_share=o.exposed_share)
    elif kind == "taobao":
        b.out(f"bench: loading the Taobao sample into {topic}")
        w = workloads.load_taobao(b.settings, topic, b.options.taobao_events, progress=say)
    else:
        raise ValueError(f"unknown workload {kind!r}; expected simulated or taobao")
    b.out(f"bench:   {w.events:,} events, {w.users:,} distinct users, loaded in {w.load_s:.1f} s")
    return w


def _contender_settings(b: _Bench, contender: Contender, run: str, events_topic: str) -> Settings:
    name = f"{b.tag}.{contender.id}.{run}"
    s = b.settings.replace(
        events_topic=events_topic, segment_changes_topic=f"{name}.segment-changes",
        dead_letters_topic=f"{name}.dead-letters", consumer_group=name.replace(".", "-"),
        redis_prefix=f"{name}:", state_dir=b.scratch / "state", experiment_metrics_topic=f"{name}.experiment-metrics",
        model_updates_topic=f"{name}.model-updates",
    )
    fresh = [s.segment_changes_topic, s.dead_letters_topic, s.experiment_metrics_topic, s.model_updates_topic]
    topics.ensure_topics(s, fresh)
    b.created_topics.extend(fresh)
    if contender.id == "faust":  # the topics Faust creates for itself (app id = consumer group)
        b.created_topics += [f"{s.consumer_group}-user_to_profile-changelog", f"{s.consumer_group}-__assignor-__leader"]
    return s


# -- throughput --------------------------------------------------------------------------------------
def _throughput_run(b: _Bench, contender: Contender, workload: workloads.Workload) -> dict:
    s = _contender_settings(b, contender, workload.kind, workload.topic)
    result: dict = {"contender": contender.id, "workload": workload.kind, "events": workload.events}
    b.out(f"bench: [{contender.id}] {contender.label} on {workload.kind} ({workload.events:,} events) ...")
    t_launch = time.monotonic()
    running: Running | None = None
    try:
        running = contenders_mod.start(contender, s, b.scratch, b.cluster)
        tree = measure.ProcessTreeSampler(running.pids())
        infra = measure.ProcessTreeSampler(b.infra_pids)
        anchor = _wait_for_start(b, running, tree, t_launch)
        result["startup_s"] = round(anchor[0] - t_launch, 1)
        t_anchor, n_anchor, cpu_anchor = anchor
        infra_anchor = infra.sample()
        counts: list[tuple[float, int]] = [(t_anchor, n_anchor)]
        t_end, n_end, cpu_end, infra_end, complete = _follow(b, contender, running, tree, infra, workload.events,
                                                           t_anchor, counts)
        seconds = max(t_end - t_anchor, 1e-6)
        done = n_end - n_anchor
        result.update({
            "processed": n_end,
            "complete": complete,
            "seconds": round(seconds, 2),
            "events_per_s": round(done / seconds) if done > 0 else 0,
            "tail_events_per_s": None if complete else measure.tail_rate(counts, TAIL_S),
            "cpu_s": round(cpu_end - cpu_anchor, 2),
            "cpu_s_per_1k_events": round((cpu_end - cpu_anchor) / done * 1000, 3) if done > 0 else None,
            "infra_cpu_s_per_1k_events": round((infra_end - infra_anchor) / done * 1000, 3) if done > 0 else None,
            "peak_rss_mb": {k: round(v) for k, v in tree.peak_rss_mb.items()},
        })
        changes = running.changes()
        if changes is not None:
            result["changes"] = changes
        if contender.kind != "baseline":
            size = running.state_size(int(time.time() * 1000), timeout_s=3 * s.checkpoint_interval_ms / 1000 + 15)
            if size is not None:
                size["bytes_per_user"] = round(size["state_size"] / workload.users, 1) if complete else None
            result["flink_state"] = size
        tail = result["tail_events_per_s"]
        b.out(f"bench:   [{contender.id}] {result['events_per_s']:,} events/s over {done:,} events in "
              f"{seconds:.1f} s{'' if complete else ' (TIME-BOXED, partial)'}"
              f"{'' if tail is None else f', last {TAIL_S:.0f} s: {tail:,}/s'}; "
              f"{result['cpu_s_per_1k_events']} CPU s / 1k events")
    except Exception as exc:  # noqa: BLE001 - one broken contender must not lose the others' results
        result["error"] = str(exc)[-3000:]
        b.out(f"bench:   [{contender.id}] FAILED: {str(exc)[-1500:]}")
    finally:
        if running is not None:
            running.stop()
    time.sleep(0.3)  # the last Redis pipeline of a stopped contender
    with _stored(s) as stored:
        result["redis"] = measure.redis_bytes_per_user(stored)
        if not b.options.keep:
            measure.delete_prefix(stored)
    return result


def _wait_for_start(b: _Bench, running: Running, tree: measure.ProcessTreeSampler, t_launch: float,
                    until_records: bool = True):  # type: ignore[no-untyped-def]
    """(time, count, cpu) of the last tick before counting started (or the first counted tick).
    ``until_records=False``: return as soon as the contender reports a count (an empty topic)."""
    anchor = None
    while True:
        if time.monotonic() - t_launch > b.options.startup_timeout_s:
            raise TimeoutError(f"{running.contender.id} did not start within {b.options.startup_timeout_s:.0f} s")
        failure = running.failure()
        if failure:
            raise RuntimeError(failure)
        _add_pids(running, tree)
        now, count, cpu = time.monotonic(), running.processed(), tree.sample()
        if count is not None:
            if count == 0:
                anchor = (now, 0, cpu)
                if not until_records:
                    return anchor
            else:
                return anchor or (now, count, cpu)
        time.sleep(TICK_S)


def _follow(b, contender, running, tree, infra, total, t_anchor, counts):  # type: ignore[no-untyped-def]
    """Sample until done or time-boxed; ``counts`` gets every (time, count) sample."""
    last_say = time.monotonic()
    while True:
        failure = running.failure()
        if failure:
            raise RuntimeError(failure)
        _add_pids(running, tree)
        now, count, cpu, infra_cpu = time.monotonic(), running.processed(), tree.sample(), infra.sample()
        count = count or 0
        counts.append((now, count))
        if count >= total:
            return now, count, cpu, infra_cpu, True
        if now - t_anchor >= b.options.max_seconds:
            return now, count, cpu, infra_cpu, False
        if now - last_say >= PROGRESS_EVERY_S:
            rate = count / max(now - t_anchor, 1e-6)
            b.out(f"bench:   [{contender.id}] {count:,} / {total:,} events, {now - t_anchor:.0f} s, ~{rate:,.0f}/s")
            last_say = now
        time.sleep(TICK_S)


def _add_pids(running: Running, tree: measure.ProcessTreeSampler) -> None:
    for pid in running.pids():
        tree.add_root(pid)


# -- latency -----------------------------------------------------------------------------------------
def _await_committed(listeners: list[latency._Listener], start_ms: int, end_ms: int, timeout_s: float) -> None:
    """Wait until the read_committed reader has seen as many of the step's changes as Redis did.

    Both sinks get the same changes; the Kafka ones become visible only when the checkpoint that covers
    them completes, which on a loaded machine can take several intervals.
    """
    redis_listener, kafka_listener = listeners
    time.sleep(0.5)  # the Redis sink's last buffered writes
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(kafka_listener.window(start_ms, end_ms)) >= len(redis_listener.window(start_ms, end_ms)):
            return
        time.sleep(0.2)


def _latency_run(b: _Bench, contender: Contender, max_rate: float) -> dict:
    o = b.options
    events_topic = f"{b.tag}.{contender.id}.latency.events"
    topics.ensure_topics(b.settings, [events_topic])
    b.created_topics.append(events_topic)
    s = _contender_settings(b, contender, "latency", events_topic)
    result: dict = {"contender": contender.id, "max_rate": max_rate, "steps": []}
    b.out(f"bench: [{contender.id}] latency sweep at {', '.join(f'{f:.0%}' for f in o.latency_fractions)} "
          f"of {max_rate:,.0f} events/s, {o.latency_seconds:.0f} s each ...")
    running: Running | None = None
    listeners: list[latency._Listener] = []
    t_launch = time.monotonic()
    try:
        running = contenders_mod.start(contender, s, b.scratch, b.cluster)
        tree = measure.ProcessTreeSampler(running.pids())
        _wait_for_start(b, running, tree, t_launch, until_records=False)
        listeners = [
            latency.RedisChangeListener(s.redis_host, s.redis_port, s.redis_prefix),
            latency.KafkaChangeListener(s.kafka_bootstrap, s.segment_changes_topic),
        ]
        if contender.models_sharded:
            listeners.append(latency.ExchangeListener(s.kafka_bootstrap, s.model_updates_topic))
        for listener in listeners:
            listener.start()
        for listener in listeners:
            listener.ready.wait(30)
        sent_total = 0
        steps = [(None, o.latency_fractions[0] * max_rate, o.latency_warmup_s)] if o.latency_warmup_s else []
        steps += [(f, f * max_rate, o.latency_seconds) for f in o.latency_fractions]
        for i, (fraction, rate, seconds) in enumerate(steps):
            start_ms = int(time.time() * 1000)
            child = workloads.paced_simulation(s, events_topic, max(rate, 1.0), seconds, o.users, seed=1000 + i)
            output, _ = child.communicate(timeout=seconds + 120)
            end_ms = int(time.time() * 1000)
            sent, send_s = workloads.sent_report(output) or (0, seconds)
            sent_total += sent
            drained = _drain(running, sent_total, timeout_s=max(30.0, seconds * 3))
            _await_committed(listeners[:2], start_ms, end_ms, timeout_s=10 + 3 * s.checkpoint_interval_ms / 1000)
            if fraction is None:
                continue  # warm-up
            redis_stats = latency.percentiles(listeners[0].window(start_ms, end_ms))
            kafka_stats = latency.percentiles(listeners[1].window(start_ms, end_ms))
            step = {"fraction": fraction, "target_rate": round(rate), "sent": sent,
                    "achieved_rate": round(sent / max(send_s, 1e-6)),
                    "drained": drained, "redis": redis_stats, "kafka_read_committed": kafka_stats,
                    "redis_by_kind": {k: latency.percentiles(listeners[0].window(start_ms, end_ms, (k,)))
                                      for k in listeners[0].kinds()},
                    "emitted_by_kind": {k: latency.percentiles(listeners[0].window(start_ms, end_ms, (k,), True))
                                        for k in listeners[0].kinds()}}
            exchange = ""
            if contender.models_sharded:  # the replicas' staleness: an update's writing to its being readable
                step["exchange"] = latency.percentiles(listeners[2].window(start_ms, end_ms, (latency.EXCHANGE,)))
                exchange = (f"; model updates readable by the other replicas p50 / p99 "
                            f"{step['exchange']['p50_ms']} / {step['exchange']['p99_ms']} ms")
            result["steps"].append(step)
            by_kind = ", ".join(f"{k} {v['p99_ms']}" for k, v in step["redis_by_kind"].items())
            b.out(f"bench:   [{contender.id}] {fraction:.0%} ({step['achieved_rate']:,}/s): event -> Redis p99 "
                  f"{redis_stats['p99_ms']} ms ({by_kind}), -> Kafka read_committed p99 {kafka_stats['p99_ms']} ms"
                  + exchange)
    except Exception as exc:  # noqa: BLE001
        result["error"] = str(exc)[-3000:]
        b.out(f"bench:   [{contender.id}] latency FAILED: {str(exc)[-1500:]}")
    finally:
        for listener in listeners:
            listener.stop()
        if running is not None:
            running.stop()
        if not o.keep:
            with _stored(s) as stored:
                measure.delete_prefix(stored)
    return result


def _sustained_rate(run: dict) -> float | None:
    """The rate the latency sweep paces from: a time-boxed run's tail rate when it has one, else its average.

    >>> _sustained_rate({"events_per_s": 700, "tail_events_per_s": 1100})
    1100
    >>> _sustained_rate({"events_per_s": 700, "tail_events_per_s": None})
    700
    >>> _sustained_rate({"error": "boom"}) is None
    True
    """
    if "error" in run:
        return None
    return run.get("tail_events_per_s") or run.get("events_per_s")


def _drain(running: Running, total: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (running.processed() or 0) >= total:
            return True
        time.sleep(TICK_S)
    return False


# -- helpers -----------------------------------------------------------------------------------------
def _stored(s: Settings) -> RedisReader:
    """What a contender wrote to Redis (its own prefix)."""
    return RedisReader(s.redis_host, s.redis_port, s.redis_prefix)


def _raise_interrupt(*_args) -> None:  # type: ignore[no-untyped-def]
    raise KeyboardInterrupt("SIGTERM")


def _cluster_last(chosen: list[Contender]) -> list[Contender]:
    """Standalone-cluster contenders last and grouped by layout, so the cluster restarts at most once."""
    return sorted(chosen, key=lambda c: (c.kind == "cluster", c.taskmanagers))


def _machine() -> dict:
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "os": platform.platform(),
            "load_avg_at_start": os.getloadavg()}


def _notes(chosen: list[Contender]) -> list[str]:
    notes = []
    job_source = (PROJECT_ROOT / "pipelines" / "segmentation_job.py").read_text()
    if {"thread", "models"} & {c.id for c in chosen} and "models_enabled" not in job_source:
        notes.append("thread vs models: models_enabled is passed to the job, but until the model operator "
                     "lands in pipelines/segmentation_job.py both run the same graph.")
    notes.append("python/faust write changes to Kafka without transactions (visible at once to read_committed "
                 "readers); the Flink job writes exactly-once, visible at each checkpoint.")
    return notes
