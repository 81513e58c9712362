"""Baseline (a): a kafka-python consume loop that does nothing with the records -- the client's ceiling.

Reads every partition of ``settings.events_topic`` from the earliest offset and counts records, until
SIGTERM. Whatever a Python consumer does per event comes on top of this.

Partitions are assigned by hand, not through a consumer group: one process reads them all anyway, and a
group join can come back with an empty assignment when it races the topic's metadata (seen here as a
baseline that never started).

Run by the harness: ``python -m bench.baselines.consume_only --progress FILE`` with ``TAILOR_*`` settings.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from kafka import KafkaConsumer

from bench.baselines.progress import ProgressFile
from connectors import kafka_events
from settings import Settings

# Large fetches: the loop is about how fast the client hands records to Python, not about latency.
CONSUMER_OPTIONS = {"max_poll_records": 5_000, "fetch_max_bytes": 50 * 2**20,
                    "max_partition_fetch_bytes": 8 * 2**20, "metrics_enabled": False}


def consumer_for(settings: Settings, metadata_timeout_s: float = 60.0, **overrides) -> KafkaConsumer:  # type: ignore[no-untyped-def]
    """A consumer positioned at the start of every partition of ``settings.events_topic``."""
    options = {**CONSUMER_OPTIONS, **overrides}
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                             **options)
    assigned = kafka_events.assign_all_partitions(consumer, settings.events_topic, wait_s=metadata_timeout_s)
    consumer.seek_to_beginning(*assigned)
    return consumer


def stop_on_sigterm() -> list[bool]:
    """A flag that SIGTERM sets, so the loop ends cleanly (final progress written, clients closed)."""
    stopping = [False]
    signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__(0, True))
    return stopping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--progress", type=Path, required=True, help="progress JSON file to rewrite")
    args = parser.parse_args(argv)
    settings = Settings.load()
    progress = ProgressFile(args.progress)
    stopping = stop_on_sigterm()
    consumer = consumer_for(settings)
    progress.ready()
    try:
        while not stopping[0]:
            for batch in consumer.poll(timeout_ms=200).values():
                progress.count(len(batch))
            progress.count(0)
    finally:
        progress.write(done=True)
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
