"""Custom metrics for the Flink UI that stay off the per-event path.

In thread mode every ``Counter.inc()`` is a call from Python into the JVM; doing it per event costs more
than the rest of normalization. ``BatchedCounter`` counts in Python and hands the JVM one ``inc(n)``
every ``every`` counts or ``max_delay_s`` (checked when it counts; and on ``flush``), so the UI lags by at
most that many counts or that long while the operator works.
"""

from __future__ import annotations

import time
from typing import Any


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
