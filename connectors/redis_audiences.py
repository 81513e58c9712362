"""Redis view of the segmentation output: what downstream services read.

Keys and channels as in :mod:`connectors.redis_keys` (``prefix`` defaults to ``tailor:``).

Every write is absolute (HSET of profile fields, SADD on enter, SREM on exit, SET of recs), so replaying the same
changes after a failure converges to the same keys. Redis is not transactional with Flink checkpoints:
commands are buffered for at most ``max_delay_ms`` and sent in one pipeline. If the job fails, changes
made after the last checkpoint are recomputed on restart and written again; up to ``max_delay_ms`` of
buffered writes made before that checkpoint can be lost until the user's next change rewrites them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from connectors.redis_keys import RedisKeys
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import ENTER, SegmentChange


class RedisAudienceWriter:
    def __init__(
        self, host: str, port: int, prefix: str = "tailor:", max_batch: int = 500, max_delay_ms: int = 20
    ) -> None:
        self.keys = RedisKeys(prefix)
        self.max_batch = max_batch
        self.max_delay_ms = max_delay_ms
        self._client = redis.Redis(host=host, port=port, socket_timeout=10, socket_connect_timeout=5)
        self._pipe = self._client.pipeline(transaction=False)
        self._pending = 0
        self._oldest_ms = 0.0

    @property
    def pending(self) -> int:
        return self._pending

    def write(
        self, user_id: str, state: ProfileState, changes: Iterable[SegmentChange], encoded: Iterable[bytes]
    ) -> None:
        """Queue the audience updates and the profile snapshot for one user's changes."""
        pipe = self._pipe
        self._start_batch()
        last_time = self._queue_changes(user_id, changes, encoded)
        pipe.hset(
            self.keys.profile(user_id),
            mapping={
                "segments": ",".join(state.segments),
                "last_seen": state.last_seen,
                "sessions_total": state.sessions_total,
                "purchases_total": state.purchases_total,
                "updated_at": last_time,
            },
        )
        self._pending += 1
        self._flush_if_due()

    def write_cluster_changes(
        self, user_id: str, cluster: str | None, changes: Iterable[SegmentChange], encoded: Iterable[bytes]
    ) -> None:
        """Queue ML segment (cluster) changes: audience sets, pub/sub, and the profile's ``cluster`` field."""
        self._start_batch()
        self._queue_changes(user_id, changes, encoded)
        self._pipe.hset(self.keys.profile(user_id), "cluster", cluster or "")
        self._pending += 1
        self._flush_if_due()

    def write_recommendations(self, user_id: str, payload: bytes) -> None:
        """Queue a user's new top-K (the whole tailor.recommendation/1 record replaces the old one)."""
        self._start_batch()
        self._pipe.set(self.keys.recommendations(user_id), payload)
        self._pipe.publish(self.keys.recommendations_channel, payload)
        self._pending += 2
        self._flush_if_due()

    def _start_batch(self) -> None:
        if self._pending == 0:
            self._oldest_ms = time.monotonic() * 1000

    def _queue_changes(self, user_id: str, changes: Iterable[SegmentChange], encoded: Iterable[bytes]) -> int:
        """SADD/SREM + publish per change; returns the event time of the last one."""
        last_time = 0
        for change, payload in zip(changes, encoded, strict=True):
            key = self.keys.segment(change.segment)
            if change.change == ENTER:
                self._pipe.sadd(key, user_id)
            else:
                self._pipe.srem(key, user_id)
            self._pipe.publish(self.keys.changes_channel, payload)
            last_time = change.event_time
            self._pending += 2
        return last_time

    def _flush_if_due(self) -> None:
        if self._pending >= self.max_batch or time.monotonic() * 1000 - self._oldest_ms >= self.max_delay_ms:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._pipe.execute()
            self._pending = 0

    def close(self) -> None:
        self.flush()
        self._client.close()
