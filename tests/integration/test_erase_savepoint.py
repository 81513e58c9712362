"""What an erase leaves in the job's state, read from a savepoint of the real job (rules and models):
the erased id appears once, as the key of its suppression marker, whose value is the bare marker; a
bystander with the same history appears in the rule state and the model state. Flink writes these
``MapState`` strings as plain bytes for ASCII text (no snapshot compression), so a byte scan of the
savepoint is a state query that needs no Flink API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from connectors.kafka_events import event_producer, publish_event, read_topic
from evaluation.simulator import ShopperSimulator
from pipelines.state_layout import state_dirs
from settings import PROJECT_ROOT
from state_schemas import profile_state, segment_change
from state_schemas.profile_state import ProfileState
from tailor.erase import erase
from tests.faults.harness import JobProcess
from tests.integration.harness import isolated_settings, quick_models_file, wait_for

pytestmark = pytest.mark.integration

ERASED, BYSTANDER = "erased-person-7f3a", "bystander-7f3a"


def committed_changes(settings) -> list[dict]:
    return [segment_change.decode(r.value) for r in read_topic(settings.kafka_bootstrap,
                                                               settings.segment_changes_topic)]


def test_after_an_erase_a_savepoint_holds_only_the_suppression_marker(stack_settings, tmp_path) -> None:
    settings = isolated_settings(stack_settings, "erase-savepoint", models_enabled=True,
                                 models_file=quick_models_file(tmp_path))
    job = JobProcess(settings, tmp_path / "job", bounded=False).start()
    try:
        now = int(time.time() * 1000)
        producer = event_producer(settings.kafka_bootstrap)
        for event in ShopperSimulator(seed=9, users=60, items=30, categories=3).events(now - 3_600_000, 20, 600):
            publish_event(producer, settings.events_topic, event)
        for n, name in enumerate(["Product Viewed"] * 7 + ["Product Added"]):
            for user in (ERASED, BYSTANDER):
                publish_event(producer, settings.events_topic, {
                    "type": "track", "event": name, "userId": user, "messageId": f"{user}-{n}",
                    "timestamp": now - 60_000 + n * 1_000, "properties": {"product_id": f"p{n % 3}", "category": "c1"}})
        producer.flush()
        producer.close()
        wait_for(lambda: any(c["user_id"] == ERASED and c["segment"] == "interested_but_hesitant"
                             for c in committed_changes(settings)), 180, "the person's segments")
        erase(settings, ERASED)
        wait_for(lambda: any(c["user_id"] == ERASED and c["trigger"] == "erase" for c in committed_changes(settings)),
                 120, "the erase to be applied")
        stop = subprocess.run([sys.executable, "-m", "tailor", "job", "stop"], cwd=PROJECT_ROOT, capture_output=True,
                              env={**os.environ, **settings.to_environ()}, timeout=180, check=False)
        assert stop.returncode == 0, stop.stderr.decode()
        job.child.wait(timeout=120)
    finally:
        job.stop()

    [savepoint] = [d for d in state_dirs(settings).savepoints.iterdir() if d.is_dir()]
    data = b"".join(f.read_bytes() for f in Path(savepoint).rglob("*") if f.is_file())
    [request] = [orjson.loads(r.value) for r in read_topic(settings.kafka_bootstrap, settings.events_topic)
                 if b"Tailor Erase" in r.value]
    marker = profile_state.encode(ProfileState(erased_at=request["timestamp"]))
    print(f"\nsavepoint {len(data):,} bytes: erased id {data.count(ERASED.encode())} time(s), bystander "
          f"{data.count(BYSTANDER.encode())}")
    assert data.count(ERASED.encode()) == 1 and marker in data
    assert data.count(BYSTANDER.encode()) >= 2  # the scan sees state: rule profile and model user
