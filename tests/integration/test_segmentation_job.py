"""Scripted shopper sessions through the real stack: Kafka -> PyFlink job (embedded, thread mode) ->
Kafka (exactly-once, read_committed) + Redis. One bounded job run serves every test in this module.

Timeline: events are produced in event-time order, with Kafka record timestamps = event time, as
production traffic would be; the bounded source ends with the final watermark, which fires every
pending timer (session ends, cart abandonment, recency and activity-window transitions).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime

import orjson
import pytest

from connectors.kafka_events import event_producer, publish_event, publish_raw, read_topic
from connectors.redis_keys import RedisKeys
from settings import PROJECT_ROOT
from state_schemas import dead_letter, segment_change
from tests.integration.harness import isolated_settings, run_bounded_job

pytestmark = pytest.mark.integration

DAY = 86_400_000
MIN = 60_000
T0 = int(datetime(2026, 11, 2, 8, 0, tzinfo=UTC).timestamp() * 1000)
DEFAULT_RULES = PROJECT_ROOT / "config" / "segments.yaml"

_ids = itertools.count()


def track(user: str, name: str, ts: int, message_id: str | None = None, **props) -> dict:
    return {
        "type": "track",
        "event": name,
        "messageId": message_id or f"msg-{next(_ids)}",
        "userId": user,
        "timestamp": datetime.fromtimestamp(ts / 1000, UTC).isoformat().replace("+00:00", "Z"),
        "properties": {"product_id": f"sku-{next(_ids) % 50}", "category": "shoes", **props},
    }


def views(user: str, start: int, n: int, step: int = 1000) -> list[dict]:
    return [track(user, "Product Viewed", start + i * step) for i in range(n)]


# Bad input: (expected error code, raw payload). Each is sent amid good traffic.
BAD_INPUT = [
    ("invalid_json", b'{"type": "track", "event": '),
    ("invalid_utf8", b'{"type":"track","event":"\xff\xfe","messageId":"x","userId":"u","timestamp":1}'),
    ("not_an_object", b'[1, 2, 3]'),
    ("missing_type", orjson.dumps({"event": "Product Viewed", "messageId": "b1", "userId": "u", "timestamp": T0})),
    ("unknown_type", orjson.dumps({"type": "purchase", "messageId": "b2", "userId": "u", "timestamp": T0})),
    ("missing_message_id", orjson.dumps({"type": "track", "event": "Product Viewed", "userId": "u", "timestamp": T0})),
    ("missing_user", orjson.dumps({"type": "track", "event": "Product Viewed", "messageId": "b3", "timestamp": T0})),
    ("invalid_timestamp", orjson.dumps({"type": "track", "event": "x", "messageId": "b4", "userId": "u",
                                        "timestamp": "yesterday"})),
    ("missing_event_name", orjson.dumps({"type": "track", "messageId": "b5", "userId": "u", "timestamp": T0})),
    ("invalid_properties", orjson.dumps({"type": "track", "event": "x", "messageId": "b6", "userId": "u",
                                         "timestamp": T0, "properties": "red"})),
]


def scripted_events() -> list[dict]:
    ev: list[dict] = []
    # More than 5 views + cart -> hesitant; the purchase 10 minutes later ends it.
    ev += [*views("hesitant-buys", T0, 6), track("hesitant-buys", "Product Added", T0 + 6000)]
    ev += [track("hesitant-buys", "Order Completed", T0 + 10 * MIN)]
    # Same, then silence: the session ends (timer) and the cart is abandoned (timer), at the same instant.
    ev += [*views("hesitant-leaves", T0, 6), track("hesitant-leaves", "Product Added", T0 + 6000)]
    # Exactly 5 views is not "more than 5".
    ev += [*views("five-views", T0, 5), track("five-views", "Product Added", T0 + 5000)]
    # Cart, then a purchase 45 minutes later: abandoner at +30 min (timer), back out at +45 min.
    ev += [track("abandoner-returns", "Product Added", T0),
           track("abandoner-returns", "Order Completed", T0 + 45 * MIN)]
    # Duplicates: 6 view messages but only 4 distinct ids; a purchase sent three times counts once.
    dup_views = views("duplicates", T0, 4)
    ev += [*dup_views, dict(dup_views[0], timestamp=dup_views[0]["timestamp"]), dict(dup_views[1])]
    ev += [track("duplicates", "Product Added", T0 + 5000)]
    order = track("duplicates", "Order Completed", T0 + 20 * MIN, message_id="dup-order")
    ev += [order, dict(order), dict(order)]
    # Active on 5 distinct days in a row -> daily_active on the fifth.
    ev += [track("daily", "Product Viewed", T0 - d * DAY) for d in (4, 3, 2, 1, 0)]
    # A steady visitor whose events move the watermark along for two hours.
    ev += [track("clock", "Page Viewed", T0 + i * 5 * MIN) for i in range(25)]
    return ev


def out_of_order_events() -> list[tuple[int, dict]]:
    """6 views + cart for one user, sent shuffled by up to 4 s (inside the 5 s bound)."""
    by_offset = {s: track("out-of-order", "Product Viewed", T0 + s * 1000) for s in range(6)}
    by_offset[6] = track("out-of-order", "Product Added", T0 + 6000)
    return [(s, by_offset[s]) for s in (2, 0, 1, 5, 6, 3, 4)]


def ts_of(event: dict) -> int:
    return int(datetime.fromisoformat(event["timestamp"]).timestamp() * 1000)


@pytest.fixture(scope="module")
def job_output(stack_settings, redis_client, tmp_path_factory):
    settings = isolated_settings(stack_settings, "scripted", models_enabled=False)  # models: test_models_job.py
    good = sorted(scripted_events(), key=ts_of)  # stable: duplicates stay after their originals
    # The shuffled group goes where its time belongs, so it arrives within the out-of-orderness bound.
    at = next(i for i, e in enumerate(good) if ts_of(e) > T0)
    good[at:at] = [e for _, e in out_of_order_events()]
    producer = event_producer(settings.kafka_bootstrap)
    bad_iter = iter(BAD_INPUT)
    for i, event in enumerate(good):
        publish_event(producer, settings.events_topic, event)
        if i % 5 == 0:  # interleave garbage with good traffic; the job must carry on
            bad = next(bad_iter, None)
            if bad:
                publish_raw(producer, settings.events_topic, bad[1], timestamp_ms=ts_of(event))
    for bad in bad_iter:
        publish_raw(producer, settings.events_topic, bad[1], timestamp_ms=T0 + 2 * 3_600_000)
    producer.flush()
    producer.close()

    run_bounded_job(settings, DEFAULT_RULES, tmp_path_factory.mktemp("scripted"))

    bootstrap = settings.kafka_bootstrap
    changes = [segment_change.decode(r.value) for r in read_topic(bootstrap, settings.segment_changes_topic)]
    keys = [r.key for r in read_topic(settings.kafka_bootstrap, settings.segment_changes_topic)]
    letters = [dead_letter.decode(r.value) for r in read_topic(settings.kafka_bootstrap, settings.dead_letters_topic)]
    by_user = defaultdict(list)
    for c in changes:
        by_user[c["user_id"]].append(c)
    return settings, changes, keys, by_user, letters


def summary(changes: list[dict], segment: str | None = None) -> list[tuple]:
    return [(c["segment"], c["change"], c["trigger"], c["event_time"])
            for c in changes if segment in (None, c["segment"])]


def test_hesitant_enters_on_cart_after_six_views_and_exits_on_purchase(job_output):
    _, _, _, by_user, _ = job_output
    assert summary(by_user["hesitant-buys"], "interested_but_hesitant") == [
        ("interested_but_hesitant", "enter", "event", T0 + 6000),
        ("interested_but_hesitant", "exit", "event", T0 + 10 * MIN),
    ]
    assert summary(by_user["hesitant-buys"], "cart_abandoner") == []


def test_hesitant_exits_at_session_end_when_cart_is_abandoned(job_output):
    _, _, _, by_user, _ = job_output
    end = T0 + 6000 + 30 * MIN
    concerned = ("interested_but_hesitant", "cart_abandoner")
    assert [c for c in summary(by_user["hesitant-leaves"]) if c[0] in concerned] == [
        ("interested_but_hesitant", "enter", "event", T0 + 6000),
        ("interested_but_hesitant", "exit", "timer", end),
        ("cart_abandoner", "enter", "timer", end),
    ]


def test_five_views_are_not_enough(job_output):
    _, _, _, by_user, _ = job_output
    assert summary(by_user["five-views"], "interested_but_hesitant") == []
    assert summary(by_user["five-views"], "cart_abandoner") == [
        ("cart_abandoner", "enter", "timer", T0 + 5000 + 30 * MIN)]


def test_cart_abandoner_enters_by_timer_and_exits_on_purchase(job_output):
    _, _, _, by_user, _ = job_output
    assert summary(by_user["abandoner-returns"], "cart_abandoner") == [
        ("cart_abandoner", "enter", "timer", T0 + 30 * MIN),
        ("cart_abandoner", "exit", "event", T0 + 45 * MIN),
    ]


def test_out_of_order_events_within_the_bound_give_the_in_order_result(job_output):
    _, _, _, by_user, _ = job_output
    assert summary(by_user["out-of-order"], "interested_but_hesitant") == [
        ("interested_but_hesitant", "enter", "event", T0 + 6000),
        ("interested_but_hesitant", "exit", "timer", T0 + 6000 + 30 * MIN),
    ]


def test_duplicates_never_count_twice(job_output, redis_client):
    settings, _, _, by_user, _ = job_output
    assert summary(by_user["duplicates"], "interested_but_hesitant") == []  # 4 distinct views, not 6
    profile = redis_client.hgetall(RedisKeys(settings.redis_prefix).profile("duplicates"))
    assert profile["purchases_total"] == "1"


def test_daily_active_and_recency_tiers_follow_the_calendar(job_output):
    _, _, _, by_user, _ = job_output
    day0 = (T0 - 4 * DAY) // DAY  # first active day; active on day0 .. day0+4
    last = T0
    assert summary(by_user["daily"]) == [
        ("weekly_active", "enter", "event", T0 - 4 * DAY),
        ("active", "enter", "event", T0 - 4 * DAY),
        ("weekly_active", "exit", "event", T0),
        ("daily_active", "enter", "event", T0),
        # end of stream: the final watermark lets time run out
        ("daily_active", "exit", "timer", (day0 + 7) * DAY),
        ("weekly_active", "enter", "timer", (day0 + 7) * DAY),
        ("weekly_active", "exit", "timer", (day0 + 4 + 7) * DAY),
        ("monthly_active", "enter", "timer", (day0 + 4 + 7) * DAY),
        ("active", "exit", "timer", last + 7 * DAY),
        ("lapsing", "enter", "timer", last + 7 * DAY),
        ("monthly_active", "exit", "timer", (day0 + 4 + 30) * DAY),
        ("lapsing", "exit", "timer", last + 30 * DAY),
        ("dormant", "enter", "timer", last + 30 * DAY),
    ]


def test_every_change_is_keyed_by_user_and_well_formed(job_output):
    _, changes, keys, _, _ = job_output
    assert changes, "the job emitted no segment changes"
    assert keys == [c["user_id"].encode() for c in changes]
    for c in changes:
        assert c["kind"] == "rule" and c["change"] in ("enter", "exit")
        if c["trigger"] == "event":  # emitted by the job after the (past) event happened
            assert c["emit_time"] > c["event_time"]
        assert (c["message_id"] is None) == (c["trigger"] == "timer")


def test_bad_input_goes_to_dead_letters_with_reason_and_original(job_output):
    _, _, _, _, letters = job_output
    assert sorted(d["error"] for d in letters) == sorted(code for code, _ in BAD_INPUT)
    originals = dict(BAD_INPUT)
    for d in letters:
        assert d["reason"]
        if "original_b64" in d:
            import base64

            assert base64.b64decode(d["original_b64"]) == originals[d["error"]]
        else:
            assert d["original"].encode() == originals[d["error"]]


def test_redis_audiences_and_profiles_match_the_kafka_change_log(job_output, redis_client):
    settings, changes, _, _, _ = job_output
    members: dict[str, set[str]] = defaultdict(set)
    per_user: dict[str, list[str]] = defaultdict(list)
    for c in changes:  # per-user order is preserved within a partition
        (members[c["segment"]].add if c["change"] == "enter" else members[c["segment"]].discard)(c["user_id"])
    for c in changes:
        per_user[c["user_id"]] = sorted(s for s, users in members.items() if c["user_id"] in users)
    keys = RedisKeys(settings.redis_prefix)
    redis_segments = {keys.segment_name(k) for k in redis_client.scan_iter(keys.segments_pattern)}
    assert redis_segments == {s for s, users in members.items() if users}
    for segment, users in members.items():
        assert redis_client.smembers(keys.segment(segment)) == users
    for user, segments in per_user.items():
        profile = redis_client.hgetall(keys.profile(user))
        assert sorted(filter(None, profile["segments"].split(","))) == segments
