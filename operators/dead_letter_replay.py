"""Which dead letters may go back into the stream, judged by the validation the job runs now.

After a fix (a relaxed schema, a new event-name mapping, a bug fixed in an operator), some dead letters
would now pass. ``judge`` takes one ``tailor.dead_letter/1`` record and answers whether its original
payload, byte for byte, passes ``operators.normalize`` today; if so, the key, event time and messageId
to publish it with. The messageId makes a replay idempotent: the replaying side records the ids it
sent, and a letter whose id was replayed before is not sent again.

>>> letter = dead_letter.encode("unknown_type", "type 'trak'", b'{"type": "track", "event": "Product Viewed",'
...     b' "messageId": "m1", "userId": "u1", "timestamp": 1700000000000}', "tailor.events", 1)
>>> v = judge(letter)
>>> v.replay, v.message_id, v.key, v.timestamp
(True, 'm1', b'u1', 1700000000000)
>>> v = judge(dead_letter.encode("invalid_json", "not JSON", b"{oops", "tailor.events", 1))
>>> v.replay, v.rejected_as, v.error
(False, 'invalid_json', 'invalid_json')
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from operators.normalize import InvalidEvent, normalize
from state_schemas import dead_letter


@dataclass(frozen=True, slots=True)
class Verdict:
    replay: bool
    original: bytes  # the payload exactly as it was received
    rejected_as: str  # the code the job rejected it with then
    error: str | None = None  # not replayable: the code it is rejected with now, and why
    reason: str | None = None
    message_id: str | None = None
    key: bytes | None = None  # the user's id, as the producer keys events
    timestamp: int | None = None  # the event time, for the Kafka record timestamp


def judge(letter: bytes | str, now_ms: int | None = None) -> Verdict:
    """The verdict on one dead letter; ``ValueError`` if it is not a ``tailor.dead_letter/1`` record."""
    record = dead_letter.decode(letter)
    b64 = record.get("original_b64")
    original = base64.b64decode(b64) if b64 else str(record.get("original", "")).encode()
    rejected_as = str(record.get("error"))
    if rejected_as == "tombstone":
        return Verdict(False, b"", rejected_as, "tombstone", "a tombstone has no payload to replay")
    try:
        event = normalize(original, now_ms)
    except InvalidEvent as e:
        return Verdict(False, original, rejected_as, e.code, e.reason)
    return Verdict(True, original, rejected_as, message_id=event.message_id, key=event.user_key.encode(),
                   timestamp=event.timestamp)
