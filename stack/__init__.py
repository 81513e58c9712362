"""The self-provisioned local stack: Kafka (KRaft), Redis and the Flink Kafka connector jar.

Everything comes from the three registries our machines can reach (Maven Central, Debian apt, PyPI)
and is installed by this package, idempotently, under ``settings.home`` (``.tailor/``):

    kafka/   libs/ (jars)  config/  data/  logs/server.log  logs/kafka.out  kafka.pid
    redis/   redis.log  redis.out  redis.pid
    jars/    flink-sql-connector-kafka-<version>.jar (+ .sha256)
    maven/   the generated poms mvn resolved

``up`` is safe to call any time: what is installed is not installed again, what runs is not started
again, so a second ``up`` only checks and takes well under a second. The facade:

    up(settings, progress=print)     install what is missing, start Redis and Kafka, create topics
    down(settings, progress=print)   stop Kafka and Redis (data and downloads stay)
    status(settings)                 [(component, state, detail), ...] without changing anything
    connector_jar(settings)          path of the verified Flink Kafka connector jar (downloads once)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from connectors import kafka_topics as topics
from settings import Settings
from stack import java, job_jar, kafka, maven, process, redis_server
from stack.errors import StackError

__all__ = ["ComponentStatus", "StackError", "connector_jar", "down", "status", "up"]

Progress = Callable[[str], None]


class ComponentStatus(NamedTuple):
    component: str  # "java", "kafka-libs", "connector", "redis", "kafka", "topics"
    state: str  # "ok", "missing", "running", "stopped", "error"
    detail: str


def up(settings: Settings | None = None, progress: Progress = print) -> None:
    """Provision and start the whole stack; prints one line per step. Idempotent and quick when up."""
    settings = settings or Settings.load()
    with _exclusive(settings):
        jvm = java.ensure()
        progress(f"java      {jvm.version} ({jvm.path})")
        libs = maven.ensure_kafka_libs(settings, progress)
        progress(f"jars      kafka {maven.KAFKA_VERSION} broker libs ready ({process.relative(libs)})")
        jar = maven.ensure_connector(settings, progress)
        progress(f"jars      {jar.name} verified ({process.relative(jar)})")

        redis_server.ensure_installed(progress)
        t0 = time.monotonic()
        pid, started = redis_server.start(settings)
        progress(_service_line("redis", f"{settings.redis_host}:{settings.redis_port}", pid, started, t0))

        t0 = time.monotonic()
        pid, started = kafka.start(settings)
        progress(_service_line("kafka", settings.kafka_bootstrap, pid, started, t0))

        states = topics.ensure_topics(settings)
        for name, state in states.items():
            if state != "exists":
                progress(f"topics    {name}: {state}")
        if all(state == "exists" for state in states.values()):
            progress(f"topics    {len(states)} present ({settings.kafka_partitions} partitions each)")


def down(settings: Settings | None = None, progress: Progress = print) -> None:
    """Stop Kafka, then Redis. Data dirs, logs and downloaded jars are kept for the next ``up``."""
    settings = settings or Settings.load()
    with _exclusive(settings):
        for name, stop in (("kafka", kafka.stop), ("redis", redis_server.stop)):
            t0 = time.monotonic()
            outcome = stop(settings)
            progress(f"{name:<9} {'not running' if outcome is None else outcome + process.took(t0)}")


def status(settings: Settings | None = None) -> list[ComponentStatus]:
    """What is installed and running, without installing, starting or downloading anything."""
    settings = settings or Settings.load()
    rows: list[ComponentStatus] = []
    try:
        jvm = java.find()
        rows.append(
            ComponentStatus("java", "ok", f"{jvm.version} ({jvm.path})")
            if jvm and jvm.major >= java.MIN_MAJOR
            else ComponentStatus("java", "missing", f"need Java {java.MIN_MAJOR}+ on PATH")
        )
    except StackError as exc:
        rows.append(ComponentStatus("java", "error", str(exc)))
    libs = maven.kafka_libs_dir(settings)
    rows.append(
        ComponentStatus("kafka-libs", "ok", f"kafka {maven.KAFKA_VERSION} in {process.relative(libs)}")
        if maven.kafka_libs_ready(settings)
        else ComponentStatus("kafka-libs", "missing", "downloaded by `up`")
    )
    jar = maven.connector_path(settings)
    rows.append(
        ComponentStatus("connector", "ok", f"{process.relative(jar)} (sha256 matches)")
        if maven.connector_ready(settings)
        else ComponentStatus("connector", "missing", "downloaded by `up`")
    )
    rows.append(
        _service_status(
            "redis",
            settings.redis_host,
            settings.redis_port,
            redis_server.running_pid(settings),
            redis_server.ping(settings),
            redis_server.Paths.of(settings).log_file,
        )
    )
    kafka_pid = kafka.running_pid(settings)
    kafka_up = kafka_pid is not None and process.port_open(settings.kafka_host, settings.kafka_port)
    rows.append(
        _service_status(
            "kafka",
            settings.kafka_host,
            settings.kafka_port,
            kafka_pid,
            kafka_up,
            kafka.Paths.of(settings).server_log,
        )
    )
    if kafka_up:
        try:
            counts = topics.partition_counts(settings)
            wanted = topics.tailor_topics(settings)
            absent = [t for t in wanted if t not in counts]
            detail = ", ".join(f"{t} ({n} partitions)" for t, n in counts.items())
            rows.append(
                ComponentStatus(
                    "topics",
                    "missing" if absent else "ok",
                    detail + (f"; missing: {', '.join(absent)}" if absent else ""),
                )
            )
        except StackError as exc:
            rows.append(ComponentStatus("topics", "error", str(exc)))
    else:
        rows.append(ComponentStatus("topics", "stopped", "Kafka is not running"))
    return rows


def connector_jar(settings: Settings | None = None) -> Path:
    """Absolute path of the checksum-verified Flink Kafka connector jar (downloaded on first use)."""
    settings = settings or Settings.load()
    with _exclusive(settings):
        return maven.ensure_connector(settings, progress=lambda _line: None)


def job_jars(settings: Settings | None = None) -> list[Path]:
    """Every jar the job needs beside Flink's own: the Kafka connector and the job's Java operators
    (``stack.job_jar``, compiled on first use)."""
    from stack import flink_cluster  # lazily: keep importing this package light

    settings = settings or Settings.load()
    connector = connector_jar(settings)
    with _exclusive(settings):
        return [connector, job_jar.ensure_job_jar(settings, flink_cluster.pyflink_home(), connector)]


def _service_line(name: str, address: str, pid: int, started: bool, t0: float) -> str:
    if started:
        return f"{name:<9} started on {address} (pid {pid}){process.took(t0)}"
    return f"{name:<9} already running on {address} (pid {pid})"


def _service_status(
    name: str, host: str, port: int, pid: int | None, answering: bool, log: Path
) -> ComponentStatus:
    if pid is not None and answering:
        return ComponentStatus(name, "running", f"{host}:{port} (pid {pid}), log {process.relative(log)}")
    if pid is not None:
        return ComponentStatus(
            name, "error", f"pid {pid} alive but {host}:{port} does not answer; see {process.relative(log)}"
        )
    if process.port_open(host, port):
        return ComponentStatus(name, "error", f"{host}:{port} is served by another process, not ours")
    return ComponentStatus(name, "stopped", f"start with `up`; last log {process.relative(log)}")


def _exclusive(settings: Settings):  # type: ignore[no-untyped-def]
    return process.file_lock(settings.home / "stack.lock")
