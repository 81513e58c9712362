"""``tailor.experiment_report/1``: an experiment's latest result, as ``tailor experiments report`` computed it.

Written to Redis ``{prefix}experiment:{name}`` and served by ``GET /v1/experiments/{name}``. Layout::

    schema        "tailor.experiment_report/1"
    experiment    the experiment's name
    rows          per segment ("*" = everyone) and non-control variant: users, rates, lift, difference
                  with its confidence interval, p, Holm p, SRM p, decision, click-through, bounce rate and
                  engagement per arm (``evaluation.experiment_report.stream_rows``)
    computed_at   epoch ms (wall clock) of the report
    events_read   how many events of the topic the report read

>>> decode(encode("hero", [{"segment": "*", "decision": "significant"}], 5, 100))["rows"][0]["decision"]
'significant'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from state_schemas.json_records import decode_record

SCHEMA: Final = "tailor.experiment_report/1"


def encode(experiment: str, rows: Sequence[Mapping[str, Any]], computed_at: int, events_read: int) -> bytes:
    return orjson.dumps({"schema": SCHEMA, "experiment": experiment, "rows": list(rows), "computed_at": computed_at,
                         "events_read": events_read})


def decode(payload: bytes | str) -> dict[str, Any]:
    """Parse a written record; raises ``ValueError`` for a schema this version does not know."""
    return decode_record(payload, SCHEMA)
