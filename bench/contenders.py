"""The contenders ``tailor bench`` runs side by side, and how to start, watch and stop each one.

=============  =====  ===============================================================================
id             group  what
=============  =====  ===============================================================================
consume        a      kafka-python consume-only loop (client ingest ceiling; no outputs)
floor          a      PyFlink floor: parse + key_by + a keyed op with one ValueState, no outputs
                      (what PyFlink itself costs per event; :mod:`bench.floor_job`)
floor-batched  a      the floor with Java-side micro-batches per key bucket: one Python call per batch,
                      MapState per user (the design measured for the job's next step)
python         b      single-process Python consumer, same operators, Redis + Kafka out
faust          c      Faust app, same operators, state in a Faust table
thread         d,f    the job, embedded mini-cluster, thread mode, parallelism 1, models off (rules only)
process        d      the job, embedded mini-cluster, process mode, parallelism 1
tm1-p1         e      standalone cluster, 1 TaskManager x 2 slots, parallelism 1
tm1-p2         e      standalone cluster, 1 TaskManager x 2 slots, parallelism 2 (one interpreter/GIL)
tm2-p2         e      standalone cluster, 2 TaskManagers x 1 slot, parallelism 2 (two interpreters)
models         f      the job, embedded, thread mode, parallelism 1, ``models_enabled`` on (full path)
sharded        f,g    the full path with ``models_sharded``: recommender replicas keyed by bucket
sharded-tm1    g      standalone cluster, 1 TaskManager x 2 slots, parallelism 1, full path, sharded
sharded-tm2    g      standalone cluster, 2 TaskManagers x 1 slot, parallelism 2, full path, sharded
=============  =====  ===============================================================================

``--only`` takes ids or group letters (``--only a,b,thread``).

A started contender is a :class:`Running`: ``processed()`` (records handled so far, None while it
cannot tell), ``pids()`` (for CPU and memory), ``failure()`` (why it died, else None),
``state_size(after_ms)`` (Flink only), ``stop()``.

>>> [c.id for c in select("a,e")]
['consume', 'floor', 'floor-batched', 'tm1-p1', 'tm1-p2', 'tm2-p2']
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.baselines import progress as baseline_progress
from bench.flink_runs import PROGRESS_COUNTERS, BenchCluster, JobProbe, start_local, stop_local
from settings import PROJECT_ROOT, Settings


@dataclass(frozen=True)
class Contender:
    id: str
    group: str
    kind: str  # "baseline" | "local" | "cluster"
    label: str
    module: str = ""  # baselines: python -m <module>
    execution_mode: str = "thread"
    parallelism: int = 1
    taskmanagers: int = 0
    models_enabled: bool = False
    models_sharded: bool = False
    writes: bool = True  # produces segment changes (latency can be measured)
    job: str = "segmentation"  # or "floor" / "floor-batched" (bench.floor_job)


CONTENDERS = (
    Contender("consume", "a", "baseline", "kafka-python consume only", "bench.baselines.consume_only", writes=False),
    Contender("floor", "a", "local", "PyFlink floor (keyed no-op)", writes=False, job="floor"),
    Contender("floor-batched", "a", "local", "PyFlink floor, micro-batched", writes=False, job="floor-batched"),
    Contender("python", "b", "baseline", "Python consumer (1 process)", "bench.baselines.python_consumer"),
    Contender("faust", "c", "baseline", "Faust app", "bench.baselines.faust_app"),
    Contender("thread", "df", "local", "Flink thread p1 (rules only)"),
    Contender("process", "d", "local", "Flink process p1", execution_mode="process"),
    Contender("tm1-p1", "e", "cluster", "cluster 1 TM x 2 slots, p1", taskmanagers=1),
    Contender("tm1-p2", "e", "cluster", "cluster 1 TM x 2 slots, p2", parallelism=2, taskmanagers=1),
    Contender("tm2-p2", "e", "cluster", "cluster 2 TM x 1 slot, p2", parallelism=2, taskmanagers=2),
    Contender("models", "f", "local", "Flink thread p1 (rules + models)", models_enabled=True),
    Contender("sharded", "fg", "local", "Flink thread p1 (rules + sharded models)", models_enabled=True,
              models_sharded=True),
    Contender("sharded-tm1", "g", "cluster", "cluster 1 TM x 2 slots, p1, sharded models", taskmanagers=1,
              models_enabled=True, models_sharded=True),
    Contender("sharded-tm2", "g", "cluster", "cluster 2 TM x 1 slot, p2, sharded models", parallelism=2,
              taskmanagers=2, models_enabled=True, models_sharded=True),
)
BY_ID = {c.id: c for c in CONTENDERS}


def select(only: str | None) -> list[Contender]:
    """Contenders by comma-separated ids or group letters, in the table's order; all if ``only`` is empty."""
    if not only:
        return list(CONTENDERS)
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    unknown = {w for w in wanted if w not in BY_ID and not (len(w) == 1 and any(w in c.group for c in CONTENDERS))}
    if unknown:
        raise ValueError(f"unknown contender(s) {sorted(unknown)}; known: {', '.join(BY_ID)} or groups a-g")
    return [c for c in CONTENDERS if c.id in wanted or any(g in wanted for g in c.group)]


class Running:
    """One started contender."""

    def __init__(self, contender: Contender) -> None:
        self.contender = contender

    def processed(self) -> int | None: ...
    def pids(self) -> list[int]: ...
    def failure(self) -> str | None: ...
    def state_size(self, after_ms: int, timeout_s: float) -> dict | None:
        return None
    def changes(self) -> int | None:
        return None
    def stop(self) -> None: ...


class RunningBaseline(Running):
    def __init__(self, contender: Contender, settings: Settings, scratch: Path) -> None:
        super().__init__(contender)
        self.progress_file = scratch / f"{settings.consumer_group}.progress.json"
        self.log = scratch / f"{settings.consumer_group}.log"
        argv = [sys.executable, "-m", contender.module, "--progress", str(self.progress_file)]
        if contender.id == "faust":
            argv += ["--datadir", str(scratch / f"{settings.consumer_group}.faust")]
        with self.log.open("ab") as log:
            self.child = subprocess.Popen(
                argv, env={**os.environ, **settings.to_environ()}, cwd=PROJECT_ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def _report(self) -> dict | None:
        return baseline_progress.read(self.progress_file)

    def processed(self) -> int | None:
        report = self._report()
        return None if report is None else report["processed"]

    def changes(self) -> int | None:
        report = self._report()
        return None if report is None else report["changes"]

    def pids(self) -> list[int]:
        return [self.child.pid]

    def failure(self) -> str | None:
        if self.child.poll() is None:
            return None
        return f"exited with code {self.child.returncode}; log {self.log}:\n{_tail(self.log)}"

    def stop(self) -> None:
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.child.wait()


class RunningFlink(Running):
    """The job on the embedded mini-cluster (``child``) or on a :class:`BenchCluster`."""

    def __init__(self, contender: Contender, settings: Settings, scratch: Path,
                 cluster: BenchCluster | None = None) -> None:
        super().__init__(contender)
        self.probe = JobProbe(f"http://127.0.0.1:{settings.rest_port}")
        self.cluster = cluster
        self.log = scratch / f"{settings.consumer_group}.log"
        self.job_id: str | None = None
        self.child: subprocess.Popen[bytes] | None = None
        if cluster is None:
            self.child = start_local(settings, self.log, job=contender.job)
        else:
            cluster.ensure(contender.taskmanagers, contender.execution_mode)
            self.job_id = cluster.submit(settings)

    def processed(self) -> int | None:
        if self.job_id is None:
            self.job_id = self.probe.running_job()
            if self.job_id is None:
                return None
        operator, metric = PROGRESS_COUNTERS[self.contender.job]
        return self.probe.records_into(self.job_id, operator, metric)

    def pids(self) -> list[int]:
        return [self.child.pid] if self.child is not None else self.cluster.pids()  # type: ignore[union-attr]

    def failure(self) -> str | None:
        if self.child is not None and self.child.poll() is not None:
            return f"the job process exited with code {self.child.returncode}; log {self.log}:\n{_tail(self.log)}"
        if self.job_id is not None:
            state = self.probe.job_state(self.job_id)
            if state in ("FAILED", "FAILING", "RESTARTING", "CANCELED"):
                return f"job {self.job_id} is {state}; see {self.probe.rest.url}/#/job/{self.job_id}"
        return None

    def state_size(self, after_ms: int, timeout_s: float) -> dict | None:
        return None if self.job_id is None else self.probe.wait_for_checkpoint_after(self.job_id, after_ms, timeout_s)

    def stop(self) -> None:
        if self.child is not None:
            stop_local(self.child, self.probe, self.job_id)
        elif self.job_id is not None:
            self.probe.cancel(self.job_id)
            from stack import flink_jobs

            try:
                flink_jobs.wait_for_job(self.cluster.settings, self.job_id, flink_jobs.TERMINAL_STATES,  # type: ignore[union-attr]
                                        timeout_s=30, fail_on_restart=False)
            except Exception:  # noqa: BLE001 - the cluster is stopped at the end anyway
                pass


def start(contender: Contender, settings: Settings, scratch: Path, cluster: BenchCluster | None) -> Running:
    settings = settings.replace(
        execution_mode=contender.execution_mode, parallelism=contender.parallelism,
        models_enabled=contender.models_enabled, models_sharded=contender.models_sharded,
    )
    if contender.kind == "baseline":
        return RunningBaseline(contender, settings, scratch)
    return RunningFlink(contender, settings, scratch, cluster if contender.kind == "cluster" else None)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
