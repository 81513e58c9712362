"""An experiment's result table: per segment and variant against control, with the statistics of
``evaluation.experiment_stats``, from counts (a simulation) or from what users did after their exposure
(``operators.experiment_outcomes``, read from the events topic by ``tailor experiments report``).

Each row: users of control and variant, the conversion rates, the lift, the difference with its
confidence interval, p, p adjusted by Holm across every row of the experiment (segments x variants), the
sample-ratio-mismatch p of the segment, and a decision. With ``require_design`` a row is only decided
once both arms hold the designed sample (fixed horizon): before that it says how far it is, so looking
early cannot turn into a false positive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evaluation.experiment_stats import SRM_ALPHA, Arm, compare, design, holm, sample_ratio_p
from evaluation.plots import bar_plot
from operators.experiment_outcomes import EVERYONE, Outcome
from operators.experiments import Experiment

HEADERS = ["segment", "variant", "users c/v", "rate c", "rate v", "lift", "difference [95% CI]", "p", "p (Holm)",
           "SRM p", "decision"]


def comparison_rows(
    experiment: Experiment, counts_by_segment: Mapping[str, Sequence[tuple[int, int]]], require_design: bool = False
) -> list[dict[str, Any]]:
    """``counts_by_segment``: per segment, (users, conversions) per variant in the experiment's order."""
    designed = design(experiment.baseline_rate, experiment.minimum_lift, experiment.alpha, experiment.power)
    rows: list[dict[str, Any]] = []
    for segment, counts in counts_by_segment.items():
        srm = sample_ratio_p([c[0] for c in counts], [v.weight for v in experiment.variants])
        control = Arm(experiment.control, *counts[0])
        for i, variant in enumerate(experiment.variants[1:], start=1):
            arm = Arm(variant.name, *counts[i])
            c = compare(control, arm, experiment.alpha)
            rows.append({"segment": segment, "variant": variant.name, "control_users": control.users,
                         "variant_users": arm.users, "control_rate": control.rate, "variant_rate": arm.rate,
                         "difference": c.difference, "ci_low": c.ci_low, "ci_high": c.ci_high, "lift": c.lift,
                         "p": c.p_value, "srm_p": srm, "designed_users": designed})
    for row, adjusted in zip(rows, holm([r["p"] for r in rows], experiment.alpha), strict=True):
        row["p_holm"] = adjusted
        smallest = min(row["control_users"], row["variant_users"])
        if row["srm_p"] < SRM_ALPHA:
            row["decision"] = "sample ratio mismatch: not trusted"
        elif require_design and smallest < designed:
            row["decision"] = f"collecting: {smallest:,} of {designed:,} users per arm"
        else:
            row["decision"] = "significant" if adjusted < experiment.alpha else "not significant"
    return rows


def table(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [[r["segment"], r["variant"], f"{r['control_users']:,}/{r['variant_users']:,}",
             round(r["control_rate"], 4), round(r["variant_rate"], 4),
             f"{r['lift']:+.1%}" if r["control_rate"] else "-",
             f"{r['difference']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", round(r["p"], 5),
             round(r["p_holm"], 5), round(r["srm_p"], 3), r["decision"]] for r in rows]


def stream_rows(
    experiment: Experiment, outcomes: Mapping[tuple[str, str, str], Outcome], require_design: bool = True
) -> list[dict[str, Any]]:
    """The rows of ``experiment`` from the stream's outcomes: everyone first, then each segment seen; with
    click-through, bounce rate and engagement per arm next to the conversion statistics."""
    segments = sorted({s for (e, _v, s) in outcomes if e == experiment.name} - {EVERYONE})
    counts: dict[str, list[tuple[int, int]]] = {}
    for segment in (EVERYONE, *segments):
        arms = [outcomes.get((experiment.name, v.name, segment), Outcome()) for v in experiment.variants]
        if any(o.users for o in arms):
            counts[segment] = [(o.users, o.conversions) for o in arms]
    rows = comparison_rows(experiment, counts, require_design)
    for row in rows:
        for arm, variant in (("control", experiment.control), ("variant", row["variant"])):
            o = outcomes.get((experiment.name, variant, row["segment"]), Outcome())
            users = max(o.users, 1)
            row[f"{arm}_click_through"] = o.clicks / users
            row[f"{arm}_bounce_rate"] = o.bounces / users
            row[f"{arm}_engagement_s"] = o.engaged_ms / users / 1000
    return rows


def plot(experiment: Experiment, rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Conversion rate per segment, control next to each variant."""
    groups = [f"{r['segment']} / {r['variant']}" for r in rows]
    bars = {"control": [r["control_rate"] for r in rows], "variant": [r["variant_rate"] for r in rows]}
    return bar_plot(path, f"{experiment.name}: conversion per segment", "conversion rate", groups, bars)
