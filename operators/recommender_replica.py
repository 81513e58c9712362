"""One subtask's recommender in the sharded job: its users' side learned here, the item side exchanged.

The job runs one ``RecommenderReplica`` per subtask of its recommendations operator, keyed by the rule
operator's buckets (``pipelines.replica_functions``). ``learn_one`` learns a model input of a user this
replica owns -- the user's factors, recent and purchased items (``HybridRecommender.learn_user``) and the
item side of the interaction -- and scores the user's list. The item side also leaves: ``take_exchange``
hands it out as ``tailor.model_updates/1`` records for the model-updates topic, and every other replica
learns it when the record comes back (``apply_exchange``), in the topic's order; the writer knows its
records by their ids and skips them (it applied its own updates at once: ``operators.model_updates``
measured that a replica blind to its own users' updates until they come back loses RMSE 0.94 -> 0.98 on
MovieLens, and with them at once 0.9400). So a replica's item side lacks only the others' updates of the
last checkpoint interval or so (the topic is written exactly-once): the staleness.

Replicas therefore apply the same updates in different orders and their item sides differ in the last
bits; each is a valid model, and Flink gives a rescaled subtask one old subtask's broadcast state whole.

Persistence follows Flink's two kinds of state: ``take_user_changes(bucket)`` gives the payloads of the
bucket's users that changed (keyed state, one map per bucket; a user evicted while another bucket ran
is deleted the next time theirs runs), ``take_item_changes`` the item payloads and the globals
(broadcast state), and the globals include the ids of the records written but not back yet. So a restored
replica skips exactly the records its restored item side holds, and learns the ones written after its
broadcast state was last saved: nothing twice, nothing lost. ``load_bucket`` and ``restore_items`` read
them back.

>>> from operators.recommender import RecommenderConfig
>>> from state_schemas.model_input import ModelInput
>>> config = RecommenderConfig(k=3, min_emit_interval_ms=0)
>>> one, two = RecommenderReplica(config, writer_id="one"), RecommenderReplica(config, writer_id="two")
>>> view = lambda user, item, ts: ModelInput(user, item, "product_viewed", ts, None, (), (), None)
>>> [r.item_id for r in one.learn_one(view("u1", "x", 1), bucket=0)]   # its own recent items
['x']
>>> [(r.item_id, r.source) for r in one.learn_one(view("u2", "y", 2), bucket=1)]   # x trends here already
[('y', 'content'), ('x', 'popular')]
>>> records = one.take_exchange(emit_time=10)
>>> [two.apply_exchange(r) for r in records], [one.apply_exchange(r) for r in records]   # the writer skips
([2], [0])
>>> [(r.item_id, r.source) for r in two.learn_one(view("u3", "z", 3), bucket=2)]   # x, y trend on two now
[('z', 'content'), ('y', 'popular'), ('x', 'popular')]
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from operators.recommender import HybridRecommender, RecommenderConfig
from state_schemas.catalog_item import CatalogItem
from state_schemas.model_input import FORGOTTEN, RETUNE, ModelInput
from state_schemas.model_update import (
    Exchange,
    InteractionUpdate,
    decode_exchange,
    decode_replica_globals,
    encode_exchange,
    encode_replica_globals,
)
from state_schemas.popular_items import PopularItems
from state_schemas.recommendation import RecommendedItem

# Updates per topic record: ~540 bytes each (implicit feedback), so a record stays near 100 KB, far
# below Kafka's 1 MB default limit whatever the batch size.
UPDATES_PER_RECORD = 200


class RecommenderReplica:
    def __init__(
        self, config: RecommenderConfig, writer_id: str | None = None, updates_per_record: int = UPDATES_PER_RECORD,
    ) -> None:
        self.recommender = HybridRecommender(config)
        self.updates_per_record = updates_per_record
        # Unique per replica and start: a restored or rescaled replica never takes another's records for its own
        self.writer_id = writer_id or uuid.uuid4().hex[:12]
        self._written = 0
        self._unreturned: set[str] = set()  # ids of the records written whose updates are applied here
        self._outgoing: list[InteractionUpdate] = []
        self._retune: list[Any] | None = None  # [applied_at, settings] to send with the next record
        self._bucket_of: dict[str, int] = {}  # users held, to delete an evicted one from its bucket's state
        self._evicted: dict[int, set[str]] = {}  # bucket -> users to delete from its state
        self._dirty_users: set[str] = set()
        self._dirty_items: set[str] = set()
        self._evicted_items: set[str] = set()
        self.last_emit_time: int | None = None  # of the last record applied: how stale the item side is
        self.latest_event_time = 0  # of the updates applied since start or restore

    @property
    def model_version(self) -> str:
        return self.recommender.model_version

    @property
    def pending(self) -> int:
        """Updates learned here and not yet handed out."""
        return len(self._outgoing)

    @property
    def deletes_pending(self) -> set[str]:
        """Users evicted here whose bucket's state still holds them (deleted when the bucket runs next)."""
        return {user for users in self._evicted.values() for user in users}

    # -- the user side (keyed by bucket) -----------------------------------------------------------
    def learn_one(self, m: ModelInput, bucket: int) -> list[RecommendedItem] | None:
        """Test-then-learn one model input of a user in ``bucket``; returns the user's new list, if due and
        changed. Consent withdrawn, erasure, merge: the user's state is dropped (None)."""
        if m.event_name in FORGOTTEN:
            self.recommender.forget_user(m.user_id)
            self._take_recommender_changes()
            return None
        if m.event_name == RETUNE:  # every bucket sends its copy: the exchange applies the newest once
            settings = [m.timestamp, orjson.loads(m.item_id or "{}")]
            self.recommender.config.with_live_settings(settings[1])  # unusable: raises here, not in the exchange
            if self._retune is None or settings[0] > self._retune[0]:
                self._retune = settings
            return None
        self._bucket_of[m.user_id] = bucket
        if m.item_id is not None:
            update = self.recommender.learn_user(
                m.user_id, m.item_id, m.event_name, m.timestamp, m.category, m.segments
            )
            if update is not None:
                self.recommender.apply_update(update)
                self._outgoing.append(update)
        return self.recommender.recommend_if_due(m.user_id, now=m.timestamp, segments=m.segments)

    def take_exchange(self, emit_time: int) -> list[bytes]:
        """The queued updates as model-updates records, at most ``updates_per_record`` each (none queued: [])."""
        updates, self._outgoing = self._outgoing, []
        retune, self._retune = self._retune, None
        records = [
            encode_exchange(Exchange(self._record_id(), emit_time, updates[start:start + self.updates_per_record]))
            for start in range(0, len(updates), self.updates_per_record)
        ]
        if retune is not None:
            records.append(encode_exchange(Exchange(self._record_id(), emit_time, [], retune)))
        return records

    def _record_id(self) -> str:
        self._written += 1
        record_id = f"{self.writer_id}:{self._written}"
        self._unreturned.add(record_id)
        return record_id

    def take_user_changes(self, bucket: int) -> dict[str, str | None]:
        """Payloads of ``bucket``'s users changed since the last call (None = delete from its state)."""
        self._take_recommender_changes()
        changes: dict[str, str | None] = dict.fromkeys(self._evicted.pop(bucket, ()))
        mine = {u for u in self._dirty_users if self._bucket_of.get(u) == bucket}
        self._dirty_users -= mine
        for user in mine:
            if user in self.recommender.users:
                changes[user] = self.recommender.export_user(user)
        return changes

    def load_bucket(self, users: Iterable[tuple[str, str]], bucket: int) -> None:
        """A bucket's users as ``take_user_changes`` gave them (a restore, or the bucket moved here)."""
        for user, payload in users:
            self.recommender.import_user(user, payload)
            self._bucket_of[user] = bucket
        self.recommender.take_dirty()

    # -- the item side (broadcast) ---------------------------------------------------------------
    def apply_exchange(self, payload: str | bytes) -> int:
        """Learn one model-updates record (skipped if this replica wrote it); returns the updates applied."""
        exchange = decode_exchange(payload)
        self.last_emit_time = exchange.emit_time
        if exchange.retune is not None:  # the writer too: every replica puts settings in force here
            applied_at, settings = exchange.retune
            self.recommender.retune(settings, applied_at)
        for update in exchange.updates:
            self.latest_event_time = max(self.latest_event_time, update.timestamp)
        if exchange.record_id in self._unreturned:
            self._unreturned.discard(exchange.record_id)
            return 0
        for update in exchange.updates:
            self.recommender.apply_update(update)
        self._take_recommender_changes()
        return len(exchange.updates)

    def popular(self, k: int) -> PopularItems:
        """The ``k`` items trending overall (the same on every replica: they are item side)."""
        return PopularItems(tuple(self.recommender.popular(k)), self.model_version, self.latest_event_time)

    def add_catalog_item(self, item: CatalogItem) -> None:
        self.recommender.add_catalog_item(item)
        self._take_recommender_changes()

    def take_item_changes(self) -> tuple[dict[str, str | None], str]:
        """Item payloads changed since the last call (None = delete), and the globals payload (with the ids
        of the records written and not back yet: their updates are in these items)."""
        self._take_recommender_changes()
        items: dict[str, str | None] = {i: self.recommender.export_item(i) for i in self._dirty_items}
        items.update(dict.fromkeys(self._evicted_items))
        self._dirty_items, self._evicted_items = set(), set()
        return items, encode_replica_globals(self.recommender.export_globals(), self._unreturned)

    def restore_items(self, globals_: str | None, items: Iterable[tuple[str, str]]) -> None:
        """The item side as ``take_item_changes`` gave it."""
        if globals_ is not None:
            recommender_globals, self._unreturned = decode_replica_globals(globals_)
            self.recommender.import_globals(recommender_globals)
        for item, payload in items:
            self.recommender.import_item(item, payload)
        self.recommender.take_dirty()

    def _take_recommender_changes(self) -> None:
        users, items = self.recommender.take_dirty()
        evicted_users, evicted_items = self.recommender.take_evicted()
        self._dirty_users |= users
        self._dirty_items = (self._dirty_items | items) - evicted_items
        self._evicted_items |= evicted_items
        self._evicted_items -= items
        for user in evicted_users:
            bucket = self._bucket_of.pop(user, None)
            self._dirty_users.discard(user)
            if bucket is not None:
                self._evicted.setdefault(bucket, set()).add(user)
