"""The canonical internal event: what ``operators.normalize`` makes of a Segment-Spec message.

Canonical names are snake_case verbs in the past tense (``product_viewed``); the alias tables that map
Segment, RudderStack and Taobao vocabularies onto them live in ``operators.event_names``.
Timestamps are integer epoch milliseconds (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson

# Canonical event names the default rules count. Any other track event keeps its normalized name.
PRODUCT_VIEWED: Final = "product_viewed"
PRODUCT_ADDED: Final = "product_added"
PRODUCT_REMOVED: Final = "product_removed"
PRODUCT_FAVORITED: Final = "product_favorited"
CHECKOUT_STARTED: Final = "checkout_started"
ORDER_COMPLETED: Final = "order_completed"
PAGE_VIEWED: Final = "page_viewed"
SCREEN_VIEWED: Final = "screen_viewed"
IDENTIFIED: Final = "identified"
# An ``identify`` with ``context.active: false`` (Segment's flag for "update the traits, not last seen";
# ``tailor import`` sends these): it links ids and carries consent, but is not activity.
TRAITS_UPDATED: Final = "traits_updated"
ALIASED: Final = "aliased"
# The erase request (``tailor erase``): a Segment track event the job treats as a control message.
ERASE_EVENT: Final = "Tailor Erase"
ERASED: Final = "tailor_erase"  # its canonical name

MESSAGE_TYPES: Final = frozenset({"track", "page", "screen", "identify", "alias", "group"})


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    """One validated behavioral event.

    ``user_key`` is the id the job keys state by: ``userId`` when known, else ``anonymousId``.
    ``dedup_key`` is a stable 63-bit hash of ``messageId`` (stable across processes and restarts,
    unlike ``hash()``), so state can remember recent ids cheaply.
    """

    message_id: str
    dedup_key: int
    user_key: str
    user_id: str | None
    anonymous_id: str | None
    type: str
    name: str
    timestamp: int
    item_id: str | None = None
    category: str | None = None
    # Segment's ``context.consent.categoryPreferences`` as sorted (category, granted) pairs; None if the
    # message states none (operators.privacy.ConsentPolicy decides what that means).
    consent: tuple[tuple[str, bool], ...] | None = None
    previous_id: str | None = None  # an alias's ``previousId``: the id it links to ``user_id``


def erase_request(user_id: str, message_id: str, timestamp_ms: int) -> dict[str, object]:
    """The erase request for ``user_id`` as it goes on the events topic.

    >>> erase_request("u1", "erase-1", 0)["event"]
    'Tailor Erase'
    """
    return {"type": "track", "event": ERASE_EVENT, "userId": user_id, "messageId": message_id,
            "timestamp": timestamp_ms, "properties": {}}


# -- wire form between Flink operators ------------------------------------------------------------
# Normalized events cross one network shuffle (normalize -> key_by user). A versioned JSON array is
# ~5x cheaper to encode and decode than pickling the dataclass; unaligned checkpoints may persist it.
WIRE_VERSION: Final = 1


def to_wire(e: CanonicalEvent) -> bytes:
    """
    >>> e = CanonicalEvent("m", 1, "u", "u", None, "track", "product_viewed", 5, "i", None)
    >>> from_wire(to_wire(e)) == e
    True
    """
    return orjson.dumps(
        [WIRE_VERSION, e.message_id, e.dedup_key, e.user_key, e.user_id, e.anonymous_id, e.type, e.name,
         e.timestamp, e.item_id, e.category, None if e.consent is None else [list(p) for p in e.consent]]
    )


def from_wire(payload: bytes | str) -> CanonicalEvent:
    row = orjson.loads(payload)
    if row[0] != WIRE_VERSION:
        raise ValueError(f"normalized event wire version {row[0]!r} is unknown (expected {WIRE_VERSION})")
    consent = tuple((c, g) for c, g in row[11]) if len(row) > 11 and row[11] is not None else None
    _, message_id, dedup, user_key, user_id, anonymous_id, kind, name, timestamp, item_id, category = row[:11]
    return CanonicalEvent(message_id, dedup, user_key, user_id, anonymous_id, kind, name, timestamp, item_id,
                          category, consent)
