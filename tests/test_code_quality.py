"""Code-quality gates, run with the suite (and by ``tailor test --unit``: no stack needed).

* ``ruff check`` over every source package and the tests, with the rule set of ``[tool.ruff.lint]`` in pyproject.toml
  (pycodestyle, pyflakes, import order, bugbear, blind excepts, pyupgrade, simplify, comprehensions,
  ruff's own rules, pylint errors and warnings);
* ``mypy`` over its configured scope (``[tool.mypy] files``: settings/, state_schemas/, operators/), strict
  there: every function annotated, no implicit Any in generics or returns, no untyped calls.

A failure prints the tool's findings; fix them, or change the configuration on purpose (with a reason).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The top-level source packages, as installed (bench.baselines is inside bench).
SOURCE_PACKAGES = sorted({name.split(".")[0] for name in PYPROJECT["tool"]["setuptools"]["packages"]})


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_ruff_finds_nothing_in_the_source_packages_and_tests() -> None:
    paths = [*SOURCE_PACKAGES, "tests"]
    result = _run("ruff", "check", "--output-format", "concise", *paths)

    assert result.returncode == 0, f"ruff check {' '.join(paths)}:\n{result.stdout}{result.stderr}"


def test_mypy_strict_scope_type_checks() -> None:
    scope = PYPROJECT["tool"]["mypy"]["files"]
    assert {"settings", "state_schemas", "operators"} <= set(scope)

    result = _run("mypy")

    assert result.returncode == 0, f"mypy {' '.join(scope)}:\n{result.stdout}{result.stderr}"
