"""The facts a segment condition can name, computed from a user's profile state at a point in time.

Three families:

* **counters** — values that only events change (``session.product_views``, ``purchases_total``, ...);
* **elapsed times** — ``idle_ms`` (since the last event) and ``cart.pending_ms`` (since the first
  add-to-cart not followed by a purchase; -1 when nothing is pending). They grow as time passes, so a
  threshold on them (``idle_ms >= days(7)``) becomes a timer;
* **activity windows** — ``days_active_<N>d``: distinct UTC days with activity among the last N days
  (today included). They drop as days leave the window, which is also a timer.

>>> from state_schemas.profile_state import ProfileState
>>> facts = facts_at(ProfileState(last_seen=DAY_MS, active_days=[0, 1]), now=DAY_MS + 5, windows=(1, 7))
>>> facts["idle_ms"], facts["days_active_1d"], facts["days_active_7d"], facts["cart.pending_ms"]
(5, 1, 2, -1)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from state_schemas.profile_state import ProfileState

DAY_MS = 86_400_000

COUNTER_FACTS = (
    "session.open",
    "session.events",
    "session.product_views",
    "session.cart_adds",
    "session.purchases",
    "session.duration_ms",
    "sessions_total",
    "purchases_total",
)
ELAPSED_FACTS = ("idle_ms", "cart.pending_ms")
_WINDOW_FACT = re.compile(r"^days_active_([1-9][0-9]{0,2})d$")


def window_days(fact: str) -> int | None:
    """N for a ``days_active_<N>d`` fact, else None.

    >>> window_days("days_active_30d"), window_days("idle_ms")
    (30, None)
    """
    match = _WINDOW_FACT.match(fact)
    return int(match.group(1)) if match else None


def elapsed_anchor(state: ProfileState, fact: str) -> int:
    """The instant an elapsed-time fact counts from (0 = not running)."""
    return state.last_seen if fact == "idle_ms" else state.cart_pending_since


class KnownFacts:
    """The fact names conditions may use (``days_active_<N>d`` for any N from 1 to 999)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in COUNTER_FACTS or name in ELAPSED_FACTS or window_days(name) is not None
        )

    def __iter__(self) -> Iterator[str]:
        return iter((*COUNTER_FACTS, *ELAPSED_FACTS, "days_active_<N>d"))

    def __len__(self) -> int:
        return len(COUNTER_FACTS) + len(ELAPSED_FACTS) + 1


def facts_at(state: ProfileState, now: int, windows: Iterable[int]) -> dict[str, Any]:
    """All facts of ``state`` at event time ``now`` (epoch ms)."""
    is_open = state.session_start != 0
    facts: dict[str, Any] = {
        "session.open": int(is_open),
        "session.events": state.session_events,
        "session.product_views": state.session_views,
        "session.cart_adds": state.session_cart_adds,
        "session.purchases": state.session_purchases,
        "session.duration_ms": state.session_last - state.session_start if is_open else 0,
        "sessions_total": state.sessions_total,
        "purchases_total": state.purchases_total,
        "idle_ms": now - state.last_seen if state.last_seen else -1,
        "cart.pending_ms": now - state.cart_pending_since if state.cart_pending_since else -1,
    }
    today = now // DAY_MS
    for n in windows:
        first_day = today - n + 1
        facts[f"days_active_{n}d"] = sum(1 for d in state.active_days if first_day <= d <= today)
    return facts
