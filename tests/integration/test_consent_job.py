"""Consent on the real job (rules and models): a user who withdraws personalization consent leaves every
rule and ML segment (trigger "consent"), and nothing of them stays in Redis; a user who never consented is
never segmented; everyone else is unaffected."""

from __future__ import annotations

import pytest
import redis

from connectors.kafka_events import event_producer, publish_event
from connectors.redis_keys import RedisKeys
from evaluation.simulator import ShopperSimulator
from settings import PROJECT_ROOT
from tests.integration.harness import (
    changes_and_recommendations,
    isolated_settings,
    quick_models_file,
    run_bounded_job,
)

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000


def message(user: str, n: int, ts: int, name: str, granted: bool | None) -> dict:
    m = {"type": "track", "event": name, "userId": user, "messageId": f"{user}-{n}", "timestamp": ts,
         "properties": {"product_id": f"p{n % 4}", "category": "c1"}}
    if granted is not None:
        m["context"] = {"consent": {"categoryPreferences": {"Personalization": granted}}}
    return m


@pytest.fixture(scope="module")
def outcome(stack_settings, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("consent")
    models_file = quick_models_file(workdir)
    settings = isolated_settings(stack_settings, "consent", models_enabled=True, models_file=models_file,
                                 consent_categories="Personalization")
    producer = event_producer(settings.kafka_bootstrap)
    background = list(ShopperSimulator(seed=9, users=80, items=40, categories=4).events(T0, rate=20, count=1_200))
    for event in background:  # no consent stated: the default (allow) applies
        publish_event(producer, settings.events_topic, event)
    start = T0 + 60_000 * 60
    names = ["Product Viewed"] * 7 + ["Product Added"]
    for n, name in enumerate(names):
        for user in ("leaver", "keeper"):
            publish_event(producer, settings.events_topic, message(user, n, start + 1_000 * n, name, True))
        publish_event(producer, settings.events_topic, message("refuser", n, start + 1_000 * n, name, False))
    for n in range(8, 11):  # withdrawn, then more events without consent
        publish_event(producer, settings.events_topic, message("leaver", n, start + 1_000 * n, "Product Viewed", False))
    producer.flush()
    producer.close()
    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", workdir)
    changes, recs = changes_and_recommendations(settings)
    return settings, changes, recs


def test_a_withdrawal_exits_every_rule_and_ml_segment(outcome) -> None:
    _, changes, _ = outcome
    leaver = [c for c in changes if c["user_id"] == "leaver"]
    entered_rules = {c["segment"] for c in leaver if c["change"] == "enter" and c["kind"] == "rule"}
    assert {"interested_but_hesitant", "weekly_active"} <= entered_rules
    members: dict[str, int] = {}
    for c in leaver:
        members[c["segment"]] = members.get(c["segment"], 0) + (1 if c["change"] == "enter" else -1)
    assert all(count == 0 for count in members.values()), members  # in nothing at the end
    consent_exits = [c for c in leaver if c["trigger"] == "consent"]
    assert consent_exits and all(c["change"] == "exit" and c["message_id"] == "leaver-8" for c in consent_exits)
    assert any(c["kind"] == "cluster" for c in leaver) == any(c["kind"] == "cluster" for c in consent_exits)


def test_nothing_of_them_stays_in_redis(outcome) -> None:
    settings, _changes, _ = outcome
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, decode_responses=True)
    keys = RedisKeys(settings.redis_prefix)
    for user in ("leaver", "refuser"):
        assert client.exists(keys.profile(user), keys.recommendations(user)) == 0
        assert not [k for k in client.scan_iter(match=keys.segments_pattern) if client.sismember(k, user)]
    assert client.exists(keys.profile("keeper")) == 1


def test_a_user_without_consent_is_never_segmented_or_recommended(outcome) -> None:
    _, changes, recs = outcome
    assert not [c for c in changes if c["user_id"] == "refuser"]
    assert not [r for r in recs if r["user_id"] == "refuser"]
    assert [c for c in changes if c["user_id"] == "keeper" and c["change"] == "enter"]
