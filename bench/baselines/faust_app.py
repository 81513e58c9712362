"""Baseline (c): a Faust (faust-streaming) app doing the job's segmentation with the same operators.

    events topic (raw bytes) -> agent track_segments -> segment changes topic (keyed by user)
                                  | state: Table user_to_profile (encoded ProfileState, changelog topic)
                                  | Redis audiences through RedisAudienceWriter (flushed every 20 ms)

This is how a Faust user would write it: the per-user state in a Faust table (in-memory store backed by
a Kafka changelog topic -- Faust's fault-tolerant state), outputs sent through a Faust topic.
Event-time timers are a heap in the worker, fired as the watermark passes them (like the plain
baseline, ``operators.segmenter.Segmenter``); they are not recovered after a crash, and a
timer can update a user of another partition than the event being processed (only matters for
recovery). App id = consumer group = ``settings.consumer_group``; internal topics are created by Faust.

Run by the harness: ``python -m bench.baselines.faust_app --progress FILE --datadir DIR``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench.baselines.progress import ProgressFile
from connectors.redis_audiences import RedisAudienceWriter
from operators.segment_rules import SegmentRules
from operators.segmenter import Segmenter
from settings import Settings
from state_schemas import profile_state
from state_schemas.profile_state import ProfileState


def build_app(settings: Settings, progress: ProgressFile, datadir: Path):  # type: ignore[no-untyped-def]
    import faust

    app = faust.App(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        producer_linger_ms=10,
        stream_buffer_maxsize=4096,
    )
    events = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw")
    changes = app.topic(settings.segment_changes_topic, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(settings.dead_letters_topic, value_serializer="raw")
    user_to_profile = app.Table(
        "user_to_profile", default=None, partitions=settings.kafka_partitions,
        schema=faust.Schema(key_serializer="raw", value_serializer="raw"),
    )

    class TableStore:
        """Profiles in the Faust table, encoded (``operators.segmenter.ProfileStore``)."""

        def load(self, user: str) -> ProfileState | None:
            raw = user_to_profile.get(user.encode())
            return None if raw is None else profile_state.decode(raw)

        def store(self, user: str, state: ProfileState) -> None:
            user_to_profile[user.encode()] = profile_state.encode(state)

        def users(self) -> Iterator[str]:
            return (key.decode() for key in user_to_profile)

    rules = SegmentRules.from_dict(yaml.safe_load(settings.segments_file.read_text()))
    redis_writer = RedisAudienceWriter(settings.redis_host, settings.redis_port, settings.redis_prefix)
    pending_dead_letters: list[bytes] = []
    segmenter = Segmenter(
        rules, settings.out_of_orderness_ms, settings.events_topic, on_changes=redis_writer.write,
        on_dead_letter=pending_dead_letters.append, store=TableStore(),
    )

    @app.agent(events)
    async def track_segments(stream):  # type: ignore[no-untyped-def]
        async for raw in stream:
            outputs = segmenter.process(raw)
            for user, _, payload in outputs:
                await changes.send(key=user.encode(), value=payload)
            while pending_dead_letters:
                await dead_letters.send(value=pending_dead_letters.pop())
            progress.count(1, len(outputs))

    @app.timer(interval=0.02)
    async def flush_redis() -> None:
        redis_writer.flush()

    @app.timer(interval=0.2)
    async def write_progress() -> None:
        progress.write()

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--progress", type=Path, required=True, help="progress JSON file to rewrite")
    parser.add_argument("--datadir", type=Path, required=True, help="Faust's data dir (a scratch dir)")
    args = parser.parse_args(argv)
    progress = ProgressFile(args.progress)
    progress.write()
    app = build_app(Settings.load(), progress, args.datadir)
    logging.getLogger("faust").setLevel(logging.WARNING)
    sys.argv = ["faust", "worker", "--loglevel", "warn", "--without-web"]
    app.main()  # runs the worker until SIGTERM / SIGINT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
