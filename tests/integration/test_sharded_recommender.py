"""The sharded recommender on the real job at parallelism 2 (``models_sharded``): Kafka (events, catalog) ->
PyFlink (rules; recommender replicas keyed by bucket, exchanging the item side through the model-updates
topic as broadcast state; the clusterer hub) -> Kafka + Redis.

Two bounded runs over the same topics, the second restored from the first's drained savepoint:

* every interaction the models learn leaves as exactly one update in the model-updates topic (counted
  against the rule step's model inputs computed offline), across the restore too: nothing lost, nothing
  learned twice;
* both replicas learned users (their lists are in Redis and the topic), and the trending list is theirs;
* after the restore the replicas still hold the first run's item side (the first run's hot item keeps
  trending though the second run never touches it) and user side (a returning user's list holds what
  they viewed in the first run).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from connectors.kafka_events import read_topic
from connectors.redis_keys import RedisKeys
from evaluation.simulator import ShopperSimulator
from operators.model_updates import owner_of
from settings import PROJECT_ROOT
from state_schemas import popular_items, recommendation
from tests.integration.harness import (
    isolated_settings,
    learned_interactions,
    quick_models_file,
    run_bounded_job,
    send_events,
    updates_exchanged,
)

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000
RULES = PROJECT_ROOT / "config" / "segments.yaml"


def _view(user: str, item: str, ts: int) -> dict:
    return {
        "type": "track", "event": "Product Viewed", "userId": user, "messageId": str(uuid.uuid4()),
        "timestamp": datetime.fromtimestamp(ts / 1000, UTC).isoformat().replace("+00:00", "Z"),
        "properties": {"product_id": item},
    }


def test_sharded_recommender_at_parallelism_2_learns_everything_once_and_resumes(
    stack_settings, redis_client, tmp_path
) -> None:
    models_file = quick_models_file(tmp_path)
    settings = isolated_settings(stack_settings, "sharded", models_enabled=True, models_sharded=True,
                                 models_file=models_file, parallelism=2)
    keys = RedisKeys(settings.redis_prefix)
    # One item everybody views in the first run only, and a returning user's history: early in the run, so
    # that every replica has learned them (an update comes back a checkpoint later) before it ends
    first = [_view(f"fan-{n}", "hot-item", T0 + 2 * n) for n in range(1_000)]
    first += [_view("returning", item, T0 + 2_000 + n) for n, item in enumerate(("r-1", "r-2", "r-3"))]
    first += ShopperSimulator(seed=21, users=200).events(T0, rate=40, count=3_000)
    last_ts = T0 + 3_000 * 25
    send_events(settings, first)
    run_bounded_job(settings, RULES, tmp_path / "run1")

    learned_first = learned_interactions(map(orjson.dumps, first), models_file)
    assert updates_exchanged(settings) == learned_first > 2_000
    recs = [(r.key.decode(), recommendation.decode(r.value))
            for r in read_topic(settings.kafka_bootstrap, settings.recommendations_topic)]
    users = {user for user, _ in recs}
    assert {owner_of(u, 2) for u in users} == {0, 1} and len(users) > 150
    assert all(r["user_id"] == user and r["items"] for user, r in recs)
    trending = popular_items.decode(redis_client.get(keys.popular))
    assert trending["items"][0]["item_id"] == "hot-item"

    # The second run: restored from the first's savepoint; other users, other items
    second = [_view(f"late-{n % 40}", f"late-item-{n % 25}", last_ts + 10_000 + 100 * n) for n in range(400)]
    second.append(_view("returning", "r-4", last_ts + 60_000))
    send_events(settings, second)
    run_bounded_job(settings, RULES, tmp_path / "run2")

    learned = learned_first + learned_interactions(map(orjson.dumps, second), models_file)
    assert updates_exchanged(settings) == learned  # none lost, none twice
    trending = [i["item_id"] for i in popular_items.decode(redis_client.get(keys.popular))["items"]]
    assert "hot-item" in trending[:5]  # the first run's item side survived the restore
    returning = recommendation.decode(redis_client.get(keys.recommendations("returning")))
    assert {"r-1", "r-2", "r-3"} <= {i["item_id"] for i in returning["items"]}  # and the user side too


def test_replica_keys_spread_evenly_over_1_2_4_and_8_subtasks(stack_settings) -> None:
    """``REPLICA_KEYS`` against Flink's own key-group assignment (max parallelism 128, the default up to
    parallelism 85), through the key selector the job keys them with."""
    import os

    from stack.local_job import python_path_env

    os.environ.update(python_path_env(stack_settings))
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.java_gateway import get_gateway

    from pipelines.replica_functions import REPLICA_KEYS

    StreamExecutionEnvironment.get_execution_environment()  # the gateway, with Flink's classes
    gateway = get_gateway()
    assignment = gateway.jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    selector = gateway.jvm.KeyByKeySelector()

    def subtask(key: int, parallelism: int) -> int:
        row = gateway.jvm.org.apache.flink.types.Row.withPositions(2)
        row.setField(0, key)
        return assignment.assignKeyToParallelOperator(selector.getKey(row), 128, parallelism)

    for parallelism in (1, 2, 4, 8):
        owners = [subtask(key, parallelism) for key in REPLICA_KEYS]
        assert sorted(owners) == sorted(n * parallelism // len(REPLICA_KEYS) for n in range(len(REPLICA_KEYS)))
