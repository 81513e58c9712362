"""operators.experiment_outcomes: the per-user step the job and `tailor experiments report` share, summed
from deltas, against a direct computation from each user's whole history."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from operators.experiment_outcomes import (
    CLICK,
    CONVERSION,
    EXPOSURE,
    ExperimentOutcomes,
    Outcome,
    OutcomeTotals,
    learn_user,
)

GAP, WINDOW = 30 * 60_000, 7 * 86_400_000
NAMES = ["product_viewed", "product_viewed", "content_viewed", CONVERSION, CLICK, EXPOSURE]


def history(seed: int, users: int = 40, events: int = 600) -> list[tuple[str, int, str, dict]]:
    rng = random.Random(seed)
    out, clock = [], defaultdict(int)
    for _ in range(events):
        user = f"u{rng.randrange(users)}"
        clock[user] += rng.choice([1_000, 60_000, 20 * 60_000, 45 * 60_000, 3 * 86_400_000])
        name = rng.choice(NAMES)
        props = {}
        if name == EXPOSURE:
            props = {"experiment_name": rng.choice(["hero", "recs"]), "variation_name": rng.choice(["control", "b"]),
                     "segments": rng.sample(["s1", "s2", "s3"], rng.randrange(3))}
        out.append((user, clock[user], name, props))
    return out


def direct(events: list[tuple[str, int, str, dict]]) -> dict[tuple[str, str, str], Outcome]:
    """Outcomes from each user's whole history at once: first exposure per experiment, then its window."""
    totals: dict[tuple[str, str, str], Outcome] = defaultdict(Outcome)
    by_user = defaultdict(list)
    for user, t, name, props in events:
        by_user[user].append((t, name, props))
    for stream in by_user.values():  # each user's events in time order
        first: dict[str, int] = {}
        for i, (_t, name, props) in enumerate(stream):
            if name == EXPOSURE:
                first.setdefault(props["experiment_name"], i)
        for experiment, i in first.items():
            at, _, props = stream[i]
            after = stream[i + 1:]
            converted = any(n == CONVERSION and t - at <= WINDOW for t, n, _ in after)
            clicked = any(n == CLICK and t - at <= WINDOW for t, n, _ in after)
            last = 0
            for t, n, _ in after:
                if n in ("content_viewed", EXPOSURE):
                    continue
                if t - max(last, at) > GAP:
                    break
                last = t
            for segment in ("*", *props["segments"]):
                o = totals[(experiment, props["variation_name"], segment)]
                o.users += 1
                o.conversions += converted
                o.clicks += clicked
                o.bounces += last == 0
                o.engaged_ms += last - at if last else 0
    return dict(totals)


@pytest.mark.parametrize("seed", range(8))
def test_summed_deltas_equal_a_direct_computation(seed: int) -> None:
    events = history(seed)
    ledger = ExperimentOutcomes()
    for user, t, name, props in events:
        ledger.learn_one(user, t, name, props)

    assert ledger.outcomes() == direct(events)


def test_a_bounce_is_taken_back_when_the_user_does_something_in_the_session() -> None:
    exposures: list = []
    seen = learn_user(exposures, 0, EXPOSURE, {"experiment_name": "hero", "variation_name": "b"})
    assert seen == [(("hero", "b", "*"), Outcome(users=1, bounces=1))]

    assert learn_user(exposures, 60_000, "content_viewed", {}) == []  # the snippet's own event
    assert learn_user(exposures, 120_000, "product_viewed", {}) == [(("hero", "b", "*"),
                                                                     Outcome(bounces=-1, engaged_ms=120_000))]


def test_a_settled_exposure_shrinks_and_a_second_exposure_is_not_counted() -> None:
    exposures: list = []
    learn_user(exposures, 0, EXPOSURE, {"experiment_name": "hero", "variation_name": "b", "segments": ["s1"]})
    learn_user(exposures, WINDOW + GAP + 1, "product_viewed", {})

    assert exposures == [["hero", "b", 0]]
    assert learn_user(exposures, WINDOW * 2, EXPOSURE, {"experiment_name": "hero", "variation_name": "c"}) == []


def test_totals_remember_what_changed() -> None:
    totals = OutcomeTotals()
    totals.add([(("hero", "b", "*"), Outcome(users=1, bounces=1))])
    totals.add([(("hero", "b", "*"), Outcome(bounces=-1, engaged_ms=5))])

    assert totals.take_changed() == {("hero", "b", "*"): Outcome(users=1, engaged_ms=5)}
    assert totals.take_changed() == {}
