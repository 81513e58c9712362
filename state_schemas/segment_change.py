"""``tailor.segment_change/2``: a user entered or left a segment.

Layout (JSON object, one per Kafka record, keyed by ``user_id``)::

    schema       "tailor.segment_change/2"
    user_id      the user key the job tracks (userId, else anonymousId)
    segment      segment name, e.g. "cart_abandoner"
    kind         "rule" | "cluster"
    change       "enter" | "exit"
    reason       human-readable why: the rule's description and the facts it looked at
    facts        {fact name: value} the decision was made on
    trigger      "event" (an incoming event caused it) | "timer" (time passing caused it) |
                 "consent" (the user withdrew consent: every segment is exited, the profile deleted) |
                 "erase" (``tailor erase``: the same, and the id's later events are dropped) |
                 "merge" (identity stitching: an anonymous id merged into a known one exits every
                 segment; the known one's segments change as the merged history says)
    event_time   epoch ms at which the change happened in event time
    emit_time    epoch ms (wall clock) at which the job emitted it
    message_id   the triggering event's messageId, null for timer-driven changes
    rules_version  for kind "rule": the version of the rules that decided it (a hash of their content,
                 ``SegmentRules.version``; ``tailor rules apply`` changes it in the running job); null for
                 "cluster"

Version 2 added ``rules_version``; :func:`decode` reads version 1 records too (without it).

>>> c = SegmentChange("u1", "vip", "rule", "enter", "spent a lot", {"x": 1}, "event", 5, "m1")
>>> decode(encode(c, emit_time=7))["schema"]
'tailor.segment_change/2'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

SCHEMA: Final = "tailor.segment_change/2"
_READABLE: Final = frozenset({"tailor.segment_change/1", SCHEMA})
ENTER: Final = "enter"
EXIT: Final = "exit"


@dataclass(frozen=True, slots=True)
class SegmentChange:
    user_id: str
    segment: str
    kind: str
    change: str
    reason: str
    facts: dict[str, Any]
    trigger: str
    event_time: int
    message_id: str | None = None
    rules_version: str | None = None


def encode(change: SegmentChange, emit_time: int) -> bytes:
    return orjson.dumps(
        {
            "schema": SCHEMA,
            "user_id": change.user_id,
            "segment": change.segment,
            "kind": change.kind,
            "change": change.change,
            "reason": change.reason,
            "facts": change.facts,
            "trigger": change.trigger,
            "event_time": change.event_time,
            "emit_time": emit_time,
            "message_id": change.message_id,
            "rules_version": change.rules_version,
        }
    )


def decode(payload: bytes | str) -> dict[str, Any]:
    """Parse an emitted record (version 1 or 2); raises ``ValueError`` for a schema this version does not know."""
    record: dict[str, Any] = orjson.loads(payload)
    if record.get("schema") not in _READABLE:
        raise ValueError(f"expected schema {SCHEMA!r}, got {record.get('schema')!r}")
    record.setdefault("rules_version", None)
    return record
