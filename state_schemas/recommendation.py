"""``tailor.recommendation/2``: a user's new top-K recommendations.

Version 2 added ``items[].category`` (so a consumer can filter a list by category); otherwise as version 1.

Emitted when a user's list changes (throttled per user in event time); the Redis copy under
``{prefix}recs:{user_id}`` is always the latest record. Layout (JSON object, one per Kafka record, keyed
by ``user_id``)::

    schema         "tailor.recommendation/2"
    user_id        the user key the job tracks (userId, else anonymousId)
    items          [{item_id, score, source, category}], best first; source is "mf" | "content" | "popular" |
                   "covisit"; category only when the job knows the item's (from events or the catalog)
    model_version  which model produced it, e.g. "mf-biased/river-0.23.0/cfg-1a2b3c4d"
    message_id     the triggering event's messageId
    event_time     epoch ms of the triggering event
    emit_time      epoch ms (wall clock) at which the job emitted it

>>> r = Recommendation("u1", (RecommendedItem("p1", 0.9, "mf"),), "mf-biased/x", "m1", 5)
>>> decode(encode(r, emit_time=7))["items"]
[{'item_id': 'p1', 'score': 0.9, 'source': 'mf'}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from state_schemas.json_records import decode_record

SCHEMA: Final = "tailor.recommendation/2"
SOURCES: Final = frozenset({"mf", "content", "popular", "covisit"})


@dataclass(frozen=True, slots=True)
class RecommendedItem:
    item_id: str
    score: float
    source: str  # one of SOURCES
    category: str | None = None

    def as_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {"item_id": self.item_id, "score": round(self.score, 6), "source": self.source}
        if self.category is not None:
            item["category"] = self.category
        return item


@dataclass(frozen=True, slots=True)
class Recommendation:
    user_id: str
    items: Sequence[RecommendedItem]
    model_version: str
    message_id: str | None
    event_time: int


def encode(rec: Recommendation, emit_time: int) -> bytes:
    return orjson.dumps(
        {
            "schema": SCHEMA,
            "user_id": rec.user_id,
            "items": [i.as_dict() for i in rec.items],
            "model_version": rec.model_version,
            "message_id": rec.message_id,
            "event_time": rec.event_time,
            "emit_time": emit_time,
        }
    )


def decode(payload: bytes | str) -> dict[str, Any]:
    """Parse an emitted record; raises ``ValueError`` for a schema this version does not know.

    >>> decode(b'{"schema": "tailor.recommendation/1"}')
    Traceback (most recent call last):
    ...
    ValueError: expected schema 'tailor.recommendation/2', got 'tailor.recommendation/1'
    """
    return decode_record(payload, SCHEMA)
