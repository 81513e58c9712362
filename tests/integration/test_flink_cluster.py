"""The segmentation job on a real standalone Flink cluster started from the wheel's scripts.

One module-scoped run: start the cluster (1 TaskManager, 2 slots, thread mode), produce a few
Segment-Spec events to scratch topics, submit ``pipelines/segmentation_job.py`` with ``flink run -py``
(settings travel as TAILOR_* variables), then check the outputs a downstream service sees (the
segment-changes topic read_committed, Redis audiences) and what an operator sees (REST job graph,
custom metrics). The job is cancelled, the cluster stopped (unless it was already running before this
module), the scratch topics and Redis keys deleted, also when a check fails. About a minute.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import stack
from connectors.redis_keys import RedisKeys
from settings import Settings
from stack import flink_cluster, flink_jobs, process, topics

pytestmark = pytest.mark.integration

OPERATORS = (
    "kafka_events", "micro_batches", "segment_batches", "segment_changes", "dead_letters", "model_batches",
    "learn_models", "dead_letters_sink", "segment_changes_sink", "recommendations_sink",
)
USER_1, USER_2 = "user-1", "user-2"
FILLER_EVENTS = 300


def rest_port() -> int:
    """The configured REST port, unless something else (say, a developer's embedded mini-cluster from
    `tailor job run`) holds it and our cluster does not run: then any free port."""
    default = Settings.load()
    ours = flink_cluster.status(default).state == "running"
    if ours or process.port_bindable("127.0.0.1", default.rest_port):
        return default.rest_port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def settings() -> Settings:
    tag = uuid.uuid4().hex[:8]
    settings = Settings.load(
        rest_port=rest_port(),
        events_topic=f"tailor.test.flink.{tag}.events",
        segment_changes_topic=f"tailor.test.flink.{tag}.segment-changes",
        dead_letters_topic=f"tailor.test.flink.{tag}.dead-letters",
        recommendations_topic=f"tailor.test.flink.{tag}.recommendations",
        catalog_topic=f"tailor.test.flink.{tag}.catalog",
        experiment_metrics_topic=f"tailor.test.flink.{tag}.experiment-metrics",
        model_updates_topic=f"tailor.test.flink.{tag}.model-updates",
        consumer_group=f"tailor-test-flink-{tag}",
        redis_prefix=f"tailor:test:flink:{tag}:",
    )
    stack.up(settings, progress=lambda _line: None)
    topics.recreate_topics(settings, topics.tailor_topics(settings))
    yield settings
    topics.delete_topics(settings, topics.tailor_topics(settings))
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    keys = list(client.scan_iter(match=RedisKeys(settings.redis_prefix).everything_pattern))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def cluster(settings):
    was_running = flink_cluster.status(settings).state == "running"
    try:
        yield flink_cluster.start(settings, progress=lambda _line: None)
    finally:
        if not was_running:  # a developer's cluster stays up; ours goes
            flink_cluster.stop(settings, progress=lambda _line: None)


@pytest.fixture(scope="module")
def job(settings, cluster):
    produced = produce_events(settings)
    job_id = flink_jobs.submit(settings)
    try:
        flink_jobs.wait_for_job(settings, job_id, "RUNNING", timeout_s=60, all_tasks_running=True)
        yield job_id, produced
    finally:
        flink_jobs.cancel(settings, job_id)


def produce_events(settings: Settings) -> int:
    """USER_1: six product views and an add-to-cart (-> interested_but_hesitant), USER_2: one view,
    plus one payload that is not JSON (-> dead letter). Key = user id, Kafka timestamp = event time.
    FILLER_EVENTS views of other users follow: the job's counters reach the JVM in batches
    (pipelines/flink_metrics.BatchedCounter, up to 256 events), and these make the first batch flush."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    start = int(time.time() * 1000) - 60_000
    events = [(USER_1, "Product Viewed", start + i * 1000, i) for i in range(6)]
    events += [(USER_1, "Product Added", start + 7000, 3), (USER_2, "Product Viewed", start + 8000, 9)]
    events += [(f"filler-{i % 30}", "Product Viewed", start + 10_000 + i, i) for i in range(FILLER_EVENTS)]
    for user, name, ts, product in events:
        message = {
            "type": "track", "event": name, "messageId": uuid.uuid4().hex, "userId": user, "timestamp": ts,
            "properties": {"product_id": product, "category": "shoes"},
        }
        producer.send(settings.events_topic, key=user.encode(), value=orjson.dumps(message), timestamp_ms=ts)
    producer.send(settings.events_topic, key=b"broken", value=b"{not json", timestamp_ms=start + 9000)
    producer.flush()
    producer.close()
    return len(events) + 1


def read_committed(settings: Settings, topic: str) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
        enable_auto_commit=False, consumer_timeout_ms=1000,
    )
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(settings.kafka_partitions)])
        consumer.seek_to_beginning()
        return list(consumer)
    finally:
        consumer.close()


def eventually(check, timeout_s: float, what: str):
    """Poll ``check()`` until it returns a truthy value; fail with the last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {timeout_s:.0f} s; last: {value!r}")
        time.sleep(0.5)


def test_cluster_reports_taskmanager_and_slots(settings, cluster):
    status = flink_cluster.status(settings)

    assert status.state == "running", status.detail
    assert (status.taskmanagers, status.slots_total) == (1, 2)
    assert flink_cluster.start(settings, progress=lambda _line: None).jobmanager_pid == status.jobmanager_pid


def test_segment_changes_reach_kafka_and_redis(settings, job):
    # Exactly-once sink: changes become visible to read_committed readers when a checkpoint completes.
    def changes():
        records = read_committed(settings, settings.segment_changes_topic)
        changes = [(r.key.decode(), orjson.loads(r.value)) for r in records]
        return {(user, change["segment"], change["change"]) for user, change in changes}

    def user_1_hesitant():
        seen = changes()
        return seen if (USER_1, "interested_but_hesitant", "enter") in seen else None

    seen = eventually(user_1_hesitant, 30, "interested_but_hesitant enter for user-1")
    assert (USER_2, "active", "enter") in seen
    assert not any(user == USER_2 and segment == "interested_but_hesitant" for user, segment, _ in seen)

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, decode_responses=True)
    try:
        keys = RedisKeys(settings.redis_prefix)
        hesitant = keys.segment("interested_but_hesitant")
        audience = eventually(lambda: client.smembers(hesitant), 10, "the Redis audience")
        assert audience == {USER_1}
        assert {USER_1, USER_2} <= client.smembers(keys.segment("active"))
    finally:
        client.close()

    # The scratch names reached the job only through the client's TAILOR_* environment (the job's main()
    # runs in `flink run` and bakes them into the graph): the TaskManagers never see them.
    for pid in flink_cluster.status(settings).taskmanager_pids:
        assert settings.events_topic.encode() not in Path(f"/proc/{pid}/environ").read_bytes()

    dead = eventually(lambda: read_committed(settings, settings.dead_letters_topic), 10, "the dead letter")
    assert len(dead) == 1 and orjson.loads(dead[0].value)["error"] == "invalid_json"


def test_rest_lists_the_job_with_named_operators(settings, job):
    job_id, _ = job
    status = flink_cluster.status(settings)
    assert [j.name for j in status.running_jobs if j.job_id == job_id] == ["tailor-segmentation"]

    vertex_names = " | ".join(flink_jobs.job_vertices(settings, job_id))
    for operator in OPERATORS:
        assert operator in vertex_names, vertex_names


def test_custom_metrics_are_visible(settings, job):
    job_id, produced = job

    def counted():
        metrics = flink_jobs.job_metrics(settings, job_id)
        return metrics if metrics.get("segment_batches", {}).get("events_in", 0) > 0 else None

    metrics = eventually(counted, 30, "a non-zero segment_batches.events_in")
    assert set(metrics) == {"segment_batches", "learn_models"}
    assert set(metrics["segment_batches"]) == {
        "events_in", "batches_in", "dead_letters", "segment_changes_out", "duplicate_events", "late_events",
        "internal_errors", "batch_size", "event_time_lag_ms", "rules_updates", "experiment_exposures",
        "experiment_conversions", "redis_flush_failures", "redis_commands_replayed", "redis_buffered_commands",
    }
    assert 0 < metrics["segment_batches"]["events_in"] <= produced
    assert 0 < metrics["segment_batches"]["batches_in"] <= metrics["segment_batches"]["events_in"]
    assert metrics["segment_batches"]["dead_letters"] <= 1
    assert metrics["segment_batches"]["event_time_lag_ms"] > 0, metrics  # a distribution: live, not batched
    assert set(metrics["learn_models"]) >= {
        "model_events_in", "recommendations_out", "cluster_changes_out", "deferred_model_inputs",
        "python_full_gc", "python_full_gc_ms", "python_full_gc_pause_ms",
    }


def test_models_continue_from_a_savepoint(settings, job, tmp_path):
    """Stop with a savepoint, restore: the model hub's state (here, user-1's recent items) survives.

    user-1 viewed products 0-5 before the savepoint. After the restore, one more view (product 42), a
    minute of event time later so a new list is due, gives a list that still knows the earlier
    products: a hub without its state would only know product 42 and the trending items."""
    job_id, _ = job
    eventually(lambda: read_committed(settings, settings.recommendations_topic), 30, "a first recommendation")
    savepoint = flink_jobs.stop_with_savepoint(settings, job_id, target_dir=tmp_path)

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    ts = int(time.time() * 1000) + 60_000
    message = {
        "type": "track", "event": "Product Viewed", "messageId": uuid.uuid4().hex, "userId": USER_1,
        "timestamp": ts, "properties": {"product_id": 42, "category": "hats"},
    }
    producer.send(settings.events_topic, key=USER_1.encode(), value=orjson.dumps(message), timestamp_ms=ts)
    producer.flush()
    producer.close()
    restored = flink_jobs.submit(settings, from_savepoint=savepoint)
    try:
        def list_after_restore():
            for record in read_committed(settings, settings.recommendations_topic):
                rec = orjson.loads(record.value)
                if rec["user_id"] == USER_1 and rec["message_id"] == message["messageId"]:
                    return rec
            return None

        rec = eventually(list_after_restore, 60, "user-1's list after the restore")
        items = {item["item_id"] for item in rec["items"]}
        assert items & {str(p) for p in range(6)}, rec
    finally:
        flink_jobs.cancel(settings, restored)
