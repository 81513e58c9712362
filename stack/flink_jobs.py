"""Jobs on the standalone cluster of ``stack.flink_cluster``: submitted with ``flink run -py``, then
watched and controlled through Flink's REST API (``connectors.flink_rest``).

    submit(settings, job_py, args, py_files, ...)   ``flink run -py``; returns the job id
    wait_for_job(settings, job_id, states, ...)     until the job reaches a state; raises if it fails
    job_state / job_vertices / job_metrics          what the job is doing
    cancel(settings, job_id)                        cancels and waits until the job is terminal
    stop_with_savepoint(settings, job_id, ...)      ``flink stop``; returns the savepoint to restore from

Settings reach a submitted job through ``TAILOR_*`` environment variables of ``flink run``: the job's
``main()`` runs in the client, calls ``Settings.load()`` there and bakes every value (topics, group,
Redis address and prefix, rules text) into the graph and the pickled functions. The TaskManagers never
read settings.

Every failure is a StackError; a REST failure keeps the REST client's message.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

from connectors import flink_state
from connectors.flink_rest import TERMINAL_STATES, FlinkRest, FlinkRestError
from pipelines.state_layout import JOB_NAME
from settings import PROJECT_ROOT, Settings
from stack import process
from stack.errors import StackError
from stack.flink_cluster import (
    IDENT,
    Paths,
    jobmanager_pid,
    pyflink_home,
    python_executable,
    rest_client,
    script_env,
)

SUBMIT_TIMEOUT_S = 180.0
DEFAULT_JOB = PROJECT_ROOT / "pipelines" / "segmentation_job.py"
# Our top-level packages, shipped with every job (-pyfs) so the TaskManagers import the submitted code.
JOB_PACKAGES = ("settings", "state_schemas", "operators", "connectors", "pipelines")
# Gauges whose per-subtask values are combined with max; every other metric is summed over subtasks.
MAX_METRICS = frozenset({"event_time_lag_ms", "model_update_staleness_ms", "python_full_gc_pause_ms"})

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _raises_stack_error(call: Callable[_P, _R]) -> Callable[_P, _R]:
    # The stack raises one exception class (stack.errors); the REST client's message already says what to do.
    @functools.wraps(call)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return call(*args, **kwargs)
        except FlinkRestError as exc:
            raise StackError(str(exc)) from exc

    return wrapper


def submit(
    settings: Settings | None = None,
    job_py: Path = DEFAULT_JOB,
    args: Sequence[str] = (),
    py_files: Sequence[Path] | None = None,
    detached: bool = True,
    from_savepoint: str | Path | None = None,
    *,
    rules_file: Path | None = None,
    bounded: bool = False,
    timeout_s: float = SUBMIT_TIMEOUT_S,
) -> str:
    """``flink run [-d] [-s savepoint] -py job_py -pyfs <code.zip> -pyexec <venv python> args`` -> JobID.

    ``settings`` travel to the job's ``main()`` as ``TAILOR_*`` environment variables of the client.
    ``py_files`` are package dirs and module files the TaskManagers must import (default: the
    project's packages, ``JOB_PACKAGES``); they are zipped into one ``-pyfs`` archive so each package
    keeps its name (``import pipelines...``). ``rules_file`` and ``bounded`` are shorthands for the
    segmentation job's ``--rules`` and ``--bounded``. Not detached, the call returns when the job
    ends (bounded jobs). Raises StackError with the client's output if the submission fails.
    """
    settings = settings or Settings.load()
    paths = Paths.of(settings)
    job_py = Path(job_py).resolve()
    if not job_py.is_file():
        raise StackError(f"job file {job_py} does not exist")
    if jobmanager_pid(paths) is None:
        raise StackError(
            f"our Flink cluster is not running (conf {process.relative(paths.conf)}): start it (flink_cluster.start)"
        )
    if py_files is None:
        py_files = [PROJECT_ROOT / p for p in JOB_PACKAGES if (PROJECT_ROOT / p).is_dir()]
    program_args = list(args)
    if rules_file is not None:
        program_args += ["--rules", str(Path(rules_file).resolve())]
    if bounded:
        program_args.append("--bounded")

    argv = [str(pyflink_home() / "bin" / "flink"), "run"]
    if detached:
        argv.append("-d")
    if from_savepoint is not None:
        argv += ["-s", str(from_savepoint)]
    argv += ["-py", str(job_py)]
    bundle = _bundle(paths, py_files) if py_files else None
    if bundle is not None:
        argv += ["-pyfs", str(bundle)]
    argv += ["-pyexec", python_executable(), "-pyclientexec", python_executable(), *program_args]

    env = script_env(settings, paths)
    env.update({f"TAILOR_{k.upper()}": str(v) for k, v in settings.to_dict().items()})
    # Own session: on a timeout the client JVM *and* the job's Python client process it started go.
    client = subprocess.Popen(
        argv, env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = client.communicate(timeout=timeout_s if detached else None)
    except subprocess.TimeoutExpired:
        os.killpg(client.pid, signal.SIGKILL)
        output, _ = client.communicate()
        raise StackError(
            f"`flink run` did not finish within {timeout_s:.0f} s; output:\n{_tail(output or '', 40)}"
        ) from None
    finally:
        if bundle is not None:
            bundle.unlink(missing_ok=True)  # uploaded to the cluster's blob store at submission
    match = re.search(r"JobID ([0-9a-f]{32})", output)
    if client.returncode != 0 or match is None:
        raise StackError(
            f"`flink run -py {process.relative(job_py)}` failed (exit {client.returncode}); output:\n"
            f"{_tail(output, 40)}\nclient log: {process.relative(paths.log)}/flink-{IDENT}-client-*.log"
        )
    return match.group(1)


@_raises_stack_error
def cancel(settings: Settings, job_id: str, timeout_s: float = 30.0) -> str:
    """Cancel a job and wait until it is terminal; returns the final state (CANCELED unless it had ended)."""
    state = job_state(settings, job_id)
    if state in TERMINAL_STATES:
        return state
    rest_client(settings).cancel(job_id)
    return wait_for_job(settings, job_id, TERMINAL_STATES, timeout_s, fail_on_restart=False)


@_raises_stack_error
def stop_with_savepoint(
    settings: Settings,
    job_id: str,
    target_dir: Path | None = None,
    drain: bool = False,
    timeout_s: float = 120.0,
) -> str:
    """Stop the job gracefully with a savepoint (``flink stop``); returns the savepoint path (``file:/...``),
    which ``submit(..., from_savepoint=path)`` restores."""
    rest = rest_client(settings)
    target = target_dir or Paths.of(settings).savepoints
    triggered_at = time.time()
    trigger_id = rest.trigger_stop_with_savepoint(job_id, target, drain)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            savepoint = rest.savepoint_status(job_id, trigger_id)
        except FlinkRestError:
            # The embedded mini-cluster of `tailor job run` shuts down with its job, REST included, maybe
            # before the status was read: the savepoint it wrote says whether the stop succeeded.
            written = flink_state.newest_savepoint(target, since=triggered_at)
            if written is not None:
                return written.resolve().as_uri()
            raise
        if savepoint.completed:
            if savepoint.location is not None:
                try:
                    wait_for_job(settings, job_id, TERMINAL_STATES, max(5.0, deadline - time.monotonic()))
                except StackError:
                    if _answers(rest):
                        raise  # the cluster answers but the job did not end
                    # else: REST went away with the embedded cluster, which ends with its job
                return savepoint.location
            raise StackError(
                f"stop-with-savepoint of job {job_id} failed: {savepoint.failure_class}: "
                f"{_tail(savepoint.failure_trace, 15)}"
            )
        if time.monotonic() > deadline:
            raise StackError(f"savepoint of job {job_id} not completed within {timeout_s:.0f} s")
        time.sleep(0.3)


def _answers(rest: FlinkRest) -> bool:
    try:
        rest.jobs()
    except FlinkRestError:
        return False
    return True


@_raises_stack_error
def running_job(settings: Settings, name: str = JOB_NAME) -> str | None:
    """The id of the job called ``name`` that is not yet terminal, or None."""
    jobs = [j for j in rest_client(settings).jobs() if j.name == name and j.state not in TERMINAL_STATES]
    return jobs[0].job_id if jobs else None


@_raises_stack_error
def job_state(settings: Settings, job_id: str) -> str:
    return rest_client(settings).job_overview(job_id).state


@_raises_stack_error
def wait_for_job(
    settings: Settings,
    job_id: str,
    states: str | frozenset[str] | set[str] = "RUNNING",
    timeout_s: float = 60.0,
    all_tasks_running: bool = False,
    fail_on_restart: bool = True,
) -> str:
    """Poll until the job reaches one of ``states``; returns that state. With ``all_tasks_running``,
    RUNNING also waits until every task is deployed and running (sources are reading). A job that
    fails (and would restart forever under the default restart strategy) raises StackError with its
    first exception, unless ``fail_on_restart`` is False."""
    rest = rest_client(settings)
    wanted = {states} if isinstance(states, str) else set(states)
    deadline = time.monotonic() + timeout_s
    state = "?"
    while time.monotonic() < deadline:
        job = rest.job_overview(job_id)
        state = job.state
        if state in wanted:
            if not (all_tasks_running and state == "RUNNING") or job.tasks_running == job.tasks_total:
                return state
        elif state in TERMINAL_STATES or (fail_on_restart and state in ("RESTARTING", "FAILING")):
            raise StackError(
                f"job {job_id} is {state}, expected {sorted(wanted)}; first failure:\n"
                f"{_job_failure(rest, job_id)}"
            )
        time.sleep(0.25)
    raise StackError(f"job {job_id} is {state}, not {sorted(wanted)} after {timeout_s:.0f} s; see {rest.url}")


@_raises_stack_error
def job_vertices(settings: Settings, job_id: str) -> list[str]:
    """Names of the job's vertices (chained operators joined by " -> "), as the Web UI shows them."""
    return [vertex.name for vertex in rest_client(settings).job(job_id).vertices]


@_raises_stack_error
def job_metrics(settings: Settings, job_id: str, group: str = "tailor") -> dict[str, dict[str, float]]:
    """Custom metrics of the job: ``{operator name: {metric: value}}``, e.g.
    ``{"normalize_events": {"events_in": 5.0, "dead_letters": 1.0}, "track_segments": {...}}``.

    Per vertex, aggregated over its subtasks: counters are summed, the gauges in ``MAX_METRICS`` take the
    maximum. Metrics appear once the operators have opened; the REST API refreshes them at most every
    10 s (``metrics.fetcher.update-interval``). Poll this while a job runs, not while it stops: in thread
    mode a metric query during teardown can crash the TaskManager (``FlinkRest.operator_metrics``).
    """
    rest = rest_client(settings)
    result: dict[str, dict[str, float]] = {}
    for vertex in rest.job(job_id).vertices:
        for (operator, name), value in rest.operator_metrics(job_id, vertex.vertex_id, group).items():
            result.setdefault(operator, {})[name] = value["max"] if name in MAX_METRICS else value["sum"]
    return result


# -- internals ---------------------------------------------------------------------------------------
def _bundle(paths: Paths, py_files: Sequence[Path]) -> Path:
    """One zip of the job's Python code for ``-pyfs``: each package dir under its own name, each
    module file at the top. (``-pyfs <dir>`` would put the dir's *contents* on the TaskManagers'
    PYTHONPATH, so ``import pipelines`` would fail; a zip is extracted and its root put there.)
    Zipping also snapshots the code at submission time."""
    bundles = paths.root / "submit"
    bundles.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="tailor-job-", suffix=".zip", dir=bundles)
    os.close(fd)
    with zipfile.ZipFile(name, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in map(Path, py_files):
            if item.is_dir():
                for file in sorted(item.rglob("*")):
                    if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                        zf.write(file, Path(item.name) / file.relative_to(item))
            elif item.is_file():
                zf.write(item, item.name)
            else:
                Path(name).unlink()
                raise StackError(f"py_files entry {item} does not exist")
    return Path(name)


def _job_failure(rest: FlinkRest, job_id: str) -> str:
    try:
        history = rest.exception_history(job_id)
    except FlinkRestError as exc:
        return str(exc)
    if not history:
        return "no exception recorded"
    return _tail(history[0], 20)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
