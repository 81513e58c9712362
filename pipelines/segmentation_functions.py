"""The job's one Python operator for the rules: a batch of a bucket's raw events in, its outputs out.

``SegmentBatches`` is keyed by bucket (a hash of the user, ``EventRecordDeserializer``); the Java
``MicroBatcher`` before it hands it every few milliseconds one batch per bucket, in Kafka order, and never
lets a watermark overtake a record. Per batch it crosses into Python once: normalize and the per-user
step (``operators.segmenter.Segmenter`` per bucket) for every record, then every timer the watermark has
passed; profiles live in a ``MapState`` of the bucket (user -> encoded ``ProfileState``), read through a
cache and written back once per batch. The bucket's deadline index (a heap of (deadline, user)) is
rebuilt from the profiles after a restore, and one Flink event-time timer per bucket at its earliest
deadline covers buckets that receive no batch. Outputs leave as one row per kind per batch (changes,
dead letters, model inputs), split back into records by the Java ``Unbatch``: a record that crosses to
Java costs as much as a call.
"""

from __future__ import annotations

import base64
import gc
import time
from typing import Any

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from connectors.redis_clients import NO_AUTH, RedisAuth
from operators.privacy import ConsentPolicy, Privacy, Pseudonymizer
from operators.segment_rules import SegmentRules
from operators.segmentation_step import MAX_TIMER_MS
from operators.segmenter import CachedProfileStore, Segmenter
from pipelines.flink_metrics import BatchedCounter
from pipelines.keyed_state import bucket_of, put_all
from pipelines.records import CHANGES, DEAD_LETTERS, MODEL_EVENT, batched
from pipelines.redis_flushing import FlushedRedisWriter
from settings.secrets import pseudonym_key
from state_schemas import experiment_metrics, model_input, rules_state

# Kinds of its batched rows (pipelines.records.BATCHED_RECORD_TYPE), besides CHANGES and DEAD_LETTERS:
MODEL_INPUTS = "model_inputs"
FEEDBACK = "feedback"  # identity control events and forwarded events, back to the events topic
EXPERIMENTS = "experiments"  # a bucket's changed experiment totals (tailor.experiment_metrics/1)
# A bucket's changed experiment totals leave at most this often (they are absolute: nothing is lost by
# waiting), instead of after every batch: measured -9 to -11 % of throughput with a fifth of users exposed.
EXPERIMENTS_EVERY_MS = 1_000
# Profiles kept decoded per subtask, over all its buckets (~1 KB each).
CACHED_PROFILES = 200_000
FREEZE_EVERY_BATCHES = 2_000


class SegmentBatches(KeyedProcessFunction):
    def __init__(
        self, rules: SegmentRules, redis_host: str, redis_port: int, redis_prefix: str, buckets: int,
        models_enabled: bool = False, source_topic: str = "events", pseudonym_key_file: str = "",
        redact_dead_letters: bool = True, consent_categories: str = "", consent_default: str = "allow",
        redis_auth: RedisAuth = NO_AUTH,
    ) -> None:
        self.rules, self.buckets, self.models_enabled, self.source_topic = rules, buckets, models_enabled, source_topic
        self.redis_host, self.redis_port, self.redis_prefix = redis_host, redis_port, redis_prefix
        self.redis_auth = redis_auth  # where the password is, not the password (connectors.redis_clients)
        # The key file's path only: the key itself is read in open(), on the TaskManager (settings.secrets).
        self.pseudonym_key_file, self.redact_dead_letters = pseudonym_key_file, redact_dead_letters
        self.consent_categories, self.consent_default = consent_categories, consent_default

    def open(self, runtime_context: RuntimeContext) -> None:
        self.profiles = runtime_context.get_map_state(
            # STRING values, not byte arrays: PyFlink converts byte arrays element by element.
            MapStateDescriptor("user_to_profile", Types.STRING(), Types.STRING())
        )
        # Per bucket: the rules `tailor rules apply` put in force (none: the rules the job started with).
        self.rules_in_force = runtime_context.get_state(ValueStateDescriptor("rules_in_force", Types.STRING()))
        # Per bucket: the running outcomes of every experiment (state_schemas.experiment_metrics).
        self.experiment_totals = runtime_context.get_state(ValueStateDescriptor("experiment_totals", Types.STRING()))
        self.segmenters: dict[int, Segmenter] = {}  # per bucket, built at its first batch or timer
        key = pseudonym_key(self.pseudonym_key_file)
        consent = ConsentPolicy.from_settings(self.consent_categories, self.consent_default)
        self.privacy = Privacy(None if key is None else Pseudonymizer(key), self.redact_dead_letters, consent)
        self.armed: dict[int, int] = {}  # per bucket, the event-time timer registered last
        # Per bucket: processing time of the last experiment totals sent, and of the flush timer armed.
        self.experiments_sent_at: dict[int, int] = {}
        self.experiments_due: dict[int, int] = {}
        group = runtime_context.get_metrics_group().add_group("tailor")
        self.redis = FlushedRedisWriter(self.redis_host, self.redis_port, self.redis_prefix, group, self.redis_auth)
        # Once per batch, not per event: exact at once (a quiet stream never leaves a count pending), and a
        # counter call per batch is noise next to the batch's work.
        self.events_in = BatchedCounter(group.counter("events_in"), every=1)
        self.batches_in = BatchedCounter(group.counter("batches_in"), every=1)
        self.dead_letters_out = BatchedCounter(group.counter("dead_letters"), every=1)
        self.changes_out = BatchedCounter(group.counter("segment_changes_out"))
        self.duplicates = BatchedCounter(group.counter("duplicate_events"), every=16)
        self.late_events = BatchedCounter(group.counter("late_events"), every=16)
        self.internal_errors = BatchedCounter(group.counter("internal_errors"), every=1)
        self.rules_updates = BatchedCounter(group.counter("rules_updates"), every=1)  # one per bucket and update
        self.experiment_exposures = BatchedCounter(group.counter("experiment_exposures"), every=1)
        self.experiment_conversions = BatchedCounter(group.counter("experiment_conversions"), every=1)
        # Distributions, not Python gauges: the JVM reads gauges from its metrics thread, and a call into
        # a torn-down interpreter during cancel crashes the TaskManager.
        self.batch_size = group.distribution("batch_size")
        self.event_lag_ms = group.distribution("event_time_lag_ms")
        self.samples = 0
        self.dead: list[bytes] = []
        self.models: list[bytes] = []
        self.feedback: list[tuple[str, bytes]] = []
        gc.freeze()  # what exists now lives as long as the operator: keep it out of every collection

    def close(self) -> None:
        for counter in (self.events_in, self.batches_in, self.dead_letters_out, self.changes_out,
                        self.duplicates, self.late_events, self.internal_errors, self.rules_updates,
                        self.experiment_exposures, self.experiment_conversions):
            counter.flush()
        self.redis.close()

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        bucket, count, records = value[0], value[1], orjson.loads(value[2])
        segmenter = self._segmenter(bucket)
        watermark = ctx.timer_service().current_watermark()
        emitted, late, duplicates, dead = [], 0, segmenter.duplicates, segmenter.dead_letters
        for timestamp, _partition, _offset, text, b64 in records:
            late += timestamp < watermark
            emitted += segmenter.process(text if b64 is None else base64.b64decode(b64))
        emitted += segmenter.advance_watermark(watermark)  # deadlines this batch's records did not move
        self.events_in.inc(count)
        self.batches_in.inc()
        self.late_events.inc(late)
        self.duplicates.inc(segmenter.duplicates - duplicates)
        self.dead_letters_out.inc(segmenter.dead_letters - dead)
        self.samples += 1
        if self.samples % FREEZE_EVERY_BATCHES == 0:
            # Profiles live on in the cache; a full collection scanning them all (tens of ms with 100k
            # users) would stall the stream. They hold no reference cycles: let them out of collections.
            gc.freeze()
        if self.samples % 16 == 1:  # a distribution shows its last value: a sample is as good as all
            self.batch_size.update(count)
            self.event_lag_ms.update(int(time.time() * 1000) - records[-1][0])
        yield from self._finish(ctx, bucket, segmenter, emitted)

    def on_timer(self, timestamp, ctx):  # type: ignore[no-untyped-def]
        bucket = bucket_of(ctx.get_current_key())
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            self.redis.on_timer(ctx)
            due = self.experiments_due.get(bucket)
            if due is not None and timestamp >= due:
                del self.experiments_due[bucket]
                yield from self._experiments_out(ctx, bucket, self._segmenter(bucket), now=True)
            return
        self.armed.pop(bucket, None)
        segmenter = self._segmenter(bucket)
        emitted = segmenter.advance_watermark(ctx.timer_service().current_watermark())
        # The end of a bounded replay (the final watermark): processing-time timers fire no more.
        yield from self._finish(ctx, bucket, segmenter, emitted, end=timestamp >= MAX_TIMER_MS)

    def _segmenter(self, bucket: int) -> Segmenter:
        segmenter = self.segmenters.get(bucket)
        if segmenter is None:  # the current key is this bucket: its MapState is the one we read
            store = CachedProfileStore(self.profiles.get, self.profiles.keys, CACHED_PROFILES // self.buckets + 1)
            rules, applied_at, stored = self.rules, 0, self.rules_in_force.value()
            if stored is not None:  # a restore after `tailor rules apply`: the applied rules, not the file's
                applied_at, source = rules_state.decode(stored)
                rules = SegmentRules.from_dict(source)
            totals = self.experiment_totals.value()
            segmenter = self.segmenters[bucket] = Segmenter(
                rules, out_of_orderness_ms=None, rules_applied_at=applied_at, on_rules=self._keep_rules,
                experiment_totals=None if totals is None else experiment_metrics.decode_totals(totals),
                source_topic=self.source_topic,
                on_changes=self.redis.writer.write, on_dead_letter=self.dead.append,
                on_model_input=(lambda m: self.models.append(model_input.to_wire(m))) if self.models_enabled else None,
                on_forget=self.redis.writer.forget, store=store, operator="segment_batches", privacy=self.privacy,
                on_feedback=lambda key, payload: self.feedback.append((key, payload)),
            )
            if totals is not None:  # restored: send them all again (what was pending at the checkpoint too)
                segmenter.experiments.changed = set(segmenter.experiments.totals)
        return segmenter

    def _keep_rules(self, applied_at: int, rules: SegmentRules) -> None:
        """A bucket took a rules update (during its batch: the current key is that bucket)."""
        self.rules_in_force.update(rules_state.encode(applied_at, rules.source))
        self.rules_updates.inc()

    def _finish(self, ctx, bucket: int, segmenter: Segmenter, emitted: list[Any], end: bool = False):  # type: ignore[no-untyped-def]
        """Write back the bucket's changed profiles, re-arm its timer, flush Redis, emit one row per kind."""
        dirty = segmenter.store.take_dirty()  # type: ignore[attr-defined]
        if dirty:
            put_all(self.profiles, dirty)
        for user in segmenter.store.take_deleted():  # type: ignore[attr-defined]  # consent withdrawn: rare
            self.profiles.remove(user)
        armed = self.armed.get(bucket)
        if segmenter.timers and (armed is None or segmenter.timers[0][0] < armed):
            # An armed timer later than the next deadline would be too late; an earlier one fires, finds
            # nothing due, and re-arms: so only an earlier deadline costs a call into the JVM here.
            self.armed[bucket] = segmenter.timers[0][0]
            ctx.timer_service().register_event_time_timer(self.armed[bucket])
        if emitted:
            self.changes_out.inc(len(emitted))
            self.redis.arm(ctx)  # the writer flushes every max_batch commands, this timer after max_delay_ms
            yield Row(CHANGES, batched((e.user_id, e.payload) for e in emitted))
        if self.dead:
            self.internal_errors.inc(sum(b'"error":"internal_error:' in record for record in self.dead))
            yield Row(DEAD_LETTERS, batched((None, record) for record in self.dead))
            self.dead.clear()
        if self.models:
            yield Row(f"{MODEL_INPUTS}@{bucket}", batched((MODEL_EVENT, record) for record in self.models))
            self.models.clear()
        if self.feedback:
            yield Row(FEEDBACK, batched(self.feedback))
            self.feedback.clear()
        if segmenter.experiments.dirty:  # saved with every batch: the users' exposures are, too
            self.experiment_totals.update(experiment_metrics.encode_totals(segmenter.experiments.totals))
            segmenter.experiments.dirty = False
        if segmenter.experiments.changed:
            yield from self._experiments_out(ctx, bucket, segmenter, now=end)

    def _experiments_out(self, ctx, bucket: int, segmenter: Segmenter, now: bool):  # type: ignore[no-untyped-def]
        """The bucket's changed totals to Redis and Kafka, if the last were sent ``EXPERIMENTS_EVERY_MS`` ago
        (or ``now``); else a processing-time timer sends them then."""
        clock = ctx.timer_service().current_processing_time()
        due = self.experiments_sent_at.get(bucket, 0) + EXPERIMENTS_EVERY_MS
        if clock < due and not now:
            if bucket not in self.experiments_due:
                self.experiments_due[bucket] = due
                ctx.timer_service().register_processing_time_timer(due)
                ctx.timer_service().register_event_time_timer(MAX_TIMER_MS)  # a bounded replay's end sends them
            return
        changed = segmenter.experiments.take_changed()
        if not changed:
            return
        self.experiments_sent_at[bucket] = clock
        self.experiment_exposures.inc(segmenter.exposures)
        self.experiment_conversions.inc(segmenter.conversions)
        segmenter.exposures = segmenter.conversions = 0
        emit_time, records = int(time.time() * 1000), []
        for group, outcome in changed.items():
            payload = experiment_metrics.encode(group, bucket, outcome, emit_time)
            self.redis.writer.write_experiment_totals(group[0], experiment_metrics.field_of(group, bucket), payload)
            records.append((experiment_metrics.record_key(group, bucket), payload))
        self.redis.arm(ctx)
        yield Row(EXPERIMENTS, batched(records))
