"""Custom metrics for the Flink UI that stay off the per-event path.

In thread mode every ``Counter.inc()`` is a call from Python into the JVM; doing it per event costs more
than the rest of normalization. ``BatchedCounter`` counts in Python and hands the JVM one ``inc(n)``
every ``every`` counts or ``max_delay_s`` (checked when it counts; and on ``flush``), so the UI lags by at
most that many counts or that long while the operator works.
"""

from __future__ import annotations

import gc
import time
from typing import Any, ClassVar


class BatchedCounter:
    def __init__(self, counter: Any, every: int = 256, max_delay_s: float = 0.2) -> None:
        self._counter = counter
        self._every = every
        self._max_delay_s = max_delay_s
        self._pending = 0
        self._flushed_at = time.monotonic()

    def inc(self, n: int = 1) -> None:
        self._pending += n
        if self._pending >= self._every or time.monotonic() - self._flushed_at >= self._max_delay_s:
            self.flush()

    def flush(self) -> None:
        self._flushed_at = time.monotonic()
        if self._pending:
            self._counter.inc(self._pending)
            self._pending = 0


class FullCollectionPauses:
    """Full (generation 2) garbage collections of this TaskManager's Python interpreter, for the Flink UI.

    A full collection walks every tracked object with the interpreter lock held, so it stops every Python
    operator of the TaskManager at once; the models hold most of those objects, and such a pause is the
    same for every record in flight. Counters ``python_full_gc`` and ``python_full_gc_ms`` and the
    distribution ``python_full_gc_pause_ms`` (the longest since the last report) show whether the tail
    of event -> Redis latency is the collector.

    The interpreter-wide ``gc.callbacks`` hook only appends to a list: calling the JVM from inside a
    collection, in whatever thread triggered it, is not safe. ``report`` (once per operator call) hands
    what accumulated to the metrics; with several operators in one interpreter, whichever reports first
    takes it.
    """

    _pauses_ms: ClassVar[list[float]] = []  # one interpreter, one hook: shared by every instance
    _started: ClassVar[list[float]] = []

    def __init__(self, metrics_group: Any) -> None:
        self._count = metrics_group.counter("python_full_gc")
        self._ms = metrics_group.counter("python_full_gc_ms")
        self._longest = metrics_group.distribution("python_full_gc_pause_ms")
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    @staticmethod
    def _on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            FullCollectionPauses._started[:] = [time.perf_counter()]
        elif FullCollectionPauses._started:
            FullCollectionPauses._pauses_ms.append((time.perf_counter() - FullCollectionPauses._started[0]) * 1e3)

    def report(self) -> None:
        pauses = FullCollectionPauses._pauses_ms
        if not pauses:
            return
        taken = pauses[:]
        del pauses[: len(taken)]
        self._count.inc(len(taken))
        self._ms.inc(round(sum(taken)))
        self._longest.update(round(max(taken)))
