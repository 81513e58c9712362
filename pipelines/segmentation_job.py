"""The segmentation job: clickstream events in, segment changes out, the instant they happen.

    kafka_events            KafkaSource of whole records (EventRecordDeserializer: the user's bucket,
      |                     partition, offset, timestamp, value); event time from the record timestamps,
      |                     per-partition bounded out-of-orderness watermarks
    micro_batches           Java: one batch per bucket every batch_window_ms (or batch_max_records), flushed
      |                     before every watermark, checkpoint barrier and end of input
    key_by bucket
    segment_batches         Python, once per batch: normalize, sessions, counters, rule segments, timers,
      |                     behavior features; writes Redis      (MapState: user -> profile, per bucket)
      |  (kind, records)
    segment_changes / dead_letters                  Java Unbatch: one record each
      |                                              model_batches (Java ModelBatcher): the model inputs of
      |                                                all bucket batches of model_batch_window_ms in one row
      |                                              + catalog_items (KafkaSource, compacted topic)
      |                                              key_by the single model key
      |                                              learn_models: clustering + recommendations; writes Redis
      |                                              (kind, records) -> Java Unbatch: recommendations,
      |                                                cluster changes, dead letters -+
      |  <---------------------------------------------------------------------------+
    segment_changes_sink    Kafka, exactly-once, keyed by user id (rule and cluster changes)
    identity_feedback_sink  Kafka, exactly-once, back into the events topic: identity merges and events
                            forwarded to the id theirs merged into (operators.identity), keyed by the
                            target id, stamped with the event time
    recommendations_sink    Kafka, exactly-once, keyed by user id (tailor.recommendation/2)
    dead_letters_sink       Kafka, exactly-once

With ``models_sharded`` the hub only clusters (no catalog), and the recommender runs on every subtask:

    replica_batches         Java: the model inputs of model_batch_window_ms, one batch per group of buckets
      key_by group --------------------------------------+
    model_updates (KafkaSource, p1) + catalog_items -----+-- broadcast
                                                         v
    learn_recommendations   Python, once per group batch: the replica learns its users' side and scores
      |                     them (MapState per group: user -> payload); learns the model-updates records
      |                     and catalog items read back (broadcast state: item -> payload, globals)
      +-- recommendations -> recommendations_sink; dead letters -> dead_letters_sink
      +-- model_updates_sink  Kafka, exactly-once, the 1-partition model-updates topic the source above reads

Run it with ``tailor job run`` (embedded mini-cluster, or ``--cluster`` for a standalone cluster); on any
other Flink cluster: ``flink run -py pipelines/segmentation_job.py -pyfs <project dir>`` with the Kafka
connector and ``tailor-flink-ops`` jars in its lib (``stack.job_jars``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from pyflink.common import Configuration, Duration, WatermarkStrategy
from pyflink.common.typeinfo import Types
from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors import flink_kafka
from connectors.kafka_clients import kafka_cluster
from connectors.redis_clients import RedisAuth
from operators.models_config import ModelsConfig
from operators.segment_rules import SegmentRules
from pipelines import java_operators
from pipelines.model_functions import (
    LearnModels,
    catalog_record,
    exchange_record,
    model_key_of,
)
from pipelines.records import (
    BATCHED_RECORD_TYPE,
    CHANGES,
    DEAD_LETTERS,
    MODEL_BATCH,
    MODEL_RECORD_TYPE,
    MODEL_UPDATES,
    RECOMMENDATIONS,
)
from pipelines.replica_functions import REPLICA_GLOBALS, REPLICA_ITEMS, REPLICA_KEYS, LearnRecommendations
from pipelines.segmentation_functions import EXPERIMENTS, FEEDBACK, MODEL_INPUTS, SegmentBatches
from pipelines.state_layout import JOB_NAME, state_dirs
from settings import Settings


def event_watermarks(settings: Settings, bounded: bool = False) -> WatermarkStrategy:
    """Event time from the Kafka record timestamps with bounded out-of-orderness, per partition: the
    source's watermark is the minimum over its partitions, so a partition that is read later or lags
    holds time back instead of its events turning late. A live partition silent for
    ``idle_partition_ms`` stops holding it back (its later events may then be late: see README,
    "Event time"); a bounded replay never marks one idle."""
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(settings.out_of_orderness_ms))
    if not bounded and settings.idle_partition_ms > 0:
        strategy = strategy.with_idleness(Duration.of_millis(settings.idle_partition_ms))
    if settings.watermark_alignment_ms > 0:
        strategy = strategy.with_watermark_alignment(
            "tailor-events", Duration.of_millis(settings.watermark_alignment_ms), Duration.of_seconds(1)
        )
    return strategy


def build(
    env: StreamExecutionEnvironment, settings: Settings, rules: SegmentRules, models: ModelsConfig | None = None,
    bounded: bool = False, from_earliest: bool = False, replay: bool = False,
) -> None:
    """Add the segmentation graph to ``env``; the online models (clustering, recommendations) with ``models``.
    ``from_earliest``: read the events topic from its start, not from the group's committed offsets.
    ``replay``: the source reads a fixed range (a bounded replay, also one that resumed with an unbounded
    source, see ``stack.replay_end``): no partition is ever treated as idle."""
    if bounded and models is not None and settings.models_sharded:
        raise ValueError(
            "the sharded recommender reads its exchange topic for as long as the job runs, so a bounded job "
            "would never end: run it unbounded (`tailor job run --bounded` does, and drains it at the end)"
        )
    watermarks = event_watermarks(settings, bounded or replay)
    deserializer = java_operators.event_record_deserializer(settings.batch_buckets)
    kafka = kafka_cluster(settings)  # its properties file read once, here, for every source and sink
    source = flink_kafka.event_record_source(
        kafka, settings.events_topic, settings.consumer_group, deserializer, bounded, from_earliest
    )
    events = env.from_source(source, watermarks, "kafka_events").uid("kafka_events")

    # (kind, records): one row per kind per batch
    outputs = (
        java_operators.batched_by_bucket(events, settings.batch_max_records, settings.batch_window_ms)
        .process(
            SegmentBatches(
                rules, settings.redis_host, settings.redis_port, settings.redis_prefix, settings.batch_buckets,
                models_enabled=models is not None, source_topic=settings.events_topic,
                pseudonym_key_file=settings.pseudonym_key_file, redact_dead_letters=settings.redact_dead_letters,
                consent_categories=settings.consent_categories, consent_default=settings.consent_default,
                redis_auth=RedisAuth.of(settings),
            ),
            output_type=BATCHED_RECORD_TYPE,
        )
        .name("segment_batches")
        .uid("segment_batches")
    )
    # (user_id, tailor.segment_change/2 JSON), (user_id, tailor.dead_letter/1 JSON)
    changes = java_operators.unbatch(outputs, CHANGES, "user_id", "change", "segment_changes")
    dead_letters = java_operators.unbatch(outputs, DEAD_LETTERS, "user_id", "dead_letter", "dead_letters")
    # The job's loop back into its own input (Flink has no cycles): identity stitching, operators.identity.
    (
        java_operators.unbatch(outputs, FEEDBACK, "user_id", "event", "identity_feedback")
        .sink_to(flink_kafka.keyed_event_sink(
            kafka, f"{settings.consumer_group}-identity-feedback",
            java_operators.keyed_event_serializer(settings.events_topic),
        ))
        .name("identity_feedback_sink")
        .uid("identity_feedback_sink")
    )

    t_env = StreamTableEnvironment.create(env)
    sinks = t_env.create_statement_set()
    if models is not None:
        recommendations, cluster_changes, model_dead_letters = _add_models(
            env, t_env, sinks, settings, models, outputs, bounded
        )
        changes = changes.union(cluster_changes)
        dead_letters = dead_letters.union(model_dead_letters)
        _keyed_sink(t_env, sinks, "recommendations_sink", settings, settings.recommendations_topic, recommendations,
                    "recommendation")
    _keyed_sink(t_env, sinks, "segment_changes_sink", settings, settings.segment_changes_topic, changes, "change")
    # (experiment|variant|segment|bucket, tailor.experiment_metrics/1): each bucket's totals, when they change
    experiment_metrics = java_operators.unbatch(outputs, EXPERIMENTS, "user_id", "metrics", "experiment_metrics")
    _keyed_sink(t_env, sinks, "experiment_metrics_sink", settings, settings.experiment_metrics_topic,
                experiment_metrics, "metrics")
    _keyed_sink(t_env, sinks, "dead_letters_sink", settings, settings.dead_letters_topic, dead_letters, "dead_letter")
    sinks.attach_as_datastream()


def _keyed_sink(t_env, sinks, name: str, settings: Settings, topic: str, stream, value_column: str) -> None:  # type: ignore[no-untyped-def]
    """An exactly-once Kafka sink of (user_id, <value_column>) records, keyed by user id (none: null)."""
    prefix = f"{settings.consumer_group}-{name.removesuffix('_sink').replace('_', '-')}"
    t_env.execute_sql(
        flink_kafka.keyed_changes_sink_ddl(name, settings, topic, prefix, value_column=value_column)
    )
    sinks.add_insert(name, t_env.from_data_stream(stream))


def _add_models(env, t_env, sinks, settings: Settings, models: ModelsConfig, rule_outputs, bounded: bool):  # type: ignore[no-untyped-def]
    """The model branch: (recommendations, cluster changes, dead letters) streams. With ``models_sharded`` the
    hub only clusters, and recommender replicas keyed by bucket learn and score (``_add_recommender_replicas``)."""
    sharded = settings.models_sharded
    # The model inputs of many rule batches in one row: one Python call and one state write per window.
    model_inputs = java_operators.model_batches(
        rule_outputs, MODEL_INPUTS, MODEL_BATCH, settings.model_batch_max_chars, settings.model_batch_window_ms
    )
    catalog = (
        env.from_source(
            flink_kafka.catalog_source(
                settings, settings.catalog_topic, f"{settings.consumer_group}-catalog", bounded=bounded
            ),
            # Idle after 1 s without a catalog record, so it never holds back the hub's event time (the
            # watermark its clusterer learns by): a union's watermark is the least of its inputs'
            WatermarkStrategy.for_monotonous_timestamps().with_idleness(Duration.of_seconds(1)),
            "catalog_items",
        )
        .uid("catalog_items")
        .map(catalog_record, output_type=MODEL_RECORD_TYPE)
        .name("catalog_records")
        .uid("catalog_records")
    )
    # (kind, records): one row per kind per call
    outputs = (
        (model_inputs if sharded else model_inputs.union(catalog))
        .key_by(model_key_of, key_type=Types.STRING())
        .process(
            LearnModels(
                models, settings.redis_host, settings.redis_port, settings.redis_prefix, settings.events_topic,
                redis_auth=RedisAuth.of(settings), catalog_topic=settings.catalog_topic, recommendations=not sharded,
            ),
            output_type=BATCHED_RECORD_TYPE,
        )
        .name("learn_models")
        .uid("learn_models")
    )
    cluster_changes = java_operators.unbatch(outputs, CHANGES, "user_id", "change", "cluster_changes")
    dead_letters = java_operators.unbatch(outputs, DEAD_LETTERS, "user_id", "dead_letter", "model_dead_letters")
    if not sharded:
        recommendations = java_operators.unbatch(
            outputs, RECOMMENDATIONS, "user_id", "recommendation", "recommendations"
        )
        return recommendations, cluster_changes, dead_letters
    recommendations, replica_dead_letters = _add_recommender_replicas(
        env, t_env, sinks, settings, models, rule_outputs, catalog
    )
    return recommendations, cluster_changes, dead_letters.union(replica_dead_letters)


def _add_recommender_replicas(env, t_env, sinks, settings: Settings, models: ModelsConfig, rule_outputs, catalog):  # type: ignore[no-untyped-def]
    """The sharded recommender (module docstring): (recommendations, dead letters) streams. The model-updates
    topic is the loop from its output back to its broadcast input (Flink has no cycles)."""
    exchange = (
        env.from_source(
            flink_kafka.model_updates_source(
                settings, settings.model_updates_topic, f"{settings.consumer_group}-model-updates"
            ),
            WatermarkStrategy.for_monotonous_timestamps().with_idleness(Duration.of_seconds(1)),
            "model_updates",
        )
        .set_parallelism(1)  # the topic has one partition: its order is the replicas' log
        .uid("model_updates")
        .map(exchange_record, output_type=MODEL_RECORD_TYPE)
        .set_parallelism(1)
        .name("model_update_records")
        .uid("model_update_records")
    )
    # (kind, records): one row per kind per call
    outputs = (
        java_operators.replica_batches(
            rule_outputs, MODEL_INPUTS, MODEL_BATCH, REPLICA_KEYS, settings.model_batch_max_chars,
            settings.model_batch_window_ms, MODEL_RECORD_TYPE,
        )
        .connect(exchange.union(catalog).broadcast(REPLICA_ITEMS, REPLICA_GLOBALS))
        .process(
            LearnRecommendations(
                models.recommendations, settings.redis_host, settings.redis_port, settings.redis_prefix,
                source_topic=settings.events_topic, catalog_topic=settings.catalog_topic,
                updates_topic=settings.model_updates_topic, redis_auth=RedisAuth.of(settings),
            ),
            output_type=BATCHED_RECORD_TYPE,
        )
        .name("learn_recommendations")
        .uid("learn_recommendations")
    )
    updates = java_operators.unbatch(outputs, MODEL_UPDATES, "user_id", "model_update", "model_update_records_out")
    _keyed_sink(t_env, sinks, "model_updates_sink", settings, settings.model_updates_topic, updates, "model_update")
    return (
        java_operators.unbatch(outputs, RECOMMENDATIONS, "user_id", "recommendation", "recommendations"),
        java_operators.unbatch(outputs, DEAD_LETTERS, "user_id", "dead_letter", "replica_dead_letters"),
    )


def configure(env: StreamExecutionEnvironment, settings: Settings) -> None:
    """Checkpointing, parallelism and network flushing; engine options are set in ``flink_configuration``."""
    env.set_parallelism(settings.parallelism)
    env.set_buffer_timeout(settings.buffer_timeout_ms)
    env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    env.get_checkpoint_config().set_min_pause_between_checkpoints(settings.checkpoint_interval_ms // 2)


# Failures (a broker restart, a TaskManager lost) restart the job from its latest checkpoint after
# 1 s, 2 s, 4 s, ... at most 60 s apart, forever: an outage the job cannot fix must not end it. The delay
# returns to 1 s after 10 minutes without a failure.
RESTART_STRATEGY = {
    "restart-strategy.type": "exponential-delay",
    "restart-strategy.exponential-delay.initial-backoff": "1 s",
    "restart-strategy.exponential-delay.max-backoff": "60 s",
    "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
    "restart-strategy.exponential-delay.reset-backoff-threshold": "10 min",
    "restart-strategy.exponential-delay.jitter-factor": "0.1",
    "restart-strategy.exponential-delay.attempts-before-reset-backoff": str(2**31 - 1),
}


def flink_configuration(
    settings: Settings, local: bool, restore_from: Path | None = None, extra: Mapping[str, str] | None = None
) -> Configuration:
    """Engine options of the job. Checkpoints are retained when the job is cancelled or dies, under
    ``state_dirs(settings)``, so a restart by any command can resume from them; ``restore_from``: the
    checkpoint or savepoint to start from (the embedded mini-cluster; ``flink run -s`` on a cluster)."""
    config = Configuration()
    config.set_string("python.execution-mode", settings.execution_mode)
    config.set_string("pipeline.name", JOB_NAME)
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    dirs = state_dirs(settings)
    config.set_string("execution.checkpointing.dir", dirs.checkpoints.resolve().as_uri())
    config.set_string("execution.checkpointing.savepoint-dir", dirs.savepoints.resolve().as_uri())
    config.set_string("state.backend.type", settings.state_backend)
    config.set_string("execution.checkpointing.incremental", str(settings.state_backend == "rocksdb").lower())
    config.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    config.set_string("execution.checkpointing.num-retained", "2")
    for key, value in RESTART_STRATEGY.items():
        config.set_string(key, value)
    if restore_from is not None:
        config.set_string("execution.state-recovery.path", restore_from.resolve().as_uri())
    if local:
        config.set_string("rest.port", str(settings.rest_port))
        config.set_string("rest.address", "127.0.0.1")
        config.set_string("rest.bind-address", "127.0.0.1")
    for key, value in (extra or {}).items():  # e.g. the bench's faster metric refresh
        config.set_string(key, value)
    return config


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``flink run -py``: builds the job with settings from the environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, help="segment rules YAML (default: settings.segments_file)")
    parser.add_argument("--bounded", action="store_true", help="stop at the topic's current end")
    parser.add_argument("--from-earliest", action="store_true",
                        help="read the events topic from its start (a fresh replay; a restore ignores it)")
    parser.add_argument("--jar", action="append", default=[], help="extra jar URL (file:///...)")
    args = parser.parse_args(argv)
    settings = Settings.load()
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(settings, local=False))
    if args.jar:
        env.add_jars(*args.jar)
    configure(env, settings)
    rules = SegmentRules.from_yaml(args.rules or settings.segments_file)
    models = ModelsConfig.from_yaml(settings.models_file) if settings.models_enabled else None
    build(env, settings, rules, models, bounded=args.bounded, from_earliest=args.from_earliest)
    env.execute(JOB_NAME)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
