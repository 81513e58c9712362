"""The real Taobao sample replayed end to end through the real job, checked against an independent
computation (``reference_segments``) of the default rules over the same rows."""

from __future__ import annotations

import csv
from collections import defaultdict

import pytest

from connectors.kafka_events import read_topic
from settings import PROJECT_ROOT
from state_schemas import dead_letter, segment_change
from tailor.produce import produce_file
from tests.integration.harness import isolated_settings, run_bounded_job
from tests.integration.reference_segments import Event, expected_changes

pytestmark = pytest.mark.integration

TAOBAO = PROJECT_ROOT.parent / "shared" / "data" / "taobao" / "user_behavior_sample.csv"
KINDS = {"pv": "view", "cart": "cart", "fav": "other", "buy": "buy"}
END_OF_TIME = 10**15


def reference_from_csv() -> dict[str, list[tuple]]:
    """Expected changes per user, from the raw CSV (plausible rows only, file order = arrival order)."""
    per_user: dict[str, list[Event]] = defaultdict(list)
    with TAOBAO.open(newline="") as f:
        for row in csv.reader(f):
            if len(row) == 5 and row[4].isdigit() and int(row[4]) > 946_684_800:
                per_user[row[0]].append(Event(int(row[4]) * 1000, KINDS[row[3]]))
    return {user: expected_changes(user, events, END_OF_TIME) for user, events in per_user.items()}


@pytest.fixture(scope="module")
def replay(stack_settings, tmp_path_factory):
    # Rules only: this test checks every rule change against an independent computation; the models
    # are covered by test_models_job.py on a smaller input.
    settings = isolated_settings(stack_settings, "taobao", models_enabled=False)
    report = produce_file(settings, TAOBAO, fmt="taobao", progress=False, echo=None)
    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", tmp_path_factory.mktemp("taobao"))
    records = read_topic(settings.kafka_bootstrap, settings.segment_changes_topic, timeout_s=120)
    got: dict[str, list[tuple]] = defaultdict(list)
    for record in records:
        c = segment_change.decode(record.value)
        got[c["user_id"]].append((c["segment"], c["change"], c["trigger"], c["event_time"]))
    letters = [dead_letter.decode(r.value) for r in read_topic(settings.kafka_bootstrap, settings.dead_letters_topic)]
    return settings, report, got, letters


def test_truncated_last_row_is_reported_and_dead_lettered(replay):
    _, report, _, letters = replay
    assert report.rejected == 1 and report.sent == 96_168
    assert "truncated" in str(report.rejected_examples[0])
    assert len(letters) == 1 and letters[0]["original"] == "301780,543546,4181361,pv,15"


def test_segment_changes_match_an_independent_computation(replay):
    _, _, got, _ = replay
    expected = reference_from_csv()
    assert sum(map(len, got.values())) == sum(map(len, expected.values()))
    mismatched = [user for user in expected if got.get(user, []) != expected[user]]
    assert not mismatched, (f"{len(mismatched)} users differ, e.g. {mismatched[0]}: job {got.get(mismatched[0])} "
                            f"vs reference {expected[mismatched[0]]}")
    assert set(got) == set(expected)
