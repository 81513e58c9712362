"""`tailor rules apply` on the real job (embedded Flink, unbounded) on the real Kafka and Redis: a new rule
is live within seconds with no restart, survives a SIGKILL and a start with the same command (which names
the original rules file), loses no state, and a rule removed again is exited at the user's next event."""

from __future__ import annotations

import time

import orjson
import pytest
import yaml

from connectors.kafka_events import event_producer, read_topic
from connectors.redis_keys import RedisKeys
from operators.segment_rules import SegmentRules
from settings import PROJECT_ROOT
from state_schemas import segment_change
from tailor.rules import apply
from tests.faults.harness import JobProcess
from tests.integration.harness import isolated_settings, wait_for

pytestmark = pytest.mark.integration

RULES_FILE = PROJECT_ROOT / "config" / "segments.yaml"
NEW_RULE = {"name": "browsed_three", "description": "Viewed at least 3 products in this session",
            "when": "session.product_views >= 3"}


def send(settings, user: str, n: int, event: str = "Product Viewed") -> None:
    producer = event_producer(settings.kafka_bootstrap)
    now = int(time.time() * 1000)
    message = {"type": "track", "event": event, "userId": user, "messageId": f"{user}-{n}", "timestamp": now,
               "properties": {"product_id": f"p{n}"}}
    producer.send(settings.events_topic, orjson.dumps(message), key=user.encode(), timestamp_ms=now).get(timeout=30)
    producer.close()


def changes_of(settings) -> list[dict]:
    records = read_topic(settings.kafka_bootstrap, settings.segment_changes_topic)
    return [segment_change.decode(r.value) for r in records]


def test_a_rules_change_is_live_without_a_restart_and_survives_one(stack_settings, redis_client, tmp_path) -> None:
    settings = isolated_settings(stack_settings, "rules", models_enabled=False)
    keys = RedisKeys(settings.redis_prefix)
    extended = tmp_path / "segments.yaml"
    rules = yaml.safe_load(RULES_FILE.read_text())
    extended.write_text(yaml.safe_dump({**rules, "segments": [*rules["segments"], NEW_RULE]}))
    original, new = SegmentRules.from_yaml(RULES_FILE).version, SegmentRules.from_yaml(extended).version

    job = JobProcess(settings, tmp_path / "job", bounded=False).start()
    try:
        for n in range(4):
            send(settings, "u-a", n)
        wait_for(lambda: redis_client.sismember(keys.segment("active"), "u-a"), 180, "u-a active")

        applied = apply(settings, extended)
        n = 4
        while not redis_client.sismember(keys.segment("browsed_three"), "u-a"):  # one view every 200 ms
            assert time.time() * 1000 - applied.applied_at < 30_000, "the new rule was not live after 30 s"
            send(settings, "u-a", n)
            n += 1
            time.sleep(0.2)
        job.wait_for_new_checkpoint()
        job.kill()
        job.start()  # the same command, naming the original rules file
        for m in range(3):
            send(settings, "u-b", m)
        wait_for(lambda: redis_client.sismember(keys.segment("browsed_three"), "u-b"), 180,
                 "u-b in the applied rule's segment after the restart")

        apply(settings, RULES_FILE)  # back to the file: browsed_three is gone
        wait_for(lambda: _exited_on_next_event(settings, redis_client, keys), 30, "u-b's exit from the removed rule")
        wait_for(lambda: any(c["user_id"] == "u-b" and c["change"] == "exit" for c in changes_of(settings)), 30,
                 "the exit committed to Kafka (with the next checkpoint)")
    finally:
        job.stop()

    changes = changes_of(settings)
    live = next(c for c in changes if c["user_id"] == "u-a" and c["segment"] == "browsed_three")
    latency_ms = live["emit_time"] - applied.applied_at
    print(f"\nrules reload: the new rule decided its first change {latency_ms} ms after `tailor rules apply`")
    assert latency_ms <= 5_000
    assert "resuming from checkpoint" in job.log()
    by_version = {(c["user_id"], c["segment"], c["change"]): c["rules_version"] for c in changes}
    assert by_version[("u-a", "active", "enter")] == original
    assert by_version[("u-a", "browsed_three", "enter")] == new
    assert by_version[("u-b", "browsed_three", "enter")] == new  # after the restart: the applied rules
    assert by_version[("u-b", "browsed_three", "exit")] == original
    removed = next(c for c in changes if c["user_id"] == "u-b" and c["change"] == "exit")
    assert removed["reason"] == "the rule was removed"
    enters = [(c["user_id"], c["segment"]) for c in changes if c["change"] == "enter"]
    assert len(enters) == len(set(enters))  # nothing entered twice: no state lost across the kill


def _exited_on_next_event(settings, redis_client, keys: RedisKeys) -> bool:
    send(settings, "u-b", int(time.time() * 1000))
    time.sleep(0.5)
    return not redis_client.sismember(keys.segment("browsed_three"), "u-b")
