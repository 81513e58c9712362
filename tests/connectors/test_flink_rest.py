"""FlinkRest against a stub JobManager (canned JSON answers on a local port): paths, methods, parsing, errors."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from connectors.flink_rest import FlinkRest, FlinkRestError
from settings.errors import TailorError

JOB = "a" * 32
METRICS = f"/jobs/{JOB}/vertices/v2/subtasks/metrics"
ANSWERS = {
    "/overview": {"taskmanagers": 1, "slots-total": 2, "slots-available": 1},
    "/jobs/overview": {"jobs": [
        {"jid": JOB, "name": "tailor-segmentation", "state": "RUNNING", "start-time": 1_000,
         "tasks": {"running": 3, "total": 4}},
    ]},
    f"/jobs/{JOB}": {"jid": JOB, "name": "tailor-segmentation", "state": "RUNNING", "vertices": [
        {"id": "v1", "name": "Source: kafka_events", "metrics": {"write-records": 9, "write-records-complete": True}},
        {"id": "v2", "name": "track_segments -> segment_changes_sink", "metrics": {"read-records": 9}},
    ]},
    f"/jobs/{JOB}/exceptions": {"exceptionHistory": {"entries": [
        {"exceptionName": "java.lang.RuntimeException", "stacktrace": "boom\n\tat X"},
        {"exceptionName": "java.io.IOException"},
    ]}},
    METRICS: [{"id": "track_segments.tailor.late_events"}, {"id": "track_segments.numRecordsIn"}],
    f"{METRICS}?get=track_segments.tailor.late_events&agg=sum,max": [
        {"id": "track_segments.tailor.late_events", "sum": 3.0, "max": 2.0},
    ],
    f"/jobs/{JOB}/savepoints/t1": {"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp/savepoint-1"}},
    f"/jobs/{JOB}/savepoints/t2": {"status": {"id": "COMPLETED"}, "operation": {"failure-cause": {
        "class": "java.util.concurrent.CompletionException", "stack-trace": "no space left"}}},
    f"/jobs/{JOB}/savepoints/t3": {"status": {"id": "IN_PROGRESS"}},
    f"/jobs/{JOB}/checkpoints": {"latest": {"completed": {
        "id": 7, "trigger_timestamp": 5_000, "latest_ack_timestamp": 5_100, "state_size": 4096,
        "end_to_end_duration": 100,
    }}},
    "/jobs/b/checkpoints": {"latest": {"completed": None}},
    f"/jobs/{JOB}/stop": {"request-id": "t1"},
    f"/jobs/{JOB}?mode=cancel": {},
}


class StubJobManager(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str, object]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.calls.append((self.command, self.path, body))
        if self.path == "/not-json":
            payload, status = b"<html>hello</html>", 200
        elif self.path in ANSWERS:
            payload, status = json.dumps(ANSWERS[self.path]).encode(), 200
        else:
            payload, status = b'{"errors": ["Not found: ' + self.path.encode() + b'"]}', 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def rest() -> Iterator[FlinkRest]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubJobManager)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield FlinkRest(f"http://127.0.0.1:{server.server_address[1]}/", timeout_s=5)
    server.shutdown()
    server.server_close()


def test_flink_rest_reads_the_cluster_and_its_jobs(rest):
    assert tuple(rest.overview()) == (1, 2, 1)
    [job] = rest.jobs()
    assert (job.job_id, job.state, job.start_time_ms) == (JOB, "RUNNING", 1_000)
    assert (job.tasks_running, job.tasks_total) == (3, 4)
    assert rest.job_overview(JOB) == job

    detail = rest.job(JOB)
    assert [v.name for v in detail.vertices] == ["Source: kafka_events", "track_segments -> segment_changes_sink"]
    assert [v.total(m) for v, m in zip(detail.vertices, ("write-records", "read-records"), strict=True)] == [9, 9]
    assert detail.vertices[1].total("write-records") is None

    assert rest.exception_history(JOB) == ["boom\n\tat X", "java.io.IOException"]


def test_flink_rest_aggregates_one_groups_metrics_by_operator(rest):
    assert rest.operator_metrics(JOB, "v2", "tailor") == {("track_segments", "late_events"): {"sum": 3.0, "max": 2.0}}
    assert rest.operator_metrics(JOB, "v2", "other") == {}


def test_flink_rest_controls_jobs(rest, tmp_path: Path):
    StubJobManager.calls.clear()
    rest.cancel(JOB)
    assert rest.trigger_stop_with_savepoint(JOB, tmp_path, drain=True) == "t1"
    assert StubJobManager.calls == [
        ("PATCH", f"/jobs/{JOB}?mode=cancel", None),
        ("POST", f"/jobs/{JOB}/stop", {"targetDirectory": tmp_path.resolve().as_uri(), "drain": True}),
    ]

    assert rest.savepoint_status(JOB, "t1")[:2] == (True, "file:/sp/savepoint-1")
    failed = rest.savepoint_status(JOB, "t2")
    assert (failed.completed, failed.location, failed.failure_trace) == (True, None, "no space left")
    assert failed.failure_class.endswith("CompletionException")
    assert not rest.savepoint_status(JOB, "t3").completed


def test_flink_rest_reads_the_latest_completed_checkpoint(rest):
    latest = rest.latest_checkpoint(JOB)
    assert latest is not None
    assert (latest.checkpoint_id, latest.trigger_timestamp_ms, latest.latest_ack_timestamp_ms) == (7, 5_000, 5_100)
    assert (latest.state_size, latest.checkpointed_size, latest.duration_ms) == (4096, 4096, 100)
    assert rest.latest_checkpoint("b") is None


def test_flink_rest_errors_say_which_call_failed_and_what_to_check(rest):
    with pytest.raises(FlinkRestError, match=r"Flink REST GET /jobs/c -> HTTP 404: .*Not found"):
        rest.job("c")
    with pytest.raises(FlinkRestError, match=re.escape(f"job c is unknown to the Flink cluster at {rest.url}")):
        rest.job_overview("c")
    with pytest.raises(FlinkRestError, match=r"not JSON .*is another server listening"):
        rest._call("/not-json")

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(FlinkRestError, match=r"does not answer \(.*\): is the cluster running\?") as failure:
        FlinkRest(f"http://127.0.0.1:{port}", timeout_s=2).overview()
    assert isinstance(failure.value, TailorError)
