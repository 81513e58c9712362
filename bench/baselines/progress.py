"""How a baseline child process tells the harness how far it got: a small JSON file, rewritten atomically.

    {"processed": 12000, "changes": 5400, "dead_letters": 0, "first_ms": ..., "last_ms": ..., "done": false}

``processed`` counts input records taken off Kafka and fully handled (outputs handed to the clients).

>>> import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / "p.json"
>>> r = ProgressFile(p, every_s=0); r.count(3, changes=1); r.write(); read(p)["processed"]
3
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

READY_PAUSE_S = 0.6  # over two of the harness's 0.25 s samples


class ProgressFile:
    def __init__(self, path: Path, every_s: float = 0.2) -> None:
        self.path = Path(path)
        self.every_s = every_s
        self.processed = self.changes = self.dead_letters = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self._written = 0.0

    def count(self, records: int, changes: int = 0, dead_letters: int = 0) -> None:
        now = time.time()
        if self.first_ms is None and records:
            self.first_ms = int(now * 1000)
        self.processed += records
        self.changes += changes
        self.dead_letters += dead_letters
        if records:
            self.last_ms = int(now * 1000)
        if now - self._written >= self.every_s:
            self.write()

    def ready(self, pause_s: float = READY_PAUSE_S) -> None:
        """Report 0 processed and hold still for a moment before the first poll.

        The harness anchors the rate at the last sample that still read 0; a consumer that starts and
        drains a small topic between two samples (every 0.25 s) would leave it nothing to anchor on.
        """
        self.write()
        time.sleep(pause_s)

    def write(self, done: bool = False) -> None:
        self._written = time.time()
        body = {"processed": self.processed, "changes": self.changes, "dead_letters": self.dead_letters,
                "first_ms": self.first_ms, "last_ms": self.last_ms, "done": done, "pid": os.getpid()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(body))
        os.replace(tmp, self.path)


def read(path: Path) -> dict | None:
    try:
        return orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
