"""The online models through the real job: Kafka (events + catalog) -> PyFlink (rules, then the model
hub) -> Kafka (segment changes incl. ML segments, recommendations; exactly-once) + Redis.

One bounded run over seeded simulated shoppers serves every test in this module. The clustering warm-up
is shortened so ML segments appear within the input.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import orjson
import pytest
import redis

from connectors.kafka_events import event_producer, publish_event, read_topic
from connectors.redis_keys import RedisKeys
from evaluation.simulator import ShopperSimulator
from operators.cluster_segments import segment_id
from operators.normalize import epoch_ms
from settings import PROJECT_ROOT
from state_schemas import catalog_item, dead_letter, popular_items, recommendation, segment_change
from state_schemas.catalog_item import CatalogItem
from tests.integration.harness import isolated_settings, quick_models_file, run_bounded_job

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000
ITEMS, CATEGORIES = 300, 6
# Written to the catalog topic by hand (`tailor catalog load` would refuse it): the model hub raises on it.
NOT_A_CATALOG_ITEM = b'{"not":"a catalog item"}'


def run_models_job(stack_settings, workdir, **overrides):  # type: ignore[no-untyped-def]
    """One bounded run of the job with the models over the seeded shoppers and catalog; returns
    (settings, events, segment changes as (key, change), recommendations as (key, recommendation))."""
    models_file = quick_models_file(workdir)
    settings = isolated_settings(stack_settings, "models", models_enabled=True, models_file=models_file, **overrides)

    sim = ShopperSimulator(seed=5, users=120, items=ITEMS, categories=CATEGORIES)
    producer = event_producer(settings.kafka_bootstrap)
    for i in range(ITEMS):
        item = CatalogItem(f"p{i}", f"Product {i}", None, ("demo",))
        producer.send(settings.catalog_topic, catalog_item.encode(item).encode(), key=item.item_id.encode())
    producer.send(settings.catalog_topic, NOT_A_CATALOG_ITEM, key=b"p-broken")
    events = list(sim.events(T0, rate=20, count=1_500))
    for event in events:
        publish_event(producer, settings.events_topic, event)
    producer.flush()
    producer.close()

    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", workdir)

    bootstrap = settings.kafka_bootstrap
    changes = [(r.key, segment_change.decode(r.value)) for r in read_topic(bootstrap, settings.segment_changes_topic)]
    recs = [(r.key, recommendation.decode(r.value)) for r in read_topic(bootstrap, settings.recommendations_topic)]
    return settings, events, changes, recs


@pytest.fixture(scope="module")
def job_output(stack_settings, tmp_path_factory):
    return run_models_job(stack_settings, tmp_path_factory.mktemp("models"))


def test_a_catalog_record_the_models_cannot_read_is_a_dead_letter_and_the_rest_flows(job_output) -> None:
    settings, _events, _changes, recs = job_output
    letters = [dead_letter.decode(r.value) for r in read_topic(settings.kafka_bootstrap, settings.dead_letters_topic)]
    from_models = [d for d in letters if d.get("operator") == "learn_models"]
    assert len(from_models) == 1, letters
    assert from_models[0]["error"] == "internal_error:ValueError"
    assert from_models[0]["original"] == NOT_A_CATALOG_ITEM.decode()
    assert "tailor.catalog_item/1" in from_models[0]["reason"]
    assert from_models[0]["source"] == settings.catalog_topic
    assert recs  # the hub went on


def test_recommendation_events_follow_the_schema_and_are_keyed_by_user(job_output) -> None:
    _, events, _, recs = job_output
    users = {e.get("userId") or e.get("anonymousId") for e in events}

    assert len(recs) > 50
    for key, rec in recs:
        assert rec["schema"] == "tailor.recommendation/2"
        assert key.decode() == rec["user_id"] and rec["user_id"] in users
        assert 1 <= len(rec["items"]) <= 10
        assert {i["source"] for i in rec["items"]} <= recommendation.SOURCES
        assert rec["model_version"].startswith("mf-")
        assert rec["emit_time"] >= rec["event_time"]


def test_recommendations_never_include_an_item_the_user_already_bought(job_output) -> None:
    _, events, _, recs = job_output
    # An order event is about its first product (the event's item); the model excludes it from then on.
    bought_at = {}
    for e in events:
        if e.get("event") == "Order Completed":
            key = (e.get("userId") or e.get("anonymousId"), e["properties"]["product_id"])
            bought_at.setdefault(key, epoch_ms(e["timestamp"]))
    checked = 0
    for _, rec in recs:
        for item in rec["items"]:
            at = bought_at.get((rec["user_id"], item["item_id"]))
            if at is not None:
                checked += 1
                assert rec["event_time"] < at, f"{item['item_id']} recommended to {rec['user_id']} after buying it"
    assert bought_at, "the input has no purchase: the test would check nothing"


def test_redis_holds_each_users_latest_recommendation_list(job_output) -> None:
    settings, _, _, recs = job_output
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    latest = {}
    for _, rec in recs:
        latest[rec["user_id"]] = rec
    for user, rec in latest.items():
        stored = orjson.loads(client.get(RedisKeys(settings.redis_prefix).recommendations(user)))
        assert stored["items"] == rec["items"] and stored["message_id"] == rec["message_id"]


def test_listed_items_carry_their_category_and_redis_holds_the_trending_list(job_output) -> None:
    settings, events, _, recs = job_output
    about_items = [e for e in events if "product_id" in e.get("properties", {})]
    category_of = {e["properties"]["product_id"]: e["properties"]["category"] for e in about_items}
    listed = [item for _, rec in recs for item in rec["items"]]
    assert all(item["category"] == category_of[item["item_id"]] for item in listed)
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    trending = popular_items.decode(client.get(RedisKeys(settings.redis_prefix).popular))
    assert 10 <= len(trending["items"]) <= 100
    assert trending["event_time"] == max(epoch_ms(e["timestamp"]) for e in events)
    assert all(i["category"] == category_of[i["item_id"]] for i in trending["items"])
    most_seen = [item for item, _ in Counter(e["properties"]["product_id"] for e in about_items).most_common(10)]
    assert trending["items"][0]["item_id"] in most_seen  # time-decayed and weighted, yet a leader of raw counts


def test_ml_segment_changes_go_to_the_segment_changes_topic_with_an_explanation(job_output) -> None:
    _, _, changes, _ = job_output
    clusters = [c for _, c in changes if c["kind"] == "cluster"]
    rules = [c for _, c in changes if c["kind"] == "rule"]

    assert rules and clusters
    for c in clusters:
        assert c["change"] in ("enter", "exit") and c["trigger"] == "event"
        assert " " not in c["segment"] and segment_id(c["reason"].split(":")[0]) == c["segment"]
        assert any(k.startswith("z.") for k in c["facts"])
    # per user, ML segment changes alternate enter / exit, starting with an enter
    by_user = defaultdict(list)
    for c in clusters:
        by_user[c["user_id"]].append(c["change"])
    for sequence in by_user.values():
        assert sequence[0] == "enter"
        assert all(a != b for a, b in itertools.pairwise(sequence))


def test_redis_cluster_audiences_and_profile_field_match_the_change_log(job_output) -> None:
    settings, _, changes, _ = job_output
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, decode_responses=True)
    current: dict[str, str] = {}
    for _, c in changes:
        if c["kind"] == "cluster":
            if c["change"] == "enter":
                current[c["user_id"]] = c["segment"]
            elif current.get(c["user_id"]) == c["segment"]:
                del current[c["user_id"]]
    audiences = defaultdict(set)
    for user, cluster in current.items():
        audiences[cluster].add(user)
    for cluster, members in audiences.items():
        assert client.smembers(RedisKeys(settings.redis_prefix).segment(cluster)) == members
    for user, cluster in current.items():
        assert client.hget(RedisKeys(settings.redis_prefix).profile(user), "cluster") == cluster


def test_process_mode_gives_the_segments_and_lists_of_thread_mode(job_output, stack_settings, tmp_path_factory) -> None:
    """``execution_mode: process`` (Python in Beam worker processes, other state and timer code in PyFlink)
    runs the same events to the same rule and ML segment changes, and lists for the same users."""
    _, _, changes, recs = job_output
    _, _, process_changes, process_recs = run_models_job(
        stack_settings, tmp_path_factory.mktemp("models-process"), execution_mode="process"
    )

    def outcome(pairs):  # type: ignore[no-untyped-def]
        fields = ("user_id", "kind", "segment", "change", "trigger", "event_time")
        return sorted(tuple(c[f] for f in fields) for _, c in pairs)

    assert any(c[1] == "cluster" for c in outcome(changes))
    assert outcome(process_changes) == outcome(changes)
    assert {r["user_id"] for _, r in process_recs} == {r["user_id"] for _, r in recs}
