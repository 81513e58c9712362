"""Experiments: variants with weights, a target audience, and deterministic, sticky assignment.

A user's variant is a pure function of the experiment's ``salt`` and the user id (BLAKE2b of both, read as
a number in [0, 1), placed on the cumulative weights), so it is the same in every process, session and
restart, needs no state, and two experiments with different salts split users independently. Users
outside the ``audience`` (a rule segment or cluster id; none = everyone) are not in the experiment.

>>> exp = Experiment("hero-copy", "salt-1", (Variant("control", 1.0), Variant("discount", 1.0)))
>>> exp.assign("u1") == exp.assign("u1"), exp.assign("u1") in ("control", "discount")
(True, True)
>>> shares = [exp.assign(f"u{n}") for n in range(10_000)]
>>> round(shares.count("discount") / len(shares), 2)
0.5
>>> Experiment("x", "s", (Variant("a", 1.0),), audience="cart_abandoner").assign("u1", segments=("active",)) is None
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings.config_files import validated_yaml
from settings.errors import ConfigError

_VARIANT = {"type": "object", "additionalProperties": False, "required": ["name", "weight"],
            "properties": {"name": {"type": "string", "minLength": 1},
                           "weight": {"type": "number", "exclusiveMinimum": 0}}}
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["version", "experiments"],
    "properties": {
        "version": {"const": 1},
        "experiments": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["name", "salt", "variants", "primary_metric"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "salt": {"type": "string", "minLength": 1},
                "audience": {"type": "string"},
                "slot": {"type": "string", "minLength": 1},
                "variants": {"type": "array", "minItems": 2, "items": _VARIANT},
                "primary_metric": {"enum": ["conversion", "click_through", "bounce", "engagement"]},
                "guardrails": {"type": "array", "items": {"enum": ["conversion", "click_through", "bounce",
                                                                  "engagement"]}},
                "baseline_rate": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "minimum_lift": {"type": "number", "exclusiveMinimum": 0},
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5},
                "power": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1},
            }}},
    },
}
_SCALE = float(1 << 64)


class ExperimentsError(ConfigError):
    """The experiments file is invalid; the message names the line."""


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    variants: tuple[Variant, ...]
    audience: str | None = None
    # The decision-matrix slot whose personalised content is tested: control sees the slot's default (a
    # holdout), every other variant the matrix's decision. None: assignment only (server-side use).
    slot: str | None = None
    primary_metric: str = "conversion"
    guardrails: tuple[str, ...] = ()
    # the fixed-horizon design: detect a relative lift of minimum_lift over baseline_rate
    baseline_rate: float = 0.05
    minimum_lift: float = 0.15
    alpha: float = 0.05
    power: float = 0.8

    @property
    def control(self) -> str:
        return self.variants[0].name

    def assign(self, user_id: str, segments: Sequence[str] = (), cluster: str | None = None) -> str | None:
        """The user's variant, or None if the user is not in the audience."""
        if self.audience is not None and self.audience not in segments and self.audience != cluster:
            return None
        digest = hashlib.blake2b(f"{self.salt}:{user_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
        point = int.from_bytes(digest, "big") / _SCALE * sum(v.weight for v in self.variants)
        for variant in self.variants:
            point -= variant.weight
            if point < 0:
                return variant.name
        return self.variants[-1].name


def load_experiments(path: Path) -> list[Experiment]:
    data, _ = validated_yaml(path.read_text(encoding="utf-8"), SCHEMA, str(path), ExperimentsError)
    experiments = []
    for e in data["experiments"]:
        names = [v["name"] for v in e["variants"]]
        if len(set(names)) != len(names):
            raise ExperimentsError(f"{path}: experiment {e['name']}: variant names must differ, got {names}")
        extra = {k: e[k] for k in ("baseline_rate", "minimum_lift", "alpha", "power") if k in e}
        experiments.append(Experiment(
            e["name"], e["salt"], tuple(Variant(v["name"], float(v["weight"])) for v in e["variants"]),
            e.get("audience"), e.get("slot"), e["primary_metric"], tuple(e.get("guardrails", ())), **extra,
        ))
    if len({e.name for e in experiments}) != len(experiments):
        raise ExperimentsError(f"{path}: experiment names must be unique")
    return experiments
