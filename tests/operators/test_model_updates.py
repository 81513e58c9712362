"""Recommender replicas sharded by user: exchanged after every interaction they are the single recommender;
exchanged less often every replica still ends with the same item side; the wire format loses nothing."""

import random

import numpy as np
import pytest

from operators.model_updates import RecommenderReplicas, owner_of
from operators.recommender import HybridRecommender, RecommenderConfig
from state_schemas import model_update
from state_schemas.catalog_item import CatalogItem

EVENTS = ("product_viewed", "product_viewed", "product_added", "product_favorited", "order_completed")


def _stream(n=1200, seed=5):
    rnd = random.Random(seed)
    for t in range(n):
        user = f"u{rnd.randrange(30)}"
        item = f"i{min(int(rnd.expovariate(0.1)), 49)}"
        yield user, item, rnd.choice(EVENTS), 1_000 * t, f"c{int(item[1:]) % 5}", (("vip",) if user < "u2" else ())


def _catalog():
    return [CatalogItem(f"i{n}", f"item {n}", f"c{n % 5}", (f"brand{n % 3}",)) for n in range(50)]


def _item_side(rec: HybridRecommender, item: str):
    """What every replica must agree on for ``item``: its MF parameters, popularity and co-visitation."""
    mf = rec.mf.export_item(item)
    return mf, rec.popularity.export_item(item), rec.covisits.export_item(item), rec.items[item].n_events


CONFIG = RecommenderConfig(blend_mf=1.0, min_emit_interval_ms=0)


def test_replicas_exchanging_after_every_interaction_recommend_what_the_single_recommender_does():
    single, sharded = HybridRecommender(CONFIG), RecommenderReplicas(CONFIG, replicas=3)
    for item in _catalog():
        single.add_catalog_item(item)
        sharded.add_catalog_item(item)
    compared = 0
    for user, item, name, ts, cat, segs in _stream():
        expected = single.recommend(user, now=ts, segments=segs)
        assert sharded.recommend(user, now=ts, segments=segs) == expected
        compared += bool(expected)
        single.learn_one(user, item, name, ts, cat, segs)
        sharded.learn_one(user, item, name, ts, cat, segs)
        sharded.exchange()
    assert compared > 1000
    assert {owner_of(f"u{n}", 3) for n in range(30)} == {0, 1, 2}  # every replica owned users
    for item in single.items:
        for replica in sharded.replicas:
            assert _item_side(replica, item) == _item_side(single, item)


@pytest.mark.parametrize("every", [7, 100])
def test_replicas_exchanging_in_batches_all_hold_the_same_item_side(every):
    sharded = RecommenderReplicas(CONFIG, replicas=2)
    for n, (user, item, name, ts, cat, segs) in enumerate(_stream(), start=1):
        sharded.learn_one(user, item, name, ts, cat, segs)
        if n % every == 0:
            sharded.exchange()
    sharded.exchange()
    first, second = sharded.replicas
    assert first.items.keys() == second.items.keys() and len(first.items) > 40
    for item in first.items:
        assert _item_side(first, item) == _item_side(second, item)
    assert not first.users.keys() & second.users.keys()  # a user's side lives on its owner only


def test_a_replica_applying_decoded_updates_ends_where_one_applying_the_originals_does():
    learner, direct, decoded = HybridRecommender(CONFIG), HybridRecommender(CONFIG), HybridRecommender(CONFIG)
    for user, item, name, ts, cat, segs in _stream(400):
        update = learner.learn_user(user, item, name, ts, cat, segs)
        assert update is not None
        direct.apply_update(update)
        decoded.apply_update(model_update.decode(model_update.encode(update)))
    assert direct.items.keys() == decoded.items.keys()
    for item in direct.items:
        assert _item_side(decoded, item) == _item_side(direct, item)
    assert (direct.mf.mean_n, direct.mf.mean) == (decoded.mf.mean_n, decoded.mf.mean)


def test_learning_the_user_side_leaves_the_item_side_untouched():
    rec = HybridRecommender(CONFIG)
    rec.learn_one("a", "x", "product_viewed", 0)
    before = _item_side(rec, "x")
    vector = np.copy(rec.mf._item_latents[rec.mf.item_rows["x"]])
    update = rec.learn_user("b", "x", "order_completed", 1_000)
    assert update is not None and update.mf[0][0] == "x"
    assert _item_side(rec, "x") == before
    assert np.array_equal(rec.mf._item_latents[rec.mf.item_rows["x"]], vector)
    assert rec.learn_user("b", "x", "page_viewed", 2_000) is None  # no weight: nothing to learn


def test_an_owner_reading_its_own_writes_sees_its_update_before_the_exchange():
    sharded = RecommenderReplicas(CONFIG, replicas=2, read_own_writes=True)
    users = [f"u{n}" for n in range(30)]
    mine = next(u for u in users if owner_of(u, 2) == 0)
    sharded.learn_one(mine, "x", "product_viewed", 0)
    owner, other = sharded.replicas
    assert "x" in owner.items and "x" not in other.items  # the other replica waits for the exchange
    sharded.exchange()
    assert _item_side(owner, "x") == _item_side(other, "x")  # applied once on each, not twice
