"""Read what the job wrote to Redis (names in :mod:`connectors.redis_keys`): audiences, profiles and
latest recommendations (:class:`RedisReader`); the live change and recommendation channels
(:class:`Subscription`).

The one write is :meth:`RedisReader.delete_all`, which drops a whole namespace (the demo's reset, a bench
run's cleanup): the job's writer never deletes, so that belongs with the tools that look at one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import redis

from connectors.redis_clients import NO_AUTH, RedisAuth
from connectors.redis_keys import RedisKeys
from settings.errors import TailorError

#: What a :class:`Subscription` message came on.
CHANGES = "changes"
RECOMMENDATIONS = "recommendations"


class RedisUnavailable(TailorError):
    """Redis cannot be reached."""


@contextmanager
def _reachable(host: str, port: int) -> Iterator[None]:
    try:
        yield
    except redis.ConnectionError as exc:
        raise RedisUnavailable(f"cannot reach Redis on {host}:{port} ({exc})") from None


class RedisReader:
    """One connection to the Redis the job writes to, reading under ``prefix``."""

    def __init__(self, host: str, port: int, prefix: str = "tailor:", auth: RedisAuth = NO_AUTH) -> None:
        self.host, self.port = host, port
        self.keys = RedisKeys(prefix)
        self._client = redis.Redis(host=host, port=port, decode_responses=True, socket_connect_timeout=5,
                                   **auth.options())

    def profile(self, user_id: str) -> dict[str, str]:
        """The profile hash as stored; empty if the job has not written one."""
        with _reachable(self.host, self.port):
            return self._client.hgetall(self.keys.profile(user_id))

    def recommendations(self, user_id: str) -> dict[str, Any] | None:
        """The user's latest ``tailor.recommendation/2``, decoded; None if there is none yet."""
        with _reachable(self.host, self.port):
            raw = self._client.get(self.keys.recommendations(user_id))
        return None if raw is None else orjson.loads(raw)

    def audience(self, segment: str) -> set[str]:
        """The user ids in ``segment`` now."""
        with _reachable(self.host, self.port):
            return self._client.smembers(self.keys.segment(segment))

    def segments(self) -> list[str]:
        """Every segment with an audience set (Redis drops a set when its last member leaves)."""
        return [self.keys.segment_name(k) for k in self.segment_keys()]

    def audience_sizes(self, segments: Iterable[str] | None = None) -> dict[str, int]:
        """Users in each of ``segments`` (0 for one without a set), else in every segment there is."""
        names = self.segments() if segments is None else list(segments)
        with _reachable(self.host, self.port):
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.scard(self.keys.segment(name))
            return dict(zip(names, pipe.execute(), strict=True))

    def users_with_recommendations(self) -> int:
        with _reachable(self.host, self.port):
            found = self._client.scan_iter(match=self.keys.recommendations_pattern, count=1_000)
            return sum(1 for _ in found)

    def profile_keys(self) -> list[str]:
        with _reachable(self.host, self.port):
            return list(self._client.scan_iter(match=self.keys.profiles_pattern, count=5_000))

    def segment_keys(self) -> list[str]:
        with _reachable(self.host, self.port):
            return list(self._client.scan_iter(match=self.keys.segments_pattern, count=1_000))

    def memory_usage(self, keys: Iterable[str]) -> list[int]:
        """``MEMORY USAGE`` of each key (name and overhead included, values not sampled); 0 if gone."""
        with _reachable(self.host, self.port):
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key, samples=0)
            return [b or 0 for b in pipe.execute()]

    def delete_all(self) -> int:
        """Remove every key under the prefix; returns how many."""
        deleted, batch = 0, []
        with _reachable(self.host, self.port):
            for key in self._client.scan_iter(match=self.keys.everything_pattern, count=5_000):
                batch.append(key)
                if len(batch) >= 1_000:
                    deleted += self._client.unlink(*batch)
                    batch = []
            if batch:
                deleted += self._client.unlink(*batch)
        return deleted

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RedisReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscription:
    """The job's pub/sub channels under ``prefix``, subscribed when this returns. :meth:`get` gives
    ``(channel, JSON bytes)``: :data:`CHANGES` (rule and ML segment changes) or :data:`RECOMMENDATIONS`.

    Redis pub/sub keeps nothing: a message published before the subscription is confirmed is lost, so
    the constructor waits for the confirmations (up to ``confirm_s``).
    """

    def __init__(
        self, host: str, port: int, prefix: str = "tailor:",
        changes: bool = True, recommendations: bool = True, confirm_s: float = 5.0, auth: RedisAuth = NO_AUTH,
    ) -> None:
        self.host, self.port = host, port
        keys = RedisKeys(prefix)
        self._channels = {keys.changes_channel: CHANGES} if changes else {}
        if recommendations:
            self._channels[keys.recommendations_channel] = RECOMMENDATIONS
        if not self._channels:
            raise ValueError("subscribe to changes, recommendations or both")
        self._client = redis.Redis(host=host, port=port, socket_connect_timeout=5, **auth.options())
        self._pubsub = self._client.pubsub()
        self._early: deque[tuple[str, bytes]] = deque()  # arrived while later channels were confirming
        try:
            with _reachable(host, port):
                self._pubsub.subscribe(*self._channels)
                self._confirm(confirm_s)
        except BaseException:
            self.close()
            raise

    def _confirm(self, timeout_s: float) -> None:
        confirmed, deadline = 0, time.monotonic() + timeout_s
        while confirmed < len(self._channels) and (left := deadline - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=left)
            if message is None:
                continue
            if message["type"] == "subscribe":
                confirmed += 1
            elif message["type"] == "message":
                self._early.append(self._pair(message))

    def get(self, timeout_s: float) -> tuple[str, bytes] | None:
        """The next message; None if none came within ``timeout_s``."""
        if self._early:
            return self._early.popleft()
        with _reachable(self.host, self.port):
            message = self._pubsub.get_message(timeout=timeout_s)
        return self._pair(message) if message is not None and message["type"] == "message" else None

    def _pair(self, message: dict[str, Any]) -> tuple[str, bytes]:
        return self._channels[message["channel"].decode()], message["data"]

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
