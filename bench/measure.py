"""Resource measures of one contender: CPU seconds and peak RSS of its processes, Redis bytes per user,
Flink state bytes per user.

* :class:`ProcessTreeSampler` follows a set of root pids and all their descendants through ``/proc``.
  Each ``sample()`` reads utime+stime (CPU seconds; a process that exits keeps its last reading, so
  nothing is lost) and the resident set of every process, classified as ``jvm`` (``java``) or
  ``python``; the peaks are of the per-class *sums* at one instant.
* :func:`redis_bytes_per_user` sums ``MEMORY USAGE`` over a random sample of the profile hashes
  (scaled to all of them) plus every audience set (exact), divided by the number of profiles.
* :func:`flink_state_bytes` reads the latest completed checkpoint's size from Flink's REST API.
* :func:`tail_rate`: events/s over the last seconds of a run; a contender that warms up for minutes (the
  online models: JIT, caches) is faster there than its average says.

>>> s = ProcessTreeSampler([os.getpid()]); cpu = s.sample(); cpu >= 0 and s.peak_rss_mb["python"] > 0
True
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from connectors.flink_rest import FlinkRest, FlinkRestError
from connectors.redis_reader import RedisReader

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def tail_rate(samples: list[tuple[float, int]], seconds: float) -> int | None:
    """Events/s over the last ``seconds`` of ``(time, count)`` samples (in time order); None if they
    span less than twice that (the tail would be most of the run).

    >>> tail_rate([(0.0, 0), (10.0, 100), (20.0, 300), (30.0, 600)], 10)
    30
    >>> tail_rate([(0.0, 0), (10.0, 100)], 10) is None
    True
    """
    if not samples or samples[-1][0] - samples[0][0] < 2 * seconds:
        return None
    t_end, n_end = samples[-1]
    t_start, n_start = next((t, n) for t, n in reversed(samples) if t_end - t >= seconds)
    return round((n_end - n_start) / (t_end - t_start))


class ProcessTreeSampler:
    def __init__(self, roots: list[int]) -> None:
        self.roots = list(roots)
        self._cpu: dict[int, float] = {}  # pid -> last utime+stime seen (s)
        self.peak_rss_mb = {"jvm": 0.0, "python": 0.0, "other": 0.0}

    def add_root(self, pid: int) -> None:
        if pid not in self.roots:
            self.roots.append(pid)

    def sample(self) -> float:
        """Read every process of the trees now; returns the CPU seconds used so far."""
        rss = {"jvm": 0.0, "python": 0.0, "other": 0.0}
        for pid in self._tree():
            stat = _stat(pid)
            if stat is None:
                continue
            comm, cpu_s, rss_pages = stat
            self._cpu[pid] = cpu_s
            rss[_kind(pid, comm)] += rss_pages * _PAGE / 2**20
        for kind, mb in rss.items():
            self.peak_rss_mb[kind] = max(self.peak_rss_mb[kind], mb)
        return self.cpu_s()

    def cpu_s(self) -> float:
        return sum(self._cpu.values())

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        seen, todo = [], [p for p in self.roots if os.path.exists(f"/proc/{p}")]
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.append(pid)
                todo.extend(children.get(pid, ()))
        return seen


def _stat(pid: int) -> tuple[str, float, int] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime = field 14, stime = 15, rss = 24
    return comm, (int(fields[11]) + int(fields[12])) / _TICK, int(fields[21])


def _kind(pid: int, comm: str) -> str:
    # The executable, not the command name: a console script (``pytest``, ``faust``) is Python too.
    try:
        program = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        program = comm
    if program == "java":
        return "jvm"
    if program.startswith("python"):
        return "python"
    return "other"


def redis_bytes_per_user(stored: RedisReader, sample: int = 2_000) -> dict:
    """``MEMORY USAGE`` of one contender's Redis keys, per user (user = one profile hash).

    Profiles: a random sample of up to ``sample`` keys, scaled to all; audience sets: every one, exactly
    (a set holds many users, so its bytes are shared among them). Key names are included: they are
    part of what a user costs.
    """
    profiles = stored.profile_keys()
    if not profiles:
        return {"users": 0, "profile_bytes": 0, "audience_bytes": 0, "bytes_per_user": None}
    picked = random.Random(0).sample(profiles, min(sample, len(profiles)))
    sampled = stored.memory_usage(picked)
    profile_bytes = sum(sampled) / len(sampled) * len(profiles)
    audience_bytes = sum(stored.memory_usage(stored.segment_keys()))
    return {
        "users": len(profiles),
        "profile_bytes": round(profile_bytes),
        "audience_bytes": audience_bytes,
        "bytes_per_user": round((profile_bytes + audience_bytes) / len(profiles), 1),
    }


def delete_prefix(stored: RedisReader) -> int:
    """Remove one contender's keys (bench prefixes only) so repeated runs do not fill the shared Redis."""
    if not stored.keys.prefix.startswith("bench-"):
        raise ValueError(f"refusing to delete keys outside a bench prefix: {stored.keys.prefix!r}")
    return stored.delete_all()


def flink_state_bytes(rest_url: str, job_id: str) -> dict | None:
    """Size of the job's latest completed checkpoint (full and, if incremental, checkpointed bytes)."""
    try:
        latest = FlinkRest(rest_url, timeout_s=5).latest_checkpoint(job_id)
    except FlinkRestError:
        return None
    if latest is None:
        return None
    return {
        "checkpoint_id": latest.checkpoint_id,
        "state_size": latest.state_size,
        "checkpointed_size": latest.checkpointed_size,
        "trigger_timestamp": latest.latest_ack_timestamp_ms or latest.trigger_timestamp_ms,
        "duration_ms": latest.duration_ms,
    }
