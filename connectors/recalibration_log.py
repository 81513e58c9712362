"""The recalibration log in Redis: ``tailor recalibrate`` pushes each run's entry (before and after figures,
the JSON line it also appends to ``evaluation-results/recalibrations.jsonl``) to the list
``{prefix}recalibrations``, newest first, the last ``KEEP`` kept; ``tailor serve``'s dashboard shows them."""

from __future__ import annotations

from typing import Final

import redis

from connectors.redis_clients import RedisAuth
from connectors.redis_keys import RedisKeys
from settings import Settings
from settings.errors import TailorError

KEEP: Final = 50


class RecalibrationLogUnavailable(TailorError):
    """Redis cannot be reached to keep the entry."""


def append(settings: Settings, entry: bytes) -> str:
    """Push ``entry`` (a ``tailor.recalibration/1`` record); returns the key. Raises
    :class:`RecalibrationLogUnavailable` saying what to do."""
    key = RedisKeys(settings.redis_prefix).recalibrations
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, socket_connect_timeout=5,
                         **RedisAuth.of(settings).options())
    try:
        client.pipeline(transaction=True).lpush(key, entry).ltrim(key, 0, KEEP - 1).execute()
    except redis.RedisError as e:
        raise RecalibrationLogUnavailable(
            f"cannot push to {key} in Redis on {settings.redis_host}:{settings.redis_port} ({e})") from None
    finally:
        client.close()
    return key
