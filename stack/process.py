"""Detached service processes: pid files, liveness, ports, start and stop.

Kafka and Redis run as plain child processes in their own session (``start_new_session``), so they
outlive the ``tailor`` command that started them and a Ctrl-C in the terminal does not reach them.
A pid file is the only link back to them; every check below guards against the two ways a pid file
lies: the process is gone (or a zombie), or the pid was reused by an unrelated program. The latter is
why liveness also matches a marker in the process's command line.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from stack.errors import StackError

# Popen objects of the services this interpreter started. Keeping them lets us reap an exited child
# (otherwise it lingers as a zombie that still "exists" for os.kill) and avoids Popen's
# "subprocess is still running" ResourceWarning when the object would be garbage collected.
_children: dict[int, subprocess.Popen] = {}


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (an exited-but-unreaped child counts as dead)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def command_line(pid: int) -> str:
    """The process's argv joined by spaces, or '' if it is gone or unreadable."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive and its command line contains ``marker``."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if pid_alive(pid) and marker in command_line(pid):
        return pid
    return None


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(host: str, port: int) -> bool:
    """True if we could listen on host:port ourselves (catches wildcard 0.0.0.0 listeners, too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the services do: ignore TIME_WAIT
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def listener_pid(port: int) -> int | None:
    """The pid listening on TCP ``port`` (any address), found via /proc; None if unknown."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def ensure_port_free(host: str, port: int, env_var: str, what: str) -> None:
    """Raise a StackError naming the squatter and the setting to change if host:port is taken."""
    if port_bindable(host, port):
        return
    pid = listener_pid(port)
    owner = f"pid {pid}: {command_line(pid)[:120]}" if pid else "pid unknown"
    hint = ""
    if pid and "redis-server" in command_line(pid):
        hint = " (another redis-server; if it is the system service: `service redis-server stop`)"
    raise StackError(
        f"port {port} on {host} is needed for {what} but is taken by another process ({owner}){hint}: "
        f"stop it or set {env_var} to a free port"
    )


def spawn(argv: Sequence[str], log_file: Path, pid_file: Path, cwd: Path | None = None) -> int:
    """Start ``argv`` detached (own session, no stdin, output appended to ``log_file``); return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError as exc:
            raise StackError(f"cannot start {argv[0]}: {exc}") from None
    _children[child.pid] = child
    pid_file.write_text(f"{child.pid}\n")
    return child.pid


def terminate(pid: int, timeout: float = 30.0) -> str:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns 'stopped', 'killed' or 'gone'."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    if wait_for_exit(pid, timeout):
        return "stopped"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    if not wait_for_exit(pid, 10.0):
        raise StackError(
            f"pid {pid} survived SIGKILL for 10 s; inspect it with `ps -o pid,stat,cmd -p {pid}`"
        )
    return "killed"


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone; True if it exited within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file (for error messages), or a note that it is missing."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise start/stop across processes (e.g. parallel test sessions) with an flock on ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def relative(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter progress lines)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def took(t0: float) -> str:
    return f" in {time.monotonic() - t0:.1f} s"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
