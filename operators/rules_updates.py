"""Segment rules changed in the running job, without a restart (``tailor rules apply``).

A rules update is a control event on the events topic: a ``track`` named "Tailor Rules Update" for the
reserved user ``tailor:broadcast``, carrying the rules (the YAML file's mapping) and when they were applied.
The job's Kafka deserializer copies a record of that user to every bucket, so each bucket's segmenter
meets it in its own stream, swaps its rules, and keeps them in its state (restarts keep them). A bucket
takes an update only if it is newer than the rules it has (``applied_at``): a replay after a restore, or
an older update read late, changes nothing. Users are re-evaluated under the new rules at their next event
or deadline; memberships of a removed rule are exited then. An update may also carry live model settings
(``models``: the recommendation blend, from ``tailor recalibrate``); each bucket passes them on to the model
hub, which takes the newest.

>>> rules = {"segments": [{"name": "buyer", "when": "purchases_total >= 1"}]}
>>> event = rules_update(rules, applied_at=1_000, message_id="r-1")
>>> event["userId"], event["event"]
('tailor:broadcast', 'Tailor Rules Update')
>>> applied_at, parsed = read_update(event["properties"], event["userId"])
>>> applied_at, [r.name for r in parsed.rules]
(1000, ['buyer'])
>>> read_update({"applied_at": 5, "rules": {"segments": "none"}}, BROADCAST_USER)
Traceback (most recent call last):
...
operators.segment_rules.RuleError: rules update: expected a mapping with a 'segments' list
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from operators.recommender import RecommenderConfig, RecommenderConfigError
from operators.segment_rules import RuleError, SegmentRules

RULES_UPDATE_EVENT: Final = "Tailor Rules Update"
RULES_UPDATED: Final = "tailor_rules_update"  # its canonical name (operators.event_names)
# The id the deserializer (pipelines/java/.../EventRecordDeserializer.java) copies to every bucket.
BROADCAST_USER: Final = "tailor:broadcast"


def rules_update(
    rules: Mapping[str, Any], applied_at: int, message_id: str, models: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The control event that puts ``rules`` (a rules file's mapping, already validated) in force, and
    ``models`` (live model settings, checked by ``read_models``) if given."""
    properties: dict[str, Any] = {"applied_at": applied_at, "rules": dict(rules)}
    if models:
        properties["models"] = dict(models)
    return {"type": "track", "event": RULES_UPDATE_EVENT, "userId": BROADCAST_USER, "messageId": message_id,
            "timestamp": applied_at, "properties": properties}


def read_models(properties: Mapping[str, Any]) -> dict[str, Any] | None:
    """The live model settings an update carries (None: none), checked as the model hub will apply them.

    >>> read_models({"models": {"blend": {"covisit": 2.0}}})
    {'blend': {'covisit': 2.0}}
    >>> read_models({"models": {"blend": {"covisit": -1}}})
    Traceback (most recent call last):
    ...
    operators.segment_rules.RuleError: rules update: models: recommendations.blend.covisit must be a non-negative number; got -1
    """  # noqa: E501 (a doctest's expected output cannot wrap)
    models = properties.get("models")
    if models is None:
        return None
    try:
        RecommenderConfig().with_live_settings(models)
    except RecommenderConfigError as exc:
        raise RuleError(f"rules update: models: {exc}") from None
    return dict(models)


def read_update(properties: Mapping[str, Any], user_id: object) -> tuple[int, SegmentRules]:
    """``(applied_at, rules)`` of an update's properties; RuleError if they do not compile here, or if the
    update was not sent to :data:`BROADCAST_USER` (only every bucket together may change rules)."""
    if user_id != BROADCAST_USER:
        raise RuleError(f"rules update: userId must be {BROADCAST_USER!r} (`tailor rules apply` sends it so), "
                        f"got {user_id!r}")
    applied_at = properties.get("applied_at")
    if isinstance(applied_at, bool) or not isinstance(applied_at, int) or applied_at <= 0:
        raise RuleError(f"rules update: applied_at must be a positive epoch ms, got {applied_at!r}")
    try:
        return applied_at, SegmentRules.from_dict(properties.get("rules"))
    except RuleError as exc:
        raise RuleError(f"rules update: {exc}") from None
