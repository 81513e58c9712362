"""Shared harness for integration tests: the real local stack, isolated topics and Redis prefixes, and a
helper that runs the real segmentation job (embedded Flink, thread mode) over a bounded topic."""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

import stack
from connectors import kafka_topics as topics
from connectors.flink_rest import FlinkRest, FlinkRestError
from settings import PROJECT_ROOT, Settings
from stack import apt, local_job

JOB_TIMEOUT_S = 600
FAILURES_TOLERATED = 3
# Retained checkpoints of the tests' jobs (one consumer group each), emptied at the start of a session.
TEST_STATE_DIR = Settings.load().home / "test-state"


# Topics ``isolated_settings`` created in this session, deleted when it ends: a broker restarted after
# SIGKILL recovers every partition directory before it opens its port, and thousands of leftover test
# partitions made that take longer than the 60 s a restart is given.
_SESSION_TOPICS: list[str] = []


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    settings = Settings.load()
    stack.up(settings, progress=lambda _line: None)
    shutil.rmtree(TEST_STATE_DIR, ignore_errors=True)
    yield settings
    try:
        topics.delete_topics(settings, _SESSION_TOPICS, timeout=120)
    except Exception as exc:  # noqa: BLE001 - cleanup: a broker a test left down must not fail the session
        print(f"\nleft {len(_SESSION_TOPICS)} test topics on the broker: {exc}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_settings(base: Settings, name: str, partitions: int = 2, **overrides) -> Settings:
    """Settings with fresh topics, consumer group and Redis prefix, so tests never see each other."""
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    settings = Settings.load(
        events_topic=f"test.{tag}.events",
        segment_changes_topic=f"test.{tag}.segment-changes",
        dead_letters_topic=f"test.{tag}.dead-letters",
        recommendations_topic=f"test.{tag}.recommendations",
        catalog_topic=f"test.{tag}.catalog",
        experiment_metrics_topic=f"test.{tag}.experiment-metrics",
        model_updates_topic=f"test.{tag}.model-updates",
        consumer_group=f"test-{tag}",
        redis_prefix=f"test:{tag}:",
        kafka_partitions=partitions,
        rest_port=_free_port(),
        **{"checkpoint_interval_ms": 1000, "state_dir": TEST_STATE_DIR, **overrides},
    )
    names = topics.tailor_topics(settings)
    _SESSION_TOPICS.extend([*names, topics.replay_ledger_topic(settings)])  # the ledger: `dead-letters replay`
    topics.ensure_topics(settings, names)
    return settings


def run_bounded_job(settings: Settings, rules_file: Path, log_dir: Path) -> None:
    """Run the real job over everything currently in the events topic; fail with the log tail. A job that
    fails ``FAILURES_TOLERATED`` times (Flink restarts it forever) fails the test with its first failure at
    once, not after ``JOB_TIMEOUT_S``."""
    log_file = log_dir / "job.log"
    child = local_job.spawn(settings, rules_file, log_file, bounded=True)
    rest = FlinkRest(f"http://127.0.0.1:{settings.rest_port}", timeout_s=2)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    try:
        while child.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bounded job ran longer than {JOB_TIMEOUT_S} s; log: {log_file}")
            failures = _job_failures(rest)
            if len(failures) >= FAILURES_TOLERATED:
                pytest.fail(f"the job failed {len(failures)} times (Flink restarts it); the first:\n{failures[0]}")
            time.sleep(2)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"segmentation job exited with {child.returncode}; log tail:\n{tail}")


def _job_failures(rest: FlinkRest) -> list[str]:
    """The recorded failures of the embedded cluster's job; none while its REST API is not up."""
    try:
        return [trace for job in rest.jobs() for trace in rest.exception_history(job.job_id)]
    except (FlinkRestError, OSError):
        return []


@pytest.fixture(scope="session")
def redis_client(stack_settings) -> redis.Redis:
    return redis.Redis(host=stack_settings.redis_host, port=stack_settings.redis_port, decode_responses=True)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def quick_models_file(workdir: Path) -> Path:
    """config/models.yaml with a 150-event clustering warm-up and no recommendation throttle, so a few
    thousand test events show ML segments and many lists."""
    models = yaml.safe_load((PROJECT_ROOT / "config" / "models.yaml").read_text())
    models["clustering"]["warmup_events"] = 150
    models["recommendations"]["min_emit_interval_ms"] = 0
    path = workdir / "models.yaml"
    path.write_text(yaml.safe_dump(models))
    return path


def send_events(settings: Settings, events: list[dict]) -> None:
    """Publish Segment messages as a producer would (``connectors.kafka_events.publish_event``: keyed by
    user, stamped with their event time), acknowledged before this returns."""
    from connectors.kafka_events import event_producer, publish_event

    producer = event_producer(settings)
    for event in events:
        publish_event(producer, settings.events_topic, event)
    producer.flush()
    producer.close()


def changes_and_recommendations(settings: Settings) -> tuple[list[dict], list[dict]]:
    """Every segment change and recommendation the job wrote, decoded, in topic order."""
    import orjson

    from connectors.kafka_events import read_topic
    from state_schemas import segment_change

    changes = [segment_change.decode(r.value) for r in read_topic(settings, settings.segment_changes_topic)]
    recs = [orjson.loads(r.value) for r in read_topic(settings, settings.recommendations_topic)]
    return changes, recs



@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through selenium (installed if missing)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        apt.install(["chromium", "chromium-driver"], "the browser tests need Chromium")
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def learned_interactions(raw_events: Iterable[bytes], models_file: Path) -> int:
    """How many interactions the recommender learns from these raw events (each one update in the sharded
    recommender's exchange): the rule step's model inputs, computed offline, whose event type has a weight."""
    from operators.models_config import ModelsConfig
    from operators.normalize import InvalidEvent, normalize
    from operators.segment_rules import SegmentRules
    from operators.segmentation_step import SegmentationStep

    weights = ModelsConfig.from_yaml(models_file).recommendations.event_weights
    step = SegmentationStep(SegmentRules.from_yaml(PROJECT_ROOT / "config" / "segments.yaml"), model_inputs=True)
    states: dict[str, Any] = {}
    learned = 0
    for raw in raw_events:
        try:
            event = normalize(raw)
        except InvalidEvent:
            continue
        out = step.on_event(states.get(event.user_key), event, emit_time=0)
        if out is None or out.model_input is None:
            continue  # a duplicate
        states[event.user_key] = out.state
        learned += out.model_input.item_id is not None and weights.get(out.model_input.event_name, 0.0) > 0
    return learned


def updates_exchanged(settings: Settings) -> int:
    """Updates in the sharded recommender's exchange topic (committed records only)."""
    from connectors.kafka_events import read_topic
    from state_schemas import model_update

    return sum(len(model_update.decode_exchange(r.value).updates)
               for r in read_topic(settings.kafka_bootstrap, settings.model_updates_topic))
