"""``tailor dead-letters replay``: re-submit the dead letters that pass today's validation, exactly once.

Reads the dead-letters topic (``read_committed``) up to its end, judges every letter
(``operators.dead_letter_replay``), and publishes each replayable original to the events topic as it
was received: keyed by its user, stamped with its event time. Each published original and a record of
its messageId in the compacted ledger topic ``<dead letters topic>.replayed`` are written in one Kafka
transaction, so a replay stopped at any point and run again sends nothing twice: a letter whose
messageId is in the ledger (or was sent earlier in the same run) is skipped. The job reads the events
topic ``read_committed``, so it never sees an aborted replay.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
from kafka.errors import KafkaError

from connectors import kafka_topics
from connectors.kafka_events import KafkaUnavailable, event_producer, read_topic
from operators.dead_letter_replay import judge
from settings import Settings

TRANSACTION_RECORDS = 500  # originals per transaction: one commit round trip per this many


@dataclass
class ReplayReport:
    letters: int = 0
    replayed: int = 0
    already_replayed: int = 0  # their messageId is in the ledger (or repeats one sent in this run)
    skipped_by_filter: int = 0
    still_invalid: Counter[str] = field(default_factory=Counter)  # code now -> letters
    examples: dict[str, str] = field(default_factory=dict)  # code now -> one reason, for the report
    replayed_by_code: Counter[str] = field(default_factory=Counter)  # code then -> letters replayed


def replay(
    settings: Settings, codes: Iterable[str] = (), dry_run: bool = False,
    progress: Callable[[int], None] = lambda _n: None,
) -> ReplayReport:
    """Replay what passes now (only letters rejected with one of ``codes``, if given); ``dry_run``: judge
    and count, send nothing. ``progress`` is called with the number of letters judged since the last call."""
    wanted = set(codes)
    ledger = kafka_topics.replay_ledger_topic(settings)
    kafka_topics.ensure_topics(settings, [ledger])
    replayed_ids = {r.key for r in read_topic(settings, ledger, timeout_s=60) if r.key is not None}
    letters = read_topic(settings, settings.dead_letters_topic, timeout_s=120)
    report = ReplayReport(letters=len(letters))
    pending = []
    for record in letters:
        progress(1)
        try:
            verdict = judge(record.value or b"")
        except ValueError as e:  # not a dead letter at all: count it as such, never stop
            report.still_invalid["not_a_dead_letter"] += 1
            report.examples.setdefault("not_a_dead_letter", str(e))
            continue
        if wanted and verdict.rejected_as not in wanted:
            report.skipped_by_filter += 1
        elif not verdict.replay:
            error = str(verdict.error)
            report.still_invalid[error] += 1
            report.examples.setdefault(error, str(verdict.reason))
        elif (message_id := str(verdict.message_id).encode()) in replayed_ids:
            report.already_replayed += 1
        else:
            replayed_ids.add(message_id)
            pending.append((verdict, message_id))
            report.replayed += 1
            report.replayed_by_code[verdict.rejected_as] += 1
    if not dry_run and pending:
        _publish(settings, ledger, pending)
    return report


def _publish(settings: Settings, ledger: str, pending: list) -> None:  # type: ignore[type-arg]
    producer = event_producer(
        settings, client_id="tailor-dead-letter-replay",
        transactional_id=f"tailor-dead-letter-replay-{settings.dead_letters_topic}",
    )
    try:
        producer.init_transactions()
        for start in range(0, len(pending), TRANSACTION_RECORDS):
            producer.begin_transaction()
            now = int(time.time() * 1000)
            for verdict, message_id in pending[start:start + TRANSACTION_RECORDS]:
                producer.send(settings.events_topic, verdict.original, key=verdict.key, timestamp_ms=verdict.timestamp)
                entry = orjson.dumps({"replayed_at": now, "rejected_as": verdict.rejected_as})
                producer.send(ledger, entry, key=message_id)
            producer.commit_transaction()
    except KafkaError as e:
        raise KafkaUnavailable(f"replaying to {settings.events_topic!r} failed: {e}; nothing of the open "
                               "transaction was published, run the replay again") from None
    finally:
        producer.close()
