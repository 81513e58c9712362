"""The statistics of an experiment, from maintained libraries (statsmodels, scipy), never hand-written.

* **Design** (fixed horizon): users per variant to detect a relative ``minimum_lift`` over
  ``baseline_rate`` at ``alpha`` (two-sided) with ``power`` (statsmodels ``NormalIndPower`` on Cohen's h).
  A result is only called once every variant has its designed sample: looking earlier ("peeking") shows
  the running numbers but never a decision, so repeated looks cannot inflate false positives.
* **Comparison** of a variant with control: two-proportion z-test (``proportions_ztest``) and the
  confidence interval of the difference (``confint_proportions_2indep``, Newcombe's method).
* **Sample-ratio mismatch**: chi-square of the users per variant against the weights (``scipy.stats``);
  p < 0.001 flags a broken assignment or exposure logging, and the result is not trusted.
* **Correction** across segments and variants: Holm (``multipletests``), which controls the family-wise
  error rate.

>>> design(0.05, 0.15, alpha=0.05, power=0.8)
14178
>>> c = compare(Arm("control", 10_000, 500), Arm("discount", 10_000, 600))
>>> round(c.lift, 3), c.p_value < 0.01, c.ci_low > 0
(0.2, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest

SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Arm:
    """One variant's exposed users and how many of them converted (within the attribution window)."""

    name: str
    users: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.users if self.users else 0.0


@dataclass(frozen=True)
class Comparison:
    variant: str
    difference: float  # treatment rate - control rate
    ci_low: float  # confidence interval of the difference
    ci_high: float
    lift: float  # relative: treatment / control - 1
    p_value: float


def design(baseline_rate: float, minimum_lift: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users per variant (equal split) for a two-sided test of a relative lift; rounded up."""
    effect = proportion_effectsize(baseline_rate * (1 + minimum_lift), baseline_rate)
    n = NormalIndPower().solve_power(effect_size=abs(effect), alpha=alpha, power=power, ratio=1.0)
    return math.ceil(n)


def compare(control: Arm, treatment: Arm, alpha: float = 0.05) -> Comparison:
    _, p_value = proportions_ztest([treatment.conversions, control.conversions], [treatment.users, control.users])
    low, high = confint_proportions_2indep(treatment.conversions, treatment.users, control.conversions,
                                           control.users, method="newcomb", compare="diff", alpha=alpha)
    lift = treatment.rate / control.rate - 1 if control.rate else math.inf
    return Comparison(treatment.name, treatment.rate - control.rate, float(low), float(high), lift, float(p_value))


def sample_ratio_p(users: Sequence[int], weights: Sequence[float]) -> float:
    """p-value of the users per variant against the intended split (chi-square goodness of fit)."""
    total, weight = sum(users), sum(weights)
    if total == 0:
        return 1.0
    return float(stats.chisquare(users, [total * w / weight for w in weights]).pvalue)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm-adjusted p-values (reject where adjusted < alpha)."""
    if not p_values:
        return []
    return [float(p) for p in multipletests(list(p_values), alpha=alpha, method="holm")[1]]
