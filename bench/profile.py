"""``tailor bench profile``: where the per-event Python time goes, without Kafka, Flink or Redis.

Replays seeded simulator events (already serialized, as they arrive from Kafka) through one of two
paths under pyinstrument and prints µs per event and the hot spots:

* ``job`` -- what the Flink job's Python does per event in ``SegmentBatches``: batches of ``batch``
  records as the Java micro-batcher builds them (JSON, parsed here), normalize and the per-user step
  (``Segmenter``) on profiles cached in front of a dict standing in for Flink's ``MapState``, the changed
  profiles encoded once per batch, timers fired at the watermark, the changes embedded in one output row
  per batch; no Redis. The JVM <-> Python crossings of thread mode (PEMJA: one call per batch, the state
  write-back, the output rows) are *not* in here: compare µs/event with the job's measured rate.
* ``models`` -- the model hub's work per model input (``LearnModels``): the inputs the rule step produces
  for the events (made beforehand, not timed), ``ModelHub.process_one`` on each and ``take_changes`` (the
  state write) once per ``batch`` inputs, as one call of the hub gets them; no Redis, no state backend.
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
from operators.model_hub import ModelHub
from operators.models_config import ModelsConfig
from operators.normalize import epoch_ms
from operators.segment_rules import SegmentRules
from operators.segmenter import CachedProfileStore, Segmenter
from settings import Settings
from state_schemas.model_input import ModelInput


def profile_per_event_path(settings: Settings, events: int = 100_000, path: str = "job", out=print) -> float:  # type: ignore[no-untyped-def]
    from pyinstrument import Profiler

    payloads = _events(events)
    replay = {"job": replay_job_path, "models": replay_model_path, "baseline": replay_baseline_path}[path]
    plain_us = replay(payloads, settings)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    us = replay(payloads, settings)
    profiler.stop()
    out(profiler.output_text(unicode=True, color=False, show_all=False, time="percent_of_total"))
    unit = "model input" if path == "models" else "event"
    out(f"profile: {path} path, {len(payloads):,} events: {plain_us:.1f} µs per {unit} in Python without the "
        f"profiler (~{1e6 / plain_us:,.0f}/s on one core), {us:.1f} µs under it")
    return plain_us


def replay_job_path(payloads: list[bytes], settings: Settings, batch: int = 16) -> float:
    """The job's per-event Python work (see module doc); returns µs per event."""
    map_state: dict[str, str] = {}
    store = CachedProfileStore(map_state.get, map_state.keys)
    segmenter = Segmenter(_rules(settings), out_of_orderness_ms=None, store=store)
    batches = [  # what MicroBatcher hands over: [timestamp, partition, offset, value, value_b64]
        orjson.dumps([[_time(raw), 0, 0, raw.decode(), None] for raw in payloads[i : i + batch]]).decode()
        for i in range(0, len(payloads), batch)
    ]
    t0 = time.perf_counter()
    for records in batches:  # SegmentBatches.process_element
        emitted = []
        rows = orjson.loads(records)
        for _timestamp, _partition, _offset, text, _b64 in rows:
            emitted += segmenter.process(text)
        emitted += segmenter.advance_watermark(rows[-1][0] - settings.out_of_orderness_ms)
        map_state.update(store.take_dirty())
        orjson.dumps([[e.user_id, orjson.Fragment(e.payload)] for e in emitted])
    return (time.perf_counter() - t0) / max(len(payloads), 1) * 1e6


def replay_model_path(payloads: list[bytes], settings: Settings, batch: int = 64) -> float:
    """The model hub's work per model input (see module doc); returns µs per input.

    >>> us = replay_model_path(_events(300), Settings.load(environ={}))
    >>> us > 0
    True
    """
    inputs: list[ModelInput] = []
    segmenter = Segmenter(_rules(settings), settings.out_of_orderness_ms, on_model_input=inputs.append)
    for raw in payloads:
        segmenter.process(raw)
    hub = ModelHub(ModelsConfig.from_yaml(settings.models_file))
    t0 = time.perf_counter()
    for start in range(0, len(inputs), batch):
        for m in inputs[start : start + batch]:
            hub.process_one(m)
        hub.take_changes()
    return (time.perf_counter() - t0) / max(len(inputs), 1) * 1e6


def _time(raw: bytes) -> int:
    return epoch_ms(orjson.loads(raw)["timestamp"]) or 0


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
