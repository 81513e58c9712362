"""Segment -> content decisions: a YAML matrix of rules, one variation per slot, rendered in Jinja2's sandbox.

A matrix (``config/decisions.yaml``) names slots with a default variation each, and rules: a rule
matches a profile by rule segment and/or cluster, plus optional conditions on profile facts, and gives
variations for some slots. For each requested slot the matching rule of highest ``priority`` (then file
order) that has a variation for it wins; otherwise the slot's default. Every decision says which rule
and variation served it and why.

Templates are rendered by Jinja2's ``SandboxedEnvironment`` with autoescape: a template cannot reach
Python internals (``{{ ''.__class__ }}`` raises), and user data is HTML-escaped. A template sees
``profile`` (segments, cluster, facts), ``recommendations`` (item ids), ``slot`` and ``page``.

>>> matrix = DecisionMatrix.from_yaml_text('''
... version: 1
... slots:
...   hero: {variation: onboarding, template: "<h2>Welcome</h2>"}
... rules:
...   - name: hesitant_discount
...     segment: interested_but_hesitant
...     priority: 10
...     slots:
...       hero: {variation: discount, template: "<h2>10% off {{ recommendations[0] }}</h2>"}
... ''')
>>> profile = Profile(segments=("interested_but_hesitant",), cluster=None, facts={})
>>> [d.as_dict() for d in matrix.decide(profile, ["hero"], recommendations=["p<1>"])]
[{'slot': 'hero', 'variation': 'discount', 'rule': 'hesitant_discount', 'reason': 'segment interested_but_hesitant', 'content': '<h2>10% off p&lt;1&gt;</h2>'}]
>>> matrix.decide(Profile((), None, {}), ["hero"])[0].rule
'default'
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from settings.config_files import validated_yaml, yaml_line
from settings.errors import ConfigError

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_VARIATION = {
    "type": "object", "additionalProperties": False, "required": ["variation"],
    "properties": {"variation": {"type": "string", "minLength": 1}, "template": {"type": "string"},
                   "data": {"type": "object"}},
}
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["version", "slots"],
    "properties": {
        "version": {"const": 1},
        "slots": {"type": "object", "minProperties": 1, "additionalProperties": _VARIATION},
        "rules": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "slots"],
            "anyOf": [{"required": ["segment"]}, {"required": ["cluster"]}],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "segment": {"type": "string"}, "cluster": {"type": "string"},
                "priority": {"type": "integer"},
                "conditions": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["fact", "op", "value"],
                    "properties": {"fact": {"type": "string"}, "op": {"enum": sorted(OPERATORS)},
                                   "value": {"type": ["number", "string"]}}}},
                "slots": {"type": "object", "minProperties": 1, "additionalProperties": _VARIATION},
            }}},
    },
}


class DecisionMatrixError(ConfigError):
    """The decision matrix is invalid; the message names the file line."""


@dataclass(frozen=True)
class Profile:
    """What a decision reads of a user: rule segments, ML segment (cluster id) and numeric/text facts."""

    segments: Sequence[str]
    cluster: str | None
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    slot: str
    variation: str
    rule: str
    reason: str
    content: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"slot": self.slot, "variation": self.variation, "rule": self.rule,
                               "reason": self.reason, "content": self.content}
        if self.data:
            out["data"] = dict(self.data)
        return out


@dataclass(frozen=True)
class _Rule:
    name: str
    segment: str | None
    cluster: str | None
    priority: int
    conditions: tuple[tuple[str, str, Any], ...]
    slots: Mapping[str, Mapping[str, Any]]

    def matches(self, profile: Profile) -> str | None:
        """Why the rule matches the profile, or None."""
        why = []
        if self.segment is not None:
            if self.segment not in profile.segments:
                return None
            why.append(f"segment {self.segment}")
        if self.cluster is not None:
            if profile.cluster != self.cluster:
                return None
            why.append(f"cluster {self.cluster}")
        for fact, op, value in self.conditions:
            have = profile.facts.get(fact)
            try:
                if have is None or not OPERATORS[op](type(value)(have), value):
                    return None
            except (TypeError, ValueError):
                return None
            why.append(f"{fact} {op} {value} ({fact}={have})")
        return ", ".join(why)


class DecisionMatrix:
    def __init__(self, slots: Mapping[str, Mapping[str, Any]], rules: Sequence[_Rule]) -> None:
        self.slots = slots
        self.rules = sorted(rules, key=lambda r: -r.priority)  # stable: file order among equal priorities
        self.env = SandboxedEnvironment(autoescape=True)
        self._templates: dict[str, Any] = {}

    @classmethod
    def from_yaml_text(cls, text: str, source: str = "<decisions>") -> DecisionMatrix:
        data, node = validated_yaml(text, SCHEMA, source, DecisionMatrixError,
                                    {"anyOf": "a rule needs a 'segment' or a 'cluster' to match"})
        rules = [
            _Rule(r["name"], r.get("segment"), r.get("cluster"), r.get("priority", 0),
                  tuple((c["fact"], c["op"], c["value"]) for c in r.get("conditions", ())), r["slots"])
            for r in data.get("rules") or ()
        ]
        for n, rule in enumerate(rules):
            unknown = set(rule.slots) - set(data["slots"])
            if unknown:
                raise DecisionMatrixError(f"{source}:{yaml_line(node, ['rules', n, 'slots'])}: rule {rule.name} gives "
                                          f"unknown slot(s) {sorted(unknown)}; slots are {sorted(data['slots'])}")
        matrix = cls(data["slots"], rules)
        for where, variation in matrix._variations():
            try:
                matrix._template(variation.get("template", ""))
            except TemplateError as e:
                raise DecisionMatrixError(f"{source}: {where}: template does not compile: {e}") from e
        return matrix

    @classmethod
    def from_yaml(cls, path: Path) -> DecisionMatrix:
        return cls.from_yaml_text(path.read_text(encoding="utf-8"), str(path))

    def _variations(self) -> list[tuple[str, Mapping[str, Any]]]:
        out = [(f"slots.{slot}", v) for slot, v in self.slots.items()]
        out += [(f"rule {r.name} slot {slot}", v) for r in self.rules for slot, v in r.slots.items()]
        return out

    def _template(self, text: str) -> Any:
        template = self._templates.get(text)
        if template is None:
            template = self._templates[text] = self.env.from_string(text)
        return template

    def decide(
        self, profile: Profile, slots: Sequence[str], recommendations: Sequence[str] = (), page: str | None = None
    ) -> list[Decision]:
        """One decision per requested slot (``KeyError`` for a slot the matrix does not have)."""
        out = []
        for slot in slots:
            default = self.slots[slot]
            chosen, rule, reason = default, "default", "no rule matched"
            for r in self.rules:
                if slot in r.slots:
                    why = r.matches(profile)
                    if why is not None:
                        chosen, rule, reason = r.slots[slot], r.name, why
                        break
            out.append(self.render(slot, chosen, rule, reason, profile, recommendations, page))
        return out

    def default(self, slot: str, reason: str, page: str | None = None) -> Decision:
        """The slot's default variation, rendered without user data (the fallback)."""
        return self.render(slot, self.slots[slot], "default", reason, Profile((), None, {}), (), page)

    def render(
        self, slot: str, variation: Mapping[str, Any], rule: str, reason: str, profile: Profile,
        recommendations: Sequence[str], page: str | None,
    ) -> Decision:
        context = {"profile": {"segments": list(profile.segments), "cluster": profile.cluster, **profile.facts},
                   "recommendations": list(recommendations), "slot": slot, "page": page}
        try:
            content = self._template(variation.get("template", "")).render(context)
        except TemplateError as e:  # a template may fail on odd data: the slot still gets its default text
            content, reason = "", f"{reason}; template error: {e}"
        return Decision(slot, variation["variation"], rule, reason, content, variation.get("data", {}))

