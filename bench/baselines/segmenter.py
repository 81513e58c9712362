"""The segmentation step without Flink: the job's per-event logic, for the plain-Python baselines.

It does what ``pipelines.segmentation_functions`` does around the same operators -- normalize,
drop duplicates, ``ProfileTracker.process_one``, Redis audiences through ``RedisAudienceWriter``,
changes encoded as ``tailor.segment_change/1`` -- plus the event-time timers Flink would keep: a
heap of (deadline, user) fired when the watermark (highest event time seen minus the
out-of-orderness bound) passes them, re-armed lazily from ``state.timer_at`` exactly like the job.

State lives wherever the caller keeps it: ``load(user)`` / ``store(user, state)`` (a dict of
:class:`ProfileState` objects by default; the Faust app overrides them with a table of encoded state).

>>> seg = Segmenter(_demo_rules(), redis_writer=None)
>>> raw = b'{"type":"track","event":"Product Viewed","messageId":"m%d","userId":"u1","timestamp":%d}'
>>> outs = [seg.process(raw % (i, 1_700_000_000_000 + i)) for i in range(3)]
>>> [len(o) for o in outs]
[0, 1, 0]
>>> seg.process(raw % (1, 1_700_000_000_005))   # a duplicate messageId counts once
[]
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from operators.normalize import InvalidEvent, normalize
from operators.profile_tracker import ProfileTracker
from operators.segment_rules import SegmentRules
from state_schemas import dead_letter, segment_change
from state_schemas.profile_state import ProfileState

# (user_id, tailor.segment_change/1 JSON bytes)
Output = tuple[str, bytes]


class Segmenter:
    def __init__(
        self,
        rules: SegmentRules,
        redis_writer,  # type: ignore[no-untyped-def]  # RedisAudienceWriter | None
        out_of_orderness_ms: int = 5_000,
        source_topic: str = "events",
        on_dead_letter: Callable[[bytes], None] | None = None,
    ) -> None:
        self.tracker = ProfileTracker(rules)
        self.redis = redis_writer
        self.out_of_orderness_ms = out_of_orderness_ms
        self.source_topic = source_topic
        self.on_dead_letter = on_dead_letter
        self.profiles: dict[str, ProfileState] = {}
        self.timers: list[tuple[int, str]] = []
        self.max_event_time = 0
        self.dead_letters = 0

    # -- state hooks (override for another store) ---------------------------------------------------
    def load(self, user: str) -> ProfileState | None:
        return self.profiles.get(user)

    def store(self, user: str, state: ProfileState) -> None:
        self.profiles[user] = state

    # -- verbs ---------------------------------------------------------------------------------------
    def process(self, raw: bytes) -> list[Output]:
        """One raw Kafka value -> the segment changes it causes (timers that came due first)."""
        try:
            event = normalize(raw)
        except InvalidEvent as exc:
            self.dead_letters += 1
            if self.on_dead_letter is not None:
                now = int(time.time() * 1000)
                self.on_dead_letter(dead_letter.encode(exc.code, exc.reason, bytes(raw), self.source_topic, now))
            return []
        outputs = self.fire_timers(event.timestamp - self.out_of_orderness_ms) if event.timestamp > self.max_event_time else []
        if event.timestamp > self.max_event_time:
            self.max_event_time = event.timestamp
        state = self.load(event.user_key)
        if self.tracker.is_duplicate(state, event):
            return outputs
        state, changes = self.tracker.process_one(state, event)
        outputs += self._emit(event.user_key, state, changes)
        return outputs

    def fire_timers(self, watermark: int) -> list[Output]:
        """Every timer at or before ``watermark`` (Flink fires a timer when the watermark passes it)."""
        outputs: list[Output] = []
        timers = self.timers
        while timers and timers[0][0] <= watermark:
            at, user = heapq.heappop(timers)
            state = self.load(user)
            if state is None or state.timer_at != at:
                continue  # superseded by an earlier re-arm, like the job's lazily re-armed timer
            state.timer_at = 0
            state, changes = self.tracker.on_timer(state, user, max(at, watermark))
            outputs += self._emit(user, state, changes)
        return outputs

    def flush(self) -> None:
        if self.redis is not None:
            self.redis.flush()

    def _emit(self, user: str, state: ProfileState, changes: list) -> list[Output]:  # type: ignore[type-arg]
        deadline = self.tracker.next_deadline(state)
        if deadline is not None and (not state.timer_at or deadline < state.timer_at):
            heapq.heappush(self.timers, (deadline, user))
            state.timer_at = deadline
        self.store(user, state)
        if not changes:
            return []
        now = int(time.time() * 1000)
        encoded = [segment_change.encode(c, now) for c in changes]
        if self.redis is not None:
            self.redis.write(user, state, changes, encoded)
        return [(user, payload) for payload in encoded]


def _demo_rules() -> SegmentRules:
    return SegmentRules.from_dict({"session_gap": "30m", "segments": [
        {"name": "browsing", "when": "session.product_views >= 2"}]})
