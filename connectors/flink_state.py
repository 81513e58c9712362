"""Flink's retained checkpoints and savepoints on a file system: which exist, and which is newest.

Flink writes a completed checkpoint as ``<checkpoint dir>/<job id>/chk-<n>/_metadata`` and a savepoint as
``<savepoint dir>/savepoint-<job id prefix>-<random>/_metadata``; a directory without ``_metadata`` is
unfinished (the job died while writing it) and cannot be restored. A restore takes the directory.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for part in ("c/j1/chk-3", "c/j1/chk-4", "c/j2/chk-9", "s/savepoint-ab12-cd34"):
...     (root / part).mkdir(parents=True)
>>> for done in ("c/j1/chk-3", "s/savepoint-ab12-cd34"):
...     _ = (root / done / "_metadata").write_bytes(b"x")
>>> [p.relative_to(root).as_posix() for p in retained(root / "c", root / "s")]
['c/j1/chk-3', 's/savepoint-ab12-cd34']
>>> [p.name for p in prune_runs(root / "c", keep=1)]   # j2 never completed a checkpoint
['j2']
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

METADATA = "_metadata"


@dataclass(frozen=True)
class RetainedState:
    path: Path  # the checkpoint or savepoint directory to restore
    kind: str  # "checkpoint" | "savepoint"
    written_at: float  # epoch seconds of its metadata

    def describe(self) -> str:
        age = max(0.0, time.time() - self.written_at)
        ago = f"{age:.0f} s" if age < 120 else f"{age / 60:.0f} min" if age < 7200 else f"{age / 3600:.1f} h"
        return f"{self.kind} {self.path} (written {ago} ago)"


def retained(checkpoints: Path, savepoints: Path) -> list[Path]:
    """Every completed checkpoint and savepoint directory under the two roots, oldest first."""
    found = [p.parent for p in checkpoints.glob(f"*/chk-*/{METADATA}")]
    found += [p.parent for p in savepoints.glob(f"savepoint-*/{METADATA}")]
    return sorted(found, key=lambda d: ((d / METADATA).stat().st_mtime, d.as_posix()))


def newest(checkpoints: Path, savepoints: Path) -> RetainedState | None:
    """The most recently written completed checkpoint or savepoint, or None."""
    found = retained(checkpoints, savepoints)
    if not found:
        return None
    path = found[-1]
    kind = "savepoint" if path.parent == savepoints else "checkpoint"
    return RetainedState(path, kind, (path / METADATA).stat().st_mtime)


def newest_savepoint(savepoints: Path, since: float) -> Path | None:
    """The most recent completed savepoint under ``savepoints`` written at or after ``since`` (epoch s)."""
    found = [p.parent for p in savepoints.glob(f"savepoint-*/{METADATA}") if p.stat().st_mtime >= since]
    return max(found, key=lambda d: (d / METADATA).stat().st_mtime, default=None)


def prune_runs(checkpoints: Path, keep: int = 2) -> list[Path]:
    """Delete the checkpoint directories of all but the ``keep`` most recent job runs (``<job id>/``).

    Every start of a job writes under a new job id, so without this they pile up. A run with no
    completed checkpoint is useless and goes too. Call it before a job starts, never while one runs.
    Returns the deleted run directories.
    """
    runs = [run for run in checkpoints.glob("*/") if run.is_dir()]
    completed = {run: max((m.stat().st_mtime for m in run.glob(f"chk-*/{METADATA}")), default=None) for run in runs}
    by_age = sorted((t, run.as_posix(), run) for run, t in completed.items() if t is not None)
    kept = {run for _, _, run in by_age[-keep:]} if keep > 0 else set()
    dropped = [run for run in runs if run not in kept]
    for run in dropped:
        for file in sorted(run.rglob("*"), reverse=True):
            file.unlink() if file.is_file() or file.is_symlink() else file.rmdir()
        run.rmdir()
    return sorted(dropped)
