"""A ``tailor collect`` child process for the benchmark and the tests: started, probed, stopped.

The collector runs exactly as a user starts it (``python -m tailor collect``), with the settings passed
through the environment, so what is measured and tested is the shipped command.
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
from contextlib import contextmanager
from pathlib import Path

from settings import PROJECT_ROOT, Settings
from stack.errors import StackError
from stack.process import free_port


@contextmanager
def running_collector(
    settings: Settings, write_key: str, log: Path, port: int | None = None, timeout_s: float = 30.0
) -> Iterator[str]:
    """Start ``tailor collect`` and yield its base URL once ``/health`` answers; stop it afterwards."""
    port = port or free_port()
    env = {**os.environ, **settings.to_environ(), "TAILOR_COLLECTOR_WRITE_KEYS": write_key}
    argv = [sys.executable, "-m", "tailor", "collect", "--port", str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        child = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(url):
            if child.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"tailor collect did not become healthy on {url}; its log:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
