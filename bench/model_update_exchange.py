"""``tailor bench exchange``: what a recommender replica pays in PyFlink to apply every replica's updates.

The sharded recommender (``operators.model_updates``) would exchange ``tailor.model_update/1`` through a
Kafka topic read back as broadcast state. This measures that read side on the real engine: the Taobao
sample's interactions are learned once in-process (``learn_user``), their updates written to a fresh
topic in records of ``--exchange-batch`` updates, and a one-slot embedded job reads the topic (bounded)
into a ``KeyedBroadcastProcessFunction`` (in the job's ``execution_mode``), three times:

* ``read``         the records reach Python and are dropped;
* ``apply``        + decoded and applied to a replica (``HybridRecommender.apply_update``);
* ``apply+state``  + the touched items written to broadcast state (what a restored replica would read).

Printed: µs of wall time per update between the first and the last record the function saw (job start-up
excluded), per mode. The topic is deleted afterwards.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from settings import Settings

MODES = ("read", "apply", "apply+state")


def run(settings: Settings, events: int | None = None, batch: int = 64) -> int:
    from kafka import KafkaProducer

    from connectors import kafka_topics
    from evaluation.replicas import _taobao
    from operators.recommender import HybridRecommender, RecommenderConfig
    from state_schemas import model_update

    stream, _ = _taobao(events)
    learner = HybridRecommender(RecommenderConfig())
    updates = []
    for user, item, name, ts, category, _ in stream:
        update = learner.learn_user(user, item, name, ts, category)
        if update is not None:
            learner.apply_update(update)
            updates.append(update)
    topic = f"bench-exchange-{uuid.uuid4().hex[:6]}"
    kafka_topics.ensure_topics(settings, [topic], partitions=1)
    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20,
                                 batch_size=1 << 20, max_request_size=1 << 24)
        sizes = []
        for start in range(0, len(updates), batch):
            payload = model_update.encode_batch(updates[start:start + batch])
            sizes.append(len(payload))
            producer.send(topic, payload)
        producer.flush()
        producer.close()
        print(f"{len(updates):,} updates from {len(stream):,} Taobao events in {len(sizes):,} records "
              f"(mean {sum(sizes) / len(sizes):,.0f} bytes)", flush=True)
        for mode in MODES:
            seconds, seen = _read_back(settings, topic, mode, len(sizes), batch)
            print(f"{mode:12s} {1e6 * seconds / max(1, seen):7.1f} µs per update ({seen:,} updates timed)", flush=True)
    finally:
        kafka_topics.delete_topics(settings, [topic])
    return 0


def _read_back(settings: Settings, topic: str, mode: str, records: int, batch: int) -> tuple[float, int]:
    """(seconds, updates) between the first and the last record the broadcast function saw."""
    from pyflink.common import Configuration, Types, WatermarkStrategy
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.functions import KeyedBroadcastProcessFunction
    from pyflink.datastream.state import MapStateDescriptor

    import stack
    from connectors import flink_kafka
    from connectors.kafka_clients import kafka_cluster
    from operators.recommender import HybridRecommender, RecommenderConfig
    from stack.local_job import python_path_env
    from state_schemas import model_update

    os.environ.update(python_path_env(settings))  # thread mode: the JVM imports our packages and pemja
    items = MapStateDescriptor("replica_items", Types.STRING(), Types.STRING())
    result = Path(tempfile.mkdtemp(prefix="tailor-exchange-")) / "timing.json"

    class ApplyUpdates(KeyedBroadcastProcessFunction):
        def open(self, runtime_context):  # type: ignore[no-untyped-def]
            self.replica = HybridRecommender(RecommenderConfig())
            self.records, self.updates, self.first = 0, 0, 0.0

        def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
            yield value

        def process_broadcast_element(self, value, ctx):  # type: ignore[no-untyped-def]
            self.records += 1
            if self.records == 1:  # the clock starts after the first record: start-up excluded
                self.first = time.perf_counter()
            elif mode == "read":
                self.updates += batch  # the last record may hold fewer: one record in ~1,400
            else:
                decoded = model_update.decode_batch(value)
                for update in decoded:
                    self.replica.apply_update(update)
                self.updates += len(decoded)
                if mode == "apply+state":
                    state = ctx.get_broadcast_state(items)
                    for item in self.replica.take_dirty()[1]:
                        state.put(item, self.replica.export_item(item))
            if self.records == records:
                result.write_bytes(orjson.dumps([time.perf_counter() - self.first, self.updates]))

    config = Configuration()
    config.set_string("python.execution-mode", settings.execution_mode)  # as the job runs its Python
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.add_jars(*[jar.resolve().as_uri() for jar in stack.job_jars(settings)])
    env.set_parallelism(1)
    source = flink_kafka.catalog_source(kafka_cluster(settings), topic, f"bench-exchange-{mode}", bounded=True)
    broadcast = env.from_source(source, WatermarkStrategy.no_watermarks(), "model_updates").broadcast(items)
    keyed = env.from_collection(["replica"], type_info=Types.STRING()).key_by(lambda k: k, key_type=Types.STRING())
    keyed.connect(broadcast).process(ApplyUpdates(), output_type=Types.STRING()).name("apply_updates")
    env.execute(f"tailor-bench-exchange-{mode}")
    seconds, updates = orjson.loads(result.read_bytes())
    return float(seconds), int(updates)
