"""Identity stitching: an anonymous visitor who logs in becomes one user, the known one.

An event that carries both ``userId`` K and ``anonymousId`` A (an ``identify`` after login, or any event
an SDK sends once it knows both), or an ``alias`` from ``previousId`` A to ``userId`` K, *links* A to K.
K is the master id from then on. The two ids' state lives under different keys, so the job meets them
through its own events topic, in two control events it writes there exactly-once (a Flink job cannot
loop back into itself otherwise):

1. K's step records A in K's ``linked_ids`` and sends ``Tailor Identity Merge`` to A (keyed by A).
2. A's step exits A from every segment (trigger ``merge``), leaves a marker ``merged_into = K`` in place
   of A's state, and sends ``Tailor Profile Transfer`` with A's state to K (keyed by K).
3. K's step merges A's state into K's (``merge_profiles``) and evaluates K's rules (trigger ``merge``).

Events that arrive for A alone later (the visitor logged out on the same device) are forwarded to K
with ``userId`` K. Guard rails: blocked id values are never linked (``is_linkable``); a profile links at
most ``MAX_LINKED_IDS`` ids; a forwarded or control event that has hopped ``MAX_HOPS`` times is dropped
(two ids aliased to each other would otherwise bounce for ever).

>>> link_of(user_id="u-42", anonymous_id="anon-1", previous_id=None)
'anon-1'
>>> link_of(user_id="u-42", anonymous_id="undefined", previous_id=None) is None
True
>>> merge_request("anon-1", "u-42", "m7", 1_000)["properties"]
{'into': 'u-42', 'link': 'm7'}
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Final

import orjson

from operators.behavior_features import merge_stats
from state_schemas import profile_state
from state_schemas.events import CanonicalEvent
from state_schemas.profile_state import ProfileState

MERGE_EVENT: Final = "Tailor Identity Merge"
TRANSFER_EVENT: Final = "Tailor Profile Transfer"
MERGE: Final = "tailor_identity_merge"  # their canonical names (operators.event_names)
TRANSFER: Final = "tailor_profile_transfer"
CONTROL_EVENTS: Final = frozenset({MERGE_EVENT, TRANSFER_EVENT})
MAX_LINKED_IDS: Final = 16
MAX_HOPS: Final = 8
HOPS_FIELD: Final = "tailorHops"
# Values SDKs and buggy sites send for "no id": linking on them would merge strangers into one profile.
BLOCKED_IDS: Final = frozenset({
    "", "0", "-1", "null", "undefined", "none", "nil", "nan", "false", "true", "anonymous", "unknown", "guest",
    "[object object]", "00000000-0000-0000-0000-000000000000",
})


def is_linkable(user_id: str | None) -> bool:
    """
    >>> is_linkable("anon-7"), is_linkable(" NULL "), is_linkable(None)
    (True, False, False)
    """
    return user_id is not None and user_id.strip().lower() not in BLOCKED_IDS


def link_of(user_id: str | None, anonymous_id: str | None, previous_id: str | None) -> str | None:
    """The id an event links to its known ``user_id`` (raw ids, before pseudonyms), or None."""
    if not is_linkable(user_id):
        return None
    for other in (previous_id, anonymous_id):
        if other != user_id and is_linkable(other):
            return other
    return None


def merge_request(anonymous_id: str, into: str, link_message_id: str, timestamp: int) -> dict[str, Any]:
    """Step 1: the control event that asks ``anonymous_id``'s owner to hand its state to ``into``."""
    return {"type": "track", "event": MERGE_EVENT, "anonymousId": anonymous_id,
            "messageId": _message_id("tailor-merge", link_message_id, anonymous_id), "timestamp": timestamp,
            "properties": {"into": into, "link": link_message_id}}


def profile_transfer(
    from_id: str, into: str, state: ProfileState, merge_message_id: str, timestamp: int
) -> dict[str, Any]:
    """Step 2: the anonymous id's state, on its way to the known id."""
    return {"type": "track", "event": TRANSFER_EVENT, "userId": into,
            "messageId": _message_id("tailor-transfer", merge_message_id), "timestamp": timestamp,
            "properties": {"from": from_id, "profile": orjson.Fragment(profile_state.encode(state))}}


def _message_id(kind: str, *parts: str) -> str:
    """Deterministic (a replay writes the same id, so duplicates are dropped) and short whatever the ids."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{kind}-{digest}"


def forwarded(event: CanonicalEvent, into: str, hops: Any) -> dict[str, Any] | None:
    """An event of a merged id, re-addressed to the id it merged into; None once it hopped ``MAX_HOPS``
    (``hops``: the received message's ``tailorHops``).

    Rebuilt from what the job reads of it (ids, type, name, time, item, category, consent), not copied:
    the rest (traits, context) is not written to the topic again, and a value nested deeper than a
    JSON writer goes (valid input: the reader takes 1,024 levels) cannot make forwarding fail.

    >>> e = CanonicalEvent("m1", 1, "anon-1", None, "anon-1", "track", "product_viewed", 5, "p1", "c1")
    >>> m = forwarded(e, "u-42", None)
    >>> m["userId"], m["anonymousId"], m["event"], m["properties"], m["tailorHops"]
    ('u-42', 'anon-1', 'product_viewed', {'product_id': 'p1', 'category': 'c1'}, 1)
    """
    hops = hops + 1 if isinstance(hops, int) and not isinstance(hops, bool) else 1
    if hops > MAX_HOPS:
        return None
    message: dict[str, Any] = {"type": event.type, "messageId": event.message_id, "userId": into,
                               "anonymousId": event.anonymous_id, "timestamp": event.timestamp, HOPS_FIELD: hops}
    if event.type == "track":
        message["event"] = event.name
    properties = {k: v for k, v in (("product_id", event.item_id), ("category", event.category)) if v is not None}
    if properties:
        message["properties"] = properties
    if event.consent is not None:
        message["context"] = {"consent": {"categoryPreferences": dict(event.consent)}}
    return message


def merge_profiles(known: ProfileState | None, other: ProfileState, gap_ms: int, dedup_window: int) -> ProfileState:
    """``other``'s history folded into ``known``'s, as if one user had done both.

    Counters add up; active days are united; a pending cart stays pending unless either side bought after
    it. Two open sessions less than ``gap_ms`` apart become one (the visitor browsed, then logged in);
    otherwise the later one stays open and the earlier counts as closed. ``known``'s segments are kept:
    the caller evaluates the rules on the result. ``other``'s linked ids come along.

    >>> anon = ProfileState(clock=50, last_seen=50, session_start=10, session_last=50, session_events=6,
    ...                     session_views=6, sessions_total=1, active_days=[0], recent_ids=[1, 2])
    >>> known = ProfileState(clock=70, last_seen=70, session_start=60, session_last=70, session_events=2,
    ...                      session_views=0, session_cart_adds=1, cart_pending_since=70, sessions_total=3,
    ...                      active_days=[0], recent_ids=[3], segments=["active"])
    >>> m = merge_profiles(known, anon, gap_ms=1_000, dedup_window=16)
    >>> (m.session_start, m.session_last, m.session_views, m.session_cart_adds, m.sessions_total)
    (10, 70, 6, 1, 3)
    >>> m.cart_pending_since, m.recent_ids, m.segments
    (70, [1, 2, 3], ['active'])
    """
    k = known if known is not None else ProfileState()
    m = dataclasses.replace(k, active_days=sorted(set(k.active_days) | set(other.active_days)))
    m.clock = max(k.clock, other.clock)
    m.last_seen = max(k.last_seen, other.last_seen)
    m.sessions_total = k.sessions_total + other.sessions_total
    m.purchases_total = k.purchases_total + other.purchases_total
    m.last_purchase_at = max(k.last_purchase_at, other.last_purchase_at)
    if other.session_start and k.session_start and max(k.session_start, other.session_start) <= min(
        k.session_last, other.session_last
    ) + gap_ms:
        m.session_start = min(k.session_start, other.session_start)
        m.session_last = max(k.session_last, other.session_last)
        m.session_events = k.session_events + other.session_events
        m.session_views = k.session_views + other.session_views
        m.session_cart_adds = k.session_cart_adds + other.session_cart_adds
        m.session_purchases = k.session_purchases + other.session_purchases
        m.sessions_total -= 1  # two halves of one session
    elif other.session_start and (not k.session_start or other.session_last > k.session_last):
        m.session_start, m.session_last = other.session_start, other.session_last
        m.session_events, m.session_views = other.session_events, other.session_views
        m.session_cart_adds, m.session_purchases = other.session_cart_adds, other.session_purchases
    pending = [t for t in (k.cart_pending_since, other.cart_pending_since) if t and t > m.last_purchase_at]
    m.cart_pending_since = min(pending, default=0)
    m.recent_ids = [*other.recent_ids, *k.recent_ids][-dedup_window:]
    m.linked_ids = list(dict.fromkeys([*k.linked_ids, *other.linked_ids]))[:MAX_LINKED_IDS]
    m.behavior = merge_stats(k.behavior, other.behavior, m)
    return m
