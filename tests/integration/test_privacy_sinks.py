"""Planted PII never reaches a sink: the real job (rules and models) with a pseudonymisation key, scanned.

Shoppers are identified by email addresses, carry names, emails and IPs in traits and context, and one
message of each is invalid (it goes to the dead letters). Afterwards every record of every output topic
and every Redis key and value under the job's prefix is searched for the planted strings: none may be
found, while the outputs are there (pseudonymous ids), so the scan cannot pass by finding nothing.
"""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from connectors.kafka_events import event_producer, read_topic
from operators.privacy import Pseudonymizer
from settings import PROJECT_ROOT
from tests.integration.harness import isolated_settings, run_bounded_job

pytestmark = pytest.mark.integration

KEY = b"test-key-0123456789abcdef"
USERS = [f"shopper{n}@example.com" for n in range(12)]
PLANTED = [*USERS, "Jane Plantedname", "203.0.113.77", "planted-phone-5550199"]


@pytest.fixture(scope="module")
def outputs(stack_settings, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("privacy")
    key_file = workdir / "pseudonym.key"
    key_file.write_bytes(KEY)
    settings = isolated_settings(stack_settings, "privacy", pseudonym_key_file=str(key_file))
    producer = event_producer(settings.kafka_bootstrap)
    now = int(time.time() * 1000) - 3_600_000
    context = {"ip": "203.0.113.77", "traits": {"name": "Jane Plantedname", "phone": "planted-phone-5550199"}}
    n = 0
    for user in USERS:
        messages = [{"type": "identify", "userId": user, "traits": {"email": user, "name": "Jane Plantedname"}}]
        messages += [{"type": "track", "event": name, "userId": user, "properties": {"product_id": f"p{i % 5}"}}
                     for i, name in enumerate(["Product Viewed"] * 6 + ["Product Added"])]
        messages.append({"type": "track", "userId": user, "context": context})  # no event name: a dead letter
        for message in messages:
            n += 1
            message |= {"messageId": f"m{n}", "timestamp": now + 1000 * n, "context": context}
            producer.send(settings.events_topic, orjson.dumps(message), key=user.encode())
    producer.flush()
    producer.close()
    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", workdir)
    topics = [settings.segment_changes_topic, settings.recommendations_topic, settings.dead_letters_topic]
    records = {t: [(r.key or b"", r.value or b"") for r in read_topic(settings.kafka_bootstrap, t)] for t in topics}
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    stored = []
    for key in client.scan_iter(match=settings.redis_prefix + "*", count=1000):
        kind = client.type(key)
        value = {b"hash": client.hgetall, b"set": client.smembers,
                 b"string": client.get}.get(kind, lambda k: b"")(key)
        stored.append((key, repr(value).encode()))
    return settings, records, stored


def test_no_planted_pii_in_any_topic_or_redis(outputs) -> None:
    _settings, records, stored = outputs
    found = [(where, s) for where, rows in [*records.items(), ("redis", stored)]
             for key, value in rows for s in PLANTED if s.encode() in key or s.encode() in value]
    assert found == []


def test_the_outputs_exist_under_pseudonyms(outputs) -> None:
    settings, records, stored = outputs
    pseudonyms = {Pseudonymizer(KEY).pseudonym(u) for u in USERS}
    changes = [orjson.loads(v) for _, v in records[settings.segment_changes_topic]]
    assert {c["user_id"] for c in changes} == pseudonyms
    assert {orjson.loads(v)["user_id"] for _, v in records[settings.recommendations_topic]} <= pseudonyms
    letters = [orjson.loads(v) for _, v in records[settings.dead_letters_topic]]
    assert len(letters) == len(USERS) and all(orjson.loads(x["original"])["redacted"] == ["context"] for x in letters)
    assert {orjson.loads(x["original"])["userId"] for x in letters} == pseudonyms
    assert any(key.startswith(f"{settings.redis_prefix}profile:p:".encode()) for key, _ in stored)
