"""``tailor erase`` on the real job (rules and models), mid-stream: the person leaves every segment
(trigger "erase"), nothing of them stays in Redis, and their later events are dropped; others are
untouched. The erase request is published by the command's own code."""

from __future__ import annotations

import time

import pytest
import redis

from connectors.kafka_events import event_producer, publish_event
from connectors.redis_keys import RedisKeys
from evaluation.simulator import ShopperSimulator
from settings import PROJECT_ROOT
from tailor.erase import erase
from tests.integration.harness import (
    changes_and_recommendations,
    isolated_settings,
    quick_models_file,
    run_bounded_job,
)

pytestmark = pytest.mark.integration


def view(user: str, n: int, ts: int, name: str = "Product Viewed") -> dict:
    return {"type": "track", "event": name, "userId": user, "messageId": f"{user}-{n}", "timestamp": ts,
            "properties": {"product_id": f"p{n % 3}", "category": "c1"}}


@pytest.fixture(scope="module")
def outcome(stack_settings, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("erase")
    models_file = quick_models_file(workdir)
    settings = isolated_settings(stack_settings, "erase", models_enabled=True, models_file=models_file)
    now = int(time.time() * 1000)
    producer = event_producer(settings.kafka_bootstrap)
    for event in ShopperSimulator(seed=4, users=60, items=30, categories=3).events(now - 3 * 3_600_000, 20, 1_000):
        publish_event(producer, settings.events_topic, event)
    before = now - 600_000
    for n, name in enumerate(["Product Viewed"] * 7 + ["Product Added"]):
        for user in ("erased-person", "bystander"):
            publish_event(producer, settings.events_topic, view(user, n, before + 1_000 * n, name))
    producer.flush()
    message_id = erase(settings, "erased-person")  # the command's own code; event time: now
    for n in range(10, 16):  # after the erase: must be dropped
        publish_event(producer, settings.events_topic, view("erased-person", n, now + 1_000 * (n - 9)))
    producer.flush()
    producer.close()
    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", workdir)
    changes, recs = changes_and_recommendations(settings)
    return settings, changes, recs, message_id, now


def test_the_person_leaves_every_segment_and_later_events_change_nothing(outcome) -> None:
    _, changes, recs, message_id, now = outcome
    person = [c for c in changes if c["user_id"] == "erased-person"]
    assert {c["segment"] for c in person if c["change"] == "enter"} >= {"interested_but_hesitant", "weekly_active"}
    erased = [c for c in person if c["trigger"] == "erase"]
    assert erased and all(c["change"] == "exit" and c["message_id"] == message_id for c in erased)
    members: dict[str, int] = {}
    for c in person:
        members[c["segment"]] = members.get(c["segment"], 0) + (1 if c["change"] == "enter" else -1)
    assert all(v == 0 for v in members.values()), members
    assert not [c for c in person if c["trigger"] == "event" and c["event_time"] >= now]  # later events dropped
    assert not [r for r in recs if r["user_id"] == "erased-person" and r["event_time"] >= now]


def test_nothing_of_them_stays_in_redis_and_others_are_untouched(outcome) -> None:
    settings, changes, _, _, _ = outcome
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, decode_responses=True)
    keys = RedisKeys(settings.redis_prefix)
    assert client.exists(keys.profile("erased-person"), keys.recommendations("erased-person")) == 0
    assert not [k for k in client.scan_iter(match=keys.segments_pattern) if client.sismember(k, "erased-person")]
    assert client.exists(keys.profile("bystander")) == 1
    assert not [c for c in changes if c["user_id"] == "bystander" and c["trigger"] == "erase"]
