"""``tailor catalog load simulated`` against the real broker: records keyed by item id, values decode."""

from __future__ import annotations

import pytest

from connectors import kafka_topics as topics
from connectors.kafka_events import read_topic
from state_schemas import catalog_item
from tailor.catalog import catalog_items, load_catalog
from tests.integration.harness import isolated_settings

pytestmark = pytest.mark.integration


def cleanup_policy(settings, topic: str) -> str:
    """The topic's ``cleanup.policy`` as the broker has it."""
    from kafka.admin import ConfigResource, ConfigResourceType

    with topics.admin_client(settings) as admin:
        response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return response["topic"][topic]["cleanup.policy"]["value"]


def test_catalog_load_simulated_publishes_every_item_keyed_by_id(stack_settings):
    settings = isolated_settings(stack_settings, "catalog-load")
    items = catalog_items("simulated", users=300, seed=7)
    try:
        report = load_catalog(settings, items, "simulated", progress=False)
        records = read_topic(settings.kafka_bootstrap, settings.catalog_topic, timeout_s=30)

        assert report.sent == len(items) == 5000
        assert len(records) == len(items)
        decoded = {r.key.decode(): catalog_item.decode(r.value) for r in records}
        assert decoded == {item.item_id: item for item in items}
        assert cleanup_policy(settings, settings.catalog_topic) == "compact"
    finally:
        topics.delete_topics(settings, topics.tailor_topics(settings))
