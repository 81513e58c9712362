"""Contracts every run of the segmentation step must keep (after River's ``utils/estimator_checks.py``).

A seeded random stream of a few hundred events over several users and weeks (out of order within
bounds, with replayed messages) is driven through the job's own per-user step
(``operators.segmentation_step``, via the in-process driver ``operators.segmenter``): events in arrival
order, state stored encoded, timers fired at the watermark, and a final far-future timer per user at
end of stream.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest

from operators.normalize import dedup_key
from operators.profile_tracker import ProfileTracker
from operators.segment_rules import SegmentRules
from operators.segmenter import EncodedProfileStore, Segmenter
from state_schemas import profile_state
from state_schemas.events import CanonicalEvent
from state_schemas.profile_state import ProfileState

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
T0 = 20_783 * DAY + 8 * HOUR  # 2026-11-26T08:00:00Z
END = T0 + 400 * DAY
LATENESS = 5 * MINUTE
NAMES = (
    ["product_viewed"] * 6 + ["product_added"] * 2 + ["order_completed", "page_viewed", "checkout_started"]
)

Output = tuple[str, str, list[Any]]


def random_stream(seed: int, users: int = 6, per_user: int = 60) -> list[CanonicalEvent]:
    rng = random.Random(seed)
    stream = []
    for u in range(users):
        user, at = f"u{u}", T0 + rng.randrange(6 * HOUR)
        for i in range(per_user):
            message_id = f"{user}-m{i}"
            name = rng.choice(NAMES)
            stream.append(
                CanonicalEvent(message_id, dedup_key(message_id), user, user, None, "track", name, at)
            )
            step = rng.random()
            if step < 0.75:
                at += rng.randrange(1_000, 6 * MINUTE)  # same session
            elif step < 0.95:
                at += rng.randrange(31 * MINUTE, 36 * HOUR)  # a new session, maybe a new day
            else:
                at += rng.randrange(6 * DAY, 40 * DAY)  # lapse
    stream.sort(key=lambda e: (e.timestamp, e.message_id))
    for i in range(len(stream) - 1):  # bounded disorder
        if rng.random() < 0.15:
            stream[i], stream[i + 1] = stream[i + 1], stream[i]
    for _ in range(len(stream) // 10):  # retries: the same message again, a little later
        i = rng.randrange(len(stream))
        stream.insert(min(len(stream), i + rng.randrange(1, 6)), stream[i])
    return stream


def run(
    rules: SegmentRules,
    stream: list[CanonicalEvent],
    restart_before: Callable[[int], bool] = lambda i: False,
    fire_timers: bool = True,
) -> tuple[list[Output], dict[str, bytes]]:
    """Drive the job's per-user step as the job does (``Segmenter``: encoded state, timers fired at the
    watermark, a final far-future timer per user at end of stream); ``restart_before(i)``: checkpoint, restore into
    a new step and driver before event ``i``."""

    def driver(encoded: dict[str, str], before: Segmenter | None = None) -> Segmenter:
        seg = Segmenter(rules, LATENESS if fire_timers else None, store=EncodedProfileStore(encoded))
        if before is not None:  # the watermark is where the source left it
            seg.watermark, seg.max_event_time = before.watermark, before.max_event_time
        return seg

    seg = driver({})
    outputs: list[Output] = []
    for i, e in enumerate(stream):
        if restart_before(i):
            seg = driver(dict(seg.store.encoded), seg)  # type: ignore[attr-defined]
        outputs.append(("event", e.message_id, [x.change for x in seg.process_event(e)]))
    for user in sorted(seg.store.users()):  # a final far-future timer per user
        seg.register_timer(user, END)
    outputs.append(("end", "", [x.change for x in seg.advance_watermark(END)]))
    return outputs, {u: s.encode() for u, s in seg.store.encoded.items()}  # type: ignore[attr-defined]


def changes_by_user(outputs: list[Output]) -> dict[str, list[Any]]:
    by_user: dict[str, list[Any]] = {}
    for _, _, changes in outputs:
        for c in changes:
            by_user.setdefault(c.user_id, []).append(c)
    return by_user


@pytest.fixture(scope="module")
def stream() -> list[CanonicalEvent]:
    return random_stream(seed=7)


def test_contract_stream_exercises_every_default_segment(
    default_rules: SegmentRules, stream: list[CanonicalEvent]
) -> None:
    outputs, _ = run(default_rules, stream)

    seen = {(c.segment, c.change) for _, _, changes in outputs for c in changes}
    names = [rule.name for rule in default_rules.rules]

    assert 300 <= len(stream) <= 500
    assert len({e.message_id for e in stream}) < len(stream)  # it does contain replays
    assert seen == {(name, kind) for name in names for kind in ("enter", "exit")}


def test_contract_inputs_are_not_mutated(default_rules: SegmentRules, stream: list[CanonicalEvent]) -> None:
    events_before = copy.deepcopy(stream)
    rules_before = (
        [
            (r.name, r.description, r.condition.source, r.condition.facts, r.condition.thresholds)
            for r in default_rules.rules
        ],
        default_rules.session_gap_ms,
        default_rules.dedup_window,
        default_rules.windows,
        default_rules.elapsed_offsets,
    )
    rule_objects = [(r, r.condition) for r in default_rules.rules]

    run(default_rules, stream)

    assert stream == events_before
    assert (
        [
            (r.name, r.description, r.condition.source, r.condition.facts, r.condition.thresholds)
            for r in default_rules.rules
        ],
        default_rules.session_gap_ms,
        default_rules.dedup_window,
        default_rules.windows,
        default_rules.elapsed_offsets,
    ) == rules_before
    assert [(r, r.condition) for r in default_rules.rules] == rule_objects


def test_contract_canonical_event_is_frozen(stream: list[CanonicalEvent]) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        stream[0].timestamp = 0  # type: ignore[misc]


def test_contract_same_input_gives_the_same_output(
    default_rules: SegmentRules, stream: list[CanonicalEvent]
) -> None:
    reloaded = SegmentRules.from_yaml(default_rules_path())

    first = run(default_rules, stream)
    second = run(default_rules, list(stream))
    third = run(reloaded, random_stream(seed=7))

    assert first == second == third


def test_contract_different_seeds_give_different_streams() -> None:
    assert random_stream(seed=7) != random_stream(seed=8)


@pytest.mark.parametrize(
    "restart_before",
    [
        pytest.param(lambda i: i == 180, id="restore-once-mid-stream"),
        pytest.param(lambda i: i % 37 == 0, id="restore-every-37-events"),
        pytest.param(lambda i: True, id="restore-before-every-event"),
    ],
)
def test_contract_checkpoint_restore_continues_with_identical_outputs(
    default_rules: SegmentRules, stream: list[CanonicalEvent], restart_before: Callable[[int], bool]
) -> None:
    uninterrupted = run(default_rules, stream)

    restored = run(default_rules, stream, restart_before=restart_before)

    assert restored == uninterrupted


def test_contract_state_encoding_is_lossless_at_every_step(
    default_rules: SegmentRules, stream: list[CanonicalEvent]
) -> None:
    tracker = ProfileTracker(default_rules)
    states: dict[str, ProfileState] = {}
    mismatches = []
    for e in stream:
        states[e.user_key], _ = tracker.process_one(states.get(e.user_key), e)
        state = states[e.user_key]
        if profile_state.decode(profile_state.encode(state)) != state:
            mismatches.append(e.message_id)

    assert mismatches == []


def test_contract_outcome_does_not_depend_on_when_timers_fire(
    default_rules: SegmentRules, stream: list[CanonicalEvent]
) -> None:
    """For a stream in event-time order per user, timers at the watermark or only at end of stream give the
    same changes per user: ``process_one`` first lets time run up to the event."""
    in_order = sorted(stream, key=lambda e: (e.timestamp, e.message_id))

    with_timers, states_a = run(default_rules, in_order, fire_timers=True)
    end_only, states_b = run(default_rules, in_order, fire_timers=False)

    assert changes_by_user(with_timers) == changes_by_user(end_only)
    assert states_a == states_b


def test_contract_duplicates_change_nothing(
    default_rules: SegmentRules, stream: list[CanonicalEvent]
) -> None:
    deduplicated: list[CanonicalEvent] = []
    seen: set[str] = set()
    for e in stream:
        if e.message_id not in seen:
            seen.add(e.message_id)
            deduplicated.append(e)

    with_replays, states_a = run(default_rules, stream, fire_timers=False)
    without, states_b = run(default_rules, deduplicated, fire_timers=False)

    assert changes_by_user(with_replays) == changes_by_user(without)
    assert {u: profile_state.decode(s).sessions_total for u, s in states_a.items()} == {
        u: profile_state.decode(s).sessions_total for u, s in states_b.items()
    }


def test_contract_change_times_never_go_back_per_user(
    default_rules: SegmentRules, stream: list[CanonicalEvent]
) -> None:
    outputs, _ = run(default_rules, stream)

    backwards = {
        user: [
            (a.event_time, b.event_time)
            for a, b in itertools.pairwise(changes)
            if b.event_time < a.event_time
        ]
        for user, changes in changes_by_user(outputs).items()
    }

    assert backwards == {user: [] for user in backwards}


def test_contract_every_enter_is_matched_by_state(
    default_rules: SegmentRules, stream: list[CanonicalEvent]
) -> None:
    """Replaying the emitted enter/exit records per user rebuilds exactly the segments kept in state."""
    outputs, states = run(default_rules, stream)
    rebuilt: dict[str, list[str]] = {}
    for user, changes in changes_by_user(outputs).items():
        members: list[str] = []
        for c in changes:
            assert (c.change == "enter") == (c.segment not in members), (user, c)
            members = [*members, c.segment] if c.change == "enter" else [m for m in members if m != c.segment]
        rebuilt[user] = sorted(members)

    assert rebuilt == {u: sorted(profile_state.decode(s).segments) for u, s in states.items()}


def default_rules_path() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2] / "config" / "segments.yaml")
