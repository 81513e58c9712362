"""SegmentRules: loading the YAML file, refusing malformed ones, and deriving timers from conditions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from operators.segment_rules import RuleError, SegmentRules, parse_duration

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "config" / "segments.yaml"
DEFAULT_NAMES = [
    "interested_but_hesitant",
    "cart_abandoner",
    "daily_active",
    "weekly_active",
    "monthly_active",
    "active",
    "lapsing",
    "dormant",
]


def rules_of(*whens: str, **top: Any) -> SegmentRules:
    return SegmentRules.from_dict(
        {**top, "segments": [{"name": f"s{i}", "when": when} for i, when in enumerate(whens)]}
    )


def refused(data: Any) -> str:
    with pytest.raises(RuleError) as info:
        SegmentRules.from_dict(data)
    return str(info.value)


# -- the default file ------------------------------------------------------------------------------


def test_segment_rules_default_file_declares_eight_segments_in_order(default_rules: SegmentRules) -> None:
    assert [rule.name for rule in default_rules.rules] == DEFAULT_NAMES


def test_segment_rules_default_file_settings(default_rules: SegmentRules) -> None:
    assert (default_rules.session_gap_ms, default_rules.dedup_window) == (30 * 60_000, 16)


def test_segment_rules_default_file_keeps_descriptions_and_sources(default_rules: SegmentRules) -> None:
    cart = default_rules.rules[1]

    assert (cart.description, cart.condition.source) == (
        "Added to cart and has not bought within 30m",
        "cart.pending_ms >= abandon_after",
    )


def test_segment_rules_default_file_windows_and_timer_offsets(default_rules: SegmentRules) -> None:
    assert default_rules.windows == (7, 30)
    assert default_rules.elapsed_offsets == {
        "cart.pending_ms": (1_800_000,),
        "idle_ms": (7 * 86_400_000, 30 * 86_400_000),
    }


def test_segment_rules_from_yaml_equals_from_dict_of_the_same_file(default_rules: SegmentRules) -> None:
    import yaml

    again = SegmentRules.from_dict(yaml.safe_load(DEFAULT_RULES_PATH.read_text()))

    assert [(r.name, r.description, r.condition.source) for r in again.rules] == [
        (r.name, r.description, r.condition.source) for r in default_rules.rules
    ]


@pytest.mark.parametrize(
    ("facts", "members"),
    [
        # a brand-new user right after a first product view
        ({"days_active_7d": 1, "days_active_30d": 1, "idle_ms": 0}, ["weekly_active", "active"]),
        ({"days_active_7d": 5, "days_active_30d": 5, "idle_ms": 0}, ["daily_active", "active"]),
        (
            {"days_active_7d": 0, "days_active_30d": 2, "idle_ms": 7 * 86_400_000},
            ["monthly_active", "lapsing"],
        ),
        ({"days_active_7d": 0, "days_active_30d": 0, "idle_ms": 30 * 86_400_000}, ["dormant"]),
        (
            {"session.product_views": 6, "session.cart_adds": 1, "cart.pending_ms": 1_800_000},
            ["interested_but_hesitant", "cart_abandoner"],
        ),
        # a user never seen: idle_ms is -1, no recency tier
        ({"idle_ms": -1}, []),
    ],
)
def test_segment_rules_default_members_are_exclusive_tiers(
    default_rules: SegmentRules, facts: dict[str, Any], members: list[str]
) -> None:
    base = {
        "session.product_views": 0,
        "session.cart_adds": 0,
        "session.purchases": 0,
        "cart.pending_ms": -1,
        "days_active_7d": 0,
        "days_active_30d": 0,
        "idle_ms": -1,
    }

    assert default_rules.members({**base, **facts}) == members


# -- malformed files -------------------------------------------------------------------------------


def test_segment_rules_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"

    with pytest.raises(RuleError) as info:
        SegmentRules.from_yaml(path)

    assert str(info.value) == f"segment rules file {path} does not exist"


def test_segment_rules_invalid_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("segments: [\n  - name: x\n")

    with pytest.raises(RuleError) as info:
        SegmentRules.from_yaml(path)

    assert str(info.value).startswith(f"segment rules file {path} is not valid YAML: ")


def test_segment_rules_errors_from_a_file_start_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "segments:\n  - name: buyer\n    when: purchases_total > 0\n  - name: buyer\n    when: idle_ms > 0\n"
    )

    with pytest.raises(RuleError) as info:
        SegmentRules.from_yaml(path)

    assert str(info.value) == f"{path}: segment 'buyer' is declared twice"


@pytest.mark.parametrize("data", [None, [], "segments", {}, {"segments": {"name": "x"}}])
def test_segment_rules_refuse_a_file_without_a_segments_list(data: Any) -> None:
    assert refused(data) == "expected a mapping with a 'segments' list"


def test_segment_rules_refuse_an_unknown_version() -> None:
    assert (
        refused({"version": 2, "segments": []})
        == "rules version 2 is not supported (this Tailor reads version 1)"
    )


@pytest.mark.parametrize(
    "entry", [{"name": "x"}, {"name": "x", "when": 5}, {"name": "x", "when": None}, "x", ["x", "idle_ms > 0"]]
)
def test_segment_rules_refuse_a_segment_without_a_when_string(entry: Any) -> None:
    data = {"segments": [{"name": "ok", "when": "idle_ms > 0"}, entry]}

    assert refused(data) == "segment #2 needs 'name' and a 'when' condition (a string)"


@pytest.mark.parametrize(
    "name", ["CartAbandoner", "1st", "has-dash", "with space", "", None, 7, "a" * 65, "_x"]
)
def test_segment_rules_refuse_names_that_are_not_snake_case(name: Any) -> None:
    assert refused({"segments": [{"name": name, "when": "idle_ms > 0"}]}) == (
        f"segment #1: name {name!r} must be snake_case (a-z, 0-9, _), at most 64 chars"
    )


def test_segment_rules_accept_a_64_character_name() -> None:
    assert (
        SegmentRules.from_dict({"segments": [{"name": "a" * 64, "when": "idle_ms > 0"}]}).rules[0].name
        == "a" * 64
    )


def test_segment_rules_refuse_duplicate_names() -> None:
    data = {
        "segments": [
            {"name": "buyer", "when": "purchases_total > 0"},
            {"name": "buyer", "when": "idle_ms > 0"},
        ]
    }

    assert refused(data) == "segment 'buyer' is declared twice"


def test_segment_rules_unknown_fact_error_names_the_segment_and_fact() -> None:
    message = refused({"segments": [{"name": "big_spender", "when": "revenue_total > 100"}]})

    assert message.startswith("segment 'big_spender': in 'revenue_total > 100': unknown fact 'revenue_total'")


def test_segment_rules_unsafe_condition_error_names_the_segment() -> None:
    message = refused({"segments": [{"name": "evil", "when": "__import__('os').system('id')"}]})

    assert message.startswith(
        "segment 'evil': in \"__import__('os').system('id')\": function calls other than"
    )


@pytest.mark.parametrize("gap", ["30 minutes", "30", "abc", "-5m", "0m", "0.0001ms", 0, -1, True, None, [30]])
def test_segment_rules_refuse_a_bad_session_gap(gap: Any) -> None:
    message = refused({"session_gap": gap, "segments": []})

    assert message.startswith("session_gap must be ")
    assert repr(gap) in message


@pytest.mark.parametrize("window", [0, 1025, "16", 1.5, True, None])
def test_segment_rules_refuse_a_bad_dedup_window(window: Any) -> None:
    assert refused({"dedup_window": window, "segments": []}) == (
        f"dedup_window must be an integer in 1..1024, got {window!r}"
    )


def test_segment_rules_default_settings_when_omitted() -> None:
    rules = SegmentRules.from_dict({"segments": []})

    assert (rules.rules, rules.session_gap_ms, rules.dedup_window) == ((), 1_800_000, 16)


def test_segment_rules_description_defaults_to_the_name() -> None:
    assert (
        SegmentRules.from_dict({"segments": [{"name": "quiet", "when": "idle_ms > 0"}]}).rules[0].description
        == "quiet"
    )


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("30m", 1_800_000),
        ("2h", 7_200_000),
        ("7d", 604_800_000),
        ("90s", 90_000),
        ("500ms", 500),
        ("1.5m", 90_000),
        (" 45s ", 45_000),
        (1500, 1500),
    ],
)
def test_parse_duration_reads_units_and_plain_ms(value: Any, ms: int) -> None:
    assert parse_duration(value, "session_gap") == ms


# -- derived timers --------------------------------------------------------------------------------


def test_segment_rules_windows_lists_every_days_active_n_sorted_once() -> None:
    rules = rules_of("days_active_30d >= 1", "days_active_3d > 1 and days_active_30d < 9", "idle_ms > 0")

    assert rules.windows == (3, 30)


def test_segment_rules_windows_empty_without_activity_facts() -> None:
    assert rules_of("session.product_views > 5").windows == ()


@pytest.mark.parametrize(
    ("when", "offsets"),
    [
        # the fact is an integer number of ms, so ">=" / "<" flip at the value, ">" / "<=" one ms later
        ("idle_ms >= 100", (100,)),
        ("idle_ms < 100", (100,)),
        ("idle_ms > 100", (101,)),
        ("idle_ms <= 100", (101,)),
        ("idle_ms == 100", (100, 101)),
        ("idle_ms != 100", (100, 101)),
        ("100 < idle_ms", (101,)),  # mirrored
        # a fractional value flips at the first whole ms past it, for every operator
        ("idle_ms >= 10.5", (11,)),
        ("idle_ms > 10.5", (11,)),
        ("idle_ms <= 10.5", (11,)),
        ("idle_ms < 10.5", (11,)),
        # offsets at or before the anchor never need a timer
        ("idle_ms >= 0", ()),
        ("idle_ms > -1", ()),
    ],
)
def test_segment_rules_elapsed_offsets_are_the_first_ms_a_condition_flips(
    when: str, offsets: tuple[int, ...]
) -> None:
    assert rules_of(when).elapsed_offsets.get("idle_ms", ()) == offsets


def test_segment_rules_elapsed_offsets_merge_rules_and_ignore_counter_facts() -> None:
    rules = rules_of(
        "idle_ms >= days(7) and idle_ms < days(30)",
        "idle_ms >= days(30) and session.product_views > 5",
        "cart.pending_ms > minutes(30)",
        "days_active_7d >= 5",
    )

    assert rules.elapsed_offsets == {"idle_ms": (604_800_000, 2_592_000_000), "cart.pending_ms": (1_800_001,)}


def test_segment_rules_members_keep_declaration_order() -> None:
    rules = rules_of("idle_ms >= 0", "session.events > 0", "idle_ms > 5")

    assert rules.members({"idle_ms": 10, "session.events": 1}) == ["s0", "s1", "s2"]
    assert rules.members({"idle_ms": 0, "session.events": 1}) == ["s0", "s1"]


def _with_parameters(parameters: Any, when: str = "session.product_views > min_views") -> SegmentRules:
    return SegmentRules.from_dict({"parameters": parameters, "segments": [
        {"name": "s", "description": "more than {min_views} views, {unknown} stays", "when": when}]})


def test_segment_rules_parameters_are_constants_by_name_in_conditions_and_descriptions() -> None:
    rules = _with_parameters({"min_views": 3})
    assert rules.members({"session.product_views": 4}) == ["s"]
    assert rules.members({"session.product_views": 3}) == []
    assert rules.rules[0].description == "more than 3 views, {unknown} stays"
    assert rules.version != _with_parameters({"min_views": 4}).version


def test_segment_rules_duration_parameters_set_timers_like_literal_durations() -> None:
    by_name = _with_parameters({"min_views": "30m"}, "cart.pending_ms >= min_views")
    literal = SegmentRules.from_dict({"segments": [{"name": "s", "when": "cart.pending_ms >= minutes(30)"}]})
    assert by_name.elapsed_offsets == literal.elapsed_offsets == {"cart.pending_ms": (1_800_000,)}


@pytest.mark.parametrize(("parameters", "message"), [
    ({"idle_ms": 5}, "has the name of a fact"),
    ({"minutes": 5}, "has the name of a fact or a unit"),
    ({"Min": 5}, "must be snake_case"),
    ({"min_views": "soon"}, "parameter 'min_views' must be a duration"),
    ({"min_views": float("inf")}, "must be finite"),
    ({"min_views": True}, "must be a duration"),
    ([5], "parameters must be a mapping"),
])
def test_segment_rules_refuse_bad_parameters(parameters: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        _with_parameters(parameters)


def test_segment_rules_an_undeclared_name_lists_facts_and_parameters() -> None:
    with pytest.raises(RuleError, match=r"unknown fact 'min_view'.*; parameters: min_views"):
        _with_parameters({"min_views": 3}, "session.product_views > min_view")
