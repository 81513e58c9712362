"""`tailor recalibrate --apply` on the real stack: it reads the events topic the running job reads, proposes a
threshold from what the shoppers did, validates it on held-out time, logs before and after, and the running
job (embedded Flink, unbounded) decides the next users under the recalibrated rules without a restart."""

from __future__ import annotations

import time

import orjson
import pytest
import yaml

from connectors.kafka_events import read_topic
from connectors.redis_keys import RedisKeys
from evaluation.simulator import ShopperSimulator
from operators.segment_rules import SegmentRules
from settings import PROJECT_ROOT
from state_schemas import segment_change
from tailor.recalibrate import recalibrate
from tests.faults.harness import JobProcess
from tests.integration.harness import isolated_settings, send_events, wait_for

pytestmark = pytest.mark.integration

HESITANT = "interested_but_hesitant"


def shopper(user: str, views: int) -> list[dict]:
    now = int(time.time() * 1000)
    events = [{"type": "track", "event": "Product Viewed", "userId": user, "messageId": f"{user}-v{n}",
               "timestamp": now + n, "properties": {"product_id": f"p{n}"}} for n in range(views)]
    return [*events, {"type": "track", "event": "Product Added", "userId": user, "messageId": f"{user}-cart",
                      "timestamp": now + views, "properties": {"product_id": "p0"}}]


def changes_of(settings) -> list[dict]:
    return [segment_change.decode(r.value) for r in read_topic(settings, settings.segment_changes_topic)]


def test_recalibrate_proposes_validates_logs_and_the_running_job_applies_it(stack_settings, redis_client, tmp_path):
    shipped = yaml.safe_load((PROJECT_ROOT / "config" / "segments.yaml").read_text())
    rules_file = tmp_path / "segments.yaml"  # a threshold far too low: buyers are flagged as hesitant
    rules_file.write_text(yaml.safe_dump({**shipped, "parameters": {**shipped["parameters"], "hesitant_min_views": 2}}))
    plan_file = tmp_path / "recalibration.yaml"
    plan = yaml.safe_load((PROJECT_ROOT / "config" / "recalibration.yaml").read_text())
    plan_file.write_text(yaml.safe_dump({**plan, "outcome_window": "1h"}))  # the simulated span is 4 hours
    settings = isolated_settings(stack_settings, "recal", models_enabled=False)
    keys = RedisKeys(settings.redis_prefix)
    before = SegmentRules.from_yaml(rules_file).version

    job = JobProcess(settings, tmp_path / "job", bounded=False, rules_file=rules_file).start()
    try:
        history = ShopperSimulator(seed=3, users=2000, items=500, categories=10)
        send_events(settings, list(history.events(1_700_000_000_000, rate=2, count=30_000)))
        lines: list[str] = []
        result = recalibrate(settings, plan_file, rules_file, apply=True, results_dir=tmp_path / "results",
                             out=lines.append)
        applied_at = int(time.time() * 1000)
        send_events(settings, shopper("rc-four-views", 4))  # flagged under the old rules (> 2), not the new
        send_events(settings, shopper("rc-eight-views", 8))
        wait_for(lambda: redis_client.sismember(keys.segment(HESITANT), "rc-eight-views"), 180,
                 "the eight-view shopper in interested_but_hesitant")
        wait_for(lambda: redis_client.sismember(keys.segment("active"), "rc-four-views"), 60,
                 "the four-view shopper processed")
        assert not redis_client.sismember(keys.segment(HESITANT), "rc-four-views")
        wait_for(lambda: any(c["user_id"] == "rc-eight-views" for c in changes_of(settings)), 60,
                 "the change committed to Kafka (with the next checkpoint)")
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
    proposed = SegmentRules.from_yaml(tmp_path / "results" / "recalibrated-segments.yaml")
    assert proposed.version == result.rules_after

    changes = changes_of(settings)
    entered = next(c for c in changes if c["user_id"] == "rc-eight-views" and c["segment"] == HESITANT)
    assert entered["rules_version"] == result.rules_after
    assert entered["reason"].startswith("Viewed more than 6 products")
    print(f"recalibrated rules: first change {entered['emit_time'] - applied_at} ms after the apply (the job was "
          "still reading the 30,000 events of history)")
    old = [c for c in changes
           if c["segment"] == HESITANT and c["change"] == "enter" and c["user_id"].startswith("user-")]
    assert old and {c["rules_version"] for c in old} == {before}  # the history was decided under the old rules
