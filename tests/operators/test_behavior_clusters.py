"""BehaviorClusterer: warm-up, naming, explanations, relabel without churn, export / import."""

from __future__ import annotations

import random

import orjson
import pytest

from operators.behavior_clusters import BehaviorClusterer, ClusteringConfig, ClusteringError
from operators.behavior_features import FEATURE_NAMES
from state_schemas.cluster_model import ClusterModelError

# Four behaviors with a clear signature each (values in feature units, like behavior_features gives).
PROFILES = {
    "casual": {"events": 0.7, "sessions": 0.7, "views_per_session": 0.7, "categories": 0.7},
    "cart": {"events": 0.7, "sessions": 0.7, "cart_rate": 1.0, "categories": 0.7},
    "fav": {"events": 0.7, "sessions": 0.7, "fav_rate": 1.0, "categories": 0.7},
    "heavy": {"events": 3.0, "sessions": 1.1, "views_per_session": 2.5, "session_minutes": 3.0,
              "tenure_hours": 1.5, "categories": 2.5},
}
WEIGHTS = {"casual": 10, "cart": 2, "fav": 2, "heavy": 3}


def vector(kind: str, rng: random.Random) -> dict[str, float]:
    base = dict.fromkeys(FEATURE_NAMES, 0.0) | PROFILES[kind]
    return {f: v + rng.gauss(0, 0.05) for f, v in base.items()}


def stream(n: int, seed: int = 0) -> list[tuple[str, dict[str, float]]]:
    rng = random.Random(seed)
    kinds = [k for k, w in WEIGHTS.items() for _ in range(w)]
    return [(kind, vector(kind, rng)) for kind in (rng.choice(kinds) for _ in range(n))]


def config(**kw: object) -> ClusteringConfig:
    return ClusteringConfig(**({"n_clusters": 4, "warmup_events": 200, "halflife": 0.01} | kw))  # type: ignore[arg-type]


def trained(cfg: ClusteringConfig, n: int = 1_500) -> BehaviorClusterer:
    c = BehaviorClusterer(cfg)
    for t, (_, x) in enumerate(stream(n)):
        c.learn_one(x, now=t)
    return c


def names_by_kind(c: BehaviorClusterer) -> dict[str, str | None]:
    rng = random.Random(99)
    return {kind: c.predict_one(vector(kind, rng)) for kind in PROFILES}


def test_behavior_clusterer_predicts_none_while_warming_up() -> None:
    c = BehaviorClusterer(config())
    for t, (_, x) in enumerate(stream(399)):
        c.learn_one(x, now=t)
        assert c.predict_one(x) is None and c.names() == []
    c.learn_one(x, now=400)
    assert c.predict_one(x) is not None


def test_behavior_clusterer_names_clusters_after_their_standout_features() -> None:
    c = trained(config())
    names = names_by_kind(c)
    assert names == {"casual": names["casual"], "cart": "Cart Fillers", "fav": "Wishlisters",
                     "heavy": names["heavy"]}
    assert names["casual"] in {"Casual Visitors", "One-off Visitors"}  # below average: heavy users pull up
    assert names["heavy"] in {"Browsers", "Explorers", "Long-Session Visitors", "Returning Visitors"}
    assert sorted(c.names()) == sorted(names.values())


def test_behavior_clusterer_explains_with_centroid_z_scores() -> None:
    c = trained(config())
    z = c.explain("Cart Fillers")
    assert list(z) == list(FEATURE_NAMES)
    assert max(z, key=lambda f: z[f]) == "cart_rate" and z["cart_rate"] > 1.5
    assert c.describe("Cart Fillers").startswith("Cart Fillers: cart rate +")
    with pytest.raises(KeyError, match="no cluster named 'Nope'"):
        c.explain("Nope")


def test_behavior_clusterer_relabel_keeps_names() -> None:
    c = BehaviorClusterer(config(relabel_every_events=100))
    data = stream(4_000)
    for t, (_, x) in enumerate(data[:500]):
        c.learn_one(x, now=t)
    before, first_names = names_by_kind(c), c.names()
    relabels = 0
    for t, (_, x) in enumerate(data[500:], start=500):
        done = c._relabeled_at
        c.learn_one(x, now=t)
        relabels += c._relabeled_at != done
        assert sorted(c.names()) == sorted(first_names)
    assert relabels >= 30
    assert names_by_kind(c) == before


def test_behavior_clusterer_relabel_by_event_time() -> None:
    c = BehaviorClusterer(config(relabel_every_events=0, relabel_every_ms=1_000))
    for t, (_, x) in enumerate(stream(600)):
        c.learn_one(x, now=t * 10)
    assert c._relabeled_at == (c.model_updates, 5_990)  # every 100 events = 1,000 ms


def test_behavior_clusterer_renames_a_cluster_that_changed_profile() -> None:
    c = trained(config())
    i = c.names().index("Wishlisters")
    _, cid, z = c._named[i]
    # Pretend the previous labels had called this cluster "Loyal Customers", far away from where it is now:
    # the stale name is not carried over, the cluster is named after its profile again.
    c._named[i] = ("Loyal Customers", cid, [v + 10.0 for v in z])
    c.relabel(now=0)
    assert c._name_of[cid] == "Wishlisters" and "Loyal Customers" not in c.names()


@pytest.mark.parametrize("algorithm", ["kmeans", "streamkmeans", "dbstream"])
@pytest.mark.parametrize("cut", [150, 900])  # during the warm-up, and after the first labels
def test_behavior_clusterer_export_import_continues_identically(algorithm: str, cut: int) -> None:
    cfg = config(algorithm=algorithm, relabel_every_events=100)
    data = stream(1_400 if algorithm != "dbstream" else 900, seed=3)
    a = BehaviorClusterer(cfg)
    for t, (_, x) in enumerate(data[:cut]):
        a.learn_one(x, now=t)
    b = BehaviorClusterer(cfg)
    b.import_state(a.export_state())
    assert b.export_state() == a.export_state()
    for t, (_, x) in enumerate(data[cut:], start=cut):
        a.learn_one(x, now=t)
        b.learn_one(x, now=t)
        assert a.predict_one(x) == b.predict_one(x)
    assert a.names() and a.export_state() == b.export_state()


def test_behavior_clusterer_seeding_finds_the_same_clusters_whatever_the_seed() -> None:
    found = [names_by_kind(trained(config(seed=seed))) for seed in (1, 2, 3, 4)]
    assert all(names == found[0] for names in found)
    assert len(set(found[0].values())) == 4  # one cluster per behavior


def test_behavior_clusterer_sequential_step_is_the_running_mean() -> None:
    c = BehaviorClusterer(config(seed_weight=0.0, halflife=0.0))
    for t, (_, x) in enumerate(stream(200)):  # warm-up; the next event seeds the centers
        c.learn_one(x, now=t)
    absorbed: dict[int, list[list[float]]] = {}
    for t, (_, x) in enumerate(stream(300, seed=5), start=200):
        c.learn_one(x, now=t)
        z = c._scale([x[f] for f in FEATURE_NAMES])  # as learn_one scaled it
        absorbed.setdefault(c._closest(z), []).append(c._vector(z))
    assert sorted(absorbed) == [0, 1, 2, 3]
    for cid, points in absorbed.items():
        # seed weight 0: the first point replaced the seed, each next one moved the center 1/n
        assert c._absorbed[cid] == len(points)
        mean = [sum(v) / len(points) for v in zip(*points, strict=True)]
        assert c._vector(c.model.centers[cid]) == pytest.approx(mean, abs=1e-9)


def test_behavior_clusterer_step_never_drops_below_halflife() -> None:
    c = trained(config(halflife=0.25))
    cid = 0
    c._absorbed[cid] = 1_000.0
    z = dict.fromkeys(FEATURE_NAMES, 10.0)
    c.model.centers[cid].update(dict.fromkeys(FEATURE_NAMES, 0.0))
    c._squared_distances = lambda _: (list(c.model.centers), [0.0 if i == cid else 1.0 for i in c.model.centers])  # type: ignore[method-assign]
    c._step_closest(z)
    assert c._vector(c.model.centers[cid]) == [2.5] * len(FEATURE_NAMES)


def test_behavior_clusterer_reads_a_payload_without_counts_as_settled_centers() -> None:
    a = trained(config(halflife=0.01))
    row = orjson.loads(a.export_state())
    assert len(row[7]["absorbed"]) == 4 and sum(row[7]["absorbed"]) > 1_000
    del row[7]["absorbed"]  # as written before sequential steps
    b = BehaviorClusterer(config(halflife=0.01))
    b.import_state(orjson.dumps(row).decode())
    assert b._absorbed == [100.0] * 4  # 1 / 100 = halflife: the old constant step


@pytest.mark.parametrize(("z", "name"), [
    # high tenure and sessions (long visits too, as returning users have): Taobao's engaged users
    ({"tenure_hours": 2.7, "sessions": 2.1, "events": 1.8, "session_minutes": 1.5, "categories": 1.4},
     "Returning Visitors"),
    # minutes per session standing out beyond tenure: one long visit
    ({"session_minutes": 3.0, "tenure_hours": 0.8, "views_per_session": 0.5}, "Long-Session Visitors"),
])
def test_behavior_clusterer_names_time_features_by_their_standout(z: dict[str, float], name: str) -> None:
    c = BehaviorClusterer(ClusteringConfig(n_clusters=2))
    average = [0.0] * len(FEATURE_NAMES)
    for i, vector in enumerate([average, [z.get(f, 0.0) for f in FEATURE_NAMES]]):
        c.model.centers[i].update(zip(FEATURE_NAMES, vector, strict=True))
    c.relabel(now=0)
    assert c.names() == ["Casual Visitors", name]


def test_behavior_clusterer_refuses_a_payload_of_another_algorithm() -> None:
    payload = trained(config()).export_state()
    with pytest.raises(ClusterModelError, match=r"stored clusterer is kmeans .* asks for streamkmeans"):
        BehaviorClusterer(config(algorithm="streamkmeans")).import_state(payload)
    with pytest.raises(ClusterModelError, match=r"4 clusters, clustering\.n_clusters is 5"):
        BehaviorClusterer(ClusteringConfig(n_clusters=5)).import_state(payload)


def test_clustering_config_defaults_and_errors() -> None:
    assert ClusteringConfig.from_dict({}) == ClusteringConfig()
    assert ClusteringConfig.from_dict({"relabel_every": "never"}).relabel_every_ms == 0
    assert ClusteringConfig.from_dict({"n_clusters": 6.0}).n_clusters == 6
    assert ClusteringConfig.from_dict({"sequential": False}).sequential is False
    for bad, message in [
        ({"algorithm": "dbscan"}, "algorithm must be one of kmeans, streamkmeans, dbstream; got 'dbscan'"),
        ({"halflife": "fast"}, "halflife must be a non-negative number; got 'fast'"),
        ({"n_clusters": 2.5}, "n_clusters must be a whole number"),
        ({"n_clusters": 0}, "must be at least 1"),
        ({"relabel_every": "weekly"}, "relabel_every must be a duration"),
        ({"n_cluster": 3}, "clustering.n_cluster is not a setting"),
        ({"sequential": 1}, "sequential must be true or false; got 1"),
        ({"seed_points": 0}, "seed_points must be at least 1"),
    ]:
        with pytest.raises(ClusteringError, match=message):
            ClusteringConfig.from_dict(bad)
