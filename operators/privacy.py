"""Privacy on the way in: pseudonymous user ids, and dead letters without traits or context.

``Pseudonymizer`` replaces a user id by a keyed HMAC-SHA256 of it (``p:`` + 32 hex digits) right after
validation, before any state, Redis key or output sees it: the same id always maps to the same
pseudonym (profiles, audiences and models work unchanged), and without the key nobody can compute the
pseudonym of a known email, as a plain hash would allow. Downstream services that know the raw id ask
for its pseudonym with the same key (``tailor`` prints it: see the README).

``redact`` is what a dead letter keeps of an unusable message: ``traits`` and ``context`` (emails,
names, IP addresses, user agents) are removed and listed under ``redacted``; with a pseudonymizer, the
ids are replaced too. A payload that is not a JSON object cannot be taken apart, nor one nested deeper
than orjson can write again (254 levels; such hostile input is rare): it is kept as it came.

>>> p = Pseudonymizer(b"0123456789abcdef")
>>> p.pseudonym("alice@example.com")
'p:f3d6ddc7dbf9be2eb667360a5a9a4343'
>>> p.pseudonym(p.pseudonym("alice@example.com")) == p.pseudonym("alice@example.com")   # idempotent
True
>>> orjson.loads(redact(b'{"type":"identify","userId":"alice@example.com","traits":{"email":"a@x"}}', p))
{'type': 'identify', 'userId': 'p:f3d6ddc7dbf9be2eb667360a5a9a4343', 'redacted': ['traits']}
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import Final

import orjson

from settings.errors import ConfigError
from state_schemas.events import CanonicalEvent

PREFIX: Final = "p:"
ID_FIELDS: Final = ("userId", "anonymousId", "previousId", "groupId")
PII_FIELDS: Final = ("traits", "context")
_HEX_DIGITS: Final = 32


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def pseudonym(self, user_id: str) -> str:
        """The id's pseudonym; a pseudonym is left as it is (re-processing a pseudonymised record is safe)."""
        if user_id.startswith(PREFIX) and len(user_id) == len(PREFIX) + _HEX_DIGITS:
            return user_id
        digest = hmac.new(self._key, user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:_HEX_DIGITS]

    def event(self, event: CanonicalEvent) -> CanonicalEvent:
        """The event with its user ids replaced by their pseudonyms."""
        return dataclasses.replace(
            event,
            user_key=self.pseudonym(event.user_key),
            user_id=None if event.user_id is None else self.pseudonym(event.user_id),
            anonymous_id=None if event.anonymous_id is None else self.pseudonym(event.anonymous_id),
            previous_id=None if event.previous_id is None else self.pseudonym(event.previous_id),
        )


def redact(
    original: bytes, pseudonymizer: Pseudonymizer | None = None, remove: tuple[str, ...] = PII_FIELDS
) -> bytes:
    """``original`` without the ``remove`` fields (and with pseudonymous ids), as a dead letter keeps it."""
    try:
        message = orjson.loads(original)
    except orjson.JSONDecodeError:
        return original
    if not isinstance(message, dict):
        return original
    removed = [field for field in remove if message.pop(field, None) is not None]
    if not removed and pseudonymizer is None:
        return original  # nothing to change: the bytes exactly as they came
    if pseudonymizer is not None:
        for field in ID_FIELDS:
            value = message.get(field)
            if isinstance(value, str | int) and not isinstance(value, bool):
                message[field] = pseudonymizer.pseudonym(str(value))
    if removed:
        message["redacted"] = removed
    try:
        return orjson.dumps(message)
    except TypeError:  # nested deeper than orjson writes (254 levels; it reads 1024): keep it as it came
        return original


@dataclasses.dataclass(frozen=True)
class ConsentPolicy:
    """Whether an event may be personalized, from Segment's ``context.consent.categoryPreferences``.

    ``categories``: the consent categories personalization needs (all of them granted); empty = consent
    is not checked. ``default_allow``: the answer when an event states none of them.

    >>> policy = ConsentPolicy(("Personalization",), default_allow=True)
    >>> policy.allows((("Personalization", False),)), policy.allows((("Ads", False),)), policy.allows(None)
    (False, True, True)
    >>> ConsentPolicy(("Personalization",), default_allow=False).allows(None)
    False
    """

    categories: tuple[str, ...] = ()
    default_allow: bool = True

    @classmethod
    def from_settings(cls, categories: str, default: str) -> ConsentPolicy:
        """From the ``consent_categories`` and ``consent_default`` settings.

        >>> ConsentPolicy.from_settings("Personalization, Analytics", "deny")
        ConsentPolicy(categories=('Personalization', 'Analytics'), default_allow=False)
        """
        if default not in ("allow", "deny"):
            raise ConfigError(f"setting consent_default must be 'allow' or 'deny'; got {default!r}")
        return cls(tuple(c.strip() for c in categories.split(",") if c.strip()), default == "allow")

    def allows(self, consent: tuple[tuple[str, bool], ...] | None) -> bool:
        if not self.categories:
            return True
        stated = dict(consent or ())
        answers = [stated[c] for c in self.categories if c in stated]
        return all(answers) if answers else self.default_allow


@dataclasses.dataclass(frozen=True)
class Privacy:
    """What the job applies to every record: pseudonyms (when keyed) and dead-letter redaction (default on).

    >>> Privacy().original(b'{"userId":"u","context":{"ip":"10.0.0.1"}}')
    b'{"userId":"u","redacted":["context"]}'
    >>> Privacy(redact_dead_letters=False).original(b'{"context":{}}')
    b'{"context":{}}'
    """

    pseudonymizer: Pseudonymizer | None = None
    redact_dead_letters: bool = True
    consent: ConsentPolicy = ConsentPolicy()

    def event(self, event: CanonicalEvent) -> CanonicalEvent:
        return event if self.pseudonymizer is None else self.pseudonymizer.event(event)

    def event_id(self, user_id: str) -> str:
        """An id as the job keys it (its pseudonym when keyed; a pseudonym stays as it is)."""
        return user_id if self.pseudonymizer is None else self.pseudonymizer.pseudonym(user_id)

    def original(self, raw: bytes) -> bytes:
        """The payload a dead letter keeps."""
        if not self.redact_dead_letters and self.pseudonymizer is None:
            return raw
        return redact(raw, self.pseudonymizer, PII_FIELDS if self.redact_dead_letters else ())

