"""The trending list in Redis (``tailor:popular``), written at most every ``POPULAR_EVERY_MS`` by the operator
that holds the models (the hub, or replica 0 of the sharded recommender): a change in between is written by
a processing-time timer then, or at close when a bounded input ends first."""

from __future__ import annotations

import time
from typing import Any

from state_schemas import popular_items

POPULAR_ITEMS, POPULAR_EVERY_MS = 100, 1000  # the generic list in Redis: its length, its refresh interval


class ThrottledPopularList:
    def __init__(self, writer: Any) -> None:
        self.writer = writer  # connectors.redis_audiences.RedisAudienceWriter
        self.written_at, self.pending = 0, False

    def changed(self, model: Any, now: int, ctx: Any) -> None:
        """``model`` (anything with ``popular(k) -> PopularItems``) learned: write now, or arm the timer."""
        if now - self.written_at >= POPULAR_EVERY_MS:
            self.write(model, now)
        elif not self.pending:
            self.pending = True
            ctx.timer_service().register_processing_time_timer(self.written_at + POPULAR_EVERY_MS)

    def write_pending(self, model: Any) -> None:
        """From the timer, or at close: write the change still waiting, if any."""
        if self.pending and model is not None:
            self.write(model, int(time.time() * 1000))

    def write(self, model: Any, now: int) -> None:
        self.written_at, self.pending = now, False
        self.writer.write_popular(popular_items.encode(model.popular(POPULAR_ITEMS), emit_time=now))
