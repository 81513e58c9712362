"""How a start of the job picks its state (``stack.job_state.plan_start``), on the real broker: every row
of the failure contract in its module docstring."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipelines.state_layout import STATE_LAYOUT, state_dirs
from stack.job_state import StartRefused, plan_start
from tests.integration.harness import isolated_settings


def retained_checkpoint(settings, job_id: str = "0" * 32, n: int = 7, layout: int = STATE_LAYOUT):
    chk = settings.state_dir / settings.consumer_group / f"layout-{layout}" / "checkpoints" / job_id / f"chk-{n}"
    chk.mkdir(parents=True)
    (chk / "_metadata").write_bytes(b"flink")
    return chk


def commit_offsets(settings) -> None:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group,
                             enable_auto_commit=False)
    try:
        from kafka.structs import OffsetAndMetadata

        consumer.commit({TopicPartition(settings.events_topic, 0): OffsetAndMetadata(5, "", -1)})
    finally:
        consumer.close()


@pytest.fixture
def settings(stack_settings, tmp_path):
    return isolated_settings(stack_settings, "jobstate", state_dir=tmp_path / "state")


def test_first_start_is_empty(settings):
    plan = plan_start(settings)

    assert (plan.restore, plan.from_earliest) == (None, False)
    assert "first start" in plan.message


def test_a_restart_resumes_from_the_newest_retained_checkpoint(settings):
    retained_checkpoint(settings, job_id="a" * 32, n=3)
    newest = retained_checkpoint(settings, job_id="b" * 32, n=9)

    plan = plan_start(settings)

    assert plan.restore is not None and plan.restore.path == newest
    assert plan.message.startswith("resuming from checkpoint")


def test_committed_offsets_without_state_are_refused(settings):
    commit_offsets(settings)

    with pytest.raises(StartRefused, match="committed offsets"):
        plan_start(settings)


def test_state_of_another_layout_is_refused_with_the_replay_command(settings):
    retained_checkpoint(settings, layout=STATE_LAYOUT - 1)

    with pytest.raises(StartRefused, match="--fresh --discard-state"):
        plan_start(settings)


def test_fresh_refuses_over_retained_state_and_discard_moves_it_aside(settings):
    chk = retained_checkpoint(settings)

    with pytest.raises(StartRefused, match="--discard-state"):
        plan_start(settings, fresh=True)
    plan = plan_start(settings, fresh=True, discard_state=True)

    assert (plan.restore, plan.from_earliest) == (None, True)
    assert not chk.exists()
    assert list(state_dirs(settings).group.glob(f"discarded-*/layout-{STATE_LAYOUT}/checkpoints/*/chk-7/_metadata"))
    assert plan_start(settings, fresh=True).from_earliest  # nothing retained any more


def _started(settings):
    plan_start(settings)
    time.sleep(0.05)  # file times tick coarser than time.time_ns(): keep the start before the checkpoint


def test_state_of_models_a_start_turns_off_is_refused_with_the_settings_it_was_written_with(settings):
    _started(settings.replace(models_enabled=True, models_sharded=False))
    retained_checkpoint(settings)

    with pytest.raises(StartRefused, match=r"learn_models, written with models_enabled=true, models_sharded=false"):
        plan_start(settings.replace(models_enabled=False))


def test_state_of_the_sharded_recommender_is_refused_by_the_hub_graph(settings):
    _started(settings.replace(models_enabled=True, models_sharded=True))
    retained_checkpoint(settings, n=1)
    with pytest.raises(StartRefused, match="learn_recommendations") as refused:
        plan_start(settings.replace(models_enabled=True, models_sharded=False))
    assert "--fresh --discard-state" in str(refused.value)
    assert plan_start(settings.replace(models_enabled=True, models_sharded=True)).restore is not None


def test_a_start_that_wrote_no_checkpoint_does_not_count(settings):
    _started(settings.replace(models_enabled=False))
    retained_checkpoint(settings)
    time.sleep(0.05)
    assert plan_start(settings.replace(models_enabled=True)).restore is not None  # adding operators: fine
    # ... and that start died before its first checkpoint: the retained state is still the rules-only one
    assert plan_start(settings.replace(models_enabled=False)).restore is not None


def test_state_of_another_state_backend_is_refused_with_both_backends(settings):
    _started(settings.replace(state_backend="hashmap"))
    retained_checkpoint(settings)

    refused_message = r"written by the hashmap state backend; .* state_backend=rocksdb"
    with pytest.raises(StartRefused, match=refused_message) as refused:
        plan_start(settings.replace(state_backend="rocksdb"))
    assert "Start with state_backend=hashmap" in str(refused.value)
    assert "--fresh --discard-state" in str(refused.value)
    assert plan_start(settings.replace(state_backend="hashmap")).restore is not None


def test_a_start_noted_before_backends_were_recorded_resumes(settings):
    _started(settings)
    graphs = state_dirs(settings).checkpoints.parent / "graphs"
    for noted in graphs.glob("*.json"):  # as written before 2026-12-05: the graph settings only
        noted.write_text('{"models_enabled": true, "models_sharded": false}')
    retained_checkpoint(settings)

    assert plan_start(settings.replace(state_backend="rocksdb")).restore is not None
