"""``tailor rules apply FILE``: change the running job's segment rules without a restart.

The rules are checked here as ``tailor job run`` checks them, then published as one control event
(``operators.rules_updates``) to the events topic. The job copies it to every bucket of users; each
bucket puts the rules in force as it reads the event and keeps them in its state, so a restart keeps
them too (until a newer ``rules apply``). Users are evaluated under the new rules at their next event or
deadline; each rule segment change records the version of the rules that made it (``rules_version``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.kafka_events import event_producer, publish_event
from operators.rules_updates import rules_update
from operators.segment_rules import SegmentRules
from settings import Settings


@dataclass(frozen=True)
class AppliedRules:
    version: str
    applied_at: int
    segments: int

    def summary(self, path: Path, topic: str) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.applied_at / 1000))
        return (f"rules {self.version} ({self.segments} segments, {path}) published to {topic} at {when} UTC; the "
                "running job puts them in force as it reads them, each user at their next event or deadline")


def apply(settings: Settings, path: Path) -> AppliedRules:
    """Check the rules file (RuleError names the problem) and publish it; returns what was applied."""
    return publish(settings, SegmentRules.from_yaml(path))


def publish(settings: Settings, rules: SegmentRules, models: Mapping[str, Any] | None = None) -> AppliedRules:
    """Publish checked ``rules`` (and live model settings, checked by ``read_models``) as the running job's
    next rules update."""
    applied_at = int(time.time() * 1000)
    update = rules_update(rules.source, applied_at, f"rules-{applied_at}-{rules.version}", models)
    producer = event_producer(settings)
    try:
        publish_event(producer, settings.events_topic, update).get(timeout=30)
    finally:
        producer.close()
    return AppliedRules(rules.version, applied_at, len(rules.rules))
