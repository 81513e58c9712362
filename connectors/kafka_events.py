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
- :class:`connectors.kafka_bulk.BulkPublisher`: for files and simulations. Builds record batches in the
  caller's thread with aiokafka's compiled batch builder (~3 µs per record) and ships them through an
  aiokafka producer on a private event-loop thread; same partitioning (murmur2 of the key), acks=all,
  idempotence and per-partition order. Delivery errors surface on ``flush``.

Two readers, neither in a consumer group: :func:`read_topic` (what a topic holds now, or the last
records of each partition) and :class:`TopicFollower` (what reaches it from now on).

kafka-python checksums batches with CRC-32C in pure Python (~0.3 µs per byte) unless the ``crc32c``
package is installed, which is why it is a dependency.

>>> event = {"type": "track", "userId": 42, "timestamp": "2017-11-26T01:00:00.000Z"}
>>> event_key(event), event_time_ms(event)
(b'42', 1511658000000)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.codec import has_lz4
from kafka.errors import KafkaError

from connectors.kafka_clients import KafkaTarget, kafka_cluster
from operators.normalize import epoch_ms
from settings.errors import TailorError
from state_schemas import dead_letter

if TYPE_CHECKING:
    from connectors.kafka_bulk import BulkPublisher

_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")


class KafkaUnavailable(TailorError):
    """The broker cannot be reached, a topic is missing, or a read did not complete in time."""


#: lz4 only when its library is installed (kafka-python needs the ``lz4`` package); else none:
#: on localhost the CPU spent compressing costs more than the bytes saved.
COMPRESSION = "lz4" if has_lz4() else None


def event_producer(kafka: KafkaTarget, **overrides: Any) -> KafkaProducer:
    """A producer tuned for throughput with full durability; ``overrides`` are KafkaProducer settings.

    acks=all with idempotence (no duplicates or reordering on retries), 10 ms linger and 512 KiB
    batches (a batch per partition per linger; half the default 1 MiB request size), lz4 if available.
    """
    cluster = kafka_cluster(kafka)
    config: dict[str, Any] = {
        **cluster.python_options(),
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
            f"cannot reach Kafka on {cluster.bootstrap} ({exc}): start the local stack (stack.up)"
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
    ms = epoch_ms(raw)
    return ms if ms is not None and ms >= 0 else None


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




class TopicRecord(NamedTuple):
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp: int  # epoch ms


def assign_all_partitions(consumer: KafkaConsumer, topic: str, wait_s: float = 0.0) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to ``consumer`` (no group, so no join racing the topic's
    metadata); waits up to ``wait_s`` for a just-created topic. Raises :class:`KafkaUnavailable`."""
    deadline = time.monotonic() + wait_s
    partitions = consumer.partitions_for_topic(topic)
    while not partitions:
        if time.monotonic() >= deadline:
            raise KafkaUnavailable(f"topic {topic!r} does not exist (no partitions) on this broker; "
                                   "create it first (tailor stack up creates the default topics)")
        time.sleep(0.2)
        partitions = consumer.partitions_for_topic(topic)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    return assigned


def read_topic(
    kafka: KafkaTarget,
    topic: str,
    isolation: str = "read_committed",
    timeout_s: float = 10.0,
    tail: int | None = None,
    since_ms: int | None = None,
) -> list[TopicRecord]:
    """Every record in ``topic`` now, sorted by (partition, offset); no consumer group, no commits.

    Assigns all partitions, seeks to the beginning (with ``tail``: to the last ``tail`` offsets of each
    partition; with ``since_ms``: to the first record stamped at or after it, by the broker's time index,
    so the records before it are never fetched) and reads until the end offsets taken at the start.
    Under ``read_committed`` those end offsets are the last stable offsets (the broker answers ListOffsets
    with the LSO), so open transactions do not make the read wait and aborted records are skipped (their
    offsets, like those of transaction markers, still count towards ``tail``). Raises
    :class:`KafkaUnavailable` if the topic does not exist or the read does not finish within ``timeout_s``.
    """
    consumer = _consumer(kafka, "tailor-read-topic", isolation)
    try:
        tps = assign_all_partitions(consumer, topic)
        deadline = time.monotonic() + timeout_s
        end = consumer.end_offsets(tps)
        if since_ms is not None:
            found = consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            for tp in tps:  # None: nothing that recent in this partition
                consumer.seek(tp, end[tp] if found.get(tp) is None else found[tp].offset)
        elif tail is None:
            consumer.seek_to_beginning()
        else:
            start = consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(start[tp], end[tp] - tail))
        records = _read_to(consumer, end, deadline)
    except KafkaError as exc:
        raise KafkaUnavailable(f"reading {topic!r} from {kafka_cluster(kafka).bootstrap} failed: {exc}") from None
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


class TopicFollower:
    """The records that reach ``topic`` from now on, every partition; no consumer group, no commits.

    The end of each partition is resolved before the constructor returns, so nothing published after
    that is missed. Fetches return as soon as a record is there (20 ms wait, not kafka-python's 500):
    followers time arrivals. Raises :class:`KafkaUnavailable` if the topic does not appear within
    ``wait_s``.
    """

    def __init__(
        self, kafka: KafkaTarget, topic: str, isolation: str = "read_committed", wait_s: float = 30.0
    ) -> None:
        self._consumer = _consumer(kafka, "tailor-follow", isolation, fetch_max_wait_ms=20)
        try:
            assigned = assign_all_partitions(self._consumer, topic, wait_s)
            self._consumer.seek_to_end(*assigned)
            for tp in assigned:
                self._consumer.position(tp)
        except KafkaError as exc:
            self._consumer.close()
            raise KafkaUnavailable(f"following {topic!r} on {kafka_cluster(kafka).bootstrap} failed: {exc}") from None
        except BaseException:
            self._consumer.close()
            raise

    def poll(self, timeout_s: float) -> list[TopicRecord]:
        """What arrived, in offset order per partition; empty if nothing did within ``timeout_s``."""
        batches = self._consumer.poll(timeout_ms=max(1, int(timeout_s * 1000)))
        return [_record(r) for batch in batches.values() for r in batch]

    def close(self) -> None:
        self._consumer.close()


def _consumer(kafka: KafkaTarget, name: str, isolation: str, **overrides: Any) -> KafkaConsumer:
    cluster = kafka_cluster(kafka)
    try:
        return KafkaConsumer(
            **cluster.python_options(),
            client_id=f"{name}-{uuid.uuid4().hex[:8]}",
            group_id=None,
            enable_auto_commit=False,
            isolation_level=isolation,
            metrics_enabled=False,
            bootstrap_timeout_ms=10_000,
            **overrides,
        )
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"cannot reach Kafka on {cluster.bootstrap} ({exc}): start the local stack (stack.up)"
        ) from None


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


def _record(r: Any) -> TopicRecord:
    return TopicRecord(r.key, r.value, r.partition, r.offset, r.timestamp)
