"""read_taobao / parse_lines: the real Taobao sample and every way a row can be rejected."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from connectors.taobao_csv import RejectedRow, TaobaoEvent, parse_lines, read_taobao
from operators.normalize import normalize
from settings import PROJECT_ROOT

TAOBAO = PROJECT_ROOT.parent / "shared" / "data" / "taobao" / "user_behavior_sample.csv"
NOW_MS = 1_795_687_200_000  # 2026-11-26T10:00:00Z
TRUNCATED = "timestamp '15' is not a plausible epoch-seconds value (row looks truncated: no trailing newline)"
COLUMNS = "expected 5 columns (user_id,item_id,category_id,behavior,timestamp)"
NOT_PLAUSIBLE = "is not a plausible epoch-seconds value"
NOT_INTEGER = "must be a non-negative integer"
CODES = "expected one of buy, cart, fav, pv"


@pytest.fixture(scope="module")
def sample_rows() -> list[TaobaoEvent | RejectedRow]:
    assert TAOBAO.is_file(), f"{TAOBAO} is missing: the shared data must sit beside the project"
    return list(read_taobao(TAOBAO, now_ms=NOW_MS))


def test_read_taobao_sample_has_one_truncated_last_row(sample_rows):
    rejected = [r for r in sample_rows if isinstance(r, RejectedRow)]

    # 96,169 lines: the last one, without a trailing newline, is cut off mid-timestamp.
    assert len(sample_rows) == 96_169
    assert rejected == [
        RejectedRow(96_169, "301780,543546,4181361,pv,15", "implausible_timestamp", TRUNCATED)
    ]
    assert str(rejected[0]) == f"line 96169: {TRUNCATED}"


def test_read_taobao_sample_counts_by_behavior(sample_rows):
    counts = Counter(r.event["event"] for r in sample_rows if isinstance(r, TaobaoEvent))

    # `cut -d, -f4 | sort | uniq -c` gives pv 85,774: that includes the truncated (pv) row.
    assert counts == {
        "Product Viewed": 85_773,
        "Product Added": 5_292,
        "Product Added to Wishlist": 2_959,
        "Order Completed": 2_144,
    }


def test_read_taobao_sample_first_event_is_segment_spec(sample_rows):
    assert sample_rows[0] == TaobaoEvent(
        1,
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": "taobao-1",
            "userId": "543462",
            "timestamp": "2017-11-26T01:00:00.000Z",
            "properties": {"product_id": "1715", "category": "1464116"},
        },
    )


def test_read_taobao_sample_events_all_normalize(sample_rows):
    good = [r.event for r in sample_rows if isinstance(r, TaobaoEvent)]

    events = [normalize(orjson.dumps(event), now_ms=NOW_MS) for event in good]


    assert Counter(e.name for e in events) == {
        "product_viewed": 85_773,
        "product_added": 5_292,
        "product_favorited": 2_959,
        "order_completed": 2_144,
    }
    assert len({e.message_id for e in events}) == len(events)
    assert min(e.timestamp for e in events) == 1_511_658_000_000  # 2017-11-26T01:00:00Z


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        ("1,2,3,pv\n", "wrong_column_count", f"{COLUMNS}, got 4"),
        ("1,2,3,pv,1511658000,9\n", "wrong_column_count", f"{COLUMNS}, got 6"),
        ("\n", "wrong_column_count", f"{COLUMNS}, got 0"),
        ("user_id,item,category,behavior,ts\n", "invalid_number", f"user_id 'user_id' {NOT_INTEGER}"),
        ("1,-2,3,pv,1511658000\n", "invalid_number", "item_id '-2' " + NOT_INTEGER),
        ("1,2,3x,pv,1511658000\n", "invalid_number", "category_id '3x' " + NOT_INTEGER),
        ("1,2,3,click,1511658000\n", "unknown_behavior", f"behavior 'click' is unknown; {CODES}"),
        ("1,2,3,pv,15\n", "implausible_timestamp", "timestamp '15' " + NOT_PLAUSIBLE),
        ("1,2,3,pv,1511658000000\n", "implausible_timestamp", "timestamp '1511658000000' " + NOT_PLAUSIBLE),
        ("1,2,3,pv,2017-11-26\n", "implausible_timestamp", "timestamp '2017-11-26' " + NOT_PLAUSIBLE),
    ],
)
def test_parse_lines_rejects_bad_rows_with_reason(line, error, reason):
    assert list(parse_lines([line], now_ms=NOW_MS)) == [RejectedRow(1, line.rstrip("\n"), error, reason)]


def test_parse_lines_accepts_crlf_and_a_complete_last_row_without_newline():
    rows = list(parse_lines(["1,2,3,cart,1511658000\r\n", "4,5,6,buy,1511658001"], now_ms=NOW_MS))

    assert [(r.line, r.event["event"], r.event["userId"], r.event["timestamp"]) for r in rows] == [
        (1, "Product Added", "1", "2017-11-26T01:00:00.000Z"),
        (2, "Order Completed", "4", "2017-11-26T01:00:01.000Z"),
    ]


def test_parse_lines_rejects_timestamps_more_than_a_day_ahead():
    day_and_a_bit = NOW_MS // 1000 + 86_400 + 60

    in_an_hour = NOW_MS // 1000 + 3600

    rows = list(parse_lines([f"1,2,3,pv,{in_an_hour}\n", f"1,2,3,pv,{day_and_a_bit}\n"], now_ms=NOW_MS))

    assert [type(r).__name__ for r in rows] == ["TaobaoEvent", "RejectedRow"]


def test_parse_lines_keeps_going_after_bad_rows():
    rows = list(parse_lines(["bad\n", "1,2,3,fav,1511658000\n", "x\n"], now_ms=NOW_MS))

    assert [(type(r).__name__, r.line) for r in rows] == [
        ("RejectedRow", 1), ("TaobaoEvent", 2), ("RejectedRow", 3)
    ]
    assert rows[1].event["messageId"] == "taobao-2"
