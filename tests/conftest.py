"""Shared fixtures for the pure tests (the default rule file and its tracker), and the markers that follow
from where a test lives: everything under tests/integration/ is ``integration`` (needs Kafka, Redis and
Flink; ``tailor test --unit`` deselects it), everything under tests/evaluation/ is ``slow`` (dataset
replays)."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.profile_tracker import ProfileTracker
from operators.segment_rules import SegmentRules

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[1] / "config" / "segments.yaml"
MARKS_BY_DIRECTORY = {
    Path(__file__).resolve().parent / "integration": pytest.mark.integration,
    Path(__file__).resolve().parent / "faults": pytest.mark.integration,
    Path(__file__).resolve().parent / "evaluation": pytest.mark.slow,
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by its directory, so that no module can forget it (a test under tests/integration/
    without the mark would fail in ``tailor test --unit``, which starts no stack)."""
    for item in items:
        for directory, mark in MARKS_BY_DIRECTORY.items():
            if directory in item.path.parents:
                item.add_marker(mark)


@pytest.fixture(scope="session")
def default_rules() -> SegmentRules:
    return SegmentRules.from_yaml(DEFAULT_RULES_PATH)


@pytest.fixture
def tracker(default_rules: SegmentRules) -> ProfileTracker:
    return ProfileTracker(default_rules)
