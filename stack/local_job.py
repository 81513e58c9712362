"""Run the segmentation job on Flink's embedded mini-cluster, in this process or as a child process.

Thread mode (PEMJA) runs the Python operators inside the JVM, which must be able to import our packages
and the venv's site-packages (including ``pemja``): that is what ``python_path_env`` provides. The
gateway JVM inherits the environment of the process that starts it, so it is set before PyFlink starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

from connectors.flink_rest import FlinkRest, FlinkRestError
from operators.models_config import ModelsConfig
from operators.segment_rules import SegmentRules
from settings import PROJECT_ROOT, Settings
from stack import job_jars, replay_end
from stack.job_state import StartPlan, plan_start


def python_path_env(settings: Settings) -> dict[str, str]:
    site_packages = sysconfig.get_paths()["purelib"]
    paths = [str(PROJECT_ROOT), site_packages]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    # Flink's own log of the embedded cluster (job status, restarts, exceptions): settings.home/logs, or
    # where the parent put it (``spawn`` puts it next to the job's log file).
    log_dir = Path(os.environ.get("FLINK_LOG_DIR") or settings.home / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    return {"PYTHONPATH": os.pathsep.join(paths), "FLINK_LOG_DIR": str(log_dir)}


def run(
    settings: Settings, rules: SegmentRules, models: ModelsConfig | None, bounded: bool = False,
    plan: StartPlan | None = None, extra_config: dict[str, str] | None = None,
) -> None:
    """Build and execute the job in this process (``models``: the online models, None = rules only),
    started as ``plan`` says (default: ``stack.job_state.plan_start``: resume from the newest retained
    checkpoint or savepoint); blocks until it ends (bounded) or is cancelled."""
    plan = plan or plan_start(settings)
    jars = job_jars(settings)
    os.environ.update(python_path_env(settings))
    from pyflink.datastream import StreamExecutionEnvironment

    from pipelines import segmentation_job as job

    restore = None if plan.restore is None else plan.restore.path
    config = job.flink_configuration(settings, True, restore, extra_config)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.add_jars(*(jar.resolve().as_uri() for jar in jars))
    job.configure(env, settings)
    # A bounded source restored from state never finishes (FLINK-31006), and the sharded recommender's
    # exchange topic never ends: such a replay reads unbounded and is drained once it has read what was in
    # the events topic at this start (stack.replay_end).
    drained_replay = bounded and (restore is not None or (models is not None and settings.models_sharded))
    job.build(
        env, settings, rules, models, bounded=bounded and not drained_replay, from_earliest=plan.from_earliest,
        replay=bounded,
    )
    threading.Thread(target=_exit_when_the_taskmanager_dies, args=(settings,), daemon=True,
                     name="taskmanager-watchdog").start()
    if not drained_replay:
        env.execute(job.JOB_NAME)
        return
    target = replay_end.replay_target(settings)
    client = env.execute_async(job.JOB_NAME)
    savepoint = replay_end.drain_when_read(settings, str(client.get_job_id()), target)
    client.get_job_execution_result().result()
    print(f"replay read to its end and drained; savepoint {savepoint}", flush=True)


def _exit_when_the_taskmanager_dies(settings: Settings, poll_s: float = 5.0) -> None:
    """The embedded mini-cluster has one TaskManager. Flink ends it on a fatal error (an exception while a
    failed task cleans up, e.g. a Kafka writer closing after failed sends); no other takes over, and the job
    would wait for a slot for ever. So: exit, loudly, and let the same command resume from the last
    checkpoint (a supervisor's restart, or the user's)."""
    rest = FlinkRest(f"http://127.0.0.1:{settings.rest_port}", timeout_s=2)
    seen, missing = False, 0
    while True:
        time.sleep(poll_s)
        try:
            taskmanagers = rest.overview().taskmanagers
        except FlinkRestError:
            continue  # not up yet, or going down with the job
        seen = seen or taskmanagers > 0
        missing = missing + 1 if seen and taskmanagers == 0 else 0
        if missing >= 2:
            print("tailor: error: the embedded Flink TaskManager died (see the Flink log for the FATAL error); "
                  "exiting: run the same command again to resume from the last checkpoint", file=sys.stderr,
                  flush=True)
            os._exit(70)


def spawn(
    settings: Settings, rules_file: Path, log_file: Path, bounded: bool = False, fresh: bool = False,
    discard_state: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``tailor job run`` as a child process with ``settings`` passed through TAILOR_* variables."""
    env = dict(os.environ)
    env.update(settings.to_environ())
    env.update(python_path_env(settings))
    env["FLINK_LOG_DIR"] = str(log_file.parent)  # Flink's log beside ours, not shared with other jobs
    argv = [sys.executable, "-m", "tailor", "job", "run", "--rules", str(rules_file)]
    flags = {"--bounded": bounded, "--fresh": fresh, "--discard-state": discard_state}
    argv += [flag for flag, on in flags.items() if on]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT)


def wait_until_running(settings: Settings, child: subprocess.Popen[bytes], timeout_s: float = 120) -> str:
    """Poll the mini-cluster's REST API until the job is RUNNING; returns the job id.

    Only a job submitted after this call started counts: another Flink answering on the same port (a
    developer's cluster, a benchmark) must not pass for ours.
    """
    deadline = time.monotonic() + timeout_s
    not_before_ms = int(time.time() * 1000) - 5_000  # the child was spawned just before this call
    rest = FlinkRest(f"http://127.0.0.1:{settings.rest_port}", timeout_s=2)
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the job process exited with code {child.returncode} before it started")
        try:
            running = [j.job_id for j in rest.jobs() if j.state == "RUNNING" and j.start_time_ms >= not_before_ms]
            if running:
                return running[0]
        except FlinkRestError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the job was not RUNNING after {timeout_s:.0f} s (see {rest.url}/jobs/overview)")


def job_config(settings: Settings, rules_file: Path | None = None) -> tuple[SegmentRules, ModelsConfig | None]:
    """The rules and models a job of ``settings`` runs, loaded and validated here (before any Flink starts):
    ``rules_file`` or ``settings.segments_file``; ``settings.models_file`` if models are enabled."""
    rules = SegmentRules.from_yaml(rules_file or settings.segments_file)
    return rules, ModelsConfig.from_yaml(settings.models_file) if settings.models_enabled else None
