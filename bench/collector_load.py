"""``tailor bench collector``: ``tailor collect`` under a real HTTP load tool (wrk, from Debian).

Scenarios, each against a fresh collector writing to its own topics:

* ``saturate, batch of 20`` / ``batch of 100``: as many ``/v1/batch`` requests as 8 connections can send
  (SDKs batch: analytics-python sends up to 100 messages per request);
* ``saturate, single events``: ``/v1/track``, one event per request;
* ``paced 5,000 events/s``: batches of 20 from 5 connections, each waiting so that the offered load is
  about 5,000 events/s (wrk's ``delay()``): the latency a producer sees at the target load.

Every event carries a unique ``messageId``. After each scenario the topic is counted: every event of a
2xx response must be in Kafka (acknowledged = stored). Prints events/s and latency percentiles (wrk's
own, from the first byte sent to the last byte received) and writes ``bench-results/collector-*.json``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from connectors.kafka_topics import delete_topics, end_offsets, ensure_topics
from settings import PROJECT_ROOT, Settings
from stack import apt
from stack.collector_process import running_collector

WRITE_KEY = "bench-collector"
LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic %(auth)s"
local n, pause, path = %(batch)d, %(pause_ms)d, "%(path)s"
local sent = 0
local tag = tostring(math.random(1e9))
function request()
  sent = sent + 1
  local parts = {}
  for i = 1, n do
    parts[i] = string.format('{"type":"track","event":"Product Viewed","userId":"u%%d","messageId":"%%s-%%d-%%d",'
      .. '"properties":{"product_id":"p%%d","category":"c%%d"}}', (sent * n + i) %% 5000, tag, sent, i, i, i %% 7)
  end
  if n == 1 then return wrk.format(nil, path, nil, parts[1]) end
  return wrk.format(nil, path, nil, '{"batch":[' .. table.concat(parts, ",") .. ']}')
end
function delay() return pause end
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    batch: int
    connections: int
    pause_ms: int = 0


SCENARIOS = (
    Scenario("saturate, single events", 1, 8),
    Scenario("saturate, batch of 20", 20, 8),
    Scenario("saturate, batch of 100", 100, 8),
    Scenario("paced 5,000 events/s, batch of 20", 20, 5, pause_ms=15),
)


def run(settings: Settings, seconds: float = 10.0) -> int:
    if shutil.which("wrk") is None:
        apt.install(["wrk"], "the collector benchmark needs wrk")
    bench = settings.replace(events_topic="bench-collector.events", dead_letters_topic="bench-collector.dead-letters")
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    results = []
    with tempfile.TemporaryDirectory(prefix="tailor-bench-collector-") as tmp:
        for scenario in SCENARIOS:
            topics = [bench.events_topic, bench.dead_letters_topic]
            delete_topics(bench, topics)
            ensure_topics(bench, topics)
            script = Path(tmp) / "load.lua"
            path = "/v1/track" if scenario.batch == 1 else "/v1/batch"
            script.write_text(LUA % {"auth": auth, "batch": scenario.batch, "pause_ms": scenario.pause_ms,
                                     "path": path})
            with running_collector(bench, WRITE_KEY, Path(tmp) / "collector.log") as url:
                argv = ["wrk", "-t1", f"-c{scenario.connections}", f"-d{seconds:g}s", "--latency", "-s",
                        str(script), url]
                out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            stats = parse_wrk(out)
            stored = sum(end_offsets(bench, bench.events_topic).values())
            acked = stats["ok_requests"] * scenario.batch
            row = {**asdict(scenario), **stats, "events_per_s": stats["requests_per_s"] * scenario.batch,
                   "acknowledged_events": acked, "stored_events": stored,
                   "acknowledged_not_stored": max(0, acked - stored)}
            results.append(row)
            print(f"{scenario.name:<36} {row['events_per_s']:>9,.0f} events/s  p50 {stats['p50_ms']:.1f} ms  "
                  f"p99 {stats['p99_ms']:.1f} ms  acknowledged {acked:,} stored {stored:,}", flush=True)
        delete_topics(bench, [bench.events_topic, bench.dead_letters_topic])
    out_dir = PROJECT_ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"collector-{time.strftime('%Y%m%d%H%M%S')}.json"
    path.write_text(json.dumps({"seconds": seconds, "results": results}, indent=2))
    print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0 if all(r["acknowledged_not_stored"] == 0 for r in results) else 1


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, 2xx requests and the latency percentiles of ``wrk --latency`` output.

    >>> parse_wrk('''  Latency Distribution
    ...      50%    3.15ms
    ...      75%    4.01ms
    ...      90%    5.88ms
    ...      99%   52.60ms
    ...   20860 requests in 10.01s, 2.98MB read
    ...   Non-2xx or 3xx responses: 10
    ... Requests/sec:   2084.51''')["ok_requests"]
    20850
    """
    percentiles = {f"p{p}_ms": float(v) * _UNITS[unit]
                   for p, v, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    return {"requests_per_s": rate, "requests": total, "ok_requests": total - (int(bad.group(1)) if bad else 0),
            **percentiles}
