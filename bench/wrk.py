"""wrk (Debian's package), the HTTP load tool of the service benchmarks: installed if missing, run, parsed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from stack import apt


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        apt.install(["wrk"], "the HTTP benchmarks need wrk")


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    """One wrk run (one thread, ``connections`` connections, the Lua ``script``); its parsed numbers."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    return parse_wrk(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, 2xx requests and the latency percentiles of ``wrk --latency`` output.

    >>> stats = parse_wrk('''    Latency     5.11ms    7.76ms  71.79ms   95.83%
    ...   Latency Distribution
    ...      50%    3.15ms
    ...      75%    4.01ms
    ...      90%    5.88ms
    ...      99%   52.60ms
    ...   20860 requests in 10.01s, 2.98MB read
    ...   Non-2xx or 3xx responses: 10
    ... Requests/sec:   2084.51''')
    >>> stats["ok_requests"], stats["p99_ms"], stats["max_ms"]
    (20850, 52.6, 71.79)
    """
    percentiles = {f"p{p}_ms": float(v) * _UNITS[unit]
                   for p, v, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", text, re.M)
    maximum = float(latency.group(1)) * _UNITS[latency.group(2)] if latency else float("nan")
    return {"requests_per_s": rate, "requests": total, "ok_requests": total - (int(bad.group(1)) if bad else 0),
            "max_ms": maximum, **percentiles}
