"""``tailor erase USER_ID``: ask the running job to forget a person, through the events topic.

The request is a Segment ``track`` event named "Tailor Erase" (``state_schemas.events.erase_request``),
keyed by the user like their events, so it is applied in order with them and exactly once (checkpointed
with the job's state; a duplicate is harmless). The job then: exits the user from every rule and ML
segment (changes with ``trigger: "erase"``), deletes their profile and model state, deletes their Redis
profile, recommendations and audience memberships, and keeps only a suppression marker, so that later
events for that id are dropped. The collector refuses the event name from outside.
"""

from __future__ import annotations

import time
import uuid

from connectors.kafka_events import event_producer, publish_event
from settings import Settings
from state_schemas import events


def erase(settings: Settings, user_id: str) -> str:
    """Publish the erase request; returns its messageId."""
    message_id = f"erase-{uuid.uuid4()}"
    request = events.erase_request(user_id, message_id, int(time.time() * 1000))
    producer = event_producer(settings)
    try:
        publish_event(producer, settings.events_topic, request).get(timeout=30)
    finally:
        producer.close()
    return message_id
