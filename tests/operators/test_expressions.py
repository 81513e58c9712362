"""compile_expression(): what conditions mean, which thresholds they expose, and what they may never do."""

from __future__ import annotations

import builtins
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from operators.expressions import (
    MAX_DEPTH,
    MAX_SOURCE_LENGTH,
    ExpressionError,
    Threshold,
    compile_expression,
)
from operators.profile_facts import KnownFacts

KNOWN = KnownFacts()
FACTS = {
    "session.open": 1,
    "session.events": 8,
    "session.product_views": 6,
    "session.cart_adds": 1,
    "session.purchases": 0,
    "session.duration_ms": 120_000,
    "sessions_total": 3,
    "purchases_total": 2,
    "idle_ms": 0,
    "cart.pending_ms": 1_800_000,
    "days_active_7d": 5,
    "days_active_30d": 9,
}


def holds(source: str, **overrides: Any) -> bool:
    return compile_expression(source, KNOWN).evaluate({**FACTS, **overrides})


def refused(source: str) -> str:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source, KNOWN)
    return str(info.value)


# -- semantics ---------------------------------------------------------------------------------------


def test_expression_default_hesitant_rule_holds_only_with_views_cart_and_no_purchase() -> None:
    rule = "session.product_views > 5 and session.cart_adds >= 1 and session.purchases == 0"

    results = [
        holds(rule),
        holds(rule, **{"session.product_views": 5}),
        holds(rule, **{"session.cart_adds": 0}),
        holds(rule, **{"session.purchases": 1}),
    ]

    assert results == [True, False, False, False]


def test_expression_and_or_not_follow_boolean_logic() -> None:
    table = [
        holds("session.purchases == 0 or idle_ms > 5", idle_ms=0),
        holds("session.purchases == 1 or idle_ms > 5", idle_ms=0),
        holds("not session.purchases"),
        holds("not session.cart_adds"),
        holds("not (idle_ms > 5 and session.open)", idle_ms=6),
        holds("idle_ms > 5 and session.open or sessions_total == 3", idle_ms=0),
    ]

    assert table == [True, False, True, False, False, True]


def test_expression_evaluate_returns_a_bool_for_a_bare_fact() -> None:
    expr = compile_expression("session.events", KNOWN)

    assert (expr.evaluate({"session.events": 8}), expr.evaluate({"session.events": 0})) == (True, False)


@pytest.mark.parametrize(("idle", "expected"), [(0, False), (1, True), (9, True), (10, False)])
def test_expression_chained_comparison_requires_every_link(idle: int, expected: bool) -> None:
    assert holds("0 < idle_ms < 10", idle_ms=idle) is expected


def test_expression_chained_comparison_with_three_links() -> None:
    source = "1 <= session.cart_adds <= session.product_views < 10"

    assert [
        holds(source),
        holds(source, **{"session.product_views": 10}),
        holds(source, **{"session.cart_adds": 0}),
    ] == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("session.cart_adds * 2 + 1 == 3", True),
        ("session.product_views - session.cart_adds == 5", True),
        ("session.product_views / 4 == 1.5", True),
        ("purchases_total / sessions_total > 0.6", True),
        ("2 + 3 * 4 == 14", True),  # usual precedence
        ("(2 + 3) * 4 == 20", True),
        ("-1 < 0", True),
        ("idle_ms > -1", True),
    ],
)
def test_expression_arithmetic_follows_python_precedence(source: str, expected: bool) -> None:
    assert holds(source) is expected


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("seconds(1)", 1_000),
        ("minutes(30)", 1_800_000),
        ("hours(2)", 7_200_000),
        ("days(7)", 604_800_000),
        ("minutes(0.5)", 30_000),
        ("days(1) + hours(1)", 90_000_000),
        ("minutes(2 * 15)", 1_800_000),
        ("minutes(-1)", -60_000),
    ],
)
def test_expression_units_turn_constants_into_milliseconds(source: str, value: int) -> None:
    assert compile_expression(f"idle_ms == {source}", KNOWN).thresholds == (
        Threshold("idle_ms", "==", value),
    )


def test_expression_division_by_a_zero_fact_is_nan_so_comparisons_are_false() -> None:
    # Regression: a zero divisor used to raise ZeroDivisionError inside the Flink operator.
    zero_views = {"session.product_views": 0}

    assert holds("session.cart_adds / session.product_views > 0.5", **zero_views) is False
    assert holds("session.cart_adds / session.product_views <= 0.5", **zero_views) is False
    assert holds("session.cart_adds / session.product_views != 0.5", **zero_views) is True


def test_expression_rejects_division_by_a_zero_constant() -> None:
    assert refused("idle_ms > 1 / 0") == "in 'idle_ms > 1 / 0': division by zero in a constant"


def test_expression_records_the_facts_it_reads() -> None:
    expr = compile_expression(
        "session.product_views > 5 and (idle_ms < days(7) or days_active_30d >= 1)", KNOWN
    )

    assert expr.facts == frozenset({"session.product_views", "idle_ms", "days_active_30d"})


def test_expression_keeps_its_source() -> None:
    assert compile_expression(" idle_ms > 1 ", KNOWN).source == " idle_ms > 1 "


# -- thresholds -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "threshold"),
    [
        ("cart.pending_ms >= minutes(30)", Threshold("cart.pending_ms", ">=", 1_800_000)),
        ("minutes(30) <= cart.pending_ms", Threshold("cart.pending_ms", ">=", 1_800_000)),
        ("idle_ms < days(7)", Threshold("idle_ms", "<", 604_800_000)),
        ("days(7) > idle_ms", Threshold("idle_ms", "<", 604_800_000)),
        ("5 < session.product_views", Threshold("session.product_views", ">", 5)),
        ("5 >= session.product_views", Threshold("session.product_views", "<=", 5)),
        ("0 == session.purchases", Threshold("session.purchases", "==", 0)),
        ("1 != days_active_7d", Threshold("days_active_7d", "!=", 1)),
        ("idle_ms > -1", Threshold("idle_ms", ">", -1)),
    ],
)
def test_expression_thresholds_put_the_fact_on_the_left(source: str, threshold: Threshold) -> None:
    assert compile_expression(source, KNOWN).thresholds == (threshold,)


def test_expression_thresholds_come_from_every_comparison_in_order() -> None:
    source = "idle_ms >= days(7) and idle_ms < days(30) or not cart.pending_ms > 0"

    assert compile_expression(source, KNOWN).thresholds == (
        Threshold("idle_ms", ">=", 604_800_000),
        Threshold("idle_ms", "<", 2_592_000_000),
        Threshold("cart.pending_ms", ">", 0),
    )


def test_expression_thresholds_of_a_chained_comparison_cover_both_bounds() -> None:
    assert compile_expression("hours(1) <= idle_ms < days(1)", KNOWN).thresholds == (
        Threshold("idle_ms", ">=", 3_600_000),
        Threshold("idle_ms", "<", 86_400_000),
    )


def test_expression_thresholds_skip_comparisons_without_a_constant_side() -> None:
    # fact vs fact, and a fact inside arithmetic (documented limitation: no timer for `idle_ms + x > y`)
    source = "session.cart_adds < session.product_views and idle_ms + 1 > 5"

    assert compile_expression(source, KNOWN).thresholds == ()


# -- safety -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("session.__class__", "unknown fact 'session.__class__'"),
        ("idle_ms.__class__.__bases__", "unknown fact 'idle_ms.__class__.__bases__'"),
        ("__builtins__", "unknown fact '__builtins__'"),
        ("().__class__.__base__", "Attribute is not allowed"),
        ("minutes(1).__class__", "Attribute is not allowed"),
        (
            "__import__('os').system('true')",
            "function calls other than seconds(), minutes(), hours(), days()",
        ),
        ("__import__('os')", "function calls other than seconds(), minutes(), hours(), days()"),
        ("open('/etc/passwd')", "function calls other than"),
        ("eval('1')", "function calls other than"),
        ("exec('x = 1')", "function calls other than"),
        ("getattr(idle_ms, 'real')", "function calls other than"),
        ("(lambda: 1)()", "function calls other than"),
        ("lambda: 1", "Lambda is not allowed"),
        ("idle_ms[0]", "Subscript is not allowed"),
        ("[1][0] > 0", "Subscript is not allowed"),
        ("[x for x in (1, 2)]", "ListComp is not allowed"),
        ("any(x for x in (1, 2))", "function calls other than"),
        ("{x: 1 for x in (1, 2)}", "DictComp is not allowed"),
        ("'a' == 'a'", "only numbers are allowed as literals, got 'a'"),
        ("idle_ms == b'x'", "only numbers are allowed as literals, got b'x'"),
        ("f'{idle_ms}'", "JoinedStr is not allowed"),
        ("(x := 1) > 0", "NamedExpr is not allowed"),
        ("True", "only numbers are allowed as literals, got True"),
        ("idle_ms == None", "only numbers are allowed as literals, got None"),
        ("idle_ms if idle_ms else 0", "IfExp is not allowed"),
        ("idle_ms ** 2 > 1", "BinOp is not allowed"),
        ("idle_ms % 2 == 0", "BinOp is not allowed"),
        ("idle_ms // 2 == 0", "BinOp is not allowed"),
        ("idle_ms | 1", "BinOp is not allowed"),
        ("-idle_ms < 0", "UnaryOp is not allowed"),
        ("~1 < 0", "UnaryOp is not allowed"),
        ("idle_ms in (1, 2)", "comparison In is not allowed"),
        ("idle_ms is 0", "comparison Is is not allowed"),
        ("(1, 2)", "Tuple is not allowed"),
        ("minutes(idle_ms) > 0", "minutes() takes a constant number, not a fact"),
        ("minutes(1, 2) > 0", "minutes() takes exactly one number"),
        ("minutes(n=1) > 0", "minutes() takes exactly one number"),
        ("foo > 1", "unknown fact 'foo'; known facts: "),
        ("days_active_0d > 1", "unknown fact 'days_active_0d'"),
        ("idle_ms >", "not a valid expression"),
        ("import os", "not a valid expression"),
        ("idle_ms > 1; idle_ms", "not a valid expression"),
        ("", "not a valid expression"),
    ],
)
def test_expression_refuses_anything_outside_the_whitelist(source: str, message: str) -> None:
    text = refused(source)

    assert text.startswith(f"in {source!r}: ")
    assert message in text


def test_expression_unknown_fact_error_lists_the_known_facts() -> None:
    assert refused("foo > 1") == (
        "in 'foo > 1': unknown fact 'foo'; known facts: cart.pending_ms, days_active_<N>d, idle_ms, "
        "purchases_total, session.cart_adds, session.duration_ms, session.events, session.open, "
        "session.product_views, session.purchases, sessions_total"
    )


def test_expression_refuses_sources_longer_than_the_limit() -> None:
    source = "idle_ms > 1 " + " " * MAX_SOURCE_LENGTH

    assert refused(source) == f"condition is {len(source)} characters long; the limit is {MAX_SOURCE_LENGTH}"


@pytest.mark.parametrize(
    "source",
    [
        "-" * 1_985 + "1 > idle_ms",  # used to overflow the stack while folding constants
        "not " * (MAX_DEPTH + 1) + "idle_ms",
        "idle_ms" + " + 1" * 400 + " > 0",
        "(" * 150 + "idle_ms" + ")" * 150 + " and " + "not " * 60 + "idle_ms",
    ],
)
def test_expression_refuses_deep_nesting_instead_of_overflowing_the_stack(source: str) -> None:
    assert len(source) <= MAX_SOURCE_LENGTH
    assert "nested too deeply; the limit is 50 levels" in refused(source)


def test_expression_refuses_parser_bombs_quickly_without_computing_them() -> None:
    start = time.perf_counter()

    text = refused("idle_ms > 9 ** 9 ** 9 ** 9")

    assert "BinOp is not allowed" in text
    assert time.perf_counter() - start < 0.5


def test_expression_never_runs_code_while_compiling_or_evaluating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    attacks = [
        f"open({str(marker)!r}, 'w')",
        f"__import__('pathlib').Path({str(marker)!r}).touch()",
        f"exec(\"open({str(marker)!r}, 'w')\")",
        f"[open({str(marker)!r}, 'w') for _ in (1,)]",
    ]
    calls: list[str] = []

    def forbidden(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return record

    monkeypatch.setattr(builtins, "eval", forbidden("eval"))
    monkeypatch.setattr(builtins, "exec", forbidden("exec"))
    errors = []
    for source in attacks:
        with pytest.raises(ExpressionError) as info:
            compile_expression(source, KNOWN)
        errors.append(type(info.value).__name__)
    legit = compile_expression("cart.pending_ms >= minutes(30) and not session.purchases", KNOWN)
    result = legit.evaluate(FACTS)

    assert errors == ["ExpressionError"] * len(attacks)
    assert result is True
    assert calls == []
    assert not marker.exists()


def test_expression_only_reads_facts_it_was_compiled_with() -> None:
    class Recording(dict[str, Any]):
        read: ClassVar[list[str]] = []

        def __getitem__(self, key: str) -> Any:
            self.read.append(key)
            return super().__getitem__(key)

    facts = Recording(FACTS)

    compile_expression("idle_ms < 5 and session.product_views > 5", KNOWN).evaluate(facts)

    assert facts.read == ["idle_ms", "session.product_views"]


def test_expression_error_is_a_tailor_error() -> None:
    from settings.errors import TailorError

    assert issubclass(ExpressionError, TailorError)
