"""Cluster changes: enter / exit events, explanations in reason and facts, hysteresis."""

from __future__ import annotations

from operators.behavior_clusters import BehaviorClusterer, ClusteringConfig
from operators.behavior_features import FEATURE_NAMES
from operators.cluster_segments import cluster_changes


def clusterer(hysteresis: float = 0.5) -> BehaviorClusterer:
    """Two named clusters on the cart-rate axis (z = -1 and +1), the scaler at mean 0 / std 1."""
    c = BehaviorClusterer(ClusteringConfig(n_clusters=2, hysteresis=hysteresis))
    n = len(FEATURE_NAMES)
    c._count, c._mean, c._m2 = 1, [0.0] * n, [1.0] * n
    cart = FEATURE_NAMES.index("cart_rate")
    for i, (name, side) in enumerate([("Browsers", -1.0), ("Cart Fillers", 1.0)]):
        z = [0.0] * n
        z[cart] = side
        c._named.append((name, i, z))
        c._name_of[i] = name
        c.model.centers[i].update(zip(FEATURE_NAMES, z, strict=True))
    return c


def features(cart_rate: float) -> dict[str, float]:
    return dict.fromkeys(FEATURE_NAMES, 0.0) | {"cart_rate": cart_rate}


def test_cluster_changes_first_cluster_is_an_enter_with_explanation() -> None:
    c = clusterer()
    current, changes = cluster_changes("u1", None, "Cart Fillers", c, 10, "m1", features=features(0.9))
    assert current == "Cart Fillers"
    [enter] = changes
    assert (enter.user_id, enter.segment, enter.kind, enter.change, enter.trigger, enter.event_time,
            enter.message_id) == ("u1", "cart_fillers", "cluster", "enter", "event", 10, "m1")
    assert enter.reason.startswith("Cart Fillers: cart rate +1.0σ")
    assert enter.facts["z.cart_rate"] == 1.0 and enter.facts["user.cart_rate"] == 0.9


def test_cluster_changes_hysteresis_holds_near_the_boundary() -> None:
    c = clusterer(hysteresis=0.5)
    # cart rate 0.1: Cart Fillers is 0.2 closer than Browsers, less than the 0.5 margin -> stay
    assert c.predict_one(features(0.1)) == "Cart Fillers"
    assert cluster_changes("u1", "Browsers", "Cart Fillers", c, 1, "m", features=features(0.1)) == ("Browsers", [])
    current, changes = cluster_changes("u1", "Browsers", "Cart Fillers", c, 2, "m", features=features(0.3))
    assert current == "Cart Fillers"
    assert [(x.segment, x.change) for x in changes] == [("browsers", "exit"), ("cart_fillers", "enter")]


def test_cluster_changes_without_features_switch_at_once() -> None:
    c = clusterer(hysteresis=5.0)
    current, changes = cluster_changes("u1", "Browsers", "Cart Fillers", c, 1, None)
    assert current == "Cart Fillers" and len(changes) == 2


def test_cluster_changes_nothing_while_warming_up_or_unchanged() -> None:
    c = clusterer()
    assert cluster_changes("u1", None, None, c, 1, None) == (None, [])
    assert cluster_changes("u1", "Browsers", None, c, 1, None) == ("Browsers", [])
    assert cluster_changes("u1", "Browsers", "Browsers", c, 1, None, features=features(-1)) == ("Browsers", [])


def test_cluster_changes_leave_a_retired_cluster_at_once() -> None:
    c = clusterer(hysteresis=5.0)
    current, changes = cluster_changes("u1", "Old Name", "Browsers", c, 3, "m", features=features(0.0))
    assert current == "Browsers"
    assert [(x.segment, x.change) for x in changes] == [("old_name", "exit"), ("browsers", "enter")]
    assert changes[0].reason == "Old Name: cluster retired at a model relabel"
