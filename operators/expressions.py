"""A small, safe evaluator for segment conditions written in YAML.

A condition is a Python-like boolean expression over named *facts* of a user profile::

    session.product_views > 5 and session.cart_adds >= 1 and session.purchases == 0
    cart.pending_ms >= minutes(30)

The source is parsed with :mod:`ast` and only a whitelist of node types is accepted: ``and`` / ``or`` /
``not``, comparisons, ``+ - * /``, numeric literals, fact names (dotted), and the unit functions
``seconds() minutes() hours() days()`` that turn a constant into milliseconds, and named *parameters*
(constants the rules file declares once, such as ``hesitant_min_views``, so ``tailor recalibrate`` can
change a threshold without rewriting a condition). The accepted tree is then turned into nested
closures; nothing is ever passed to ``eval`` or ``exec``.

Comparisons of a fact against a constant are also recorded as ``Threshold`` s, which is how the engine
knows *when* a time-dependent fact (such as ``cart.pending_ms``) will cross a boundary and sets a timer.

>>> expr = compile_expression("cart.pending_ms >= minutes(30) and not session.purchases", {"cart.pending_ms", "session.purchases"})
>>> expr.evaluate({"cart.pending_ms": 1_800_000, "session.purchases": 0})
True
>>> expr.thresholds
(Threshold(fact='cart.pending_ms', op='>=', value=1800000),)
>>> compile_expression("session.product_views > min_views", {"session.product_views"}, {"min_views": 5}).thresholds
(Threshold(fact='session.product_views', op='>', value=5),)
>>> compile_expression("__import__('os')", set())
Traceback (most recent call last):
...
operators.expressions.ExpressionError: in "__import__('os')": function calls other than seconds(), minutes(), hours(), days() are not allowed
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

import ast
import itertools
import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from settings.errors import TailorError

Facts = Mapping[str, Any]
Node = Callable[[Facts], Any]

UNITS_MS = {"seconds": 1_000, "minutes": 60_000, "hours": 3_600_000, "days": 86_400_000}
# Largest magnitude of a constant: ~292 years in ms, far beyond any rule, and every sum of such a
# constant with an epoch-ms time still fits a Java long (2**63 - 1 ~ 9.2e18).
MAX_CONSTANT = 1e13 * 1_000

_COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], bool]]] = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
}
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _divide(left: Any, right: Any) -> Any:
    """``left / right``, but NaN for a zero divisor (every comparison with NaN is false except ``!=``).

    A fact can be 0 (``session.cart_adds / session.product_views``); a rule must not crash the job.
    """
    return float("nan") if right == 0 else left / right


_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: _divide,
}
MAX_SOURCE_LENGTH = 2_000
# Nesting deeper than this is rejected: compiling and evaluating recurse once per level.
MAX_DEPTH = 50


def _and(a: Node, b: Node) -> Node:
    return lambda f: a(f) and b(f)


def _or(a: Node, b: Node) -> Node:
    return lambda f: a(f) or b(f)


def _binary(fn: Callable[[Any, Any], Any], a: Node, b: Node) -> Node:
    return lambda f: fn(a(f), b(f))


_FACT_VS_CONSTANT: dict[str, Callable[[str, float], Node]] = {
    "<": lambda n, c: lambda f: f[n] < c,
    "<=": lambda n, c: lambda f: f[n] <= c,
    ">": lambda n, c: lambda f: f[n] > c,
    ">=": lambda n, c: lambda f: f[n] >= c,
    "==": lambda n, c: lambda f: f[n] == c,
    "!=": lambda n, c: lambda f: f[n] != c,
}


class ExpressionError(TailorError):
    """A condition uses syntax or names the evaluator does not accept."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """``fact <op> value`` as written in a condition (normalized so the fact is on the left)."""

    fact: str
    op: str
    value: float


@dataclass(frozen=True, slots=True)
class Expression:
    source: str
    facts: frozenset[str]
    thresholds: tuple[Threshold, ...]
    # Compiled from ``source``: two expressions of the same source are equal.
    _root: Node = field(compare=False, repr=False)

    def evaluate(self, facts: Facts) -> bool:
        return bool(self._root(facts))

    @property
    def predicate(self) -> Node:
        """The compiled closure itself, for hot loops that cannot afford the method call."""
        return self._root


def compile_expression(
    source: str, known_facts: Collection[str], parameters: Mapping[str, float] | None = None,
) -> Expression:
    """Parse and check ``source``; raise :class:`ExpressionError` saying what is not allowed.

    ``parameters``: named constants the condition may use by name (a parameter is a number; a fact of
    the same name would be ambiguous, so the caller keeps the two apart)."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"condition is {len(source)} characters long; the limit is {MAX_SOURCE_LENGTH}")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"in {source!r}: not a valid expression ({exc.msg})") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"in {source!r}: nested too deeply; the limit is {MAX_DEPTH} levels") from None
    if _depth(tree.body) > MAX_DEPTH:
        raise ExpressionError(f"in {source!r}: nested too deeply; the limit is {MAX_DEPTH} levels")
    compiler = _Compiler(source, known_facts, parameters or {})
    root = compiler.node(tree.body)
    return Expression(source, frozenset(compiler.used_facts), tuple(compiler.thresholds), root)


def _depth(root: ast.AST) -> int:
    """Nesting depth of an AST, computed without recursion."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


class _Compiler:
    def __init__(self, source: str, known_facts: Collection[str], parameters: Mapping[str, float]) -> None:
        self.source = source
        self.known_facts = known_facts
        self.parameters = parameters
        self.used_facts: set[str] = set()
        self.thresholds: list[Threshold] = []

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(f"in {self.source!r}: {message}")

    def node(self, node: ast.expr) -> Node:
        if isinstance(node, ast.BoolOp):
            # Fold into nested two-way closures: a generator per evaluation costs ~3x more.
            combine = _and if isinstance(node.op, ast.And) else _or
            parts = [self.node(v) for v in node.values]
            root = parts[-1]
            for part in reversed(parts[:-1]):
                root = combine(part, root)
            return root
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.node(node.operand)
            return lambda f: not inner(f)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            left, right, op = self.node(node.left), self.node(node.right), _ARITHMETIC[type(node.op)]
            return lambda f: op(left(f), right(f))
        constant = self.constant(node)
        if constant is not None:
            return lambda f: constant
        name = self.fact_name(node)
        if name is not None:
            self.used_facts.add(name)
            return operator.itemgetter(name)
        if isinstance(node, ast.Call):
            raise self.fail("function calls other than seconds(), minutes(), hours(), days() are not allowed")
        raise self.fail(f"{type(node).__name__} is not allowed; use facts, numbers, comparisons, and/or/not")

    def compare(self, node: ast.Compare) -> Node:
        operands = [node.left, *node.comparators]
        pairs = []
        for (left, right), op in zip(itertools.pairwise(operands), node.ops, strict=True):
            if type(op) not in _COMPARE:
                raise self.fail(f"comparison {type(op).__name__} is not allowed")
            symbol, fn = _COMPARE[type(op)]
            self.record_threshold(left, symbol, right)
            fact, constant = self.fact_name(left), self.constant(right)
            if fact is not None and constant is not None:  # the common shape, fact <op> number: inline it
                self.used_facts.add(fact)
                pairs.append(_FACT_VS_CONSTANT[symbol](fact, constant))
            else:
                pairs.append(_binary(fn, self.node(left), self.node(right)))
        root = pairs[-1]
        for pair in reversed(pairs[:-1]):
            root = _and(pair, root)
        return root

    def record_threshold(self, left: ast.expr, symbol: str, right: ast.expr) -> None:
        fact, value = self.fact_name(left), self.constant(right)
        if fact is None or value is None:
            fact, value, symbol = self.fact_name(right), self.constant(left), _MIRRORED[symbol]
        if fact is not None and value is not None:
            self.thresholds.append(Threshold(fact, symbol, value))

    def fact_name(self, node: ast.expr) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or (not parts and node.id in self.parameters):
            return None
        parts.append(node.id)
        name = ".".join(reversed(parts))
        if name not in self.known_facts:
            declared = f"; parameters: {', '.join(sorted(self.parameters))}" if self.parameters else ""
            raise self.fail(f"unknown fact {name!r}; known facts: {', '.join(sorted(self.known_facts))}{declared}")
        return name

    def constant(self, node: ast.expr) -> float | None:
        """The value of a constant sub-expression (numbers, unit calls, arithmetic on them), else None.
        Every constant is finite and within ``MAX_CONSTANT``, so no threshold or deadline derived from it
        can overflow (a timer instant must fit Java's long)."""
        value = self._constant(node)
        if value is not None and not (math.isfinite(value) and abs(value) <= MAX_CONSTANT):
            raise self.fail(
                f"constant {value!r} is out of range: constants must be finite and within ±{MAX_CONSTANT:.0e}"
            )
        return value

    def _constant(self, node: ast.expr) -> float | None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise self.fail(f"only numbers are allowed as literals, got {node.value!r}")
            return self._bounded(node.value)
        if isinstance(node, ast.Name) and node.id in self.parameters:
            return self._bounded(self.parameters[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.constant(node.operand)
            return None if inner is None else -inner
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in UNITS_MS:
            if len(node.args) != 1 or node.keywords:
                raise self.fail(f"{node.func.id}() takes exactly one number")
            amount = self.constant(node.args[0])
            if amount is None:
                raise self.fail(f"{node.func.id}() takes a constant number, not a fact")
            return self._bounded(amount * UNITS_MS[node.func.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            left, right = self.constant(node.left), self.constant(node.right)
            if left is not None and right is not None:
                if isinstance(node.op, ast.Div) and right == 0:
                    raise self.fail("division by zero in a constant")
                return self._bounded(_ARITHMETIC[type(node.op)](left, right))
        return None

    def _bounded(self, value: int | float) -> float:
        # Huge Python ints are exact but overflow float() and Java longs: reject them before either.
        if isinstance(value, int) and abs(value) > MAX_CONSTANT:
            raise self.fail(f"constant {value} is out of range: constants must be within ±{MAX_CONSTANT:.0e}")
        return value
