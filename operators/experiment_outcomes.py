"""What happened to each user after an experiment showed them a variant: the per-user half of experiment
metrics, in event time, fed one event at a time (``learn_one``) in each user's event order.

An exposure is a Segment-Spec ``Experiment Viewed`` event (``experiment_name``, ``variation_name``, and
the user's ``segments`` when it was shown, as the snippet sends them). A user counts in the variant and
segment of their *first* exposure to an experiment. After it:

* **conversion**: an ``Order Completed`` within ``attribution_ms`` (default 7 days);
* **click-through**: a ``Content Clicked`` within the attribution window;
* **bounce**: no other event of the user within ``session_gap_ms`` (30 min) of the exposure (what the
  snippet sends by itself, exposures and content views, does not count as the user doing something);
* **engagement**: milliseconds from the exposure to the user's last event of that session.

``outcomes()`` sums them per (experiment, variant, segment), segment ``"*"`` being everyone.

>>> ledger = ExperimentOutcomes()
>>> ledger.learn_one("u1", 0, "experiment_viewed", {"experiment_name": "hero", "variation_name": "discount",
...                                                 "segments": ["interested_but_hesitant"]})
>>> ledger.learn_one("u1", 60_000, "order_completed", {})
>>> o = ledger.outcomes()[("hero", "discount", "*")]
>>> o.users, o.conversions, o.bounces, o.engaged_ms
(1, 1, 0, 60000)
>>> sorted(k[2] for k in ledger.outcomes())
['*', 'interested_but_hesitant']
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any, Final

from state_schemas.experiment_metrics import Outcome

EXPOSURE: Final = "experiment_viewed"
CONVERSION: Final = "order_completed"
CLICK: Final = "content_clicked"
PASSIVE: Final = frozenset({EXPOSURE, "content_viewed"})  # sent by the snippet, not done by the user
EVERYONE: Final = "*"
MAX_SEGMENTS = 32  # per exposure: a hostile event cannot fan one user out into unbounded groups


# One exposure in a user's state (``ProfileState.exposures``): [experiment, variant, at, segments,
# converted, clicked, last_in_session, session_over]; once its attribution window and its session are
# over, only [experiment, variant, at] stays, so that a later exposure to the same experiment is not counted.
_EXPERIMENT, _VARIANT, _AT, _SEGMENTS, _CONVERTED, _CLICKED, _LAST, _OVER = range(8)
MAX_EXPOSURES = 32  # experiments remembered per user

Delta = tuple[tuple[str, str, str], Outcome]


def learn_user(
    exposures: list[list[Any]], timestamp: int, name: str, properties: dict[str, Any],
    attribution_ms: int = 7 * 86_400_000, session_gap_ms: int = 30 * 60_000,
) -> list[Delta]:
    """One event of a user: updates their ``exposures`` in place and returns what it adds to the totals
    of each (experiment, variant, segment). Summing every delta gives the outcomes at any instant: an
    exposure counts a user and, until the user does something in its session, a bounce."""
    deltas: list[Delta] = []
    for e in exposures:
        if len(e) == 3 or timestamp < e[_AT]:
            continue
        bounces = engaged = conversions = clicks = 0
        if not e[_OVER] and name not in PASSIVE:
            last = e[_LAST]
            if timestamp - max(last, e[_AT]) <= session_gap_ms:
                if timestamp > last:
                    bounces, engaged = -(last == 0), timestamp - max(last, e[_AT])
                    e[_LAST] = timestamp
            else:
                e[_OVER] = 1
        if timestamp - e[_AT] <= attribution_ms:
            if name == CONVERSION and not e[_CONVERTED]:
                e[_CONVERTED] = conversions = 1
            elif name == CLICK and not e[_CLICKED]:
                e[_CLICKED] = clicks = 1
        elif e[_OVER]:
            del e[3:]  # settled: nothing can change it any more
        if bounces or engaged or conversions or clicks:
            change = Outcome(0, conversions, clicks, bounces, engaged)
            deltas += [((e[_EXPERIMENT], e[_VARIANT], segment), change) for segment in (EVERYONE, *e[_SEGMENTS])]
    if name == EXPOSURE:
        deltas += _expose(exposures, timestamp, properties)
    return deltas


def _expose(exposures: list[list[Any]], timestamp: int, properties: dict[str, Any]) -> list[Delta]:
    experiment, variant = properties.get("experiment_name"), properties.get("variation_name")
    if not isinstance(experiment, str) or not isinstance(variant, str) or len(exposures) >= MAX_EXPOSURES:
        return []
    if any(e[_EXPERIMENT] == experiment for e in exposures):
        return []  # a user counts in the variant of their first exposure
    segments = properties.get("segments")
    kept = [s for s in segments if isinstance(s, str)][:MAX_SEGMENTS] if isinstance(segments, list) else []
    exposures.append([experiment, variant, timestamp, kept, 0, 0, 0, 0])
    return [((experiment, variant, segment), Outcome(users=1, bounces=1)) for segment in (EVERYONE, *kept)]


class OutcomeTotals:
    """Outcomes per (experiment, variant, segment), summed from deltas; remembers which changed."""

    def __init__(self, totals: dict[tuple[str, str, str], Outcome] | None = None) -> None:
        self.totals: dict[tuple[str, str, str], Outcome] = totals or {}
        self.changed: set[tuple[str, str, str]] = set()  # since the last take_changed
        self.dirty = False  # changed since the runner last saved the totals (it clears this)

    def add(self, deltas: list[Delta]) -> None:
        for key, d in deltas:
            o = self.totals.setdefault(key, Outcome())
            o.users += d.users
            o.conversions += d.conversions
            o.clicks += d.clicks
            o.bounces += d.bounces
            o.engaged_ms += d.engaged_ms
            self.changed.add(key)
            self.dirty = True

    def take_changed(self) -> dict[tuple[str, str, str], Outcome]:
        changed, self.changed = {k: self.totals[k] for k in sorted(self.changed)}, set()
        return changed


class ExperimentOutcomes:
    """Every user's exposures in one process (``tailor experiments report`` reading the events topic):
    the same per-user step as the job's, summed."""

    def __init__(self, attribution_ms: int = 7 * 86_400_000, session_gap_ms: int = 30 * 60_000) -> None:
        self.attribution_ms, self.session_gap_ms = attribution_ms, session_gap_ms
        self.by_user: defaultdict[str, list[list[Any]]] = defaultdict(list)
        self.sums = OutcomeTotals()

    def learn_one(self, user: str, timestamp: int, name: str, properties: dict[str, Any]) -> None:
        """One event of ``user`` (canonical ``name``, epoch ms ``timestamp``, raw ``properties``)."""
        exposures = self.by_user.get(user)
        if exposures is None and name != EXPOSURE:
            return
        if exposures is None:
            exposures = self.by_user[user]
        self.sums.add(learn_user(exposures, timestamp, name, properties, self.attribution_ms, self.session_gap_ms))

    def outcomes(self) -> dict[tuple[str, str, str], Outcome]:
        """Per (experiment, variant, segment): users, conversions, clicks, bounces, engaged ms."""
        return {k: replace(o) for k, o in self.sums.totals.items()}
