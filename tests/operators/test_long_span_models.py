"""The models over years of event time and unordered arrival: no overflow, no NaN, no exception.

An 18-month export once crashed the job in a loop (``OverflowError`` in popularity's decay). Here the
job's own per-user step feeds the model hub with simulated shopping in bursts over 18 months, once in
time order and once as two partitions read very unevenly (one a year behind the other).
"""

from __future__ import annotations

import math
import zlib

import orjson
import pytest
import yaml

from evaluation.simulator import ShopperSimulator
from operators.model_hub import ModelHub
from operators.models_config import ModelsConfig
from operators.popularity import DecayedPopularity
from operators.segment_rules import SegmentRules
from operators.segmenter import Segmenter
from settings import PROJECT_ROOT
from state_schemas.model_input import ModelInput

DAY = 86_400_000
T0 = 1_700_000_000_000
MODELS = yaml.safe_load((PROJECT_ROOT / "config" / "models.yaml").read_text())


def bursts(months: int = 18, per_month: int = 400) -> list[bytes]:
    events = []
    for m in range(months):
        sim = ShopperSimulator(seed=200 + m, users=300, items=500, categories=8)
        events += [orjson.dumps(e) for e in sim.events(T0 + m * 30 * DAY, rate=20, count=per_month)]
    return events


def model_inputs(raw: list[bytes]) -> list[ModelInput]:
    inputs: list[ModelInput] = []
    segmenter = Segmenter(SegmentRules.from_yaml(PROJECT_ROOT / "config" / "segments.yaml"),
                          on_model_input=inputs.append)
    for payload in raw:
        segmenter.process(payload)
    return inputs


def uneven(raw: list[bytes]) -> list[bytes]:
    """Two partitions by user, the second read a year late: its events arrive after the first's."""
    def partition(r: bytes) -> int:
        event = orjson.loads(r)
        return zlib.crc32((event.get("userId") or event.get("anonymousId") or "").encode()) % 2

    return [r for r in raw if partition(r) == 0] + [r for r in raw if partition(r) == 1]


@pytest.mark.parametrize("order", ["in time order", "one partition a year behind"])
def test_models_stay_finite_over_eighteen_months(order: str) -> None:
    raw = bursts()
    inputs = model_inputs(raw if order == "in time order" else uneven(raw))
    small = ModelsConfig.from_dict({**MODELS, "clustering": {**MODELS["clustering"], "warmup_events": 300}})
    hub = ModelHub(small)
    scores, clusters = [], 0
    for m in inputs:
        changes, recs = hub.process_one(m)
        clusters += len(changes)
        scores += [r.score for r in recs or ()]
    hub.take_changes()  # the state export must encode too

    assert (inputs[-1].timestamp - inputs[0].timestamp) / DAY > 500 or order != "in time order"
    assert scores and all(math.isfinite(s) for s in scores)
    assert clusters > 0


def test_popularity_of_events_years_apart_in_any_order_is_finite() -> None:
    pop = DecayedPopularity(half_life_ms=DAY)
    pop.learn_one("late", T0 + 3 * 365 * DAY)
    pop.learn_one("early", T0)

    scores = [s for _, s in pop.top(2, now=T0)]
    scores += [pop.score("late", now=T0), pop.score("early", now=T0 + 3 * 365 * DAY)]

    assert all(math.isfinite(s) for s in scores)
    assert [item for item, _ in pop.top(2, now=T0)] == ["late", "early"]
