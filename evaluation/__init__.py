"""``tailor evaluate``: replay a dataset test-then-learn through the same model operators the job runs.

Each evaluation is one module here with ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args, settings) -> exit code``; ``EVALUATIONS`` lists them in the order ``--help`` shows them.
Results (JSON, Markdown table, plot) go to ``evaluation-results/`` (git-ignored).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "evaluation-results"

EVALUATIONS: tuple[str, ...] = (
    "clusters", "experiments", "movielens", "movielens_next", "replicas", "taobao", "tune",
)


def modules() -> list[tuple[str, ModuleType]]:
    return [(name, importlib.import_module(f"evaluation.{name}")) for name in EVALUATIONS]
