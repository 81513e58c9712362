"""CRM and third-party records as Segment ``identify`` messages (``tailor import``).

A mapping names, for one source, the column (CSV) or field (JSONL) that holds each part of the message:

    source: crm                  # names the import in messageId and context.library
    user_id: customer_id         # the master id (required)
    anonymous_id: web_visitor    # optional: links that visitor id to the master id (identity stitching)
    timestamp: updated_at        # optional: ISO-8601 or epoch ms; default the import's start
    traits: {email: email, plan: tier}
    consent: {personalization: consent_web}   # optional: context.consent.categoryPreferences

Every message says ``context.active: false``, Segment's flag for "update the traits, not last seen": the
job links the ids and applies the consent, but an import is not activity (no session, no active day).
The ``messageId`` is a hash of the mapped row without its time, so importing the same file again is a
duplicate the job drops, while a changed row is a new message. A row the job would reject is reported
here instead, with the reason :func:`operators.normalize.normalize` gives.

>>> m = ImportMapping.from_dict({"user_id": "id", "anonymous_id": "cookie", "traits": {"plan": "tier"},
...                              "consent": {"personalization": "ok"}})
>>> msg = m.message({"id": "c-7", "cookie": "a-1", "tier": "gold", "ok": "yes"}, now_ms=1_795_687_200_000)
>>> msg["userId"], msg["anonymousId"], msg["traits"], msg["context"]["consent"]
('c-7', 'a-1', {'plan': 'gold'}, {'categoryPreferences': {'personalization': True}})
>>> m.message({"id": "", "tier": "gold"}, now_ms=1_795_687_200_000)
Traceback (most recent call last):
...
operators.crm_import.RowError: column 'id' (user_id) is empty
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from operators.normalize import InvalidEvent, normalize, preview
from settings.errors import TailorError

LIBRARY: Final = "tailor-import"
_TRUE: Final = frozenset({"true", "yes", "y", "1", "granted"})
_FALSE: Final = frozenset({"false", "no", "n", "0", "denied"})

MAPPING_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user_id"],
    "properties": {
        "source": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
        "user_id": {"type": "string", "minLength": 1},
        "anonymous_id": {"type": "string", "minLength": 1},
        "timestamp": {"type": "string", "minLength": 1},
        "traits": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
        "consent": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
    },
}


class RowError(TailorError, ValueError):
    """A row the import cannot use; the message says which column and why."""


@dataclass(frozen=True)
class ImportMapping:
    user_id: str
    anonymous_id: str | None = None
    timestamp: str | None = None
    traits: Mapping[str, str] = field(default_factory=dict)  # trait name -> column
    consent: Mapping[str, str] = field(default_factory=dict)  # consent category -> column
    source: str = "import"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ImportMapping:
        """From a mapping already checked against :data:`MAPPING_SCHEMA` (``tailor.imports`` does that)."""
        return cls(raw["user_id"], raw.get("anonymous_id"), raw.get("timestamp"), dict(raw.get("traits") or {}),
                   dict(raw.get("consent") or {}), raw.get("source", "import"))

    def columns(self) -> set[str]:
        """Every column the mapping reads (a CSV header must have them all)."""
        named = [self.user_id, self.anonymous_id, self.timestamp, *self.traits.values(), *self.consent.values()]
        return {c for c in named if c}

    def message(self, row: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        """The ``identify`` message for one row, checked as the job checks it; RowError if it is unusable."""
        msg: dict[str, Any] = {"type": "identify", "userId": self._id(row, self.user_id, "user_id")}
        if self.anonymous_id and _present(row.get(self.anonymous_id)):
            msg["anonymousId"] = self._id(row, self.anonymous_id, "anonymous_id")
        traits = {name: row[column] for name, column in self.traits.items() if _present(row.get(column))}
        if traits:
            msg["traits"] = traits
        context: dict[str, Any] = {"active": False, "library": {"name": LIBRARY, "version": self.source}}
        preferences = {name: _granted(row[column], column) for name, column in self.consent.items()
                       if _present(row.get(column))}
        if preferences:
            context["consent"] = {"categoryPreferences": preferences}
        msg["context"] = context
        try:
            digest = hashlib.blake2b(orjson.dumps(msg, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()
        except TypeError as exc:  # a JSONL value orjson cannot write: an integer beyond 64 bits, 255+ levels
            raise RowError(f"a value cannot be written as JSON ({exc})") from None
        msg["messageId"] = f"{self.source}-{digest}"
        stamp = row.get(self.timestamp) if self.timestamp else None
        msg["timestamp"] = stamp if _present(stamp) else now_ms
        try:
            normalize(orjson.dumps(msg), now_ms=now_ms)
        except InvalidEvent as exc:
            raise RowError(exc.reason) from None
        return msg

    def _id(self, row: Mapping[str, Any], column: str, role: str) -> str:
        value = row.get(column)
        if value is None or value == "":
            raise RowError(f"column {column!r} ({role}) is empty" if column in row
                           else f"column {column!r} ({role}) is missing")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise RowError(f"column {column!r} ({role}) must be a string or an integer, got {preview(value)}")
        return str(value)


def _present(value: object) -> bool:
    return value is not None and value != ""


def _granted(value: object, column: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RowError(f"column {column!r} (consent) must be true/false (or yes/no, 1/0), got {preview(value)}")
