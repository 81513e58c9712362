"""The job's recommender replica: exchanging its records through the wire form after every input it is the
single recommender; its state, persisted the way the Flink operator persists it (user payloads per
bucket, item payloads and globals), restores to a replica that continues exactly."""

from collections import Counter
from dataclasses import replace

import numpy as np

from operators.model_updates import owner_of
from operators.recommender import HybridRecommender
from operators.recommender_replica import RecommenderReplica
from state_schemas.model_input import FORGET, RETUNE, ModelInput
from state_schemas.model_update import decode_exchange
from tests.operators.test_model_updates import CONFIG, _catalog, _item_side, _stream

BUCKETS = 8


def _inputs(n=1200):
    for user, item, name, ts, cat, segs in _stream(n):
        yield ModelInput(user, item, name, ts, cat, segs, (), f"m{ts}")


def _bucket(user: str) -> int:
    return owner_of(user, BUCKETS)


def test_replicas_exchanging_records_after_every_input_recommend_what_the_single_recommender_does():
    single, replicas = HybridRecommender(CONFIG), [RecommenderReplica(CONFIG) for _ in range(2)]
    for item in _catalog():
        single.add_catalog_item(item)
        for replica in replicas:
            replica.add_catalog_item(item)
    compared = 0
    for m in _inputs():
        single.learn_one(m.user_id, m.item_id, m.event_name, m.timestamp, m.category, m.segments)
        expected = single.recommend_if_due(m.user_id, now=m.timestamp, segments=m.segments)
        owner = replicas[_bucket(m.user_id) % 2]
        # The owner scores before its update comes back; the single recommender after learning it. So
        # compare the next input's list instead: exchange first, then every list must match.
        got = owner.learn_one(m, _bucket(m.user_id))
        for record in owner.take_exchange(emit_time=m.timestamp):
            for replica in replicas:
                replica.apply_exchange(record)
        rescored = owner.recommender.recommend(m.user_id, now=m.timestamp, segments=m.segments)
        assert expected is None or rescored == expected
        compared += got is not None
    assert compared > 500
    for item in single.items:
        sides = [_item_side(r.recommender, item) for r in replicas]
        assert sides[0] == _item_side(single, item) == sides[1]


def _persist(replica, bucket, users_state, items_state):
    for user, payload in replica.take_user_changes(bucket).items():
        if payload is None:
            users_state.setdefault(bucket, {}).pop(user, None)
        else:
            users_state.setdefault(bucket, {})[user] = payload
    items, globals_ = replica.take_item_changes()
    for item, payload in items.items():
        if payload is None:
            items_state.pop(item, None)
        else:
            items_state[item] = payload
    items_state["__globals__"] = globals_


def test_a_replica_restored_from_its_persisted_state_continues_exactly():
    # Small caps: users and items are evicted, so deletions from other buckets' state are exercised.
    config = replace(CONFIG, max_users=12, max_items=30)
    live = RecommenderReplica(config)
    users_state: dict[int, dict[str, str]] = {}
    items_state: dict[str, str] = {}
    for item in _catalog()[:20]:
        live.add_catalog_item(item)
    inputs = list(_inputs(1500))
    inputs.insert(300, ModelInput("u3", None, FORGET, inputs[299].timestamp, None, (), (), "f"))
    inputs.insert(400, ModelInput("u0", '{"blend": {"covisit": 2}}', RETUNE, inputs[399].timestamp, None, (), (), "r"))
    cut = 900
    restored = None
    lists = {"live": [], "restored": []}
    for n, m in enumerate(inputs):
        if n == cut:  # a checkpoint: the Flink operator's state as of here, read back by a new replica
            restored = RecommenderReplica(config)
            restored.restore_items(items_state.pop("__globals__"), items_state.items())
            for bucket, users in users_state.items():
                restored.load_bucket(users.items(), bucket)
        bucket = _bucket(m.user_id)
        for name, replica in (("live", live), ("restored", restored)):
            if replica is None:
                continue
            lists[name].append(replica.learn_one(m, bucket))
            for record in replica.take_exchange(emit_time=m.timestamp):
                replica.apply_exchange(record)
            if replica is live:
                _persist(live, bucket, users_state, items_state)
    assert lists["live"][cut:] == lists["restored"]
    assert sum(r is not None for r in lists["restored"]) > 200
    stored_users = {u for users in users_state.values() for u in users}
    # Every user held is stored; a stored user not held was evicted and goes when their bucket runs next.
    assert stored_users - set(live.recommender.users) == live.deletes_pending
    assert set(live.recommender.users) <= stored_users and len(live.recommender.users) <= 13
    assert live.model_version == restored.model_version and "tuned" in live.model_version


def test_records_stay_below_kafkas_default_size_limit():
    replica = RecommenderReplica(CONFIG, updates_per_record=50)
    for m in _inputs(300):
        replica.learn_one(m, _bucket(m.user_id))
    records = replica.take_exchange(emit_time=1)
    assert len(records) >= 5 and max(map(len, records)) < 1_000_000
    fresh = RecommenderReplica(CONFIG)
    assert sum(fresh.apply_exchange(r) for r in records) == 300 - sum(
        1 for m in _inputs(300) if CONFIG.event_weights.get(m.event_name, 0) <= 0
    )


def test_records_in_flight_at_a_checkpoint_are_learned_once_after_a_restore():
    """Two replicas whose records come back a few inputs late (the topic's delay). At the cut, some of the
    writer's records are in flight: those its saved item side holds (saved after it wrote them) must be
    skipped after the restore, those written after the last save learned; either way once."""
    a, b = RecommenderReplica(CONFIG, writer_id="a"), RecommenderReplica(CONFIG, writer_id="b")
    state: dict[str, dict] = {"a": {"users": {}, "items": {}}, "b": {"users": {}, "items": {}}}
    topic: list[bytes] = []  # the log, in order; delivered DELAY records behind
    delivered = 0
    delay = 5

    def deliver(replicas, upto):  # the broadcast side: apply, then save the item side (as the job does)
        nonlocal delivered
        for record in topic[delivered:upto]:
            for name, replica in replicas.items():
                replica.apply_exchange(record)
                items, globals_ = replica.take_item_changes()
                state[name]["items"].update(items)
                state[name]["globals"] = globals_
        delivered = max(delivered, upto)

    inputs = list(_inputs(1000))
    replicas = {"a": a, "b": b}
    restored = None
    for n, m in enumerate(inputs):
        bucket = _bucket(m.user_id)
        owner = replicas["a" if bucket % 2 == 0 else "b"]
        owner.learn_one(m, bucket)
        topic.extend(owner.take_exchange(emit_time=n))
        name = "a" if owner is a else "b"
        state[name]["users"].setdefault(bucket, {}).update(owner.take_user_changes(bucket))
        if n == 600:  # checkpoint: restore replica a from its state; the in-flight records still come
            restored = RecommenderReplica(CONFIG, writer_id="a-restored")
            items = {k: v for k, v in state["a"]["items"].items() if v is not None}
            restored.restore_items(state["a"]["globals"], items.items())
            for users_bucket, users in state["a"]["users"].items():
                restored.load_bucket([(u, p) for u, p in users.items() if p is not None], users_bucket)
            replicas = {"a": restored, "b": b}
            # the live replica a keeps running beside it, as if no failure happened, for comparison
            live_a = a
        if n >= 600:
            for record in topic[delivered:max(0, len(topic) - delay)]:
                live_a.apply_exchange(record)
        deliver(replicas, max(0, len(topic) - delay))
    for record in topic[delivered:]:
        live_a.apply_exchange(record)
    deliver(replicas, len(topic))
    assert restored is not None and any(topic)
    # Every update applied exactly once on each replica: the items' interaction counts are the log's ...
    counts = Counter(u.item_id for record in topic for u in decode_exchange(record).updates)
    for replica in (restored, b, live_a):
        assert {i: s.n_events for i, s in replica.recommender.items.items()} == counts
    # ... and the factors agree but for the order the updates came in (the last bits)
    for item in live_a.recommender.items:
        restored_mf, live_mf = (r.recommender.mf.export_item(item) for r in (restored, live_a))
        assert np.allclose(np.array(restored_mf[1], dtype=float), np.array(live_mf[1], dtype=float), atol=1e-9)
