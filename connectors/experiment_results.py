"""Experiment results in Redis: ``tailor experiments report`` stores each experiment's latest
``tailor.experiment_report/1`` under ``{prefix}experiment:{name}``; ``tailor serve`` answers it at
``GET /v1/experiments/{name}``. The running job keeps each bucket's outcome totals under
``{prefix}experiment-metrics:{name}`` (``state_schemas.experiment_metrics``); :func:`live_outcomes` sums them."""

from __future__ import annotations

import redis

from connectors.redis_clients import RedisAuth
from connectors.redis_keys import RedisKeys
from operators.experiment_outcomes import OutcomeTotals
from settings import Settings
from settings.errors import TailorError
from state_schemas import experiment_metrics
from state_schemas.experiment_metrics import Group, Outcome


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




def live_outcomes(settings: Settings, experiments: list[str]) -> dict[Group, Outcome]:
    """The job's running outcomes of ``experiments`` per (experiment, variant, segment), its buckets summed."""
    keys = RedisKeys(settings.redis_prefix)
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, socket_connect_timeout=5,
                         **RedisAuth.of(settings).options())
    summed = OutcomeTotals()  # each bucket's totals are a delta of the group's
    try:
        for name in experiments:
            for payload in client.hgetall(keys.experiment_metrics(name)).values():
                r = experiment_metrics.decode(payload)
                summed.add([((r["experiment"], r["variant"], r["segment"]),
                             Outcome(r["users"], r["conversions"], r["clicks"], r["bounces"], r["engaged_ms"]))])
    except redis.RedisError as e:
        raise RedisUnavailable(f"cannot read the job's experiment totals from Redis on {settings.redis_host}:"
                               f"{settings.redis_port} ({e})") from None
    finally:
        client.close()
    return summed.totals
