"""A real standalone Flink cluster (one JobManager, N TaskManagers) run from the apache-flink wheel.

The wheel ships Flink's ``bin/`` scripts, ``lib/`` and ``opt/``, so no tarball is needed. Two things
must be added for Python jobs: ``opt/flink-python-<version>.jar`` on the TaskManager classpath (else
Python operators fail with ``NoClassDefFoundError ... StateRequestHandler``) and, for thread mode
(PEMJA runs Python inside the TaskManager JVM), the venv's site-packages on the interpreter's path
(else "No module named 'pemja'"). This module keeps its own lib and conf dirs and points the wheel's
scripts at them through ``FLINK_LIB_DIR`` / ``FLINK_CONF_DIR`` / ``FLINK_LOG_DIR``; the wheel is never
modified. Layout under ``<home>/flink/``::

    lib/          symlinks: pyflink/lib/*.jar, opt/flink-python-<v>.jar, the Kafka connector jar
    conf/         config.yaml (written by ``ensure_layout``), masters, workers, log4j/logback (wheel's)
    log/          flink-tailor-standalonesession-0-<host>.log|.out, flink-tailor-taskexecutor-<i>-<host>.*,
                  flink-tailor-client-<host>.log (``flink run``)
    run/          Flink's pid files
    tmp/          io.tmp.dirs (blobs, Python worker files)
    checkpoints/  savepoints/

The facade, in the style of ``stack`` (idempotent, one progress line per step, StackError with
what to do):

    ensure_layout(settings, taskmanagers=1)         lib + conf dirs (no processes)
    start(settings, taskmanagers=1, progress=print) JobManager + TaskManagers, waits for the slots
    stop(settings, progress=print)                  cancels running jobs, stops every cluster process
    status(settings)                                ClusterStatus: processes, slots, jobs
    rest_url(settings) / rest_client(settings)      the cluster's REST API (``connectors.flink_rest``)

Submitting and controlling jobs is ``stack.flink_jobs``.

``taskmanagers=1`` gives one TaskManager with 2 slots (all Python of a TaskManager shares one
interpreter and GIL in thread mode); ``taskmanagers=2`` gives two TaskManagers with one slot each, the
layout that lets thread mode use both cores.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from connectors.flink_rest import TERMINAL_STATES, FlinkRest, FlinkRestError
from settings import Settings
from stack import process
from stack.errors import StackError

Progress = Callable[[str], None]

FLINK_VERSION = "2.2.1"
HOST = "127.0.0.1"
JOBMANAGER_RPC_PORT = 6123
IDENT = "tailor"  # FLINK_IDENT_STRING: names the pid and log files (default $USER, often unset)
JOBMANAGER_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

# Memory for a 24 GiB / 2-core box: JobManager 1 GiB; one TaskManager of 3 GiB (1.55 GiB task heap) or
# two of 2 GiB. The hashmap state backend keeps state on the JVM heap. In thread mode Python runs inside
# the TaskManager process and allocates natively, outside Flink's budget: the larger JVM overhead
# covers the interpreter, and managed memory (RocksDB, process-mode Python workers) is little used.
JOBMANAGER_MEMORY = "1g"
TASKMANAGER_MEMORY = {1: "3g", 2: "2g"}  # per TaskManager, by number of TaskManagers
SLOTS = {1: 2, 2: 1}  # slots per TaskManager, by number of TaskManagers


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        return cls(settings.home / "flink")

    lib = property(lambda self: self.root / "lib")
    conf = property(lambda self: self.root / "conf")
    config_yaml = property(lambda self: self.root / "conf" / "config.yaml")
    log = property(lambda self: self.root / "log")
    run = property(lambda self: self.root / "run")
    tmp = property(lambda self: self.root / "tmp")
    checkpoints = property(lambda self: self.root / "checkpoints")
    savepoints = property(lambda self: self.root / "savepoints")


class JobInfo(NamedTuple):
    job_id: str
    name: str
    state: str


class ClusterStatus(NamedTuple):
    state: str  # "running", "stopped", "error"
    detail: str
    rest_url: str
    jobmanager_pid: int | None
    taskmanager_pids: list[int]
    taskmanagers: int  # registered with the JobManager (REST), 0 if it does not answer
    slots_total: int
    slots_available: int
    jobs: list[JobInfo]

    @property
    def running_jobs(self) -> list[JobInfo]:
        return [j for j in self.jobs if j.state not in TERMINAL_STATES]


# -- layout ------------------------------------------------------------------------------------------
def pyflink_home() -> Path:
    """The installed ``pyflink`` package dir: Flink's home (bin/, conf/, lib/, opt/, plugins/)."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            f"apache-flink is not installed for {sys.executable}: run "
            f"`pip install apache-flink=={FLINK_VERSION}` in the project's venv (./bin/tailor does it)"
        )
    home = Path(next(iter(spec.submodule_search_locations)))
    if not (home / "bin" / "flink").exists():
        raise StackError(f"{home} has no bin/flink: reinstall apache-flink=={FLINK_VERSION}")
    return home


def python_executable() -> str:
    """The venv's python (not resolved: the symlink is what makes it the venv's)."""
    return sys.executable


def site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


def ensure_layout(
    settings: Settings, taskmanagers: int = 1, extra_config: Mapping[str, Any] | None = None
) -> Paths:
    """Create (or refresh) the lib dir of symlinks and the conf dir; starts nothing. Idempotent.
    ``extra_config``: Flink keys that override ``flink_config``'s (e.g. ``tailor bench`` moves the
    JobManager RPC port and refreshes REST metrics faster)."""
    from stack import job_jars  # lazily: keep importing this module light

    _check_taskmanagers(taskmanagers)
    paths = Paths.of(settings)
    flink_home = pyflink_home()
    for d in (paths.lib, paths.conf, paths.log, paths.run, paths.tmp, paths.checkpoints, paths.savepoints):
        d.mkdir(parents=True, exist_ok=True)

    python_jar = flink_home / "opt" / f"flink-python-{FLINK_VERSION}.jar"
    if not python_jar.exists():
        found = sorted(p.name for p in (flink_home / "opt").glob("flink-python-*.jar"))
        raise StackError(
            f"{python_jar} is missing (found {found or 'none'}): install apache-flink=={FLINK_VERSION}"
        )
    jars = [*sorted((flink_home / "lib").glob("*.jar")), python_jar, *job_jars(settings)]
    wanted = {jar.name: jar.resolve() for jar in jars}
    for link in paths.lib.iterdir():
        if link.name not in wanted or not link.is_symlink() or link.resolve() != wanted[link.name]:
            link.unlink()
    for name, target in wanted.items():
        if not (paths.lib / name).is_symlink():
            (paths.lib / name).symlink_to(target)

    for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties", "logback.xml",
                 "logback-console.xml"):
        link, target = paths.conf / name, flink_home / "conf" / name
        if target.exists() and not (link.is_symlink() and link.resolve() == target.resolve()):
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    _write_if_changed(paths.config_yaml, config_yaml(settings, paths, taskmanagers, extra_config))
    _write_if_changed(paths.conf / "masters", f"{HOST}:{settings.rest_port}\n")
    _write_if_changed(paths.conf / "workers", "localhost\n" * taskmanagers)
    return paths


def flink_config(
    settings: Settings, paths: Paths, taskmanagers: int = 1, extra_config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The cluster's configuration as flat Flink keys (what ``config.yaml`` holds), ``extra_config`` last."""
    java_opts = _wheel_config().get("env.java.opts.all", "")
    thread_mode = settings.execution_mode == "thread"
    return {
        # The JVM flags the wheel's own config.yaml sets (--add-opens etc. for Java 17).
        "env.java.opts.all": java_opts,
        # `flink run` is a short-lived JVM: C1 only and the serial GC make a submission ~5-10 s faster here.
        "env.java.opts.client": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "env.log.dir": str(paths.log),
        "env.pid.dir": str(paths.run),
        "io.tmp.dirs": str(paths.tmp),
        "jobmanager.bind-host": HOST,
        "jobmanager.rpc.address": HOST,
        "jobmanager.rpc.port": JOBMANAGER_RPC_PORT,
        "jobmanager.memory.process.size": JOBMANAGER_MEMORY,
        "jobmanager.execution.failover-strategy": "region",
        "taskmanager.bind-host": HOST,
        "taskmanager.host": HOST,
        "taskmanager.numberOfTaskSlots": SLOTS[taskmanagers],
        "taskmanager.memory.process.size": TASKMANAGER_MEMORY[taskmanagers],
        "taskmanager.memory.managed.fraction": 0.1 if thread_mode else 0.4,
        "taskmanager.memory.jvm-overhead.min": "512m" if thread_mode else "192m",
        "rest.address": HOST,
        "rest.bind-address": HOST,
        "rest.port": settings.rest_port,
        "parallelism.default": settings.parallelism,
        "state.backend.type": "hashmap",
        "execution.checkpointing.dir": paths.checkpoints.resolve().as_uri(),
        "execution.checkpointing.savepoint-dir": paths.savepoints.resolve().as_uri(),
        "execution.checkpointing.num-retained": 1,
        "python.execution-mode": settings.execution_mode,
        "python.executable": python_executable(),
        "python.client.executable": python_executable(),
        # Thread mode: the PEMJA interpreter inside the TaskManager JVM does not see the venv (it is
        # initialised like the base interpreter), so without this the first Python operator fails with
        # "No module named 'pemja'". This key (prepended to the worker's PYTHONPATH) is enough;
        # exporting PYTHONPATH=<site-packages> to the TaskManager JVM works as well.
        "python.pythonpath": site_packages(),
        **(extra_config or {}),
    }


def config_yaml(
    settings: Settings, paths: Paths, taskmanagers: int = 1, extra_config: Mapping[str, Any] | None = None
) -> str:
    header = (
        "# Generated by stack.flink_cluster.ensure_layout on every start; change settings/__init__.py\n"
        "# (or TAILOR_* env vars) or flink_cluster.flink_config instead of editing this file.\n"
    )
    return header + yaml.safe_dump(
        flink_config(settings, paths, taskmanagers, extra_config),
        sort_keys=False, default_flow_style=False, width=100_000,
    )


def script_env(settings: Settings, paths: Paths | None = None) -> dict[str, str]:
    """The environment for the wheel's scripts (``bin/flink``, ``jobmanager.sh``, ``taskmanager.sh``)."""
    paths = paths or Paths.of(settings)
    env = dict(os.environ)
    env.update(
        FLINK_CONF_DIR=str(paths.conf),
        FLINK_LIB_DIR=str(paths.lib),
        FLINK_LOG_DIR=str(paths.log),
        FLINK_PID_DIR=str(paths.run),
        FLINK_IDENT_STRING=IDENT,
        # bin/flink -py starts the client Python with this executable.
        PYFLINK_CLIENT_EXECUTABLE=python_executable(),
    )
    env.pop("FLINK_HOME", None)  # let the scripts find the wheel they belong to
    return env


# -- start / stop / status ---------------------------------------------------------------------------
def start(
    settings: Settings | None = None,
    taskmanagers: int = 1,
    progress: Progress = print,
    extra_config: Mapping[str, Any] | None = None,
) -> ClusterStatus:
    """Start the JobManager and ``taskmanagers`` TaskManagers; wait until their slots are registered.

    Idempotent: a running cluster with the same layout is left alone ("already running"); missing
    TaskManagers of a running cluster are started. A running cluster with another layout is an error
    (``stop`` it first).
    """
    settings = settings or Settings.load()
    _check_taskmanagers(taskmanagers)
    paths = Paths.of(settings)
    with _exclusive(paths):
        jm, tms = _cluster_processes(paths)
        if jm is not None:
            configured = _configured_layout(paths)
            if configured is not None and configured[1] != SLOTS[taskmanagers]:
                raise StackError(
                    f"the Flink cluster runs with {configured[1]} slot(s) per TaskManager "
                    f"({len(tms)} TaskManager(s)); {taskmanagers} TaskManager(s) need {SLOTS[taskmanagers]}: "
                    "stop it first (flink_cluster.stop)"
                )
            if len(tms) > taskmanagers:
                raise StackError(
                    f"the Flink cluster runs {len(tms)} TaskManagers, {taskmanagers} requested: stop it first"
                )
            if len(tms) == taskmanagers:
                st = _wait_for_slots(settings, paths, taskmanagers, START_TIMEOUT_S)
                port = _configured_rest_port(paths)
                note = f"; settings say port {settings.rest_port}" if port != settings.rest_port else ""
                progress(
                    f"flink     already running on {rest_url(settings)} "
                    f"(jobmanager pid {jm}, {_layout_text(st)}{note})"
                )
                return st
            t0, since = time.monotonic(), time.time()
            _run_scripts(settings, paths, [["taskmanager.sh", "start"]] * (taskmanagers - len(tms)))
            st = _wait_for_slots(settings, paths, taskmanagers, START_TIMEOUT_S, since)
            progress(f"flink     started {taskmanagers - len(tms)} missing TaskManager(s): {_layout_text(st)}"
                     f"{process.took(t0)}")
            return st

        if tms:  # TaskManagers without a JobManager: leftovers of a crash; they would never register
            for pid in tms:
                process.terminate(pid, STOP_TIMEOUT_S)
            progress(f"flink     stopped {len(tms)} leftover TaskManager(s) without a JobManager")
        process.ensure_port_free(
            HOST, settings.rest_port, "TAILOR_REST_PORT", "the Flink REST API and Web UI"
        )
        rpc_port = int((extra_config or {}).get("jobmanager.rpc.port", JOBMANAGER_RPC_PORT))
        _ensure_port_free_fixed(rpc_port, "the Flink JobManager RPC (jobmanager.rpc.port)")
        ensure_layout(settings, taskmanagers, extra_config)
        progress(f"flink     lib/ and conf/ ready ({process.relative(paths.root)}, {settings.execution_mode} mode)")
        for pid_file in paths.run.glob("*.pid"):
            pid_file.unlink()  # the scripts number log files by pid-file lines; start from 0

        t0, since = time.monotonic(), time.time()
        try:
            daemons = [["jobmanager.sh", "start"]] + [["taskmanager.sh", "start"]] * taskmanagers
            _run_scripts(settings, paths, daemons)
            st = _wait_for_slots(settings, paths, taskmanagers, START_TIMEOUT_S, since)
        except StackError as exc:
            jm, tms = _cluster_processes(paths)  # leave nothing half-started behind: a retry starts clean
            for pid in tms + ([jm] if jm is not None else []):
                process.terminate(pid, STOP_TIMEOUT_S)
            raise StackError(f"{exc}\n(the Flink processes that had started were stopped again)") from None
        progress(
            f"flink     started on {rest_url(settings)} (jobmanager pid {st.jobmanager_pid}, "
            f"{_layout_text(st)}){process.took(t0)}"
        )
        return st


def stop(settings: Settings | None = None, progress: Progress = print) -> None:
    """Cancel running jobs (so their Kafka transactions are aborted, not left open to block
    read_committed readers), then stop every process of the cluster. Idempotent."""
    settings = settings or Settings.load()
    paths = Paths.of(settings)
    with _exclusive(paths):
        jm, tms = _cluster_processes(paths)
        if jm is None and not tms:
            progress("flink     not running")
            return
        t0 = time.monotonic()
        cancelled = 0
        if jm is not None:
            try:
                cancelled = _cancel_running_jobs(rest_client(settings))
            except FlinkRestError:
                pass  # REST not answering: just stop the processes
        pids = tms + ([jm] if jm is not None else [])
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        outcomes = [process.terminate(pid, STOP_TIMEOUT_S) for pid in pids]
        for pid_file in paths.run.glob("*.pid"):
            pid_file.unlink()
        what = ("jobmanager + " if jm is not None else "") + f"{len(tms)} taskmanager(s)"
        extra = f", {cancelled} running job(s) cancelled" if cancelled else ""
        killed = " (some needed SIGKILL)" if "killed" in outcomes else ""
        progress(f"flink     stopped ({what}{extra}){killed}{process.took(t0)}")


def status(settings: Settings | None = None) -> ClusterStatus:
    """Processes, registered TaskManagers, slots and jobs, without changing anything."""
    settings = settings or Settings.load()
    paths = Paths.of(settings)
    jm, tms = _cluster_processes(paths)
    url = rest_url(settings) if jm is not None else f"http://{HOST}:{settings.rest_port}"
    if jm is None:
        if tms:
            return ClusterStatus("error", f"{len(tms)} TaskManager(s) without a JobManager: run stop",
                                 url, None, tms, 0, 0, 0, [])
        if process.port_open(HOST, settings.rest_port):
            detail = (
                f"{HOST}:{settings.rest_port} is served by another process, not our cluster "
                "(the embedded mini-cluster of `tailor job run`?)"
            )
            return ClusterStatus("error", detail, url, None, [], 0, 0, 0, [])
        return ClusterStatus("stopped", f"start with flink_cluster.start; logs in {process.relative(paths.log)}",
                             url, None, [], 0, 0, 0, [])
    try:
        overview = rest_client(settings).overview()
        jobs = _jobs(settings)
    except FlinkRestError as exc:
        return ClusterStatus("error", f"jobmanager pid {jm} alive but REST does not answer: {exc}",
                             url, jm, tms, 0, 0, 0, [])
    st = ClusterStatus(
        "running", "", url, jm, tms, overview.taskmanagers, overview.slots_total, overview.slots_available, jobs
    )
    running = len(st.running_jobs)
    return st._replace(detail=f"{_layout_text(st)}, {running} running job(s); logs in {process.relative(paths.log)}")


def rest_url(settings: Settings) -> str:
    """The REST API / Web UI of our cluster. The conf dir written at start is the truth for a running
    cluster (it may have been started with another ``rest_port``); ``settings.rest_port`` otherwise: the
    embedded job's, even when a stopped standalone cluster left its conf dir behind."""
    paths = Paths.of(settings)
    configured = _configured_rest_port(paths) if jobmanager_pid(paths) is not None else None
    return f"http://{HOST}:{configured or settings.rest_port}"


def rest_client(settings: Settings, timeout_s: float = 10.0) -> FlinkRest:
    """A client of our cluster's REST API, at ``rest_url``."""
    return FlinkRest(rest_url(settings), timeout_s)


def jobmanager_pid(paths: Paths) -> int | None:
    """The pid of our cluster's JobManager (started with the conf dir of ``paths``), None if it does not run."""
    return _cluster_processes(paths)[0]


# -- internals ---------------------------------------------------------------------------------------
def _check_taskmanagers(taskmanagers: int) -> None:
    if taskmanagers not in SLOTS:
        raise StackError(
            f"taskmanagers must be 1 (2 slots) or 2 (1 slot each) on a 2-core box, got {taskmanagers}"
        )


def _cluster_processes(paths: Paths) -> tuple[int | None, list[int]]:
    """(JobManager pid, TaskManager pids) of *our* cluster: processes started with our conf dir.

    Two sources: Flink's pid files (right after a start, such a pid may still be the forked shell
    that is about to exec java) and a /proc scan for our JVMs (pid files go stale after a crash or
    SIGKILL, or are deleted). A pid counts only if its command line names our conf dir.
    """
    conf_arg = f"--configDir {paths.conf}"
    found: dict[str, set[int]] = {"standalonesession": set(), "taskexecutor": set()}
    for kind, pids in found.items():
        try:
            lines = (paths.run / f"flink-{IDENT}-{kind}.pid").read_text().split()
        except OSError:
            lines = []
        for pid in (int(x) for x in lines if x.isdigit()):
            if process.pid_alive(pid) and conf_arg in process.command_line(pid):
                pids.add(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cmd = process.command_line(int(entry.name))
        if conf_arg not in cmd:
            continue
        if JOBMANAGER_CLASS in cmd:
            found["standalonesession"].add(int(entry.name))
        elif TASKMANAGER_CLASS in cmd:
            found["taskexecutor"].add(int(entry.name))
    alive = {kind: sorted(p for p in pids if process.pid_alive(p)) for kind, pids in found.items()}
    jms = alive["standalonesession"]
    return (jms[-1] if jms else None), alive["taskexecutor"]


def _configured_rest_port(paths: Paths) -> int | None:
    try:
        stat = paths.config_yaml.stat()
    except OSError:
        return None
    key = (str(paths.config_yaml), stat.st_mtime_ns)
    if key not in _rest_port_cache:
        try:
            _rest_port_cache[key] = int((yaml.safe_load(paths.config_yaml.read_text()) or {})["rest.port"])
        except (OSError, KeyError, ValueError, TypeError, yaml.YAMLError):
            return None
    return _rest_port_cache[key]


_rest_port_cache: dict[tuple[str, int], int] = {}


def _configured_layout(paths: Paths) -> tuple[int, int] | None:
    """(TaskManagers, slots per TaskManager) as written in our conf dir, or None."""
    try:
        config = yaml.safe_load(paths.config_yaml.read_text()) or {}
        workers = [w for w in (paths.conf / "workers").read_text().split() if w]
        return len(workers), int(config["taskmanager.numberOfTaskSlots"])
    except (OSError, KeyError, ValueError, yaml.YAMLError):
        return None


def _run_scripts(settings: Settings, paths: Paths, commands: list[list[str]]) -> None:
    """Run the wheel's daemon scripts concurrently (each parses the config in a JVM of its own; they
    serialise on a lock in the pid dir). Own session: a Ctrl-C in the terminal does not reach the daemons."""
    bin_dir = pyflink_home() / "bin"
    env = script_env(settings, paths)
    since = time.time()
    children = [
        (cmd, subprocess.Popen(
            ["bash", str(bin_dir / cmd[0]), *cmd[1:]], env=env, cwd=paths.root, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        ))
        for cmd in commands
    ]
    failures = []
    for cmd, child in children:
        try:
            out, _ = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, _ = child.communicate()
            failures.append(f"`{' '.join(cmd)}` did not return within 120 s: {out.strip()[-1500:]}")
            continue
        if child.returncode != 0:
            failures.append(f"`{' '.join(cmd)}` exited {child.returncode}: {out.strip()[-1500:]}")
    if failures:
        raise StackError(
            "starting the Flink cluster failed:\n" + "\n".join(failures) + "\n" + _log_tails(paths, since)
        )


def _wait_for_slots(
    settings: Settings, paths: Paths, taskmanagers: int, timeout_s: float, since: float | None = None
) -> ClusterStatus:
    """Poll REST /overview until ``taskmanagers`` TaskManagers with all their slots are registered.
    ``since`` (epoch s): the start time, so error messages show only the logs of this start."""
    deadline = time.monotonic() + timeout_s
    want_slots = taskmanagers * SLOTS[taskmanagers]
    last = "no answer"
    while True:
        jm, tms = _cluster_processes(paths)
        if jm is None:
            raise StackError(f"the Flink JobManager exited during start-up:\n{_log_tails(paths, since)}")
        if len(tms) < taskmanagers:
            # The scripts return once the JVMs run, so a missing TaskManager died (bad memory config,
            # missing class, ...) and will not come back.
            time.sleep(0.5)
            tms = _cluster_processes(paths)[1]
            if len(tms) < taskmanagers:
                raise StackError(
                    f"only {len(tms)} of {taskmanagers} Flink TaskManager(s) are alive:\n"
                    f"{_log_tails(paths, since)}"
                )
        try:
            overview = rest_client(settings, timeout_s=2).overview()
            last = f"{overview.taskmanagers} taskmanager(s), {overview.slots_total} slot(s)"
            if overview.taskmanagers >= taskmanagers and overview.slots_total >= want_slots:
                return ClusterStatus(
                    "running", "", rest_url(settings), jm, tms, overview.taskmanagers,
                    overview.slots_total, overview.slots_available, _jobs(settings),
                )
        except FlinkRestError:
            pass
        if time.monotonic() > deadline:
            raise StackError(
                f"the Flink cluster did not register {taskmanagers} TaskManager(s) with {want_slots} slot(s) "
                f"within {timeout_s:.0f} s (REST {rest_url(settings)}: {last}):\n{_log_tails(paths, since)}"
            )
        time.sleep(0.3)


def _jobs(settings: Settings) -> list[JobInfo]:
    return [JobInfo(job.job_id, job.name, job.state) for job in rest_client(settings).jobs()]


def _cancel_running_jobs(rest: FlinkRest, timeout_s: float = 20.0) -> int:
    """Cancel every running job, then wait up to ``timeout_s`` for each to end; returns how many ran.
    A job not ended by then is left to the stop of the processes."""
    running = [job.job_id for job in rest.jobs() if job.state not in TERMINAL_STATES]
    for job_id in running:
        rest.cancel(job_id)
    for job_id in running:
        deadline = time.monotonic() + timeout_s
        try:
            while rest.job_overview(job_id).state not in TERMINAL_STATES and time.monotonic() < deadline:
                time.sleep(0.25)
        except FlinkRestError:
            pass  # stopping the processes ends it anyway
    return len(running)


def _ensure_port_free_fixed(port: int, what: str) -> None:
    if process.port_bindable(HOST, port):
        return
    pid = process.listener_pid(port)
    owner = f"pid {pid}: {process.command_line(pid)[:120]}" if pid else "pid unknown"
    raise StackError(
        f"port {port} on {HOST} is needed for {what} but is taken by another process ({owner}): stop it"
    )


def _log_tails(paths: Paths, since: float | None = None, lines: int = 20) -> str:
    """The tails of the daemons' logs (and non-empty .out files) written since ``since`` (epoch s)."""
    def fresh(p: Path) -> bool:
        return since is None or p.stat().st_mtime >= since

    by_age = sorted(paths.log.glob(f"flink-{IDENT}-*-*.log"), key=lambda p: p.stat().st_mtime)
    logs = [p for p in by_age if fresh(p)]
    outs = [p for p in sorted(paths.log.glob(f"flink-{IDENT}-*-*.out")) if p.stat().st_size > 0 and fresh(p)]
    parts = [
        f"--- {process.relative(p)} (last {lines} lines):\n{process.log_tail(p, lines)}" for p in logs[-2:] + outs[-2:]
    ]
    return "\n".join(parts) or f"(no new logs in {process.relative(paths.log)})"


def _layout_text(st: ClusterStatus) -> str:
    return f"{st.taskmanagers} taskmanager(s), {st.slots_total} slot(s), {st.slots_available} free"


def _wheel_config() -> dict[str, Any]:
    """The wheel's conf/config.yaml, flattened to dotted keys."""
    data = yaml.safe_load((pyflink_home() / "conf" / "config.yaml").read_text()) or {}
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix] = node

    walk("", data)
    return flat


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _exclusive(paths: Paths):  # type: ignore[no-untyped-def]
    # A lock of its own: the stack lock is taken inside.
    return process.file_lock(paths.root / "cluster.lock")
