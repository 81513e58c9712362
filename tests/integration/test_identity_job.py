"""Identity stitching in the real job (embedded Flink, unbounded) on the real Kafka and Redis: a visitor
browses anonymously, logs in, adds to cart; the job meets the two ids through its own events topic
(exactly-once), and every audience counts the person once, under the known id. The job is killed with
SIGKILL right after the login and started again with the same command: nothing merges twice."""

from __future__ import annotations

import time

import orjson
import pytest

from connectors.kafka_events import read_topic
from connectors.redis_keys import RedisKeys
from operators.identity import MERGE_EVENT, TRANSFER_EVENT
from state_schemas import segment_change
from tests.faults.harness import JobProcess
from tests.integration.harness import isolated_settings, send_events, wait_for

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000


def message(n: int, event: str = "Product Viewed", type_: str = "track", **ids: str) -> dict:
    body = {"type": type_, "messageId": f"id-{n}", "timestamp": T0 + n * 1_000,
            "properties": {"product_id": f"p{n}", "category": "c1"}, **ids}
    if type_ == "track":
        body["event"] = event
    return body


def test_a_visitor_who_logs_in_counts_once_in_every_audience_across_a_restart(
    stack_settings, redis_client, tmp_path
) -> None:
    settings = isolated_settings(stack_settings, "identity", models_enabled=False)
    keys = RedisKeys(settings.redis_prefix)
    job = JobProcess(settings, tmp_path / "job", bounded=False).start()
    try:
        send_events(settings, [message(n, anonymousId="anon-1") for n in range(6)])
        wait_for(lambda: redis_client.sismember(keys.segment("active"), "anon-1"), 180, "the anonymous visitor")
        send_events(settings, [message(6, type_="identify", userId="u-42", anonymousId="anon-1")])
        wait_for(lambda: any(orjson.loads(r.value).get("event") == MERGE_EVENT
                             for r in read_topic(settings.kafka_bootstrap, settings.events_topic)),
                 60, "the merge request in the events topic")
        job.kill()
        job.start()  # the same command: resumes from the last checkpoint
        send_events(settings, [message(7, "Product Added", userId="u-42", anonymousId="anon-1")])
        wait_for(lambda: any(c["user_id"] == "u-42" and c["segment"] == "interested_but_hesitant"
                             for c in changes_of(settings)), 180, "u-42's hesitant enter, committed")
        # A second visitor, uninterrupted: how long from the login to the anonymous id's exits in Redis.
        send_events(settings, [message(n, anonymousId="anon-2") for n in range(20, 23)])
        wait_for(lambda: redis_client.sismember(keys.segment("active"), "anon-2"), 60, "the second visitor")
        logged_in = time.monotonic()
        send_events(settings, [message(23, type_="identify", userId="u-7", anonymousId="anon-2")])
        wait_for(lambda: not redis_client.sismember(keys.segment("active"), "anon-2"), 60, "anon-2's merge")
        merged_after = time.monotonic() - logged_in
    finally:
        job.stop()
    assert "resuming from checkpoint" in job.log()  # the second start restored the first one's state
    print(f"\nidentity merge: anonymous id out of its audiences {merged_after * 1000:.0f} ms after the login was sent")

    audiences = {keys.segment_name(k): redis_client.smembers(k) for k in redis_client.scan_iter(keys.segments_pattern)}
    assert all("anon-1" not in members for members in audiences.values()), audiences
    assert {s for s, members in audiences.items() if "u-42" in members} >= {"active", "interested_but_hesitant"}
    assert not redis_client.exists(keys.profile("anon-1"))
    assert redis_client.hget(keys.profile("u-42"), "sessions_total") == "1"  # one session, merged once

    events = [orjson.loads(r.value) for r in read_topic(settings.kafka_bootstrap, settings.events_topic)]
    first = [e["event"] for e in events if e.get("event") in (MERGE_EVENT, TRANSFER_EVENT)
             and "anon-1" in (e.get("anonymousId"), e["properties"].get("from"))]
    assert first == [MERGE_EVENT, TRANSFER_EVENT]  # written exactly once, across the kill
    transfer = next(e for e in events if e.get("event") == TRANSFER_EVENT)
    assert transfer["timestamp"] == T0 + 6_000 and transfer["userId"] == "u-42"
    changes = changes_of(settings)
    anon = [(c["segment"], c["change"], c["trigger"]) for c in changes if c["user_id"] == "anon-1"]
    assert sorted(anon) == sorted([("active", "enter", "event"), ("weekly_active", "enter", "event"),
                                   ("active", "exit", "merge"), ("weekly_active", "exit", "merge")])
    hesitant = [c for c in changes if c["user_id"] == "u-42" and c["segment"] == "interested_but_hesitant"]
    assert [c["change"] for c in hesitant] == ["enter"]


def changes_of(settings) -> list[dict]:
    records = read_topic(settings.kafka_bootstrap, settings.segment_changes_topic)
    return [segment_change.decode(r.value) for r in records]
