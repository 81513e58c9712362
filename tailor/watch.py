"""Print segment changes as they happen, from the Redis channel the job publishes to."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import orjson
import redis

from tailor.settings import Settings

_ARROWS = {"enter": "+", "exit": "-"}


def format_change(change: dict) -> str:
    """One line per change: when, +/- segment, user, why (and how far behind the event it was emitted).

    >>> print(format_change({"event_time": 0, "emit_time": 12, "change": "enter", "segment": "vip",
    ...     "user_id": "u1", "trigger": "event", "facts": {"purchases_total": 3}}))
    00:00:00.000  + vip                       u1            purchases_total=3  (event, emitted 12 ms after)
    """
    at = datetime.fromtimestamp(change["event_time"] / 1000, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    facts = " ".join(f"{k}={v}" for k, v in change.get("facts", {}).items())
    lag = change["emit_time"] - change["event_time"]
    return (
        f"{at}  {_ARROWS.get(change['change'], '?')} {change['segment']:<25} {change['user_id']:<13} {facts}"
        f"  ({change['trigger']}, emitted {lag} ms after)"
    )


def watch_changes(settings: Settings, duration_s: float = 0, out=print) -> int:
    """Subscribe to ``{prefix}segment-changes`` and print every change; returns how many were seen."""
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{settings.redis_prefix}segment-changes")
    deadline = time.monotonic() + duration_s if duration_s else None
    seen = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is None:
                continue
            out(format_change(orjson.loads(message["data"])))
            seen += 1
    finally:
        pubsub.close()
        client.close()
    return seen
