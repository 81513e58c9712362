"""A redis-server of a test's own (free port, temp dir), which it may stall (SIGSTOP), kill and restart
without touching the stack's Redis. Used by the Redis outage and serving tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """One redis-server process of this test, on a port of its own, with its files in ``directory``."""

    def __init__(
        self, directory: Path, client_options: dict[str, str] | None = None, **config: str | list[str]
    ) -> None:
        """``config``: redis-server options (e.g. ``user``, ``requirepass``); ``client_options``: what a client
        needs to connect then (redis-py's ``username``, ``password``)."""
        self.directory = directory
        self.config = {"save": "", "appendonly": "no", **config}
        self.client_options = client_options or {}
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    def start(self) -> None:
        # A list value is several words of one directive (``user=["alice", "on", ">pw", "+@all"]``).
        options = [arg for name, value in self.config.items()
                   for arg in (f"--{name}", *(value if isinstance(value, list) else [value]))]
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--logfile", "redis.log", *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        probe = self.client()
        try:
            while True:
                try:
                    if probe.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                assert self.process.poll() is None, f"redis-server exited: {self.log()}"
                assert time.monotonic() < deadline, f"redis-server not answering: {self.log()}"
                time.sleep(0.02)
        finally:
            probe.close()

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.frozen:
            self.thaw()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2, **self.client_options)

    def contents(self) -> dict[bytes, Any]:
        """Every key with its value, by type."""
        client = self.client()
        read = {b"set": client.smembers, b"hash": client.hgetall, b"string": client.get}
        try:
            return {key: read[client.type(key)](key) for key in client.scan_iter(count=1_000)}
        finally:
            client.close()

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text()[-2_000:] if path.exists() else "(no log)"

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

