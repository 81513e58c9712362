"""The dashboard of `tailor serve` in a real headless Chromium: audiences written by the job's own Redis
writer, sampled over time by the serving process, and the shipped experiment's stored report with its
per-segment rows; screenshot-tested (set TAILOR_SCREENSHOTS=DIR to keep the picture, e.g. docs/)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from connectors.experiment_results import store
from connectors.redis_audiences import RedisAudienceWriter
from evaluation.experiment_report import stream_rows
from operators.experiment_outcomes import Outcome
from operators.experiments import load_experiments
from settings import PROJECT_ROOT, Settings
from stack.service_process import running_server
from state_schemas import experiment_report, segment_change
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import ENTER, SegmentChange
from tests.integration.harness import wait_for
from tests.private_redis import RedisServer

pytestmark = pytest.mark.integration

PREFIX = "dash:"
EXPERIMENTS = PROJECT_ROOT / "config" / "experiments.yaml"


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
    try:
        with running_server(settings, tmp_path / "serve.log") as url:
            wait_for(lambda: len(audiences(url)["sampled_at"]) >= 1, 15, "the first audience sample")
            enter(writer, range(30, 45), "weekly_active")  # the audience grows between samples
            wait_for(lambda: audiences(url)["segments"].get("weekly_active", [0])[-1] == 45, 15, "a later sample")
            sampled = audiences(url)
            browser.set_window_size(1640, 660)
            browser.get(url + "/dashboard")
            audience_rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audiences tr")][1:]
            decisions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "table.experiment td.significant")]
            points = browser.find_element(By.CSS_SELECTOR, "#audiences polyline").get_attribute("points")
            picture = tmp_path / "dashboard.png"
            browser.save_screenshot(str(picture))
    finally:
        server.stop()

    assert sampled["segments"]["weekly_active"][0] == 30 and sampled["segments"]["interested_but_hesitant"][-1] == 8
    assert audience_rows[0].startswith("weekly_active 45") and audience_rows[1].startswith("interested_but_hesitant 8")
    assert len(points.split()) >= 2  # a line over time, not a point
    assert decisions == ["significant", "significant"]  # everyone and the segment, as the report says
    assert [r["decision"] for r in rows] == ["significant", "significant"]
    assert picture.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("TAILOR_SCREENSHOTS"):
        shutil.copy(picture, Path(os.environ["TAILOR_SCREENSHOTS"]) / "dashboard.png")
