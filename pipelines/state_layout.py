"""Where the job's state is retained and which shape it has: no pyflink here, so the CLI can plan a start
or find a savepoint without loading the engine."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from settings import Settings

JOB_NAME = "tailor-segmentation"
# The shape of the job's operator state (uids, state names, value layouts that cannot be migrated on
# read). Bump it with any such change: retained state of another layout is then refused with the
# command to replay instead, never half-restored.
STATE_LAYOUT = 3


class StateDirs(NamedTuple):
    group: Path  # every layout of this consumer group
    checkpoints: Path
    savepoints: Path


def state_dirs(settings: Settings) -> StateDirs:
    """Where this job's checkpoints and savepoints are retained: per consumer group (the job's identity:
    it also names the offsets and transactional ids) and per state layout."""
    root = settings.state_dir / settings.consumer_group
    layout = root / f"layout-{STATE_LAYOUT}"
    return StateDirs(root, layout / "checkpoints", layout / "savepoints")


# Settings that add or drop stateful operators. Retained state holding an operator the new graph lacks
# cannot be restored (Flink refuses state it cannot place): ``stack.job_state`` checks before a start.
GRAPH_SETTINGS = ("models_enabled", "models_sharded")


def graph_settings(settings: Settings) -> dict[str, bool]:
    return {name: bool(getattr(settings, name)) for name in GRAPH_SETTINGS}


def stateful_model_operators(graph: dict[str, bool] | dict[str, bool | str]) -> set[str]:
    """The uids of the model operators with state in a graph of these settings.

    >>> sorted(stateful_model_operators({"models_enabled": True, "models_sharded": True}))
    ['learn_models', 'learn_recommendations']
    >>> stateful_model_operators({"models_enabled": False, "models_sharded": True})
    set()
    """
    if not graph.get("models_enabled"):
        return set()
    return {"learn_models", "learn_recommendations"} if graph.get("models_sharded") else {"learn_models"}
