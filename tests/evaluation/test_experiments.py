"""The experiment statistics, validated by simulation (the full 200-run check: `tailor evaluate experiments`)."""

import math

import numpy as np

from evaluation import experiments
from evaluation.experiment_stats import Arm, compare, design, sample_ratio_p
from operators.experiments import Experiment, Variant, load_experiments

EXP = Experiment("t", "salt-t", (Variant("control", 1), Variant("b", 1)), baseline_rate=0.1, minimum_lift=0.2)


def test_a_a_false_positives_stay_at_alpha_and_the_planted_lift_is_found() -> None:
    rng = np.random.default_rng(5)
    n = design(EXP.baseline_rate, EXP.minimum_lift, EXP.alpha, EXP.power)
    variant_of = experiments.assignments(EXP, 2 * n)
    runs = 120
    aa = experiments.significant_share(EXP, variant_of, 0.0, runs, rng)
    power = experiments.significant_share(EXP, variant_of, EXP.minimum_lift, runs, rng)
    assert aa <= EXP.alpha + 2 * math.sqrt(EXP.alpha * (1 - EXP.alpha) / runs)
    assert power >= EXP.power - 2 * math.sqrt(EXP.power * (1 - EXP.power) / runs)


def test_the_report_recovers_the_planted_difference_per_segment() -> None:
    # four times the designed sample: power ~1, so "significant" is expected in both segments
    rows = experiments.report(EXP, 4 * design(0.1, 0.2), np.random.default_rng(7))
    assert {r["segment"] for r in rows} == set(experiments.SEGMENTS)
    assert all(r["planted_inside_ci"] and r["decision"] == "significant" for r in rows)


def test_a_skewed_split_is_flagged_as_sample_ratio_mismatch() -> None:
    assert sample_ratio_p([10_000, 10_150], [1, 1]) > 0.001
    assert sample_ratio_p([10_000, 10_800], [1, 1]) < 0.001
    assert compare(Arm("c", 1000, 50), Arm("b", 1000, 50)).p_value == 1.0


def test_assignment_is_sticky_and_follows_the_weights() -> None:
    skewed = Experiment("w", "s", (Variant("control", 3), Variant("b", 1)))
    picks = [skewed.assign(f"u{i}") for i in range(200_000)]
    assert abs(picks.count("b") / len(picks) - 0.25) < 0.004  # 4 standard errors
    assert [skewed.assign("u1") for _ in range(3)] == [skewed.assign("u1")] * 3
    other_salt = Experiment("w", "other", skewed.variants)
    assert sum(skewed.assign(f"u{i}") != other_salt.assign(f"u{i}") for i in range(2000)) > 500


def test_the_shipped_experiments_file_loads(tmp_path) -> None:
    [exp] = load_experiments(experiments.EXPERIMENTS)
    assert exp.control == "control" and exp.audience == "interested_but_hesitant"
    bad = tmp_path / "e.yaml"
    bad.write_text("version: 1\nexperiments:\n  - name: x\n    salt: s\n    primary_metric: conversion\n"
                   "    variants:\n      - {name: a, weight: 0}\n      - {name: b, weight: 1}\n")
    try:
        load_experiments(bad)
    except Exception as e:  # noqa: BLE001
        assert str(e).startswith(f"{bad}:7: experiments.0.variants.0.weight")
    else:
        raise AssertionError("a zero weight was accepted")
