"""ML segments of the real job at parallelism 1 and 2 over the same events: the adjusted Rand index of the
users' final clusters (Redis profile field ``cluster``) must be at least 0.9 (issue 11's target), and the
cluster changes in the topic must be the same ones. At parallelism 2 the rule operator runs on two
subtasks, so the single model hub sees their model inputs in another interleaving; the clusterer learns
in event-time order (``operators.model_hub``), so the interleaving must not matter (it did: ARI 0.51-0.54
when it learned in arrival order)."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.kafka_events import event_producer, publish_event, read_topic
from connectors.redis_keys import RedisKeys
from evaluation.clusters import adjusted_rand_index
from evaluation.simulator import ShopperSimulator
from settings import PROJECT_ROOT
from state_schemas import segment_change
from tests.integration.harness import isolated_settings, quick_models_file, run_bounded_job

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000


def final_clusters(settings, redis_client) -> dict[str, str]:
    keys = RedisKeys(settings.redis_prefix)
    clusters = {}
    for key in redis_client.scan_iter(keys.profiles_pattern, count=1000):
        cluster = redis_client.hget(key, "cluster")
        if cluster:
            clusters[key.removeprefix(keys.profile(""))] = cluster
    return clusters


def test_ml_segments_agree_between_parallelism_1_and_2(stack_settings, redis_client, tmp_path) -> None:
    models_file = quick_models_file(tmp_path)
    p1 = isolated_settings(stack_settings, "ari-p1", models_enabled=True, models_file=models_file, parallelism=1)
    p1_again, p2 = (dataclasses.replace(
        isolated_settings(stack_settings, name, models_enabled=True, models_file=models_file, parallelism=n),
        events_topic=p1.events_topic, catalog_topic=p1.catalog_topic,  # the same input, read by a group of its own
    ) for name, n in (("ari-p1b", 1), ("ari-p2", 2)))
    producer = event_producer(p1.kafka_bootstrap)
    for event in ShopperSimulator(seed=11, users=400).events(T0, rate=50, count=8_000):
        publish_event(producer, p1.events_topic, event)
    producer.flush()
    producer.close()

    for settings, run in ((p1, "p1"), (p1_again, "p1b"), (p2, "p2")):
        run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", tmp_path / run)

    one, again, two = (final_clusters(s, redis_client) for s in (p1, p1_again, p2))
    same = sorted(one.keys() & again.keys())
    rerun = adjusted_rand_index([one[u] for u in same], [again[u] for u in same])
    users = sorted(one.keys() & two.keys())
    ari = adjusted_rand_index([one[u] for u in users], [two[u] for u in users])
    print(f"\nML segments on the real job: ARI p1 vs p2 {ari:.3f} over {len(users)} users, p1 vs a second p1 run "
          f"{rerun:.3f} ({len(one)} / {len(two)} with a cluster; {len(set(one.values()))} / {len(set(two.values()))} "
          "clusters)")
    assert len(users) >= 0.9 * max(len(one), len(two)) and len(users) > 100
    assert ari >= 0.9
    changes = [sorted(cluster_changes(s)) for s in (p1, p2)]
    assert len(changes[0]) > 100 and changes[0] == changes[1]


def cluster_changes(settings) -> list[tuple]:
    """(user, segment, change, event time) of every ML segment change in the topic."""
    return [(c["user_id"], c["segment"], c["change"], c["event_time"])
            for c in map(segment_change.decode, (r.value for r in read_topic(settings.kafka_bootstrap,
                                                                              settings.segment_changes_topic)))
            if c["kind"] == "cluster"]
