"""RedisAudienceWriter against a real ``redis-server`` that stalls (SIGSTOP), dies (SIGKILL) and restarts.

Each test starts its own servers on free ports in a temp dir (no Kafka, no Flink, not the stack's Redis):
a reference that never fails, and a victim. The same scripted writes go to a writer on each; after the
outage the victim must hold exactly what the reference holds, without an exception having escaped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.redis_audiences import RedisAudienceWriter
from connectors.redis_reader import Subscription
from state_schemas import segment_change
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import ENTER, EXIT, SegmentChange
from tests.private_redis import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.integration

WRITER_LOG = "connectors.redis_audiences"
T0 = 1_790_000_000_000
RULE_SEGMENTS = ["cart_abandoner", "hesitant_shopper", "frequent_buyer", "vip"]
CLUSTERS = ["Cart Fillers", "Window Shoppers", "Loyalists"]



@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``redis_server(**config)`` starts a fresh server (extra redis.conf directives as keywords)."""
    assert Path(REDIS_SERVER).exists(), "redis-server is not installed: `bin/tailor test` installs it"
    started: list[RedisServer] = []

    def start(**config: str) -> RedisServer:
        directory = tmp_path / f"redis-{len(started)}"
        directory.mkdir()
        server = RedisServer(directory, **config)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


# -- scripted writes ------------------------------------------------------------------------------------

Step = tuple[Any, ...]


def workload(steps: int, users: int = 300, seed: int = 7) -> list[Step]:
    """Rule changes with profile snapshots, cluster moves and recommendations for a few hundred users,
    so that the same keys and set members are written over and over (order matters for the result)."""
    rng = random.Random(seed)
    member_of: dict[str, set[str]] = defaultdict(set)
    cluster_of: dict[str, str] = {}
    out: list[Step] = []
    for i in range(steps):
        user, at, roll = f"user-{rng.randrange(users)}", T0 + i * 1_000, rng.random()
        if roll < 0.7:
            segment = rng.choice(RULE_SEGMENTS)
            kind = EXIT if segment in member_of[user] else ENTER
            member_of[user] ^= {segment}
            change = SegmentChange(user, segment, "rule", kind, "scripted", {"step": i}, "event", at, f"m-{i}")
            state = ProfileState(
                clock=at, last_seen=at, sessions_total=i % 7, purchases_total=i % 3,
                segments=[s for s in RULE_SEGMENTS if s in member_of[user]],
            )
            out.append(("write", user, state, [change], [segment_change.encode(change, at + 1)]))
        elif roll < 0.85:
            new = rng.choice(CLUSTERS)
            old = cluster_of.get(user)
            if old == new:
                continue
            cluster_of[user] = new
            changes = [SegmentChange(user, new, "cluster", ENTER, "scripted", {}, "event", at, f"m-{i}")]
            if old is not None:
                changes.insert(0, SegmentChange(user, old, "cluster", EXIT, "scripted", {}, "event", at, f"m-{i}"))
            out.append(("cluster", user, new, changes, [segment_change.encode(c, at + 1) for c in changes]))
        else:
            items = [{"item_id": f"item-{rng.randrange(1_000)}", "score": rng.random(), "source": "mf"}]
            out.append(("recs", user, orjson.dumps({"user_id": user, "items": items, "step": i})))
    return out


def apply(writer: RedisAudienceWriter, step: Step) -> None:
    kind, user, *rest = step
    if kind == "write":
        writer.write(user, *rest)
    elif kind == "cluster":
        writer.write_cluster_changes(user, *rest)
    else:
        writer.write_recommendations(user, *rest)


def published(steps: list[Step]) -> set[bytes]:
    """Every pub/sub payload the steps publish."""
    return {p for s in steps for p in ([s[2]] if s[0] == "recs" else s[4])}


def reference_contents(redis_server: Callable[..., RedisServer], steps: list[Step]) -> dict[bytes, Any]:
    """What a writer against a Redis that never fails leaves behind."""
    server = redis_server()
    writer = RedisAudienceWriter("127.0.0.1", server.port)
    for step in steps:
        apply(writer, step)
    writer.close()
    contents = server.contents()
    kinds = {key.split(b":")[1] for key in contents}
    assert kinds == {b"profile", b"segment", b"recs"}, "the workload must write every kind of key"
    return contents


def drain(writer: RedisAudienceWriter, timeout_s: float = 15.0) -> None:
    """Flush until Redis has taken everything (the writer retries only when called, after its backoff)."""
    deadline = time.monotonic() + timeout_s
    while writer.pending:
        assert time.monotonic() < deadline, f"{writer.pending} commands still buffered after {timeout_s} s"
        writer.flush()
        time.sleep(0.01)


def paced(writer: RedisAudienceWriter, steps: list[Step], seconds: float) -> None:
    """Apply ``steps`` spread evenly over ``seconds`` (and take at least that long)."""
    start = time.monotonic()
    for n, step in enumerate(steps):
        apply(writer, step)
        ahead = start + seconds * (n + 1) / len(steps) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == WRITER_LOG and r.levelno == level]


# -- the outages ---------------------------------------------------------------------------------------


def test_a_frozen_redis_stalls_nothing_and_converges_after_sigcont(redis_server, caplog):
    caplog.set_level(logging.INFO, logger=WRITER_LOG)
    steps = workload(6_000)
    expected = reference_contents(redis_server, steps)
    victim = redis_server()
    # Default timeouts (2 s socket, 1 s connect); a buffer that holds the whole outage, so this thread, which
    # also resumes Redis, never blocks (blocking has its own test below).
    writer = RedisAudienceWriter("127.0.0.1", victim.port, max_buffered=200_000)
    received: set[bytes] = set()
    listening = threading.Event()
    listening.set()
    subscription = Subscription("127.0.0.1", victim.port)

    def listen() -> None:
        while listening.is_set():
            message = subscription.get(0.1)
            if message is not None:
                received.add(message[1])

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    third = len(steps) // 3
    try:
        for step in steps[:third]:
            apply(writer, step)
        victim.freeze()
        paced(writer, steps[third : 2 * third], seconds=3.0)
        assert writer.pending > 0
        victim.thaw()
        for step in steps[2 * third :]:
            apply(writer, step)
        drain(writer)
        writer.close()

        assert victim.contents() == expected
        assert writer.flush_failures >= 1
        assert writer.commands_replayed > 0
        deadline = time.monotonic() + 10
        while not published(steps) <= received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert published(steps) - received == set(), "pub/sub is at-least-once"
    finally:
        listening.clear()
        listener.join(5)
        subscription.close()

    [unavailable] = messages(caplog, logging.WARNING)
    assert "unavailable" in unavailable
    [recovered] = messages(caplog, logging.INFO)
    assert "available again" in recovered and f"replayed {writer.commands_replayed} commands" in recovered


def test_a_killed_and_restarted_redis_converges(redis_server, caplog):
    caplog.set_level(logging.INFO, logger=WRITER_LOG)
    steps = workload(6_000, seed=11)
    expected = reference_contents(redis_server, steps)
    # With an AOF, what Redis acknowledged survives SIGKILL (written before the reply); the writer
    # replays what it has not seen acknowledged.
    victim = redis_server(appendonly="yes", appendfsync="always")
    writer = RedisAudienceWriter(
        "127.0.0.1", victim.port, socket_timeout_s=0.5, backoff_max_s=0.5, max_buffered=200_000
    )
    third = len(steps) // 3

    for step in steps[:third]:
        apply(writer, step)
    victim.kill()
    paced(writer, steps[third : 2 * third], seconds=1.0)
    assert writer.pending > 0 and not writer.available
    victim.start()  # same port, same directory: loads the AOF
    for step in steps[2 * third :]:
        apply(writer, step)
    drain(writer)
    writer.close()

    assert victim.contents() == expected
    assert writer.flush_failures >= 1 and writer.commands_replayed > 0
    assert len(messages(caplog, logging.WARNING)) == 1
    assert len(messages(caplog, logging.INFO)) == 1


def test_a_full_buffer_blocks_the_writer_until_redis_answers(redis_server, caplog):
    caplog.set_level(logging.INFO, logger=WRITER_LOG)
    steps = workload(600, seed=3)
    expected = reference_contents(redis_server, steps)
    victim = redis_server()
    writer = RedisAudienceWriter(
        "127.0.0.1", victim.port, max_batch=10, max_buffered=200, socket_timeout_s=0.3, backoff_max_s=0.1
    )
    for step in steps[:50]:
        apply(writer, step)
    errors: list[BaseException] = []
    done_at: list[float] = []

    def write_the_rest() -> None:
        try:
            for step in steps[50:]:
                apply(writer, step)
        except BaseException as exc:  # noqa: BLE001 -- reported by the test thread
            errors.append(exc)
        done_at.append(time.monotonic())

    victim.freeze()
    frozen_at = time.monotonic()
    writing = threading.Thread(target=write_the_rest, daemon=True)
    try:
        writing.start()
        time.sleep(1.5)
        assert writing.is_alive(), "the writer must block while its buffer is full"
        assert 200 <= writer.pending <= 205  # full; one write's commands at most over the bound
    finally:
        victim.thaw()
    thawed_at = time.monotonic()
    writing.join(10)

    assert not writing.is_alive() and errors == []
    assert done_at[0] - frozen_at >= 1.5
    assert done_at[0] - thawed_at < 1.5  # resumes within a socket timeout and a backoff of the SIGCONT
    assert writer.blocked_ms >= 1_000
    drain(writer)
    writer.close()
    assert victim.contents() == expected
    assert any("buffer full" in m for m in messages(caplog, logging.WARNING))


def test_close_gives_up_within_its_bound_when_redis_is_frozen(redis_server, caplog):
    caplog.set_level(logging.INFO, logger=WRITER_LOG)
    victim = redis_server()
    # Only close flushes: nothing is due before (no batch limit or delay reached).
    writer = RedisAudienceWriter(
        "127.0.0.1", victim.port, max_batch=10**6, max_delay_ms=10**9, close_timeout_s=1.0
    )
    writer.flush()
    for step in workload(100):
        apply(writer, step)
    buffered = writer.pending
    victim.freeze()
    try:
        started = time.monotonic()
        writer.close()
        took = time.monotonic() - started
    finally:
        victim.thaw()

    assert 0.9 <= took < 1.6  # its bound, not the 2 s socket timeout
    assert writer.pending == 0
    [dropped] = [m for m in messages(caplog, logging.WARNING) if "dropped" in m]
    assert f"dropped {buffered} buffered commands" in dropped
