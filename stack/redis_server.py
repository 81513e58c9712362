"""Our own Redis server process, from Debian's ``redis-server`` package.

We use the package only for its binary: the system service (if the package's init script started
one) is stopped, and we run ``redis-server`` ourselves on loopback with data, pid file and log under
``<home>/redis/``. That keeps the stack's state in one git-ignored directory, lets ``down`` stop
exactly what ``up`` started, and avoids fighting a system Redis over the port.

Persistence is off (``--save "" --appendonly no``): Redis holds derived state (segments, features)
that the Flink jobs rebuild, and tests want a clean, fast store.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from settings import Settings
from stack import apt, process
from stack.errors import StackError

APT_PACKAGE = "redis-server"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        return cls(settings.home / "redis")

    pid_file = property(lambda self: self.root / "redis.pid")
    log_file = property(lambda self: self.root / "redis.log")
    stdout_log = property(lambda self: self.root / "redis.out")


def binary() -> Path | None:
    found = shutil.which("redis-server")
    return Path(found) if found else None


def ensure_installed(progress=print) -> Path:
    """Path of ``redis-server``; apt-installs the package first if needed (as root)."""
    found = binary()
    if found is not None:
        return found
    progress(f"redis     installing Debian package {APT_PACKAGE} ...")
    apt.install([APT_PACKAGE], "redis-server not found on PATH")
    found = binary()
    if found is None:
        raise StackError(
            f"installed {APT_PACKAGE} but `redis-server` is still not on PATH: add /usr/bin to PATH"
        )
    _disable_packaged_service(progress)
    return found


def _disable_packaged_service(progress) -> None:
    """Stop and disable the system Redis service that installing the package may have started.

    On machines where services may start (no ``policy-rc.d`` veto, e.g. a normal systemd host),
    Debian starts redis-server on 127.0.0.1:6379 right after installing it and at every boot, which
    would take our port. We installed the package only for its binary, so we switch that service
    off. Every step tolerates failure: where nothing was started there is nothing to stop.
    """
    default_port = 6379
    for argv in (
        ["systemctl", "disable", "--now", "redis-server"],
        ["update-rc.d", "redis-server", "disable"],
    ):
        if shutil.which(argv[0]):
            subprocess.run(argv, check=False, capture_output=True, stdin=subprocess.DEVNULL)
    pid = process.listener_pid(default_port)
    if pid is None or "redis-server" not in process.command_line(pid):
        return
    for argv in (
        ["service", "redis-server", "stop"],
        ["redis-cli", "-p", str(default_port), "shutdown", "nosave"],
    ):
        if shutil.which(argv[0]):
            subprocess.run(argv, check=False, capture_output=True, stdin=subprocess.DEVNULL)
        if process.wait_for_exit(pid, 5.0):
            progress(f"redis     stopped the system redis-server the package started (pid {pid})")
            return


def running_pid(settings: Settings) -> int | None:
    return process.running_pid(Paths.of(settings).pid_file, "redis-server")


def is_running(settings: Settings) -> bool:
    return running_pid(settings) is not None and ping(settings)


def ping(settings: Settings) -> bool:
    import redis

    try:
        client = redis.Redis(
            settings.redis_host, settings.redis_port, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def start(settings: Settings, timeout: float = START_TIMEOUT_S) -> tuple[int, bool]:
    """Start our redis-server unless it already runs; wait for PING. Returns ``(pid, started_now)``."""
    paths = Paths.of(settings)
    pid = running_pid(settings)
    started = pid is None
    if started:
        exe = ensure_installed()
        process.ensure_port_free(settings.redis_host, settings.redis_port, "TAILOR_REDIS_PORT", "Redis")
        paths.root.mkdir(parents=True, exist_ok=True)
        options = {
            "bind": settings.redis_host,
            "port": str(settings.redis_port),
            "dir": str(paths.root),
            "daemonize": "no",  # we hold the pid; Popen detaches it
            "save": "",  # no RDB snapshots ...
            "appendonly": "no",  # ... and no AOF: see the module docstring
            "pidfile": str(paths.pid_file),
            "logfile": str(paths.log_file),
        }
        argv = [str(exe), *(arg for name, value in options.items() for arg in (f"--{name}", value))]
        pid = process.spawn(argv, paths.stdout_log, paths.pid_file, cwd=paths.root)
    deadline = time.monotonic() + timeout
    while not ping(settings):
        if not process.pid_alive(pid):
            problem = "exited during start-up"
        elif time.monotonic() > deadline:
            problem = (
                f"does not answer PING on {settings.redis_host}:{settings.redis_port} after {timeout:.0f} s"
            )
        else:
            time.sleep(0.1)
            continue
        log = process.log_tail(paths.log_file, 15)
        raise StackError(f"redis-server (pid {pid}) {problem}.\n--- {paths.log_file} (tail)\n{log}")
    return pid, started


def stop(settings: Settings, timeout: float = STOP_TIMEOUT_S) -> str | None:
    """SIGTERM our redis-server (it exits cleanly; nothing to save), SIGKILL after ``timeout`` s."""
    paths = Paths.of(settings)
    pid = running_pid(settings)
    if pid is None:
        paths.pid_file.unlink(missing_ok=True)
        return None
    outcome = process.terminate(pid, timeout)
    paths.pid_file.unlink(missing_ok=True)
    return outcome
