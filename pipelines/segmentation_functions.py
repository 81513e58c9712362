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
from operators.normalize import InvalidEvent, normalize
from operators.segment_rules import SegmentRules
from operators.segmentation_step import SegmentationStep, StepOutput
from pipelines.flink_metrics import BatchedCounter
from pipelines.records import MODEL_EVENT, MODEL_RECORD_TYPE
from state_schemas import dead_letter, events, model_input, profile_state

DEAD_LETTERS = OutputTag("dead_letters", Types.STRING())
# Every event, with the user's segments and behavior features, for the model hub (when models are on).
MODEL_INPUTS = OutputTag("model_inputs", MODEL_RECORD_TYPE)



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
    """Per-user profile state -> rule segment changes, to Kafka (main output) and Redis: Flink's state,
    timers and outputs around ``operators.segmentation_step.SegmentationStep``."""

    def __init__(
        self, rules: SegmentRules, redis_host: str, redis_port: int, redis_prefix: str, out_of_orderness_ms: int,
        models_enabled: bool = False,
    ) -> None:
        self.rules = rules
        self.models_enabled = models_enabled
        self.out_of_orderness_ms = out_of_orderness_ms
        self.redis_host, self.redis_port, self.redis_prefix = redis_host, redis_port, redis_prefix

    def open(self, runtime_context: RuntimeContext) -> None:
        self.step = SegmentationStep(self.rules, model_inputs=self.models_enabled)
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
        now = int(time.time() * 1000)
        out = self.step.on_event(None if raw is None else profile_state.decode(raw), event, now)
        if out is None:
            self.duplicates.inc()
            return
        if event.timestamp < self.max_event_time - self.out_of_orderness_ms:
            self.late_events.inc()
        elif event.timestamp > self.max_event_time:
            self.max_event_time = event.timestamp
        if out.model_input is not None:
            yield MODEL_INPUTS, Row(MODEL_EVENT, model_input.to_wire(out.model_input))
        self.lag_samples += 1
        if self.lag_samples % 256 == 1:
            self.event_lag_ms.update(now - event.timestamp)
        yield from self._emit(ctx, event.user_key, out)

    def on_timer(self, timestamp, ctx):  # type: ignore[no-untyped-def]
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            self.flush_timer_at = 0
            self.redis.flush()
            return
        raw = self.state.value()
        if raw is None:
            return
        watermark = ctx.timer_service().current_watermark()
        out = self.step.on_timer(
            profile_state.decode(raw), ctx.get_current_key(), timestamp, watermark, int(time.time() * 1000)
        )
        yield from self._emit(ctx, ctx.get_current_key(), out)

    def _emit(self, ctx, user_id: str, out: StepOutput):  # type: ignore[no-untyped-def]
        if out.timer_at is not None:
            ctx.timer_service().register_event_time_timer(out.timer_at)
        self.state.update(profile_state.encode(out.state).decode())
        if not out.changes:
            return
        self.changes_out.inc(len(out.changes))
        self.redis.write(user_id, out.state, out.changes, out.encoded)
        if self.redis.pending and not self.flush_timer_at:
            self.flush_timer_at = ctx.timer_service().current_processing_time() + self.redis.max_delay_ms
            ctx.timer_service().register_processing_time_timer(self.flush_timer_at)
        for payload in out.encoded:
            yield Row(user_id, payload.decode())
