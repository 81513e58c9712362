"""Per-user behavior stats and the feature vector the ML segments (``operators.behavior_clusters``) learn.

The rule operator keeps a ``BehaviorStats`` per user next to the profile (``ProfileState.behavior``
holds ``to_list()``) and, after every event, calls ``update_stats`` and ``behavior_features``. Sessions
come from the profile tracker, so the features see the same sessions the rules do.

Stats are lifetime counters plus a few timestamps and a 64-bit category sketch: 13 small numbers, about
100 bytes of JSON per user. The sketch is a linear-counting bitmap (each category sets one of 64 bits;
distinct count ~= -64 ln(zero bits / 64)), within ~10-15% up to ~100 categories and saturating
at 310, which is all a "how diverse is this user" feature needs.

Features (``FEATURE_NAMES``, in this order; heavy-tailed counts are ``log1p``-compressed so a handful of
power users do not dominate the standardization)::

    events                 log1p(lifetime events)
    sessions               log1p(lifetime sessions)
    session_minutes        log1p(mean session duration, minutes)
    views_per_session      log1p(product views / sessions)
    cart_rate              add-to-carts / events                 in [0, 1]
    fav_rate               favorites (wishlist adds) / events    in [0, 1]
    purchases_per_session  log1p(purchases / sessions)
    tenure_hours           log1p(hours from the user's first event to the latest): returning users
    categories             log1p(distinct product categories, estimated)

>>> from state_schemas.events import CanonicalEvent
>>> from state_schemas.profile_state import ProfileState
>>> profile = ProfileState(sessions_total=1, session_start=60_000, session_last=180_000)
>>> e = CanonicalEvent("m1", 1, "u1", "u1", None, "track", "product_added", 180_000, "i1", "c1")
>>> stats = update_stats(None, e, profile)
>>> f = behavior_features(stats, profile, now=180_000)
>>> round(f["cart_rate"], 2), round(f["session_minutes"], 3), list(f) == list(FEATURE_NAMES)
(1.0, 1.099, True)
>>> BehaviorStats.from_list(stats.to_list()) == stats
True
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

from state_schemas import events as ev
from state_schemas.events import CanonicalEvent
from state_schemas.profile_state import ProfileState

FEATURE_NAMES: tuple[str, ...] = (
    "events",
    "sessions",
    "session_minutes",
    "views_per_session",
    "cart_rate",
    "fav_rate",
    "purchases_per_session",
    "tenure_hours",
    "categories",
)

STATS_VERSION = 1
SKETCH_BITS = 64
_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000


class BehaviorStatsError(ValueError):
    """A stored behavior-stats row this version cannot read."""


@dataclass(slots=True)
class BehaviorStats:
    events: int = 0
    views: int = 0
    cart_adds: int = 0
    favorites: int = 0
    purchases: int = 0
    first_event: int = 0  # earliest event time, epoch ms
    last_event: int = 0  # latest event time, epoch ms
    open_start: int = 0  # the profile's open session as last seen here, to notice when it closed
    open_last: int = 0
    closed_session_ms: int = 0  # summed duration of sessions that have closed
    category_bits: int = 0  # linear-counting sketch of distinct categories

    def to_list(self) -> list[int]:
        return [
            STATS_VERSION, self.events, self.views, self.cart_adds, self.favorites, self.purchases,
            self.first_event, self.last_event, self.open_start, self.open_last, self.closed_session_ms,
            self.category_bits,
        ]

    @classmethod
    def from_list(cls, row: list[Any]) -> BehaviorStats:
        """Read a ``to_list()`` row; raises ``BehaviorStatsError`` for another layout version.

        >>> BehaviorStats.from_list([9, 1])
        Traceback (most recent call last):
        ...
        operators.behavior_features.BehaviorStatsError: behavior stats version 9 is not readable by this Tailor (knows 1); restore with the Tailor version that wrote the savepoint
        """  # noqa: E501 (a doctest's expected output cannot wrap)
        if not row or row[0] != STATS_VERSION or len(row) != 12:
            version = row[0] if row else None
            raise BehaviorStatsError(
                f"behavior stats version {version!r} is not readable by this Tailor (knows {STATS_VERSION}); "
                "restore with the Tailor version that wrote the savepoint"
            )
        return cls(*row[1:])

    @property
    def distinct_categories(self) -> float:
        """Linear-counting estimate of the distinct categories seen.

        >>> s = BehaviorStats()
        >>> for c in ("a", "b", "c", "a"):
        ...     s.category_bits |= category_bit(c)
        >>> round(s.distinct_categories, 1)
        3.1
        """
        zeros = SKETCH_BITS - self.category_bits.bit_count()
        return SKETCH_BITS * math.log(SKETCH_BITS / max(zeros, 0.5))


def category_bit(category: str) -> int:
    """The sketch bit of a category: stable across processes (crc32, not ``hash()``)."""
    return 1 << (zlib.crc32(category.encode()) % SKETCH_BITS)


def update_stats(stats: BehaviorStats | None, event: CanonicalEvent, profile: ProfileState) -> BehaviorStats:
    """Fold one event into the stats; call right after ``ProfileTracker.process_one`` returned ``profile``.

    Never called for duplicates (the tracker drops them first). ``stats`` is updated in place and returned.
    """
    s = BehaviorStats() if stats is None else stats
    s.events += 1
    name = event.name
    if name == ev.PRODUCT_VIEWED:
        s.views += 1
    elif name == ev.PRODUCT_ADDED:
        s.cart_adds += 1
    elif name == ev.PRODUCT_FAVORITED:
        s.favorites += 1
    elif name == ev.ORDER_COMPLETED:
        s.purchases += 1
    ts = event.timestamp
    s.last_event = max(s.last_event, ts)
    s.first_event = min(s.first_event, ts) if s.first_event else ts
    if profile.session_start:
        if s.open_start and profile.session_start > s.open_last:  # the session we knew has closed
            s.closed_session_ms += s.open_last - s.open_start
        s.open_start, s.open_last = profile.session_start, profile.session_last
    if event.category:
        s.category_bits |= category_bit(event.category)
    return s


def merge_stats(known: list[Any], other: list[Any], merged: ProfileState) -> list[Any]:
    """Two users' stats rows (``to_list``; ``[]``: none yet) as one user's, for ``merged`` (identity
    stitching): counts add up, the open session is the merged profile's, categories are united.

    >>> a, b = BehaviorStats(events=2, views=1, first_event=5), BehaviorStats(events=3, first_event=3)
    >>> m = BehaviorStats.from_list(merge_stats(a.to_list(), b.to_list(), ProfileState()))
    >>> m.events, m.views, m.first_event
    (5, 1, 3)
    """
    if not known or not other:
        return list(known or other)
    k, o = BehaviorStats.from_list(known), BehaviorStats.from_list(other)
    closed = k.closed_session_ms + o.closed_session_ms
    for s in (k, o):  # an open session the merged profile no longer has open has closed
        if s.open_start and s.open_start != merged.session_start:
            closed += s.open_last - s.open_start
    firsts = [t for t in (k.first_event, o.first_event) if t]
    return BehaviorStats(
        k.events + o.events, k.views + o.views, k.cart_adds + o.cart_adds, k.favorites + o.favorites,
        k.purchases + o.purchases, min(firsts, default=0), max(k.last_event, o.last_event),
        merged.session_start, merged.session_last, closed, k.category_bits | o.category_bits,
    ).to_list()


def behavior_features(stats: BehaviorStats, profile: ProfileState, now: int) -> dict[str, float]:
    """The feature vector at event time ``now``, keys in ``FEATURE_NAMES`` order."""
    log1p = math.log1p
    events = max(stats.events, 1)
    sessions = max(profile.sessions_total, 1)
    session_ms = stats.closed_session_ms + (stats.open_last - stats.open_start)
    return {
        "events": log1p(stats.events),
        "sessions": log1p(profile.sessions_total),
        "session_minutes": log1p(session_ms / sessions / _MINUTE_MS),
        "views_per_session": log1p(stats.views / sessions),
        "cart_rate": stats.cart_adds / events,
        "fav_rate": stats.favorites / events,
        "purchases_per_session": log1p(stats.purchases / sessions),
        "tenure_hours": log1p((max(now, stats.last_event) - stats.first_event) / _HOUR_MS),
        "categories": log1p(stats.distinct_categories),
    }
