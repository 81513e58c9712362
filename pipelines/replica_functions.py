"""Thin Flink adapter around ``operators.recommender_replica.RecommenderReplica``: the sharded recommender.

Keyed by groups of the rule operator's buckets (``REPLICA_KEYS``), so it scales out with the job. Two inputs:

* keyed: one group's batch of model inputs (the Java ``ReplicaBatcher`` gathers the rule operator's
  ``<model_inputs>@<bucket>`` rows of ``model_batch_window_ms`` per group: one call per group and window,
  not per bucket batch). The replica learns the users' side and scores their lists. The users' payloads
  live in a MapState of the group (user -> payload), read once per group when the replica first sees it,
  written after every batch. The item side of the batch's interactions leaves, unapplied, as ``tailor.model_updates/1``
  records for the model-updates topic.
* broadcast: the model-updates topic read back (every replica's records, in the topic's order, this one's
  too) and the catalog. Each record is applied to the replica's item side, and the items it changed go to
  broadcast state (item -> payload; the globals in a second one), which a restored replica reads.

Why a topic and not an edge: Flink has no cycles, and the replicas must each read what all of them
write. Written exactly-once, a record is visible once the checkpoint that covers it completes, so a
replica's item side lags its own and the others' interactions by about one checkpoint interval: the
``model_update_staleness_ms`` distribution (the writer's clock to the reader's). And restore is exact:
the broadcast state and the topic offsets come from the same checkpoint, the records after it are
aborted and learned again.
"""

from __future__ import annotations

import time

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import RuntimeContext, TimeDomain
from pyflink.datastream.functions import KeyedBroadcastProcessFunction
from pyflink.datastream.state import MapStateDescriptor

from connectors.redis_clients import NO_AUTH, RedisAuth
from operators.recommender import RecommenderConfig
from operators.recommender_replica import RecommenderReplica
from pipelines.flink_metrics import BatchedCounter
from pipelines.keyed_state import bucket_of, subtask_index, write_changes
from pipelines.popular_list import ThrottledPopularList
from pipelines.records import CATALOG_ITEM, DEAD_LETTERS, MODEL_UPDATES, RECOMMENDATIONS, batched
from pipelines.redis_flushing import FlushedRedisWriter
from state_schemas import catalog_item, dead_letter, model_input, recommendation
from state_schemas.model_input import FORGOTTEN

# The keys of the groups of buckets the replicas are keyed by (``ReplicaBatcher``: group = bucket % 8).
# Fixed, so a user's keyed state never moves to another key; chosen so that Flink's key groups (max
# parallelism 128) put key j on subtask j * p / 8: evenly over 1, 2, 4 or 8 subtasks (checked against
# Flink's KeyGroupRangeAssignment in tests/integration/test_sharded_recommender.py). Past 8 subtasks
# the replicas do not scale further.
REPLICA_KEYS = (19, 30, 48, 58, 60, 78, 79, 85)

# Broadcast state: the replica's item side, as every replica holds it
REPLICA_ITEMS = MapStateDescriptor("replica_items", Types.STRING(), Types.STRING())
REPLICA_GLOBALS = MapStateDescriptor("replica_globals", Types.STRING(), Types.STRING())
GLOBALS_KEY = "recommender"


class LearnRecommendations(KeyedBroadcastProcessFunction):
    """Per call, one batched row (``pipelines.records.batched``) per kind:

    RECOMMENDATIONS  (user_id, tailor.recommendation/2)
    MODEL_UPDATES    (None, tailor.model_updates/1) for the model-updates topic
    DEAD_LETTERS     (None, tailor.dead_letter/1) of inputs, catalog items and updates it could not learn
    """

    def __init__(
        self, config: RecommenderConfig, redis_host: str, redis_port: int, redis_prefix: str,
        source_topic: str = "events", catalog_topic: str = "catalog", updates_topic: str = "model-updates",
        redis_auth: RedisAuth = NO_AUTH,
    ) -> None:
        self.config = config
        self.redis_host, self.redis_port, self.redis_prefix, self.redis_auth = (
            redis_host, redis_port, redis_prefix, redis_auth
        )
        self.source_topic, self.catalog_topic, self.updates_topic = source_topic, catalog_topic, updates_topic

    def open(self, runtime_context: RuntimeContext) -> None:
        self.users = runtime_context.get_map_state(MapStateDescriptor("replica_users", Types.STRING(), Types.STRING()))
        self.replica: RecommenderReplica | None = None  # restored from broadcast state on the first record
        self.loaded: set[int] = set()  # groups (their keys) whose users the replica holds
        # One replica writes the trending list (every replica holds the same one)
        self.writes_popular = subtask_index(runtime_context) == 0
        group = runtime_context.get_metrics_group().add_group("tailor")
        self.redis = FlushedRedisWriter(self.redis_host, self.redis_port, self.redis_prefix, group, self.redis_auth)
        self.popular = ThrottledPopularList(self.redis.writer)
        self.model_events = BatchedCounter(group.counter("model_events_in"))
        self.recommendations_out = BatchedCounter(group.counter("recommendations_out"), every=16)
        self.updates_out = BatchedCounter(group.counter("model_updates_out"))
        self.updates_applied = BatchedCounter(group.counter("model_updates_applied"))
        self.catalog_items = BatchedCounter(group.counter("catalog_items_in"), every=64)
        self.internal_errors = BatchedCounter(group.counter("internal_errors"), every=1)
        # How old the updates a replica learns are: the writer's clock to this reader's
        self.staleness = group.distribution("model_update_staleness_ms")

    def close(self) -> None:
        for counter in (self.model_events, self.recommendations_out, self.updates_out, self.updates_applied,
                        self.catalog_items, self.internal_errors):
            counter.flush()
        if self.writes_popular:
            self.popular.write_pending(self.replica)
        self.redis.close()

    def _restore(self, ctx) -> RecommenderReplica:  # type: ignore[no-untyped-def]
        if self.replica is None:  # open() cannot read broadcast state: the first record of either input does
            self.replica = RecommenderReplica(self.config)
            globals_ = ctx.get_broadcast_state(REPLICA_GLOBALS).get(GLOBALS_KEY)
            self.replica.restore_items(globals_, ctx.get_broadcast_state(REPLICA_ITEMS).items())
        return self.replica

    # -- keyed: one group's batch of model inputs -------------------------------------------------
    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        now = int(time.time() * 1000)
        group = bucket_of(ctx.get_current_key())  # the group's key: the replica's unit of keyed state
        recommendations, dead = [], []
        try:
            replica = self._restore(ctx)
            if group not in self.loaded:
                replica.load_bucket(self.users.items(), group)
                self.loaded.add(group)
            rows = orjson.loads(value[1])
        except Exception as exc:  # noqa: BLE001 - e.g. unreadable state: the batch becomes a dead letter
            yield Row(DEAD_LETTERS, batched([self._dead_letter(exc, value[1], self.source_topic, now)]))
            return
        for _, row in rows:
            try:
                m = model_input.from_row(row)
                items = replica.learn_one(m, group)
            except Exception as exc:  # noqa: BLE001 - no record may stop the job: it becomes a dead letter
                dead.append(self._dead_letter(exc, orjson.dumps(row).decode(), self.source_topic, now))
                continue
            if m.event_name in FORGOTTEN:  # a list written before the rule operator's delete must go too
                self.redis.writer.forget(m.user_id, (), ())
            elif items is not None:
                payload = recommendation.encode(
                    recommendation.Recommendation(m.user_id, tuple(items), replica.model_version, m.message_id,
                                                  m.timestamp),
                    emit_time=now,
                )
                self.redis.writer.write_recommendations(m.user_id, payload)
                recommendations.append((m.user_id, payload))
        self.model_events.inc(len(rows))
        self.recommendations_out.inc(len(recommendations))
        write_changes(self.users, replica.take_user_changes(group))  # once per batch: checkpoints see whole batches
        updates = replica.pending
        exchange = replica.take_exchange(now)
        self.updates_out.inc(updates)
        if self.writes_popular:
            self.popular.changed(replica, now, ctx)
        self.redis.arm(ctx)
        for kind, pairs in ((RECOMMENDATIONS, recommendations), (MODEL_UPDATES, [(None, r) for r in exchange]),
                            (DEAD_LETTERS, dead)):
            if pairs:
                yield Row(kind, batched(pairs))

    # -- broadcast: the model-updates topic and the catalog --------------------------------------
    def process_broadcast_element(self, value, ctx):  # type: ignore[no-untyped-def]
        now = int(time.time() * 1000)
        kind, payload = value[0], value[1]
        try:
            replica = self._restore(ctx)
            if kind == CATALOG_ITEM:
                replica.add_catalog_item(catalog_item.decode(payload))
                self.catalog_items.inc()
            else:
                self.updates_applied.inc(replica.apply_exchange(payload))
                if replica.last_emit_time is not None:
                    self.staleness.update(max(0, now - replica.last_emit_time))
            items, globals_ = replica.take_item_changes()
        except Exception as exc:  # noqa: BLE001 - no record may stop the job: it becomes a dead letter
            source = self.catalog_topic if kind == CATALOG_ITEM else self.updates_topic
            yield Row(DEAD_LETTERS, batched([self._dead_letter(exc, payload, source, now)]))
            return
        items_state = ctx.get_broadcast_state(REPLICA_ITEMS)
        for item, item_payload in items.items():
            if item_payload is None:
                items_state.remove(item)
            else:
                items_state.put(item, item_payload)
        ctx.get_broadcast_state(REPLICA_GLOBALS).put(GLOBALS_KEY, globals_)

    # -- timers: the Redis flush, the trending list ------------------------------------------------
    def on_timer(self, timestamp, ctx):  # type: ignore[no-untyped-def]
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            self.popular.write_pending(self.replica)
            self.redis.on_timer(ctx)
        return iter(())

    def _dead_letter(self, exc: Exception, original: str, source: str, now: int) -> tuple[None, bytes]:
        self.internal_errors.inc()
        return None, dead_letter.encode_internal_error(exc, original, source, now, "learn_recommendations")
