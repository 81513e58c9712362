"""Producers against the real Kafka: `produce_file`, the publish helpers, `BulkPublisher`, `read_topic`,
and `simulate` in fast mode. Every test writes to fresh topics of its own."""

from __future__ import annotations

import uuid
from collections import defaultdict

import orjson
import pytest
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from connectors import kafka_topics as topics
from connectors.kafka_bulk import BulkPublisher
from connectors.kafka_events import (
    KafkaUnavailable,
    event_producer,
    publish_dead_letter,
    publish_event,
    read_topic,
)
from evaluation.simulator import ShopperSimulator
from settings import Settings
from state_schemas import dead_letter
from tailor.produce import produce_file
from tailor.simulate import simulate

pytestmark = pytest.mark.integration

T0 = 1_795_687_200_000  # 2026-11-26T10:00:00Z
GOOD = (
    b'{"type":"track","event":"Product Added","messageId":"m-1","userId":"u-1",'
    b'"timestamp":"2026-11-26T10:00:00.250Z","properties":{"product_id":"p1"}}'
)
TRUNCATED = "timestamp '15' is not a plausible epoch-seconds value (row looks truncated: no trailing newline)"


@pytest.fixture
def settings(stack_settings):  # stack_settings (tests/integration/harness.py) starts the local stack
    tag = uuid.uuid4().hex[:8]
    settings = Settings.load(
        events_topic=f"test.producers.{tag}.events", dead_letters_topic=f"test.producers.{tag}.dead-letters"
    )
    names = [settings.events_topic, settings.dead_letters_topic]
    topics.recreate_topics(settings, names, partitions=2)
    yield settings
    topics.delete_topics(settings, names)


def partition_of(key: bytes, partitions: int = 2) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions  # Kafka's default partitioner


def dead_letters(settings: Settings) -> list[dict]:
    records = read_topic(settings.kafka_bootstrap, settings.dead_letters_topic)
    return [dead_letter.decode(r.value) for r in records]


def test_produce_file_jsonl_sends_good_line_as_is_and_garbage_to_dead_letters(settings, tmp_path):
    source = tmp_path / "events.jsonl"
    source.write_bytes(GOOD + b"\n{not json\n\n")
    lines: list[str] = []

    report = produce_file(settings, source, progress=False, echo=lines.append)

    assert (report.sent, report.rejected) == (1, 1)
    assert report.rejected_examples[0].startswith("line 2: not valid JSON (")
    assert lines == [report.summary()]
    assert lines[0].startswith(f"sent 1 events to {settings.events_topic}, rejected 1 (sent to ")
    events = read_topic(settings.kafka_bootstrap, settings.events_topic)
    assert [(r.key, r.value, r.timestamp, r.partition) for r in events] == [
        (b"u-1", GOOD, T0 + 250, partition_of(b"u-1"))
    ]
    [letter] = dead_letters(settings)
    assert (letter["error"], letter["original"]) == ("invalid_json", "{not json")
    assert letter["source"] == f"{source}:2"
    assert letter["reason"].startswith("not valid JSON (")


def test_produce_file_taobao_maps_rows_and_dead_letters_the_truncated_one(settings, tmp_path):
    source = tmp_path / "sample.csv"
    source.write_text(
        "543462,1715,1464116,pv,1511658000\n"
        "662867,2244074,1575622,buy,1511658001\n"
        "301780,543546,4181361,pv,15"
    )

    report = produce_file(settings, source, progress=False, echo=None)

    assert (report.sent, report.rejected) == (2, 1)
    assert report.rejected_examples == [f"line 3: {TRUNCATED}"]
    events = sorted(read_topic(settings.kafka_bootstrap, settings.events_topic), key=lambda r: r.timestamp)
    seen = [(r.key, r.timestamp, orjson.loads(r.value)) for r in events]
    assert [(key, ts, event["event"], event["messageId"]) for key, ts, event in seen] == [
        (b"543462", 1_511_658_000_000, "Product Viewed", "taobao-1"),
        (b"662867", 1_511_658_001_000, "Order Completed", "taobao-2"),
    ]
    [letter] = dead_letters(settings)
    assert letter["error"] == "implausible_timestamp"
    assert letter["original"] == "301780,543546,4181361,pv,15"


def test_publish_helpers_key_by_user_and_stamp_event_time_on_both_publishers(settings):
    anonymous = {"type": "page", "messageId": "m-2", "anonymousId": "a-9", "timestamp": T0 + 5}
    producer = event_producer(settings.kafka_bootstrap)
    publish_event(producer, settings.events_topic, orjson.loads(GOOD)).get(timeout=10)
    sent = publish_dead_letter(producer, settings.dead_letters_topic, "invalid_json", "bad", b"\xff{", "t:1")
    sent.get(timeout=10)
    producer.close()
    with BulkPublisher(settings.kafka_bootstrap) as bulk:
        publish_event(bulk, settings.events_topic, anonymous)
        bulk.flush()

    events = read_topic(settings.kafka_bootstrap, settings.events_topic)
    assert sorted((r.key, r.timestamp, r.partition) for r in events) == [
        (b"a-9", T0 + 5, partition_of(b"a-9")),
        (b"u-1", T0 + 250, partition_of(b"u-1")),
    ]
    [letter] = dead_letters(settings)
    assert (letter["error"], letter["original_b64"], letter["source"]) == ("invalid_json", "/3s=", "t:1")


def test_bulk_publisher_keeps_per_key_order_across_many_small_batches(settings):
    keys = [f"user-{i}".encode() for i in range(7)]
    with BulkPublisher(settings.kafka_bootstrap, batch_size=4096, max_pending=4) as bulk:
        for seq in range(6000):
            value = b"%d" % seq + b" " * 100
            bulk.send(settings.events_topic, value, key=keys[seq % 7], timestamp_ms=T0 + seq)
        bulk.flush()

    per_key = defaultdict(list)
    for record in read_topic(settings.kafka_bootstrap, settings.events_topic, timeout_s=60):
        assert record.partition == partition_of(record.key)
        per_key[record.key].append(int(record.value.split()[0]))
    assert sum(map(len, per_key.values())) == 6000
    assert all(seqs == sorted(seqs) for seqs in per_key.values())


def test_bulk_publisher_reports_a_missing_topic(stack_settings):
    missing = f"test.producers.missing.{uuid.uuid4().hex[:8]}"
    with BulkPublisher(stack_settings.kafka_bootstrap) as bulk, \
            pytest.raises(KafkaUnavailable, match=f"topic '{missing}' does not exist"):
        bulk.send(missing, b"x", key=b"k")


def test_read_topic_read_committed_stops_at_the_last_stable_offset(settings):
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"t-{settings.events_topic}"
    )
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(settings.events_topic, b"committed", partition=0)
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(settings.events_topic, b"aborted", partition=0)
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(settings.events_topic, b"open", partition=1)
    producer.flush()
    try:
        committed = read_topic(settings.kafka_bootstrap, settings.events_topic, timeout_s=5)
        everything = read_topic(settings.kafka_bootstrap, settings.events_topic, isolation="read_uncommitted")
    finally:
        producer.abort_transaction()
        producer.close()

    assert [r.value for r in committed] == [b"committed"]
    assert [r.value for r in everything] == [b"committed", b"aborted", b"open"]


def test_simulate_fast_mode_publishes_the_simulators_events(settings):
    report = simulate(
        settings, rate=50, users=300, seed=9, count=3000, fast=True, start_ms=T0, progress=False, echo=None
    )

    assert report.sent == 3000 and (report.first_ms, report.last_ms) == (T0, T0 + 2999 * 20)
    records = read_topic(settings.kafka_bootstrap, settings.events_topic)
    expected = list(ShopperSimulator(seed=9, users=300).events(T0, rate=50, count=3000))
    by_id = {orjson.loads(r.value)["messageId"]: r for r in records}
    assert len(by_id) == 3000
    for event in expected:
        record = by_id[event["messageId"]]
        assert orjson.loads(record.value) == event
        assert record.key == (event.get("userId") or event["anonymousId"]).encode()
    for partition in (0, 1):  # per partition, in offset order, each user's event times never go back
        last: dict[bytes, int] = {}
        for r in (r for r in records if r.partition == partition):
            assert r.timestamp >= last.get(r.key, 0)
            last[r.key] = r.timestamp
