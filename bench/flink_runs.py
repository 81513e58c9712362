"""The real segmentation job as a benchmark contender: embedded mini-cluster or standalone cluster.

* **Embedded** (``start_local``): a child process (``python -m bench.flink_runs``) builds the job exactly
  like ``tailor job run`` (``stack.local_job.run``) plus :data:`BENCH_FLINK_CONFIG`, and runs it
  unbounded on the mini-cluster, REST on ``settings.rest_port``. Its own session, so the gateway
  JVM (and process-mode Python workers) go with it.
* **Standalone** (:class:`BenchCluster`): ``stack.flink_cluster`` and ``stack.flink_jobs`` with a home
  of its own (``<home>/bench-cluster``, so it never touches the cluster another user runs from
  ``.tailor``), its own JobManager RPC port, and 1 TaskManager x 2 slots or 2 TaskManagers x 1 slot.

Progress is Flink's own count of records into ``track_segments`` (``read-records`` of its vertex, summed
over subtasks) from the REST API (``connectors.flink_rest``, read through a forgiving :class:`JobProbe`);
:data:`BENCH_FLINK_CONFIG` makes the REST metrics fresh every 500 ms (Flink's default is 10 s, too
coarse to time a run).

>>> sorted(BENCH_FLINK_CONFIG)
['metrics.fetcher.update-interval']
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import floor_job
from connectors.flink_rest import FlinkRest, FlinkRestError
from settings import PROJECT_ROOT, Settings
from stack import flink_cluster, flink_jobs, local_job, maven

BENCH_FLINK_CONFIG = {"metrics.fetcher.update-interval": "500"}
KEYED_OPERATOR = "segment_batches"
# Where each embedded job's progress is counted: (vertex name prefix, metric). The segmentation job's
# events are counted as its Kafka source reads them (``source-offsets``: the last offset read per
# partition; the bench topic is read from offset 0), at most one batch window and the network buffers
# ahead of the Python operator; the batched floor's leaving its source.
PROGRESS_COUNTERS = {
    "segmentation": ("kafka_events", "source-offsets"),
    "floor": (floor_job.KEYED_OPERATOR, "read-records"),
    "floor-batched": (f"Source: {floor_job.BATCHED_SOURCE}", "write-records"),
}


class JobProbe:
    """What the harness reads of a contender's job, forgiving: None (or nothing) while the job or its
    REST API cannot tell, so a sample never fails a run. Against an explicit URL, never a conf dir's guess."""

    def __init__(self, url: str) -> None:
        self.rest = FlinkRest(url, timeout_s=3)

    def running_job(self) -> str | None:
        try:
            running = [job.job_id for job in self.rest.jobs() if job.state == "RUNNING"]
        except FlinkRestError:
            return None
        return running[0] if running else None

    def job_state(self, job_id: str) -> str | None:
        try:
            return self.rest.job_overview(job_id).state
        except FlinkRestError:
            return None

    def records_into(self, job_id: str, operator: str = KEYED_OPERATOR, metric: str = "read-records") -> int | None:
        """Records into (``write-records``: out of) the first vertex whose name starts with ``operator``;
        ``source-offsets``: records the Kafka source ``operator`` has read (from offset 0)."""
        try:
            if metric == "source-offsets":
                offsets = self.rest.kafka_source_offsets(job_id, operator)
                return sum(offset + 1 for offset in offsets.values() if offset >= 0) if offsets else None
            vertex = next((v for v in self.rest.job(job_id).vertices if v.name.startswith(operator)), None)
        except FlinkRestError:
            return None
        return None if vertex is None else vertex.total(metric)

    def cancel(self, job_id: str) -> None:
        try:
            self.rest.cancel(job_id)
        except FlinkRestError:
            pass

    def wait_for_checkpoint_after(self, job_id: str, wall_ms: int, timeout_s: float) -> dict | None:
        """The first completed checkpoint triggered after ``wall_ms`` (so it holds all processed state)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                latest = self.rest.latest_checkpoint(job_id)
            except FlinkRestError:
                latest = None
            if latest is not None and latest.trigger_timestamp_ms >= wall_ms:
                return {
                    "checkpoint_id": latest.checkpoint_id,
                    "state_size": latest.state_size,
                    "checkpointed_size": latest.checkpointed_size,
                    "duration_ms": latest.duration_ms,
                }
            time.sleep(0.5)
        return None


# -- embedded mini-cluster ---------------------------------------------------------------------------
def start_local(settings: Settings, log_file: Path, job: str = "segmentation") -> subprocess.Popen[bytes]:
    """Start ``job`` (the segmentation job, or ``floor`` / ``floor-batched`` from :mod:`bench.floor_job`)
    unbounded on an embedded mini-cluster in a child process (its own session)."""
    env = {**os.environ, **settings.to_environ(), **local_job.python_path_env(settings)}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.flink_runs", job],
            stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd=PROJECT_ROOT, start_new_session=True,
        )


def stop_local(child: subprocess.Popen[bytes], probe: JobProbe, job_id: str | None) -> None:
    if job_id is not None and child.poll() is None:
        probe.cancel(job_id)
    try:
        child.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(child.pid, signal.SIGKILL)  # the gateway JVM and any Python workers
    except ProcessLookupError:
        pass
    child.wait()


def _run_local(job_name: str) -> int:
    """Child-process entry: exactly ``tailor job run`` (``stack.local_job.run``, unbounded), with the
    bench's extra keys added to the job's Flink configuration; or one of the floor jobs."""
    from pipelines import segmentation_job as job

    settings = Settings.load()
    if job_name.startswith("floor"):
        config = job.flink_configuration(settings, local=True, extra=BENCH_FLINK_CONFIG)
        floor_job.run(settings, config, batched=job_name == "floor-batched")
    else:
        local_job.run(settings, *local_job.job_config(settings), extra_config=BENCH_FLINK_CONFIG)
    return 0


# -- standalone cluster ------------------------------------------------------------------------------
class BenchCluster:
    """A standalone cluster of the bench's own (home, REST port, RPC port); one layout at a time."""

    def __init__(self, settings: Settings, progress=print) -> None:  # type: ignore[no-untyped-def]
        self.base = settings
        self.settings = settings.replace(home=settings.home / "bench-cluster")
        self.progress = progress
        self.taskmanagers: int | None = None
        self.rest = FlinkRest(f"http://127.0.0.1:{settings.rest_port}")
        self._link_connector()

    def ensure(self, taskmanagers: int, execution_mode: str) -> None:
        if self.taskmanagers == taskmanagers and self.settings.execution_mode == execution_mode:
            return
        self.stop()
        self.settings = self.settings.replace(execution_mode=execution_mode)
        extra = {**BENCH_FLINK_CONFIG, "jobmanager.rpc.port": _free_port()}
        flink_cluster.start(self.settings, taskmanagers, progress=self.progress, extra_config=extra)
        self.taskmanagers = taskmanagers

    def submit(self, job_settings: Settings) -> str:
        """Submit the job with ``job_settings`` (topics, group, prefix, parallelism, ...) unbounded."""
        run_settings = job_settings.replace(home=self.settings.home, rest_port=self.base.rest_port,
                                            execution_mode=self.settings.execution_mode)
        return flink_jobs.submit(run_settings, rules_file=job_settings.segments_file)

    def pids(self) -> list[int]:
        st = flink_cluster.status(self.settings)
        return ([st.jobmanager_pid] if st.jobmanager_pid else []) + list(st.taskmanager_pids)

    def stop(self) -> None:
        if self.taskmanagers is not None:
            flink_cluster.stop(self.settings, progress=self.progress)
            self.taskmanagers = None

    def _link_connector(self) -> None:
        """The verified connector jar (and its recorded checksum) from the main home: no download."""
        source = maven.connector_path(self.base)
        target = maven.connector_path(self.settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        for src, dst in ((source, target), (source.with_name(source.name + ".sha256"),
                                             target.with_name(target.name + ".sha256"))):
            if src.exists() and not dst.exists():
                dst.symlink_to(src.resolve())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    raise SystemExit(_run_local(sys.argv[1] if len(sys.argv) > 1 else "segmentation"))
