"""The job's live channels, followed by ``tailor serve``.

Every segment change and every new top-K the job publishes (``connectors.redis_keys``) names a user.
For each one the follower

* calls ``on_user(user_id)``, which drops that user's cached profile and recommendations, so the next
  request reads Redis and sees the change at once rather than after the cache's TTL;
* pushes the message to that user's open listeners: the ``GET /v1/users/{id}/changes`` server-sent
  event streams, on which the snippet re-decides its slots.

Redis pub/sub keeps nothing, so messages published while the follower is disconnected are lost: after
every (re)subscription ``on_resubscribe`` is called (the serving API clears its caches). The follower
reconnects with a capped backoff and never stops the API.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Final

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from connectors.redis_clients import NO_AUTH, RedisAuth
from connectors.redis_keys import RedisKeys

log = logging.getLogger(__name__)

SEGMENT_CHANGE: Final = "segment_change"
RECOMMENDATION: Final = "recommendation"
LISTENER_QUEUE = 64  # messages a slow listener may lag behind; beyond it the oldest unread are dropped
BACKOFF_INITIAL_S, BACKOFF_MAX_S = 0.1, 5.0


class TooManyListeners(Exception):
    """The process holds ``max_listeners`` open streams already."""


class LiveUpdates:
    def __init__(
        self, host: str, port: int, prefix: str, on_user: Callable[[str], None],
        on_resubscribe: Callable[[], None], max_listeners: int = 10_000, auth: RedisAuth = NO_AUTH,
    ) -> None:
        keys = RedisKeys(prefix)
        self.kinds = {keys.changes_channel.encode(): SEGMENT_CHANGE,
                      keys.recommendations_channel.encode(): RECOMMENDATION}
        # Its own connection without a read timeout: a subscription is quiet for as long as nobody changes.
        self.client = aioredis.Redis(host=host, port=port, socket_connect_timeout=1.0, health_check_interval=30,
                                     **auth.options())
        self.on_user, self.on_resubscribe = on_user, on_resubscribe
        self.max_listeners = max_listeners
        self.listeners: defaultdict[str, set[asyncio.Queue[tuple[str, bytes]]]] = defaultdict(set)
        self.open_listeners = 0
        self.subscribed = False
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        """Follow the channels until cancelled."""
        backoff = BACKOFF_INITIAL_S
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self.kinds)
                self.subscribed, backoff = True, BACKOFF_INITIAL_S
                self.counts["subscriptions"] += 1
                self.on_resubscribe()
                async for message in pubsub.listen():
                    self.dispatch(message["channel"], message["data"])
            except (RedisError, OSError) as e:
                self.counts["disconnects"] += 1
                log.warning("live updates: Redis subscription lost (%s); retrying in %.1f s", e, backoff)
            finally:
                self.subscribed = False
                await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def dispatch(self, channel: bytes, payload: bytes) -> None:
        """One published message: invalidate its user, wake their listeners."""
        kind = self.kinds.get(channel)
        try:
            user_id = orjson.loads(payload)["user_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["unreadable"] += 1
            return
        if kind is None or not isinstance(user_id, str):
            self.counts["unreadable"] += 1
            return
        self.counts[kind] += 1
        self.on_user(user_id)
        for queue in self.listeners.get(user_id, ()):
            if queue.full():
                queue.get_nowait()  # a listener that does not read keeps only the newest messages
                self.counts["listener_overflow"] += 1
            queue.put_nowait((kind, payload))

    def listen(self, user_id: str) -> asyncio.Queue[tuple[str, bytes]]:
        """A queue of ``(kind, JSON payload)`` for this user's messages; give it back with ``unlisten``."""
        if self.open_listeners >= self.max_listeners:
            raise TooManyListeners(f"{self.open_listeners} live streams are open (max_listeners)")
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(LISTENER_QUEUE)
        self.listeners[user_id].add(queue)
        self.open_listeners += 1
        return queue

    def unlisten(self, user_id: str, queue: asyncio.Queue[tuple[str, bytes]]) -> None:
        queues = self.listeners.get(user_id)
        if queues is not None and queue in queues:
            queues.discard(queue)
            self.open_listeners -= 1
            if not queues:
                del self.listeners[user_id]

    async def close(self) -> None:
        await self.client.aclose()
