"""HybridRecommender: cold start, sources, filters, throttling, caps and an exact restore mid-stream."""

import random

import pytest

from operators.recommender import HybridRecommender, RecommenderConfig, RecommenderConfigError
from state_schemas.catalog_item import CatalogItem
from state_schemas.profile_state import StateVersionError

EVENTS = ("product_viewed", "product_viewed", "product_viewed", "product_added", "product_favorited", "order_completed")


def _stream(n=1500, seed=3):
    rnd = random.Random(seed)
    for t in range(n):
        user = f"u{rnd.randrange(40)}"
        item = f"i{min(int(rnd.expovariate(0.08)), 59)}"
        yield user, item, rnd.choice(EVENTS), 1_000 * t, f"c{int(item[1:]) % 6}", (("vip",) if user < "u2" else ())


def _catalog():
    return [CatalogItem(f"i{n}", f"item {n} {'red' if n % 2 else 'blue'}", f"c{n % 6}", (f"brand{n % 4}",))
            for n in range(60)]


def _config(**kw):
    base = {"max_users": 30, "max_items": 45, "min_emit_interval_ms": 5_000}
    base.update(kw)
    return RecommenderConfig(**base)


def test_recommender_cold_user_gets_popular_items():
    rec = HybridRecommender(_config())
    for user, item, name, ts, cat, segs in _stream(300):
        rec.learn_one(user, item, name, ts, cat, segs)
    out = rec.recommend("stranger", now=300_000)
    assert len(out) == 10 and {r.source for r in out} == {"popular"}


def test_recommender_warm_user_uses_all_sources_and_excludes_purchases():
    rec = HybridRecommender(RecommenderConfig(blend_mf=1.0))  # the default MF weight rarely wins a slot
    for item in _catalog():
        rec.add_catalog_item(item)
    sources = set()
    for user, item, name, ts, cat, segs in _stream():
        rec.learn_one(user, item, name, ts, cat, segs)
        out = rec.recommend(user, now=ts, segments=segs)
        sources |= {r.source for r in out}
        assert not {r.item_id for r in out} & set(rec.users[user].purchased)
    assert sources == {"mf", "content", "popular", "covisit"}


def test_recommender_category_constraint():
    rec = HybridRecommender(RecommenderConfig())
    for item in _catalog():
        rec.add_catalog_item(item)
    for user, item, name, ts, cat, segs in _stream(500):
        rec.learn_one(user, item, name, ts, cat, segs)
    out = rec.recommend("u1", category="c2", now=500_000)
    assert out and all(rec._category(r.item_id) == "c2" for r in out)


def test_recommender_recommend_if_due_throttles_and_dedups():
    rec = HybridRecommender(_config(min_emit_interval_ms=10_000))
    rec.learn_one("u", "a", "product_viewed", 0)
    first = rec.recommend_if_due("u", now=0)
    assert first is not None
    rec.learn_one("u", "b", "product_added", 1_000)
    assert rec.recommend_if_due("u", now=1_000) is None  # too soon
    assert rec.recommend_if_due("u", now=20_000) is not None  # due and changed (b joined)
    assert rec.recommend_if_due("u", now=40_000) is None  # due but unchanged


def test_a_user_without_interactions_gets_the_trending_list_once_per_interval_then_their_own_at_once():
    rec = HybridRecommender(_config(min_emit_interval_ms=10_000))
    rec.learn_one("other", "a", "product_viewed", 0)
    trending = rec.recommend_if_due("browser", now=0)  # no interaction yet: the trending list
    assert [r.item_id for r in trending] == ["a"] and rec.users["browser"].n_events == 0
    assert rec.recommend_if_due("browser", now=1_000) is None  # throttled like everyone's (was: every event)
    rec.learn_one("other", "b", "product_added", 1_500)
    assert rec.recommend_if_due("browser", now=2_000) is None  # the trending list changed, but too soon
    rec.learn_one("browser", "b", "product_viewed", 3_000)  # their first interaction
    own = rec.recommend_if_due("browser", now=3_000)
    assert own is not None and own[0].item_id == "b"  # due at once, not 10 s after the trending one
    assert rec.recommend_if_due("browser", now=4_000) is None


def test_recommender_caps_memory_and_reports_evictions():
    rec = HybridRecommender(_config())
    for user, item, name, ts, cat, segs in _stream():
        rec.learn_one(user, item, name, ts, cat, segs)
    users, items = rec.take_evicted()
    assert len(rec.users) <= 30 * 1.05 + 1 and len(rec.items) <= 45 * 1.05 + 1
    assert users and items
    assert not users & rec.users.keys() and not items & rec.items.keys()
    assert len(rec.mf.item_rows) <= len(rec.items)


def _persist(rec, users, items):
    dirty_users, dirty_items = rec.take_dirty()
    evicted_users, evicted_items = rec.take_evicted()
    for u in evicted_users:
        users.pop(u, None)
    for i in evicted_items:
        items.pop(i, None)
    users.update({u: rec.export_user(u) for u in dirty_users})
    items.update({i: rec.export_item(i) for i in dirty_items})
    return rec.export_globals()


def test_recommender_restore_mid_stream_continues_identically():
    config = _config()
    events = list(_stream(2000))
    original = HybridRecommender(config)
    users, items, globals_ = {}, {}, None
    for item in _catalog()[:50]:
        original.add_catalog_item(item)
    for user, item, name, ts, cat, segs in events[:1000]:
        original.learn_one(user, item, name, ts, cat, segs)
        original.recommend_if_due(user, ts, segs)
        globals_ = _persist(original, users, items)  # incrementally, as the hub does after every event

    restored = HybridRecommender(config)
    restored.import_globals(globals_)
    for item_id, payload in reversed(list(items.items())):  # MapState order is arbitrary
        restored.import_item(item_id, payload)
    for user_id, payload in users.items():
        restored.import_user(user_id, payload)

    for rec in (original, restored):
        rec.add_catalog_item(_catalog()[55])
    for user, item, name, ts, cat, segs in events[1000:]:
        outs = []
        for rec in (original, restored):
            rec.learn_one(user, item, name, ts, cat, segs)
            outs.append((rec.recommend_if_due(user, ts, segs), rec.recommend(user, now=ts, segments=segs)))
        assert outs[0] == outs[1]
    assert original.export_globals() == restored.export_globals()
    assert all(original.export_user(u) == restored.export_user(u) for u in original.users)


def test_recommender_export_unknown_user_raises_key_error():
    with pytest.raises(KeyError):
        HybridRecommender(RecommenderConfig()).export_user("nobody")


def test_recommender_import_rejects_unknown_version():
    with pytest.raises(StateVersionError, match="version 3 is not readable"):
        HybridRecommender(RecommenderConfig()).import_user("u", "[3, 0, 0, null, [], [], null, []]")


def test_recommender_config_errors_are_clear():
    with pytest.raises(RecommenderConfigError, match=r"recommendations\.topk is not a setting"):
        RecommenderConfig.from_dict({"topk": 3})
    with pytest.raises(RecommenderConfigError, match=r"mf.feedback must be one of negative_sampling, positive_only"):
        RecommenderConfig.from_dict({"mf": {"feedback": "both"}})
    with pytest.raises(RecommenderConfigError, match="k must be a non-negative integer; got 'ten'"):
        RecommenderConfig.from_dict({"k": "ten"})
    with pytest.raises(RecommenderConfigError, match="event_weights"):
        RecommenderConfig.from_dict({"event_weights": {"product_viewed": -1}})


def test_recommender_model_version_names_river_and_config():
    a, b = HybridRecommender(RecommenderConfig()), HybridRecommender(RecommenderConfig(k=5))
    assert a.model_version.startswith("mf-biased/river-0.23") and a.model_version != b.model_version
