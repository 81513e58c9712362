"""``tailor evaluate experiments``: the experiment statistics validated by simulation, and a planted effect
recovered.

1. **A/A**: 200 simulated experiments with no difference, each at its designed sample size: the share
   called significant must stay at or below ``alpha`` plus two binomial standard errors.
2. **Power**: 200 with the planted relative lift (the design's ``minimum_lift``): the share detected must
   reach the designed power, within two binomial standard errors.
3. **A report** of one simulated run with the planted lift in two segments of different baselines:
   per segment and variant, users, conversion, lift with its confidence interval, p, Holm-adjusted p
   across segments, the sample-ratio-mismatch p and the decision; the planted lift must lie inside the
   interval. Users are assigned with the experiment's own hash (``operators.experiments``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.experiment_report import HEADERS, comparison_rows
from evaluation.experiment_report import table as report_table
from evaluation.experiment_stats import Arm, compare, design, holm
from evaluation.replay_metrics import markdown_table, print_table, write_results
from operators.experiments import Experiment, load_experiments
from settings import PROJECT_ROOT, Settings
from settings.progress import progress_bar

HELP = "experiments: A/A false positives and power over 200 simulations, a planted lift recovered per segment"
EXPERIMENTS = PROJECT_ROOT / "config" / "experiments.yaml"
SEGMENTS = {"new visitors": 1.0, "returning": 1.6}  # baseline multipliers: two segments, two baselines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiments", type=Path, default=EXPERIMENTS, help="experiments YAML")
    parser.add_argument("--runs", type=int, default=200, help="simulated experiments per check")
    parser.add_argument("--seed", type=int, default=20261203, help="simulation seed")


def assignments(experiment: Experiment, users: int) -> np.ndarray:
    """Variant index per simulated user (all in the audience), by the experiment's own assignment."""
    index = {v.name: i for i, v in enumerate(experiment.variants)}
    audience = () if experiment.audience is None else (experiment.audience,)
    return np.array([index[experiment.assign(f"sim-{n}", audience) or experiment.control] for n in range(users)])


def simulate(variant_of: np.ndarray, rates: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(users, conversions) per variant for one run."""
    converted = rng.random(len(variant_of)) < rates[variant_of]
    return [(int((variant_of == v).sum()), int(converted[variant_of == v].sum())) for v in range(len(rates))]


def significant_share(experiment: Experiment, variant_of: np.ndarray, lift: float, runs: int,
                      rng: np.random.Generator) -> float:
    rates = np.array([experiment.baseline_rate * (1 + (lift if i else 0.0)) for i in range(len(experiment.variants))])
    hits = 0
    for _ in range(runs):
        counts = simulate(variant_of, rates, rng)
        control = Arm("control", *counts[0])
        p_values = [compare(control, Arm(v.name, *counts[i]), experiment.alpha).p_value
                    for i, v in enumerate(experiment.variants) if i]
        hits += any(p < experiment.alpha for p in holm(p_values, experiment.alpha))
    return hits / runs


def report(experiment: Experiment, per_variant: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """One simulated run with the planted lift in every segment; rows per segment and non-control variant."""
    counts, planted = {}, {}
    for segment, scale in SEGMENTS.items():
        variant_of = assignments(experiment, per_variant * len(experiment.variants))
        base = experiment.baseline_rate * scale
        lifts = [experiment.minimum_lift if i else 0.0 for i in range(len(experiment.variants))]
        rates = np.array([base * (1 + lift) for lift in lifts])
        counts[segment] = simulate(variant_of, rates, rng)
        planted[segment] = base * experiment.minimum_lift
    rows = comparison_rows(experiment, counts)
    for row in rows:
        row["planted_difference"] = planted[row["segment"]]
        row["planted_inside_ci"] = row["ci_low"] <= row["planted_difference"] <= row["ci_high"]
    return rows


def run(args: argparse.Namespace, settings: Settings) -> int:
    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {}
    ok = True
    for experiment in load_experiments(args.experiments):
        per_variant = design(experiment.baseline_rate, experiment.minimum_lift, experiment.alpha, experiment.power)
        variant_of = assignments(experiment, per_variant * len(experiment.variants))
        with progress_bar(2, f"{experiment.name}: A/A and power, {args.runs} runs each", "checks") as bar:
            aa = significant_share(experiment, variant_of, 0.0, args.runs, rng)
            bar.update()
            power = significant_share(experiment, variant_of, experiment.minimum_lift, args.runs, rng)
            bar.update()
        aa_bound = experiment.alpha + 2 * math.sqrt(experiment.alpha * (1 - experiment.alpha) / args.runs)
        power_bound = experiment.power - 2 * math.sqrt(experiment.power * (1 - experiment.power) / args.runs)
        rows = report(experiment, per_variant, rng)
        headers, table = HEADERS, report_table(rows)
        print(f"\n{experiment.name}: {per_variant:,} users per variant designed (baseline "
              f"{experiment.baseline_rate:.1%}, lift {experiment.minimum_lift:+.0%}, alpha {experiment.alpha}, "
              f"power {experiment.power})")
        print(f"A/A false-positive rate {aa:.3f} over {args.runs} runs (nominal {experiment.alpha}, bound "
              f"{aa_bound:.3f}); power {power:.3f} (designed {experiment.power}, bound {power_bound:.3f})")
        print_table(headers, table)
        checks = {"aa_within_bound": aa <= aa_bound, "power_reached": power >= power_bound,
                  "planted_inside_every_ci": all(r["planted_inside_ci"] for r in rows)}
        print("checks: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()))
        ok = ok and all(checks.values())
        results[experiment.name] = {"per_variant": per_variant, "aa_false_positive_rate": aa, "aa_bound": aa_bound,
                                    "power": power, "power_bound": power_bound, "report": rows, "checks": checks,
                                    "markdown": markdown_table(headers, table)}
    paths = write_results("experiments", results, "\n\n".join(r["markdown"] for r in results.values()))
    print("wrote " + ", ".join(str(p.relative_to(PROJECT_ROOT)) for p in paths))
    return 0 if ok else 1
