"""Which state a start of the job resumes from: the failure contract of ``tailor job run``.

    retained checkpoint or savepoint of this layout     resume from the newest one, and say which
    none, the consumer group never committed offsets   a first start: empty state, earliest offsets
    none, but the group has committed offsets          refuse: continuing from those offsets with empty
                                                        state would enter users twice (a lost state dir)
    only state of an older layout                      refuse, with the replay command
    state of a graph with operators this one drops     refuse, naming the settings it was written with
    (models or the sharded recommender turned off)     and the replay command (Flink cannot restore it)
    state written by another ``state_backend``          refuse, naming both and the replay command (Flink
                                                        2.2 fails that restore and restarts the job forever)
    --fresh                                             empty state from the earliest offsets; refused while
                                                        retained state exists, unless --discard-state moves
                                                        it aside (kept, not deleted)

State lives under ``pipelines.segmentation_job.state_dirs(settings)``: per consumer group (the job's
identity: its offsets and transactional ids are named after it too) and per state layout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from connectors import flink_state
from connectors.flink_state import RetainedState
from connectors.kafka_topics import committed_offsets
from pipelines.state_layout import STATE_LAYOUT, graph_settings, state_dirs, stateful_model_operators
from settings import Settings
from stack.errors import StackError

# Completed runs of the job whose checkpoints are kept (each start writes under a new job id).
RUNS_KEPT = 2
# Starts whose graph settings are kept (one small file each; a retained checkpoint needs the last before it)
GRAPHS_KEPT = 50


class StartRefused(StackError):
    """Starting now would lose or silently drop state; the message says what to run instead."""


@dataclass(frozen=True)
class StartPlan:
    restore: RetainedState | None  # resume from this checkpoint or savepoint
    from_earliest: bool  # read the events topic from its start (fresh replay)
    message: str  # one line for the operator: what this start does


def plan_start(settings: Settings, fresh: bool = False, discard_state: bool = False) -> StartPlan:
    """Decide how a job of ``settings`` starts (see the module doc) and note its graph settings next to
    the state, for the next start; raises StartRefused."""
    dirs = state_dirs(settings)
    current = flink_state.newest(dirs.checkpoints, dirs.savepoints)
    others = _other_layouts(dirs.group)
    if fresh:
        if (current is not None or others) and not discard_state:
            found = current.describe() if current is not None else ", ".join(str(p) for p in others)
            raise StartRefused(
                f"--fresh would start with empty state, but retained state exists: {found}. "
                "Add --discard-state to move it aside (kept under "
                f"{dirs.group}/discarded-<time>/) and replay from the earliest offset, or drop --fresh to resume."
            )
        moved = _move_aside(dirs.group) if discard_state else None
        note = f"; the previous state was moved to {moved}" if moved else ""
        _record_graph(settings, dirs.checkpoints.parent)
        return StartPlan(None, True, f"starting with empty state from the earliest offsets (--fresh){note}")
    if current is not None:
        written_by = _graph_of(current, dirs.checkpoints.parent)
        if written_by is not None:
            _refuse_dropped_operators(settings, current, written_by)
            _refuse_other_backend(settings, current, written_by)
        flink_state.prune_runs(dirs.checkpoints, keep=RUNS_KEPT)
        _record_graph(settings, dirs.checkpoints.parent)
        return StartPlan(current, False, f"resuming from {current.describe()}")
    if others:
        raise StartRefused(
            f"the retained state {', '.join(str(p) for p in others)} was written by another state layout; this "
            f"Tailor writes layout {STATE_LAYOUT} and cannot restore it. Replay the events instead: "
            "`tailor job run --fresh --discard-state` (the old state is kept aside, not deleted)."
        )
    offsets = committed_offsets(settings, settings.consumer_group, settings.events_topic)
    if offsets:
        raise StartRefused(
            f"consumer group {settings.consumer_group!r} has committed offsets on {settings.events_topic} "
            f"({sum(offsets.values()):,} records read) but no retained checkpoint or savepoint is under "
            f"{dirs.group}: starting now would continue from those offsets with empty state. Point "
            "TAILOR_STATE_DIR at the job's state, or replay from the start with `tailor job run --fresh`."
        )
    _record_graph(settings, dirs.checkpoints.parent)
    return StartPlan(None, False, f"first start of consumer group {settings.consumer_group!r}: empty state")


def _record_graph(settings: Settings, layout: Path) -> None:
    """Note the graph settings of this start, so a later start can tell which graph wrote a checkpoint."""
    graphs = layout / "graphs"
    graphs.mkdir(parents=True, exist_ok=True)
    start = {**graph_settings(settings), "state_backend": settings.state_backend}
    (graphs / f"{time.time_ns()}.json").write_text(json.dumps(start))
    for old in sorted(graphs.glob("*.json"), key=lambda p: p.name.zfill(24))[:-GRAPHS_KEPT]:
        old.unlink()


def _graph_of(state: RetainedState, layout: Path) -> dict[str, bool | str] | None:
    """The graph settings and state backend of the last start before ``state`` was written; None if no
    start was noted."""
    started = [(int(p.stem), p) for p in (layout / "graphs").glob("*.json") if p.stem.isdigit()]
    before = [p for ns, p in sorted(started) if ns / 1e9 <= state.written_at]
    return json.loads(before[-1].read_text()) if before else None


def _refuse_dropped_operators(settings: Settings, state: RetainedState, old: dict[str, bool | str]) -> None:
    new = graph_settings(settings)
    dropped = stateful_model_operators(old) - stateful_model_operators(new)
    if dropped:
        written = ", ".join(f"{name}={str(old.get(name, False)).lower()}" for name in new)
        now = ", ".join(f"{name}={str(value).lower()}" for name, value in new.items())
        raise StartRefused(
            f"the retained {state.describe()} holds the state of {', '.join(sorted(dropped))}, written with "
            f"{written}; this start has {now}, a graph without those operators, and Flink cannot restore "
            "state it cannot place. Start with the settings it was written with, or replay the events with "
            "the new ones: `tailor job run --fresh --discard-state` (the old state is kept aside, not deleted)."
        )


def _refuse_other_backend(settings: Settings, state: RetainedState, old: dict[str, bool | str]) -> None:
    """Measured on Flink 2.2: a hashmap checkpoint restored into RocksDB fails in RocksDBFullRestoreOperation
    (ArrayIndexOutOfBoundsException) and the job restarts forever. Flink documents an incremental RocksDB
    checkpoint as readable by RocksDB only."""
    written = old.get("state_backend")  # starts before 2026-12-05 did not note it
    if written is None or written == settings.state_backend:
        return
    raise StartRefused(
        f"the retained {state.describe()} was written by the {written} state backend; this start asks for "
        f"state_backend={settings.state_backend}, and Flink cannot restore it there. Start with "
        f"state_backend={written}, or replay the events with the new backend: "
        "`tailor job run --fresh --discard-state` (the old state is kept aside, not deleted)."
    )


def _other_layouts(group: Path) -> list[Path]:
    current = f"layout-{STATE_LAYOUT}"
    return [
        layout for layout in sorted(group.glob("layout-*"))
        if layout.name != current and flink_state.retained(layout / "checkpoints", layout / "savepoints")
    ]


def _move_aside(group: Path) -> Path | None:
    layouts = sorted(group.glob("layout-*"))
    if not layouts:
        return None
    target = group / f"discarded-{time.strftime('%Y%m%dT%H%M%S')}"
    target.mkdir(parents=True)
    for layout in layouts:
        layout.rename(target / layout.name)
    return target
