"""End-to-end latency: event produced -> segment change visible, seen the way a downstream reader sees it.

Two listeners run as threads in the harness while a paced simulator (event time = send time) feeds a
contender:

* :class:`RedisChangeListener` subscribes to the contender's segment-changes pub/sub channel
  (published in the same pipeline as the audience-set update, so "on the channel" means "in
  Redis");
* :class:`KafkaChangeListener` reads the contender's segment-changes topic as a ``read_committed``
  consumer (for the Flink job: visible when the checkpoint covering the change completes).

Only changes caused by an event (``trigger == "event"``) are timed: their ``event_time`` is the
triggering event's time, which the paced producer set to the send time. Timer-driven changes have no
producing event. Each observation is ``(received_ms, latency_ms)``; :func:`percentiles` summarises the
ones whose event fell in a window.

>>> percentiles([(0, v) for v in range(1, 101)])
{'count': 100, 'p50_ms': 50, 'p95_ms': 95, 'p99_ms': 99, 'max_ms': 100}
"""

from __future__ import annotations

import statistics
import threading
import time

import orjson

from connectors.kafka_events import TopicFollower
from connectors.redis_reader import Subscription


class _Listener(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.observed: list[tuple[int, int, int]] = []  # (event_time, received, latency)
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def _record(self, payload: bytes, received: int) -> None:
        change = orjson.loads(payload)
        if change.get("trigger") == "event":
            self.observed.append((change["event_time"], received, received - change["event_time"]))

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)

    def window(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """(received, latency) of the changes whose triggering event happened in [start, end)."""
        return [(r, lat) for t, r, lat in list(self.observed) if start_ms <= t < end_ms]


class RedisChangeListener(_Listener):
    def __init__(self, host: str, port: int, prefix: str) -> None:
        super().__init__()
        self.channels = Subscription(host, port, prefix, changes=True, recommendations=False)

    def run(self) -> None:
        self.ready.set()
        while not self.stopping.is_set():
            message = self.channels.get(timeout_s=0.2)
            if message is not None:
                self._record(message[1], int(time.time() * 1000))
        self.channels.close()


class KafkaChangeListener(_Listener):
    """Reads every partition from its end; assigned by hand, so no group join and no metadata race on a
    freshly created topic (a subscribing consumer can join with an empty assignment and miss the run)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__()
        self.follower = TopicFollower(bootstrap, topic, wait_s=30.0)

    def run(self) -> None:
        self.ready.set()
        while not self.stopping.is_set():
            records = self.follower.poll(timeout_s=0.2)
            received = int(time.time() * 1000)
            for record in records:
                self._record(record.value, received)
        self.follower.close()


def percentiles(observations: list[tuple[int, int]]) -> dict:
    """count, p50/p95/p99/max of the latencies (ms); None values when nothing was observed."""
    values = sorted(lat for _r, lat in observations)
    if len(values) < 2:
        return {"count": len(values), "p50_ms": None, "p95_ms": None, "p99_ms": None,
                "max_ms": values[-1] if values else None}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"count": len(values), "p50_ms": round(q[49]), "p95_ms": round(q[94]), "p99_ms": round(q[98]),
            "max_ms": values[-1]}
