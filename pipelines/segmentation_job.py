"""The segmentation job: clickstream events in, segment changes out, the instant they happen.

    kafka_events            KafkaSource, raw bytes; event time from Kafka record timestamps,
      |                     bounded out-of-orderness watermarks
    normalize_events        validate + canonicalize          -> dead letters (side output)
      |  (user_key, event)
    key_by user_key
    track_segments          sessions, counters, rule segments, timers, behavior features; writes Redis
      |  (user_id, tailor.segment_change/1 JSON)          -> model inputs (side output, models on)
      |                                                      + catalog_items (KafkaSource, compacted topic)
      |                                                      key_by the single model key
      |                                                      learn_models: clustering + recommendations;
      |                                                      writes Redis
      |                                                        -> cluster changes (side output) -+
      |  <------------------------------------------------------------------------------------- +
    segment_changes_sink    Kafka, exactly-once, keyed by user id (rule and cluster changes)
    recommendations_sink    Kafka, exactly-once, keyed by user id (tailor.recommendation/1)
    dead_letters_sink       Kafka, exactly-once

Run it with ``tailor job run`` (embedded mini-cluster, or ``--cluster`` for a standalone cluster); on any
other Flink cluster: ``flink run -py pipelines/segmentation_job.py -pyfs <project dir>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyflink.common import Configuration, Duration, WatermarkStrategy
from pyflink.common.typeinfo import Types
from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors import flink_kafka
from operators.models_config import ModelsConfig
from operators.segment_rules import SegmentRules
from pipelines.model_functions import CLUSTER_CHANGES, LearnModels, catalog_record, model_key_of
from pipelines.records import (
    CHANGE_RECORD_TYPE,
    KEYED_EVENT_TYPE,
    MODEL_RECORD_TYPE,
    RECOMMENDATION_RECORD_TYPE,
)
from pipelines.segmentation_functions import DEAD_LETTERS, MODEL_INPUTS, NormalizeEvents, TrackSegments
from settings import Settings

JOB_NAME = "tailor-segmentation"


def user_key_of(row):  # type: ignore[no-untyped-def]
    return row[0]


def event_watermarks(settings: Settings) -> WatermarkStrategy:
    """Event time from the Kafka record timestamps, bounded out-of-orderness; an idle partition does not
    hold back the watermark for more than 30 s."""
    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(settings.out_of_orderness_ms)
    ).with_idleness(Duration.of_seconds(30))


def build(
    env: StreamExecutionEnvironment, settings: Settings, rules: SegmentRules, models: ModelsConfig | None = None,
    bounded: bool = False,
) -> None:
    """Add the segmentation graph to ``env``; the online models (clustering, recommendations) with ``models``."""
    watermarks = event_watermarks(settings)
    source = flink_kafka.event_source(
        settings.kafka_bootstrap, settings.events_topic, settings.consumer_group, bounded=bounded
    )
    raw_events = env.from_source(source, watermarks, "kafka_events").uid("kafka_events")

    # (user_key, normalized event)
    normalized = (
        raw_events.process(NormalizeEvents(settings.events_topic), output_type=KEYED_EVENT_TYPE)
        .name("normalize_events")
        .uid("normalize_events")
    )

    # (user_id, segment change JSON)
    changes = (
        normalized.key_by(user_key_of, key_type=Types.STRING())
        .process(
            TrackSegments(
                rules,
                settings.redis_host,
                settings.redis_port,
                settings.redis_prefix,
                settings.out_of_orderness_ms,
                models_enabled=models is not None,
            ),
            output_type=CHANGE_RECORD_TYPE,
        )
        .name("track_segments")
        .uid("track_segments")
    )

    (
        normalized.get_side_output(DEAD_LETTERS)
        .sink_to(
            flink_kafka.string_sink(
                settings.kafka_bootstrap, settings.dead_letters_topic, f"{settings.consumer_group}-dead-letters"
            )
        )
        .name("dead_letters_sink")
        .uid("dead_letters_sink")
    )

    t_env = StreamTableEnvironment.create(env)
    sinks = t_env.create_statement_set()
    if models is not None:
        recommendations, cluster_changes = _add_models(env, settings, models, changes, bounded)
        changes = changes.union(cluster_changes)
        t_env.execute_sql(
            flink_kafka.keyed_changes_sink_ddl(
                "recommendations_sink",
                settings.kafka_bootstrap,
                settings.recommendations_topic,
                f"{settings.consumer_group}-recommendations",
                value_column="recommendation",
            )
        )
        sinks.add_insert("recommendations_sink", t_env.from_data_stream(recommendations))
    t_env.execute_sql(
        flink_kafka.keyed_changes_sink_ddl(
            "segment_changes_sink",
            settings.kafka_bootstrap,
            settings.segment_changes_topic,
            f"{settings.consumer_group}-segment-changes",
        )
    )
    sinks.add_insert("segment_changes_sink", t_env.from_data_stream(changes))
    sinks.attach_as_datastream()


def _add_models(env, settings: Settings, models: ModelsConfig, changes, bounded: bool):  # type: ignore[no-untyped-def]
    """The model branch: (recommendations, cluster changes) streams."""
    catalog = (
        env.from_source(
            flink_kafka.catalog_source(
                settings.kafka_bootstrap, settings.catalog_topic, f"{settings.consumer_group}-catalog", bounded=bounded
            ),
            WatermarkStrategy.no_watermarks(),
            "catalog_items",
        )
        .uid("catalog_items")
        .map(catalog_record, output_type=MODEL_RECORD_TYPE)
        .name("catalog_records")
        .uid("catalog_records")
    )
    recommendations = (
        changes.get_side_output(MODEL_INPUTS)
        .union(catalog)
        .key_by(model_key_of, key_type=Types.STRING())
        .process(
            LearnModels(models, settings.redis_host, settings.redis_port, settings.redis_prefix),
            output_type=RECOMMENDATION_RECORD_TYPE,
        )
        .name("learn_models")
        .uid("learn_models")
    )
    return recommendations, recommendations.get_side_output(CLUSTER_CHANGES)


def configure(env: StreamExecutionEnvironment, settings: Settings) -> None:
    """Checkpointing and parallelism; engine options are set in ``flink_configuration``."""
    env.set_parallelism(settings.parallelism)
    env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    env.get_checkpoint_config().set_min_pause_between_checkpoints(settings.checkpoint_interval_ms // 2)


def flink_configuration(settings: Settings, local: bool) -> Configuration:
    config = Configuration()
    config.set_string("python.execution-mode", settings.execution_mode)
    config.set_string("pipeline.name", JOB_NAME)
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    if local:
        config.set_string("rest.port", str(settings.rest_port))
        config.set_string("rest.address", "127.0.0.1")
        config.set_string("rest.bind-address", "127.0.0.1")
        checkpoints = (settings.home / "checkpoints").resolve()
        config.set_string("execution.checkpointing.dir", checkpoints.as_uri())
    return config


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``flink run -py``: builds the job with settings from the environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, help="segment rules YAML (default: settings.segments_file)")
    parser.add_argument("--bounded", action="store_true", help="stop at the topic's current end")
    parser.add_argument("--jar", action="append", default=[], help="extra jar URL (file:///...)")
    args = parser.parse_args(argv)
    settings = Settings.load()
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(settings, local=False))
    if args.jar:
        env.add_jars(*args.jar)
    configure(env, settings)
    rules = SegmentRules.from_yaml(args.rules or settings.segments_file)
    models = ModelsConfig.from_yaml(settings.models_file) if settings.models_enabled else None
    build(env, settings, rules, models, bounded=args.bounded)
    env.execute(JOB_NAME)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
