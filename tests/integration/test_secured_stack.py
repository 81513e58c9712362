"""Tailor on a secured Kafka and Redis: a broker that only speaks SASL (PLAIN) and a Redis that refuses
clients without an ACL user and password. Settings name a Kafka client properties file and a Redis
password file, nothing else changes; every client must get the credentials: the CLI's producer
(aiokafka), admin and reader (kafka-python), the real job's Kafka source and exactly-once sinks (Java),
and its Redis writers (rules and models), and the Redis readers of `tailor show`."""

from __future__ import annotations

import pytest
import redis

from connectors import kafka_bulk, kafka_topics
from connectors.kafka_events import KafkaUnavailable, publish_event
from connectors.redis_clients import RedisAuth
from connectors.redis_keys import RedisKeys
from connectors.redis_reader import RedisReader
from evaluation.simulator import ShopperSimulator
from settings import PROJECT_ROOT
from tests.integration.harness import (
    changes_and_recommendations,
    isolated_settings,
    quick_models_file,
    run_bounded_job,
)
from tests.private_redis import RedisServer
from tests.sasl_kafka import SaslKafka

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000
REDIS_USER, REDIS_PASSWORD = "tailor", "redis-secret"


@pytest.fixture(scope="module")
def secured(stack_settings, tmp_path_factory):
    directory = tmp_path_factory.mktemp("secured")
    broker = SaslKafka(directory / "kafka", stack_settings)
    acl_user = [REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all"]
    store = RedisServer(directory, client_options={"username": REDIS_USER, "password": REDIS_PASSWORD},
                        requirepass="not-the-default-user", user=acl_user)
    password_file = directory / "redis-password"
    password_file.write_text(REDIS_PASSWORD + "\n")
    try:
        broker.start()
        store.start()
        yield broker, store, {
            "kafka_port": broker.port, "kafka_controller_port": broker.controller_port,
            "kafka_client_properties": str(broker.client_properties(directory / "client.properties")),
            "redis_port": store.port, "redis_username": REDIS_USER, "redis_password_file": str(password_file),
        }, directory
    finally:
        store.stop()
        broker.stop()


def test_without_credentials_both_refuse(secured, stack_settings) -> None:
    broker, store, _, directory = secured
    plain = stack_settings.replace(kafka_port=broker.port)
    with pytest.raises(KafkaUnavailable):
        kafka_topics.ensure_topics(plain, ["test.secured.probe"])
    wrong = plain.replace(kafka_client_properties=str(broker.client_properties(directory / "wrong", "nope")))
    with pytest.raises(KafkaUnavailable):
        kafka_topics.ensure_topics(wrong, ["test.secured.probe"])
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=store.port).set("probe", 1)


def test_the_job_and_the_cli_run_on_sasl_kafka_and_an_acl_redis(secured, stack_settings) -> None:
    _, store, overrides, directory = secured
    settings = isolated_settings(stack_settings, "secured", models_enabled=True,
                                 models_file=quick_models_file(directory), **overrides)
    events = list(ShopperSimulator(seed=5, users=60, items=30, categories=3).events(T0, rate=20, count=1_500))
    with kafka_bulk.bulk_publisher(settings) as publisher:  # aiokafka, as tailor produce / simulate / import
        for event in events:
            publish_event(publisher, settings.events_topic, event)

    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", directory)

    changes, recs = changes_and_recommendations(settings)  # kafka-python, read_committed
    assert len(changes) > 100 and recs
    keys = RedisKeys(settings.redis_prefix)
    client = store.client()
    members = {keys.segment_name(k.decode()) for k in client.scan_iter(match=keys.segments_pattern)}
    assert members  # audiences (the bounded replay's final watermark has ended the time-window ones)
    assert {c["kind"] for c in changes} == {"rule", "cluster"}
    assert client.exists(keys.recommendations(recs[-1]["user_id"]))  # the models path wrote
    with RedisReader(settings.redis_host, settings.redis_port, settings.redis_prefix, RedisAuth.of(settings)) as r:
        assert r.profile(changes[-1]["user_id"])  # tailor show's reader
