"""``tailor collect`` on the real stack: an unmodified Segment SDK, the job segmenting what it sent, and
the Tracking API's refusals (write key, size, JSON), invalid events dead-lettered, gzip bodies."""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request

import orjson
import pytest
import segment.analytics as analytics

from connectors.kafka_events import read_topic
from settings import PROJECT_ROOT
from stack.service_process import running_collector
from state_schemas import dead_letter, segment_change
from tests.integration.harness import isolated_settings, run_bounded_job

pytestmark = pytest.mark.integration

KEY = "test-write-key"


def post(url: str, path: str, body: bytes, key: str | None = KEY, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url + path, data=body, method="POST", headers=dict(headers or {}))
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{key}:".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def collected(stack_settings, tmp_path_factory):
    """An SDK's calls through the collector; then the real job over the topic they landed in."""
    workdir = tmp_path_factory.mktemp("collector")
    settings = isolated_settings(stack_settings, "collector")
    errors: list[Exception] = []
    with running_collector(settings, KEY, workdir / "collector.log") as url:
        # Batched and gzip-compressed, as the SDK sends in production.
        client = analytics.Client(KEY, host=url, gzip=True, max_retries=1, on_error=lambda e, _: errors.append(e))
        for n in range(3):
            client.track("sdk-user", "Product Viewed", {"product_id": f"p{n}", "category": "shoes"},
                         message_id=f"sdk-view-{n}")
        client.track("sdk-user", "Product Added", {"product_id": "p2", "category": "shoes"}, message_id="sdk-add")
        client.identify("sdk-user", {"plan": "pro"}, message_id="sdk-identify")
        client.page("sdk-user", "Docs", "Intro", message_id="sdk-page")
        client.flush()
        client.shutdown()
        assert not errors
        refusals = {
            "bad key": post(url, "/v1/track", b'{"userId":"u","event":"x"}', key="wrong"),
            "no key": post(url, "/v1/track", b'{"userId":"u","event":"x"}', key=None),
            "not json": post(url, "/v1/track", b"{not json"),
            "too large": post(url, "/v1/batch", b'{"batch":[' + b'{"userId":"u"},' * 40_000 + b"{}]}"),
            "empty batch": post(url, "/v1/batch", b'{"batch":[]}'),
            "unknown endpoint": post(url, "/v1/order", b"{}"),
        }
        mixed = post(url, "/v1/batch", orjson.dumps({"batch": [
            {"type": "track", "event": "Product Viewed", "userId": "gz-user", "messageId": "gz-1",
             "properties": {"product_id": "p7"}},
            {"type": "track", "event": "No User", "messageId": "bad-1"},
        ]}))
        zipped = post(url, "/v1/track", gzip.compress(orjson.dumps(
            {"userId": "gz-user", "event": "Product Viewed", "messageId": "gz-2", "properties": {"product_id": "p8"}}
        )), headers={"Content-Encoding": "gzip"})
    events = [orjson.loads(r.value) for r in read_topic(settings.kafka_bootstrap, settings.events_topic)]
    keys = [r.key for r in read_topic(settings.kafka_bootstrap, settings.events_topic)]
    letters = [dead_letter.decode(r.value) for r in read_topic(settings.kafka_bootstrap, settings.dead_letters_topic)]
    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", workdir)
    changes = [segment_change.decode(r.value)
               for r in read_topic(settings.kafka_bootstrap, settings.segment_changes_topic)]
    return events, keys, letters, changes, refusals, mixed, zipped


def test_an_unmodified_sdk_s_events_arrive_unchanged_keyed_by_user(collected) -> None:
    events, keys, *_ = collected
    sdk = {e["messageId"]: e for e in events if e.get("userId") == "sdk-user"}
    assert set(sdk) == {"sdk-view-0", "sdk-view-1", "sdk-view-2", "sdk-add", "sdk-identify", "sdk-page"}
    assert sdk["sdk-add"]["event"] == "Product Added" and sdk["sdk-add"]["properties"] == {
        "product_id": "p2", "category": "shoes"}
    assert sdk["sdk-identify"]["type"] == "identify" and sdk["sdk-identify"]["traits"] == {"plan": "pro"}
    assert sdk["sdk-page"]["type"] == "page" and sdk["sdk-page"]["name"] == "Intro"
    assert all("receivedAt" in e and e["context"]["library"]["name"] == "analytics-python" for e in sdk.values())
    assert {k for k, e in zip(keys, events, strict=True) if e.get("userId") == "sdk-user"} == {b"sdk-user"}


def test_the_job_segments_what_the_sdk_sent(collected) -> None:
    *_, changes, _, _, _ = collected
    entered = {c["segment"] for c in changes if c["user_id"] == "sdk-user" and c["change"] == "enter"}
    assert "weekly_active" in entered


def test_refusals_say_what_is_wrong(collected) -> None:
    refusals = collected[4]
    assert refusals["bad key"][0] == refusals["no key"][0] == 401
    assert "write key" in refusals["bad key"][1]["message"]
    assert refusals["not json"][0] == 400 and "not JSON" in refusals["not json"][1]["message"]
    assert refusals["too large"][0] == 413 and "500 KB" in refusals["too large"][1]["message"]
    assert refusals["empty batch"][0] == 400
    assert refusals["unknown endpoint"][0] == 404 and "/v1/track" in refusals["unknown endpoint"][1]["message"]
    assert all(body["success"] is False for _, body in refusals.values())


def test_an_invalid_event_is_dead_lettered_and_listed_the_rest_stored(collected) -> None:
    events, _, letters, _, _, mixed, zipped = collected
    status, body = mixed
    assert status == 200 and body["stored"] == 1
    assert [(r["index"], r["error"]) for r in body["rejected"]] == [(1, "missing_user")]
    [letter] = letters
    assert letter["error"] == "missing_user" and orjson.loads(letter["original"])["messageId"] == "bad-1"
    assert zipped == (200, {"success": True, "stored": 1, "rejected": []})
    assert {"gz-1", "gz-2"} <= {e["messageId"] for e in events}
