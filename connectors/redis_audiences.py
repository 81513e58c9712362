"""Redis view of the segmentation output: what downstream services read.

Keys and channels as in :mod:`connectors.redis_keys` (``prefix`` defaults to ``tailor:``).

Consistency and failures. Redis is a cache of what Flink's state decides, not part of its checkpoints,
and it is not transactional: delivery is at-least-once and every write is absolute (HSET of profile
fields, SADD on enter, SREM on exit, SET of recs), so replaying the same commands in the same order
converges to the same keys. Pub/sub subscribers can see a message twice, and late, after an outage.

* Commands are buffered in order in the writer's own buffer (not in a redis-py pipeline, which is reset
  when its execute fails) and sent in one pipeline (no MULTI) once ``max_batch`` commands or
  ``max_delay_ms`` have accumulated, or on :meth:`~RedisAudienceWriter.flush`; a long buffer goes in
  pipelines of at most ``max_pipeline`` commands. A command leaves the buffer only once Redis answered it.
* Redis down or stalled (``ConnectionError``, ``TimeoutError``, ``OSError``; or a server that refuses
  writes for now: OOM, READONLY, MISCONF, BUSY, LOADING): nothing is raised and nothing is dropped. The
  writer keeps the commands, logs one warning per outage, and retries the whole buffer, in order, on the
  first call after an exponential backoff (``backoff_initial_s`` doubling to ``backoff_max_s``, with
  jitter); every attempt against a frozen Redis waits up to ``socket_timeout_s``. The recovery is logged
  with the outage's length and the number of commands replayed.
* The buffer is bounded by ``max_buffered`` commands. When it is full, ``write*`` blocks, retrying with
  backoff until Redis takes the buffer: backpressure (Flink's task thread stops taking records, so the job
  reads Kafka more slowly; nothing is lost). The default is small on purpose, 2,000 commands (a fraction
  of a second of a subtask's output; ~380 B of RSS each while Redis is away): while the task thread is
  blocked, no checkpoint can complete, so what a crash during an outage can lose for good stays as small
  as in normal operation. A larger buffer (~200,000 commands hold a minute of output, ~75 MB) keeps the
  job reading through short outages, at the price of that window: checkpoints complete while it fills.
* A job crash (or cancel) loses only what was buffered and not yet sent. A restart replays the input from
  the last checkpoint and writes everything since again, so what is lost for good is what was buffered
  before that checkpoint and never sent: normally at most ``max_delay_ms`` of writes, during an outage up
  to the whole buffer (checkpoints complete while it fills, not once it blocks). :meth:`~RedisAudienceWriter.close`
  tries a final flush for at most ``close_timeout_s`` and logs how many commands it drops. Flink's state
  still holds the truth: the user's next change rewrites their profile hash and the audience sets of the
  segments it enters or leaves (until then those keys are stale).
* A new connection completes a round trip (``CLIENT SETNAME tailor-writer``) before it carries a batch, so
  the only batch a frozen Redis can run late is the one in flight when it froze, on a connection opened
  before. Redis reads that one first when it resumes, ahead of the replay, which repeats it and goes on
  from there. (A batch held up in the network rather than in a stalled Redis could in principle arrive
  after the replay; the user's next change repairs what it overwrote.) A Redis restarted without
  persistence has lost everything up to the restart; the writer replays only its buffer.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.redis_clients import NO_AUTH, RedisAuth
from connectors.redis_keys import RedisKeys
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import ENTER, SegmentChange

log = logging.getLogger(__name__)

CLIENT_NAME = "tailor-writer"
# Redis is there but refuses writes for now: retried like a connection error. (LOADING arrives as
# BusyLoadingError, a ConnectionError.) Any other error reply is a bug and is raised.
_REFUSING = ("OOM", "READONLY", "MISCONF", "BUSY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN")
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


class _Refused(Exception):
    """An error reply that means "not now" (see ``_REFUSING``), raised inside one send attempt."""


class RedisAudienceWriter:
    """Buffered, retrying writer of the job's Redis view (see the module docstring).

    Counters, plain ints for the caller to report (not Flink gauges: a JVM metrics thread calling into
    Python crashes the TaskManager on cancel): ``flush_failures`` (attempts that failed),
    ``commands_replayed`` (commands delivered by a flush after a failure), ``blocked_ms`` (time ``write*``
    spent blocked on a full buffer); ``pending`` is the current buffered size.
    """

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str = "tailor:",
        max_batch: int = 500,
        max_delay_ms: int = 20,
        *,
        max_buffered: int = 2_000,
        max_pipeline: int = 10_000,
        socket_timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 5.0,
        close_timeout_s: float = 5.0,
        auth: RedisAuth = NO_AUTH,
    ) -> None:
        if min(max_batch, max_buffered, max_pipeline) < 1:
            raise ValueError("max_batch, max_buffered and max_pipeline must be positive")
        self.keys = RedisKeys(prefix)
        self.host, self.port = host, port
        self.max_batch = max_batch
        self.max_delay_ms = max_delay_ms
        self.max_buffered = max_buffered
        self.max_pipeline = max_pipeline
        self.socket_timeout_s = socket_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.close_timeout_s = close_timeout_s
        self.auth = auth
        self._client = self._new_client(socket_timeout_s)
        self._changes_channel = self.keys.changes_channel
        self._recommendations_channel = self.keys.recommendations_channel
        # Commands as argument tuples, oldest first; a command leaves only once Redis has answered it.
        self._buffer: list[tuple[Any, ...]] = []
        self._oldest_ms = 0.0
        # Retry state: no attempt before _retry_at (monotonic s); _down_since is None while Redis answers.
        self._backoff_s = backoff_initial_s
        self._retry_at = 0.0
        self._down_since: float | None = None
        self._outage_failures = 0
        self._outage_replayed = 0
        self._full_logged = False
        self.flush_failures = 0
        self.commands_replayed = 0
        self.blocked_ms = 0

    @property
    def pending(self) -> int:
        """Commands buffered and not yet answered by Redis."""
        return len(self._buffer)

    @property
    def available(self) -> bool:
        """False from a failed flush until the next successful one."""
        return self._down_since is None

    @property
    def retry_in_ms(self) -> int:
        """How long until the next flush attempt is allowed (0: now)."""
        return max(0, int((self._retry_at - time.monotonic()) * 1000))

    def write(
        self, user_id: str, state: ProfileState, changes: Iterable[SegmentChange], encoded: Iterable[bytes]
    ) -> None:
        """Queue the profile snapshot and the audience updates for one user's changes."""
        self._start_batch()
        changes = list(changes)
        self._buffer.append((
            "HSET", self.keys.profile(user_id),
            "segments", ",".join(state.segments),
            "last_seen", state.last_seen,
            "sessions_total", state.sessions_total,
            "purchases_total", state.purchases_total,
            "updated_at", changes[-1].event_time if changes else 0,
        ))
        self._queue_changes(user_id, changes, encoded)
        self._after_write()

    def write_cluster_changes(
        self, user_id: str, cluster: str | None, changes: Iterable[SegmentChange], encoded: Iterable[bytes]
    ) -> None:
        """Queue ML segment (cluster) changes: audience sets, pub/sub, and the profile's ``cluster`` field."""
        self._start_batch()
        self._buffer.append(("HSET", self.keys.profile(user_id), "cluster", cluster or ""))
        self._queue_changes(user_id, changes, encoded)
        self._after_write()

    def forget(self, user_id: str, changes: Iterable[SegmentChange], encoded: Iterable[bytes]) -> None:
        """Queue the exits of a forgotten user (consent withdrawn), then delete their profile and list."""
        self._start_batch()
        self._buffer.append(("DEL", self.keys.profile(user_id)))
        self._buffer.append(("DEL", self.keys.recommendations(user_id)))
        self._queue_changes(user_id, changes, encoded)
        self._after_write()

    def write_recommendations(self, user_id: str, payload: bytes) -> None:
        """Queue a user's new top-K (the whole tailor.recommendation/2 record replaces the old one)."""
        self._start_batch()
        if self._down_since is not None:
            payload = _compact(payload)
        self._buffer.append(("SET", self.keys.recommendations(user_id), payload))
        self._buffer.append(("PUBLISH", self._recommendations_channel, payload))
        self._after_write()

    def write_popular(self, payload: bytes) -> None:
        """Queue the new list of items trending overall (tailor.popular_items/1), replacing the old one."""
        self._start_batch()
        self._buffer.append(("SET", self.keys.popular, payload))
        self._after_write()

    def write_experiment_totals(self, experiment: str, field: str, payload: bytes) -> None:
        """Queue one bucket's absolute totals of a (variant, segment) (tailor.experiment_metrics/1)."""
        self._start_batch()
        self._buffer.append(("HSET", self.keys.experiment_metrics(experiment), field, payload))
        self._after_write()

    def _start_batch(self) -> None:
        if not self._buffer:
            self._oldest_ms = time.monotonic() * 1000

    def _queue_changes(self, user_id: str, changes: Iterable[SegmentChange], encoded: Iterable[bytes]) -> None:
        """SADD/SREM + publish per change, queued after the profile they change: a subscriber that reads
        the profile on a message sees the state after it."""
        append = self._buffer.append
        compact = self._down_since is not None
        for change, payload in zip(changes, encoded, strict=True):
            append(("SADD" if change.change == ENTER else "SREM", self.keys.segment(change.segment), user_id))
            append(("PUBLISH", self._changes_channel, _compact(payload) if compact else payload))

    def _after_write(self) -> None:
        buffered = len(self._buffer)
        if buffered >= self.max_batch or time.monotonic() * 1000 - self._oldest_ms >= self.max_delay_ms:
            self.flush()
        if len(self._buffer) >= self.max_buffered:
            self._wait_for_room()

    def flush(self) -> None:
        """Send the buffer now, unless backing off after a failure: then the first call after the backoff
        does. Never raises for an unavailable Redis; raises ``redis.ResponseError`` if Redis rejected a
        command for good (a bug: the batch it was in has been applied otherwise and is not retried)."""
        if self._buffer and time.monotonic() >= self._retry_at:
            self._send()

    def _wait_for_room(self) -> None:
        """Backpressure: hold the caller until Redis has taken the buffer."""
        started = time.monotonic()
        if not self._full_logged:
            self._full_logged = True
            log.warning(
                "Redis at %s:%s: write buffer full (%d commands); blocking writes until Redis answers",
                self.host, self.port, len(self._buffer),
            )
        while len(self._buffer) >= self.max_buffered:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._send()
        self.blocked_ms += int((time.monotonic() - started) * 1000)

    def _send(self, deadline: float | None = None) -> bool:
        """One attempt to deliver the buffer, oldest first, in pipelines of at most ``max_pipeline``
        commands. True if the buffer is empty afterwards."""
        buffer = self._buffer
        while buffer:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            chunk = buffer[: self.max_pipeline]
            pipe = self._client.pipeline(transaction=False)
            for args in chunk:
                pipe.execute_command(*args)
            try:
                replies = pipe.execute(raise_on_error=False)
                rejected = self._rejected(replies)
            except (*_UNAVAILABLE, _Refused) as exc:
                self._failed(exc)
                return False
            del buffer[: len(chunk)]
            self._backoff_s = self.backoff_initial_s
            if self._down_since is not None:
                self._outage_replayed += len(chunk)
                self.commands_replayed += len(chunk)
            if rejected is not None:
                index, error = rejected
                raise redis.ResponseError(f"Redis rejected {_describe(chunk[index])}: {error}") from error
        self._recovered()
        return True

    @staticmethod
    def _rejected(replies: list[Any]) -> tuple[int, redis.ResponseError] | None:
        """The first error reply, if any; raises ``_Refused`` if Redis is only refusing writes for now."""
        first = None
        for index, reply in enumerate(replies):
            if isinstance(reply, redis.ResponseError):
                if isinstance(reply, redis.exceptions.OutOfMemoryError | redis.exceptions.ReadOnlyError) or (
                    str(reply).startswith(_REFUSING)
                ):
                    raise _Refused(f"{type(reply).__name__}: {reply}")
                first = first or (index, reply)
        return first

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.flush_failures += 1
        self._outage_failures += 1
        self._retry_at = now + self._backoff_s * random.uniform(0.5, 1.0)
        self._backoff_s = min(self._backoff_s * 2, self.backoff_max_s)
        if self._down_since is None:
            self._down_since = now
            # From now on the buffer may grow: keep it compact (see _compact).
            self._buffer[:] = [tuple(_compact(a) if type(a) is bytes else a for a in args) for args in self._buffer]
            log.warning(
                "Redis at %s:%s unavailable (%s: %s): keeping %d buffered commands (at most %d before writes "
                "block), retrying with backoff up to %.1f s",
                self.host, self.port, type(exc).__name__, exc, len(self._buffer), self.max_buffered,
                self.backoff_max_s,
            )

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.info(
                "Redis at %s:%s available again after %.1f s (%d failed attempts); replayed %d commands",
                self.host, self.port, time.monotonic() - self._down_since, self._outage_failures,
                self._outage_replayed,
            )
        self._down_since = None
        self._outage_failures = self._outage_replayed = 0
        self._full_logged = False
        self._retry_at = 0.0

    def close(self) -> None:
        """Final flush, for at most about ``close_timeout_s`` whatever Redis does; then drop the rest
        (logged: Flink's state rewrites those keys at each user's next change) and disconnect."""
        deadline = time.monotonic() + self.close_timeout_s
        try:
            while self._buffer and time.monotonic() < deadline:
                # Backing off, but at most 250 ms between attempts here: there is little time left.
                time.sleep(max(0.0, min(self._retry_at, time.monotonic() + 0.25, deadline) - time.monotonic()))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if remaining < self.socket_timeout_s:  # no socket wait may outlast the deadline
                    self._client.close()
                    self._client = self._new_client(remaining)
                self._send(deadline)
        finally:
            if self._buffer:
                log.warning(
                    "Redis at %s:%s unavailable at close: dropped %d buffered commands (those keys stay stale "
                    "until each user's next change rewrites them)",
                    self.host, self.port, len(self._buffer),
                )
                self._buffer.clear()
            self._client.close()

    def _new_client(self, socket_timeout_s: float) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=self.port,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=min(self.connect_timeout_s, socket_timeout_s),
            client_name=CLIENT_NAME,  # the handshake round trip described in the module docstring
            # Retries are ours: in order, with backoff (redis-py 6 would retry by itself by default).
            retry=Retry(NoBackoff(), 0),
            **self.auth.options(),
        )


def _compact(payload: bytes) -> bytes:
    """An exact-size copy: orjson returns its payloads in 4 KiB allocations (measured: 4.1 kB of RSS for a
    360-byte change record), which would make a full buffer ten times its size."""
    return bytes(memoryview(payload))


def _describe(args: tuple[Any, ...]) -> str:
    return " ".join(str(a) for a in args[:2])
