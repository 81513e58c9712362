"""Baseline (a): a kafka-python consume loop that does nothing with the records -- the client's ceiling.

Reads ``settings.events_topic`` with consumer group ``settings.consumer_group`` from the earliest
offset, counts records and commits offsets (auto-commit), until SIGTERM. Whatever a Python consumer
does per event comes on top of this.

Run by the harness: ``python -m bench.baselines.consume_only --progress FILE`` with ``TAILOR_*`` settings.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from kafka import KafkaConsumer

from bench.baselines.progress import ProgressFile
from tailor.settings import Settings

# Large fetches: the loop is about how fast the client hands records to Python, not about latency.
CONSUMER_OPTIONS = {"max_poll_records": 5_000, "fetch_max_bytes": 50 * 2**20,
                    "max_partition_fetch_bytes": 8 * 2**20, "metrics_enabled": False}


def consumer_for(settings: Settings, **overrides) -> KafkaConsumer:  # type: ignore[no-untyped-def]
    options = {**CONSUMER_OPTIONS, **overrides}
    return KafkaConsumer(
        settings.events_topic, bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group,
        auto_offset_reset="earliest", enable_auto_commit=True, **options,
    )


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
    progress.write()
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
