"""``tailor bench profile``: where the per-event Python time goes, without Kafka, Flink or Redis.

Replays seeded simulator events (already serialized, as they arrive from Kafka) through one of two
paths under pyinstrument and prints µs per event and the hot spots:

* ``job`` -- what the Flink job's Python does per event: ``NormalizeEvents`` (normalize + wire
  encode) and ``TrackSegments`` (wire decode, then the job's per-user step on state kept encoded, as
  in Flink's ValueState: decode, ``SegmentationStep``, encode), timers fired at the watermark, no Redis. The
  JVM <-> Python crossings of thread mode (PEMJA) are *not* in here: compare µs/event with the job's
  measured rate to see how much of the time is crossings.
* ``baseline`` -- the plain consumer's ``operators.segmenter.Segmenter`` (the same step, profiles kept as
  objects in a dict, no state codec), no Redis.

>>> from settings import Settings
>>> us = replay_job_path(_events(200), Settings.load(environ={}))
>>> us > 0
True
"""

from __future__ import annotations

import time

import orjson
import yaml

from evaluation.simulator import ShopperSimulator
from operators.normalize import InvalidEvent, normalize
from operators.segment_rules import SegmentRules
from operators.segmenter import EncodedProfileStore, Segmenter
from settings import Settings
from state_schemas import events


def profile_per_event_path(settings: Settings, events: int = 100_000, path: str = "job", out=print) -> float:  # type: ignore[no-untyped-def]
    from pyinstrument import Profiler

    payloads = _events(events)
    replay = replay_job_path if path == "job" else replay_baseline_path
    plain_us = replay(payloads, settings)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    us = replay(payloads, settings)
    profiler.stop()
    out(profiler.output_text(unicode=True, color=False, show_all=False, time="percent_of_total"))
    out(f"profile: {path} path, {len(payloads):,} events: {plain_us:.1f} µs per event in Python without the "
        f"profiler (~{1e6 / plain_us:,.0f} events/s on one core), {us:.1f} µs under it")
    return plain_us


def replay_job_path(payloads: list[bytes], settings: Settings) -> float:
    """The job's per-event Python work (see module doc); returns µs per event."""
    segmenter = Segmenter(_rules(settings), settings.out_of_orderness_ms, store=EncodedProfileStore())
    t0 = time.perf_counter()
    for raw in payloads:
        try:  # NormalizeEvents.process_element
            event = normalize(raw)
        except InvalidEvent:
            continue
        wire = events.to_wire(event).decode()
        # TrackSegments.process_element: the same step, state kept encoded as in Flink
        for emitted in segmenter.process_event(events.from_wire(wire)):
            emitted.payload.decode()
    return (time.perf_counter() - t0) / max(len(payloads), 1) * 1e6


def replay_baseline_path(payloads: list[bytes], settings: Settings) -> float:
    segmenter = Segmenter(_rules(settings), settings.out_of_orderness_ms)
    t0 = time.perf_counter()
    for raw in payloads:
        segmenter.process(raw)
    return (time.perf_counter() - t0) / max(len(payloads), 1) * 1e6


def _rules(settings: Settings) -> SegmentRules:
    return SegmentRules.from_dict(yaml.safe_load(settings.segments_file.read_text()))


def _events(count: int, users: int = 50_000, seed: int = 11) -> list[bytes]:
    sim = ShopperSimulator(seed=seed, users=min(users, max(count // 20, 10)))
    start = int(time.time() * 1000) - count
    return [orjson.dumps(e) for e in sim.events(start, rate=1_000, count=count)]
