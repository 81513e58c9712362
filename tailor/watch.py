"""Print segment changes and recommendations as they happen, from the Redis channels the job publishes to.

Two channels (``connectors.redis_keys``): ``{prefix}segment-changes`` carries rule changes and ML
segment (cluster) changes, ``{prefix}recommendations`` every new top-K list. One aligned line each::

    time(UTC)     kind    +/- segment / list             user               detail
    19:45:01.618  rule    + active                       anon-682d329ff0f5  idle_ms=0  (event, emitted 245 ms after)
    19:45:01.618  ML seg  + One-off Visitors             anon-682d329ff0f5  categories -1.0σ, views per session -0.9σ, events -0.9σ  (emitted 609 ms after)
    19:45:01.618  recs      top 3 of 10                  anon-682d329ff0f5  p0 popular · p1 popular · p2 popular  (emitted 609 ms after)

A cluster change's detail is the cluster's explanation as of that change (its reason without the
cluster name and the "vs all users" tail), shortened to fit one line. What to show is a subset of
``rules``, ``clusters``, ``recs`` (``tailor watch --show clusters,recs``).
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.redis_clients import RedisAuth
from connectors.redis_reader import RECOMMENDATIONS, RedisUnavailable, Subscription
from settings import Settings
from settings.errors import TailorError

KINDS = ("rules", "clusters", "recs")
_ARROWS = {"enter": "+", "exit": "-"}
_LABELS = {"rule": "rule", "cluster": "ML seg"}
DETAIL_WIDTH = 60
HEADER = f"{'time(UTC)':<12}  {'kind':<6}  {'+/- segment / list':<29}  {'user':<17}  detail"


class WatchError(TailorError, ValueError):
    """Bad ``--show`` selection or Redis out of reach; the message says what to do."""


def parse_show(text: str) -> tuple[str, ...]:
    """``"clusters,recs"`` -> ``("clusters", "recs")``, in display order; unknown names are an error.

    >>> parse_show("recs, rules")
    ('rules', 'recs')
    >>> parse_show("rules,ml")
    Traceback (most recent call last):
    ...
    tailor.watch.WatchError: --show: unknown 'ml'; choose from rules, clusters, recs (comma-separated)
    """
    wanted = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(wanted - set(KINDS))
    if unknown or not wanted:
        got = ", ".join(repr(u) for u in unknown) or "nothing"
        raise WatchError(f"--show: unknown {got}; choose from {', '.join(KINDS)} (comma-separated)")
    return tuple(k for k in KINDS if k in wanted)


def shorten(text: str, width: int = DETAIL_WIDTH) -> str:
    """
    >>> shorten("cart rate +2.3σ, purchases per session -0.6σ", 20)
    'cart rate +2.3σ, pu…'
    """
    return text if len(text) <= width else text[: width - 1] + "…"


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


def cluster_explanation(change: dict[str, Any]) -> str:
    """The reason of a cluster change without the cluster's name and the "vs all users" tail.

    >>> cluster_explanation({"segment": "Cart Fillers",
    ...     "reason": "Cart Fillers: cart rate +2.3σ, views per session -0.2σ vs all users"})
    'cart rate +2.3σ, views per session -0.2σ'
    """
    reason = str(change.get("reason", ""))
    return reason.removeprefix(f"{change.get('segment')}: ").removesuffix(" vs all users")


def format_change(change: dict[str, Any]) -> str:
    """One line per segment change: when, kind, +/- segment, user, why (and how far behind the event).

    >>> print(format_change({"event_time": 0, "emit_time": 12, "change": "enter", "segment": "vip",
    ...     "kind": "rule", "user_id": "u1", "trigger": "event", "facts": {"purchases_total": 3}}))
    00:00:00.000  rule    + vip                          u1                 purchases_total=3  (event, emitted 12 ms after)
    >>> print(format_change({"event_time": 0, "emit_time": 30, "change": "exit", "segment": "Browsers",
    ...     "kind": "cluster", "user_id": "u1", "trigger": "event", "reason": "Browsers: views +1.2σ vs all users"}))
    00:00:00.000  ML seg  - Browsers                     u1                 views +1.2σ  (emitted 30 ms after)
    """  # noqa: E501 (a doctest's expected output cannot wrap)
    kind = change.get("kind", "rule")
    lag = change["emit_time"] - change["event_time"]
    if kind == "cluster":
        detail, why = shorten(cluster_explanation(change)), f"emitted {lag} ms after"
    else:
        detail = shorten(" ".join(f"{k}={v}" for k, v in change.get("facts", {}).items()))
        why = f"{change['trigger']}, emitted {lag} ms after"
    return (
        f"{_clock(change['event_time'])}  {_LABELS.get(kind, kind):<6}  {_ARROWS.get(change['change'], '?')} "
        f"{change['segment']:<27.27}  {change['user_id']:<17}  {detail}  ({why})"
    )


def format_recommendation(rec: dict[str, Any], top: int = 3) -> str:
    """One line per new top-K: when, user, the first ``top`` items with the part that chose them.

    >>> print(format_recommendation({"event_time": 0, "emit_time": 40, "user_id": "u1", "items": [
    ...     {"item_id": "p12", "score": 0.9, "source": "mf"}, {"item_id": "p7", "score": 0.5, "source": "content"}]}))
    00:00:00.000  recs      top 2 of 2                   u1                 p12 mf · p7 content  (emitted 40 ms after)
    """
    items = rec.get("items", [])
    shown = " · ".join(f"{i['item_id']} {i['source']}" for i in items[:top])
    head = f"top {min(top, len(items))} of {len(items)}"
    lag = rec["emit_time"] - rec["event_time"]
    return (
        f"{_clock(rec['event_time'])}  {'recs':<6}    {head:<27}  {rec['user_id']:<17}  {shorten(shown)}"
        f"  (emitted {lag} ms after)"
    )


@dataclass
class WatchCounts:
    """How many of each the watch printed."""

    rules: int = 0
    clusters: int = 0
    recs: int = 0

    @property
    def total(self) -> int:
        return self.rules + self.clusters + self.recs


def watch(
    settings: Settings,
    duration_s: float = 0,
    show: Iterable[str] = KINDS,
    out: Callable[[str], Any] = print,
) -> WatchCounts:
    """Subscribe to the job's Redis channels and print what ``show`` selects, for ``duration_s`` (0 = forever)."""
    show = set(show)
    counts = WatchCounts()
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        with Subscription(
            settings.redis_host, settings.redis_port, settings.redis_prefix,
            changes=bool(show & {"rules", "clusters"}), recommendations="recs" in show, auth=RedisAuth.of(settings),
        ) as channels:
            while deadline is None or time.monotonic() < deadline:
                message = channels.get(timeout_s=0.5)
                if message is None:
                    continue
                channel, payload = message
                record = orjson.loads(payload)
                if channel == RECOMMENDATIONS:
                    counts.recs += 1
                    out(format_recommendation(record))
                    continue
                kind = "clusters" if record.get("kind") == "cluster" else "rules"
                if kind in show:
                    setattr(counts, kind, getattr(counts, kind) + 1)
                    out(format_change(record))
    except RedisUnavailable as exc:
        raise WatchError(f"{exc}: start the local stack with `bin/tailor stack up`") from None
    return counts
