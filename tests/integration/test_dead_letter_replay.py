"""``tailor dead-letters replay`` on the real broker and job: letters whose originals pass today's
validation go back to the events topic exactly once (a second run, and a run after a dry run, send
nothing new), the still-invalid ones are reported by code, and the real job segments what came back."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from connectors.kafka_events import event_producer, read_topic
from settings import PROJECT_ROOT
from state_schemas import dead_letter, segment_change
from tests.integration.harness import isolated_settings, run_bounded_job

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000


def event(user: str, n: int, name: str = "Product Viewed") -> bytes:
    return orjson.dumps({"type": "track", "event": name, "messageId": f"{user}-{n}", "userId": user,
                         "timestamp": T0 + n * 1000, "properties": {"product_id": f"p{n}", "category": "c1"}})


# What an older Tailor rejected and today's accepts (the originals are valid events), and what stays bad.
FIXED = [event("hesitant", n) for n in range(6)] + [event("hesitant", 6, "Product Added"), event("viewer", 0)]
STILL_BAD = [("invalid_json", b"{oops"), ("missing_user", b'{"type": "track", "event": "x", "messageId": "z"}')]


def tailor(settings, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tailor", *args], cwd=PROJECT_ROOT, capture_output=True,
                          env={**os.environ, **settings.to_environ()}, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_fixed_dead_letters_are_replayed_once_and_segmented(stack_settings, tmp_path) -> None:
    settings = isolated_settings(stack_settings, "replay")
    producer = event_producer(settings.kafka_bootstrap)
    letters = [dead_letter.encode("invalid_event_name", "unknown then", e, settings.events_topic, 1) for e in FIXED]
    letters.append(letters[0])  # the same record dead-lettered twice (a redelivery)
    letters += [dead_letter.encode(code, "bad", raw, settings.events_topic, 1) for code, raw in STILL_BAD]
    letters += [dead_letter.encode("tombstone", "no value", b"", settings.events_topic, 1), b"not a dead letter"]
    for letter in letters:
        producer.send(settings.dead_letters_topic, letter)
    producer.flush()
    producer.close()

    dry = tailor(settings, "dead-letters", "replay", "--dry-run")
    assert f"{len(letters)} dead letters" in dry and "would replay 8 " in dry
    only = tailor(settings, "dead-letters", "replay", "--error", "missing_user")  # the unreadable one counts too
    assert "replayed 0 " in only and "still invalid       1  missing_user" in only
    assert f"{len(letters) - 2} not selected" in only
    assert read_topic(settings.kafka_bootstrap, settings.events_topic) == []

    first = tailor(settings, "dead-letters", "replay")
    second = tailor(settings, "dead-letters", "replay")

    assert "replayed 8 " in first and "1 replayed before" in first
    assert "still invalid       1  invalid_json" in first and "not_a_dead_letter" in first and "tombstone" in first
    assert "replayed 0 " in second and "9 replayed before" in second
    sent = read_topic(settings.kafka_bootstrap, settings.events_topic)
    assert sorted(r.value for r in sent) == sorted(FIXED)  # byte for byte, once each
    assert {(r.key, r.timestamp) for r in sent} == {(orjson.loads(e)["userId"].encode(), orjson.loads(e)["timestamp"])
                                                   for e in FIXED}

    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", tmp_path)
    changes = [segment_change.decode(r.value) for r in read_topic(settings.kafka_bootstrap,
                                                                  settings.segment_changes_topic)]
    entered = {(c["user_id"], c["segment"]) for c in changes if c["change"] == "enter"}
    assert ("hesitant", "interested_but_hesitant") in entered and ("viewer", "active") in entered
