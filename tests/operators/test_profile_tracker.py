"""ProfileTracker with the default rules (config/segments.yaml): scripted sessions, exact change records.

Times are epoch ms. ``D0`` is the UTC day 2026-11-26; ``T0`` is 10:00 UTC that day. A brand-new user's first
event always enters ``weekly_active`` and ``active``; tests about other segments look past that with
``after_first``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from operators.normalize import dedup_key
from operators.profile_tracker import ProfileTracker
from operators.segment_rules import SegmentRules
from state_schemas import profile_state
from state_schemas.events import CanonicalEvent
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import SegmentChange
from tests.conftest import DEFAULT_RULES_PATH

SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
RULES_VERSION = SegmentRules.from_yaml(DEFAULT_RULES_PATH).version  # what every rule change records
D0 = 20_783  # 2026-11-26 as a UTC day number
T0 = D0 * DAY + 10 * HOUR  # 2026-11-26T10:00:00Z
GAP = 30 * MINUTE

VIEW, CART, BUY, PAGE = "product_viewed", "product_added", "order_completed", "page_viewed"
HESITANT = (
    "interested_but_hesitant",
    "Viewed more than 5 products and added to cart in this session, but has not bought",
)
ABANDONER = ("cart_abandoner", "Added to cart and has not bought within 30m")


def event(name: str, at: int, message_id: str | None = None, user: str = "u1") -> CanonicalEvent:
    message_id = message_id or f"{name}@{at}"
    kind = "page" if name == PAGE else "track"
    return CanonicalEvent(message_id, dedup_key(message_id), user, user, None, kind, name, at)


def feed(
    tracker: ProfileTracker, events: Iterable[CanonicalEvent], state: ProfileState | None = None
) -> tuple[ProfileState, list[list[SegmentChange]]]:
    """Process ``events`` in the given order; the changes of each event, one list per event."""
    per_event = []
    for e in events:
        state, changes = tracker.process_one(state, e)
        per_event.append(changes)
    assert state is not None
    return state, per_event


def after_first(per_event: list[list[SegmentChange]]) -> list[SegmentChange]:
    return [c for changes in per_event[1:] for c in changes]


def brief(changes: Iterable[SegmentChange]) -> list[tuple[str, str, str, int]]:
    return [(c.segment, c.change, c.trigger, c.event_time) for c in changes]


def change(
    rule: tuple[str, str], kind: str, facts: dict[str, int], trigger: str, at: int, message_id: str | None
) -> SegmentChange:
    return SegmentChange("u1", rule[0], "rule", kind, rule[1], facts, trigger, at, message_id, RULES_VERSION)


def hesitant_facts(views: int, carts: int, purchases: int) -> dict[str, int]:
    return {"session.cart_adds": carts, "session.product_views": views, "session.purchases": purchases}


# -- first event -----------------------------------------------------------------------------------


def test_profile_tracker_first_event_enters_weekly_active_and_active(tracker: ProfileTracker) -> None:
    state, changes = tracker.process_one(None, event(VIEW, T0, "m1"))

    assert changes == [
        SegmentChange(
            "u1",
            "weekly_active",
            "rule",
            "enter",
            "Active in the last 7 days, on fewer than 5 of them",
            {"days_active_7d": 1},
            "event",
            T0,
            "m1",
            RULES_VERSION,
        ),
        SegmentChange(
            "u1",
            "active",
            "rule",
            "enter",
            "Last event less than 7 days ago",
            {"idle_ms": 0},
            "event",
            T0,
            "m1",
            RULES_VERSION,
        ),
    ]
    assert state == ProfileState(
        clock=T0,
        last_seen=T0,
        session_start=T0,
        session_last=T0,
        session_events=1,
        session_views=1,
        sessions_total=1,
        active_days=[D0],
        segments=["weekly_active", "active"],
        recent_ids=[dedup_key("m1")],
    )


def test_profile_tracker_a_traits_only_identify_is_not_activity(tracker: ProfileTracker) -> None:
    # tailor import sends identify with context.active false: it must not make anyone "active".
    imported = CanonicalEvent("imp-1", dedup_key("imp-1"), "u1", "u1", None, "identify", "traits_updated", T0)

    state, changes = tracker.process_one(None, imported)

    assert changes == []
    assert (state.sessions_total, state.last_seen, state.active_days, state.clock) == (0, 0, [], 0)
    assert tracker.is_duplicate(state, imported)  # importing the same row again changes nothing


def test_profile_tracker_a_plain_identify_is_activity(tracker: ProfileTracker) -> None:
    login = CanonicalEvent("id-1", dedup_key("id-1"), "u1", "u1", None, "identify", "identified", T0)

    _, changes = tracker.process_one(None, login)

    assert {c.segment for c in changes} == {"weekly_active", "active"}


def test_profile_tracker_hands_back_the_state_it_was_given(tracker: ProfileTracker) -> None:
    state, _ = tracker.process_one(None, event(VIEW, T0))

    returned, _ = tracker.process_one(state, event(VIEW, T0 + 1))

    assert returned is state


# -- interested_but_hesitant -------------------------------------------------------------------------


def test_profile_tracker_six_views_and_a_cart_enter_interested_but_hesitant(tracker: ProfileTracker) -> None:
    views = [event(VIEW, T0 + i * MINUTE) for i in range(6)]

    _, per_event = feed(tracker, [*views, event(CART, T0 + 6 * MINUTE, "cart-1")])

    assert after_first(per_event) == [
        change(HESITANT, "enter", hesitant_facts(6, 1, 0), "event", T0 + 6 * MINUTE, "cart-1"),
    ]


def test_profile_tracker_cart_before_the_sixth_view_enters_on_that_view(tracker: ProfileTracker) -> None:
    stream = [event(VIEW, T0), event(CART, T0 + MINUTE)] + [event(VIEW, T0 + i * MINUTE) for i in range(2, 7)]

    _, per_event = feed(tracker, stream)

    assert brief(after_first(per_event)) == [("interested_but_hesitant", "enter", "event", T0 + 6 * MINUTE)]
    assert per_event[-1][0].message_id == f"{VIEW}@{T0 + 6 * MINUTE}"


def test_profile_tracker_exactly_five_views_and_a_cart_do_not_enter_interested_but_hesitant(
    tracker: ProfileTracker,
) -> None:
    views = [event(VIEW, T0 + i * MINUTE) for i in range(5)]

    state, per_event = feed(tracker, [*views, event(CART, T0 + 5 * MINUTE)])

    assert after_first(per_event) == []
    assert (state.session_views, state.session_cart_adds) == (5, 1)


def test_profile_tracker_page_views_are_not_product_views(tracker: ProfileTracker) -> None:
    pages = [event(PAGE, T0 + i * MINUTE) for i in range(8)]

    state, per_event = feed(tracker, [*pages, event(CART, T0 + 8 * MINUTE)])

    assert after_first(per_event) == []
    assert (state.session_events, state.session_views) == (9, 0)


def test_profile_tracker_purchase_exits_interested_but_hesitant(tracker: ProfileTracker) -> None:
    stream = [*(event(VIEW, T0 + i * MINUTE) for i in range(6)), event(CART, T0 + 6 * MINUTE)]
    state, _ = feed(tracker, stream)

    state, changes = tracker.process_one(state, event(BUY, T0 + 10 * MINUTE, "order-1"))

    assert changes == [
        change(HESITANT, "exit", hesitant_facts(6, 1, 1), "event", T0 + 10 * MINUTE, "order-1")
    ]
    assert (state.cart_pending_since, state.purchases_total, state.session_purchases) == (0, 1, 1)
    # the cart was bought: no abandonment later
    assert tracker.on_timer(state, "u1", T0 + 5 * HOUR)[1] == []


def test_profile_tracker_session_end_exits_interested_but_hesitant_by_timer(tracker: ProfileTracker) -> None:
    # cart at +2 min, six views up to +6 min: abandonment is due at +32 min, the session ends at +36 min
    views = [event(VIEW, T0 + i * MINUTE) for i in (0, 1, 3, 4, 5, 6)]
    state, per_event = feed(tracker, [*views[:2], event(CART, T0 + 2 * MINUTE), *views[2:]])
    assert brief(after_first(per_event)) == [("interested_but_hesitant", "enter", "event", T0 + 6 * MINUTE)]
    deadlines = [tracker.next_deadline(state)]

    early = tracker.on_timer(state, "u1", T0 + 32 * MINUTE - 1)[1]
    at_cart_deadline = tracker.on_timer(state, "u1", T0 + 32 * MINUTE)[1]
    deadlines.append(tracker.next_deadline(state))
    before_end = tracker.on_timer(state, "u1", T0 + 36 * MINUTE - 1)[1]
    at_end = tracker.on_timer(state, "u1", T0 + 36 * MINUTE)[1]

    assert deadlines == [T0 + 32 * MINUTE, T0 + 36 * MINUTE]
    assert (early, before_end) == ([], [])
    assert at_cart_deadline == [
        change(ABANDONER, "enter", {"cart.pending_ms": GAP}, "timer", T0 + 32 * MINUTE, None)
    ]
    assert at_end == [change(HESITANT, "exit", hesitant_facts(0, 0, 0), "timer", T0 + 36 * MINUTE, None)]
    assert (state.session_open, state.sessions_total, state.segments) == (
        False,
        1,
        ["cart_abandoner", "weekly_active", "active"],
    )


# -- cart_abandoner ---------------------------------------------------------------------------------


def test_profile_tracker_cart_abandoner_enters_exactly_thirty_minutes_after_the_cart(
    tracker: ProfileTracker,
) -> None:
    state, _ = tracker.process_one(None, event(CART, T0, "cart-1"))

    deadline = tracker.next_deadline(state)
    early = tracker.on_timer(state, "u1", T0 + GAP - 1)[1]
    on_time = tracker.on_timer(state, "u1", T0 + GAP)[1]

    assert deadline == T0 + GAP
    assert early == []
    assert on_time == [change(ABANDONER, "enter", {"cart.pending_ms": GAP}, "timer", T0 + GAP, None)]


def test_profile_tracker_later_event_first_fires_the_due_cart_deadline(tracker: ProfileTracker) -> None:
    state, _ = feed(tracker, [event(CART, T0), event(VIEW, T0 + 20 * MINUTE)])

    state, changes = tracker.process_one(state, event(VIEW, T0 + 35 * MINUTE, "late-view"))

    # the change happened at +30 min, before the event; the event itself changes nothing
    assert changes == [change(ABANDONER, "enter", {"cart.pending_ms": GAP}, "timer", T0 + GAP, None)]
    assert (state.sessions_total, state.session_views, state.clock) == (1, 2, T0 + 35 * MINUTE)


def test_profile_tracker_purchase_within_thirty_minutes_prevents_cart_abandoner(
    tracker: ProfileTracker,
) -> None:
    state, per_event = feed(tracker, [event(CART, T0), event(BUY, T0 + GAP - 1)])

    later = tracker.on_timer(state, "u1", T0 + 5 * HOUR)[1]

    assert (after_first(per_event), later) == ([], [])


def test_profile_tracker_purchase_at_exactly_thirty_minutes_is_too_late(tracker: ProfileTracker) -> None:
    """Time runs first, then the event: the deadline at +30 min fires before a purchase stamped +30 min."""
    state, _ = tracker.process_one(None, event(CART, T0))

    _, changes = tracker.process_one(state, event(BUY, T0 + GAP, "order-1"))

    assert changes == [
        change(ABANDONER, "enter", {"cart.pending_ms": GAP}, "timer", T0 + GAP, None),
        change(ABANDONER, "exit", {"cart.pending_ms": -1}, "event", T0 + GAP, "order-1"),
    ]


def test_profile_tracker_later_purchase_exits_cart_abandoner(tracker: ProfileTracker) -> None:
    state, _ = tracker.process_one(None, event(CART, T0))
    state, entered = tracker.on_timer(state, "u1", T0 + GAP)

    state, changes = tracker.process_one(state, event(BUY, T0 + 45 * MINUTE, "order-1"))

    assert brief(entered) == [("cart_abandoner", "enter", "timer", T0 + GAP)]
    assert changes == [
        change(ABANDONER, "exit", {"cart.pending_ms": -1}, "event", T0 + 45 * MINUTE, "order-1")
    ]
    assert (state.sessions_total, state.purchases_total) == (2, 1)


def test_profile_tracker_cart_pending_counts_from_the_first_unbought_cart(tracker: ProfileTracker) -> None:
    state, _ = feed(tracker, [event(CART, T0), event(CART, T0 + 10 * MINUTE)])

    assert (state.cart_pending_since, tracker.next_deadline(state)) == (T0, T0 + GAP)


# -- sessions --------------------------------------------------------------------------------------


def test_profile_tracker_event_just_inside_the_gap_continues_the_session(tracker: ProfileTracker) -> None:
    state, _ = feed(tracker, [event(VIEW, T0), event(VIEW, T0 + GAP - 1)])

    assert (state.sessions_total, state.session_start, state.session_last, state.session_events) == (
        1,
        T0,
        T0 + GAP - 1,
        2,
    )


def test_profile_tracker_event_thirty_minutes_after_the_last_starts_a_new_session(
    tracker: ProfileTracker,
) -> None:
    state, _ = feed(tracker, [event(VIEW, T0), event(VIEW, T0 + 10 * MINUTE), event(VIEW, T0 + 40 * MINUTE)])

    assert (state.sessions_total, state.session_start, state.session_last, state.session_events) == (
        2,
        T0 + 40 * MINUTE,
        T0 + 40 * MINUTE,
        1,
    )


def test_profile_tracker_counts_sessions_over_a_day(tracker: ProfileTracker) -> None:
    stream = [event(VIEW, T0 + i * HOUR + j * MINUTE) for i in range(4) for j in (0, 5, 10)]

    state, _ = feed(tracker, stream)

    assert (state.sessions_total, state.session_events, state.session_views) == (4, 3, 3)


def test_profile_tracker_session_views_reset_with_a_new_session(tracker: ProfileTracker) -> None:
    first_session = [event(VIEW, T0 + i * MINUTE) for i in range(5)]
    second_session = [event(VIEW, T0 + HOUR), event(CART, T0 + HOUR + MINUTE)]

    state, per_event = feed(tracker, [*first_session, *second_session])

    assert after_first(per_event) == []
    assert (state.session_views, state.session_cart_adds) == (1, 1)


# -- activity frequency and recency -----------------------------------------------------------------


def test_profile_tracker_five_distinct_days_in_seven_enter_daily_active(tracker: ProfileTracker) -> None:
    stream = [event(VIEW, T0 + k * DAY, f"day-{k}") for k in range(5)]

    state, per_event = feed(tracker, stream)

    assert per_event[1:4] == [[], [], []]
    assert per_event[4] == [
        SegmentChange(
            "u1",
            "weekly_active",
            "rule",
            "exit",
            "Active in the last 7 days, on fewer than 5 of them",
            {"days_active_7d": 5},
            "event",
            T0 + 4 * DAY,
            "day-4",
            RULES_VERSION,
        ),
        SegmentChange(
            "u1",
            "daily_active",
            "rule",
            "enter",
            "Active on at least 5 of the last 7 days",
            {"days_active_7d": 5},
            "event",
            T0 + 4 * DAY,
            "day-4",
            RULES_VERSION,
        ),
    ]
    assert state.active_days == [D0, D0 + 1, D0 + 2, D0 + 3, D0 + 4]


def test_profile_tracker_several_events_on_one_day_count_as_one_active_day(tracker: ProfileTracker) -> None:
    stream = [event(VIEW, T0 + k * HOUR) for k in range(6)] + [event(VIEW, T0 + DAY)]

    state, per_event = feed(tracker, stream)

    assert after_first(per_event) == []
    assert state.active_days == [D0, D0 + 1]


def test_profile_tracker_daily_active_drops_when_the_first_day_leaves_the_window_at_midnight(
    tracker: ProfileTracker,
) -> None:
    state, _ = feed(tracker, [event(VIEW, T0 + k * DAY) for k in range(5)])

    before = tracker.on_timer(state, "u1", (D0 + 7) * DAY - 1)[1]
    at_midnight = tracker.on_timer(state, "u1", (D0 + 7) * DAY)[1]

    assert before == []
    assert at_midnight == [
        SegmentChange(
            "u1",
            "daily_active",
            "rule",
            "exit",
            "Active on at least 5 of the last 7 days",
            {"days_active_7d": 4},
            "timer",
            (D0 + 7) * DAY,
            None,
            RULES_VERSION,
        ),
        SegmentChange(
            "u1",
            "weekly_active",
            "rule",
            "enter",
            "Active in the last 7 days, on fewer than 5 of them",
            {"days_active_7d": 4},
            "timer",
            (D0 + 7) * DAY,
            None,
            RULES_VERSION,
        ),
    ]


def test_profile_tracker_idle_user_walks_down_every_tier_at_exact_times(tracker: ProfileTracker) -> None:
    """End of stream: one far-future timer resolves every deadline in order, with increasing event_time.

    Frequency tiers move at UTC midnights (a day leaves the window); recency tiers move exactly 7 and 30
    days after the last event (10:00 UTC on day D0 + 4).
    """
    state, _ = feed(tracker, [event(VIEW, T0 + k * DAY) for k in range(5)])
    last = T0 + 4 * DAY

    _, changes = tracker.on_timer(state, "u1", T0 + 365 * DAY)

    assert brief(changes) == [
        ("daily_active", "exit", "timer", (D0 + 7) * DAY),
        ("weekly_active", "enter", "timer", (D0 + 7) * DAY),
        ("weekly_active", "exit", "timer", (D0 + 11) * DAY),
        ("monthly_active", "enter", "timer", (D0 + 11) * DAY),
        ("active", "exit", "timer", last + 7 * DAY),
        ("lapsing", "enter", "timer", last + 7 * DAY),
        ("monthly_active", "exit", "timer", (D0 + 34) * DAY),
        ("lapsing", "exit", "timer", last + 30 * DAY),
        ("dormant", "enter", "timer", last + 30 * DAY),
    ]
    assert [c.event_time for c in changes] == sorted(c.event_time for c in changes)
    assert [c.facts for c in changes if c.segment == "monthly_active"] == [
        {"days_active_30d": 5, "days_active_7d": 0},
        {"days_active_30d": 0, "days_active_7d": 0},
    ]
    assert (state.segments, state.clock, tracker.next_deadline(state)) == (["dormant"], T0 + 365 * DAY, None)


def test_profile_tracker_single_visit_recency_and_frequency_boundaries(tracker: ProfileTracker) -> None:
    state, _ = tracker.process_one(None, event(VIEW, T0))

    steps = [
        tracker.on_timer(state, "u1", T0 + 7 * DAY - 1)[1],
        tracker.on_timer(state, "u1", T0 + 7 * DAY)[1],
        tracker.on_timer(state, "u1", T0 + 30 * DAY - 1)[1],
        tracker.on_timer(state, "u1", T0 + 30 * DAY)[1],
    ]

    assert [brief(step) for step in steps] == [
        [
            ("weekly_active", "exit", "timer", (D0 + 7) * DAY),
            ("monthly_active", "enter", "timer", (D0 + 7) * DAY),
        ],
        [("active", "exit", "timer", T0 + 7 * DAY), ("lapsing", "enter", "timer", T0 + 7 * DAY)],
        [("monthly_active", "exit", "timer", (D0 + 30) * DAY)],
        [("lapsing", "exit", "timer", T0 + 30 * DAY), ("dormant", "enter", "timer", T0 + 30 * DAY)],
    ]


def test_profile_tracker_returning_dormant_user_becomes_active_again(tracker: ProfileTracker) -> None:
    state, _ = tracker.process_one(None, event(VIEW, T0))
    state, _ = tracker.on_timer(state, "u1", T0 + 40 * DAY)

    state, changes = tracker.process_one(state, event(VIEW, T0 + 40 * DAY, "back"))

    assert brief(changes) == [
        ("dormant", "exit", "event", T0 + 40 * DAY),
        ("weekly_active", "enter", "event", T0 + 40 * DAY),
        ("active", "enter", "event", T0 + 40 * DAY),
    ]
    assert (state.sessions_total, state.active_days) == (2, [D0 + 40])


def test_profile_tracker_next_deadline_walks_through_every_timer(tracker: ProfileTracker) -> None:
    state, _ = tracker.process_one(None, event(VIEW, T0))
    deadlines = [tracker.next_deadline(ProfileState()), tracker.next_deadline(state)]

    while (due := tracker.next_deadline(state)) is not None:
        tracker.on_timer(state, "u1", due)
        deadlines.append(tracker.next_deadline(state))

    assert deadlines == [
        None,
        T0 + GAP,  # session end
        (D0 + 7) * DAY,  # the day leaves the 7-day window
        T0 + 7 * DAY,  # idle 7 days
        (D0 + 30) * DAY,  # the day leaves the 30-day window
        T0 + 30 * DAY,  # idle 30 days
        None,
    ]


def test_profile_tracker_on_timer_reports_the_given_user_id(tracker: ProfileTracker) -> None:
    state, _ = tracker.process_one(None, event(CART, T0, user="anon-7"))

    _, changes = tracker.on_timer(state, "anon-7", T0 + GAP)

    assert [(c.user_id, c.segment) for c in changes] == [("anon-7", "cart_abandoner")]


def test_profile_tracker_on_timer_before_the_clock_changes_nothing(tracker: ProfileTracker) -> None:
    state, _ = feed(tracker, [event(CART, T0), event(VIEW, T0 + 10 * MINUTE)])
    before = profile_state.encode(state)

    _, changes = tracker.on_timer(state, "u1", T0)

    assert (changes, profile_state.encode(state)) == ([], before)


# -- duplicates ------------------------------------------------------------------------------------


def test_profile_tracker_duplicate_message_never_counts_twice(tracker: ProfileTracker) -> None:
    state, _ = feed(tracker, [event(VIEW, T0, "m1"), event(CART, T0 + MINUTE, "m2")])
    before = profile_state.encode(state)
    replay = event(VIEW, T0, "m1")
    replay_later = event(VIEW, T0 + 5 * MINUTE, "m2")  # same id, other content: still the same message

    flags = [tracker.is_duplicate(state, replay), tracker.is_duplicate(state, replay_later)]
    outputs = [tracker.process_one(state, replay)[1], tracker.process_one(state, replay_later)[1]]

    assert flags == [True, True]
    assert outputs == [[], []]
    assert profile_state.encode(state) == before


def test_profile_tracker_is_duplicate_is_false_for_new_messages_and_new_users(
    tracker: ProfileTracker,
) -> None:
    state, _ = tracker.process_one(None, event(VIEW, T0, "m1"))

    assert [
        tracker.is_duplicate(None, event(VIEW, T0, "m1")),
        tracker.is_duplicate(state, event(VIEW, T0, "m2")),
    ] == [
        False,
        False,
    ]


def test_profile_tracker_replayed_views_do_not_make_a_user_hesitant(tracker: ProfileTracker) -> None:
    views = [event(VIEW, T0 + i * MINUTE, f"v{i}") for i in range(5)]
    replays = [event(VIEW, T0 + i * MINUTE, f"v{i}") for i in range(5)]

    state, per_event = feed(tracker, [*views, *replays, event(CART, T0 + 6 * MINUTE)])

    assert after_first(per_event) == []
    assert (state.session_events, state.session_views) == (6, 5)


def test_profile_tracker_remembers_only_the_last_dedup_window_ids(tracker: ProfileTracker) -> None:
    """Documented bound: with dedup_window 16, a replay arriving 16 messages later counts again."""
    first = event(VIEW, T0, "m0")
    others = [event(VIEW, T0 + i * SECOND, f"m{i}") for i in range(1, 17)]
    state, _ = feed(tracker, [first, *others])

    remembered = tracker.is_duplicate(state, event(VIEW, T0 + 20 * SECOND, "m1"))
    forgotten = tracker.is_duplicate(state, event(VIEW, T0 + 20 * SECOND, "m0"))

    assert (remembered, forgotten, len(state.recent_ids)) == (True, False, 16)


# -- out of order and late events ------------------------------------------------------------------


def test_profile_tracker_out_of_order_events_within_a_session_count_normally(tracker: ProfileTracker) -> None:
    stream = [event(VIEW, T0), event(VIEW, T0 + 5 * MINUTE), event(CART, T0 + 2 * MINUTE, "late-cart")]

    state, per_event = feed(tracker, stream)

    assert after_first(per_event) == []
    assert (state.session_start, state.session_last, state.clock, state.cart_pending_since) == (
        T0,
        T0 + 5 * MINUTE,
        T0 + 5 * MINUTE,
        T0 + 2 * MINUTE,
    )
    assert (state.sessions_total, state.session_events, state.session_cart_adds) == (1, 3, 1)
    assert tracker.next_deadline(state) == T0 + 32 * MINUTE  # counted from the cart's own time


def test_profile_tracker_late_event_before_the_session_start_extends_it_backwards(
    tracker: ProfileTracker,
) -> None:
    state, _ = feed(tracker, [event(VIEW, T0 + 10 * MINUTE), event(VIEW, T0)])

    assert (state.session_start, state.session_last, state.sessions_total, tracker.next_deadline(state)) == (
        T0,
        T0 + 10 * MINUTE,
        1,
        T0 + 40 * MINUTE,
    )


def test_profile_tracker_late_event_changes_carry_the_clock_time_and_the_late_message(
    tracker: ProfileTracker,
) -> None:
    """A change caused by a late event happens when it is processed: event_time is the user's clock."""
    views = [event(VIEW, T0 + i * MINUTE) for i in (0, 1, 2, 4, 5)]
    state, _ = feed(tracker, [*views, event(CART, T0 + 6 * MINUTE)])

    _, changes = tracker.process_one(state, event(VIEW, T0 + 3 * MINUTE, "late-view"))

    assert changes == [
        change(HESITANT, "enter", hesitant_facts(6, 1, 0), "event", T0 + 6 * MINUTE, "late-view")
    ]


def test_profile_tracker_late_event_for_a_closed_session_counts_as_its_own_closed_session(
    tracker: ProfileTracker,
) -> None:
    """The closed session's counters are gone, so a late event cannot rejoin it: it makes a one-event
    session of its own that is closed at once (its gap is over), and the changes it causes are reported
    with trigger "event" and its messageId (regression: they used to say "timer" with no messageId)."""
    state, _ = tracker.process_one(None, event(VIEW, T0))
    state, _ = tracker.on_timer(state, "u1", T0 + 2 * HOUR)

    state, changes = tracker.process_one(state, event(CART, T0 + 10 * MINUTE, "late-cart"))

    assert changes == [
        change(ABANDONER, "enter", {"cart.pending_ms": 110 * MINUTE}, "event", T0 + 2 * HOUR, "late-cart"),
    ]
    assert (state.session_open, state.sessions_total, state.clock, state.last_seen) == (
        False,
        2,
        T0 + 2 * HOUR,
        T0 + 10 * MINUTE,
    )


def test_profile_tracker_late_event_within_the_gap_of_a_closed_session_opens_a_new_one(
    tracker: ProfileTracker,
) -> None:
    """Ambiguity, documented: in order, T0 and T0+10min would be one session; once the first session was
    closed by a timer, the late event starts a second session that stays open until its own gap ends."""
    state, _ = tracker.process_one(None, event(VIEW, T0))
    state, _ = tracker.on_timer(state, "u1", T0 + 35 * MINUTE)

    state, changes = tracker.process_one(state, event(VIEW, T0 + 10 * MINUTE))

    assert changes == []
    assert (state.session_open, state.session_start, state.sessions_total, tracker.next_deadline(state)) == (
        True,
        T0 + 10 * MINUTE,
        2,
        T0 + 40 * MINUTE,
    )


@pytest.mark.parametrize("late_by", [1, 10 * MINUTE, GAP - 1])
def test_profile_tracker_late_event_never_moves_the_clock_back(tracker: ProfileTracker, late_by: int) -> None:
    state, _ = feed(tracker, [event(VIEW, T0), event(VIEW, T0 + 20 * MINUTE)])

    state, _ = tracker.process_one(state, event(VIEW, T0 + 20 * MINUTE - late_by))

    assert (state.clock, state.session_last, state.last_seen) == (T0 + 20 * MINUTE,) * 3


def test_profile_tracker_late_event_of_an_earlier_closed_session_leaves_the_open_session_alone(
    tracker: ProfileTracker,
) -> None:
    """Regression: a view from a morning session arriving late used to be merged into the afternoon session
    (start pulled back two hours, a sixth view) and wrongly entered interested_but_hesitant. Like a late
    event with no session open, it now counts as a one-event session of its own, already closed."""
    afternoon = [event(VIEW, T0 + 2 * HOUR + i * MINUTE) for i in range(5)] + [
        event(CART, T0 + 2 * HOUR + 6 * MINUTE)
    ]
    state, _ = feed(tracker, afternoon)

    state, changes = tracker.process_one(state, event(VIEW, T0, "morning-view"))

    assert changes == []
    assert (state.session_start, state.session_events, state.session_views, state.sessions_total) == (
        T0 + 2 * HOUR,
        6,
        5,
        2,
    )
    assert state.active_days == [D0]


def test_profile_tracker_late_event_gap_boundary_before_the_open_session(tracker: ProfileTracker) -> None:
    """Same rule as in order: events a full gap apart are separate sessions, 1 ms less joins them."""
    outcomes = []
    for late_at in (T0 + 1, T0):
        state, _ = tracker.process_one(None, event(VIEW, T0 + GAP))
        state, _ = tracker.process_one(state, event(VIEW, late_at))
        outcomes.append((state.session_start, state.session_views, state.sessions_total))

    assert outcomes == [(T0 + 1, 2, 1), (T0 + GAP, 1, 2)]


def test_profile_tracker_late_cart_before_a_processed_purchase_is_not_abandoned(
    tracker: ProfileTracker,
) -> None:
    state, _ = feed(tracker, [event(VIEW, T0), event(BUY, T0 + 5 * MINUTE), event(CART, T0 + 2 * MINUTE)])

    _, changes = tracker.on_timer(state, "u1", T0 + 5 * HOUR)

    assert [c.segment for c in changes if c.change == "enter"] == []
