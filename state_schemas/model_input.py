"""``ModelInput``: what the per-user operator sends to the model hub for one event (wire version 1).

The rule operator (keyed by user) knows the user's sessions and segments and computes the behavior
feature vector; the model hub (one global model) needs exactly that plus the interaction. The record
crosses one network shuffle as a compact JSON array::

    0 version      1
    1 user_id      user key
    2 item_id      product the event is about, null for events without one
    3 event_name   canonical name, e.g. "product_viewed"
    4 timestamp    event time, epoch ms
    5 category     product category, null if unknown
    6 segments     rule segments the user is in after this event
    7 features     behavior feature values, in ``operators.behavior_features.FEATURE_NAMES`` order
    8 message_id   the event's messageId

``event_name`` ``FORGET`` ("tailor:forget") is not an event: the user withdrew consent, and the hub drops
everything it keeps about them (their cluster is exited); item, features and segments are empty.
``RETUNE`` ("tailor:retune") is not an event either: live model settings (``tailor recalibrate``) for the
hub, as JSON in ``item_id``, ``timestamp`` the instant they were applied; each bucket sends its copy.

>>> m = ModelInput("u1", "p7", "product_viewed", 5, "c1", ("active",), (1.0, 0.5), "m1")
>>> from_wire(to_wire(m)) == m
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

WIRE_VERSION: Final = 1
FORGET: Final = "tailor:forget"  # consent withdrawn
ERASE: Final = "tailor:erase"  # tailor erase: the same, with trigger "erase"
MERGED: Final = "tailor:merged"  # identity stitching: the id merged into another, with trigger "merge"
RETUNE: Final = "tailor:retune"  # live model settings from a rules update: JSON in item_id
FORGOTTEN: Final = {FORGET: "consent", ERASE: "erase", MERGED: "merge"}  # kinds that drop a user -> trigger


@dataclass(frozen=True, slots=True)
class ModelInput:
    user_id: str
    item_id: str | None
    event_name: str
    timestamp: int
    category: str | None
    segments: tuple[str, ...]
    features: tuple[float, ...]
    message_id: str | None


def to_wire(m: ModelInput) -> str:
    return orjson.dumps(
        [WIRE_VERSION, m.user_id, m.item_id, m.event_name, m.timestamp, m.category, m.segments, m.features,
         m.message_id]
    ).decode()


def from_wire(payload: str | bytes) -> ModelInput:
    return from_row(orjson.loads(payload))


def from_row(row: Any) -> ModelInput:
    """A model input from its decoded wire array (a batch carries them decoded)."""
    if not isinstance(row, list) or not row or row[0] != WIRE_VERSION:
        raise ValueError(f"model input wire version {row[0] if row else row!r} is unknown (expected {WIRE_VERSION})")
    _, user, item, name, ts, category, segments, features, message_id = row
    return ModelInput(user, item, name, ts, category, tuple(segments), tuple(features), message_id)
