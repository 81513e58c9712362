"""Shared fixtures for the pure tests: the default rule file and its tracker."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.profile_tracker import ProfileTracker
from operators.segment_rules import SegmentRules

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[1] / "config" / "segments.yaml"


@pytest.fixture(scope="session")
def default_rules() -> SegmentRules:
    return SegmentRules.from_yaml(DEFAULT_RULES_PATH)


@pytest.fixture
def tracker(default_rules: SegmentRules) -> ProfileTracker:
    return ProfileTracker(default_rules)
