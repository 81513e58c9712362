"""Per-user sessions, counters and rule segments: the heart of the segmentation job.

The tracker is pure: state is passed in and handed back, so the same code runs under Flink, in the
plain-Python baseline and in unit tests. Two verbs:

* ``process_one(state, event)``: first let time run up to the event (firing anything that was due, as a
  timer would have), then apply the event, then re-evaluate the rules;
* ``on_timer(state, user_id, now)``: let time run up to ``now`` (the watermark) with no event.

Both return ``(state, changes)``. Doing "time first, then the event" in ``process_one`` makes the outcome
independent of when Flink happens to fire timers: a replay gives the same changes every time.
``next_deadline(state)`` tells the caller when to set the next timer.

>>> from state_schemas.events import CanonicalEvent
>>> rules = SegmentRules.from_dict({"session_gap": "30m", "segments": [
...     {"name": "browsing", "when": "session.product_views >= 2"}]})
>>> tracker = ProfileTracker(rules)
>>> def view(i, ts): return CanonicalEvent(f"m{i}", i, "u1", "u1", None, "track", "product_viewed", ts)
>>> state, changes = tracker.process_one(None, view(1, 1_000))
>>> state, changes = tracker.process_one(state, view(2, 2_000))
>>> [(c.segment, c.change, c.event_time) for c in changes]
[('browsing', 'enter', 2000)]
>>> tracker.next_deadline(state)
1802000
>>> state, changes = tracker.on_timer(state, "u1", now=1_802_000)
>>> [(c.segment, c.change, c.trigger, c.event_time) for c in changes]
[('browsing', 'exit', 'timer', 1802000)]
"""

from __future__ import annotations

from operators.identity import merge_profiles
from operators.profile_facts import DAY_MS, elapsed_anchor, facts_at
from operators.segment_rules import SegmentRules
from state_schemas import events as ev
from state_schemas.events import CanonicalEvent
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import ENTER, EXIT, SegmentChange

# Guards the catch-up loop against a rule set whose deadlines never run out; real rule sets need a few.
MAX_DEADLINES_PER_ADVANCE = 1_000


class ProfileTracker:
    def __init__(self, rules: SegmentRules) -> None:
        self.rules = rules
        self.gap = rules.session_gap_ms
        self._windows = rules.windows
        self._keep_days = max(self._windows, default=0)
        self._elapsed_offsets = tuple(rules.elapsed_offsets.items())

    # -- verbs -------------------------------------------------------------------------------------
    def is_duplicate(self, state: ProfileState | None, event: CanonicalEvent) -> bool:
        return state is not None and event.dedup_key in state.recent_ids

    def process_one(
        self, state: ProfileState | None, event: CanonicalEvent
    ) -> tuple[ProfileState, list[SegmentChange]]:
        s = ProfileState() if state is None else state
        if self.is_duplicate(s, event):
            return s, []
        if event.name == ev.TRAITS_UPDATED:  # not activity: only remembered, so a re-import is a duplicate
            self._remember(s, event.dedup_key)
            return s, []
        ts = event.timestamp
        changes = self._advance(s, event.user_key, ts) if ts > s.clock else []
        late = ts < s.clock
        self._apply(s, event)
        if late and s.session_start and s.session_last + self.gap <= s.clock:
            # The late event reopened a session that is already past its gap: close it again. Any change
            # that follows is caused by this event, so it is reported as trigger "event", not "timer".
            self._close_session(s)
        changes += self._evaluate(s, event.user_key, s.clock, "event", event.message_id)
        return s, changes

    def merge(
        self, state: ProfileState | None, other: ProfileState, event: CanonicalEvent
    ) -> tuple[ProfileState, list[SegmentChange]]:
        """Fold ``other`` (a merged id's state, ``operators.identity``) into ``state`` at ``event`` (the
        transfer): time first, as for an event, then the merge, then whatever the merged history made
        due, then the rules, whose changes carry trigger "merge"."""
        s = ProfileState() if state is None else state
        changes = self._advance(s, event.user_key, event.timestamp) if event.timestamp > s.clock else []
        s = merge_profiles(s, other, self.gap, self.rules.dedup_window)
        self._remember(s, event.dedup_key)
        changes += self._advance(s, event.user_key, s.clock)
        changes += self._evaluate(s, event.user_key, s.clock, "merge", event.message_id)
        return s, changes

    def on_timer(self, state: ProfileState, user_id: str, now: int) -> tuple[ProfileState, list[SegmentChange]]:
        return state, self._advance(state, user_id, now)

    def next_deadline(self, s: ProfileState) -> int | None:
        """The next instant at which this user's segments may change without a new event."""
        best = s.session_last + self.gap if s.session_start else None
        now = s.clock
        for fact, offsets in self._elapsed_offsets:
            anchor = elapsed_anchor(s, fact)
            if anchor:
                for offset in offsets:
                    if anchor + offset > now:
                        if best is None or anchor + offset < best:
                            best = anchor + offset
                        break
        for n in self._windows:
            for day in s.active_days:  # sorted: the first day still inside the window leaves it first
                leaves_at = (day + n) * DAY_MS
                if leaves_at > now:
                    if best is None or leaves_at < best:
                        best = leaves_at
                    break
        return best

    # -- internals ---------------------------------------------------------------------------------
    def _advance(self, s: ProfileState, user_id: str, until: int) -> list[SegmentChange]:
        changes: list[SegmentChange] = []
        for _ in range(MAX_DEADLINES_PER_ADVANCE):
            due = self.next_deadline(s)
            if due is None or due > until:
                break
            at = max(due, s.clock)
            if s.session_start and at >= s.session_last + self.gap:
                self._close_session(s)
            s.clock = at
            changes += self._evaluate(s, user_id, at, "timer", None)
        if until > s.clock:
            s.clock = until
        return changes

    def _apply(self, s: ProfileState, event: CanonicalEvent) -> None:
        ts = event.timestamp
        in_open = 1  # 0: a late event of an earlier, closed session, which must not touch the open one
        if not s.session_start:
            s.session_start = s.session_last = ts
            s.sessions_total += 1
        elif ts + self.gap <= s.session_start:
            in_open = 0  # like a late event with no session open: a one-event session, already closed
            s.sessions_total += 1
        else:
            s.session_start = min(s.session_start, ts)
            s.session_last = max(s.session_last, ts)
        s.session_events += in_open
        name = event.name
        if name == ev.PRODUCT_VIEWED:
            s.session_views += in_open
        elif name == ev.PRODUCT_ADDED:
            s.session_cart_adds += in_open
            # A late add-to-cart older than a processed purchase was followed by that purchase.
            if ts > s.last_purchase_at and (not s.cart_pending_since or ts < s.cart_pending_since):
                s.cart_pending_since = ts
        elif name == ev.ORDER_COMPLETED:
            s.session_purchases += in_open
            s.purchases_total += 1
            s.last_purchase_at = max(s.last_purchase_at, ts)
            if s.cart_pending_since <= ts:  # a late purchase older than the pending cart did not settle it
                s.cart_pending_since = 0
        s.last_seen = max(s.last_seen, ts)
        s.clock = max(s.clock, ts)
        if self._keep_days:
            day = ts // DAY_MS
            if day not in s.active_days:
                s.active_days.append(day)
                s.active_days.sort()
            oldest = s.clock // DAY_MS - self._keep_days + 1
            if s.active_days[0] < oldest:
                s.active_days = [d for d in s.active_days if d >= oldest]
        self._remember(s, event.dedup_key)

    def _remember(self, s: ProfileState, dedup_key: int) -> None:
        s.recent_ids.append(dedup_key)
        if len(s.recent_ids) > self.rules.dedup_window:
            del s.recent_ids[0]

    def _close_session(self, s: ProfileState) -> None:
        s.session_start = s.session_last = 0
        s.session_events = s.session_views = s.session_cart_adds = s.session_purchases = 0

    def _evaluate(
        self, s: ProfileState, user_id: str, now: int, trigger: str, message_id: str | None
    ) -> list[SegmentChange]:
        facts = facts_at(s, now, self._windows)
        members = self.rules.members(facts)
        if members == s.segments:
            return []
        before, after = set(s.segments), set(members)
        changes = []
        for name in sorted(before - self.rules.names):  # a rule removed by `tailor rules apply`
            changes.append(SegmentChange(user_id, name, "rule", EXIT, "the rule was removed", {}, trigger, now,
                                         message_id, self.rules.version))
        for rule in self.rules.rules:
            if rule.name in before and rule.name not in after:
                changes.append(self._change(rule, user_id, EXIT, facts, trigger, now, message_id))
        for rule in self.rules.rules:
            if rule.name in after and rule.name not in before:
                changes.append(self._change(rule, user_id, ENTER, facts, trigger, now, message_id))
        s.segments = members
        return changes

    def _change(self, rule, user_id, change, facts, trigger, now, message_id) -> SegmentChange:  # type: ignore[no-untyped-def]
        used = {name: facts[name] for name in sorted(rule.condition.facts)}
        return SegmentChange(user_id, rule.name, "rule", change, rule.description, used, trigger, now, message_id,
                             self.rules.version)
