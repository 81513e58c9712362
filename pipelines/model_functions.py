"""Thin Flink adapter around ``operators.model_hub.ModelHub``: the online models of the job.

Where global model state lives: the clusterer and the recommender are one model shared by all users, and
Python functions have no checkpointed operator state in PyFlink (only broadcast state). So the hub runs
as a keyed operator with a single key (``MODEL_KEY``): its state is ordinary keyed state of that key --
MapStates of per-user and per-item payloads and one ValueState of globals -- written incrementally after
every record (one micro-batch of model inputs, or a catalog item) and therefore exactly as of each
checkpoint. On restore the hub is rebuilt from that state
before its first event.

Scaling: with one key, the hub runs on one subtask at any job parallelism; the per-user rule operator
before it scales out, and the hub's quality is the same at parallelism 1 and 2 (one model, same input).
With ``models_sharded`` the hub only clusters, and the recommender is sharded by user
(``pipelines.replica_functions``): it scales out with the rule operator.
"""

from __future__ import annotations

import time

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from connectors.redis_clients import NO_AUTH, RedisAuth
from operators.model_hub import ModelHub
from operators.models_config import ModelsConfig
from pipelines.flink_metrics import BatchedCounter, FullCollectionPauses
from pipelines.keyed_state import write_changes
from pipelines.popular_list import ThrottledPopularList
from pipelines.records import (
    CATALOG_ITEM,
    CHANGES,
    DEAD_LETTERS,
    EXCHANGE,
    MODEL_BATCH,
    MODEL_EVENT,
    RECOMMENDATIONS,
    batched,
)
from pipelines.redis_flushing import FlushedRedisWriter
from state_schemas import (
    catalog_item,
    dead_letter,
    model_input,
    recommendation,
    segment_change,
)
from state_schemas.model_input import FORGOTTEN

MODEL_KEY = "models"


def model_key_of(row):  # type: ignore[no-untyped-def]
    return MODEL_KEY


def catalog_record(value: str) -> Row:
    return Row(CATALOG_ITEM, value)


def exchange_record(value: str) -> Row:
    return Row(EXCHANGE, value)


class LearnModels(KeyedProcessFunction):
    """Model inputs and catalog items in; per call, one batched row (``pipelines.records.batched``) per kind:

    RECOMMENDATIONS  (user_id, tailor.recommendation/2)
    CHANGES          (user_id, tailor.segment_change/2) of kind "cluster", merged into the segment-changes sink
    DEAD_LETTERS     (None, tailor.dead_letter/1) of records the models raised on (``internal_error:<Type>``)

    Batched rows, not a record and a side output per change: a record crossing Python -> Java costs about
    as much as the call.
    """

    def __init__(
        self, models: ModelsConfig, redis_host: str, redis_port: int, redis_prefix: str, source_topic: str = "events",
        redis_auth: RedisAuth = NO_AUTH, catalog_topic: str = "catalog", recommendations: bool = True,
    ) -> None:
        self.models = models
        # False: the clusterer only, the recommender being sharded (pipelines.replica_functions)
        self.recommendations = recommendations
        self.redis_auth = redis_auth
        self.source_topic, self.catalog_topic = source_topic, catalog_topic  # a dead letter's source
        self.redis_host, self.redis_port, self.redis_prefix = redis_host, redis_port, redis_prefix

    def open(self, runtime_context: RuntimeContext) -> None:
        self.users = runtime_context.get_map_state(MapStateDescriptor("model_users", Types.STRING(), Types.STRING()))
        self.items = runtime_context.get_map_state(MapStateDescriptor("model_items", Types.STRING(), Types.STRING()))
        self.globals = runtime_context.get_state(ValueStateDescriptor("model_globals", Types.STRING()))
        self.hub: ModelHub | None = None  # restored from state on the first record: open() has no key yet
        group = runtime_context.get_metrics_group().add_group("tailor")
        self.redis = FlushedRedisWriter(self.redis_host, self.redis_port, self.redis_prefix, group, self.redis_auth)
        self.popular = ThrottledPopularList(self.redis.writer)
        self.model_events = BatchedCounter(group.counter("model_events_in"))
        self.catalog_items = BatchedCounter(group.counter("catalog_items_in"), every=64)
        self.cluster_changes_out = BatchedCounter(group.counter("cluster_changes_out"), every=16)
        self.recommendations_out = BatchedCounter(group.counter("recommendations_out"), every=16)
        self.internal_errors = BatchedCounter(group.counter("internal_errors"), every=1)
        # Model inputs waiting for the watermark before the clusterer learns them (operators.model_hub)
        self.deferred = group.distribution("deferred_model_inputs")
        self.full_collections = FullCollectionPauses(group)
        self.calls = 0

    def close(self) -> None:
        for counter in (
            self.model_events, self.catalog_items, self.cluster_changes_out, self.recommendations_out,
            self.internal_errors,
        ):
            counter.flush()
        self.popular.write_pending(self.hub)
        self.redis.close()

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        now = int(time.time() * 1000)
        if value[0] == CATALOG_ITEM:
            try:
                hub = self.hub or self._restore()
                self.catalog_items.inc()
                hub.add_catalog_item(catalog_item.decode(value[1]))
                self._persist(hub)
            except Exception as exc:  # noqa: BLE001 - no record may stop the job: it becomes a dead letter
                yield Row(DEAD_LETTERS, batched([self._dead_letter(exc, value[1], self.catalog_topic, now)]))
            return
        rows = orjson.loads(value[1]) if value[0] == MODEL_BATCH else [[MODEL_EVENT, orjson.loads(value[1])]]
        out = _Outputs()
        try:
            hub = self.hub or self._restore()
        except Exception as exc:  # noqa: BLE001 - e.g. unreadable state: the records become dead letters
            out.dead_letters += [self._dead_letter(exc, orjson.dumps(row).decode(), self.source_topic, now)
                                 for _, row in rows]
            yield from out.rows()
            return
        # The clusterer learns in event-time order (operators.model_hub): first what the watermark passed
        watermark = ctx.timer_service().current_watermark()
        self._advance(hub, watermark, now, out)
        deferred_until = None
        for _, row in rows:
            try:  # the models learn and score before anything is emitted
                event = model_input.from_row(row)
                changes, items = hub.process_one(event, watermark)
                encoded = [segment_change.encode(c, now) for c in changes]
            except Exception as exc:  # noqa: BLE001 - no record may stop the job: it becomes a dead letter
                out.dead_letters.append(self._dead_letter(exc, orjson.dumps(row).decode(), self.source_topic, now))
                continue
            if event.timestamp > watermark:
                deferred_until = max(deferred_until or event.timestamp, event.timestamp)
            self._emit(hub, event, changes, encoded, items, now, out)
        if deferred_until is not None:  # fires once the watermark passed all of this batch's deferred inputs
            ctx.timer_service().register_event_time_timer(deferred_until)
        self.model_events.inc(len(rows))
        self._persist(hub)  # once per batch: a checkpoint never splits a record, so state stays exact
        if self.recommendations:
            self.popular.changed(hub, now, ctx)
        self.redis.arm(ctx)
        yield from out.rows()

    def _advance(self, hub: ModelHub, watermark: int, now: int, out: _Outputs) -> None:
        for user, changes in hub.advance(watermark):
            encoded = [segment_change.encode(c, now) for c in changes]
            self.redis.writer.write_cluster_changes(user, hub.cluster_segment(user), changes, encoded)
            self.cluster_changes_out.inc(len(changes))
            out.changes += [(user, payload) for payload in encoded]
        self.calls += 1
        if self.calls % 16 == 1:  # a distribution shows its last value: a sample is as good as all
            self.deferred.update(hub.deferred_inputs)
        self.full_collections.report()

    def _dead_letter(self, exc: Exception, original: str, source: str, now: int) -> tuple[None, bytes]:
        self.internal_errors.inc()
        return None, dead_letter.encode_internal_error(exc, original, source, now, "learn_models")

    def _emit(self, hub, event, changes, encoded, items, now: int, out: _Outputs) -> None:  # type: ignore[no-untyped-def]
        if event.event_name in FORGOTTEN:  # the rule operator already deleted the profile
            self.redis.writer.forget(event.user_id, changes, encoded)
        elif changes:
            self.redis.writer.write_cluster_changes(event.user_id, hub.cluster_segment(event.user_id), changes, encoded)
        if changes:
            self.cluster_changes_out.inc(len(changes))
            out.changes += [(event.user_id, payload) for payload in encoded]
        if items is not None:
            self.recommendations_out.inc()
            payload = recommendation.encode(
                recommendation.Recommendation(
                    event.user_id, tuple(items), hub.model_version, event.message_id, event.timestamp
                ),
                emit_time=now,
            )
            self.redis.writer.write_recommendations(event.user_id, payload)
            out.recommendations.append((event.user_id, payload))

    def on_timer(self, timestamp, ctx):  # type: ignore[no-untyped-def]
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            self.popular.write_pending(self.hub)
            self.redis.on_timer(ctx)
            return
        # Event time: the watermark passed deferred inputs and no batch came to cluster them
        hub, out = self.hub or self._restore(), _Outputs()
        self._advance(hub, max(timestamp, ctx.timer_service().current_watermark()), int(time.time() * 1000), out)
        self._persist(hub)
        self.redis.arm(ctx)
        yield from out.rows()

    def _restore(self) -> ModelHub:
        self.hub = ModelHub.restore(
            self.models, self.globals.value(), self.users.items(), self.items.items(), self.recommendations
        )
        return self.hub

    def _persist(self, hub: ModelHub) -> None:
        changes = hub.take_changes()
        write_changes(self.users, changes.users)
        write_changes(self.items, changes.items)
        self.globals.update(changes.globals)


class _Outputs:
    """What one call emits, gathered per kind."""

    __slots__ = ("changes", "dead_letters", "recommendations")

    def __init__(self) -> None:
        self.recommendations: list[tuple[str, bytes]] = []
        self.changes: list[tuple[str, bytes]] = []
        self.dead_letters: list[tuple[None, bytes]] = []

    def rows(self):  # type: ignore[no-untyped-def]
        for kind, pairs in ((RECOMMENDATIONS, self.recommendations), (CHANGES, self.changes),
                            (DEAD_LETTERS, self.dead_letters)):
            if pairs:
                yield Row(kind, batched(pairs))
