"""Fuzz the job's path for one record: ``Segmenter.process(raw)`` = normalize, then the per-user step with
its state (encoded and decoded on every step, as Flink's state is), with the default rules.

Hypothesis generates at least 10,000 records: near-valid Segment messages with hostile field values, runs
of valid events for a few users (so the step sees existing state and timers), raw bytes, arbitrary JSON
text, NaN/Infinity literals and numbers beyond any range, JSON nested up to a few thousand levels (as text),
invalid UTF-8 and surrogates, payloads around the 64 KiB limit, and ``None`` tombstones. Every record must
either pass or become a ``tailor.dead_letter/1`` record with a documented code, the original payload and a
short reason; nothing may raise. The totals (records, accepted, dead-letter codes) are printed at the end.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.privacy import Privacy
from operators.segment_rules import SegmentRules
from operators.segmenter import EncodedProfileStore, Segmenter
from settings import PROJECT_ROOT
from state_schemas import dead_letter
from tests.fuzz.segment_strategies import (
    ABSENT,
    DAY,
    HOSTILE,
    JSON,
    MAX_PAYLOAD_BYTES,
    NOW,
    iso_times,
    segment_messages,
    to_json,
)

pytestmark = pytest.mark.slow

RULES = SegmentRules.from_yaml(PROJECT_ROOT / "config" / "segments.yaml")
CODES = frozenset(  # README, Contracts: every code normalize may give
    ["tombstone", "invalid_json", "invalid_utf8", "not_an_object", "too_large", "missing_type", "unknown_type",
     "missing_message_id", "invalid_message_id", "missing_user", "invalid_user_id", "invalid_anonymous_id",
     "invalid_timestamp", "missing_timestamp", "missing_event_name", "invalid_event_name", "invalid_properties"]
)
MAX_REASON = 1_000
EXAMPLES = {"messages": 2_200, "raw": 1_400, "nesting": 900, "sessions": 500}
STATS: Counter[str] = Counter()  # records, accepted, changes, dead:<code>, per-test example counts

HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
          HealthCheck.filter_too_much]

# -- records ------------------------------------------------------------------------------------------

BASE = {"type": "track", "event": "Product Viewed", "messageId": "m1", "userId": "u1",
        "timestamp": "2026-11-26T10:00:00Z", "properties": {"product_id": "p1", "category": "shoes"}}
FIELDS = ("userId", "anonymousId", "messageId", "timestamp", "originalTimestamp", "sentAt", "type", "event",
          "properties", "product_id", "category", "context")


def with_field(field: str, value_json: str) -> bytes:
    """BASE with ``field`` (a top-level field or a property) set to raw JSON text."""
    msg = dict(BASE)
    key = "properties" if field in ("product_id", "category") else field
    msg[key] = "@@"
    text = json.dumps(msg)
    if key == "properties":
        value_json = '{"' + field + '":' + value_json + "}"
    return text.replace('"@@"', value_json).encode()


def nested(depth: int, kind: str, leaf: str) -> str:
    if kind == "array":
        return "[" * depth + leaf + "]" * depth
    if kind == "object":
        return '{"k":' * depth + leaf + "}" * depth
    return '[{"k":' * (depth // 2) + leaf + "}]" * (depth // 2)


NESTING = st.builds(
    with_field,
    st.sampled_from(FIELDS),
    st.builds(
        nested,
        st.one_of(st.integers(1, 5_000), st.integers(990, 1_030), st.sampled_from([1_023, 1_024, 1_025, 2_047])),
        st.sampled_from(["array", "object", "mixed"]),
        st.sampled_from(["1", '"x"', "null", "[]", "{}"]),
    ),
)
TOP_LEVEL_NESTING = st.builds(lambda d: ("[" * d + "]" * d).encode(), st.integers(1, 5_000))

LITERALS = st.one_of(
    st.sampled_from(
        ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e308", "-1e308", "-" + "9" * 30, "18446744073709551616",
         "-9223372036854775809", "9223372036854775807", "0.0000001", "5e-324", '"\\ud800"', '"\\udc00x"',
         '"\\u0000"', "true", "[]", "{}", '""']
    ),
    st.builds(lambda n: "1" * n, st.integers(20, 5_000)),  # integers far beyond 64 bits, and beyond a double
    st.builds(lambda n: '"' + "x" * n + '"', st.integers(250, 70_000)),
)
HOSTILE_FIELD = st.builds(with_field, st.sampled_from(FIELDS), LITERALS)


def with_value(field: str, value: Any) -> bytes:
    if value is ABSENT:
        msg = dict(BASE)
        msg.pop(field, None)
        return json.dumps(msg).encode()
    return with_field(field, to_json(value))


HOSTILE_VALUE = st.builds(with_value, st.sampled_from(FIELDS), HOSTILE)

RAW = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda b: json.dumps(BASE).encode()[: len(b)] + b, st.binary(min_size=1, max_size=40)),
    st.sampled_from([b"", b"\xff\xfe{}", b'{"userId":"\xed\xa0\x80"}', b"\xc3\x28", b"{" * 10, b"null", b"[]",
                     b'{"type":"track"}' * 3, b"\x00", b"\xef\xbb\xbf{}"]),
    st.builds(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"), JSON),
    st.builds(lambda s: s.encode("utf-8", "surrogatepass"), st.text(st.characters(), max_size=50)),
)


def padded(size: int) -> bytes:
    text = json.dumps({**BASE, "context": {"pad": ""}})
    return text.replace('"pad": ""', '"pad": "' + "x" * max(0, size - len(text) - 1) + '"').encode()


BIG = st.one_of(
    st.builds(padded, st.integers(MAX_PAYLOAD_BYTES - 4, MAX_PAYLOAD_BYTES + 4)),
    st.builds(padded, st.integers(10_000, 200_000)),
    st.builds(lambda n: ("[" + ",".join(["1e308"] * n) + "]").encode(), st.integers(1_000, 12_000)),
)
MESSAGES = st.builds(lambda m: to_json(m).encode(), segment_messages())
TOMBSTONE = st.none()


@st.composite
def session(draw: st.DrawFn) -> list[bytes]:
    """Valid events for a few users (state, duplicates, timers), now and then one hostile record between."""
    out = []
    start = draw(st.integers(NOW - 40 * DAY, NOW - DAY))
    for i in range(draw(st.integers(2, 8))):
        start += draw(st.integers(0, 3 * 3_600_000))
        msg = {
            "type": draw(st.sampled_from(["track", "track", "track", "page", "identify"])),
            "event": draw(st.sampled_from(["Product Viewed", "Product Added", "Order Completed", "pv", "cart"])),
            "messageId": f"m{draw(st.integers(0, 5))}" if draw(st.booleans()) else f"m-{i}",
            draw(st.sampled_from(["userId", "anonymousId"])): draw(st.sampled_from(["u1", "u2", 7, "a-1"])),
            "timestamp": draw(st.one_of(st.just(start), iso_times(start, start))),
            "properties": {"product_id": draw(st.sampled_from(["p1", "p2", 3])), "category": "shoes"},
        }
        out.append(json.dumps(msg).encode())
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(st.one_of(HOSTILE_VALUE, NESTING, TOMBSTONE)))
    return out


def bytes_like(raw: bytes | None, form: str) -> Any:
    if raw is None or form == "bytes":
        return raw
    return bytearray(raw) if form == "bytearray" else memoryview(raw)


FORMS = st.sampled_from(["bytes", "bytes", "bytes", "bytearray", "memoryview"])

# -- the job's path -------------------------------------------------------------------------------------


def run(records: list[Any]) -> None:
    """Every record through a fresh Segmenter (state shared between the records), then every timer fired."""
    letters: list[bytes] = []
    seg = Segmenter(RULES, on_dead_letter=letters.append, store=EncodedProfileStore())
    for raw in records:
        before = len(letters)
        emitted = seg.process(raw)
        STATS["records"] += 1
        STATS["changes"] += len(emitted)
        if len(letters) == before:
            STATS["accepted"] += 1
            continue
        assert len(letters) == before + 1
        check_dead_letter(letters[-1], raw)
    STATS["changes"] += len(seg.advance_watermark(max(seg.max_event_time, NOW) + 60 * DAY))


def check_dead_letter(letter: bytes, raw: Any) -> None:
    record = dead_letter.decode(letter)
    code = record["error"]
    STATS[f"dead:{code}"] += 1
    assert code in CODES, f"undocumented dead-letter code {code!r}: {record['reason'][:300]}"
    assert isinstance(record["reason"], str) and 0 < len(record["reason"]) <= MAX_REASON
    if raw is None:
        assert (code, record["original"]) == ("tombstone", "")
        return
    original = Privacy().original(bytes(raw))  # what a dead letter keeps: traits and context removed
    assert record["original"] == original.decode("utf-8", "replace")
    if "original_b64" in record:
        assert base64.b64decode(record["original_b64"]) == original


SETTINGS = {"deadline": None, "suppress_health_check": HEALTH, "database": None}


@settings(max_examples=EXAMPLES["messages"], **SETTINGS)
@given(st.lists(st.tuples(st.one_of(MESSAGES, HOSTILE_FIELD, HOSTILE_VALUE), FORMS), min_size=1, max_size=4))
def test_fuzz_near_valid_messages_with_hostile_fields(records: list[tuple[bytes, str]]) -> None:
    STATS["examples:messages"] += 1
    run([bytes_like(raw, form) for raw, form in records])


@settings(max_examples=EXAMPLES["raw"], **SETTINGS)
@given(st.lists(st.tuples(st.one_of(RAW, BIG, TOMBSTONE, LITERALS.map(str.encode)), FORMS), min_size=1, max_size=4))
def test_fuzz_raw_bytes_big_payloads_and_tombstones(records: list[tuple[bytes | None, str]]) -> None:
    STATS["examples:raw"] += 1
    run([bytes_like(raw, form) for raw, form in records])


@settings(max_examples=EXAMPLES["nesting"], **SETTINGS)
@given(st.lists(st.one_of(NESTING, TOP_LEVEL_NESTING), min_size=1, max_size=4))
def test_fuzz_deep_nesting_in_every_field(records: list[bytes]) -> None:
    STATS["examples:nesting"] += 1
    run(records)


@settings(max_examples=EXAMPLES["sessions"], **SETTINGS)
@given(st.lists(session(), min_size=1, max_size=3).map(lambda runs: [r for run_ in runs for r in run_]))
def test_fuzz_sessions_with_state_and_timers(records: list[bytes | None]) -> None:
    STATS["examples:sessions"] += 1
    run(records)


def test_fuzz_totals(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last: at least 10,000 records went through, none raised (every test above passed), and the
    dead-letter histogram is printed."""
    if any(STATS[f"examples:{name}"] < n for name, n in EXAMPLES.items()):
        pytest.skip(f"only with all the fuzz tests above run in full: {dict(STATS)}")
    codes = {k.removeprefix("dead:"): v for k, v in sorted(STATS.items()) if k.startswith("dead:")}
    with capsys.disabled():
        print(f"\nfuzz: {STATS['records']} records, {STATS['accepted']} accepted, {STATS['changes']} segment "
              f"changes, {sum(codes.values())} dead letters, 0 uncaught; by code: {codes}")
    assert STATS["records"] >= 10_000
    assert STATS["records"] == STATS["accepted"] + sum(codes.values())
    assert STATS["accepted"] > 1_000 and len(codes) >= 12
