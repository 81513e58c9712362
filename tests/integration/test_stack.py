"""The local stack against the real services: Kafka, Redis and the connector jar, no mocks.

The module fixture runs ``stack.up`` (a no-op if the stack already runs) and leaves the stack
running afterwards, so developers and later test modules reuse it. Records go to throw-away topics,
never to the Tailor topics other jobs read.
"""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

import stack
from connectors import kafka_topics as topics
from settings import Settings

pytestmark = pytest.mark.integration

TS_2017 = 1_500_000_000_000  # 2017-07-14: the age of the historical datasets we replay


@pytest.fixture(scope="module")
def settings() -> Settings:
    settings = Settings.load()
    stack.up(settings, progress=lambda _line: None)
    return settings


@pytest.fixture
def scratch_topic(settings):
    name = f"tailor.test.stack.{uuid.uuid4().hex[:8]}"
    topics.ensure_topics(settings, [name], partitions=1)
    yield name
    topics.delete_topics(settings, [name])


def read_all(settings: Settings, topic: str, **config) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        **config,
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        return list(consumer)
    finally:
        consumer.close()


def test_second_up_is_quick_and_changes_nothing(settings):
    lines: list[str] = []
    t0 = time.monotonic()
    stack.up(settings, progress=lines.append)
    elapsed = time.monotonic() - t0

    assert elapsed < 5, f"warm `up` took {elapsed:.1f} s: {lines}"
    assert any(line.startswith("redis") and "already running" in line for line in lines), lines
    assert any(line.startswith("kafka") and "already running" in line for line in lines), lines
    assert not [
        line for line in lines if any(w in line for w in ("started", "downloading", "installing", "created"))
    ]


def test_status_reports_everything_running(settings):
    states = {row.component: row.state for row in stack.status(settings)}

    assert states == {
        "java": "ok",
        "kafka-libs": "ok",
        "connector": "ok",
        "redis": "running",
        "kafka": "running",
        "topics": "ok",
    }


def test_redis_answers(settings):
    client = redis.Redis(settings.redis_host, settings.redis_port)
    key = f"{settings.redis_prefix}test:stack:{uuid.uuid4().hex}"
    try:
        assert client.ping()
        client.set(key, "hello", ex=60)
        assert client.get(key) == b"hello"
    finally:
        client.delete(key)
        client.close()


def test_tailor_topics_exist_with_configured_partitions_and_no_time_retention(settings):
    wanted = topics.tailor_topics(settings)

    assert topics.partition_counts(settings) == {
        name: 1 if name == settings.model_updates_topic else settings.kafka_partitions for name in wanted
    }
    with topics.admin_client(settings) as admin:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted])
    compacted = [settings.catalog_topic, settings.experiment_metrics_topic]
    # the replicas' exchange is worth nothing after the job moved on: kept a week
    assert configs["topic"][settings.model_updates_topic]["retention.ms"]["value"] == str(7 * 24 * 3600 * 1000)
    logs = [name for name in wanted if name not in (*compacted, settings.model_updates_topic)]
    assert {name: configs["topic"][name]["retention.ms"]["value"] for name in logs} == dict.fromkeys(logs, "-1")
    # the catalog keeps the latest record per item id, the experiment metrics per group and bucket, whatever
    # their age
    assert {configs["topic"][name]["cleanup.policy"]["value"] for name in compacted} == {"compact"}


def test_kafka_returns_a_produced_record_with_its_2017_timestamp(settings, scratch_topic):
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    producer.send(scratch_topic, key=b"user-1", value=b'{"event":"view"}', timestamp_ms=TS_2017).get(
        timeout=10
    )
    producer.close()

    records = read_all(settings, scratch_topic)

    assert [(r.key, r.value, r.timestamp) for r in records] == [(b"user-1", b'{"event":"view"}', TS_2017)]


def test_kafka_supports_transactions_for_flink_exactly_once(settings, scratch_topic):
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"test-{scratch_topic}"
    )
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(scratch_topic, b"committed")
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(scratch_topic, b"aborted")
    producer.flush()
    producer.abort_transaction()
    producer.close()

    committed = read_all(settings, scratch_topic, isolation_level="read_committed")

    assert [r.value for r in committed] == [b"committed"]


def test_connector_jar_is_present_and_matches_its_recorded_sha256(settings):
    jar = stack.connector_jar(settings)

    assert jar.is_file() and jar.name == "flink-sql-connector-kafka-5.0.0-2.2.jar"
    recorded = jar.with_name(jar.name + ".sha256").read_text().split()[0]
    assert hashlib.sha256(jar.read_bytes()).hexdigest() == recorded
