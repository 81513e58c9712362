"""End-to-end latency: event produced -> segment change visible, seen the way a downstream reader sees it.

Two listeners run as threads in the harness while a paced simulator (event time = send time) feeds a
contender:

* :class:`RedisChangeListener` subscribes to the contender's segment-changes and recommendations pub/sub
  channels (published in the same pipeline as the audience-set or list update, so "on the channel" means
  "in Redis");
* :class:`KafkaChangeListener` reads the contender's segment-changes topic as a ``read_committed``
  consumer (for the Flink job: visible when the checkpoint covering the change completes).

Only changes caused by an event (``trigger == "event"``) and recommendations are timed: their
``event_time`` is the triggering event's time, which the paced producer set to the send time. Timer-driven
changes have no producing event. Each is kept by kind (``rule``, ``cluster``, ``recommendation``) with its
latency to the listener and to its ``emit_time`` (when the job's operator made it: the rest is the Redis
writer's buffering and the wire); :func:`percentiles` summarises those whose event fell in a window.

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

CHANGE_KINDS = ("rule", "cluster")
RECOMMENDATION = "recommendation"


class _Listener(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        # (event_time, received, latency, kind, latency to emit_time)
        self.observed: list[tuple[int, int, int, str, int]] = []
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def _record(self, payload: bytes, received: int) -> None:
        record = orjson.loads(payload)
        if record.get("trigger") == "event" or "items" in record:
            t = record["event_time"]
            kind = RECOMMENDATION if "items" in record else record["kind"]
            self.observed.append((t, received, received - t, kind, record.get("emit_time", received) - t))

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)

    def window(
        self, start_ms: int, end_ms: int, kinds: tuple[str, ...] = CHANGE_KINDS, to_emit: bool = False
    ) -> list[tuple[int, int]]:
        """(received, latency) of the ``kinds`` whose triggering event happened in [start, end); ``to_emit``:
        the latency to the job's emit time instead of to this listener.

        >>> listener = _Listener()
        >>> listener._record(b'{"trigger":"event","kind":"rule","event_time":100,"emit_time":130}', 150)
        >>> listener._record(b'{"items":[],"event_time":100,"emit_time":140}', 190)
        >>> listener.window(0, 200), listener.window(0, 200, (RECOMMENDATION,), to_emit=True)
        ([(150, 50)], [(190, 40)])
        """
        return [(r, emitted if to_emit else lat) for t, r, lat, kind, emitted in list(self.observed)
                if start_ms <= t < end_ms and kind in kinds]

    def kinds(self) -> list[str]:
        """The kinds observed so far."""
        return sorted({o[3] for o in list(self.observed)})


class RedisChangeListener(_Listener):
    def __init__(self, host: str, port: int, prefix: str) -> None:
        super().__init__()
        self.channels = Subscription(host, port, prefix, changes=True, recommendations=True)

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


EXCHANGE = "exchange"


class ExchangeListener(KafkaChangeListener):
    """The sharded recommender's model-updates topic: how long a replica's updates take from its clock at
    writing to being readable by the others (``read_committed``: a checkpoint commits them): the staleness
    of the item side, less the replicas' own read and apply.

    >>> listener = ExchangeListener.__new__(ExchangeListener); _Listener.__init__(listener)
    >>> listener._record(b'{"schema":"tailor.model_updates/1","record_id":"w:1","emit_time":100,"updates":[]}', 640)
    >>> listener.window(0, 200, (EXCHANGE,))
    [(640, 540)]
    """

    def _record(self, payload: bytes, received: int) -> None:
        emitted = orjson.loads(payload)["emit_time"]
        self.observed.append((emitted, received, received - emitted, EXCHANGE, 0))


def percentiles(observations: list[tuple[int, int]]) -> dict:
    """count, p50/p95/p99/max of the latencies (ms); None values when nothing was observed."""
    values = sorted(lat for _r, lat in observations)
    if len(values) < 2:
        return {"count": len(values), "p50_ms": None, "p95_ms": None, "p99_ms": None,
                "max_ms": values[-1] if values else None}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"count": len(values), "p50_ms": round(q[49]), "p95_ms": round(q[94]), "p99_ms": round(q[98]),
            "max_ms": values[-1]}
