"""An independent, deliberately naive computation of the default segment rules (config/segments.yaml).

It shares no code with ``operators/``: for each user it recomputes every fact from the whole event
history at each instant where a rule could flip, and diffs the memberships. Quadratic per user, which is
fine for test data and keeps it obviously correct. Used to check the real job's output.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN, DAY = 60_000, 86_400_000
GAP = 30 * MIN
RULE_ORDER = [
    "interested_but_hesitant", "cart_abandoner", "daily_active", "weekly_active", "monthly_active",
    "active", "lapsing", "dormant",
]


@dataclass(frozen=True)
class Event:
    ts: int
    name: str  # "view" | "cart" | "buy" | "other"


def memberships(history: list[Event], now: int) -> list[str]:
    """Segments of a user whose processed events are ``history`` (arrival order), at time ``now``."""
    # sessions: a new one starts when an event comes GAP or more after the latest of the current one
    session: list[Event] = []
    last = None
    for e in history:
        if last is not None and e.ts >= last + GAP:
            session = []
            last = None
        session.append(e)
        last = e.ts if last is None else max(last, e.ts)
    if last is not None and now >= last + GAP:
        session = []
    views = sum(e.name == "view" for e in session)
    carts = sum(e.name == "cart" for e in session)
    buys = sum(e.name == "buy" for e in session)
    # pending cart: the earliest add-to-cart not followed (in event time) by a purchase processed after it
    pending = None
    last_buy = 0
    for e in history:
        if e.name == "buy":
            last_buy = max(last_buy, e.ts)
            if pending is not None and pending <= e.ts:
                pending = None
        elif e.name == "cart" and e.ts > last_buy and (pending is None or e.ts < pending):
            pending = e.ts
    last_seen = max(e.ts for e in history)
    idle = now - last_seen
    today = now // DAY
    days = {e.ts // DAY for e in history}
    d7 = sum(1 for d in days if today - 6 <= d <= today)
    d30 = sum(1 for d in days if today - 29 <= d <= today)
    holds = {
        "interested_but_hesitant": views > 5 and carts >= 1 and buys == 0,
        "cart_abandoner": pending is not None and now - pending >= 30 * MIN,
        "daily_active": d7 >= 5,
        "weekly_active": 1 <= d7 < 5,
        "monthly_active": d30 >= 1 and d7 == 0,
        "active": 0 <= idle < 7 * DAY,
        "lapsing": 7 * DAY <= idle < 30 * DAY,
        "dormant": idle >= 30 * DAY,
    }
    return [name for name in RULE_ORDER if holds[name]]


def flip_instants(history: list[Event]) -> set[int]:
    """Every instant at which some default rule could change value without a new event."""
    last_seen = max(e.ts for e in history)
    instants = {max(e.ts for e in history) + GAP, last_seen + 7 * DAY, last_seen + 30 * DAY}
    instants |= {e.ts + 30 * MIN for e in history if e.name == "cart"}
    for d in {e.ts // DAY for e in history}:
        instants |= {(d + 7) * DAY, (d + 30) * DAY}
    # a late session close can also come from an earlier session boundary
    instants |= {e.ts + GAP for e in history}
    return instants


def expected_changes(user: str, events: list[Event], until: int) -> list[tuple[str, str, str, int]]:
    """(segment, enter|exit, event|timer, event_time) for one user, events in arrival order.

    Time runs to ``until`` at the end (the bounded job's final watermark is +infinity: pass a time after
    every deadline).
    """
    out: list[tuple[str, str, str, int]] = []
    current: list[str] = []
    clock = 0

    def step(history: list[Event], now: int, trigger: str) -> None:
        nonlocal current
        after = memberships(history, now)
        if after != current:
            out.extend((s, "exit", trigger, now) for s in RULE_ORDER if s in current and s not in after)
            out.extend((s, "enter", trigger, now) for s in RULE_ORDER if s in after and s not in current)
            current = after

    for i, event in enumerate(events):
        history = events[:i]
        if history:
            for t in sorted(flip_instants(history)):
                if clock < t <= event.ts:
                    step(history, t, "timer")
                    clock = t
        clock = max(clock, event.ts)
        step(events[: i + 1], clock, "event")
    for t in sorted(flip_instants(events)):
        if clock < t <= until:
            step(events, t, "timer")
            clock = t
    return out
