"""Experiment results in Redis: ``tailor experiments report`` stores each experiment's latest
``tailor.experiment_report/1`` under ``{prefix}experiment:{name}``; ``tailor serve`` answers it at
``GET /v1/experiments/{name}``."""

from __future__ import annotations

import redis

from connectors.redis_clients import RedisAuth
from connectors.redis_keys import RedisKeys
from settings import Settings
from settings.errors import TailorError


class RedisUnavailable(TailorError):
    """Redis cannot be reached."""


def store(settings: Settings, experiment: str, payload: bytes) -> str:
    """Write the report; returns the key. Raises :class:`RedisUnavailable` with what to do."""
    key = RedisKeys(settings.redis_prefix).experiment(experiment)
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, socket_connect_timeout=5,
                         **RedisAuth.of(settings).options())
    try:
        client.set(key, payload)
    except redis.RedisError as e:
        raise RedisUnavailable(f"cannot write {key} to Redis on {settings.redis_host}:{settings.redis_port} ({e}): "
                               "start the local stack (bin/tailor stack up)") from None
    finally:
        client.close()
    return key


