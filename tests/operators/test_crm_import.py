"""operators.crm_import: one CRM row -> one identify message, deterministic, checked as the job checks it."""

from __future__ import annotations

import pytest

from operators.crm_import import ImportMapping, RowError
from operators.normalize import normalize

NOW = 1_795_737_600_000  # 2026-11-27T00:00:00Z
MAPPING = ImportMapping.from_dict({
    "source": "crm", "user_id": "id", "anonymous_id": "cookie", "timestamp": "at",
    "traits": {"email": "mail", "plan": "tier"}, "consent": {"personalization": "ok"},
})
ROW = {"id": "c-1", "cookie": "a-1", "at": "2026-11-26T10:00:00Z", "mail": "ann@example.com", "tier": "gold",
       "ok": "Yes"}


def test_a_row_becomes_an_inactive_identify_the_job_accepts() -> None:
    msg = MAPPING.message(ROW, NOW)

    assert msg["type"] == "identify" and (msg["userId"], msg["anonymousId"]) == ("c-1", "a-1")
    assert msg["traits"] == {"email": "ann@example.com", "plan": "gold"}
    assert msg["context"]["active"] is False
    assert msg["context"]["consent"] == {"categoryPreferences": {"personalization": True}}
    event = normalize(__import__("orjson").dumps(msg), now_ms=NOW)
    assert (event.name, event.user_key, event.consent) == ("traits_updated", "c-1", (("personalization", True),))


def test_the_message_id_is_the_rows_content_without_its_time() -> None:
    same = MAPPING.message({**ROW, "at": "2026-11-25T09:00:00Z"}, NOW)
    changed = MAPPING.message({**ROW, "tier": "silver"}, NOW)

    assert same["messageId"] == MAPPING.message(ROW, NOW)["messageId"]
    assert changed["messageId"] != same["messageId"]
    assert same["messageId"].startswith("crm-")


def test_empty_cells_are_left_out_and_a_missing_time_is_the_import_time() -> None:
    msg = MAPPING.message({"id": "c-2", "cookie": "", "at": "", "mail": "", "tier": "", "ok": ""}, NOW)

    assert "anonymousId" not in msg and "traits" not in msg and "consent" not in msg["context"]
    assert msg["timestamp"] == NOW


def test_jsonl_values_keep_their_types() -> None:
    msg = MAPPING.message({"id": 42, "mail": None, "tier": {"level": 3}, "ok": False}, NOW)

    assert msg["userId"] == "42" and msg["traits"] == {"plan": {"level": 3}}
    assert msg["context"]["consent"]["categoryPreferences"] == {"personalization": False}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"cookie": "a"}, "column 'id' (user_id) is missing"),
        ({"id": ""}, "column 'id' (user_id) is empty"),
        ({"id": ["c"]}, "must be a string or an integer"),
        ({"id": True}, "must be a string or an integer"),
        ({"id": "c", "ok": "maybe"}, "column 'ok' (consent) must be true/false"),
        ({"id": "c", "at": "yesterday"}, "timestamp"),
        ({"id": "c", "at": "2099-01-01T00:00:00Z"}, "timestamp"),
        ({"id": "c" * 5_000}, "userId"),
        ({"id": "c", "tier": 2**70}, "cannot be written as JSON"),
    ],
)
def test_unusable_rows_say_why(row: dict, reason: str) -> None:
    with pytest.raises(RowError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        MAPPING.message(row, NOW)


def test_a_value_nested_thousands_deep_is_a_row_error_not_a_crash() -> None:
    deep: object = "x"
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(RowError):
        MAPPING.message({"id": "c", "tier": deep}, NOW)
