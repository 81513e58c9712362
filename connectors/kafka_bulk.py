"""Bulk publishing to Kafka from plain (non-async) code, for files and simulations.

kafka-python spends ~50 µs of CPU per ``send``; this builds record batches with aiokafka's compiled
batch builder (~3 µs per record) and ships them from a private event-loop thread, keeping Kafka's
default partitioning (murmur2 of the key), acks=all, idempotence and per-partition order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import Coroutine
from typing import Any

from kafka.partitioner.default import murmur2

from connectors.kafka_clients import KafkaTarget, kafka_cluster
from connectors.kafka_events import COMPRESSION, KafkaUnavailable

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
        kafka: KafkaTarget,
        linger_ms: int = 10,
        batch_size: int = 512 * 1024,
        max_pending: int = 16,
        client_id: str = "tailor-bulk-publisher",
    ) -> None:
        self.cluster = kafka_cluster(kafka)
        self.bootstrap = self.cluster.bootstrap
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
        except Exception as exc:  # noqa: BLE001 - whatever the client raises, the caller sees Kafka unavailable
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
        except Exception as exc:  # noqa: BLE001 - any failure of a batch counts it as not stored
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
            **self.cluster.aiokafka_options(),
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
        except Exception as exc:  # noqa: BLE001 - whatever start() raises, Kafka is unavailable to the caller
            await producer.stop()
            raise KafkaUnavailable(
                f"cannot reach Kafka on {self.bootstrap} ({exc}): start the local stack (stack.up)"
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


def bulk_publisher(kafka: KafkaTarget, **options: Any) -> BulkPublisher:
    """A :class:`BulkPublisher` (acks=all, idempotent, 10 ms linger, 512 KiB batches); use it in ``with``."""
    return BulkPublisher(kafka, **options)
