"""``tailor bench serve``: ``tailor serve`` under wrk, with Redis warm and with Redis stopped.

A Redis of the benchmark's own (``stack.redis_server`` in a temporary home, so the stack's Redis and any
running job are untouched) holds profiles and recommendations of 10,000 users written by the job's own
writer; wrk asks for random users' recommendations. Scenarios:

* ``paced ~1,000 req/s, Redis warm``: 10 connections, each pausing so the offered load is ~1,000/s
  (target: p99 <= 10 ms);
* ``saturating, Redis warm``: 8 connections as fast as they can;
* ``paced ~1,000 req/s, Redis stopped (SIGSTOP)``: every answer must be fallback content within the
  budget (target: 100 % answered, none slower than budget + 5 ms; wrk's max latency is reported).

Prints requests/s and latency percentiles; writes ``bench-results/serve-*.json``.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path

import orjson

from bench.wrk import ensure_wrk, run_wrk
from connectors.redis_audiences import RedisAudienceWriter
from settings import PROJECT_ROOT, Settings
from stack import redis_server
from stack.process import free_port
from stack.service_process import running_server
from state_schemas.profile_state import ProfileState

USERS = 10_000
LUA = r"""
local users = %(users)d
function request()
  return wrk.format("GET", "/v1/users/u" .. math.random(users) .. "/recommendations?k=10")
end
function delay() return %(pause_ms)d end
"""


def run(settings: Settings, seconds: float = 10.0) -> int:
    ensure_wrk()
    results = []
    with tempfile.TemporaryDirectory(prefix="tailor-bench-serve-") as tmp:
        bench = settings.replace(home=Path(tmp), redis_port=free_port(), redis_prefix="bench-serve:")
        pid, _ = redis_server.start(bench)
        try:
            _populate(bench)
            for name, pause_ms, connections, frozen in [
                ("paced ~1,000 req/s, Redis warm", 9, 10, False),
                ("saturating, Redis warm", 0, 8, False),
                ("paced ~1,000 req/s, Redis stopped (SIGSTOP)", 9, 10, True),
            ]:
                script = Path(tmp) / "load.lua"
                script.write_text(LUA % {"users": USERS, "pause_ms": pause_ms})
                with running_server(bench, Path(tmp) / "serve.log") as url:
                    if frozen:
                        os.kill(pid, signal.SIGSTOP)
                    try:
                        stats = run_wrk(url, script, connections, seconds)
                        metrics = _metrics(url)
                    finally:
                        if frozen:
                            os.kill(pid, signal.SIGCONT)
                row = {"scenario": name, "budget_ms": bench.serve_budget_ms, **stats,
                       "fallbacks": metrics.get("tailor_serve_fallbacks_total", 0)}
                results.append(row)
                print(f"{name:<46} {stats['requests_per_s']:>8,.0f} req/s  p50 {stats['p50_ms']:.2f} ms  "
                      f"p99 {stats['p99_ms']:.2f} ms  max {stats['max_ms']:.1f} ms  non-2xx "
                      f"{stats['requests'] - stats['ok_requests']}  fallbacks {row['fallbacks']:,.0f}", flush=True)
        finally:
            redis_server.stop(bench)
    out_dir = PROJECT_ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"serve-{time.strftime('%Y%m%d%H%M%S')}.json"
    path.write_text(json.dumps({"seconds": seconds, "users": USERS, "results": results}, indent=2))
    print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


def _populate(settings: Settings) -> None:
    writer = RedisAudienceWriter(settings.redis_host, settings.redis_port, settings.redis_prefix)
    for n in range(1, USERS + 1):
        user = f"u{n}"
        writer.write(user, ProfileState(segments=["weekly_active"], sessions_total=n % 7), [], [])
        items = [{"item_id": f"p{(n * 7 + i) % 5000}", "score": 1.0 - i / 10, "source": "covisit"} for i in range(10)]
        writer.write_recommendations(user, orjson.dumps({
            "schema": "tailor.recommendation/2", "user_id": user, "items": items, "model_version": "bench",
            "message_id": f"m{n}", "event_time": 1, "emit_time": 2}))
    writer.flush()


def _metrics(url: str) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {name: float(value) for name, value in (line.split() for line in text.splitlines()
                                                   if line and not line.startswith("#"))}
