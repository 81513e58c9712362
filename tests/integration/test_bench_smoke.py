"""`tailor bench` end to end on a tiny workload, so the harness cannot rot: a baseline, the two PyFlink
floor jobs and the real Flink job (embedded, thread mode) consume the same pre-loaded topic; one short latency
step."""

from __future__ import annotations

import socket

import orjson
import pytest

from bench.runner import BenchOptions, run_bench

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bench_smoke_runs_a_baseline_and_the_flink_job_on_the_same_data(stack_settings, tmp_path):
    settings = stack_settings.replace(rest_port=_free_port(), checkpoint_interval_ms=1000)
    options = BenchOptions.smoke(events=2_000, users=200, only="python,thread,floor,floor-batched", max_seconds=60,
                                 latency_fractions=(0.5,), latency_seconds=3.0, out_dir=tmp_path, plots=True)

    results = run_bench(settings, options, out=lambda _line: None)

    saved = orjson.loads((tmp_path / next(p.name for p in tmp_path.glob("*.json"))).read_bytes())
    assert saved["schema"] == "tailor.bench/1"
    assert saved["workloads"]["simulated"]["events"] == 2_000
    by_contender = {r["contender"]: r for r in saved["throughput"]}
    assert set(by_contender) == {"python", "thread", "floor", "floor-batched"}
    for name in ("floor", "floor-batched"):  # no outputs: only their counts and their (tiny) state
        floor = by_contender.pop(name)
        assert "error" not in floor, floor.get("error")
        assert floor["processed"] == 2_000 and floor["flink_state"]["state_size"] > 0
    for run in by_contender.values():
        assert "error" not in run, run.get("error")
        assert run["complete"] is True
        assert run["processed"] == run["events"] == 2_000  # every event counted, none twice
        assert 50 < run["events_per_s"] < 10_000_000
        assert run["cpu_s_per_1k_events"] > 0
        assert run["redis"]["users"] > 0 and 50 < run["redis"]["bytes_per_user"] < 5_000
    assert by_contender["thread"]["peak_rss_mb"]["jvm"] > 100  # the mini-cluster's JVM was measured
    state = by_contender["thread"]["flink_state"]
    assert state is not None and state["state_size"] > 0 and state["bytes_per_user"] > 0
    # Same data, same operators: about the same users have a profile in Redis (timer-driven changes may
    # differ by when each contender was stopped).
    users = [by_contender[name]["redis"]["users"] for name in ("python", "thread")]
    assert abs(users[0] - users[1]) <= 0.05 * max(users)
    latency = {run["contender"]: run for run in saved["latency"]}
    assert set(latency) == {"python", "thread"}  # the floor writes nothing to time
    for name in ("python", "thread"):
        assert "error" not in latency[name], latency[name].get("error")
        step = latency[name]["steps"][0]
        assert step["sent"] > 0 and step["redis"]["count"] > 0 and step["redis"]["p99_ms"] > 0
        # no models here: every timed change is a rule change, and it was emitted before Redis had it
        assert set(step["redis_by_kind"]) == {"rule"}
        assert step["redis_by_kind"]["rule"]["count"] == step["redis"]["count"]
        assert step["emitted_by_kind"]["rule"]["p50_ms"] <= step["redis_by_kind"]["rule"]["p50_ms"]
    assert latency["thread"]["steps"][0]["kafka_read_committed"]["count"] > 0
    assert any(p.endswith("-throughput.png") for p in results["files"])
