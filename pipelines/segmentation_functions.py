"""Thin Flink adapters around the pure operators of the segmentation job.

Each class only moves data between Flink (state, timers, side outputs, metrics) and an operator from
``operators/``; the decisions live there.
"""

from __future__ import annotations

import time

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import ValueStateDescriptor

from connectors.redis_audiences import RedisAudienceWriter
from operators import model_hub
from operators.normalize import InvalidEvent, normalize
from operators.profile_tracker import ProfileTracker
from operators.segment_rules import SegmentRules
from pipelines.flink_metrics import BatchedCounter
from pipelines.model_functions import MODEL_EVENT, MODEL_RECORD_TYPE
from state_schemas import dead_letter, events, model_input, profile_state, segment_change

DEAD_LETTERS = OutputTag("dead_letters", Types.STRING())
# Every event, with the user's segments and behavior features, for the model hub (when models are on).
MODEL_INPUTS = OutputTag("model_inputs", MODEL_RECORD_TYPE)

# (user_key, normalized event in wire form). Strings, never byte arrays, on every Python -> Java edge:
# PEMJA copies a Python bytes object into a Java byte[] element by element (~100 us per record here).
KEYED_EVENT_TYPE = Types.ROW_NAMED(["user_key", "event"], [Types.STRING(), Types.STRING()])
# (user_id, tailor.segment_change/1 JSON) -- the user id becomes the Kafka record key
CHANGE_RECORD_TYPE = Types.ROW_NAMED(["user_id", "change"], [Types.STRING(), Types.STRING()])


class NormalizeEvents(ProcessFunction):
    """Raw Kafka bytes -> (user_key, normalized event); invalid input -> dead-letter side output."""

    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def open(self, runtime_context: RuntimeContext) -> None:
        group = runtime_context.get_metrics_group().add_group("tailor")
        self.events_in = BatchedCounter(group.counter("events_in"))
        self.dead_letters = BatchedCounter(group.counter("dead_letters"), every=1)

    def close(self) -> None:
        self.events_in.flush()

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        self.events_in.inc()
        try:
            event = normalize(value)
        except InvalidEvent as exc:
            self.dead_letters.inc()
            now = int(time.time() * 1000)
            record = dead_letter.encode(exc.code, exc.reason, bytes(value), self.source_topic, now)
            yield DEAD_LETTERS, record.decode()
            return
        yield Row(event.user_key, events.to_wire(event).decode())


class TrackSegments(KeyedProcessFunction):
    """Per-user profile state -> rule segment changes, to Kafka (main output) and Redis."""

    def __init__(
        self, rules_yaml: str, redis_host: str, redis_port: int, redis_prefix: str, out_of_orderness_ms: int,
        models_enabled: bool = False,
    ) -> None:
        self.rules_yaml = rules_yaml
        self.models_enabled = models_enabled
        self.out_of_orderness_ms = out_of_orderness_ms
        self.redis_host, self.redis_port, self.redis_prefix = redis_host, redis_port, redis_prefix

    def open(self, runtime_context: RuntimeContext) -> None:
        import yaml  # the rules travel as text so the job file is self-contained on a cluster

        self.tracker = ProfileTracker(SegmentRules.from_dict(yaml.safe_load(self.rules_yaml)))
        self.state = runtime_context.get_state(
            # STRING, not a byte array: PyFlink converts byte-array state element by element.
            ValueStateDescriptor("user_to_profile", Types.STRING())
        )
        self.redis = RedisAudienceWriter(self.redis_host, self.redis_port, self.redis_prefix)
        self.flush_timer_at = 0
        group = runtime_context.get_metrics_group().add_group("tailor")
        self.changes_out = BatchedCounter(group.counter("segment_changes_out"))
        self.duplicates = BatchedCounter(group.counter("duplicate_events"), every=16)
        self.late_events = BatchedCounter(group.counter("late_events"), every=16)
        # A distribution, not a Python gauge: the JVM reads gauges from its metrics thread, and a call
        # into a torn-down interpreter during cancel crashes the TaskManager. Sampled every 256 events.
        self.event_lag_ms = group.distribution("event_time_lag_ms")
        self.lag_samples = 0
        # Late = behind the bounded-out-of-orderness watermark this subtask has seen; tracked here in
        # Python because asking the JVM for the watermark on every event costs a cross-language call.
        self.max_event_time = 0

    def close(self) -> None:
        for counter in (self.changes_out, self.duplicates, self.late_events):
            counter.flush()
        self.redis.close()

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        event = events.from_wire(value[1])
        raw = self.state.value()
        state = None if raw is None else profile_state.decode(raw)
        if self.tracker.is_duplicate(state, event):
            self.duplicates.inc()
            return
        if event.timestamp < self.max_event_time - self.out_of_orderness_ms:
            self.late_events.inc()
        elif event.timestamp > self.max_event_time:
            self.max_event_time = event.timestamp
        state, changes = self.tracker.process_one(state, event)
        if self.models_enabled:
            yield MODEL_INPUTS, Row(MODEL_EVENT, model_input.to_wire(model_hub.model_input(state, event)))
        now = int(time.time() * 1000)
        self.lag_samples += 1
        if self.lag_samples % 256 == 1:
            self.event_lag_ms.update(now - event.timestamp)
        yield from self._emit(ctx, event.user_key, state, changes, now)

    def on_timer(self, timestamp, ctx):  # type: ignore[no-untyped-def]
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            self.flush_timer_at = 0
            self.redis.flush()
            return
        raw = self.state.value()
        if raw is None:
            return
        state = profile_state.decode(raw)
        if state.timer_at and state.timer_at <= timestamp:
            state.timer_at = 0
        now = max(timestamp, ctx.timer_service().current_watermark())
        user_id = ctx.get_current_key()
        state, changes = self.tracker.on_timer(state, user_id, now)
        yield from self._emit(ctx, user_id, state, changes, int(time.time() * 1000))

    def _emit(self, ctx, user_id, state, changes, now):  # type: ignore[no-untyped-def]
        deadline = self.tracker.next_deadline(state)
        if deadline is not None and (not state.timer_at or deadline < state.timer_at):
            ctx.timer_service().register_event_time_timer(deadline)
            state.timer_at = deadline
        self.state.update(profile_state.encode(state).decode())
        if not changes:
            return
        encoded = [segment_change.encode(c, now) for c in changes]
        self.changes_out.inc(len(changes))
        self.redis.write(user_id, state, changes, encoded)
        if self.redis.pending and not self.flush_timer_at:
            self.flush_timer_at = ctx.timer_service().current_processing_time() + self.redis.max_delay_ms
            ctx.timer_service().register_processing_time_timer(self.flush_timer_at)
        for payload in encoded:
            yield Row(user_id, payload.decode())
