"""The job's Java operators (``pipelines/java``, compiled by ``stack.job_jar``) as PyFlink streams.

PyFlink has no API to insert a Java operator, so these go through the Java ``DataStream`` under the
Python one; each function says what it adds to the graph. The jar must be on the job's classpath
(``env.add_jars``) before they are called.
"""

from __future__ import annotations

from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, KeyedStream
from pyflink.java_gateway import get_gateway

# (bucket, count, records): one bucket's batch of raw events, records a JSON array of
# [timestamp, partition, offset, value, value_b64]
BATCH_TYPE = Types.ROW_NAMED(["bucket", "count", "records"], [Types.INT(), Types.INT(), Types.STRING()])


def event_record_deserializer(buckets: int):  # type: ignore[no-untyped-def]
    """The Java ``KafkaRecordDeserializationSchema`` of the events source (bucket, Kafka metadata, value)."""
    return get_gateway().jvm.tailor.flink.EventRecordDeserializer(buckets)


def batched_by_bucket(events: DataStream, max_records: int, max_delay_ms: int) -> KeyedStream:
    """``MicroBatcher`` (chained to the source) and the key-by-bucket shuffle: a keyed stream of
    ``BATCH_TYPE`` rows, ready for a ``KeyedProcessFunction`` (no Python key selector runs)."""
    gateway = get_gateway()
    batcher = gateway.jvm.tailor.flink.MicroBatcher(max_records, max_delay_ms)
    keyed_type = Types.ROW([Types.INT(), BATCH_TYPE])
    j_batches = events._j_data_stream.transform("micro_batches", keyed_type.get_java_type_info(), batcher)
    j_batches.uid("micro_batches")
    j_keyed = j_batches.keyBy(gateway.jvm.KeyByKeySelector(), Types.ROW([Types.INT()]).get_java_type_info())
    return KeyedStream(j_keyed, BATCH_TYPE, DataStream(j_batches))


def model_batches(
    outputs: DataStream, input_kind: str, output_kind: str, max_chars: int, max_delay_ms: int
) -> DataStream:
    """``ModelBatcher`` (after the rule operator): its ``input_kind`` rows, each a JSON array of model
    inputs, gathered into one ``(output_kind, array)`` row per ``max_delay_ms`` or ``max_chars`` characters."""
    batcher = get_gateway().jvm.tailor.flink.ModelBatcher(input_kind, output_kind, max_chars, max_delay_ms)
    row_type = Types.ROW_NAMED(["kind", "payload"], [Types.STRING(), Types.STRING()])
    j_batches = outputs._j_data_stream.transform("model_batches", row_type.get_java_type_info(), batcher)
    j_batches.uid("model_batches")
    return DataStream(j_batches)


def replica_batches(  # type: ignore[no-untyped-def]
    outputs: DataStream, input_kind: str, output_kind: str, keys: tuple[int, ...], max_chars: int,
    max_delay_ms: int, value_type,
) -> KeyedStream:
    """``ReplicaBatcher`` (after the rule operator) and the key-by shuffle: the ``<input_kind>@<bucket>`` rows
    gathered per group of buckets (``bucket % len(keys)``) into ``(output_kind, array)`` rows, keyed by the
    group's key (no Python key selector runs)."""
    gateway = get_gateway()
    j_keys = gateway.new_array(gateway.jvm.int, len(keys))
    for n, key in enumerate(keys):
        j_keys[n] = key
    batcher = gateway.jvm.tailor.flink.ReplicaBatcher(input_kind, output_kind, j_keys, max_chars, max_delay_ms)
    keyed_type = Types.ROW([Types.INT(), value_type])
    j_batches = outputs._j_data_stream.transform("replica_batches", keyed_type.get_java_type_info(), batcher)
    j_batches.uid("replica_batches")
    j_keyed = j_batches.keyBy(gateway.jvm.KeyByKeySelector(), Types.ROW([Types.INT()]).get_java_type_info())
    return KeyedStream(j_keyed, value_type, DataStream(j_batches))


def keyed_event_serializer(topic: str):  # type: ignore[no-untyped-def]
    """The Java ``KafkaRecordSerializationSchema`` of (key, event JSON) rows, stamped with the event time."""
    return get_gateway().jvm.tailor.flink.KeyedEventSerializer(topic)


def unbatch(batches: DataStream, kind: str, key_field: str, value_field: str, uid: str) -> DataStream:
    """The ``kind`` rows of a batched output, split into (key, value) records (``Unbatch``)."""
    splitter = get_gateway().jvm.tailor.flink.Unbatch(kind, key_field, value_field)
    # Chained to the Python operator: in a chain of its own it measured slower (20.3k vs 21.5k events/s).
    return DataStream(batches._j_data_stream.flatMap(splitter).name(uid).uid(uid))
