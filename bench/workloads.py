"""Benchmark workloads: a topic of events loaded into Kafka once, then read by every contender.

Two kinds:

* ``simulated`` -- seeded :class:`evaluation.simulator.ShopperSimulator` traffic (same seed and sizes, same
  events), published as fast as Kafka takes it with synthetic event times advancing at ``sim_rate``
  events per simulated second, so sessions, carts and timers behave as in live traffic;
* ``taobao`` -- a replay of ``../shared/data/taobao/user_behavior_sample.csv`` (the rows
  :mod:`connectors.taobao_csv` accepts; the rejected ones are counted, never sent).

Every contender then consumes the same topic with a consumer group of its own, so all of them see
identical data. :class:`Workload` records what was loaded: the number of events (the number every
contender must count), the distinct user keys (the divisor for state bytes per user) and how long the
load took.

A paced load (:func:`paced_simulation`) is different: it publishes at a wall-clock rate with
timestamps = send time, for the latency runs.

>>> Workload("simulated", "t", 10, 3, 0.5).to_dict()["events"]
10
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from connectors import kafka_bulk, kafka_events
from connectors import kafka_topics as topics
from connectors.taobao_csv import TaobaoEvent, read_taobao
from evaluation.simulator import ShopperSimulator
from settings import PROJECT_ROOT, Settings

TAOBAO_CSV = PROJECT_ROOT.parent / "shared" / "data" / "taobao" / "user_behavior_sample.csv"
# Event-time speed of a pre-loaded simulation: like a busy shop (sessions of ~20 s of think time).
SIM_RATE = 2_000.0


@dataclass(frozen=True)
class Workload:
    kind: str  # "simulated" | "taobao"
    topic: str
    events: int  # records in the topic: what every contender must count
    users: int  # distinct user keys (userId, else anonymousId)
    load_s: float  # time the load took
    rejected: int = 0  # source rows not sent (taobao: malformed rows)
    seed: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def load_simulated(
    settings: Settings,
    topic: str,
    events: int,
    users: int,
    items: int,
    seed: int = 11,
    sim_rate: float = SIM_RATE,
    progress: Callable[[str], None] = print,
    exposed_share: float = 0.0,
) -> Workload:
    """Publish ``events`` seeded simulator events to a fresh ``topic`` as fast as Kafka takes them.

    ``exposed_share``: that share of the users (by a hash of their id) first get an ``Experiment Viewed``,
    an extra event before their first one, so the job's experiment metrics have work to do."""
    topics.ensure_topics(settings, [topic])
    sim = ShopperSimulator(seed=seed, users=users, items=items)
    start_ms = int(time.time() * 1000) - int(1000 * events / sim_rate)
    keys: set[bytes | None] = set()
    sent = 0
    t0 = time.monotonic()
    with kafka_bulk.bulk_publisher(settings) as publisher:
        for n, (ts, event) in enumerate(sim.timed_events(start_ms, sim_rate, events), start=1):
            key = kafka_events.event_key(event)
            if key not in keys and exposed_share and zlib.crc32(key or b"") % 1000 < exposed_share * 1000:
                kafka_events.publish_event(publisher, topic, _exposure(event, ts), ts)
                sent += 1
            keys.add(key)
            kafka_events.publish_event(publisher, topic, event, ts)
            sent += 1
            if n % 100_000 == 0:
                progress(f"bench:   loaded {n:,} / {events:,} events")
        publisher.flush()
    return Workload("simulated", topic, sent, len(keys), time.monotonic() - t0, seed=seed)


def _exposure(event: dict, ts: int) -> dict:  # type: ignore[type-arg]
    ids = {k: event[k] for k in ("userId", "anonymousId") if event.get(k)}
    return {"type": "track", "event": "Experiment Viewed", "messageId": f"x-{event['messageId']}", "timestamp": ts,
            "properties": {"experiment_name": "bench", "variation_name": "b", "segments": ["weekly_active"]}, **ids}


def load_taobao(
    settings: Settings,
    topic: str,
    limit: int | None = None,
    path: Path = TAOBAO_CSV,
    progress: Callable[[str], None] = print,
) -> Workload:
    """Publish the Taobao sample (its first ``limit`` good rows) to a fresh ``topic``."""
    if not path.is_file():
        raise FileNotFoundError(f"the Taobao sample is missing: {path} (see ../shared/data/README.md)")
    topics.ensure_topics(settings, [topic])
    sent = rejected = 0
    keys: set[bytes | None] = set()
    t0 = time.monotonic()
    with kafka_bulk.bulk_publisher(settings) as publisher:
        for row in read_taobao(path):
            if not isinstance(row, TaobaoEvent):
                rejected += 1
                continue
            if limit is not None and sent >= limit:
                break
            keys.add(kafka_events.event_key(row.event))
            kafka_events.publish_event(publisher, topic, row.event)
            sent += 1
            if sent % 100_000 == 0:
                progress(f"bench:   loaded {sent:,} Taobao events")
        publisher.flush()
    return Workload("taobao", topic, sent, len(keys), time.monotonic() - t0, rejected=rejected)


def paced_simulation(
    settings: Settings, topic: str, rate: float, seconds: float, users: int, seed: int
) -> subprocess.Popen[bytes]:
    """``tailor simulate`` in a child process: ``rate`` events/s for ``seconds``, event time = send time.

    A child process, so the producer does not share the GIL with the harness's latency listeners.
    """
    argv = [sys.executable, "-m", "tailor", "simulate", "--rate", str(rate), "--duration", str(seconds),
            "--users", str(users), "--seed", str(seed)]
    env = {**os.environ, **settings.replace(events_topic=topic).to_environ()}
    return subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def sent_report(simulate_output: bytes) -> tuple[int, float] | None:
    """(events sent, seconds) from ``tailor simulate``'s last line.

    >>> sent_report(b"sent 1,234 simulated events to t in 2.5 s (494/s), event time ...")
    (1234, 2.5)
    """
    for line in reversed(simulate_output.decode(errors="replace").splitlines()):
        if line.startswith("sent "):
            words = line.split()
            return int(words[1].replace(",", "")), float(words[words.index("in") + 1])
    return None
