"""Segment rules declared in YAML, compiled once, evaluated for a user at any instant.

File layout (see ``config/segments.yaml``)::

    version: 1
    session_gap: 30m          # inactivity that closes a session
    dedup_window: 16          # how many recent messageIds per user are remembered
    parameters:               # named thresholds (a number or a duration in ms), used by name
      abandon_after: 30m
    segments:
      - name: cart_abandoner
        description: Added to cart and did not buy within {abandon_after}
        when: cart.pending_ms >= abandon_after

A user is in a segment exactly while its ``when`` condition holds; the engine re-evaluates after every
event and at every instant a time-dependent fact crosses a threshold.

>>> rules = SegmentRules.from_dict({"segments": [
...     {"name": "browser", "when": "session.product_views >= 3"},
...     {"name": "quiet", "when": "idle_ms >= hours(1)"}]})
>>> rules.members({"session.product_views": 4, "idle_ms": 0})
['browser']
>>> rules.elapsed_offsets
{'idle_ms': (3600000,)}
>>> SegmentRules.from_dict({"parameters": {"after": "30m"}, "segments": [
...     {"name": "abandoner", "description": "no order {after} after a cart add",
...      "when": "cart.pending_ms >= after"}]}).rules[0].description
'no order 30m after a cart add'
>>> import pickle; pickle.loads(pickle.dumps(rules)) == rules
True
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from operators.expressions import Expression, ExpressionError, compile_expression
from operators.profile_facts import ELAPSED_FACTS, KnownFacts, window_days
from settings.config_files import read_yaml_file
from settings.errors import TailorError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SEGMENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# "{abandon_after}" in a description reads as the parameter's value as written ("30m"): the reason a
# change carries stays true after a recalibration.
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]{0,63})\}")


class RuleError(TailorError):
    """The segment rules file is malformed; the message names the file, segment and problem."""


@dataclass(frozen=True, slots=True)
class SegmentRule:
    name: str
    description: str
    condition: Expression


@dataclass(frozen=True)
class SegmentRules:
    rules: tuple[SegmentRule, ...]
    session_gap_ms: int = 30 * 60_000
    dedup_window: int = 16
    # The validated mapping the rules were compiled from. Rules travel to the job pickled as this
    # mapping and are compiled again on the TaskManager by ``from_dict``: what the CLI checked is
    # exactly what the job builds, and no compiled closure crosses the wire.
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SegmentRules.from_dict, (dict(self.source),))

    @classmethod
    def from_yaml(cls, path: Path | str) -> SegmentRules:
        data = read_yaml_file(path, "segment rules file", RuleError)
        try:
            return cls.from_dict(data)
        except RuleError as exc:
            raise RuleError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> SegmentRules:
        if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
            raise RuleError("expected a mapping with a 'segments' list")
        if data.get("version", 1) != 1:
            raise RuleError(f"rules version {data.get('version')!r} is not supported (this Tailor reads version 1)")
        known, rules, seen = KnownFacts(), [], set()
        parameters = parse_parameters(data.get("parameters", {}), known)
        for i, entry in enumerate(data["segments"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("when"), str):
                raise RuleError(f"segment #{i + 1} needs 'name' and a 'when' condition (a string)")
            name = entry.get("name")
            if not isinstance(name, str) or not _SEGMENT_NAME.match(name):
                raise RuleError(f"segment #{i + 1}: name {name!r} must be snake_case (a-z, 0-9, _), at most 64 chars")
            if name in seen:
                raise RuleError(f"segment {name!r} is declared twice")
            seen.add(name)
            try:
                condition = compile_expression(entry["when"], known, parameters)
            except ExpressionError as exc:
                raise RuleError(f"segment {name!r}: {exc}") from None
            description = _PLACEHOLDER.sub(lambda m: str(data["parameters"][m[1]]) if m[1] in parameters else m[0],
                                           str(entry.get("description", name)))
            rules.append(SegmentRule(name, description, condition))
        gap = parse_duration(data.get("session_gap", "30m"), "session_gap")
        window = data.get("dedup_window", 16)
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 1024:
            raise RuleError(f"dedup_window must be an integer in 1..1024, got {window!r}")
        return cls(tuple(rules), gap, window, dict(data))

    @functools.cached_property
    def version(self) -> str:
        """A hash of the rules' content (12 hex digits): the same file gives the same version anywhere.

        >>> SegmentRules.from_dict({"segments": [{"name": "a", "when": "purchases_total >= 1"}]}).version
        '99a3969ba7b0'
        """
        canonical = orjson.dumps(dict(self.source), option=orjson.OPT_SORT_KEYS, default=str)
        return hashlib.sha256(canonical).hexdigest()[:12]

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(rule.name for rule in self.rules)

    def members(self, facts: dict[str, Any]) -> list[str]:
        """Names of the segments whose condition holds, in declaration order."""
        return [name for name, holds in self._predicates if holds(facts)]

    @functools.cached_property
    def _predicates(self) -> tuple[tuple[str, Any], ...]:
        return tuple((rule.name, rule.condition.predicate) for rule in self.rules)

    @property
    def windows(self) -> tuple[int, ...]:
        """Every N of a ``days_active_<N>d`` fact some rule uses."""
        found = {window_days(f) for rule in self.rules for f in rule.condition.facts}
        return tuple(sorted(n for n in found if n is not None))

    @property
    def elapsed_offsets(self) -> dict[str, tuple[int, ...]]:
        """For each elapsed-time fact, the offsets from its anchor at which some condition may flip."""
        offsets: dict[str, set[int]] = {}
        for rule in self.rules:
            for t in rule.condition.thresholds:
                if t.fact not in ELAPSED_FACTS:
                    continue
                # value(t) = t - anchor is an integer: ">=" / "<" flip at the first integer >= value,
                # ">" / "<=" at the first integer > value (one ms later only when the value is whole).
                edge, above = math.ceil(t.value), math.floor(t.value) + 1
                flips = {">=": (edge,), "<": (edge,), ">": (above,), "<=": (above,)}.get(t.op, (edge, edge + 1))
                offsets.setdefault(t.fact, set()).update(f for f in flips if f > 0)
        return {fact: tuple(sorted(v)) for fact, v in offsets.items()}


def parse_parameters(data: Any, facts: KnownFacts) -> dict[str, float]:
    """The ``parameters`` mapping: name -> a number, or a duration (``30m``) in ms.

    >>> parse_parameters({"min_views": 5, "abandon_after": "30m"}, KnownFacts())
    {'min_views': 5, 'abandon_after': 1800000}
    """
    if not isinstance(data, dict):
        raise RuleError("parameters must be a mapping of name: number or duration")
    parameters: dict[str, float] = {}
    for name, value in data.items():
        if not isinstance(name, str) or not _SEGMENT_NAME.match(name):
            raise RuleError(f"parameter name {name!r} must be snake_case (a-z, 0-9, _), at most 64 chars")
        if name in facts or name in ("seconds", "minutes", "hours", "days"):
            raise RuleError(f"parameter {name!r} has the name of a fact or a unit; choose another name")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise RuleError(f"parameter {name!r} must be finite, got {value!r}")
            parameters[name] = value
        else:
            parameters[name] = parse_duration(value, f"parameter {name!r}")
    return parameters


def parse_duration(value: Any, field: str) -> int:
    """Milliseconds from ``"30m"``, ``"2h"``, ``"7d"``, ``"90s"``, ``"500ms"`` or a number of ms.

    >>> parse_duration("30m", "session_gap"), parse_duration(1500, "x")
    (1800000, 1500)
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise RuleError(f"{field} must be a duration like 30m, 2h, 7d, 90s or 500ms; got {value!r}")
    ms = int(float(match.group(1)) * _DURATION_MS[match.group(2)])
    if ms <= 0:
        raise RuleError(f"{field} must be at least 1ms; got {value!r}")
    return ms
