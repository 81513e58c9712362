"""``tailor.popular_items/1``: the items trending overall, as the job's recommender sees them now.

Written by the model hub to Redis ``{prefix}popular`` (at most once a second of processing time), read
by ``tailor serve`` as the generic list for users without one of their own. Layout (JSON object)::

    schema         "tailor.popular_items/1"
    items          [{item_id, score, source: "popular", category}], best first; score is the time-decayed
                   count relative to the leader; category only when the job knows the item's
    model_version  the recommender that produced it
    event_time     epoch ms: the event time the decay is computed at (the hub's latest event)
    emit_time      epoch ms (wall clock) at which the job wrote it

>>> from state_schemas.recommendation import RecommendedItem
>>> record = decode(encode(PopularItems((RecommendedItem("p1", 1.0, "popular", "c1"),), "v", 5), emit_time=6))
>>> record["items"], record["event_time"]
([{'item_id': 'p1', 'score': 1.0, 'source': 'popular', 'category': 'c1'}], 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from state_schemas.json_records import decode_record
from state_schemas.recommendation import RecommendedItem

SCHEMA: Final = "tailor.popular_items/1"


@dataclass(frozen=True, slots=True)
class PopularItems:
    items: Sequence[RecommendedItem]
    model_version: str
    event_time: int


def encode(popular: PopularItems, emit_time: int) -> bytes:
    return orjson.dumps({
        "schema": SCHEMA,
        "items": [i.as_dict() for i in popular.items],
        "model_version": popular.model_version,
        "event_time": popular.event_time,
        "emit_time": emit_time,
    })


def decode(payload: bytes | str) -> dict[str, Any]:
    """Parse a written record; raises ``ValueError`` for a schema this version does not know."""
    return decode_record(payload, SCHEMA)
