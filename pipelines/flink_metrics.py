"""Custom metrics for the Flink UI that stay off the per-event path.

In thread mode every ``Counter.inc()`` is a call from Python into the JVM; doing it per event costs more
than the rest of normalization. ``BatchedCounter`` counts in Python and hands the JVM one ``inc(n)``
every ``every`` events (and on ``flush``), so the UI lags by at most that many events.
"""

from __future__ import annotations

from typing import Any


class BatchedCounter:
    def __init__(self, counter: Any, every: int = 256) -> None:
        self._counter = counter
        self._every = every
        self._pending = 0

    def inc(self, n: int = 1) -> None:
        self._pending += n
        if self._pending >= self._every:
            self._counter.inc(self._pending)
            self._pending = 0

    def flush(self) -> None:
        if self._pending:
            self._counter.inc(self._pending)
            self._pending = 0
