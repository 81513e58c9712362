"""The snippet in a real headless Chromium (Debian's chromium + chromium-driver, installed here if missing):
the demo shop page gets a hesitant shopper's discount and a stranger's default from ``tailor serve``; with
the API down the slots keep their default markup; content views and clicks reach the collector.

The profiles are written by the job's own Redis writer into a redis-server of the test's own.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from connectors.kafka_events import read_topic
from connectors.redis_audiences import RedisAudienceWriter
from settings import Settings
from stack import apt
from stack.process import free_port
from stack.service_process import running_collector, running_server
from state_schemas import segment_change
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import ENTER, SegmentChange
from tests.integration.harness import isolated_settings
from tests.private_redis import RedisServer

pytestmark = pytest.mark.integration

SNIPPET = Path(__file__).resolve().parents[2] / "connectors" / "web"
KEY = "browser-key"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        apt.install(["chromium", "chromium-driver"], "the browser test needs Chromium")
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def redis_with_profiles(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("browser-redis"))
    server.start()
    writer = RedisAudienceWriter("127.0.0.1", server.port, "browser:")
    change = SegmentChange("hesitant-1", "interested_but_hesitant", "rule", ENTER, "r", {}, "event", 1, "m1")
    writer.write("hesitant-1", ProfileState(segments=["interested_but_hesitant"]), [change],
                 [segment_change.encode(change, 2)])
    writer.write_recommendations("hesitant-1", orjson.dumps({
        "schema": "tailor.recommendation/1", "user_id": "hesitant-1", "model_version": "v", "message_id": "m",
        "event_time": 1, "emit_time": 2, "items": [{"item_id": "p7", "score": 1.0, "source": "covisit"}]}))
    writer.flush()
    yield server
    server.stop()


def slot(browser: webdriver.Chrome, name: str, timeout_s: float = 5.0):
    """The slot element once the snippet has marked it (a decision or the default)."""
    css = f'[data-tailor-slot="{name}"][data-tailor-variation]'
    WebDriverWait(browser, timeout_s).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))
    return browser.find_element(By.CSS_SELECTOR, css)


def test_the_shop_shows_each_visitor_their_variation(browser, redis_with_profiles, stack_settings, tmp_path) -> None:
    settings = isolated_settings(stack_settings, "browser")  # its topics, for the collector
    serving = Settings(redis_port=redis_with_profiles.port, redis_prefix="browser:")
    with running_server(serving, tmp_path / "serve.log") as api, \
            running_collector(settings, KEY, tmp_path / "collector.log") as collector:
        start = time.perf_counter()
        browser.get(f"{api}/shop?user=hesitant-1&collector={collector}&key={KEY}")
        hero = slot(browser, "hero")
        shown_after = time.perf_counter() - start
        assert hero.get_attribute("data-tailor-variation") == "discount"
        assert "10% off" in hero.text and hero.get_attribute("data-tailor-rule") == "hesitant_discount"
        assert slot(browser, "recommendations").get_attribute("data-tailor-variation") == "popular"
        hero.click()
        browser.get(f"{api}/shop?user=stranger")
        assert slot(browser, "hero").get_attribute("data-tailor-variation") == "onboarding"
        deadline = time.monotonic() + 10
        events = []
        while time.monotonic() < deadline and len(events) < 3:
            events = [orjson.loads(r.value) for r in read_topic(settings.kafka_bootstrap, settings.events_topic)]
            time.sleep(0.3)
    print(f"\npersonalised hero shown {shown_after * 1000:.0f} ms after the page was requested")
    assert shown_after < 1.0
    names = sorted((e["event"], e["properties"]["slot"]) for e in events)
    assert names == [("Content Clicked", "hero"), ("Content Viewed", "hero"), ("Content Viewed", "recommendations")]
    assert {e["userId"] for e in events} == {"hesitant-1"}


def test_with_the_api_down_the_slots_keep_their_default(browser, tmp_path) -> None:
    """The page comes from a static server; the API it points at is not listening."""
    (tmp_path / "shop.html").write_bytes((SNIPPET / "shop.html").read_bytes())
    (tmp_path / "tailor.js").write_bytes((SNIPPET / "tailor.js").read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    static = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=static.serve_forever, daemon=True).start()
    try:
        dead_api = f"http://127.0.0.1:{free_port()}"
        browser.get(f"http://127.0.0.1:{static.server_port}/shop.html?user=hesitant-1&api={dead_api}")
        hero = slot(browser, "hero")
        assert hero.get_attribute("data-tailor-variation") == "default"
        assert hero.get_attribute("data-tailor-reason") == "error"
        assert hero.text == "Welcome to the shop."
    finally:
        static.shutdown()
