"""`tailor recalibrate --apply` on the real stack: it reads the events topic the running job reads, proposes a
threshold and a recommendation blend from what the shoppers did, validates them on held-out time, logs before
and after, and the running job (embedded Flink, unbounded, models on) decides the next users under the
recalibrated rules and recommends with the recalibrated blend, without a restart."""

from __future__ import annotations

import time

import orjson
import pytest
import yaml

from connectors.kafka_events import read_topic
from connectors.kafka_topics import committed_offsets, end_offsets
from connectors.redis_keys import RedisKeys
from evaluation.simulator import ShopperSimulator
from operators.segment_rules import SegmentRules
from settings import PROJECT_ROOT
from state_schemas import recalibration, segment_change
from tailor.recalibrate import recalibrate
from tests.faults.harness import JobProcess
from tests.integration.harness import isolated_settings, quick_models_file, send_events, wait_for

pytestmark = pytest.mark.integration

HESITANT = "interested_but_hesitant"


def shopper(user: str, views: int) -> list[dict]:
    now = int(time.time() * 1000)
    events = [{"type": "track", "event": "Product Viewed", "userId": user, "messageId": f"{user}-v{n}",
               "timestamp": now + n, "properties": {"product_id": f"p{n}"}} for n in range(views)]
    return [*events, {"type": "track", "event": "Product Added", "userId": user, "messageId": f"{user}-cart",
                      "timestamp": now + views, "properties": {"product_id": "p0"}}]


def recommendations_of(settings) -> list[dict]:
    return [orjson.loads(r.value) for r in read_topic(settings, settings.recommendations_topic)]


def changes_of(settings) -> list[dict]:
    return [segment_change.decode(r.value) for r in read_topic(settings, settings.segment_changes_topic)]


def wait_until_read(settings, seconds: float, what: str) -> None:
    """Until the job committed (with a checkpoint, so every operator is done with them) all events sent so far."""
    read_up_to = end_offsets(settings, settings.events_topic)
    wait_for(lambda: all(committed_offsets(settings, settings.consumer_group, settings.events_topic).get(p, 0)
                         >= end for p, end in read_up_to.items()), seconds, what)


def test_recalibrate_proposes_validates_logs_and_the_running_job_applies_it(stack_settings, redis_client, tmp_path):
    shipped = yaml.safe_load((PROJECT_ROOT / "config" / "segments.yaml").read_text())
    rules_file = tmp_path / "segments.yaml"  # a threshold far too low: buyers are flagged as hesitant
    rules_file.write_text(yaml.safe_dump({**shipped, "parameters": {**shipped["parameters"], "hesitant_min_views": 2}}))
    plan_file = tmp_path / "recalibration.yaml"
    plan = yaml.safe_load((PROJECT_ROOT / "config" / "recalibration.yaml").read_text())
    plan_file.write_text(yaml.safe_dump({  # the simulated span is 4 hours; one blend keeps the test short
        **plan, "outcome_window": "1h", "blend": {"margin": 0.02, "candidates": [{"popular": 1.0}]}}))
    settings = isolated_settings(stack_settings, "recal", models_file=quick_models_file(tmp_path))
    keys = RedisKeys(settings.redis_prefix)
    before = SegmentRules.from_yaml(rules_file).version

    job = JobProcess(settings, tmp_path / "job", bounded=False, rules_file=rules_file).start()
    try:
        history = ShopperSimulator(seed=3, users=2000, items=500, categories=10)
        send_events(settings, list(history.events(1_700_000_000_000, rate=2, count=30_000)))
        # The job must be done with the history before the apply: an update overtakes history still unread on
        # other partitions (a lagging job on a slow machine), and the history's lists would then be tuned.
        wait_until_read(settings, 300, "the job to read the history")
        lines: list[str] = []
        result = recalibrate(settings, plan_file, rules_file, apply=True, results_dir=tmp_path / "results",
                             out=lines.append)
        applied_at = int(time.time() * 1000)
        wait_until_read(settings, 180, "the job to read the update")
        send_events(settings, shopper("rc-four-views", 4))  # flagged under the old rules (> 2), not the new
        send_events(settings, shopper("rc-eight-views", 8))
        wait_for(lambda: redis_client.sismember(keys.segment(HESITANT), "rc-eight-views"), 180,
                 "the eight-view shopper in interested_but_hesitant")
        wait_for(lambda: redis_client.sismember(keys.segment("active"), "rc-four-views"), 60,
                 "the four-view shopper processed")
        assert not redis_client.sismember(keys.segment(HESITANT), "rc-four-views")
        wait_for(lambda: any(c["user_id"] == "rc-eight-views" for c in changes_of(settings)), 60,
                 "the change committed to Kafka (with the next checkpoint)")
        wait_for(lambda: any(r["user_id"] == "rc-eight-views" for r in recommendations_of(settings)), 60,
                 "a recommendation list for the eight-view shopper")
    finally:
        job.stop()

    hesitant = result.proposals[0]
    print("\n" + "\n".join(lines))
    assert (hesitant.current, hesitant.best, hesitant.decision) == (2, 6, "apply")
    assert hesitant.test[6].f(hesitant.beta) - hesitant.test[2].f(hesitant.beta) >= 0.02  # held-out gain
    assert result.applied and result.rules_before == before and result.rules_after not in (None, before)

    log = [orjson.loads(line) for line in (tmp_path / "results" / "recalibrations.jsonl").read_bytes().splitlines()]
    assert len(log) == 1 and log[0]["rules_after"] == result.rules_after and log[0]["events"] == 30_000
    entry = log[0]["thresholds"][0]
    assert (entry["before"], entry["after"]) == (2, 6)
    assert entry["after_heldout"]["precision"] > entry["before_heldout"]["precision"]
    stored = recalibration.decode(redis_client.lindex(keys.recalibrations, 0))
    assert stored["rules_after"] == result.rules_after and stored["thresholds"] == log[0]["thresholds"]
    proposed = SegmentRules.from_yaml(tmp_path / "results" / "recalibrated-segments.yaml")
    assert proposed.version == result.rules_after

    changes = changes_of(settings)
    entered = next(c for c in changes if c["user_id"] == "rc-eight-views" and c["segment"] == HESITANT)
    assert entered["rules_version"] == result.rules_after
    assert entered["reason"].startswith("Viewed more than 6 products")
    print(f"recalibrated rules: first change {entered['emit_time'] - applied_at} ms after the apply")
    blend = result.blend
    assert blend is not None and (blend.best, blend.decision) == ("popular=1", "apply")
    assert blend.test["popular=1"] >= 1.02 * blend.test["in force"]
    assert log[0]["blend"]["after"]["popular"] == 1.0 and log[0]["blend"]["before"]["popular"] == 0.5
    versions = {r["user_id"]: r["model_version"] for r in recommendations_of(settings)}
    assert "/tuned-" in versions["rc-eight-views"]
    assert versions["rc-eight-views"].split("/tuned-")[0] == versions["user-1"]  # the history: the file's blend
    old = [c for c in changes
           if c["segment"] == HESITANT and c["change"] == "enter" and c["user_id"].startswith("user-")]
    assert old and {c["rules_version"] for c in old} == {before}  # the history was decided under the old rules
