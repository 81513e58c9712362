"""The published input schema and ``normalize`` agree: schema-valid <=> normalize accepts.

Property test with hypothesis over messages built around the schema's fields, valid ones and mutations of
each (wrong types, deep nesting, missing, extra and empty fields, values at and past every bound, huge
payloads). The schema is checked with the ``jsonschema`` library, an implementation independent of
``normalize``; event times are read by a reference parser of the test's own (``reference_ms``).

Three rules a static schema cannot state are applied explicitly on top of it, as the schema's description
documents them:

* the event time lies in 2000-01-01 .. now + 1 day (now pinned to ``NOW``) -> else ``invalid_timestamp``;
* the payload is at most 64 KiB -> else ``too_large``;
* JSON nests at most 1024 levels (orjson's limit) -> else ``invalid_json``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings

from operators import normalize as normalize_module
from operators.event_names import canonical_name
from operators.normalize import InvalidEvent, normalize
from tests.fuzz.segment_strategies import (
    MAX_DEPTH,
    MAX_MS,
    MAX_PAYLOAD_BYTES,
    MIN_MS,
    NOW,
    depth,
    event_time_field,
    reference_ms,
    segment_messages,
    to_json,
    to_value,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "state_schemas" / "segment_event.schema.json"


def load_validator(path: Path = SCHEMA_PATH) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


VALIDATOR = load_validator()


def expectation(message: Any, raw: bytes, validator: jsonschema.protocols.Validator) -> tuple[bool, str]:
    """(accept?, why) per the schema plus the three documented non-static rules."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        return False, "too_large"
    if depth(message) > MAX_DEPTH:
        return False, "invalid_json"
    value = to_value(message)
    if not _is_valid(validator, value):
        return False, "schema"
    ms = reference_ms(event_time_field(value))
    if ms is None:  # the schema accepted an event time the reference cannot read
        return True, "unreadable-time"
    if not MIN_MS <= ms <= MAX_MS:
        return False, "invalid_timestamp"
    return True, ""


def _is_valid(validator: jsonschema.protocols.Validator, value: Any) -> bool:
    """``jsonschema`` puts ``repr(instance)`` in its errors: a value nested ~1000 deep needs a deeper stack."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * MAX_DEPTH + 1000))
    try:
        return validator.is_valid(value)
    finally:
        sys.setrecursionlimit(limit)


def disagreement(
    message: Any,
    normalize_fn: Callable[..., Any] = normalize,
    validator: jsonschema.protocols.Validator = VALIDATOR,
    error: type[Exception] = InvalidEvent,
) -> str | None:
    """None when schema (+ the documented rules) and normalize agree on ``message``, else what differs."""
    raw = to_json(message).encode()
    expected, why = expectation(message, raw, validator)
    try:
        event = normalize_fn(raw, now_ms=NOW)
    except error as exc:
        if expected:
            return f"schema accepts ({why or 'valid'}), normalize rejects: {exc}"
        if why in ("too_large", "invalid_json", "invalid_timestamp") and exc.code != why:  # type: ignore[attr-defined]
            return f"expected {why}, normalize says {exc}"
        return None
    if not expected:
        return f"schema rejects ({why}), normalize accepts"
    if why == "unreadable-time":
        return "schema accepts an event time the reference parser cannot read"
    value = to_value(message)
    user = value.get("userId") if value.get("userId") not in (None, "") else value.get("anonymousId")
    actual = (event.message_id, event.user_key, event.timestamp)
    wanted = (_id_text(value["messageId"]), _id_text(user), reference_ms(event_time_field(value)))
    return None if actual == wanted else f"accepted as {actual}, expected {wanted}"


def _id_text(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) else str(value)


@pytest.mark.slow
@settings(
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(message=segment_messages())
def test_schema_valid_iff_normalize_accepts(message: Any) -> None:
    assert disagreement(message) is None


# -- the pieces the property rests on --------------------------------------------------------------


def test_schema_states_normalize_bounds_verbatim() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    defs = schema["$defs"]

    assert defs["eventTime"]["pattern"] == normalize_module.TIMESTAMP_PATTERN
    assert defs["eventTime"]["minimum"] == normalize_module.MIN_TIMESTAMP_MS == MIN_MS
    assert (defs["integerId"]["minimum"], defs["integerId"]["maximum"]) == (
        normalize_module.MIN_INTEGER_ID,
        normalize_module.MAX_INTEGER_ID,
    )
    assert defs["optionalId"]["maxLength"] == schema["properties"]["messageId"]["maxLength"] == 256
    assert normalize_module.MAX_ID_LENGTH == 256
    assert normalize_module.MAX_PAYLOAD_BYTES == MAX_PAYLOAD_BYTES
    assert MAX_MS == NOW + normalize_module.MAX_FUTURE_SKEW_MS


def test_schema_event_pattern_is_exactly_a_character_the_canonical_name_keeps() -> None:
    """``event`` needs a character that survives ``canonical_name`` (an ASCII letter or digit once
    lower-cased): the schema's character class is exactly that set."""
    schema = json.loads(SCHEMA_PATH.read_text())
    track = next(rule for rule in schema["allOf"] if "then" in rule)
    named = re.compile(track["then"]["properties"]["event"]["pattern"])  # as jsonschema applies it

    differing = [c for c in map(chr, range(0x110000)) if (named.search(c) is not None) != bool(canonical_name(c))]

    assert differing == []


@pytest.mark.parametrize(
    ("message", "accepted"),
    [
        ({"userId": 1001.0}, True),  # a zero fraction is the integer, for JSON Schema and normalize
        ({"userId": 2**63 - 1}, True),
        ({"userId": 2**63}, False),
        ({"userId": -(2**63) + 1}, True),
        ({"userId": -(2**63)}, False),  # orjson reads any integer below it as this float: the bound excludes it
        ({"userId": -(2**63) - 1}, False),
        ({"userId": "u" * 257}, False),
        ({"messageId": 17}, True),
        ({"type": "TRAC\u212a"}, False),  # KELVIN SIGN lower-cases to "k" in Python, not in the schema
        ({"type": "track\n"}, False),  # Python's "$" would match before the newline
        ({"event": "\u3000\x1c"}, False),
        ({"event": "\u200b"}, False),  # not white space, but nothing the canonical name keeps
        ({"event": ":"}, False),  # only punctuation: the canonical name would be empty
        ({"event": " Product Viewed! "}, True),
        ({"event": "\u212a"}, True),  # KELVIN SIGN: "k" once lower-cased
        ({"event": "x" * 201}, False),
        ({"timestamp": None, "sentAt": "2026-11-26T10:00:00Z"}, True),
        ({"timestamp": "2026-11-26T10:00:00Z", "sentAt": {"not": "checked"}}, True),
        ({"timestamp": "2026-11-26t10:00:00,5+0530"}, True),
        ({"timestamp": "2026-11-26T10:00Z"}, True),
        ({"timestamp": "2026-11-26T10:00:00z"}, False),
        ({"timestamp": "2024-02-29T10:00:00Z"}, True),
        ({"timestamp": "2023-02-29T10:00:00Z"}, False),
        ({"timestamp": "2026-11-26T10:00:00Z\n"}, False),
        ({"timestamp": "２０２６-11-26T10:00:00Z"}, False),
        ({"properties": None}, True),
        ({"properties": {"product_id": ["p1"]}}, False),
        ({"properties": {"product_id": "p1", "id": {"any": "thing"}}}, False),
        ({"properties": {"category": 7.0}}, True),
        ({"name": ["not", "checked"], "context": 5, "traits": None, "previousId": {}}, True),
    ],
)
def test_schema_and_normalize_agree_on_the_edges(message: dict[str, Any], accepted: bool) -> None:
    full = {"type": "track", "event": "Product Viewed", "messageId": "m1", "userId": "u1",
            "timestamp": "2026-11-26T10:00:00Z"}
    full.update(message)

    assert (VALIDATOR.is_valid(full), disagreement(full)) == (accepted, None)
