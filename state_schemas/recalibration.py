"""``tailor.recalibration/1``: one ``tailor recalibrate`` run, with its before and after figures.

Appended to ``evaluation-results/recalibrations.jsonl`` and pushed to Redis ``{prefix}recalibrations``
(newest first; the dashboard shows them). Layout::

    schema         "tailor.recalibration/1"
    at             epoch ms (wall clock) of the run
    events         events replayed; first_ms / last_ms: their event-time span
    rules_before   version of the rules in force; rules_after: of the recalibrated rules (null: unchanged)
    applied        whether the run published them (--apply)
    thresholds     per threshold: parameter, segment, before, after, decision, and before_/after_ train and
                   heldout figures {entries, precision, recall, f}
    blend          null (not recalibrated), or before, after (weights), decision and before_/after_
                   train_recall10 / heldout_recall10

>>> decode(encode({"at": 1, "thresholds": []}))["schema"]
'tailor.recalibration/1'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from state_schemas.json_records import decode_record

SCHEMA: Final = "tailor.recalibration/1"


def encode(entry: Mapping[str, Any]) -> bytes:
    return orjson.dumps({"schema": SCHEMA, **entry})


def decode(payload: bytes | str) -> dict[str, Any]:
    """Parse a written entry; raises ``ValueError`` for a schema this version does not know."""
    return decode_record(payload, SCHEMA)
