"""The record types on the job's Flink edges, defined once (Python -> Java: strings, never byte arrays:
PEMJA copies a Python bytes object into a Java byte[] element by element, ~100 us per record here)."""

from __future__ import annotations

from pyflink.common.typeinfo import Types

# (user_id, tailor.segment_change/2 JSON), rule and cluster changes alike -- the user id becomes the
# Kafka record key
CHANGE_RECORD_TYPE = Types.ROW_NAMED(["user_id", "change"], [Types.STRING(), Types.STRING()])
# (user_id or None, tailor.dead_letter/1 JSON)
DEAD_LETTER_RECORD_TYPE = Types.ROW_NAMED(["user_id", "dead_letter"], [Types.STRING(), Types.STRING()])
# (kind, payload) into the model hub: kind MODEL_EVENT -> ``state_schemas.model_input`` wire form,
# CATALOG_ITEM -> tailor.catalog_item/1
MODEL_RECORD_TYPE = Types.ROW_NAMED(["kind", "payload"], [Types.STRING(), Types.STRING()])
MODEL_EVENT = "event"
CATALOG_ITEM = "catalog"
# kind MODEL_BATCH: one micro-batch of model inputs, ``[["event", <wire array>], ...]`` as the rule operator
# emitted them (one Python call and one state write per batch instead of per event)
MODEL_BATCH = "batch"
# (user_id, tailor.recommendation/2 JSON)
RECOMMENDATION_RECORD_TYPE = Types.ROW_NAMED(["user_id", "recommendation"], [Types.STRING(), Types.STRING()])
