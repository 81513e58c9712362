"""Baseline (b): what a user would write instead of Flink -- one Python process, same operators.

kafka-python consumer (every partition from the earliest offset) -> ``operators.segmenter.Segmenter``
(normalize, then the job's own per-user step and event-time timers; Redis audiences through
``RedisAudienceWriter``) ->
segment changes to ``settings.segment_changes_topic`` keyed by user (kafka-python producer, acks=all,
idempotent, *not* transactional) and dead letters to ``settings.dead_letters_topic``.

What it does not give you, and the Flink job does: state survives a crash (here it is a dict in
memory, lost on restart), exactly-once output, scaling past one core, timers in a recovered job.

Run by the harness: ``python -m bench.baselines.python_consumer --progress FILE`` with ``TAILOR_*``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from bench.baselines.consume_only import consumer_for, stop_on_sigterm
from bench.baselines.progress import ProgressFile
from connectors import kafka_events
from connectors.redis_audiences import RedisAudienceWriter
from operators.segment_rules import SegmentRules
from operators.segmenter import Segmenter
from settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--progress", type=Path, required=True, help="progress JSON file to rewrite")
    args = parser.parse_args(argv)
    settings = Settings.load()
    progress = ProgressFile(args.progress)
    stopping = stop_on_sigterm()
    rules = SegmentRules.from_dict(yaml.safe_load(settings.segments_file.read_text()))
    redis_writer = RedisAudienceWriter(settings.redis_host, settings.redis_port, settings.redis_prefix)
    producer = kafka_events.event_producer(settings, client_id="bench-python-consumer")
    changes_topic, dlq = settings.segment_changes_topic, settings.dead_letters_topic
    segmenter = Segmenter(
        rules, settings.out_of_orderness_ms, settings.events_topic,
        on_changes=redis_writer.write, on_dead_letter=lambda record: producer.send(dlq, record),
    )
    # Smaller polls than consume-only: the Redis buffer is flushed per poll, which bounds latency.
    consumer = consumer_for(settings, max_poll_records=500, fetch_max_wait_ms=20)
    progress.ready()
    try:
        while not stopping[0]:
            records = 0
            for batch in consumer.poll(timeout_ms=100).values():
                records += len(batch)
                changes = 0
                for record in batch:
                    for user, _, payload in segmenter.process(record.value):
                        producer.send(changes_topic, payload, key=user.encode())
                        changes += 1
                progress.count(len(batch), changes)
            redis_writer.flush()
            if not records:
                progress.count(0)
    finally:
        redis_writer.flush()
        producer.flush()
        progress.write(done=True)
        consumer.close()
        producer.close()
        redis_writer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
