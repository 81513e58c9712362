"""The readers of what the job writes, against the real Kafka and Redis: `read_topic` with `tail`,
`TopicFollower`, and `RedisReader` / `Subscription` over what `RedisAudienceWriter` wrote."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from kafka import KafkaProducer

from connectors import kafka_topics as topics
from connectors.kafka_events import TopicFollower, read_topic
from connectors.redis_audiences import RedisAudienceWriter
from connectors.redis_keys import RedisKeys
from connectors.redis_reader import CHANGES, RECOMMENDATIONS, RedisReader, Subscription
from settings import Settings
from state_schemas import segment_change
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import ENTER, EXIT, SegmentChange

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(stack_settings):
    tag = uuid.uuid4().hex[:8]
    settings = Settings.load(events_topic=f"test.readers.{tag}.events", redis_prefix=f"test:readers:{tag}:")
    topics.recreate_topics(settings, [settings.events_topic], partitions=2)
    yield settings
    topics.delete_topics(settings, [settings.events_topic])
    with RedisReader(settings.redis_host, settings.redis_port, settings.redis_prefix) as reader:
        reader.delete_all()


def produce(settings: Settings, values: list[tuple[int, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for partition, value in values:
        producer.send(settings.events_topic, value, partition=partition)
    producer.flush()
    producer.close()


def test_read_topic_tail_reads_the_last_records_of_each_partition(settings):
    produce(settings, [(0, b"a%d" % i) for i in range(5)] + [(1, b"b%d" % i) for i in range(2)])

    tail = read_topic(settings.kafka_bootstrap, settings.events_topic, tail=3)

    assert [(r.partition, r.offset, r.value) for r in tail] == [
        (0, 2, b"a2"), (0, 3, b"a3"), (0, 4, b"a4"), (1, 0, b"b0"), (1, 1, b"b1")
    ]
    assert read_topic(settings.kafka_bootstrap, settings.events_topic, tail=10) == read_topic(
        settings.kafka_bootstrap, settings.events_topic
    )


def test_read_topic_since_starts_at_the_first_record_stamped_then(settings):
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for partition, stamps in ((0, (10, 20, 5, 30)), (1, (1, 2))):  # 5: a late record after the first >= 15
        for ms in stamps:
            producer.send(settings.events_topic, b"%d" % ms, partition=partition, timestamp_ms=ms)
    producer.flush()
    producer.close()

    since = read_topic(settings.kafka_bootstrap, settings.events_topic, since_ms=15)

    assert [(r.partition, r.value) for r in since] == [(0, b"20"), (0, b"5"), (0, b"30")]
    assert read_topic(settings.kafka_bootstrap, settings.events_topic, since_ms=0) == read_topic(
        settings.kafka_bootstrap, settings.events_topic)


def test_topic_follower_sees_what_arrives_after_it_starts(settings):
    produce(settings, [(0, b"before")])
    follower = TopicFollower(settings.kafka_bootstrap, settings.events_topic, wait_s=5)
    try:
        produce(settings, [(0, b"after-0"), (1, b"after-1")])
        seen: list[bytes] = []
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            seen += [r.value for r in follower.poll(timeout_s=0.2)]
    finally:
        follower.close()

    assert sorted(seen) == [b"after-0", b"after-1"]


def change(user: str, segment: str, kind: str = ENTER) -> SegmentChange:
    return SegmentChange(user, segment, "rule", kind, "why", {}, "event", 1_000, "m1")


def test_redis_reader_reads_back_what_the_writer_wrote(settings):
    prefix = settings.redis_prefix
    with Subscription(settings.redis_host, settings.redis_port, prefix) as channels:
        writer = RedisAudienceWriter(settings.redis_host, settings.redis_port, prefix)
        changes = [change("u1", "vip"), change("u1", "active")]
        writer.write("u1", ProfileState(last_seen=5, segments=["vip", "active"]), changes,
                     [segment_change.encode(c, 7) for c in changes])
        writer.write("u2", ProfileState(segments=["vip"]), [change("u2", "vip")],
                     [segment_change.encode(change("u2", "vip"), 7)])
        writer.write("u2", ProfileState(), [change("u2", "vip", EXIT)],
                     [segment_change.encode(change("u2", "vip", EXIT), 8)])
        writer.write_recommendations("u1", orjson.dumps({"user_id": "u1", "items": [{"item_id": "p1"}]}))
        writer.close()
        messages = [channels.get(timeout_s=2) for _ in range(5)]

    assert [m[0] for m in messages] == [CHANGES] * 4 + [RECOMMENDATIONS]
    assert [orjson.loads(m[1])["segment"] for m in messages[:4]] == ["vip", "active", "vip", "vip"]
    with RedisReader(settings.redis_host, settings.redis_port, prefix) as reader:
        assert reader.profile("u1")["segments"] == "vip,active" and reader.profile("u1")["last_seen"] == "5"
        assert reader.profile("nobody") == {}
        assert reader.audience("vip") == {"u1"}
        assert sorted(reader.segments()) == ["active", "vip"]
        assert reader.audience_sizes() == {"vip": 1, "active": 1}
        assert reader.audience_sizes(["vip", "gone"]) == {"vip": 1, "gone": 0}
        assert reader.recommendations("u1") == {"user_id": "u1", "items": [{"item_id": "p1"}]}
        assert reader.recommendations("u2") is None and reader.users_with_recommendations() == 1
        assert len(reader.profile_keys()) == 2
        assert all(b > 0 for b in reader.memory_usage(reader.profile_keys() + reader.segment_keys()))
        assert reader.delete_all() == 5  # 2 profiles, 2 audiences, 1 recommendation list
        assert reader.segments() == [] and reader.profile("u1") == {}


def test_delete_all_stays_inside_a_prefix_with_glob_characters(settings, redis_client):
    outside = RedisKeys(settings.redis_prefix)
    redis_client.set(outside.profile("u1"), "x")
    with RedisReader(settings.redis_host, settings.redis_port, settings.redis_prefix + "*") as odd:
        redis_client.set(odd.keys.profile("u1"), "y")

        assert odd.delete_all() == 1
    assert redis_client.get(outside.profile("u1")) == "x"
