"""Thin Flink adapters around the pure operators of the segmentation job.

Each class only moves data between Flink (state, timers, side outputs, metrics) and an operator from
``operators/``; the decisions live there.
"""

from __future__ import annotations

import time

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import ValueStateDescriptor

from operators.normalize import InvalidEvent, normalize
from operators.segment_rules import SegmentRules
from operators.segmentation_step import SegmentationStep, StepOutput
from pipelines.flink_metrics import BatchedCounter
from pipelines.records import MODEL_EVENT, MODEL_RECORD_TYPE
from pipelines.redis_flushing import FlushedRedisWriter
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
        raw = b"" if value is None else bytes(value)  # None: a tombstone
        try:
            event = normalize(None if value is None else raw)
            wire = events.to_wire(event).decode()
        except InvalidEvent as exc:
            record = dead_letter.encode(exc.code, exc.reason, raw, self.source_topic, int(time.time() * 1000))
        except Exception as exc:  # noqa: BLE001 - no record may stop the job: it becomes a dead letter
            record = dead_letter.encode_internal_error(
                exc, raw, self.source_topic, int(time.time() * 1000), "normalize_events"
            )
        else:
            yield Row(event.user_key, wire)
            return
        self.dead_letters.inc()
        yield DEAD_LETTERS, record.decode()


class TrackSegments(KeyedProcessFunction):
    """Per-user profile state -> rule segment changes, to Kafka (main output) and Redis: Flink's state,
    timers and outputs around ``operators.segmentation_step.SegmentationStep``."""

    def __init__(
        self, rules: SegmentRules, redis_host: str, redis_port: int, redis_prefix: str, out_of_orderness_ms: int,
        models_enabled: bool = False, source_topic: str = "events",
    ) -> None:
        self.rules = rules
        self.source_topic = source_topic
        self.models_enabled = models_enabled
        self.out_of_orderness_ms = out_of_orderness_ms
        self.redis_host, self.redis_port, self.redis_prefix = redis_host, redis_port, redis_prefix

    def open(self, runtime_context: RuntimeContext) -> None:
        self.step = SegmentationStep(self.rules, model_inputs=self.models_enabled)
        self.state = runtime_context.get_state(
            # STRING, not a byte array: PyFlink converts byte-array state element by element.
            ValueStateDescriptor("user_to_profile", Types.STRING())
        )
        group = runtime_context.get_metrics_group().add_group("tailor")
        self.redis = FlushedRedisWriter(self.redis_host, self.redis_port, self.redis_prefix, group)
        self.changes_out = BatchedCounter(group.counter("segment_changes_out"))
        self.duplicates = BatchedCounter(group.counter("duplicate_events"), every=16)
        self.late_events = BatchedCounter(group.counter("late_events"), every=16)
        self.internal_errors = BatchedCounter(group.counter("internal_errors"), every=1)
        # A distribution, not a Python gauge: the JVM reads gauges from its metrics thread, and a call
        # into a torn-down interpreter during cancel crashes the TaskManager. Sampled every 256 events.
        self.event_lag_ms = group.distribution("event_time_lag_ms")
        self.lag_samples = 0
        # Late = behind the bounded-out-of-orderness watermark this subtask has seen; tracked here in
        # Python because asking the JVM for the watermark on every event costs a cross-language call.
        self.max_event_time = 0

    def close(self) -> None:
        for counter in (self.changes_out, self.duplicates, self.late_events, self.internal_errors):
            counter.flush()
        self.redis.close()

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        now = int(time.time() * 1000)
        try:  # everything that can fail on a record runs before anything is emitted or stored
            event = events.from_wire(value[1])
            raw = self.state.value()
            out = self.step.on_event(None if raw is None else profile_state.decode(raw), event, now)
            encoded_state = None if out is None else profile_state.encode(out.state).decode()
        except Exception as exc:  # noqa: BLE001 - no record may stop the job: it becomes a dead letter
            self.internal_errors.inc()
            yield DEAD_LETTERS, dead_letter.encode_internal_error(
                exc, value[1], self.source_topic, now, "track_segments"
            ).decode()
            return
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
        yield from self._emit(ctx, event.user_key, out, encoded_state)

    def on_timer(self, timestamp, ctx):  # type: ignore[no-untyped-def]
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            self.redis.on_timer(ctx)
            return
        user_id, now = ctx.get_current_key(), int(time.time() * 1000)
        try:
            raw = self.state.value()
            out = None if raw is None else self.step.on_timer(profile_state.decode(raw), user_id, timestamp, now)
            encoded_state = None if out is None else profile_state.encode(out.state).decode()
        except Exception as exc:  # noqa: BLE001 - a timer must not stop the job either; its user is kept as is
            self.internal_errors.inc()
            original = orjson.dumps({"user_id": user_id, "timer": timestamp})
            yield DEAD_LETTERS, dead_letter.encode_internal_error(
                exc, original, self.source_topic, now, "track_segments.on_timer"
            ).decode()
            return
        if out is not None:
            yield from self._emit(ctx, user_id, out, encoded_state)

    def _emit(self, ctx, user_id: str, out: StepOutput, encoded_state: str):  # type: ignore[no-untyped-def]
        if out.timer_at is not None:
            ctx.timer_service().register_event_time_timer(out.timer_at)
        self.state.update(encoded_state)
        if not out.changes:
            return
        self.changes_out.inc(len(out.changes))
        self.redis.writer.write(user_id, out.state, out.changes, out.encoded)
        self.redis.arm(ctx)
        for payload in out.encoded:
            yield Row(user_id, payload.decode())
