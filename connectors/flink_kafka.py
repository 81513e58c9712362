"""Kafka source and sinks for the Flink jobs: topics, offsets, delivery guarantees and record keys.

Needs the shaded connector jar ``flink-sql-connector-kafka`` on the job's classpath (see
``stack.connector_jar``). Every source and sink gets the cluster's client properties (SASL, TLS:
``connectors.kafka_clients``) as they are written in its properties file.
"""

from __future__ import annotations

from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaSink,
    KafkaSource,
)

from connectors.kafka_clients import KafkaCluster, KafkaTarget, kafka_cluster

# The connector jar relocates the Kafka client it bundles; class names in client properties (the JAAS login
# module above all) must name the relocated classes, or the login fails with "No LoginModule found".
SHADED_KAFKA = "org.apache.flink.kafka.shaded."
_CLASS_PREFIX = "org.apache.kafka."

# Flink's KafkaSink defaults transaction.timeout.ms to 1 h; keep it within the broker's
# transaction.max.timeout.ms and short enough that a crashed job does not block readers for long.
TRANSACTION_TIMEOUT_MS = 15 * 60 * 1000
# How long a sink's send may wait for a broker that is away (metadata: max.block.ms; acks:
# delivery.timeout.ms). Kafka's defaults (60 s, 120 s) turn a broker restart slower than a minute into a
# failed send; a failed exactly-once writer then throws again while closing, which Flink treats as fatal for
# the whole TaskManager (the embedded mini-cluster has no second one: the job hung, fault suite). Within
# the transaction timeout, a slow restart only back-pressures the job.
SEND_TIMEOUT_MS = 10 * 60 * 1000
_SINK_PROPERTIES = {
    "transaction.timeout.ms": str(TRANSACTION_TIMEOUT_MS),
    "max.block.ms": str(SEND_TIMEOUT_MS),
    "delivery.timeout.ms": str(SEND_TIMEOUT_MS),
}


def event_source(
    kafka: KafkaTarget, topic: str, group_id: str, bounded: bool = False, from_earliest: bool = False
) -> KafkaSource:
    """Raw event bytes from ``topic``. A job restored from a checkpoint or savepoint resumes from the
    offsets in it; a new job from the group's committed offsets, else the earliest (``from_earliest``:
    always the earliest, for a fresh replay).

    ``bounded`` stops at the offsets that are latest when the job starts (replays and tests); the
    final watermark then fires every pending timer.
    """
    return _source(kafka_cluster(kafka), topic, group_id, ByteArraySchema(), bounded, from_earliest)


def event_record_source(
    kafka: KafkaTarget, topic: str, group_id: str, deserializer, bounded: bool = False,  # type: ignore[no-untyped-def]
    from_earliest: bool = False,
) -> KafkaSource:
    """Whole Kafka records of ``topic`` through a Java ``KafkaRecordDeserializationSchema`` (key, partition,
    offset, timestamp and value; tombstones included); offsets and bounds as :func:`event_source`."""
    builder = _builder(kafka_cluster(kafka), topic, group_id, bounded, from_earliest)
    builder._j_builder.setDeserializer(deserializer)  # PyFlink's builder only offers value-only schemas
    return builder.build()


def catalog_source(kafka: KafkaTarget, topic: str, group_id: str, bounded: bool = False) -> KafkaSource:
    """Catalog records (``tailor.catalog_item/1`` JSON strings) from the compacted catalog topic.

    A new job reads the whole topic (compaction keeps the latest record per item); a restored job
    resumes from its checkpointed offsets, its catalog being in the model state.
    """
    return _source(kafka_cluster(kafka), topic, group_id, SimpleStringSchema(), bounded)


def model_updates_source(kafka: KafkaTarget, topic: str, group_id: str) -> KafkaSource:
    """The sharded recommender's exchange (``tailor.model_updates/1`` JSON strings), never bounded: every
    replica must see the others' updates while it learns. A new job starts at the topic's end (its replicas
    are empty; older updates belong to a model it does not have); a restored job resumes from its
    checkpointed offsets, where its replicas' state left off."""
    return (
        _builder(kafka_cluster(kafka), topic, group_id, bounded=False, from_earliest=False)
        .set_starting_offsets(KafkaOffsetsInitializer.latest())
        .set_value_only_deserializer(SimpleStringSchema())
        .build()
    )


def _source(  # type: ignore[no-untyped-def]
    cluster: KafkaCluster, topic: str, group_id: str, values, bounded: bool, from_earliest: bool = False
) -> KafkaSource:
    return _builder(cluster, topic, group_id, bounded, from_earliest).set_value_only_deserializer(values).build()


def _builder(  # type: ignore[no-untyped-def]
    cluster: KafkaCluster, topic: str, group_id: str, bounded: bool, from_earliest: bool
):
    starting = (
        KafkaOffsetsInitializer.earliest()
        if from_earliest
        else KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
    )
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(cluster.bootstrap)
        .set_properties(shaded(cluster.java_properties()))
        .set_topics(topic)
        .set_group_id(group_id)
        .set_starting_offsets(starting)
        .set_property("partition.discovery.interval.ms", "30000")
        .set_property("commit.offsets.on.checkpoint", "true")
        # Transactional producers upstream (another job's exactly-once sink, `tailor dead-letters replay`):
        # only what they committed, never an aborted record.
        .set_property("isolation.level", "read_committed")
    )
    if bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder


def keyed_event_sink(kafka: KafkaTarget, transactional_id_prefix: str, serializer) -> KafkaSink:  # type: ignore[no-untyped-def]
    """An exactly-once ``KafkaSink`` of events the job writes back to its own input (``serializer``:
    ``pipelines.java_operators.keyed_event_serializer``, which picks the topic, key and timestamp)."""
    cluster = kafka_cluster(kafka)
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(cluster.bootstrap)
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .set_transactional_id_prefix(transactional_id_prefix)
    )
    for key, value in {**_SINK_PROPERTIES, **shaded(cluster.java_properties())}.items():
        builder = builder.set_property(key, value)
    builder._j_builder.setRecordSerializer(serializer)  # PyFlink's builder only takes Python-built schemas
    return builder.build()


def keyed_changes_sink_ddl(
    table_name: str, kafka: KafkaTarget, topic: str, transactional_id_prefix: str, value_column: str = "change"
) -> str:
    """Flink SQL DDL of an exactly-once Kafka table ``(user_id STRING, <value_column> STRING)``.

    The DataStream ``KafkaSink`` can only serialize a whole record into the key, so keyed records go
    through the SQL connector: ``user_id`` becomes the raw record key (downstream consumers get per-user
    partitioning and ordering), ``change`` the raw value. Records become visible to ``read_committed``
    consumers when the checkpoint that covers them completes.
    """
    cluster = kafka_cluster(kafka)
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": cluster.bootstrap,
        **{f"properties.{k}": v for k, v in {**_SINK_PROPERTIES, **shaded(cluster.java_properties())}.items()},
        "key.format": "raw",
        "key.fields": "user_id",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": transactional_id_prefix,
    }
    with_clause = ",\n".join(f"  '{_sql(k)}' = '{_sql(v)}'" for k, v in options.items())
    return (
        f"CREATE TEMPORARY TABLE `{table_name}` (user_id STRING, `{value_column}` STRING) "
        f"WITH (\n{with_clause}\n)"
    )


def _sql(text: str) -> str:
    """A SQL string literal's content: a quote doubled (a JAAS password may hold one)."""
    return text.replace("'", "''")


def shaded(properties: dict[str, str]) -> dict[str, str]:
    """Client ``properties`` with Kafka's class names relocated as the connector jar bundles them.

    >>> shaded({"sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required;"})
    {'sasl.jaas.config': 'org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule required;'}
    """  # noqa: E501 (a doctest's expected output cannot wrap)
    return {key: value.replace(_CLASS_PREFIX, SHADED_KAFKA + _CLASS_PREFIX) if not value.startswith(SHADED_KAFKA)
            and (key == "sasl.jaas.config" or key.endswith(".class")) else value
            for key, value in properties.items()}
