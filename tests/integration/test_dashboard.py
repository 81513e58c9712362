"""The dashboard of `tailor serve` in a real headless Chromium: audiences written by the job's own Redis
writer, sampled over time by the serving process, the shipped experiment's stored report with its
per-segment rows, and a recalibration as `tailor recalibrate` logs it; screenshot-tested (set
TAILOR_SCREENSHOTS=DIR to keep the picture, e.g. docs/)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from connectors import recalibration_log
from connectors.experiment_results import store
from connectors.redis_audiences import RedisAudienceWriter
from evaluation.experiment_report import stream_rows
from operators.experiment_outcomes import Outcome
from operators.experiments import load_experiments
from settings import PROJECT_ROOT, Settings
from stack.service_process import running_server
from state_schemas import experiment_report, recalibration, segment_change
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import ENTER, SegmentChange
from tests.integration.harness import wait_for
from tests.private_redis import RedisServer

pytestmark = pytest.mark.integration

PREFIX = "dash:"
EXPERIMENTS = PROJECT_ROOT / "config" / "experiments.yaml"


def _figures(entries: int, precision: float, recall: float, f: float) -> dict:
    return {"entries": entries, "precision": precision, "recall": recall, "f": f}


RECALIBRATION = {  # as tailor recalibrate logs it (the run of tests/integration/test_recalibrate.py)
    "at": 1_796_000_000_000, "events": 30_000, "first_ms": 1, "last_ms": 2, "rules_before": "512b1fda0745",
    "rules_after": "5cb092d9701e", "applied": True,
    "thresholds": [
        {"parameter": "hesitant_min_views", "segment": "interested_but_hesitant", "before": 2, "after": 6,
         "decision": "apply", "before_heldout": _figures(326, 0.6, 0.89, 0.696),
         "after_heldout": _figures(133, 1.0, 0.62, 0.905), "before_train": _figures(841, 0.597, 0.89, 0.639),
         "after_train": _figures(314, 1.0, 0.621, 0.891)},
        {"parameter": "abandon_after", "segment": "cart_abandoner", "before": "30m", "after": "30m",
         "decision": "keep: the value in force scores best on the earlier part",
         "before_heldout": _figures(104, 1.0, 1.0, 1.0), "after_heldout": _figures(104, 1.0, 1.0, 1.0),
         "before_train": _figures(404, 1.0, 1.0, 1.0), "after_train": _figures(404, 1.0, 1.0, 1.0)},
    ],
    "blend": {"before": {"mf": 0.25, "content": 1.0, "recent": 1.0, "popular": 0.5, "covisit": 1.0},
              "after": {"mf": 0.25, "content": 1.0, "recent": 1.0, "popular": 1.0, "covisit": 1.0},
              "decision": "apply", "before_heldout_recall10": 0.5284, "after_heldout_recall10": 0.5508,
              "before_train_recall10": 0.5764, "after_train_recall10": 0.5921},
}


def enter(writer: RedisAudienceWriter, users: range, segment: str) -> None:
    for n in users:
        user = f"{segment}-{n}"
        change = SegmentChange(user, segment, "rule", ENTER, "r", {}, "event", 1, f"m-{user}")
        writer.write(user, ProfileState(segments=[segment]), [change], [segment_change.encode(change, 2)])
    writer.flush()


def audiences(url: str) -> dict:
    with urllib.request.urlopen(url + "/v1/audiences", timeout=10) as response:
        return json.loads(response.read())


def test_the_dashboard_shows_audiences_over_time_and_the_experiment(browser, tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    settings = Settings(redis_port=server.port, redis_prefix=PREFIX, experiments_file=EXPERIMENTS)
    writer = RedisAudienceWriter("127.0.0.1", server.port, PREFIX)
    enter(writer, range(30), "weekly_active")
    enter(writer, range(8), "interested_but_hesitant")
    [experiment] = load_experiments(EXPERIMENTS)
    outcomes = {  # 15,000 users per arm, a planted lift, everyone and one segment
        ("hero-discount", "control", "*"): Outcome(15_000, 750, 1_500, 4_500, 15_000 * 40_000),
        ("hero-discount", "discount", "*"): Outcome(15_000, 900, 1_800, 4_200, 15_000 * 46_000),
        ("hero-discount", "control", "interested_but_hesitant"): Outcome(15_000, 750, 1_500, 4_500, 0),
        ("hero-discount", "discount", "interested_but_hesitant"): Outcome(15_000, 900, 1_800, 4_200, 0),
    }
    rows = stream_rows(experiment, outcomes)
    store(settings, experiment.name, experiment_report.encode(experiment.name, rows, int(time.time() * 1000), 60_000))
    recalibration_log.append(settings, recalibration.encode(RECALIBRATION))
    try:
        with running_server(settings, tmp_path / "serve.log") as url:
            wait_for(lambda: len(audiences(url)["sampled_at"]) >= 1, 15, "the first audience sample")
            enter(writer, range(30, 45), "weekly_active")  # the audience grows between samples
            wait_for(lambda: audiences(url)["segments"].get("weekly_active", [0])[-1] == 45, 15, "a later sample")
            sampled = audiences(url)
            browser.set_window_size(1640, 900)
            browser.get(url + "/dashboard")
            audience_rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audiences tr")][1:]
            decisions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "table.experiment td.significant")]
            points = browser.find_element(By.CSS_SELECTOR, "#audiences polyline").get_attribute("points")
            recalibrated = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#recalibrations tr")][1:]
            picture = tmp_path / "dashboard.png"
            browser.save_screenshot(str(picture))
    finally:
        server.stop()

    assert sampled["segments"]["weekly_active"][0] == 30 and sampled["segments"]["interested_but_hesitant"][-1] == 8
    assert audience_rows[0].startswith("weekly_active 45") and audience_rows[1].startswith("interested_but_hesitant 8")
    assert len(points.split()) >= 2  # a line over time, not a point
    assert decisions == ["significant", "significant"]  # everyone and the segment, as the report says
    assert [r["decision"] for r in rows] == ["significant", "significant"]
    assert recalibrated[0].endswith("hesitant_min_views (interested_but_hesitant) 2 → 6 F 0.696 → 0.905 apply")
    assert "abandon_after (cart_abandoner) 30m → 30m" in recalibrated[1]
    assert "recommendation blend popular 0.5 → 1.0" in recalibrated[2]
    assert recalibrated[2].endswith("Recall@10 0.5284 → 0.5508 apply")
    assert picture.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("TAILOR_SCREENSHOTS"):
        shutil.copy(picture, Path(os.environ["TAILOR_SCREENSHOTS"]) / "dashboard.png")
