"""Per-user keyed state of the segmentation job: ``ProfileState`` (layout version 5).

Stored in Flink as bytes we encode ourselves (Flink's schema evolution never applies to Python state):
a compact JSON array whose first element is the version. ``decode`` upgrades older versions on read, so a
job restored from an old savepoint keeps working; bump ``CURRENT_VERSION`` and add an upgrade step for any
change of layout, and note it in CHANGELOG.md.

Layout of version 5 (positions in the array; version 1 is positions 0-11, version 2 positions 0-13,
version 3 positions 0-14, version 4 positions 0-16, all upgraded on read)::

    0  version              1
    1  clock                user's event-time clock, epoch ms: the latest time processed for this user
    2  last_seen            timestamp of the latest event, epoch ms (0 = never)
    3  session_start        start of the open session, epoch ms (0 = no open session)
    4  session_last         latest event of the open session, epoch ms
    5  session_counts       [events, product_views, cart_adds, purchases] in the open session
    6  cart_pending_since   first add-to-cart not followed by a purchase, epoch ms (0 = none pending)
    7  totals               [sessions, purchases] over the user's lifetime
    8  active_days          sorted UTC day numbers (epoch ms // 86_400_000) with activity, pruned to the
                            longest window any rule looks at
    9  segments             names of the rule segments the user is in, in rule declaration order
    10 recent_ids           dedup keys of the latest messages (oldest first), bounded
    11 timer_at             event-time timer registered in Flink for this user, epoch ms (0 = none)
    12 last_purchase_at     event time of the latest purchase, epoch ms (0 = none): a late add-to-cart
                            older than it was followed by that purchase, so it is not pending    (v2)
    13 behavior             lifetime behavior stats for the ML features, an opaque list owned by
                            ``operators.behavior_features`` (empty while models are off)        (v2)
    14 erased_at            event time of the erase request (``tailor erase``), epoch ms; non-zero: the
                            profile is only a suppression marker and the id's events are dropped (v3)
    15 linked_ids           ids merged into this one (``operators.identity``), at most 16          (v4)
    16 merged_into          the id this one was merged into ("" = none); non-empty: the profile is only
                            a forwarding marker and the id's events go to that id               (v4)
    17 exposures            the experiments the user was exposed to and what followed, opaque lists
                            owned by ``operators.experiment_outcomes`` (empty: never exposed)    (v5)

>>> s = ProfileState(clock=5, segments=["a"], recent_ids=[7])
>>> decode(encode(s)) == s
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

CURRENT_VERSION: Final = 5


class StateVersionError(ValueError):
    """State written by a newer Tailor than this one (or corrupted)."""


@dataclass(slots=True)
class ProfileState:
    clock: int = 0
    last_seen: int = 0
    session_start: int = 0
    session_last: int = 0
    session_events: int = 0
    session_views: int = 0
    session_cart_adds: int = 0
    session_purchases: int = 0
    cart_pending_since: int = 0
    sessions_total: int = 0
    purchases_total: int = 0
    active_days: list[int] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    recent_ids: list[int] = field(default_factory=list)
    timer_at: int = 0
    last_purchase_at: int = 0
    behavior: list[Any] = field(default_factory=list)
    erased_at: int = 0
    linked_ids: list[str] = field(default_factory=list)
    merged_into: str = ""
    exposures: list[Any] = field(default_factory=list)

    @property
    def session_open(self) -> bool:
        return self.session_start != 0


def encode(s: ProfileState) -> bytes:
    return orjson.dumps(
        [
            CURRENT_VERSION,
            s.clock,
            s.last_seen,
            s.session_start,
            s.session_last,
            [s.session_events, s.session_views, s.session_cart_adds, s.session_purchases],
            s.cart_pending_since,
            [s.sessions_total, s.purchases_total],
            s.active_days,
            s.segments,
            s.recent_ids,
            s.timer_at,
            s.last_purchase_at,
            s.behavior,
            s.erased_at,
            s.linked_ids,
            s.merged_into,
            s.exposures,
        ]
    )


def decode(payload: bytes | str) -> ProfileState:
    row = orjson.loads(payload)
    version = row[0] if isinstance(row, list) and row else None
    if version not in (1, 2, 3, 4, CURRENT_VERSION):
        raise StateVersionError(
            f"profile state version {version!r} is not readable by this Tailor (knows 1..{CURRENT_VERSION}); "
            "restore with the Tailor version that wrote the savepoint"
        )
    try:
        if version == 1:  # v1 -> v2: no purchase time known, no behavior stats yet
            row = [*row, 0, []]
        if version in (1, 2):  # v2 -> v3: never erased
            row = [*row, 0]
        if version in (1, 2, 3):  # v3 -> v4: no identity links
            row = [*row, [], ""]
        if version in (1, 2, 3, 4):  # v4 -> v5: never exposed to an experiment
            row = [*row, []]
        (_, clock, last_seen, start, last, counts, pending, totals, days, segments, recent, timer_at,
         last_purchase_at, behavior, erased_at, linked_ids, merged_into, exposures) = row
        return ProfileState(
            clock, last_seen, start, last, counts[0], counts[1], counts[2], counts[3],
            pending, totals[0], totals[1], days, segments, recent, timer_at, last_purchase_at, behavior,
            erased_at, linked_ids, merged_into, exposures,
        )
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise StateVersionError(
            f"profile state is corrupted ({exc}); expected the version-{version} layout documented in "
            "state_schemas/profile_state.py"
        ) from None
