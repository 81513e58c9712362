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
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.wrk import ensure_wrk, run_wrk
from connectors.kafka_topics import delete_topics, end_offsets, ensure_topics
from settings import PROJECT_ROOT, Settings
from stack.service_process import running_collector

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
    ensure_wrk()
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
                stats = run_wrk(url, script, scenario.connections, seconds)
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
