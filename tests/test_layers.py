"""Layers run one way: a package imports only packages below it (README "Layout").

    settings  <-  state_schemas  <-  operators  <-  connectors  <-  pipelines  <-  stack, evaluation
              <-  bench  <-  tailor (the CLI)

Imports are read with ``ast`` (every ``import`` statement, also inside functions), so a lazy import
that runs upward fails here as well. The pure layers must not import the engine either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "settings": 0,
    "state_schemas": 1,
    "operators": 2,
    "connectors": 3,
    "pipelines": 4,
    "stack": 5,
    "evaluation": 5,
    "bench": 6,
    "tailor": 7,
}
# Plain Python, unit tested in milliseconds: no engine and no wire clients below connectors/.
PURE = {"settings", "state_schemas", "operators"}
ENGINE_AND_WIRE = {"pyflink", "kafka", "aiokafka", "redis", "faust"}


def imports(package: str, root: Path = ROOT) -> list[tuple[str, int, str]]:
    """(file, line, imported top-level name) for every absolute import under ``package``."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(root)), node.lineno, name.split(".")[0]) for name in names]
    return found


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_imports_run_one_way(package: str) -> None:
    upward = [
        f"{file}:{line} imports {name}"
        for file, line, name in imports(package)
        if name in LAYERS and name != package and LAYERS[name] >= LAYERS[package]
    ]

    assert upward == [], f"{package}/ may import only {sorted(p for p, r in LAYERS.items() if r < LAYERS[package])}"


@pytest.mark.parametrize("package", sorted(PURE))
def test_layers_pure_packages_know_no_engine_or_wire(package: str) -> None:
    wire = [f"{file}:{line} imports {name}" for file, line, name in imports(package) if name in ENGINE_AND_WIRE]

    assert wire == []


def test_layers_cover_every_top_level_package() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests"}

    assert packages == set(LAYERS)


def test_layers_see_a_lazy_import_inside_a_function(tmp_path: Path) -> None:
    (tmp_path / "operators").mkdir()
    (tmp_path / "operators" / "bad.py").write_text("def f():\n    from pipelines import segmentation_job\n")

    assert imports("operators", root=tmp_path) == [("operators/bad.py", 2, "pipelines")]
