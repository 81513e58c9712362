"""The fault suite's tools: a workload, its expected output, the real job under a fault, and the diff.

Expected output comes from the job's own per-user step driven in one process
(``operators.segmenter.Segmenter``) over the same records in the same per-user order, with every timer
fired at the end, as the bounded job's final watermark does. Per user the outcome does not depend on
when timers fire (the contract suite checks it), so a job run under any fault must emit exactly these
changes: the comparison counts records lost and duplicated, double enters and exits, and the difference
between Redis and the Kafka change log. The job's own output is read ``read_committed`` (what a
downstream consumer sees).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka.partitioner.default import murmur2

from connectors import flink_state
from connectors.kafka_events import event_key, event_producer, read_topic
from connectors.redis_reader import RedisReader
from evaluation.simulator import ShopperSimulator
from operators.segment_rules import SegmentRules
from operators.segmenter import Segmenter
from pipelines.state_layout import state_dirs
from settings import PROJECT_ROOT, Settings
from stack import local_job
from state_schemas import dead_letter, segment_change

RULES_FILE = PROJECT_ROOT / "config" / "segments.yaml"
DAY = 86_400_000
END_OF_TIME = 2**63 - 1  # the bounded job's final watermark
# A broker restarted after SIGKILL recovers every partition's log before it opens its port: with the
# ~3,700 partitions a day of test runs leaves on a local broker, on 2 loaded cores, that took over the
# 60 s a clean start is given.
BROKER_RECOVERY_S = 180.0
Change = tuple[str, str, str, int]  # (segment, enter|exit, trigger, event_time)


@dataclass
class Record:
    key: bytes | None
    value: bytes | None  # None: a tombstone
    timestamp: int


@dataclass
class Workload:
    records: list[Record] = field(default_factory=list)

    def __add__(self, other: Workload) -> Workload:
        return Workload(self.records + other.records)

    def interleave(self, other: Workload, every: int) -> Workload:
        """``other``'s records spread into this one, one after every ``every`` of ours."""
        mixed, extra = [], iter(other.records)
        for i, record in enumerate(self.records, start=1):
            mixed.append(record)
            if i % every == 0:
                mixed.extend(r for r in [next(extra, None)] if r is not None)
        mixed.extend(extra)
        return Workload(mixed)


def simulated(count: int, users: int, seed: int, start_ms: int, rate: float = 200.0) -> Workload:
    sim = ShopperSimulator(seed=seed, users=users)
    return Workload([
        Record(event_key(event), orjson.dumps(event), ts) for ts, event in sim.timed_events(start_ms, rate, count)
    ])


def long_span(months: int, per_month: int, users: int, end_ms: int) -> Workload:
    """Bursts of simulated shopping, one per month for ``months`` months ending near ``end_ms``, by the
    same population of users: tenures, recency tiers and model inputs over a years-long span."""
    first = end_ms - months * 30 * DAY
    bursts = [simulated(per_month, users, seed=100 + m, start_ms=first + m * 30 * DAY) for m in range(months)]
    return sum(bursts[1:], bursts[0])


def publish(settings: Settings, workload: Workload, hold: Callable[[int], bool] = lambda p: False) -> Workload:
    """Send the records (keyed, stamped) to the events topic; records whose partition ``hold`` picks are
    not sent but returned, to be sent later (a partition that lags)."""
    producer = event_producer(settings.kafka_bootstrap, client_id="fault-suite")
    partitions = len(producer.partitions_for(settings.events_topic))
    held = []
    try:
        for r in workload.records:
            partition = (murmur2(r.key) & 0x7FFFFFFF) % partitions if r.key is not None else 0
            if hold(partition):
                held.append(r)
            else:
                producer.send(settings.events_topic, r.value, key=r.key, partition=partition, timestamp_ms=r.timestamp)
        producer.flush(timeout=60)
    finally:
        producer.close()
    return Workload(held)


def reference(workload: Workload, until: int = END_OF_TIME) -> dict[str, list[Change]]:
    """Expected rule changes per user: the job's step over the records, every timer fired at the end."""
    segmenter = Segmenter(SegmentRules.from_yaml(RULES_FILE), out_of_orderness_ms=None)
    expected: dict[str, list[Change]] = defaultdict(list)
    for r in workload.records:
        for e in segmenter.process(r.value):  # type: ignore[arg-type]
            expected[e.user_id].append(_change(e.change))
    for e in segmenter.advance_watermark(until):
        expected[e.user_id].append(_change(e.change))
    return dict(expected)


def _change(c: segment_change.SegmentChange) -> Change:
    return (c.segment, c.change, c.trigger, c.event_time)


# -- the job -----------------------------------------------------------------------------------------
class JobProcess:
    """``tailor job run`` in a child process, as a user starts it, started and killed at will."""

    def __init__(
        self, settings: Settings, log_dir: Path, bounded: bool = True, rules_file: Path = RULES_FILE,
        **spawn_flags: bool,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.settings, self.log_file, self.bounded = settings, log_dir / "job.log", bounded
        self.rules_file = rules_file
        self.spawn_flags = spawn_flags
        self.child: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> JobProcess:
        self.child = local_job.spawn(
            self.settings, self.rules_file, self.log_file, bounded=self.bounded, **self.spawn_flags)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL, like the OOM killer or a lost machine; returns once the embedded cluster is gone too."""
        assert self.child is not None
        os.kill(self.child.pid, signal.SIGKILL)
        self.child.wait()
        wait_until(lambda: _port_free(self.settings.rest_port), 60, "the killed job's Web UI port to be released")

    def kill_after_checkpoints(self, kills: int) -> None:
        """``kills`` times: wait for a new completed checkpoint, SIGKILL, start again with the same command."""
        for _ in range(kills):
            self.wait_for_new_checkpoint()
            assert self.child is not None and self.child.poll() is None, "the replay ended before it could be killed"
            self.kill()
            self.start()

    def wait(self, timeout_s: float = 600) -> None:
        assert self.child is not None
        code = self.child.wait(timeout=timeout_s)
        assert code == 0, f"the job exited with {code}; log tail:\n{self.log_tail()}"

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_new_checkpoint(self, timeout_s: float = 180) -> None:
        """Until a checkpoint completes after this call; fails at once, with the job's log, if the job
        process exits first, and with the checkpoint lines of Flink's log if none completes in time."""
        dirs, since = state_dirs(self.settings), time.time()

        def written() -> bool:
            assert self.child is not None and self.child.poll() is None, (
                f"the job exited ({self.child and self.child.returncode}) before a new checkpoint; log tail:\n"
                f"{self.log_tail()}"
            )
            newest = flink_state.newest(dirs.checkpoints, dirs.savepoints)
            return newest is not None and newest.written_at > since

        try:
            wait_until(written, timeout_s, "a new completed checkpoint")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; Flink's checkpoint log:\n{self.checkpoint_log()}") from None

    def checkpoint_log(self, lines: int = 30) -> str:
        """The last checkpoint lines (triggered, completed, declined, failed) of Flink's log of the latest run."""
        found = [
            line for log in self.log_file.parent.glob("flink-*.log")
            for line in log.read_text(errors="replace").splitlines() if "heckpoint" in line
        ]
        return "\n".join(found[-lines:]) or "(no checkpoint lines)"

    def restarts(self) -> int:
        """Times Flink restarted the job after a failure in the latest run of the process (Flink's own log,
        which ``spawn`` puts beside ours; not our own restarts of the process)."""
        logs = list(self.log_file.parent.glob("flink-*.log"))
        assert logs, f"no Flink log next to {self.log_file}"
        return sum(log.read_text(errors="replace").count("switched from state RUNNING to RESTARTING") for log in logs)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# -- the comparison ----------------------------------------------------------------------------------
@dataclass
class Outcome:
    lost: int
    duplicated: int
    double_enters: int
    double_exits: int
    redis_diff: int

    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.double_enters or self.double_exits or self.redis_diff)


def job_changes(settings: Settings) -> tuple[dict[str, list[Change]], list[dict]]:
    """Rule changes per user as a ``read_committed`` consumer sees them, and the cluster changes."""
    got: dict[str, list[Change]] = defaultdict(list)
    clusters = []
    for record in read_topic(settings.kafka_bootstrap, settings.segment_changes_topic, timeout_s=120):
        c = segment_change.decode(record.value)
        if c["kind"] == "rule":
            got[c["user_id"]].append((c["segment"], c["change"], c["trigger"], c["event_time"]))
        else:
            clusters.append(c)
    return dict(got), clusters


def dead_letters(settings: Settings) -> list[dict]:
    return [dead_letter.decode(r.value) for r in read_topic(settings.kafka_bootstrap, settings.dead_letters_topic)]


def compare(settings: Settings, expected: dict[str, list[Change]], got: dict[str, list[Change]]) -> Outcome:
    lost = duplicated = 0
    for user in expected.keys() | got.keys():
        want, have = Counter(expected.get(user, [])), Counter(got.get(user, []))
        lost += sum((want - have).values())
        duplicated += sum((have - want).values())
    double_enters = double_exits = 0
    members: dict[str, set[str]] = defaultdict(set)  # user -> segments, per the change log
    for user, changes in got.items():
        for segment, change, _, _ in changes:
            if change == "enter":
                double_enters += segment in members[user]
                members[user].add(segment)
            else:
                double_exits += segment not in members[user]
                members[user].discard(segment)
    users = expected.keys() | got.keys()
    return Outcome(lost, duplicated, double_enters, double_exits, redis_diff(settings, members, users))


def redis_diff(settings: Settings, members: dict[str, set[str]], users: set[str]) -> int:
    """(user, segment) memberships of ``users`` on which Redis (audience sets, profile hashes) and the
    change log differ."""
    audiences: dict[str, set[str]] = defaultdict(set)
    for user, segments in members.items():
        for segment in segments:
            audiences[segment].add(user)
    with RedisReader(settings.redis_host, settings.redis_port, settings.redis_prefix) as stored:
        diff = 0
        rule_segments = {rule.name for rule in SegmentRules.from_yaml(RULES_FILE).rules}  # not ML segments
        for segment in set(audiences) | (set(stored.segments()) & rule_segments):
            diff += len((stored.audience(segment) & users) ^ audiences.get(segment, set()))
        for user, segments in members.items():
            profile = stored.profile(user).get("segments", "")
            diff += len(set(filter(None, profile.split(","))) ^ segments)
    return diff


def hostile_payloads() -> Iterable[bytes | None]:
    """Inputs that once crashed the job or could: deep nesting in every id field, a tombstone, numbers
    out of every range, broken encodings."""
    nested = "[" * 1000 + "]" * 1000
    for field_name in ("userId", "messageId", "timestamp"):
        yield ('{"type":"track","event":"Product Viewed","messageId":"m","userId":"u","timestamp":1,'
               f'"{field_name}":{nested}}}').encode()
    for prop in ("product_id", "category"):
        yield ('{"type":"track","event":"Product Added","messageId":"p","userId":"u",'
               f'"timestamp":"2026-01-01T00:00:00Z","properties":{{"{prop}":{nested}}}}}').encode()
    yield None
    yield b'{"type":"track","event":"x","messageId":"big","userId":"u","timestamp":1e400}'
    yield b'{"type":"track","event":"x","messageId":"big2","userId":"u","timestamp":' + b"9" * 400 + b"}"
    yield b'{"type":"track","event":"x","messageId":"nan","userId":"u","timestamp":NaN}'
    yield b'{"type":"track","event":"\xff","messageId":"bad-utf8","userId":"u","timestamp":1}'
    yield b"[" * 5000
    yield b"\x00" * 100
    yield b'{"type":"identify","messageId":"' + b"m" * 70_000 + b'"}'
