"""The decision matrix: priorities, conditions, defaults, line-numbered validation, the template sandbox."""

import pytest

from operators.decisions import DecisionMatrix, DecisionMatrixError, Profile
from settings import PROJECT_ROOT

MATRIX = """version: 1
slots:
  hero: {variation: onboarding, template: "<h2>Hi</h2>"}
  banner: {variation: none}
rules:
  - name: low
    segment: active
    slots: {hero: {variation: low}}
  - name: high
    segment: active
    priority: 5
    conditions: [{fact: purchases_total, op: ">=", value: 3}]
    slots: {hero: {variation: high}}
  - name: by_cluster
    cluster: cart_fillers
    priority: 9
    slots: {banner: {variation: cart, template: "{{ profile.cluster }} {{ page }}"}}
"""


def decide(profile: Profile, slots=("hero", "banner")) -> dict[str, tuple[str, str]]:
    return {d.slot: (d.variation, d.rule) for d in DecisionMatrix.from_yaml_text(MATRIX).decide(profile, slots)}


def test_highest_priority_matching_rule_per_slot_else_default() -> None:
    assert decide(Profile(["active"], None, {"purchases_total": 4})) == {"hero": ("high", "high"),
                                                                        "banner": ("none", "default")}
    assert decide(Profile(["active"], None, {"purchases_total": 1}))["hero"] == ("low", "low")
    assert decide(Profile(["active"], None, {}))["hero"] == ("low", "low")  # a missing fact fails the condition
    assert decide(Profile([], "cart_fillers", {})) == {
        "hero": ("onboarding", "default"), "banner": ("cart", "by_cluster")}


def test_reasons_and_templates() -> None:
    matrix = DecisionMatrix.from_yaml_text(MATRIX)
    [d] = matrix.decide(Profile(["active"], "cart_fillers", {"purchases_total": "7"}), ["hero"])
    assert d.reason == "segment active, purchases_total >= 3 (purchases_total=7)"
    [banner] = matrix.decide(Profile([], "cart_fillers", {}), ["banner"], page="<home>")
    assert banner.content == "cart_fillers &lt;home&gt;"  # autoescaped


def test_the_sandbox_keeps_templates_away_from_python_internals() -> None:
    matrix = DecisionMatrix.from_yaml_text(
        'version: 1\nslots:\n  hero: {variation: x, template: "{{ \'\'.__class__.__mro__[1].__subclasses__() }}"}\n')
    [d] = matrix.decide(Profile([], None, {}), ["hero"])
    assert d.content == "" and "template error" in d.reason and "unsafe" in d.reason


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nslots:\n  hero: {variation: a}\nrules:\n  - name: r\n    slots: {hero: {variation: b}}\n",
     ":5: rules.0: a rule needs a 'segment' or a 'cluster' to match"),
    ("version: 1\nslots:\n  hero: {variation: a}\nrules:\n  - name: r\n    segment: s\n"
     "    slots: {nope: {variation: b}}\n",
     ":7: rule r gives unknown slot(s) ['nope']"),
    ("version: 2\nslots:\n  hero: {variation: a}\n", ":1: version: 1 was expected"),
    ("version: 1\nslots:\n  hero: {variation: a, template: '{% if %}'}\n", "template does not compile"),
    ("version: 1\nslots: [\n", "not valid YAML"),
])
def test_invalid_matrices_are_refused_with_the_line(text: str, expected: str) -> None:
    with pytest.raises(DecisionMatrixError, match=None) as error:
        DecisionMatrix.from_yaml_text(text, "m.yaml")
    assert str(error.value).startswith("m.yaml") and expected in str(error.value)


def test_the_shipped_matrix_loads() -> None:
    matrix = DecisionMatrix.from_yaml(PROJECT_ROOT / "config" / "decisions.yaml")
    [hero] = matrix.decide(Profile(["interested_but_hesitant"], None, {}), ["hero"])
    assert (hero.variation, hero.data) == ("discount", {"discount_percent": 10})
