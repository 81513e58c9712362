"""The PyFlink floor: the least per-event work a keyed Python job can do, as two benchmark contenders.

``floor`` (:func:`build`), one Python call per event, as in the segmentation job:

    kafka_events     the segmentation job's source and watermarks, unchanged
    floor_parse      orjson.loads + the user key, Python -> Java string edge (like normalize_events)
    key_by user key  PyFlink's hidden key operator + hash shuffle (like the job)
    floor_keyed      one ValueState read + write per event, emits nothing
    floor_discard    Java DiscardingSink

``floor-batched`` (:func:`build_batched`), one Python call per micro-batch, the design measured for the
next step of the job:

    kafka_events_batched   Kafka SQL source (raw), user key by JSON_VALUE in Java
    floor_batches          Java: LISTAGG of the payloads per key bucket per 100 ms processing-time window
    floor_keyed            keyed by bucket: per event orjson.loads + MapState get + put (state per user)

Their events/s are what PyFlink itself costs per event on this machine; the gap to the segmentation job
is what our operators, Redis writes and outputs cost. Run by ``tailor bench --only floor,floor-batched``
(or group ``a``) through :func:`bench.flink_runs.start_local`. The batched floor's progress is the
records its source hands to the window (at most one window ahead of the Python operator).
"""

from __future__ import annotations

import orjson
from pyflink.common import Configuration, Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import (
    KeyedProcessFunction,
    ProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors.base import Sink
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

from connectors import flink_kafka
from pipelines import segmentation_job
from settings import Settings
from stack import connector_jar

# Vertex names the harness counts progress by (bench.flink_runs.PROGRESS_COUNTERS).
KEYED_OPERATOR = "floor_keyed"
BATCHED_SOURCE = "kafka_events_batched"

_KEYED_TYPE = Types.ROW([Types.STRING(), Types.STRING()])


class FloorParse(ProcessFunction):
    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        event = orjson.loads(value)
        yield Row(event.get("userId") or event.get("anonymousId") or "", "")


class FloorKeyed(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.seen = runtime_context.get_state(ValueStateDescriptor("seen", Types.LONG()))

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        self.seen.update((self.seen.value() or 0) + 1)
        return ()


class FloorBatch(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.users = runtime_context.get_map_state(MapStateDescriptor("users", Types.STRING(), Types.LONG()))

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        for payload in value[1].split("\n"):
            event = orjson.loads(payload)
            user = event.get("userId") or event.get("anonymousId") or ""
            self.users.put(user, (self.users.get(user) or 0) + 1)
        return ()


def _user_key(row):  # type: ignore[no-untyped-def]
    return row[0]


def build(env: StreamExecutionEnvironment, settings: Settings) -> None:
    watermarks = segmentation_job.event_watermarks(settings)
    source = flink_kafka.event_source(settings.kafka_bootstrap, settings.events_topic, settings.consumer_group)
    discard = Sink(get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink())
    (
        env.from_source(source, watermarks, "kafka_events").uid("kafka_events")
        .process(FloorParse(), output_type=_KEYED_TYPE).name("floor_parse").uid("floor_parse")
        .key_by(_user_key, key_type=Types.STRING())
        .process(FloorKeyed(), output_type=Types.STRING()).name(KEYED_OPERATOR).uid(KEYED_OPERATOR)
        .sink_to(discard).name("floor_discard").uid("floor_discard")
    )


def build_batched(env: StreamExecutionEnvironment, settings: Settings, buckets: int = 64,
                  window_ms: int = 100) -> None:
    t_env = StreamTableEnvironment.create(env)
    t_env.execute_sql(f"""
        CREATE TABLE {BATCHED_SOURCE} (payload STRING, proc AS PROCTIME()) WITH (
          'connector' = 'kafka', 'topic' = '{settings.events_topic}',
          'properties.bootstrap.servers' = '{settings.kafka_bootstrap}',
          'properties.group.id' = '{settings.consumer_group}',
          'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = 'earliest',
          'format' = 'raw')""")
    user = "COALESCE(JSON_VALUE(payload, '$.userId'), JSON_VALUE(payload, '$.anonymousId'), '')"
    batches = t_env.sql_query(f"""
        SELECT bucket, LISTAGG(payload, '\n') AS batch
        FROM (SELECT payload, proc, MOD(ABS(HASH_CODE({user})), {buckets}) AS bucket FROM {BATCHED_SOURCE})
        GROUP BY TUMBLE(proc, INTERVAL '{window_ms / 1000}' SECOND), bucket""")
    discard = Sink(get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink())
    (
        t_env.to_data_stream(batches)
        .key_by(_user_key, key_type=Types.INT())
        .process(FloorBatch(), output_type=Types.STRING()).name(KEYED_OPERATOR).uid(KEYED_OPERATOR)
        .sink_to(discard).name("floor_discard").uid("floor_discard")
    )


def run(settings: Settings, config: Configuration, batched: bool = False) -> None:
    """Build and execute on an embedded mini-cluster, set up like the segmentation job (checkpoints too)."""
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.add_jars(connector_jar(settings).resolve().as_uri())
    segmentation_job.configure(env, settings)
    (build_batched if batched else build)(env, settings)
    env.execute("tailor-bench-floor")
