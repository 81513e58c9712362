"""The per-user segmentation step, written once: what happens to one user's state on an event or a timer.

    on_event   dedupe -> ProfileTracker.process_one -> model input (models on) -> re-arm -> encode changes
    on_timer   the armed timer? -> ProfileTracker.on_timer(timer instant) -> re-arm -> encode changes

Every runner calls it: the Flink job (``pipelines.segmentation_functions.TrackSegments``), the in-process
driver ``operators.segmenter.Segmenter`` (the plain-Python baseline, the profiler, the contract suite,
the evaluations). They differ only in where state and timers live and where the outputs go.

Timers are armed lazily, as Flink keeps them: one per user is enough, re-registered only when the next
deadline is *earlier* than the armed one (``state.timer_at``). Flink cannot unregister the later one, so
it still fires; a timer that is not the armed one is stale and changes nothing (no deadline is due
before the armed one). A timer lets the user's time run to *its own instant*, never to the watermark:
the watermark may be far ahead of this user (another partition read first), and jumping there would
turn this user's next events into late ones. Changes caused by a timer therefore carry the exact
deadline as their event time, whatever the read order.

Deadlines beyond ``MAX_TIMER_MS`` (Java's long) are never armed: no watermark reaches them.

>>> from state_schemas.events import CanonicalEvent
>>> rules = SegmentRules.from_dict({"session_gap": "30m", "segments": [
...     {"name": "browsing", "when": "session.product_views >= 2"}]})
>>> step = SegmentationStep(rules)
>>> def view(i, ts): return CanonicalEvent(f"m{i}", i, "u1", "u1", None, "track", "product_viewed", ts)
>>> out = step.on_event(None, view(1, 1_000), emit_time=5)
>>> out.changes, out.timer_at
([], 1801000)
>>> out = step.on_event(out.state, view(2, 2_000), emit_time=6)
>>> [(c.segment, c.change) for c in out.changes], out.timer_at   # the armed timer is earlier: kept
([('browsing', 'enter')], None)
>>> step.on_event(out.state, view(2, 2_000), emit_time=7) is None   # a duplicate changes nothing
True
>>> step.on_timer(out.state, "u1", timer_at=1_901_000, emit_time=8) is None   # not the armed timer
True
>>> out = step.on_timer(out.state, "u1", timer_at=1_801_000, emit_time=8)   # the session went on
>>> out.changes, out.timer_at
([], 1802000)
>>> out = step.on_timer(out.state, "u1", timer_at=1_802_000, emit_time=9)
>>> [(c.segment, c.change, c.trigger, c.event_time) for c in out.changes], out.state.timer_at
([('browsing', 'exit', 'timer', 1802000)], 0)
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.model_hub import model_input
from operators.profile_tracker import ProfileTracker
from operators.segment_rules import SegmentRules
from state_schemas import events as ev
from state_schemas import segment_change
from state_schemas.events import CanonicalEvent
from state_schemas.model_input import ModelInput
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import SegmentChange

# Flink timers and watermarks are Java longs.
MAX_TIMER_MS = 2**63 - 1


@dataclass(slots=True)
class StepOutput:
    """What one step hands back to its runner."""

    state: ProfileState  # to store (the same object that came in, updated, or a new one)
    changes: list[SegmentChange]
    encoded: list[bytes]  # tailor.segment_change/2 of each change, stamped with the step's emit time
    timer_at: int | None  # register an event-time timer at this instant; None: the armed one covers it
    model_input: ModelInput | None  # the model hub's input for this event (models on, events only)


class SegmentationStep:
    def __init__(self, rules: SegmentRules, model_inputs: bool = False) -> None:
        """``model_inputs``: also compute the model hub's input (and the behavior stats it keeps in state)."""
        self.tracker = ProfileTracker(rules)
        self.model_inputs = model_inputs

    def on_event(self, state: ProfileState | None, event: CanonicalEvent, emit_time: int) -> StepOutput | None:
        """Apply ``event`` to its user's ``state``; None if it is a duplicate (state untouched)."""
        if self.tracker.is_duplicate(state, event):
            return None
        state, changes = self.tracker.process_one(state, event)
        active = event.name != ev.TRAITS_UPDATED  # a traits-only identify is not behaviour to learn from
        model = model_input(state, event) if self.model_inputs and active else None
        return self._finish(state, changes, emit_time, model)

    def absorb(
        self, state: ProfileState | None, other: ProfileState, event: CanonicalEvent, emit_time: int
    ) -> StepOutput | None:
        """Merge a linked id's ``other`` state in (``event``: its transfer); None if that is a duplicate.
        No model input: the merged stats reach the models with the user's next event."""
        if self.tracker.is_duplicate(state, event):
            return None
        state, changes = self.tracker.merge(state, other, event)
        return self._finish(state, changes, emit_time, None)

    def forget(
        self, state: ProfileState, event: CanonicalEvent, emit_time: int, reason: str, trigger: str = "consent"
    ) -> StepOutput:
        """The user leaves every segment at ``event``'s time (consent withdrawn, or erased); the runner
        deletes the state (or keeps an erase marker).

        The exits carry ``trigger`` and ``reason``; the returned state is empty.
        """
        changes = [
            SegmentChange(event.user_key, name, "rule", segment_change.EXIT, reason, {}, trigger, event.timestamp,
                          event.message_id, self.tracker.rules.version)
            for name in state.segments
        ]
        encoded = [segment_change.encode(c, emit_time) for c in changes]
        return StepOutput(ProfileState(), changes, encoded, None, None)

    def on_timer(self, state: ProfileState, user_id: str, timer_at: int, emit_time: int) -> StepOutput | None:
        """A timer registered for ``timer_at`` fired; None if it is stale (state untouched)."""
        if state.timer_at != timer_at:
            return None
        state.timer_at = 0
        state, changes = self.tracker.on_timer(state, user_id, timer_at)
        return self._finish(state, changes, emit_time, None)

    def _finish(
        self, state: ProfileState, changes: list[SegmentChange], emit_time: int, model: ModelInput | None
    ) -> StepOutput:
        timer_at = None
        deadline = self.tracker.next_deadline(state)
        if deadline is not None and deadline <= MAX_TIMER_MS and (not state.timer_at or deadline < state.timer_at):
            state.timer_at = timer_at = deadline
        encoded = [segment_change.encode(c, emit_time) for c in changes]
        return StepOutput(state, changes, encoded, timer_at, model)
