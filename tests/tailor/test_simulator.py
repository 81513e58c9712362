"""ShopperSimulator: repeatable, realistic, and every event is valid Segment-Spec input."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise

import orjson
import pytest

from evaluation.simulator import PERSONAS, ShopperSimulator, SimulationError
from operators.normalize import normalize
from state_schemas.events import CanonicalEvent

T0 = 1_795_687_200_000  # 2026-11-26T10:00:00Z
MINUTE = 60_000


def user_of(event: dict) -> str:
    return event.get("userId") or event["anonymousId"]


def visits(events: list[dict]) -> list[list[dict]]:
    """Split each user's events into visits: every visit starts with a page event."""
    open_visit: dict[str, list[dict]] = {}
    done: list[list[dict]] = []
    for event in events:
        user = user_of(event)
        if event["type"] == "page" and user in open_visit:
            done.append(open_visit.pop(user))
        open_visit.setdefault(user, []).append(event)
    return done + list(open_visit.values())


def names(visit: list[dict]) -> Counter:
    return Counter(e.get("event", "page") for e in visit)


@pytest.fixture(scope="module")
def stream() -> list[dict]:
    sim = ShopperSimulator(seed=11, users=500, items=300, categories=8, concurrency=40)
    return list(sim.events(T0, rate=20, count=5_000))


def finished_visits(events: list[dict]) -> list[list[dict]]:
    """Visits that start in the first half of the stream: long over by its end (40 open at a time)."""
    first_half = {id(e) for e in events[: len(events) // 2]}
    return [v for v in visits(events) if id(v[0]) in first_half]


def test_simulator_same_seed_same_events():
    first = list(ShopperSimulator(seed=3, users=100).events(T0, rate=50, count=500))
    again = list(ShopperSimulator(seed=3, users=100).events(T0, rate=50, count=500))
    other = list(ShopperSimulator(seed=4, users=100).events(T0, rate=50, count=500))

    assert first == again
    assert first != other


def test_simulator_events_is_repeatable_on_one_instance():
    sim = ShopperSimulator(seed=3, users=100)

    assert list(sim.events(T0, 50, 200)) == list(sim.events(T0, 50, 200))


def test_simulator_every_event_normalizes(stream):
    normalized = [normalize(orjson.dumps(e), now_ms=T0) for e in stream]

    assert all(isinstance(e, CanonicalEvent) for e in normalized)
    assert len({e.message_id for e in normalized}) == len(stream)
    assert set(Counter(e.name for e in normalized)) == {
        "page_viewed",
        "product_viewed",
        "product_added",
        "product_favorited",
        "checkout_started",
        "order_completed",
    }
    assert all(e.item_id and e.category for e in normalized if e.type == "track")


def test_simulator_fast_mode_timestamps_advance_at_rate(stream):
    stamps = [normalize(orjson.dumps(e), now_ms=T0).timestamp for e in stream]

    assert all(a <= b for a, b in pairwise(stamps))
    assert stamps[0] == T0 and stamps[-1] == T0 + (len(stream) - 1) * 50  # 20 events/s
    assert all(e["timestamp"].endswith("Z") and len(e["timestamp"]) == 24 for e in stream)


def test_simulator_duration_gives_rate_times_seconds_events():
    assert sum(1 for _ in ShopperSimulator(seed=1, users=50).events(T0, rate=40, duration_s=2.5)) == 100


def test_simulator_interleaves_many_users(stream):
    first_hundred = {user_of(e) for e in stream[:100]}

    assert len(first_hundred) > 30


def test_simulator_persona_mix_shows_up_in_behavior(stream):
    all_visits = finished_visits(stream)
    carted = [v for v in all_visits if names(v)["Product Added"] and not names(v)["Order Completed"]]
    hesitant = [v for v in carted if names(v)["Product Viewed"] > 5]
    abandoned = [v for v in carted if names(v)["Product Viewed"] <= 5]
    bought = [v for v in all_visits if names(v)["Order Completed"]]
    browsed = [v for v in all_visits if set(names(v)) <= {"page", "Product Viewed"}]

    assert hesitant and abandoned and bought and browsed
    assert {v[0]["context"]["persona"] for v in hesitant} == {"hesitant"}
    assert Counter(e["context"]["persona"] for e in stream).keys() == set(PERSONAS)
    for visit in bought:  # a purchase follows a checkout of the same cart
        steps = [e.get("event") for e in visit]
        assert steps.index("Checkout Started") < steps.index("Order Completed")
        assert visit[-1]["properties"]["products"] == visit[-2]["properties"]["products"]
        assert visit[-1]["properties"]["order_id"] == visit[-2]["properties"]["order_id"]


def test_simulator_browsers_are_often_anonymous_and_never_buy(stream):
    anonymous = [e for e in stream if "anonymousId" in e]

    assert anonymous and all("userId" not in e for e in anonymous)
    assert {e["context"]["persona"] for e in anonymous} == {"browser"}
    assert {e.get("event", "page") for e in anonymous} <= {"page", "Product Viewed"}


def test_simulator_loyal_shoppers_come_back_later():
    sim = ShopperSimulator(seed=5, users=200, return_after_s=(2 * 3600, 4 * 3600))
    events = list(sim.events(T0, rate=1, count=30_000))  # about 8 simulated hours
    loyal_visits = defaultdict(list)
    for visit in visits(events):
        if visit[0]["context"]["persona"] == "loyal":
            start = normalize(orjson.dumps(visit[0]), now_ms=T0 + 10**9).timestamp
            loyal_visits[user_of(visit[0])].append(start)

    returning = {u: starts for u, starts in loyal_visits.items() if len(starts) > 1}
    assert returning
    assert all(b - a >= 2 * 3_600_000 for starts in returning.values() for a, b in pairwise(sorted(starts)))


def test_simulator_popularity_is_skewed(stream):
    views = Counter(e["properties"]["product_id"] for e in stream if e.get("event") == "Product Viewed")
    counts = sorted(views.values(), reverse=True)

    assert counts[0] > 10 * counts[len(counts) // 2]


def test_simulator_default_rules_find_hesitant_shoppers_and_cart_abandoners(stream, tracker):
    states: dict[str, object] = {}
    entered: Counter = Counter()
    for raw in stream:
        event = normalize(orjson.dumps(raw), now_ms=T0)
        states[event.user_key], changes = tracker.process_one(states.get(event.user_key), event)
        entered.update(c.segment for c in changes if c.change == "enter")
    end = normalize(orjson.dumps(stream[-1]), now_ms=T0).timestamp + 31 * MINUTE
    for user, state in states.items():
        _state, changes = tracker.on_timer(state, user, end)
        entered.update(c.segment for c in changes if c.change == "enter")

    assert entered["interested_but_hesitant"] > 0
    assert entered["cart_abandoner"] > 0


@pytest.mark.parametrize(
    "kwargs",
    [{"persona_mix": {"window_shopper": 1.0}}, {"persona_mix": {"buyer": 0.0}}, {"users": 0}, {"items": 0}],
)
def test_simulator_rejects_unusable_settings(kwargs):
    with pytest.raises(SimulationError):
        ShopperSimulator(**kwargs)


def test_simulator_rejects_non_positive_rate():
    with pytest.raises(SimulationError, match="rate must be"):
        next(ShopperSimulator().events(T0, rate=0, count=1))
