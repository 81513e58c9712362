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
from dataclasses import dataclass
from typing import Any, Final

EXPOSURE: Final = "experiment_viewed"
CONVERSION: Final = "order_completed"
CLICK: Final = "content_clicked"
PASSIVE: Final = frozenset({EXPOSURE, "content_viewed"})  # sent by the snippet, not done by the user
EVERYONE: Final = "*"
MAX_SEGMENTS = 32  # per exposure: a hostile event cannot fan one user out into unbounded groups


@dataclass
class Outcome:
    """Summed over the users of one (experiment, variant, segment)."""

    users: int = 0
    conversions: int = 0
    clicks: int = 0
    bounces: int = 0
    engaged_ms: int = 0


@dataclass
class _Exposed:
    at: int
    variant: str
    segments: tuple[str, ...]
    converted: bool = False
    clicked: bool = False
    last_in_session: int = 0  # the user's latest event of the exposure's session (bounce, engagement)
    session_over: bool = False


class ExperimentOutcomes:
    def __init__(self, attribution_ms: int = 7 * 86_400_000, session_gap_ms: int = 30 * 60_000) -> None:
        self.attribution_ms, self.session_gap_ms = attribution_ms, session_gap_ms
        self.exposed: dict[tuple[str, str], _Exposed] = {}  # (experiment, user) -> first exposure
        self.by_user: defaultdict[str, list[tuple[str, _Exposed]]] = defaultdict(list)

    def learn_one(self, user: str, timestamp: int, name: str, properties: dict[str, Any]) -> None:
        """One event of ``user`` (canonical ``name``, epoch ms ``timestamp``, raw ``properties``)."""
        for _experiment, e in self.by_user.get(user, ()):
            if timestamp < e.at:
                continue
            if not e.session_over and name not in PASSIVE:
                if timestamp - max(e.last_in_session, e.at) <= self.session_gap_ms:
                    e.last_in_session = max(e.last_in_session, timestamp)
                else:
                    e.session_over = True
            if timestamp - e.at <= self.attribution_ms:
                e.converted |= name == CONVERSION
                e.clicked |= name == CLICK
        if name == EXPOSURE:
            self._expose(user, timestamp, properties)

    def _expose(self, user: str, timestamp: int, properties: dict[str, Any]) -> None:
        experiment, variant = properties.get("experiment_name"), properties.get("variation_name")
        if not isinstance(experiment, str) or not isinstance(variant, str) or (experiment, user) in self.exposed:
            return
        segments = properties.get("segments")
        kept = tuple(s for s in segments if isinstance(s, str))[:MAX_SEGMENTS] if isinstance(segments, list) else ()
        e = self.exposed[(experiment, user)] = _Exposed(timestamp, variant, kept)
        self.by_user[user].append((experiment, e))

    def outcomes(self) -> dict[tuple[str, str, str], Outcome]:
        """Per (experiment, variant, segment): users, conversions, clicks, bounces, engaged ms."""
        out: defaultdict[tuple[str, str, str], Outcome] = defaultdict(Outcome)
        for (experiment, _user), e in self.exposed.items():
            for segment in (EVERYONE, *e.segments):
                o = out[(experiment, e.variant, segment)]
                o.users += 1
                o.conversions += e.converted
                o.clicks += e.clicked
                o.bounces += e.last_in_session == 0
                o.engaged_ms += e.last_in_session - e.at if e.last_in_session else 0
        return dict(out)
