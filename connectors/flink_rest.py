"""Flink's REST API (the JobManager's, also serving the Web UI): the one client for the standalone cluster
(``stack.flink_cluster``, ``stack.flink_jobs``), the embedded mini-cluster (``stack.local_job``) and the
benchmark harness.

One method per call; answers come back as small typed records, so endpoint paths and Flink's JSON field
names stay in this module. Every failure (no answer, an HTTP error, a body that is not JSON) is a
:class:`FlinkRestError`. Waiting, retrying and forgiving a missing answer are the caller's policy.

    rest = FlinkRest("http://127.0.0.1:8081")
    rest.overview()                               ClusterOverview: TaskManagers and slots
    rest.jobs() / rest.job_overview(job_id)       JobOverview: state, task counts (safe to poll)
    rest.job(job_id)                              JobDetail: state, vertices with their I/O counters
    rest.exception_history(job_id)                stack traces of the job's failures
    rest.operator_metrics(job_id, vertex_id, group)   custom metrics aggregated over subtasks
    rest.cancel(job_id)
    rest.trigger_stop_with_savepoint(job_id, target_dir) -> trigger id; rest.savepoint_status(job_id, trigger)
    rest.latest_checkpoint(job_id)                CheckpointStats of the latest completed checkpoint

>>> FlinkRest("http://127.0.0.1:8081/").url
'http://127.0.0.1:8081'
>>> reporting = Vertex("v1", "track_segments", {"read-records": 7, "read-records-complete": False})
>>> reporting.total("read-records") is None, reporting._replace(io_metrics={"read-records": 7}).total("read-records")
(True, 7)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from settings.errors import TailorError

# Job states after which a job does not run again on this cluster.
TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED", "SUSPENDED"})


class FlinkRestError(TailorError):
    """Flink's REST API did not answer or refused a call; the message names the call and what to check."""


class ClusterOverview(NamedTuple):
    taskmanagers: int
    slots_total: int
    slots_available: int


class JobOverview(NamedTuple):
    job_id: str
    name: str
    state: str
    start_time_ms: int
    tasks_running: int
    tasks_total: int


class Vertex(NamedTuple):
    vertex_id: str
    name: str  # chained operators joined by " -> ", as the Web UI shows them
    io_metrics: dict[str, Any]  # Flink's per-vertex counters: read-records, write-records, ...

    def total(self, metric: str) -> int | None:
        """``metric`` (e.g. ``read-records``) summed over subtasks; None until every subtask reported it."""
        if metric not in self.io_metrics or not self.io_metrics.get(f"{metric}-complete", True):
            return None
        return int(self.io_metrics[metric])


class JobDetail(NamedTuple):
    job_id: str
    name: str
    state: str
    vertices: list[Vertex]


class SavepointStatus(NamedTuple):
    completed: bool  # the operation ended, with a location or a failure
    location: str | None  # ``file:/...``, restorable with ``flink run -s``
    failure_class: str
    failure_trace: str


class CheckpointStats(NamedTuple):
    checkpoint_id: int
    trigger_timestamp_ms: int
    latest_ack_timestamp_ms: int | None
    state_size: int  # full size of the state
    checkpointed_size: int  # what this checkpoint wrote (less than state_size if incremental)
    duration_ms: int | None


class FlinkRest:
    """A client of one JobManager's REST API, e.g. ``FlinkRest("http://127.0.0.1:8081")``."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def overview(self) -> ClusterOverview:
        data = self._call("/overview")
        return ClusterOverview(data["taskmanagers"], data["slots-total"], data["slots-available"])

    def jobs(self) -> list[JobOverview]:
        return [_job_overview(job) for job in self._call("/jobs/overview")["jobs"]]

    def job_overview(self, job_id: str) -> JobOverview:
        """One job's entry of ``/jobs/overview``. Poll this rather than ``/jobs/<jid>`` (:meth:`job`),
        which makes the JobManager fetch every TaskManager's metrics: in thread mode that evaluates
        Python gauges, and one evaluated while the job's operators are being torn down crashes the
        TaskManager (see :meth:`operator_metrics`)."""
        for job in self.jobs():
            if job.job_id == job_id:
                return job
        raise FlinkRestError(f"job {job_id} is unknown to the Flink cluster at {self.url}")

    def job(self, job_id: str) -> JobDetail:
        """``/jobs/<jid>``: state and vertices with their I/O counters (see :meth:`job_overview` on polling)."""
        data = self._call(f"/jobs/{job_id}")
        vertices = [Vertex(v["id"], v["name"], v.get("metrics", {})) for v in data.get("vertices", [])]
        return JobDetail(data["jid"], data["name"], data["state"], vertices)

    def exception_history(self, job_id: str) -> list[str]:
        """The stack traces (or exception names) of the job's recorded failures, in Flink's order."""
        entries = self._call(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])
        return [entry.get("stacktrace", entry.get("exceptionName", "")) for entry in entries]

    def operator_metrics(
        self, job_id: str, vertex_id: str, group: str, aggregates: Sequence[str] = ("sum", "max")
    ) -> dict[tuple[str, str], dict[str, float]]:
        """The metrics operators of one vertex registered in ``group``, aggregated over the subtasks:
        ``{(operator, metric): {"sum": ..., "max": ...}}``; {} before the operators have opened.

        A metric that operator ``op`` registers in group ``group`` is ``<subtask>.<op>.<group>.<name>``
        under ``/jobs/<jid>/vertices/<vid>/metrics`` (one per subtask; the vertex name joins the chained
        operators). This reads ``.../subtasks/metrics``, where it is ``<op>.<group>.<name>`` aggregated.
        The JobManager refreshes these at most every ``metrics.fetcher.update-interval`` (10 s default).

        Caution, thread mode: a metric query evaluates *Python* gauges (``group.gauge(name, fn)``) from a
        JVM metrics thread. One evaluated while the job is being cancelled or restarted, after its
        interpreter is gone, crashes the TaskManager JVM (SIGSEGV in libpython, seen here and in the
        embedded mini-cluster). Call this while a job runs, not while it stops.
        """
        base = f"/jobs/{job_id}/vertices/{vertex_id}/subtasks/metrics"
        marker = f".{group}."
        names = [m["id"] for m in self._call(base) if marker in m["id"]]
        if not names:
            return {}
        values = self._call(f"{base}?get={','.join(names)}&agg={','.join(aggregates)}")
        result: dict[tuple[str, str], dict[str, float]] = {}
        for metric in values:
            operator, name = metric["id"].split(marker, 1)
            result[(operator, name)] = {k: v for k, v in metric.items() if k != "id"}
        return result

    def cancel(self, job_id: str) -> None:
        """Ask the JobManager to cancel the job; returns at once (poll :meth:`job_overview` for the end)."""
        self._call(f"/jobs/{job_id}?mode=cancel", method="PATCH")

    def kafka_source_offsets(self, job_id: str, source: str) -> dict[int, int]:
        """``{partition: offset of the last record read}`` of the Kafka source named ``source`` (Java gauges
        ``KafkaSourceReader.topic.<topic>.partition.<p>.currentOffset``; -1 before a partition's first record).
        {} before the source has opened."""
        vertex = next((v for v in self.job(job_id).vertices if v.name.startswith(f"Source: {source}")), None)
        if vertex is None:
            return {}
        base = f"/jobs/{job_id}/vertices/{vertex.vertex_id}/subtasks/metrics"
        names = [m["id"] for m in self._call(base) if m["id"].endswith(".currentOffset") and ".partition." in m["id"]]
        if not names:
            return {}
        values = self._call(f"{base}?get={','.join(names)}&agg=max")
        return {int(m["id"].rsplit(".partition.", 1)[1].split(".")[0]): int(m["max"]) for m in values}

    def trigger_stop_with_savepoint(self, job_id: str, target_dir: Path, drain: bool = False) -> str:
        """Start ``flink stop``: a savepoint into ``target_dir``, then the job finishes. Returns the trigger
        id for :meth:`savepoint_status`. ``drain`` first advances the watermark to the end (fires every timer)."""
        body = {"targetDirectory": Path(target_dir).resolve().as_uri(), "drain": drain}
        return self._call(f"/jobs/{job_id}/stop", method="POST", body=body)["request-id"]

    def savepoint_status(self, job_id: str, trigger_id: str) -> SavepointStatus:
        info = self._call(f"/jobs/{job_id}/savepoints/{trigger_id}")
        operation = info.get("operation") or {}
        cause = operation.get("failure-cause", {})
        return SavepointStatus(
            completed=info["status"]["id"] == "COMPLETED",
            location=operation.get("location"),
            failure_class=cause.get("class", ""),
            failure_trace=cause.get("stack-trace", str(operation)),
        )

    def latest_checkpoint(self, job_id: str) -> CheckpointStats | None:
        """The latest completed checkpoint of the job, None before the first."""
        latest = (self._call(f"/jobs/{job_id}/checkpoints").get("latest") or {}).get("completed")
        if not latest:
            return None
        state_size = latest.get("state_size", 0)
        return CheckpointStats(
            checkpoint_id=latest["id"],
            trigger_timestamp_ms=latest.get("trigger_timestamp", 0),
            latest_ack_timestamp_ms=latest.get("latest_ack_timestamp"),
            state_size=state_size,
            checkpointed_size=latest.get("checkpointed_size", state_size),
            duration_ms=latest.get("end_to_end_duration"),
        )

    def _call(self, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
        url = self.url + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:1500]
            raise FlinkRestError(f"Flink REST {method} {path} -> HTTP {exc.code}: {detail}") from None
        except OSError as exc:
            raise FlinkRestError(f"Flink REST {url} does not answer ({exc}): is the cluster running?") from None
        try:
            return json.loads(text) if text else {}
        except ValueError:
            raise FlinkRestError(
                f"Flink REST {method} {path} answered with something that is not JSON ({text[:200]!r}): "
                f"is another server listening on {self.url}?"
            ) from None


def _job_overview(job: dict[str, Any]) -> JobOverview:
    tasks = job.get("tasks", {})
    return JobOverview(
        job["jid"], job["name"], job["state"], job.get("start-time", 0), tasks.get("running", 0), tasks.get("total", 0)
    )
