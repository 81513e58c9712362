"""Behavior stats and features: counting, sessions, the category sketch, the compact row."""

from __future__ import annotations

import math

import pytest

from operators.behavior_features import (
    FEATURE_NAMES,
    BehaviorStats,
    BehaviorStatsError,
    behavior_features,
    update_stats,
)
from operators.profile_tracker import ProfileTracker
from state_schemas.events import CanonicalEvent

MIN = 60_000
T0 = 1_511_658_000_000  # 2017-11-26, the Taobao sample


def event(i: int, name: str, ts: int, category: str = "c1") -> CanonicalEvent:
    return CanonicalEvent(f"m{i}", i, "u1", "u1", None, "track", name, T0 + ts, f"p{i}", category)


def replay(tracker: ProfileTracker, events: list[CanonicalEvent]) -> tuple[BehaviorStats, dict[str, float]]:
    state, stats = None, None
    for e in events:
        state, _ = tracker.process_one(state, e)
        stats = update_stats(stats, e, state)
    assert stats is not None and state is not None
    return stats, behavior_features(stats, state, events[-1].timestamp)


def test_behavior_features_count_rates_sessions_and_tenure(tracker: ProfileTracker) -> None:
    events = [
        event(1, "product_viewed", 0, "a"),
        event(2, "product_viewed", 10 * MIN, "b"),
        event(3, "product_added", 20 * MIN, "b"),
        # 2 hours later: a second session (gap 30m)
        event(4, "order_completed", 140 * MIN, "b"),
    ]
    stats, f = replay(tracker, events)
    assert list(f) == list(FEATURE_NAMES)
    assert (stats.events, stats.views, stats.cart_adds, stats.purchases) == (4, 2, 1, 1)
    assert f["events"] == pytest.approx(math.log1p(4))
    assert f["sessions"] == pytest.approx(math.log1p(2))
    assert f["cart_rate"] == pytest.approx(0.25)
    assert f["purchases_per_session"] == pytest.approx(math.log1p(0.5))
    assert f["views_per_session"] == pytest.approx(math.log1p(1.0))
    # closed session 20 min + open one-event session 0 min, over 2 sessions
    assert f["session_minutes"] == pytest.approx(math.log1p(10.0))
    assert f["tenure_hours"] == pytest.approx(math.log1p(140 / 60))
    assert f["categories"] == pytest.approx(math.log1p(stats.distinct_categories))
    assert 1.9 < stats.distinct_categories < 2.2


def test_behavior_stats_row_round_trips_and_stays_small(tracker: ProfileTracker) -> None:
    events = [event(i, "product_viewed", i * MIN, f"cat{i}") for i in range(200)]
    stats, _ = replay(tracker, events)
    row = stats.to_list()
    assert BehaviorStats.from_list(row) == stats
    import orjson

    assert len(orjson.dumps(row)) < 160  # bytes per user matter: the whole profile targets <= 1 KB
    assert 150 < stats.distinct_categories < 311  # the sketch saturates, it does not overflow


def test_behavior_stats_refuses_other_layouts() -> None:
    with pytest.raises(BehaviorStatsError, match="version 2"):
        BehaviorStats.from_list([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(BehaviorStatsError):
        BehaviorStats.from_list([1, 2, 3])


def test_behavior_features_of_a_first_event_are_finite(tracker: ProfileTracker) -> None:
    _, f = replay(tracker, [event(1, "product_favorited", 5, None)])  # type: ignore[arg-type]
    assert f["fav_rate"] == 1.0 and f["categories"] == 0.0
    assert all(math.isfinite(v) for v in f.values())
