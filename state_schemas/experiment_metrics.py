"""``tailor.experiment_metrics/1``: one bucket's running totals of an (experiment, variant, segment).

The job's per-user step (``operators.experiment_outcomes``) sums what follows each exposure per bucket of
users; each bucket writes its totals, absolute, when they change (at most once a second): to the compacted
Kafka topic ``experiment_metrics_topic`` keyed ``experiment|variant|segment|bucket``, and to the Redis hash
``{prefix}experiment-metrics:{experiment}``, field ``variant|segment|bucket``. The totals of a group are the
sum over its buckets' latest records: absolute values make a replay after a restart rewrite, not add.

Layout (JSON object)::

    schema        "tailor.experiment_metrics/1"
    experiment, variant, segment ("*" = everyone), bucket
    users         users exposed first to this variant (in this segment at exposure)
    conversions   of them, with an Order Completed within the attribution window
    clicks        of them, with a Content Clicked within the attribution window
    bounces       of them, who did nothing else in the exposure's session
    engaged_ms    summed time from exposure to their last event of that session
    emit_time     epoch ms (wall clock) of the write

>>> record = decode(encode(("hero", "b", "*"), 3, Outcome(users=2, conversions=1), 9))
>>> record["users"], record["bucket"], record_key(("hero", "b", "*"), 3)
(2, 3, 'hero|b|*|3')
>>> totals = decode_totals(encode_totals({("hero", "b", "*"): Outcome(users=2)}))
>>> totals[("hero", "b", "*")].users
2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from state_schemas.json_records import decode_record

SCHEMA: Final = "tailor.experiment_metrics/1"
STATE_VERSION: Final = 1
Group = tuple[str, str, str]


@dataclass
class Outcome:
    """Summed over the users of one (experiment, variant, segment)."""

    users: int = 0
    conversions: int = 0
    clicks: int = 0
    bounces: int = 0
    engaged_ms: int = 0


def record_key(group: Group, bucket: int) -> str:
    return f"{group[0]}|{group[1]}|{group[2]}|{bucket}"


def field_of(group: Group, bucket: int) -> str:
    """The Redis hash field (the experiment is in the key)."""
    return f"{group[1]}|{group[2]}|{bucket}"


def encode(group: Group, bucket: int, o: Outcome, emit_time: int) -> bytes:
    return orjson.dumps({"schema": SCHEMA, "experiment": group[0], "variant": group[1], "segment": group[2],
                         "bucket": bucket, "users": o.users, "conversions": o.conversions, "clicks": o.clicks,
                         "bounces": o.bounces, "engaged_ms": o.engaged_ms, "emit_time": emit_time})


def decode(payload: bytes | str) -> dict[str, Any]:
    """Parse a written record; raises ``ValueError`` for a schema this version does not know."""
    return decode_record(payload, SCHEMA)


def encode_totals(totals: Mapping[Group, Outcome]) -> str:
    """A bucket's totals as its keyed state: ``[1, [[experiment, variant, segment, users, ...], ...]]``."""
    rows = [[*g, o.users, o.conversions, o.clicks, o.bounces, o.engaged_ms] for g, o in sorted(totals.items())]
    return orjson.dumps([STATE_VERSION, rows]).decode()


def decode_totals(payload: str | bytes) -> dict[Group, Outcome]:
    version, rows = orjson.loads(payload)
    if version != STATE_VERSION:
        raise ValueError(f"experiment totals state version {version!r} is not readable (knows {STATE_VERSION})")
    return {(r[0], r[1], r[2]): Outcome(*r[3:]) for r in rows}
