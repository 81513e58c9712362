"""Publish input events to Kafka and read topics back: the wire details of ``tailor.events``.

A record on the events topic is::

    key        userId, else anonymousId, as UTF-8 bytes (none if the event has neither): one user's
               events land on one partition, in order
    value      the Segment-Spec message as UTF-8 JSON, exactly as the client sent it
    timestamp  the event's own time in epoch ms (``timestamp``, else ``originalTimestamp``, else
               ``sentAt``); the send time if the event has none we can read

**The record timestamp matters**: the segmentation job takes event time and watermarks from the Kafka
record timestamps (``WatermarkStrategy`` on the ``KafkaSource``), not from the JSON, so the Flink
source never parses payloads. A producer that leaves the timestamp to the client gets *send* time, and
a replay of 2017 data would then look like a burst happening now.

Dead letters (``state_schemas.dead_letter``) carry no key; their timestamp is the rejection time.

Two publishers, both accepted by the ``publish_*`` helpers (same ``send`` signature):

- :func:`event_producer`: a kafka-python ``KafkaProducer``; per-record futures. kafka-python builds
  records in pure Python: ~50 µs of CPU per record, so one process tops out near 15k records/s here.
- :class:`BulkPublisher`: for files and simulations. Builds record batches in the caller's thread with
  aiokafka's compiled batch builder (~3 µs per record) and ships them through an aiokafka producer on
  a private event-loop thread; same partitioning (murmur2 of the key), acks=all, idempotence and
  per-partition order. Delivery errors surface on ``flush``.

kafka-python also checksums batches with CRC-32C in pure Python (~0.3 µs per byte) unless the optional
``crc32c`` package is installed. When it is missing, this module plugs in the compiled CRC-32C that
aiokafka ships, after checking it against the standard check value (:data:`CRC32C_IMPLEMENTATION`).
aiokafka comes with faust-streaming.

>>> event = {"type": "track", "userId": 42, "timestamp": "2017-11-26T01:00:00.000Z"}
>>> event_key(event), event_time_ms(event)
(b'42', 1511658000000)
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Coroutine, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.codec import has_lz4
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from operators.errors import TailorError
from state_schemas import dead_letter

_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")


class KafkaUnavailable(TailorError):
    """The broker cannot be reached, a topic is missing, or a read did not complete in time."""


def _install_fast_crc32c() -> str:
    """Make kafka-python use a compiled CRC-32C; returns which implementation is in use."""
    import kafka.record.default_records as records
    import kafka.record.util as util

    if getattr(util, "crc32c_c", None) is not None:
        return "crc32c"
    try:
        from aiokafka.record._crecords.cutil import crc32c_cython
    except ImportError:
        return "pure-python"
    if crc32c_cython(b"123456789") != 0xE3069283:  # the CRC-32C (Castagnoli) check value
        return "pure-python"
    records.calc_crc32c = crc32c_cython  # imported by name there: both batch writing and CRC checks
    return "aiokafka"


#: "crc32c" (the optional package), "aiokafka" (its compiled helper) or "pure-python" (slow).
CRC32C_IMPLEMENTATION = _install_fast_crc32c()

#: lz4 only when its library is installed (kafka-python needs the ``lz4`` package); else none:
#: on localhost the CPU spent compressing costs more than the bytes saved.
COMPRESSION = "lz4" if has_lz4() else None


def event_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A producer tuned for throughput with full durability; ``overrides`` are KafkaProducer settings.

    acks=all with idempotence (no duplicates or reordering on retries), 10 ms linger and 512 KiB
    batches (a batch per partition per linger; half the default 1 MiB request size), lz4 if available.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": "tailor-producer",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 10,
        "batch_size": 512 * 1024,
        "compression_type": COMPRESSION,
        "metrics_enabled": False,  # per-record sensor updates cost ~5% and nobody reads them here
        "max_block_ms": 30_000,
        "bootstrap_timeout_ms": 10_000,
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"cannot reach Kafka on {bootstrap} ({exc}): start the local stack (tailor.stack.up)"
        ) from None


def event_key(event: Mapping[str, Any]) -> bytes | None:
    """The record key: ``userId``, else ``anonymousId``, as UTF-8 bytes; None if neither is set."""
    user = event.get("userId")
    if user is None or user == "":
        user = event.get("anonymousId")
        if user is None or user == "":
            return None
    return str(user).encode()


def event_time_ms(event: Mapping[str, Any]) -> int | None:
    """The event's time in epoch ms, read the way ``operators.normalize`` reads it; None if unreadable.

    >>> event_time_ms({"timestamp": 1511658000123}), event_time_ms({"sentAt": "2017-11-26T09:00:00+08:00"})
    (1511658000123, 1511658000000)
    >>> event_time_ms({"timestamp": "yesterday"}) is None
    True
    """
    for field in _TIME_FIELDS:
        raw = event.get(field)
        if raw is not None:
            break
    else:
        return None
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        ms = int(raw)
    elif isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        ms = int(parsed.timestamp() * 1000)
    else:
        return None
    return ms if ms >= 0 else None


def publish_event(
    producer: KafkaProducer | BulkPublisher,
    topic: str,
    event: Mapping[str, Any],
    timestamp_ms: int | None = None,
) -> Any:
    """Send one event dict as JSON, keyed by user, stamped with its event time (or ``timestamp_ms``).

    Returns kafka-python's future (None from a :class:`BulkPublisher`, whose ``flush`` raises errors).
    """
    return producer.send(
        topic,
        orjson.dumps(event),
        key=event_key(event),
        timestamp_ms=event_time_ms(event) if timestamp_ms is None else timestamp_ms,
    )


def publish_raw(
    producer: KafkaProducer | BulkPublisher,
    topic: str,
    raw: bytes,
    key: bytes | None = None,
    timestamp_ms: int | None = None,
) -> Any:
    """Send bytes as they are (payloads the job must judge, including invalid ones)."""
    return producer.send(topic, raw, key=key, timestamp_ms=timestamp_ms)


def publish_dead_letter(
    producer: KafkaProducer | BulkPublisher,
    topic: str,
    error: str,
    reason: str,
    original: bytes | str,
    source: str,
) -> Any:
    """Send a ``tailor.dead_letter/1`` record: ``error`` code, human ``reason``, the original, its source."""
    now_ms = int(time.time() * 1000)
    return producer.send(
        topic, dead_letter.encode(error, reason, original, source, now_ms), timestamp_ms=now_ms
    )


_Slot = tuple[str, int]  # (topic, partition)


class BulkPublisher:
    """Publish many records fast from plain (non-async) code; ``send`` has ``KafkaProducer.send``'s signature.

    Records are appended to one open batch per (topic, partition) in the caller's thread. A batch is
    shipped when full, when it is ``linger_ms`` old (a timer on the event-loop thread), or on ``flush``.
    Shipped batches of a partition are handed to Kafka strictly in order, one at a time, so per-key
    order holds; once ``max_pending`` batches await acks, ``send`` waits (back-pressure). Keyed records
    go to ``murmur2(key) % partitions`` like every Kafka client's default partitioner; unkeyed ones
    stick to one partition per batch. ``flush`` waits for every ack and raises :class:`KafkaUnavailable`
    if any record was not stored; ``close`` (also on leaving a ``with`` block) delivers what is left.
    """

    def __init__(
        self,
        bootstrap: str,
        linger_ms: int = 10,
        batch_size: int = 512 * 1024,
        max_pending: int = 16,
        client_id: str = "tailor-bulk-publisher",
    ) -> None:
        self.bootstrap = bootstrap
        self.linger_ms = linger_ms
        self.max_pending = max_pending
        self._lock = threading.Lock()  # guards _open and _shipped (caller thread and loop thread)
        self._open: dict[_Slot, tuple[Any, float]] = {}  # slot -> (batch being filled, opened at)
        self._shipped: dict[_Slot, deque[Any]] = defaultdict(deque)  # full batches, in order
        self._acked = threading.Condition()  # guards the counters below
        self._pending = 0  # batches shipped and not yet acknowledged
        self._failed = 0
        self._errors: list[BaseException] = []
        self._partitions: dict[str, int] = {}
        self._sticky: dict[str, int] = {}
        self._hashes: dict[bytes, int] = {}
        self._turns: dict[_Slot, asyncio.Lock] = {}  # loop thread only
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=client_id, daemon=True)
        self._thread.start()
        try:
            self._producer = self._call(self._start(client_id, batch_size), timeout=20)
        except BaseException:
            self._stop_loop()
            raise

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        if self._closed:
            raise KafkaUnavailable("BulkPublisher.send after close")
        if partition is None:
            partition = self._partition_for(topic, key)
        if timestamp_ms is None:
            timestamp_ms = int(time.time() * 1000)
        slot = (topic, partition)
        with self._lock:
            entry = self._open.get(slot)
            fresh = entry is None
            if entry is None:
                entry = self._open[slot] = (self._producer.create_batch(), time.monotonic())
            batch = entry[0]
            if batch.append(timestamp=timestamp_ms, key=key, value=value, headers=headers or []) is not None:
                return
            if fresh:
                del self._open[slot]
                size = len(value or b"") + len(key or b"")
                raise KafkaUnavailable(f"a record of {size:,} bytes does not fit in an empty batch")
            self._ship_locked(slot)  # full: ship it, then start the next batch with this record
        self._schedule([slot])
        with self._acked:
            self._acked.wait_for(lambda: self._pending < self.max_pending)
        self.send(topic, value, key, headers, partition, timestamp_ms)

    def flush(self, timeout_s: float = 120.0) -> None:
        """Ship every open batch, wait for all acks; raise if Kafka did not store some records."""
        with self._lock:
            slots = list(self._open)
            for slot in slots:
                self._ship_locked(slot)
        self._schedule(slots)
        with self._acked:
            if not self._acked.wait_for(lambda: self._pending == 0, timeout_s):
                raise KafkaUnavailable(
                    f"{self._pending} batches not acknowledged by {self.bootstrap} in {timeout_s:.0f} s"
                )
            failed, errors, self._failed, self._errors = self._failed, self._errors, 0, []
        if failed:
            raise KafkaUnavailable(
                f"Kafka on {self.bootstrap} did not store {failed:,} records (first error: {errors[0]!r})"
            )

    def close(self) -> None:
        """Deliver what is left (errors are dropped here: call ``flush`` first to see them), then stop."""
        if self._closed:
            return
        try:
            self.flush()
        except KafkaUnavailable:
            pass
        finally:
            self._closed = True
            try:
                self._call(self._shutdown(), timeout=30)
            finally:
                self._stop_loop()

    def __enter__(self) -> BulkPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- partitioning --------------------------------------------------------------------------------
    def _partition_for(self, topic: str, key: bytes | None) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = self._count_partitions(topic)
        if key is None:
            return self._sticky.setdefault(topic, 0) % count
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) > 1_000_000:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return hashed % count

    def _count_partitions(self, topic: str) -> int:
        try:
            partitions = self._call(self._partitions_of(topic), timeout=15)
        except Exception as exc:
            raise KafkaUnavailable(f"cannot read topic metadata from {self.bootstrap}: {exc!r}") from None
        if not partitions:
            raise KafkaUnavailable(
                f"topic {topic!r} does not exist on {self.bootstrap}: create it first "
                "(`tailor topics create`); the broker does not auto-create topics"
            )
        return len(partitions)

    async def _partitions_of(self, topic: str) -> set[int] | None:
        # One metadata round trip; aiokafka's partitions_for() would retry (and log) until it times out.
        metadata = await self._producer.client.fetch_all_metadata()
        return metadata.partitions_for_topic(topic)

    # -- shipping ------------------------------------------------------------------------------------
    def _ship_locked(self, slot: _Slot) -> None:
        """Move the slot's open batch to its shipping queue; caller holds ``_lock`` (this fixes the order)."""
        batch, _opened = self._open.pop(slot)
        self._shipped[slot].append(batch)
        with self._acked:
            self._pending += 1
        topic, partition = slot
        if self._sticky.get(topic) == partition:  # unkeyed records move on to the next partition
            self._sticky[topic] = partition + 1

    def _schedule(self, slots: list[_Slot]) -> None:
        for slot in slots:
            if threading.current_thread() is self._thread:
                self._loop.create_task(self._deliver(slot))
            else:
                asyncio.run_coroutine_threadsafe(self._deliver(slot), self._loop)

    async def _deliver(self, slot: _Slot) -> None:
        """Hand the slot's oldest shipped batch to aiokafka (one at a time per slot), await its ack."""
        batch = None
        try:
            async with self._turns.setdefault(slot, asyncio.Lock()):
                with self._lock:
                    batch = self._shipped[slot].popleft()
                delivered = await self._producer.send_batch(batch, slot[0], partition=slot[1])
            await delivered
        except Exception as exc:
            with self._acked:
                self._failed += batch.record_count() if batch is not None else 0
                self._errors.append(exc)
        finally:
            with self._acked:
                self._pending -= 1
                self._acked.notify_all()

    async def _linger(self) -> None:
        """Ship batches older than ``linger_ms``, so a slow or pausing sender still delivers promptly."""
        while True:
            await asyncio.sleep(self.linger_ms / 2000)
            due = time.monotonic() - self.linger_ms / 1000
            with self._lock:
                ripe = [slot for slot, (_batch, opened) in self._open.items() if opened <= due]
                for slot in ripe:
                    self._ship_locked(slot)
            self._schedule(ripe)

    # -- the event-loop thread -----------------------------------------------------------------------
    async def _start(self, client_id: str, batch_size: int) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=self.linger_ms,
            max_batch_size=batch_size,
            max_request_size=max(1024 * 1024, 2 * batch_size),
            compression_type=COMPRESSION,
        )
        try:
            await producer.start()
        except Exception as exc:
            await producer.stop()
            raise KafkaUnavailable(
                f"cannot reach Kafka on {self.bootstrap} ({exc}): start the local stack (tailor.stack.up)"
            ) from None
        self._linger_task = self._loop.create_task(self._linger())
        return producer

    async def _shutdown(self) -> None:
        self._linger_task.cancel()
        try:
            await self._linger_task
        except asyncio.CancelledError:
            pass
        await self._producer.stop()

    def _call(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


def bulk_publisher(bootstrap: str, **options: Any) -> BulkPublisher:
    """A :class:`BulkPublisher` (acks=all, idempotent, 10 ms linger, 512 KiB batches); use it in ``with``."""
    return BulkPublisher(bootstrap, **options)


class TopicRecord(NamedTuple):
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp: int  # epoch ms


def read_topic(
    bootstrap: str,
    topic: str,
    isolation: str = "read_committed",
    timeout_s: float = 10.0,
    from_beginning: bool = True,
) -> list[TopicRecord]:
    """Every record in ``topic`` now, sorted by (partition, offset); no consumer group, no commits.

    Assigns all partitions, seeks to the beginning and reads until the end offsets taken at the start.
    Under ``read_committed`` those end offsets are the last stable offsets (the broker answers
    ListOffsets with the LSO), so open transactions do not make the read wait and aborted records are
    skipped. With ``from_beginning=False`` it instead tails the topic for ``timeout_s`` seconds and
    returns what arrived. Raises :class:`KafkaUnavailable` if the topic does not exist or the read
    does not finish within ``timeout_s``.
    """
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=f"tailor-read-topic-{uuid.uuid4().hex[:8]}",
            group_id=None,
            enable_auto_commit=False,
            isolation_level=isolation,
            metrics_enabled=False,
            bootstrap_timeout_ms=10_000,
        )
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"cannot reach Kafka on {bootstrap} ({exc}): start the local stack (tailor.stack.up)"
        ) from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise KafkaUnavailable(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        deadline = time.monotonic() + timeout_s
        if from_beginning:
            consumer.seek_to_beginning()
            records = _read_to(consumer, consumer.end_offsets(tps), deadline)
        else:
            consumer.seek_to_end()
            records = _read_until(consumer, deadline)
    except KafkaError as exc:
        raise KafkaUnavailable(f"reading {topic!r} from {bootstrap} failed: {exc}") from None
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def _read_to(consumer: KafkaConsumer, end: dict[TopicPartition, int], deadline: float) -> list[TopicRecord]:
    """Records until each partition's position reaches ``end`` (control and aborted records advance it)."""
    records: list[TopicRecord] = []
    behind = {tp for tp, offset in end.items() if consumer.position(tp) < offset}
    while behind:
        left = deadline - time.monotonic()
        if left <= 0:
            got = {tp.partition: consumer.position(tp) for tp in behind}
            raise KafkaUnavailable(
                f"reading {next(iter(behind)).topic!r} timed out at offsets {got} (partition: offset) short "
                f"of the end offsets {({tp.partition: end[tp] for tp in behind})}; is the broker overloaded?"
            )
        for tp, batch in consumer.poll(timeout_ms=max(1, int(min(left, 0.5) * 1000))).items():
            records.extend(_record(r) for r in batch if r.offset < end[tp])
        behind = {tp for tp in behind if consumer.position(tp) < end[tp]}
    return records


def _read_until(consumer: KafkaConsumer, deadline: float) -> list[TopicRecord]:
    records: list[TopicRecord] = []
    while (left := deadline - time.monotonic()) > 0:
        for batch in consumer.poll(timeout_ms=max(1, int(min(left, 0.5) * 1000))).values():
            records.extend(_record(r) for r in batch)
    return records


def _record(r: Any) -> TopicRecord:
    return TopicRecord(r.key, r.value, r.partition, r.offset, r.timestamp)
