"""``tailor serve`` over HTTP against a redis-server of its own: data as the job writes it, the cache, hot
reload of the decision matrix, and Redis frozen (SIGSTOP): fallback content within the time budget, a
stale cached value served, the circuit breaker opening."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from connectors.redis_audiences import RedisAudienceWriter
from settings import Settings
from stack.service_process import running_server
from state_schemas import popular_items, recommendation, segment_change
from state_schemas.popular_items import PopularItems
from state_schemas.profile_state import ProfileState
from state_schemas.recommendation import Recommendation, RecommendedItem
from state_schemas.segment_change import ENTER, SegmentChange
from tests.private_redis import RedisServer

pytestmark = pytest.mark.integration

PREFIX = "serve-test:"
BUDGET_MS = 50
MATRIX = """version: 1
slots:
  hero: {variation: onboarding, template: "<h2>Welcome</h2>"}
rules:
  - name: hesitant_discount
    segment: interested_but_hesitant
    priority: 10
    slots:
      hero: {variation: discount, template: "<h2>{{ recommendations[0] }}</h2>"}
"""


def call(url: str, path: str, body: dict | None = None) -> tuple[int, dict, float]:
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url + path, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), time.perf_counter() - start
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), time.perf_counter() - start


def hero_variation(url: str) -> str:
    return call(url, "/v1/decide", {"user_id": "u1", "slots": ["hero"]})[1]["decisions"][0]["variation"]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, RedisServer, Path]]:
    server = RedisServer(tmp_path)
    server.start()
    decisions = tmp_path / "decisions.yaml"
    decisions.write_text(MATRIX)
    settings = Settings(redis_port=server.port, redis_prefix=PREFIX, serve_budget_ms=BUDGET_MS)
    writer = RedisAudienceWriter("127.0.0.1", server.port, PREFIX)  # the job's own writer
    change = SegmentChange("u1", "interested_but_hesitant", "rule", ENTER, "r", {}, "event", 1, "m1")
    writer.write("u1", ProfileState(segments=["interested_but_hesitant"], sessions_total=2), [change],
                 [segment_change.encode(change, 2)])
    own = (RecommendedItem("p<9>", 1.0, "mf", "c1"), RecommendedItem("p2", 0.5, "content", "c2"))
    writer.write_recommendations("u1", recommendation.encode(Recommendation("u1", own, "v", "m", 1), emit_time=2))
    trending = (RecommendedItem("p5", 1.0, "popular", "c2"), RecommendedItem("p6", 0.5, "popular", "c1"))
    writer.write_popular(popular_items.encode(PopularItems(trending, "v", 1), emit_time=2))
    writer.flush()
    with running_server(settings, tmp_path / "serve.log", decisions) as url:
        try:
            yield url, server, decisions
        finally:
            server.stop()


def test_profile_recommendations_and_decision_from_what_the_job_wrote(service) -> None:
    url, _, _ = service
    status, profile, _ = call(url, "/v1/users/u1/profile")
    assert status == 200 and profile["segments"] == ["interested_but_hesitant"] and profile["source"] == "redis"
    assert profile["facts"]["sessions_total"] == 2 and profile["fallback"] is False
    assert call(url, "/v1/users/u1/profile")[1]["source"] == "cache"
    status, recs, _ = call(url, "/v1/users/u1/recommendations?k=5")
    assert status == 200 and [i["item_id"] for i in recs["items"]] == ["p<9>", "p2"]
    assert [i["item_id"] for i in call(url, "/v1/users/u1/recommendations?category=c2")[1]["items"]] == ["p2"]
    status, decided, _ = call(url, "/v1/decide", {"user_id": "u1", "slots": ["hero"]})
    [hero] = decided["decisions"]
    assert (hero["variation"], hero["rule"]) == ("discount", "hesitant_discount")
    assert hero["content"] == "<h2>p&lt;9&gt;</h2>"
    assert hero["reason"] == "segment interested_but_hesitant"
    assert call(url, "/v1/decide", {"user_id": "nobody", "slots": ["hero"]})[1]["decisions"][0]["rule"] == "default"


def test_a_user_without_a_list_gets_the_jobs_trending_items_by_category_too(service) -> None:
    url, _, _ = service
    _, recs, _ = call(url, "/v1/users/newcomer/recommendations")
    assert [i["item_id"] for i in recs["items"]] == ["p5", "p6"]
    assert (recs["source"], recs["fallback"]) == ("popular", True)
    _, recs, _ = call(url, "/v1/users/newcomer/recommendations?category=c1&k=3")
    assert [(i["item_id"], i["category"]) for i in recs["items"]] == [("p6", "c1")]
    assert call(url, "/v1/users/newcomer/recommendations?category=")[0] == 400


def test_errors_are_json_with_a_message(service) -> None:
    url, _, _ = service
    no_profile = {"error": "no profile for user 'nobody' (no event seen yet)"}
    assert call(url, "/v1/users/nobody/profile")[:2] == (404, no_profile)
    status, body, _ = call(url, "/v1/decide", {"user_id": "u1", "slots": ["footer"]})
    assert status == 400 and "unknown slot" in body["error"] and "hero" in body["error"]
    status, body, _ = call(url, "/v1/users/u1/recommendations?k=1000")
    assert status == 400 and "k" in body["error"]
    assert call(url, "/openapi.json")[1]["paths"]["/v1/decide"]["post"]


def test_the_matrix_reloads_on_change_and_keeps_the_last_good_one(service) -> None:
    url, _, decisions = service
    decisions.write_text(MATRIX.replace("variation: discount", "variation: discount_v2"))
    time.sleep(1.2)
    assert hero_variation(url) == "discount_v2"
    decisions.write_text("version: 1\nslots:\n  hero: {variation: 7}\n")
    time.sleep(1.2)
    assert hero_variation(url) == "discount_v2"
    status, health, _ = call(url, "/health")
    assert status == 503 and ":3: slots.hero.variation: 7 is not of type 'string'" in health["decisions"]


def test_redis_frozen_fallback_within_budget_stale_cache_served_breaker_opens(service) -> None:
    url, server, _ = service
    call(url, "/v1/users/u1/profile")  # cached
    time.sleep(1.1)  # past the TTL: stale from now on
    server.freeze()
    try:
        status, stale, _ = call(url, "/v1/users/u1/profile")
        assert status == 200 and stale["source"] == "stale-cache" and stale["segments"] == ["interested_but_hesitant"]
        timings = []
        for n in range(8):  # users never seen: only Redis could answer
            status, body, seconds = call(url, "/v1/decide", {"user_id": f"new{n}", "slots": ["hero"]})
            assert status == 200 and body["fallback"] is True and body["decisions"][0]["variation"] == "onboarding"
            timings.append(seconds)
        _, recs, _ = call(url, "/v1/users/new99/recommendations")
        assert recs["fallback"] is True and recs["source"] == "fallback"
        # the budget (50 ms) plus HTTP on a shared machine; after 5 failures the breaker answers at once
        assert max(timings) < 0.5 and min(timings[5:]) < BUDGET_MS / 1000
        assert call(url, "/health")[1]["breaker"] == "opened"
    finally:
        server.thaw()
    time.sleep(5.5)  # the breaker half-opens after 5 s; Redis answers again
    status, profile, _ = call(url, "/v1/users/u1/recommendations")
    assert status == 200 and profile["source"] == "redis" and profile["fallback"] is False
    assert call(url, "/health")[1]["breaker"] == "closed"


def test_a_change_the_job_publishes_reaches_the_cache_and_the_users_event_stream_at_once(service, tmp_path) -> None:
    """A cache TTL of a minute: only the live channel can make the change visible within the test."""
    _, server, decisions = service
    settings = Settings(redis_port=server.port, redis_prefix=PREFIX, serve_cache_ttl_ms=60_000)
    with running_server(settings, tmp_path / "serve-live.log", decisions) as url:
        assert call(url, "/v1/users/u1/profile")[1]["segments"] == ["interested_but_hesitant"]
        assert call(url, "/v1/users/u1/profile")[1]["source"] == "cache"
        with urllib.request.urlopen(url + "/v1/users/u1/changes", timeout=10) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.readline() + stream.readline() == b"retry: 2000\n\n"  # sent once the stream listens
            writer = RedisAudienceWriter("127.0.0.1", server.port, PREFIX)
            exit_ = SegmentChange("u1", "interested_but_hesitant", "rule", "exit", "r", {}, "event", 3, "m2")
            writer.write("u1", ProfileState(segments=["vip"]), [exit_], [segment_change.encode(exit_, 4)])
            writer.flush()
            event, data = stream.readline(), stream.readline()
        assert event == b"event: segment_change\n"
        assert orjson.loads(data.removeprefix(b"data: "))["change"] == "exit"
        profile = call(url, "/v1/users/u1/profile")[1]
        assert profile["segments"] == ["vip"] and profile["source"] == "redis"
        metrics = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
        assert "tailor_serve_live_segment_change_total 1" in metrics


def test_decide_assigns_experiments_and_holds_the_slot_out_for_control(service, tmp_path) -> None:
    """One experiment on the hero for hesitant users; its split is moved through hot reloads, so the same
    user lands in control (the slot's default) and then in the treatment (the matrix's decision)."""
    _, server, decisions = service
    experiments_file = tmp_path / "experiments.yaml"
    experiment = """version: 1
experiments:
  - name: hero-test
    salt: s1
    audience: interested_but_hesitant
    slot: hero
    variants: [{name: control, weight: %s}, {name: discount, weight: %s}]
    primary_metric: conversion
"""
    experiments_file.write_text(experiment % ("1", "0.000001"))
    settings = Settings(redis_port=server.port, redis_prefix=PREFIX, experiments_file=experiments_file)
    with running_server(settings, tmp_path / "serve-experiments.log", decisions) as url:
        _, held_out, _ = call(url, "/v1/decide", {"user_id": "u1", "slots": ["hero"]})
        assert held_out["experiments"] == [{"experiment": "hero-test", "variant": "control", "slot": "hero"}]
        assert held_out["decisions"][0]["variation"] == "onboarding"
        assert held_out["decisions"][0]["reason"] == "experiment hero-test: control (holdout)"
        assert held_out["segments"] == ["interested_but_hesitant"]
        assert call(url, "/v1/decide", {"user_id": "nobody", "slots": ["hero"]})[1]["experiments"] == []  # audience
        experiments_file.write_text(experiment % ("0.000001", "1"))
        time.sleep(1.2)
        _, treated, _ = call(url, "/v1/decide", {"user_id": "u1", "slots": ["hero"]})
        assert treated["experiments"][0]["variant"] == "discount" and treated["decisions"][0]["variation"] == "discount"
        experiments_file.write_text("version: 1\nexperiments: [{name: x}]\n")
        time.sleep(1.2)
        status, health, _ = call(url, "/health")
        assert status == 503 and "experiments" in health and "salt" in health["experiments"]
