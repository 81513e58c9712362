"""Results of ``tailor bench``: JSON (schema below), a Markdown table and PNG plots.

JSON schema ``tailor.bench/1`` (one object)::

    schema        "tailor.bench/1"
    name          "bench" | "smoke" | ...
    started, finished   local time, ISO 8601
    machine       {host, cpus, cpu_model, memory_gib, python, os, load_avg_at_start}
    options       the BenchOptions used (sizes, time box, latency fractions, ...)
    settings      {kafka_partitions, checkpoint_interval_ms, out_of_orderness_ms, segments_file}
    contenders    {id: {group, label, execution_mode, parallelism, taskmanagers, models_enabled}}
    workloads     {kind: {kind, topic, events, users, load_s, rejected, seed}}
    throughput    [ one per (contender, workload):
                    contender, workload, events       ids; records in the topic
                    processed                         records the contender handled
                    complete                          true: lag reached 0; false: time-boxed (partial)
                    seconds, events_per_s             first counted tick -> last (see bench.runner)
                    tail_events_per_s                 time-boxed runs: the rate over the last 30 s
                                                      (null if complete or shorter than 60 s)
                    startup_s                         launch -> first counted tick
                    cpu_s, cpu_s_per_1k_events        the contender's process tree
                    infra_cpu_s_per_1k_events         Kafka broker + Redis server, same interval
                    peak_rss_mb {jvm, python, other}  peak of the summed RSS per process kind
                    changes                           segment changes out (baselines only)
                    flink_state {checkpoint_id, state_size, checkpointed_size, duration_ms,
                                 bytes_per_user}      Flink only; per user = size / workload users
                    redis {users, profile_bytes, audience_bytes, bytes_per_user}
                    error                             only if the run failed ]
    latency       [ one per contender: contender, max_rate (its first run's tail rate if time-boxed, else
                    its events/s), error?,
                    steps [{fraction, target_rate, achieved_rate, sent, drained,
                            redis {count, p50_ms, p95_ms, p99_ms, max_ms}     segment changes
                            kafka_read_committed {...same...}                  segment changes
                            redis_by_kind {rule|cluster|recommendation: {...same...}}
                            emitted_by_kind {...same, to the record's emit_time: the job alone}}] ]
    notes         [strings]
    files         paths written (added after writing)

>>> r = {"throughput": [{"contender": "python", "workload": "simulated", "events": 10, "processed": 10,
...       "complete": True, "events_per_s": 5000, "cpu_s_per_1k_events": 0.2, "peak_rss_mb": {"jvm": 0,
...       "python": 80}, "redis": {"bytes_per_user": 300.0}}], "latency": [], "contenders": {}}
>>> print(markdown(r).splitlines()[2])
| python | simulated | 5,000 | 10 / 10 | 0.2 | 0 / 80 | 300 | - |
"""

from __future__ import annotations

from pathlib import Path

import orjson

SCHEMA = "tailor.bench/1"


def markdown(results: dict) -> str:
    lines = [
        "| contender | workload | events/s | processed | CPU s / 1k ev | peak RSS MB (JVM / Py) | Redis B/user "
        "| Flink state B/user |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["throughput"]:
        if "error" in r:
            lines.append(f"| {r['contender']} | {r['workload']} | FAILED | | | | | |")
            continue
        rss = r.get("peak_rss_mb", {})
        state = (r.get("flink_state") or {}).get("bytes_per_user")
        rate = f"{r['events_per_s']:,}" + ("" if r.get("complete") else " (time-boxed)")
        if r.get("tail_events_per_s"):
            rate += f"; last 30 s: {r['tail_events_per_s']:,}"
        lines.append(
            f"| {r['contender']} | {r['workload']} | {rate} | {r['processed']:,} / {r['events']:,} "
            f"| {_num(r.get('cpu_s_per_1k_events'))} | {rss.get('jvm', 0):,} / {rss.get('python', 0):,} "
            f"| {_num((r.get('redis') or {}).get('bytes_per_user'), 0)} | {_num(state, 0)} |"
        )
    if results.get("latency"):
        lines += ["", "| contender | load | achieved ev/s | event -> Redis p50 / p95 / p99 ms "
                  "| event -> Kafka read_committed p50 / p95 / p99 ms "
                  "| event -> recommendation in Redis p50 / p95 / p99 ms |",
                  "|---|---:|---:|---:|---:|---:|"]
        for run in results["latency"]:
            if "error" in run and not run["steps"]:
                lines.append(f"| {run['contender']} | FAILED | | | | |")
            for step in run["steps"]:
                recs = (step.get("redis_by_kind") or {}).get("recommendation")
                lines.append(
                    f"| {run['contender']} | {step['fraction']:.0%} of {run['max_rate']:,.0f} "
                    f"| {step['achieved_rate']:,} | {_pcts(step['redis'])} | {_pcts(step['kafka_read_committed'])} "
                    f"| {_pcts(recs) if recs else '-'} |"
                )
    return "\n".join(lines)


def plots(results: dict, stem: Path) -> list[Path]:
    """Throughput bars per contender (time-boxed hatched) and p99 latency vs offered load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = [r for r in results["throughput"] if "error" not in r]
    if rows:
        fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(rows)))
        labels = [f"{r['contender']} ({r['workload']})" for r in rows]
        bars = ax.barh(labels, [r["events_per_s"] for r in rows], color="#4C72B0")
        for bar, r in zip(bars, rows, strict=True):
            if not r.get("complete"):
                bar.set_hatch("//")
        ax.invert_yaxis()
        ax.set_xlabel("sustained events/s (hatched: time-boxed, partial)")
        ax.set_title(f"tailor bench: throughput on {results.get('machine', {}).get('cpus', '?')} cores")
        fig.tight_layout()
        path = stem.with_name(stem.name + "-throughput.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    runs = [run for run in results.get("latency", []) if run["steps"]]
    if runs:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for run in runs:
            xs = [s["achieved_rate"] for s in run["steps"] if s["redis"]["p99_ms"] is not None]
            ys = [s["redis"]["p99_ms"] for s in run["steps"] if s["redis"]["p99_ms"] is not None]
            ax.plot(xs, ys, marker="o", label=run["contender"])
        ax.set_xlabel("offered load, events/s")
        ax.set_ylabel("event -> Redis p99, ms")
        ax.set_yscale("log")
        ax.legend()
        ax.set_title("p99 latency under load")
        fig.tight_layout()
        path = stem.with_name(stem.name + "-latency.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write(results: dict, out_dir: Path, stem: str, with_plots: bool = True) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    paths = [json_path, md_path]
    md_path.write_text(markdown(results) + "\n")
    if with_plots:
        paths += plots(results, out_dir / stem)
    results["files"] = [str(p) for p in paths]
    json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return paths


def _num(value, digits: int = 3) -> str:  # type: ignore[no-untyped-def]
    if value is None:
        return "-"
    return f"{value:,.0f}" if digits == 0 else f"{value:g}"


def _pcts(stats: dict) -> str:
    return " / ".join("-" if stats.get(k) is None else f"{stats[k]:,}" for k in ("p50_ms", "p95_ms", "p99_ms"))
