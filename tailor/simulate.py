"""``tailor simulate``: publish seeded shopper traffic (:class:`evaluation.simulator.ShopperSimulator`) to
the events topic, paced by the wall clock or as fast as Kafka takes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors import kafka_bulk, kafka_events
from evaluation.simulator import ShopperSimulator, SimulationError, iso_ms
from settings import Settings
from settings.progress import progress_bar


@dataclass(frozen=True)
class SimulateReport:
    sent: int
    elapsed_s: float
    first_ms: int | None
    last_ms: int | None

    @property
    def events_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def simulate(
    settings: Settings,
    rate: float = 200.0,
    duration_s: float | None = 60.0,
    users: int = 2000,
    seed: int = 7,
    *,
    count: int | None = None,
    fast: bool = False,
    start_ms: int | None = None,
    simulator: ShopperSimulator | None = None,
    progress: bool | None = None,
    echo: Callable[[str], Any] | None = print,
) -> SimulateReport:
    """Publish simulated shoppers to ``settings.events_topic``: ``count`` events, else ``duration_s`` of them.

    Wall-clock mode sends each event when its timestamp comes (``rate`` events/s, from now; no end if
    neither ``count`` nor ``duration_s``). ``fast=True`` sends without sleeping; timestamps then start at
    ``start_ms`` (default: so that the last event is stamped now) and advance at ``rate`` events per
    simulated second. ``simulator`` replaces the default ``ShopperSimulator(seed, users)``.
    """
    sim = simulator or ShopperSimulator(seed=seed, users=users)
    total = count if count is not None else int(duration_s * rate) if duration_s else None
    if fast and total is None:
        raise SimulationError("fast mode needs count or duration_s: it would never end")
    now_ms = int(time.time() * 1000)
    if start_ms is None:
        start_ms = now_ms - int(1000 * total / rate) if fast and total else now_ms
    bar = progress_bar(total, enabled=progress)
    sent, first_ms, last_ms = 0, None, None
    t0 = time.monotonic()
    with kafka_bulk.bulk_publisher(settings) as publisher:
        try:
            for ts, event in sim.timed_events(start_ms, rate, total):
                if not fast:
                    ahead = t0 + (ts - start_ms) / 1000 - time.monotonic()
                    if ahead > 0.001:
                        time.sleep(ahead)
                kafka_events.publish_event(publisher, settings.events_topic, event, ts)
                sent += 1
                first_ms = ts if first_ms is None else first_ms
                last_ms = ts
                bar.update()
            publisher.flush()
        finally:
            bar.close()
    report = SimulateReport(sent, time.monotonic() - t0, first_ms, last_ms)
    if echo is not None:
        span = "" if first_ms is None else f", event time {iso_ms(first_ms)} .. {iso_ms(last_ms or first_ms)}"
        echo(
            f"sent {sent:,} simulated events to {settings.events_topic} in {report.elapsed_s:.1f} s "
            f"({report.events_per_s:,.0f}/s){span}"
        )
    return report
