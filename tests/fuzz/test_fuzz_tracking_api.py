"""Fuzz the collector's request path without HTTP: parsed body -> ``tracking_api.messages`` -> ``normalize``.

Any body orjson parses (as the collector does) must either be refused with a ``TrackingApiError`` (an HTTP
status and message) or turn into messages that ``normalize`` accepts or rejects with ``InvalidEvent``;
nothing else may raise (an uncaught exception would be a 500 and a dropped request).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.normalize import InvalidEvent, normalize
from operators.tracking_api import BATCH, SINGLE, TrackingApiError, messages
from tests.fuzz.segment_strategies import NOW, segment_messages, to_json

pytestmark = pytest.mark.slow

METHODS = st.sampled_from([*sorted(SINGLE | BATCH), "order", ""])
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
          HealthCheck.filter_too_much]


def body_of(method: str, message_texts: list[str], sent_at: Any) -> str:
    if method in BATCH:
        return '{"batch":[' + ",".join(message_texts) + '],"sentAt":' + to_json(sent_at) + ',"context":{"ip":"x"}}'
    return message_texts[0] if message_texts else "{}"


@settings(max_examples=1_500, deadline=None, suppress_health_check=HEALTH, derandomize=True)
@given(method=METHODS, batch=st.lists(segment_messages(), min_size=0, max_size=4),
       sent_at=st.one_of(st.just("2026-11-26T10:00:00Z"), st.none(), st.integers(), st.text(max_size=5)))
def test_any_parsed_body_is_refused_or_validated_never_raises(method: str, batch: list[Any], sent_at: Any) -> None:
    try:
        body = orjson.loads(body_of(method, [to_json(m) for m in batch], sent_at))
    except orjson.JSONDecodeError:
        return  # the collector answers 400 before the API semantics
    if not isinstance(body, dict):
        return  # likewise
    try:
        out = messages(method, body, NOW)
    except TrackingApiError as e:
        assert e.status in (400, 403, 404, 413) and e.message
        return
    for message in out:
        assert message["receivedAt"] and message["messageId"]
        try:
            normalize(orjson.dumps(message), now_ms=NOW)
        except InvalidEvent:
            pass
