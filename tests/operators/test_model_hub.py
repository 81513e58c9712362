"""The model hub on simulated shoppers: ML segment changes, recommendations, and exact restore from the
incremental payloads it hands to Flink state."""

from __future__ import annotations

import dataclasses
import itertools
import zlib

import orjson
import pytest
import yaml

from evaluation.simulator import ShopperSimulator
from operators.model_hub import ModelHub, model_input
from operators.models_config import ModelsConfig
from operators.normalize import normalize
from operators.profile_tracker import ProfileTracker
from operators.segment_rules import SegmentRules
from settings import PROJECT_ROOT
from state_schemas import model_hub_state, recommendation
from state_schemas import model_input as model_input_wire
from state_schemas.catalog_item import CatalogItem

MODELS = yaml.safe_load((PROJECT_ROOT / "config" / "models.yaml").read_text())
# A short warm-up so a few thousand events reach the clustering phase.
SMALL = ModelsConfig.from_dict({**MODELS, "clustering": {**MODELS["clustering"], "warmup_events": 200}})
T0 = 1_795_000_000_000


@pytest.fixture(scope="module")
def inputs():
    """Model inputs of 4,000 simulated events, as the rule operator would send them."""
    sim = ShopperSimulator(seed=3, users=300, items=400, categories=8)
    tracker = ProfileTracker(SegmentRules.from_yaml(PROJECT_ROOT / "config" / "segments.yaml"))
    profiles: dict = {}
    out = []
    for raw in sim.events(T0, rate=50, count=4_000):
        event = normalize(orjson.dumps(raw))
        state, _ = tracker.process_one(profiles.get(event.user_key), event)
        profiles[event.user_key] = state
        out.append(model_input(state, event))
    return out


def catalog(n: int = 400):
    return [CatalogItem(f"p{i}", f"Product {i}", f"c{i % 8}", ()) for i in range(n)]


def run(hub: ModelHub, inputs, state: dict | None = None) -> list:
    """Feed ``inputs``; returns the outputs; ``state`` collects take_changes like Flink's MapStates."""
    outputs = []
    for m in inputs:
        changes, recs = hub.process_one(m)
        outputs.append(([(c.segment, c.change) for c in changes], recs))
        if state is not None:
            persist(hub, state)
    return outputs


def persist(hub: ModelHub, state: dict) -> None:
    changes = hub.take_changes()
    for name, entries in (("users", changes.users), ("items", changes.items)):
        for key, payload in entries.items():
            if payload is None:
                state[name].pop(key, None)
            else:
                state[name][key] = payload
    state["globals"] = changes.globals


def fresh_state() -> dict:
    return {"users": {}, "items": {}, "globals": None}


def test_model_input_round_trips_the_wire_and_keeps_behavior_in_the_profile(inputs) -> None:
    m = inputs[-1]
    assert model_input_wire.from_wire(model_input_wire.to_wire(m)) == m
    assert len(m.features) == 9 and m.item_id is not None


def test_hub_emits_cluster_changes_after_warm_up(inputs) -> None:
    hub = ModelHub(SMALL)
    outputs = run(hub, inputs)

    changes = [c for cs, _ in outputs for c in cs]
    assert changes, "no ML segment change in 4,000 events"
    assert {change for _, change in changes} <= {"enter", "exit"}
    assert set(hub.clusterer.names()) >= {segment for segment, _ in changes if segment in hub.clusterer.names()}
    first = next(i for i, (cs, _) in enumerate(outputs) if cs)
    assert first >= 399  # nothing before the warm-up: 200 scaler-only + 200 model updates (0-based)


def test_a_hub_without_recommendations_clusters_the_same_and_keeps_no_recommender_state(inputs) -> None:
    """``models_sharded``: the replicas recommend; the hub's ML segments must not change for it."""
    full, clusters_only = ModelHub(SMALL), ModelHub(SMALL, recommendations=False)
    state = fresh_state()
    expected, got = run(full, inputs), run(clusters_only, inputs, state)
    assert [changes for changes, _ in got] == [changes for changes, _ in expected]
    assert any(changes for changes, _ in got) and all(recs is None for _, recs in got)
    assert not clusters_only.recommender.users and not state["items"]
    restored = ModelHub.restore(SMALL, state["globals"], state["users"].items(), state["items"].items(),
                                recommendations=False)
    assert {u: c for u, c in restored.clusters.items() if c} == {u: c for u, c in clusters_only.clusters.items() if c}


def test_hub_recommends_with_known_sources_and_never_a_purchased_item(inputs) -> None:
    hub = ModelHub(SMALL)
    for item in catalog():
        hub.add_catalog_item(item)
    outputs = run(hub, inputs)

    lists = [(m.user_id, recs) for m, (_, recs) in zip(inputs, outputs, strict=True) if recs]
    assert len(lists) > 100
    assert all(r.source in recommendation.SOURCES for _, recs in lists for r in recs)
    bought: dict[str, set] = {}
    for m, (_, recs) in zip(inputs, outputs, strict=True):
        if recs:
            assert not {r.item_id for r in recs} & bought.get(m.user_id, set())
        if m.event_name == "order_completed" and m.item_id:
            bought.setdefault(m.user_id, set()).add(m.item_id)


def test_restore_from_persisted_state_continues_exactly(inputs) -> None:
    uninterrupted = ModelHub(SMALL)
    for item in catalog():
        uninterrupted.add_catalog_item(item)
    expected = run(uninterrupted, inputs)

    first = ModelHub(SMALL)
    state = fresh_state()
    for item in catalog():
        first.add_catalog_item(item)
    persist(first, state)
    half = len(inputs) // 2
    got = run(first, inputs[:half], state)
    restored = ModelHub.restore(SMALL, state["globals"], state["users"].items(), state["items"].items())
    got += run(restored, inputs[half:], state)

    assert got == expected


def test_user_cap_forgets_the_least_recent_users_in_state_too(inputs) -> None:
    hub = ModelHub(dataclasses.replace(SMALL, max_users=50))
    state = fresh_state()
    run(hub, inputs, state)

    assert len(hub.clusters) == 50
    clustered = {u for u, p in state["users"].items() if orjson.loads(p)[1] is not None}
    assert clustered <= set(hub.clusters)


def test_restore_refuses_models_of_another_river_version(inputs) -> None:
    hub = ModelHub(SMALL)
    run(hub, inputs[:10])
    globals_ = orjson.loads(hub.take_changes().globals)
    globals_[1] = "0.1.0"

    with pytest.raises(ValueError, match=r"River 0\.1\.0"):
        ModelHub.restore(SMALL, orjson.dumps(globals_).decode(), [], [])


def test_every_input_is_processed_in_bounded_time(inputs) -> None:
    hub = ModelHub(SMALL)
    for m in itertools.islice(inputs, 500):
        hub.process_one(m)
    assert hub.take_changes().globals


def test_forget_drops_the_user_everywhere_and_exits_their_cluster(inputs) -> None:
    hub = ModelHub(SMALL)
    run(hub, inputs)
    hub.take_changes()
    user = next(u for u, c in hub.clusters.items() if c is not None)
    forget = model_input_wire.ModelInput(user, None, model_input_wire.FORGET, T0, None, (), (), "m-forget")
    [exit_], recs = hub.process_one(forget)
    assert (exit_.user_id, exit_.change, exit_.trigger, recs) == (user, "exit", "consent", None)
    assert user not in hub.clusters and user not in hub.recommender.users and not hub.recommender.mf.has_user(user)
    assert hub.take_changes().users[user] is None  # deleted from Flink state
    assert hub.process_one(forget) == ([], None)  # twice is harmless


# -- the clusterer learns in event-time order ----------------------------------------------------------
OUT_OF_ORDERNESS = 5_000


def partition_of(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % 2


def interleaved(inputs, lead: int, chunk: int) -> list:
    """``inputs`` as two partitions (by user) reach the hub when one runs ``lead`` inputs ahead, then in
    alternating chunks: each partition in its own order, as Kafka keeps it."""
    parts = [[m for m in inputs if partition_of(m.user_id) == p] for p in (0, 1)]
    order, pos, p = parts[0][:lead], [lead, 0], 1
    while pos[0] < len(parts[0]) or pos[1] < len(parts[1]):
        order += parts[p][pos[p]:pos[p] + chunk]
        pos[p] += chunk
        p = 1 - p
    return order


def run_with_watermarks(hub: ModelHub, arriving, state: dict | None = None) -> dict[str, list]:
    """Feed inputs with the watermark a two-partition source would carry (the least of the partitions'
    latest event times, minus the out-of-orderness); returns each user's cluster changes in order."""
    latest: dict[int, int] = {}
    changes: dict[str, list] = {}
    for i, m in enumerate(arriving):
        latest[partition_of(m.user_id)] = m.timestamp
        watermark = min(latest.values()) - OUT_OF_ORDERNESS if len(latest) == 2 else -2**63
        for user, cs in hub.advance(watermark):
            changes.setdefault(user, []).extend((c.segment, c.change, c.event_time) for c in cs)
        cs, _ = hub.process_one(m, watermark)
        changes.setdefault(m.user_id, []).extend((c.segment, c.change, c.event_time) for c in cs)
        if state is not None:
            persist(hub, state)
        if state is not None and i % 25 == 24:  # as if the job restarted from a checkpoint here
            hub = ModelHub.restore(SMALL, state["globals"], state["users"].items(), state["items"].items())
    for user, cs in hub.advance(2**63 - 1):
        changes.setdefault(user, []).extend((c.segment, c.change, c.event_time) for c in cs)
    return {user: cs for user, cs in changes.items() if cs}


def test_ml_segments_do_not_depend_on_how_partitions_interleave(inputs) -> None:
    in_time_order = run_with_watermarks(ModelHub(SMALL), inputs)
    assert sum(map(len, in_time_order.values())) > 100

    for lead, chunk in ((0, 7), (600, 40), (1_500, 200)):  # a lagging partition, read unevenly
        assert run_with_watermarks(ModelHub(SMALL), interleaved(inputs, lead, chunk)) == in_time_order


def test_without_a_watermark_the_order_of_arrival_decides(inputs) -> None:
    """Why the hub waits for the watermark: the same inputs in another interleaving, learned on arrival."""
    def final_clusters(arriving) -> dict:
        hub = ModelHub(SMALL)
        run(hub, arriving)
        return dict(hub.clusters)

    assert final_clusters(interleaved(inputs, 1_500, 200)) != final_clusters(inputs)


def test_deferred_inputs_survive_restores(inputs) -> None:
    arriving = interleaved(inputs[:1_500], 300, 40)
    expected = run_with_watermarks(ModelHub(SMALL), arriving)

    assert run_with_watermarks(ModelHub(SMALL), arriving, state=fresh_state()) == expected


def test_forget_drops_the_inputs_waiting_to_be_clustered(inputs) -> None:
    hub = ModelHub(SMALL)
    user = inputs[0].user_id
    for m in inputs[:50]:
        hub.process_one(m, watermark=-2**63)
    waiting = hub.deferred_inputs
    hub.forget(user, T0 + 10**9, "forget-1")
    hub.advance(2**63 - 1)

    assert waiting == 50 and hub.deferred_inputs == 0
    assert user not in hub.clusters and hub.take_changes().users[user] is None


def test_a_stalled_watermark_keeps_at_most_max_waiting_inputs(inputs) -> None:
    """A silent partition never marked idle stops the watermark: the oldest inputs beyond the bound are
    clustered anyway (in event-time order), so memory and state stay bounded."""
    bounded = dataclasses.replace(SMALL, clustering=dataclasses.replace(SMALL.clustering, max_waiting=100))
    hub = ModelHub(bounded)
    stalled = -2**63
    most = 0
    for m in inputs[:1_000]:
        hub.advance(stalled)
        hub.process_one(m, watermark=stalled)
        most = max(most, hub.deferred_inputs)

    assert most == 101  # the bound, plus the input of the call before the next advance
    assert hub.clusterer.events_seen == 1_000 - hub.deferred_inputs
    persisted = sum(len(model_hub_state.decode_user(p)[2]) for p in hub.take_changes().users.values() if p)
    assert persisted == hub.deferred_inputs == 101


def test_the_state_written_is_the_live_hub_also_for_users_whose_inputs_wait(inputs) -> None:
    """After every write, the state holds what a fresh export of the live hub gives. A user with inputs
    waiting for the watermark is written again when they are clustered, with the recommender part reused
    from the last write unless it changed (``ModelHub.take_changes``); a user forgotten and seen again in
    the same batch is written with what they have now, one forgotten for good as deleted."""
    hub, state = ModelHub(SMALL), fresh_state()
    forgotten, gone = inputs[590].user_id, inputs[585].user_id
    assert forgotten != gone
    again = dataclasses.replace(next(m for m in inputs if m.item_id is not None), user_id=forgotten)

    def fresh_export() -> dict[str, str]:
        known = hub.clusters.keys() | hub.recommender.users.keys() | {m.user_id for m in inputs}
        out = {}
        for user in known:
            cluster, rec, waiting = hub.clusters.get(user), hub._export_user(user), hub._deferred.waiting(user)
            if cluster is not None or rec is not None or waiting:
                out[user] = model_hub_state.encode_user(cluster, rec, waiting)
        return out

    watermark, reused = -2**63, 0
    for i, m in enumerate(inputs[:2_000]):
        if i % 16 == 0:  # a batch; the watermark trails the inputs by 200 (about 4 s of event time)
            watermark = inputs[max(0, i - 200)].timestamp - 1
            hub.advance(watermark)
        if i == 600:
            for user in (forgotten, gone):
                assert hub._deferred.waiting(user) and user in hub._waiting_rec_payloads
                hub.forget(user, m.timestamp, "forget-1")
            hub.process_one(dataclasses.replace(again, timestamp=m.timestamp, message_id="again"), watermark)
        hub.process_one(m, watermark)
        if i % 16 == 15:
            reused += len(hub._waiting_rec_payloads)
            persist(hub, state)
            assert state["users"] == fresh_export(), f"after input {i}"
            if i == 607:
                assert model_hub_state.decode_user(state["users"][forgotten])[1] is not None
                assert gone not in state["users"]
    assert reused > 0 and hub.deferred_inputs > 0
