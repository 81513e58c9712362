"""``tailor collect`` and ``tailor serve`` as child processes for the benchmarks and tests: started,
probed (``/health``), stopped.

They run exactly as a user starts them (``python -m tailor ...``), with the settings passed through the
environment, so what is measured and tested is the shipped command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from settings import PROJECT_ROOT, Settings
from stack.errors import StackError
from stack.process import free_port


def running_collector(settings: Settings, write_key: str, log: Path) -> AbstractContextManager[str]:
    """``tailor collect`` accepting ``write_key``; yields its base URL."""
    return running_service(["collect"], settings, log, {"TAILOR_COLLECTOR_WRITE_KEYS": write_key}, ready=(200,))


def running_server(
    settings: Settings, log: Path, decisions: Path | None = None, port: int | None = None
) -> AbstractContextManager[str]:
    """``tailor serve`` (with ``decisions`` or the settings' matrix; on ``port`` or a free one); yields its base
    URL. Its /health answers 503 while Redis is away, which still counts as up."""
    command = ["serve", *(["--decisions", str(decisions)] if decisions else [])]
    return running_service(command, settings, log, ready=(200, 503), port=port)


@contextmanager
def running_service(
    command: list[str], settings: Settings, log: Path, env: dict[str, str] | None = None,
    ready: tuple[int, ...] = (200,), timeout_s: float = 30.0, port: int | None = None,
) -> Iterator[str]:
    """Start ``tailor <command>`` on a free port; yield its base URL once ``/health`` answers a ``ready``
    status (the collector: 200 = Kafka reachable; serve: 503 too, it answers with Redis away)."""
    port = port or free_port()
    env = {**os.environ, **settings.to_environ(), **(env or {})}
    argv = [sys.executable, "-m", "tailor", *command, "--port", str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        child = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _answers(url, ready):
            if child.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"tailor {command[0]} did not answer on {url}; its log:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _answers(url: str, ready: tuple[int, ...]) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return int(response.status) in ready
    except urllib.error.HTTPError as e:
        return e.code in ready
    except (urllib.error.URLError, OSError):
        return False
