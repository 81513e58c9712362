"""Experiment outcomes from the running job (embedded Flink, unbounded) on the real Kafka and Redis: the
totals reach Redis within seconds of the events (each bucket sends its changed totals at most once a
second), and after SIGKILL and the same command the restored totals are sent again, unchanged."""

from __future__ import annotations

import time

import pytest

from connectors.experiment_results import live_outcomes
from connectors.redis_keys import RedisKeys
from tests.faults.harness import JobProcess
from tests.integration.harness import isolated_settings, send_events, wait_for

pytestmark = pytest.mark.integration


def exposures_and_orders(now: int) -> list[dict]:
    events = []
    for n in range(10):
        user, variant = f"user-{n}", "control" if n % 2 else "discount"
        events.append({"type": "track", "event": "Experiment Viewed", "userId": user, "messageId": f"x-{n}",
                       "timestamp": now, "properties": {"experiment_name": "hero", "variation_name": variant,
                                                        "segments": ["new"]}})
        if n < 4:
            events.append({"type": "track", "event": "Order Completed", "userId": user, "messageId": f"o-{n}",
                           "timestamp": now + 1_000, "properties": {"product_id": "p1"}})
    return events


def totals(settings) -> dict[str, tuple[int, int]]:
    """(users, conversions) per variant, everyone, from the job's totals in Redis."""
    summed = live_outcomes(settings, ["hero"])
    return {v: (o.users, o.conversions) for (_e, v, s), o in summed.items() if s == "*"}


def test_totals_reach_redis_live_and_survive_a_kill(stack_settings, redis_client, tmp_path) -> None:
    settings = isolated_settings(stack_settings, "experiment-live", models_enabled=False)
    expected = {"discount": (5, 2), "control": (5, 2)}
    job = JobProcess(settings, tmp_path / "job", bounded=False).start()
    try:
        send_events(settings, [{"type": "track", "event": "Product Viewed", "userId": "warm-up", "messageId": "w-1",
                                "timestamp": int(time.time() * 1000), "properties": {"product_id": "p0"}}])
        keys = RedisKeys(settings.redis_prefix)
        wait_for(lambda: redis_client.sismember(keys.segment("active"), "warm-up"), 180, "the job to be running")
        sent = time.monotonic()
        send_events(settings, exposures_and_orders(int(time.time() * 1000)))
        wait_for(lambda: totals(settings) == expected, 180, f"totals {expected} in Redis")
        visible_after = time.monotonic() - sent
        job.wait_for_new_checkpoint()
        job.kill()
        redis_client.delete(keys.experiment_metrics("hero"))
        job.start()  # the same command: the restored totals are sent again
        now = int(time.time() * 1000)
        send_events(settings, [{"type": "track", "event": "Product Viewed", "userId": f"user-{n}",
                                "messageId": f"v-{n}", "timestamp": now, "properties": {"product_id": "p2"}}
                               for n in range(10)])
        wait_for(lambda: totals(settings) == expected, 180, "the restored totals in Redis again")
    finally:
        job.stop()
    print(f"\nexperiment metrics: totals in Redis {visible_after * 1000:.0f} ms after the events were sent "
          "(job already running)")
    assert "resuming from checkpoint" in job.log()
