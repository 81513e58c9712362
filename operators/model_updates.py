"""Recommender replicas sharded by user, kept in sync by exchanging model updates.

The sharded design of the recommender, in one process (the evaluations replay it; the job's wiring is
to follow): each of ``replicas`` ``HybridRecommender`` instances owns the users that hash to it. An
interaction is learned by its user's owner (``learn_user``: the user's factors, recent and purchased
items -- state that is partitioned with the user) and yields an ``InteractionUpdate``: the item side
(matrix factorization's item steps, popularity, co-visitation). Updates go into one log; every
``exchange`` every replica applies the log's updates in log order, its own included. So every replica
holds the same item side, and between exchanges each owner scores with an item side that lacks the
updates still pending: the staleness, in interactions. In the job the log would be a Kafka topic
written exactly-once and read back as broadcast state, so an exchange happens once per checkpoint.

Exchanged after every interaction, it recommends what the single recommender does:

>>> from operators.recommender import RecommenderConfig
>>> config = RecommenderConfig(k=3, min_emit_interval_ms=0)
>>> single, sharded = HybridRecommender(config), RecommenderReplicas(config, replicas=2)
>>> for n, (user, item) in enumerate([("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x")]):
...     single.learn_one(user, item, "product_viewed", timestamp=n)
...     update = sharded.learn_one(user, item, "product_viewed", timestamp=n)
...     seconds = sharded.exchange()
>>> [r.item_id for r in sharded.recommend("c", now=10)], [r.item_id for r in single.recommend("c", now=10)]
(['x', 'y'], ['x', 'y'])
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from typing import Any

from operators.recommender import HybridRecommender, RecommenderConfig
from state_schemas.catalog_item import CatalogItem
from state_schemas.model_update import InteractionUpdate
from state_schemas.recommendation import RecommendedItem


def owner_of(user_id: str, replicas: int) -> int:
    """The replica that owns ``user_id`` (a stable hash: the same in every process)."""
    return zlib.crc32(user_id.encode()) % replicas


class RecommenderReplicas:
    def __init__(self, config: RecommenderConfig, replicas: int = 2, read_own_writes: bool = False) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1; got {replicas}")
        self.replicas = [HybridRecommender(config) for _ in range(replicas)]
        # The owner applies its own updates at once (and skips them in the exchange): fresher for its
        # users, but replicas then apply the same updates in different orders and drift apart.
        self.read_own_writes = read_own_writes
        self._log: list[tuple[int, InteractionUpdate]] = []  # (owner, update)

    def owner(self, user_id: str) -> HybridRecommender:
        return self.replicas[owner_of(user_id, len(self.replicas))]

    @property
    def pending(self) -> int:
        """Updates learned but not yet exchanged."""
        return len(self._log)

    def add_catalog_item(self, item: CatalogItem) -> None:
        for replica in self.replicas:  # the catalog topic is read by every replica
            replica.add_catalog_item(item)

    def learn_one(
        self, user_id: str, item_id: str, event_name: str, timestamp: int, category: str | None = None,
        segments: Sequence[str] = (), rating: float | None = None,
    ) -> InteractionUpdate | None:
        """The owner learns the user's side; the item side joins the log (returned; None: no weight)."""
        owner = owner_of(user_id, len(self.replicas))
        replica = self.replicas[owner]
        update = replica.learn_user(user_id, item_id, event_name, timestamp, category, segments, rating)
        if update is not None:
            self._log.append((owner, update))
            if self.read_own_writes:
                replica.apply_update(update)
        return update

    def exchange(self) -> list[float]:
        """Every replica applies the pending updates, in log order; returns each replica's CPU seconds."""
        seconds = []
        for index, replica in enumerate(self.replicas):
            start = time.thread_time()
            for owner, update in self._log:
                if not (self.read_own_writes and owner == index):
                    replica.apply_update(update)
            seconds.append(time.thread_time() - start)
        self._log.clear()
        return seconds

    def recommend(self, user_id: str, **kwargs: Any) -> list[RecommendedItem]:
        return self.owner(user_id).recommend(user_id, **kwargs)
