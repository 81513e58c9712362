"""Create (and, for tests, delete or recreate) Tailor's Kafka topics.

The broker runs with ``auto.create.topics.enable=false``, so these are the only topics that exist:
a producer with a misspelt topic name fails instead of silently writing somewhere nobody reads.

Retention: every Tailor topic gets ``retention.ms=-1`` (keep forever). Kafka's time retention
compares the *record* timestamps with the wall clock, and replays of historical datasets carry their
original 2017 timestamps, so with the default 7 days the broker would delete a freshly replayed log
within one retention check (5 minutes). The topics derived from events (segment changes, dead
letters) inherit those event timestamps through Flink's Kafka sink, so they need the same setting.
On a local stack, disk use is bounded by the datasets we replay; delete or recreate topics to reclaim it.
In production set them per topic (settings ``events_retention_ms``, ``outputs_retention_ms`` for segment
changes and recommendations, ``dead_letters_retention_ms``): raw events and dead letters hold personal
data and should not outlive their use. The compacted catalog keeps the latest record per item.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from connectors.kafka_clients import kafka_cluster
from connectors.kafka_events import KafkaUnavailable
from settings import Settings

# The catalog holds the latest metadata per item id, the replay ledger one record per replayed messageId:
# compaction keeps one record per key forever.
COMPACTED_TOPIC_CONFIG = {"cleanup.policy": "compact"}


def replay_ledger_topic(settings: Settings) -> str:
    """The messageIds ``tailor dead-letters replay`` has re-submitted (compacted, keyed by messageId)."""
    return f"{settings.dead_letters_topic}.replayed"


def topic_config(settings: Settings, name: str) -> dict[str, str]:
    """The configuration a Tailor topic is created with.

    >>> s = Settings(events_retention_ms=604_800_000)
    >>> topic_config(s, s.events_topic), topic_config(s, s.segment_changes_topic)
    ({'retention.ms': '604800000'}, {'retention.ms': '-1'})
    >>> topic_config(s, replay_ledger_topic(s))
    {'cleanup.policy': 'compact'}
    """
    if name in (settings.catalog_topic, replay_ledger_topic(settings), settings.experiment_metrics_topic):
        return COMPACTED_TOPIC_CONFIG
    retention = {
        settings.events_topic: settings.events_retention_ms,
        settings.dead_letters_topic: settings.dead_letters_retention_ms,
        settings.model_updates_topic: settings.model_updates_retention_ms,
    }.get(name, settings.outputs_retention_ms)
    return {"retention.ms": str(retention)}


def tailor_topics(settings: Settings) -> list[str]:
    return [
        settings.events_topic, settings.segment_changes_topic, settings.dead_letters_topic,
        settings.recommendations_topic, settings.catalog_topic, settings.experiment_metrics_topic,
        settings.model_updates_topic,
    ]


def topic_partitions(settings: Settings, name: str, partitions: int | None = None) -> int:
    """How many partitions a Tailor topic is created with: ``partitions`` (default ``kafka_partitions``), but
    one for the model-updates topic, whose single order is the log every recommender replica applies.

    >>> s = Settings(kafka_partitions=4)
    >>> topic_partitions(s, s.events_topic), topic_partitions(s, s.model_updates_topic)
    (4, 1)
    """
    return 1 if name == settings.model_updates_topic else partitions or settings.kafka_partitions


@contextmanager
def admin_client(settings: Settings) -> Iterator:
    """A kafka-python admin client for the local broker, closed on exit; KafkaUnavailable if it is unreachable."""
    from kafka import KafkaAdminClient  # lazily: keep `import stack` light
    from kafka.errors import KafkaError

    cluster = kafka_cluster(settings)
    try:
        client = KafkaAdminClient(
            **cluster.python_options(),
            client_id="tailor-stack",
            bootstrap_timeout_ms=5000,
            request_timeout_ms=15000,
        )
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"cannot reach Kafka on {settings.kafka_bootstrap} ({type(exc).__name__}): "
            "start the broker (`tailor stack up` for the local one)"
        ) from None
    try:
        yield client
    finally:
        client.close()


def partition_counts(settings: Settings, names: Iterable[str] | None = None) -> dict[str, int]:
    """``{topic: partitions}`` for the named topics that exist (all Tailor topics by default)."""
    wanted = list(names) if names is not None else tailor_topics(settings)
    with admin_client(settings) as admin:
        existing = set(admin.list_topics())
        present = [n for n in wanted if n in existing]
        if not present:
            return {}
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(present)}


def ensure_topics(
    settings: Settings, names: Iterable[str] | None = None, partitions: int | None = None
) -> dict[str, str]:
    """Create the topics that are missing (all Tailor topics by default). Idempotent.

    Returns ``{topic: "created" | "exists" | "exists with N partitions (settings: M)"}``. An existing
    topic with another partition count is reported, not changed: adding partitions would move keys
    to other partitions and break per-user ordering, so that is a deliberate ``recreate_topics``.
    """
    from kafka.errors import TopicAlreadyExistsError

    names = list(names) if names is not None else tailor_topics(settings)
    wanted = {n: topic_partitions(settings, n, partitions) for n in names}
    result: dict[str, str] = {}
    with admin_client(settings) as admin:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            specs = {
                n: {"num_partitions": wanted[n], "replication_factor": 1, "configs": topic_config(settings, n)}
                for n in missing
            }
            response = admin.create_topics(specs, raise_errors=False)
            for topic in response["topics"]:
                code = topic["error_code"]
                if code == TopicAlreadyExistsError.errno:  # created concurrently by someone else
                    missing.remove(topic["name"])
                elif code != 0:
                    raise KafkaUnavailable(
                        f"Kafka refused to create topic {topic['name']}: error {code} "
                        f"{topic.get('error_message')}; see {settings.home / 'kafka' / 'logs' / 'server.log'}"
                    )
            if missing:
                _wait_for_leaders(admin, missing)
        for topic in admin.describe_topics(names):
            count = len(topic["partitions"])
            if topic["name"] in missing:
                result[topic["name"]] = "created"
            elif count != wanted[topic["name"]]:
                result[topic["name"]] = f"exists with {count} partitions (settings: {wanted[topic['name']]})"
            else:
                result[topic["name"]] = "exists"
    return result


def delete_topics(settings: Settings, names: Iterable[str], timeout: float = 30.0) -> list[str]:
    """Delete the named topics that exist and wait until the broker no longer lists them."""
    names = list(names)
    with admin_client(settings) as admin:
        present = [n for n in names if n in set(admin.list_topics())]
        if present:
            admin.delete_topics(present)
            deadline = time.monotonic() + timeout
            while set(present) & set(admin.list_topics()):
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        f"topics {present} still listed {timeout:.0f} s after deletion; check server.log"
                    )
                time.sleep(0.2)
    return present


def recreate_topics(
    settings: Settings,
    names: Iterable[str] | None = None,
    partitions: int | None = None,
    timeout: float = 30.0,
) -> None:
    """Delete and create the topics empty again (all Tailor topics by default); handy between tests."""
    names = list(names) if names is not None else tailor_topics(settings)
    delete_topics(settings, names, timeout)
    states = ensure_topics(settings, names, partitions)
    if any(state != "created" for state in states.values()):
        raise KafkaUnavailable(f"could not recreate {names} empty (someone recreated them meanwhile?): {states}")


def _wait_for_leaders(admin, names: list[str], timeout_ms: int = 15000) -> None:
    from kafka.errors import KafkaTimeoutError

    try:
        admin.wait_for_topics(names, timeout_ms=timeout_ms)
    except KafkaTimeoutError as exc:
        raise KafkaUnavailable(
            f"topics {names} were created but have no leader after {timeout_ms} ms: {exc}"
        ) from None


def committed_offsets(settings: Settings, group: str, topic: str, timeout: float = 60.0) -> dict[int, int]:
    """``{partition: offset}`` the consumer ``group`` has committed on ``topic`` (empty: never read it).

    Retries Kafka's retriable errors for up to ``timeout`` seconds: a broker that has just started
    answers ``CoordinatorNotAvailable`` until its ``__consumer_offsets`` topic has leaders, and a job
    start must wait that out rather than fail (it did, once, in CI)."""
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    while True:
        try:
            with admin_client(settings) as admin:
                offsets = admin.list_group_offsets(group).get(group, {})
            break
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"cannot read the offsets of consumer group {group!r} ({type(exc).__name__}: {exc}); "
                    "check the broker's server.log"
                ) from None
            time.sleep(0.5)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """``{partition: offset the next record will get}`` of ``topic`` now."""
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec

    with admin_client(settings) as admin:
        partitions = [p["partition_index"] for t in admin.describe_topics([topic]) for p in t["partitions"]]
        found = admin.list_partition_offsets({TopicPartition(topic, p): OffsetSpec.LATEST for p in partitions})
    return {tp.partition: info.offset for tp, info in found.items()}
