"""The job's Redis writer inside a keyed Flink operator: flushed on a processing-time timer, its outage
counters reported as Flink metrics (group ``tailor``: ``redis_flush_failures``,
``redis_commands_replayed``, ``redis_buffered_commands``)."""

from __future__ import annotations

from typing import Any

from connectors.redis_audiences import RedisAudienceWriter
from connectors.redis_clients import RedisAuth


class FlushedRedisWriter:
    def __init__(self, host: str, port: int, prefix: str, metrics_group: Any, auth: RedisAuth) -> None:
        self.writer = RedisAudienceWriter(host, port, prefix, auth=auth)
        self.flush_at = 0  # the armed processing-time timer, 0 = none
        self._failures = metrics_group.counter("redis_flush_failures")
        self._replayed = metrics_group.counter("redis_commands_replayed")
        # A distribution, not a Python gauge (a JVM thread calling into Python crashes a cancelling job).
        self._buffered = metrics_group.distribution("redis_buffered_commands")
        self._reported = (0, 0)

    def arm(self, ctx: Any) -> None:
        """After a write: make sure a flush comes within ``max_delay_ms`` even if no record follows."""
        if self.writer.pending and not self.flush_at:
            self.flush_at = ctx.timer_service().current_processing_time() + self.writer.max_delay_ms
            ctx.timer_service().register_processing_time_timer(self.flush_at)

    def on_timer(self, ctx: Any) -> None:
        """The flush timer fired: flush, report, and keep retrying while Redis is away (even if idle)."""
        self.flush_at = 0
        self.writer.flush()
        failures, replayed = self.writer.flush_failures, self.writer.commands_replayed
        if (failures, replayed) != self._reported:
            self._failures.inc(failures - self._reported[0])
            self._replayed.inc(replayed - self._reported[1])
            self._reported = (failures, replayed)
        self._buffered.update(self.writer.pending)
        if self.writer.pending:
            delay = max(self.writer.max_delay_ms, self.writer.retry_in_ms)
            self.flush_at = ctx.timer_service().current_processing_time() + delay
            ctx.timer_service().register_processing_time_timer(self.flush_at)

    def close(self) -> None:
        self.writer.close()
