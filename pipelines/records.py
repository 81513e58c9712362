"""The record types on the job's Flink edges, defined once (Python -> Java: strings, never byte arrays:
PEMJA copies a Python bytes object into a Java byte[] element by element, ~100 us per record here)."""

from __future__ import annotations

from typing import Any

import orjson
from pyflink.common.typeinfo import Types

# (kind, JSON array of [key, record]) -- one row per kind per call of a Python operator, split into
# records in Java by pipelines.java_operators.unbatch: a record crossing Python -> Java costs as much as a call
BATCHED_RECORD_TYPE = Types.ROW_NAMED(["kind", "records"], [Types.STRING(), Types.STRING()])
# Kinds split out as (user_id, record) -- the user id becomes the Kafka record key (None for dead letters):
# tailor.segment_change/2 (rule and cluster changes), tailor.dead_letter/1, tailor.recommendation/2
CHANGES, DEAD_LETTERS, RECOMMENDATIONS = "changes", "dead_letters", "recommendations"
# tailor.model_updates/1 records of the sharded recommender for the model-updates topic (key None)
MODEL_UPDATES = "model_updates"


def batched(pairs: Any) -> str:
    """``[[key, record], ...]`` with each record (JSON bytes) embedded as written, not re-encoded.

    >>> batched([("u1", b'{"a":1}'), (None, b'{"b":2}')])
    '[["u1",{"a":1}],[null,{"b":2}]]'
    """
    return orjson.dumps([[key, orjson.Fragment(record)] for key, record in pairs]).decode()


# (kind, payload) into the model hub: kind MODEL_EVENT -> ``state_schemas.model_input`` wire form,
# CATALOG_ITEM -> tailor.catalog_item/1
MODEL_RECORD_TYPE = Types.ROW_NAMED(["kind", "payload"], [Types.STRING(), Types.STRING()])
MODEL_EVENT = "event"
CATALOG_ITEM = "catalog"
# kind EXCHANGE: a tailor.model_updates/1 record read back from the model-updates topic (the sharded
# recommender's broadcast input, with the catalog items)
EXCHANGE = "exchange"
# kind MODEL_BATCH: model inputs, ``[["event", <wire array>], ...]``, of every rule batch of a window as the
# Java ModelBatcher gathered them (one Python call and one state write per window instead of per event)
MODEL_BATCH = "batch"
