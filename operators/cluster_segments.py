"""A user's predicted cluster -> ``SegmentChange`` events of kind ``cluster`` (ML segments).

The model hub predicts a cluster for the user on every event; ``cluster_changes`` decides whether the
user's ML segment changes and, if so, returns the ``exit`` of the old one and the ``enter`` of the new
one. Hysteresis keeps users from flapping between two neighbouring clusters on every event: given the
user's ``features``, a switch needs the new cluster's center to be at least ``clusterer.config.hysteresis``
(z units) closer than the current one's. The check is stateless (no per-user counters to store). Without
``features`` every different prediction is a switch.

No change while the clusterer is warming up (``predicted is None``); a user whose cluster no longer
exists (renamed at a relabel) moves to the predicted one at once.

A change names the cluster by its segment id (``segment_id``: "Cart Fillers" -> ``cart_fillers``), like
a rule segment, so audience keys and profile fields have no spaces; the display name opens ``reason``.
Each change carries the cluster's explanation: ``reason`` is the one-line description
("Cart Fillers: cart rate +2.3σ, ...") and ``facts`` the centroid z-scores (rounded, keys ``z.<feature>``)
plus, when given, the user's own feature values (keys ``user.<feature>``).

>>> from operators.behavior_clusters import BehaviorClusterer, ClusteringConfig
>>> c = BehaviorClusterer(ClusteringConfig())
>>> c._named = [("Browsers", 0, [0.0] * 9), ("Cart Fillers", 1, [0.0] * 9)]
>>> current, changes = cluster_changes("u1", "Browsers", "Cart Fillers", c, 5, "m1")
>>> current, [(x.segment, x.change, x.kind) for x in changes]
('Cart Fillers', [('browsers', 'exit', 'cluster'), ('cart_fillers', 'enter', 'cluster')])
>>> cluster_changes("u1", "Cart Fillers", None, c, 6, "m2")
('Cart Fillers', [])
"""

from __future__ import annotations

import re

from operators.behavior_clusters import BehaviorClusterer
from operators.behavior_features import FEATURE_NAMES
from state_schemas.segment_change import ENTER, EXIT, SegmentChange

KIND = "cluster"
_USER_FACT = {f: f"user.{f}" for f in FEATURE_NAMES}  # the fact keys, built once: every change carries them
_WORD = re.compile(r"[^\W_]+")


def segment_id(name: str) -> str:
    """The segment id of a cluster name: lower-case words joined by ``_``.

    >>> segment_id("Cart Fillers"), segment_id("  Über-Käufer 2 ")
    ('cart_fillers', 'über_käufer_2')
    """
    return "_".join(_WORD.findall(name.lower()))


def cluster_changes(
    user_id: str,
    previous: str | None,
    predicted: str | None,
    clusterer: BehaviorClusterer,
    event_time: int,
    message_id: str | None,
    features: dict[str, float] | None = None,
    trigger: str = "event",
) -> tuple[str | None, list[SegmentChange]]:
    """The user's (possibly unchanged) cluster and the exit / enter changes to emit."""
    if predicted is None or predicted == previous:
        return previous, []
    names = clusterer.names()
    if previous is not None and previous in names and features is not None and not should_switch(
        clusterer, features, previous, predicted
    ):
        return previous, []
    changes = []
    if previous is not None:
        changes.append(_change(user_id, previous, EXIT, clusterer, event_time, message_id, features, trigger))
    changes.append(_change(user_id, predicted, ENTER, clusterer, event_time, message_id, features, trigger))
    return predicted, changes


def cluster_exit(
    user_id: str, cluster: str, clusterer: BehaviorClusterer, event_time: int, message_id: str | None, trigger: str
) -> SegmentChange:
    """The exit of ``cluster`` on its own (the user is forgotten: consent withdrawn)."""
    return _change(user_id, cluster, EXIT, clusterer, event_time, message_id, None, trigger)


def should_switch(clusterer: BehaviorClusterer, features: dict[str, float], current: str, predicted: str) -> bool:
    """Is ``predicted``'s center closer than ``current``'s by at least the hysteresis margin?"""
    distance = clusterer.distances(features, (current, predicted))
    return distance[current] - distance[predicted] >= clusterer.config.hysteresis


def _change(
    user_id: str, name: str, change: str, clusterer: BehaviorClusterer, event_time: int,
    message_id: str | None, features: dict[str, float] | None, trigger: str,
) -> SegmentChange:
    try:
        z = clusterer.explain(name)
        reason = clusterer.describe(name)
    except KeyError:  # a name retired by a relabel: the exit still goes out, without an explanation
        z, reason = {}, f"{name}: cluster retired at a model relabel"
    facts: dict[str, float] = {f"z.{f}": round(v, 2) for f, v in z.items()}
    if features is not None:
        facts.update({_USER_FACT.get(f) or f"user.{f}": round(v, 3) for f, v in features.items()})
    return SegmentChange(user_id, segment_id(name), KIND, change, reason, facts, trigger, event_time, message_id)
