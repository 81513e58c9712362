"""The Tracking API's request semantics: batch defaults, clock-skew correction, ids, limits, write keys."""

import base64

import pytest

from operators.normalize import normalize
from operators.tracking_api import MAX_MESSAGE_BYTES, TrackingApiError, messages, write_key

RECEIVED = 1_795_687_200_000  # 2026-11-26T10:00:00Z


def test_batch_context_fills_only_what_a_message_lacks() -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": "e", "context": {"ip": "own"}},
                      {"type": "track", "userId": "u", "event": "e"}],
            "context": {"ip": "batch"}, "integrations": {"All": False}}
    first, second = messages("batch", body, RECEIVED)
    assert first["context"] == {"ip": "own"} and second["context"] == {"ip": "batch"}
    assert first["integrations"] == second["integrations"] == {"All": False}


def test_timestamp_is_the_device_time_corrected_for_its_clock_skew() -> None:
    # The device's clock is 1 h behind: it sent at 09:00:00 (its time), we received at 10:00:00.
    body = {"batch": [{"type": "track", "userId": "u", "event": "e", "originalTimestamp": "2026-11-26T08:59:50Z"}],
            "sentAt": "2026-11-26T09:00:00Z"}
    [m] = messages("batch", body, RECEIVED)
    assert m["timestamp"] == "2026-11-26T09:59:50.000Z" and m["receivedAt"] == "2026-11-26T10:00:00.000Z"
    [given] = messages("track", {"userId": "u", "event": "e", "timestamp": "2026-01-01T00:00:00Z"}, RECEIVED)
    assert given["timestamp"] == "2026-01-01T00:00:00Z"


def test_a_missing_message_id_is_the_same_for_the_same_message() -> None:
    """A retried request without messageIds must still be deduplicated by the job."""
    first = messages("track", {"userId": "u", "event": "e", "timestamp": "2026-01-01T00:00:00Z"}, RECEIVED)
    retry = messages("track", {"userId": "u", "event": "e", "timestamp": "2026-01-01T00:00:00Z"}, RECEIVED + 5)
    other = messages("track", {"userId": "v", "event": "e", "timestamp": "2026-01-01T00:00:00Z"}, RECEIVED)
    # receivedAt differs between the two attempts, so the id is taken before it is stamped
    assert first[0]["messageId"] == retry[0]["messageId"] != other[0]["messageId"]


def test_completed_messages_pass_the_job_s_schema() -> None:
    for method, body in [("track", {"userId": "u", "event": "Product Viewed", "properties": {"product_id": 1}}),
                         ("identify", {"userId": "u", "traits": {"plan": "pro"}}),
                         ("page", {"anonymousId": "a", "name": "Home"}),
                         ("alias", {"userId": "u", "previousId": "a"})]:
        [m] = messages(method, body, RECEIVED)
        assert normalize(__import__("orjson").dumps(m), now_ms=RECEIVED).message_id == m["messageId"]


def test_limits_and_malformed_batches_are_refused_with_a_status() -> None:
    with pytest.raises(TrackingApiError) as big:
        messages("track", {"userId": "u", "event": "e", "properties": {"x": "a" * MAX_MESSAGE_BYTES}}, RECEIVED)
    assert big.value.status == 400 and "32 KB" in big.value.message
    for body in ({}, {"batch": []}, {"batch": "x"}, {"batch": [1]}):
        with pytest.raises(TrackingApiError) as bad:
            messages("batch", body, RECEIVED)
        assert bad.value.status == 400


def test_write_key_from_basic_auth_or_body() -> None:
    basic = "Basic " + base64.b64encode(b"KEY:").decode()
    assert write_key(basic, {}) == "KEY"
    assert write_key(None, {"writeKey": "BODY"}) == "BODY"
    assert write_key("Basic !!!", {}) is None and write_key(None, {}) is None
    assert "writeKey" not in messages("track", {"userId": "u", "event": "e", "writeKey": "BODY"}, RECEIVED)[0]
