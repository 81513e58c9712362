"""The model hub: ML segments and recommendations for every user, learned one event at a time.

One ``ModelHub`` holds the global models: the behavior clusterer (``operators.behavior_clusters``) and
the hybrid recommender (``operators.recommender``), plus each user's current cluster. ``process_one``
is test-then-learn for one event:

1. the clusterer learns the user's feature vector and predicts the user's cluster; a cluster change
   becomes ``SegmentChange`` events of kind ``cluster`` (``operators.cluster_segments``);
2. the recommender learns the interaction (if the event is about an item) and, when the user's top-K is
   due and differs from the last one emitted, returns it.

**Event-time order for the clusterer.** Online k-means follows the order of its points: the same events
read at parallelism 1 and 2, or with one partition lagging, interleave differently at the hub and gave
other segments (adjusted Rand index 0.51-0.54 on the real job; ``tests/integration/test_models_parallelism``).
So when the caller passes the stream's ``watermark``, step 1 is deferred: the feature vector waits until
the watermark passes its event time, and ``advance(watermark)`` clusters what is due in (event time, user
id) order -- the same order whatever the interleaving. An input already behind the watermark (late) is
clustered at once. Recommendations (step 2) are never deferred: they use the user's cluster as of the
last clustered input. Without a watermark (the evaluation replays, in time order) both steps run at once.

>>> from operators.models_config import ModelsConfig
>>> hub = ModelHub(ModelsConfig.from_dict({}))
>>> features = tuple(0.0 for _ in FEATURE_NAMES)
>>> hub.process_one(ModelInput("u1", None, "Page Viewed", 2_000, None, (), features, "m1"), watermark=1_000)
([], None)
>>> hub.deferred_inputs, hub.clusterer.events_seen
(1, 0)
>>> hub.advance(1_999), hub.deferred_inputs      # the watermark has not passed it
([], 1)
>>> hub.advance(2_000), hub.deferred_inputs, hub.clusterer.events_seen   # learned (no cluster yet: warm-up)
([], 0, 1)

Persistence is incremental, for Flink state: ``take_changes`` hands back the payloads of the users and
items touched since the last call (``None`` = delete; a user's deferred inputs are part of theirs) and the
global payload, and ``restore`` rebuilds a hub from them. The Flink adapter (``pipelines.model_functions``)
writes them after every batch, so a checkpoint holds the models exactly as of the events it covers; the
evaluation replays call the same ``process_one``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
import river

from operators.behavior_clusters import BehaviorClusterer
from operators.behavior_features import FEATURE_NAMES, BehaviorStats, behavior_features, update_stats
from operators.cluster_segments import cluster_changes, cluster_exit, segment_id
from operators.event_time_order import EventTimeOrder
from operators.models_config import ModelsConfig
from operators.recommender import HybridRecommender
from state_schemas import model_hub_state
from state_schemas.catalog_item import CatalogItem
from state_schemas.events import CanonicalEvent
from state_schemas.model_hub_state import Deferred
from state_schemas.model_input import FORGOTTEN, RETUNE, ModelInput
from state_schemas.popular_items import PopularItems
from state_schemas.profile_state import ProfileState
from state_schemas.recommendation import RecommendedItem
from state_schemas.segment_change import SegmentChange


def model_input(profile: ProfileState, event: CanonicalEvent) -> ModelInput:
    """The hub's input for ``event``; updates the behavior stats kept in ``profile`` (call it right after
    ``ProfileTracker.process_one`` returned ``profile``)."""
    stats = update_stats(BehaviorStats.from_list(profile.behavior) if profile.behavior else None, event, profile)
    profile.behavior = stats.to_list()
    features = behavior_features(stats, profile, event.timestamp)
    return ModelInput(
        event.user_key, event.item_id, event.name, event.timestamp, event.category,
        tuple(profile.segments), tuple(features[name] for name in FEATURE_NAMES), event.message_id,
    )


@dataclass(frozen=True, slots=True)
class ModelChanges:
    """What one ``take_changes`` call hands to the state backend."""

    users: dict[str, str | None]  # user id -> hub user payload, None = delete
    items: dict[str, str | None]  # item id -> recommender item payload, None = delete
    globals: str


class ModelHub:
    def __init__(self, models: ModelsConfig, recommendations: bool = True) -> None:
        self.clusterer = BehaviorClusterer(models.clustering)
        self.recommender = HybridRecommender(models.recommendations)
        # False: the clusterer only (the job's sharded recommender, operators.recommender_replica, learns
        # and scores the interactions; the recommender here stays empty)
        self.recommendations = recommendations
        # Users whose cluster the hub remembers; the least recently seen are forgotten first (they
        # re-enter a cluster on their next event): bounds memory and state with the recommender's caps.
        self.max_users = models.max_users
        self.clusters: OrderedDict[str, str | None] = OrderedDict()
        self._dirty_users: set[str] = set()
        self._forgotten: set[str] = set()
        self.latest_event_time = 0  # of the events learned since start or restore
        # Feature vectors waiting for the watermark before the clusterer learns them
        self._deferred: EventTimeOrder[Deferred] = EventTimeOrder(models.clustering.max_waiting)
        # The recommender part of the payload of users with inputs waiting: their payload is written again
        # when those are clustered, mostly with the recommender part unchanged (measured: half of all user
        # writes). Bounded by the waiting inputs.
        self._waiting_rec_payloads: dict[str, str | None] = {}

    @property
    def model_version(self) -> str:
        return self.recommender.model_version

    def add_catalog_item(self, item: CatalogItem) -> None:
        self.recommender.add_catalog_item(item)

    def process_one(
        self, m: ModelInput, watermark: int | None = None
    ) -> tuple[list[SegmentChange], list[RecommendedItem] | None]:
        """Test-then-learn one event; returns (cluster changes, new top-K or None). With ``watermark``,
        the clustering of an input the watermark has not passed waits for ``advance``."""
        trigger = FORGOTTEN.get(m.event_name)
        if trigger is not None:
            return self.forget(m.user_id, m.timestamp, m.message_id, trigger), None
        if m.event_name == RETUNE:  # every bucket sends its copy: the first one applies, the others are older
            if self.recommendations:
                self.recommender.retune(orjson.loads(m.item_id or "{}"), m.timestamp)
            return [], None
        self.latest_event_time = max(self.latest_event_time, m.timestamp)
        if watermark is None or m.timestamp <= watermark:
            changes = self._cluster(m.user_id, (m.timestamp, m.message_id, m.features))
        else:
            self._defer(m.user_id, (m.timestamp, m.message_id, m.features))
            changes = []
        if not self.recommendations:
            return changes, None
        current = self.clusters.get(m.user_id)
        segments = (*m.segments, current) if current else m.segments
        if m.item_id is not None:
            self.recommender.learn_one(m.user_id, m.item_id, m.event_name, m.timestamp, m.category, segments)
        recommendations = self.recommender.recommend_if_due(m.user_id, now=m.timestamp, segments=segments)
        return changes, recommendations

    def advance(self, watermark: int) -> list[tuple[str, list[SegmentChange]]]:
        """Cluster the deferred inputs the watermark has passed, in (event time, user id, arrival) order;
        returns ``(user id, changes)`` of those whose cluster changed. More than ``clustering.max_waiting``
        waiting inputs (a stalled watermark): the oldest are clustered too (``operators.event_time_order``)."""
        changed = []
        for user, entry in self._deferred.pop_due(watermark):
            self._dirty_users.add(user)
            changes = self._cluster(user, entry)
            if changes:
                changed.append((user, changes))
        return changed

    @property
    def deferred_inputs(self) -> int:
        """Inputs waiting for the watermark."""
        return len(self._deferred)

    def _defer(self, user_id: str, entry: Deferred) -> None:
        self._deferred.push(user_id, entry[0], entry)
        self._dirty_users.add(user_id)

    def _cluster(self, user_id: str, entry: Deferred) -> list[SegmentChange]:
        timestamp, message_id, vector = entry
        features = dict(zip(FEATURE_NAMES, vector, strict=False))
        self.clusterer.learn_one(features, now=timestamp)
        predicted = self.clusterer.predict_one(features)
        previous = self.clusters.get(user_id)
        current, changes = cluster_changes(
            user_id, previous, predicted, self.clusterer, timestamp, message_id, features
        )
        self._remember(user_id, current)
        return changes

    def forget(
        self, user_id: str, timestamp: int, message_id: str | None, trigger: str = "consent"
    ) -> list[SegmentChange]:
        """Drop everything the hub keeps of the user (cluster, factors, recent items, inputs waiting to be
        clustered); returns the exit of their cluster, if any. The item-side parameters they contributed
        to stay (they are not theirs)."""
        self._deferred.drop(user_id)
        cluster = self.clusters.pop(user_id, None)
        self._dirty_users.discard(user_id)
        self._forgotten.add(user_id)
        self.recommender.forget_user(user_id)
        if cluster is None:
            return []
        return [cluster_exit(user_id, cluster, self.clusterer, timestamp, message_id, trigger)]

    def popular(self, k: int) -> PopularItems:
        """The ``k`` items trending overall: the generic list for users without one of their own."""
        return PopularItems(tuple(self.recommender.popular(k)), self.model_version, self.latest_event_time)

    def cluster_segment(self, user_id: str) -> str | None:
        """The segment id of the user's current cluster (as its changes name it), None if none."""
        cluster = self.clusters.get(user_id)
        return None if cluster is None else segment_id(cluster)

    def _remember(self, user_id: str, cluster: str | None) -> None:
        self.clusters[user_id] = cluster
        self.clusters.move_to_end(user_id)
        self._dirty_users.add(user_id)
        while len(self.clusters) > self.max_users:
            forgotten, _ = self.clusters.popitem(last=False)
            self._forgotten.add(forgotten)

    # -- persistence -------------------------------------------------------------------------------
    def take_changes(self) -> ModelChanges:
        rec_users, rec_items = self.recommender.take_dirty()
        evicted_users, evicted_items = self.recommender.take_evicted()
        users: dict[str, str | None] = {}
        reusable = self._waiting_rec_payloads
        for user in self._dirty_users | rec_users | evicted_users | self._forgotten:
            cluster, deferred = self.clusters.get(user), self._deferred.waiting(user)
            if user in evicted_users:  # forgotten or evicted, perhaps seen again since: export what is there
                reusable.pop(user, None)
            rec = reusable[user] if user in reusable and user not in rec_users else self._export_user(user)
            if deferred:
                reusable[user] = rec
            else:
                reusable.pop(user, None)
            empty = cluster is None and rec is None and not deferred
            users[user] = None if empty else model_hub_state.encode_user(cluster, rec, deferred)
        items: dict[str, str | None] = {i: self.recommender.export_item(i) for i in rec_items - evicted_items}
        items.update(dict.fromkeys(evicted_items))
        self._dirty_users.clear()
        self._forgotten.clear()
        globals_ = model_hub_state.encode_globals(
            river.__version__, self.recommender.export_globals(), self.clusterer.export_state()
        )
        return ModelChanges(users, items, globals_)

    def _export_user(self, user: str) -> str | None:
        try:
            return self.recommender.export_user(user)
        except KeyError:
            return None

    @classmethod
    def restore(
        cls,
        models: ModelsConfig,
        globals_: str | None,
        users: Iterable[tuple[str, str]],
        items: Iterable[tuple[str, str]],
        recommendations: bool = True,
    ) -> ModelHub:
        """A hub as persisted: the payloads ``take_changes`` produced, as read back from state."""
        hub = cls(models, recommendations)
        if globals_ is not None:
            recommender, clusterer = model_hub_state.decode_globals(globals_, river_version=river.__version__)
            hub.recommender.import_globals(recommender)
            hub.clusterer.import_state(clusterer)
        for item, payload in items:
            hub.recommender.import_item(item, payload)
        for user, payload in users:
            cluster, rec, deferred = model_hub_state.decode_user(payload)
            if cluster is not None:
                hub.clusters[user] = cluster
            if rec is not None:
                hub.recommender.import_user(user, rec)
            for entry in deferred:
                hub._defer(user, entry)
        hub._dirty_users.clear()
        hub.recommender.take_dirty()  # a restore changes nothing that needs writing back
        return hub
