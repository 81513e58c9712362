"""evaluation.recalibration: candidates scored in one replay, chosen on earlier time, validated on later time."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
import yaml

from evaluation.blend_recalibration import IN_FORCE, propose_blend
from evaluation.recalibration import (
    Observed,
    RecalibrationError,
    RecalibrationPlan,
    candidate_rules,
    propose,
    read_history,
    recalibrated,
    replay,
)
from evaluation.simulator import ShopperSimulator
from operators.models_config import ModelsConfig
from operators.rules_updates import rules_update
from operators.segment_rules import SegmentRules
from settings import PROJECT_ROOT

T0 = 1_700_000_000_000
MINUTE, HOUR = 60_000, 3_600_000
SHIPPED = yaml.safe_load((PROJECT_ROOT / "config" / "segments.yaml").read_text())
PLAN = RecalibrationPlan.from_dict({
    **yaml.safe_load((PROJECT_ROOT / "config" / "recalibration.yaml").read_text()),
    "outcome_window": "1h", "act_within": "1h",
})


def rules_with(**parameters: object) -> SegmentRules:
    return SegmentRules.from_dict({**SHIPPED, "parameters": {**SHIPPED["parameters"], **parameters}})


def shoppers(count: int, start: int = T0, **options: object) -> list[bytes]:
    sim = ShopperSimulator(seed=3, users=2000, items=500, categories=10, **options)  # type: ignore[arg-type]
    return [orjson.dumps(e) for e in sim.events(start, rate=2, count=count)]


@pytest.fixture(scope="module")
def simulated() -> tuple[Observed, SegmentRules]:
    history = read_history(shoppers(30_000), rules_with(hesitant_min_views=5), PLAN.days)
    return replay(history, PLAN), history.rules


def test_the_shipped_plan_reads_and_names_parameters_the_shipped_rules_declare() -> None:
    plan = RecalibrationPlan.from_yaml(PROJECT_ROOT / "config" / "recalibration.yaml")
    rules = SegmentRules.from_yaml(PROJECT_ROOT / "config" / "segments.yaml")
    expanded = candidate_rules(rules, plan)
    assert len(expanded.rules) == len(rules.rules) + 9 + 8  # one copy per candidate, the value in force listed


def test_a_value_in_force_the_plan_does_not_list_is_scored_too() -> None:
    expanded = candidate_rules(rules_with(hesitant_min_views=9), PLAN)
    copies = [r for r in expanded.rules if r.name.startswith("interested_but_hesitant__")]
    assert len(copies) == 10
    assert copies[0].condition.thresholds[0].value == 9


def test_a_plan_naming_what_the_rules_do_not_declare_says_so() -> None:
    plan = dataclasses.replace(PLAN, thresholds=(dataclasses.replace(PLAN.thresholds[0], parameter="nope"),))
    with pytest.raises(RecalibrationError, match="no parameter 'nope'"):
        candidate_rules(rules_with(), plan)
    with pytest.raises(RecalibrationError, match="'thresholds' list"):
        RecalibrationPlan.from_dict({"days": 3})


def test_precision_and_recall_count_what_users_did_after_entering() -> None:
    observed = Observed()
    observed.purchases["buyer"] = [T0 + 10 * MINUTE]
    observed.cart_adds.update(buyer=[T0], leaver=[T0], late=[T0], missed=[T0])
    for user in ("buyer", "leaver"):
        observed.flag("c", user, "enter", T0 + MINUTE)
    observed.flag("c", "late", "enter", T0 + 2 * HOUR)  # after act_within: too late to act
    score = observed.score("c", T0, T0 + 3 * HOUR, PLAN)
    assert (score.entries, score.right, score.at_risk, score.caught) == (3, 2, 3, 1)


def test_a_user_already_in_the_segment_counts_as_caught_until_they_exit() -> None:
    observed = Observed()
    observed.cart_adds["u"] = [T0 + 2 * HOUR, T0 + 5 * HOUR]
    observed.flag("c", "u", "enter", T0)
    observed.flag("c", "u", "exit", T0 + 3 * HOUR)
    assert observed.score("c", T0, T0 + 6 * HOUR, PLAN).caught == 1


def test_on_simulated_shoppers_the_hesitant_threshold_moves_to_where_buyers_stop(simulated) -> None:
    observed, rules = simulated
    hesitant, abandoner = propose(observed, rules, PLAN)
    # the simulator's buyers view at most 6 products, its hesitant shoppers at least 6
    assert (hesitant.current, hesitant.best, hesitant.decision) == (5, 6, "apply")
    assert hesitant.train[6].precision == 1.0 > hesitant.train[5].precision
    assert hesitant.gain >= PLAN.margin
    assert abandoner.best == abandoner.current == "30m"  # every value <= act_within is perfect: keep
    assert abandoner.decision.startswith("keep")
    after = recalibrated(rules, [hesitant, abandoner])
    assert after is not None and after.source["parameters"]["hesitant_min_views"] == 6
    assert after.rules[0].description.startswith("Viewed more than 6 products")
    assert after.version != rules.version


def test_a_gain_below_the_margin_is_not_applied(simulated) -> None:
    observed, rules = simulated
    hesitant = propose(observed, rules, dataclasses.replace(PLAN, margin=0.5))[0]
    assert hesitant.best == 6 and hesitant.decision.startswith("keep: held-out F-score gain")
    assert recalibrated(rules, [hesitant]) is None


def test_the_held_out_part_vetoes_a_choice_the_earlier_part_made() -> None:
    # earlier: the usual mix; later: only hesitant and abandoning shoppers (nobody buys), where flagging
    # more is right. The earlier part still chooses 6; the held-out part shows 6 loses to 5: keep.
    early = shoppers(24_000)
    changed = shoppers(12_000, start=T0 + 4 * HOUR, persona_mix={"hesitant": 0.5, "abandoner": 0.5})
    history = read_history(early + changed, rules_with(hesitant_min_views=5), PLAN.days)
    observed, rules = replay(history, PLAN), history.rules
    hesitant = propose(observed, rules, PLAN)[0]
    assert hesitant.best == 6
    assert hesitant.gain < 0 and hesitant.decision.startswith("keep: held-out")


def test_the_newest_rules_update_in_the_topic_is_the_rules_in_force() -> None:
    events = shoppers(2_000)
    older = rules_update(dict(rules_with(hesitant_min_views=3).source), T0, "r-1")
    newer = rules_update(dict(rules_with(hesitant_min_views=4).source), T0 + 1, "r-2")
    newer["properties"]["models"] = {"blend": {"covisit": 2.0}}
    history = read_history([*events, orjson.dumps(newer), orjson.dumps(older)], rules_with(), PLAN.days)
    assert history.rules.source["parameters"]["hesitant_min_views"] == 4
    assert history.models == {"blend": {"covisit": 2.0}}


def test_too_short_a_span_for_the_outcome_window_says_so() -> None:
    history = read_history(shoppers(500), rules_with(), PLAN.days)
    with pytest.raises(RecalibrationError, match="outcome window of 1 h needs a longer span"):
        propose(replay(history, PLAN), history.rules, PLAN)


def test_the_blend_is_chosen_on_earlier_time_and_applied_only_with_a_held_out_gain() -> None:
    history = read_history(shoppers(8_000), rules_with(), PLAN.days)
    base = ModelsConfig.from_yaml(PROJECT_ROOT / "config" / "models.yaml").recommendations
    proposal = propose_blend(history, base, [{"popular": 1.0}, {"popular": 0.0, "covisit": 0.0}], 0.3, 0.0)
    assert list(proposal.blends) == [IN_FORCE, "popular=1", "popular=0,covisit=0"]
    assert proposal.train[proposal.best] == max(proposal.train.values())
    assert proposal.tests[0] > proposal.tests[1] > 1_000
    assert proposal.train["popular=0,covisit=0"] < proposal.train[IN_FORCE]  # the test can tell blends apart
    strict = propose_blend(history, base, [{"popular": 1.0}], 0.3, margin=10.0)
    assert strict.decision.startswith("keep")


def test_the_blend_in_force_is_the_newest_live_settings_in_the_topic() -> None:
    update = rules_update(dict(rules_with().source), T0, "r-1", {"blend": {"popular": 1.0}})
    history = read_history([*shoppers(3_000), orjson.dumps(update)], rules_with(), PLAN.days)
    base = ModelsConfig.from_yaml(PROJECT_ROOT / "config" / "models.yaml").recommendations
    proposal = propose_blend(history, base, [{"covisit": 2.0}], 0.3, 0.02)
    assert proposal.blends[IN_FORCE]["popular"] == 1.0
    assert proposal.blends["covisit=2"] == {**proposal.blends[IN_FORCE], "covisit": 2.0}
