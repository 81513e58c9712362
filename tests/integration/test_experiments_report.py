"""``tailor experiments report`` on the real broker: simulated exposures (assigned by the experiment's own
hash) and conversions with a planted effect are published to the events topic; the report's counts equal
a direct count of what was generated, and the planted difference lies inside its confidence interval."""

from __future__ import annotations

import random
import urllib.error
import urllib.request

import orjson
import pytest

from connectors.kafka_events import event_producer, publish_event, read_topic
from operators.experiments import load_experiments
from settings import PROJECT_ROOT
from stack.service_process import running_server
from state_schemas import experiment_metrics
from tailor.experiments import report
from tests.integration.harness import isolated_settings, run_bounded_job

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000
EXPERIMENT = """version: 1
experiments:
  - name: hero-test
    salt: test-salt-1
    variants: [{name: control, weight: 1}, {name: discount, weight: 1}]
    primary_metric: conversion
    baseline_rate: 0.2
    minimum_lift: 0.5
"""
RATES = {"control": 0.2, "discount": 0.3}  # the planted effect: +0.10


def publish(settings, experiment) -> dict[str, list[int]]:
    """1,200 exposed users with the planted effect; returns {variant: [users, conversions]}, counted here."""
    rng = random.Random(7)
    truth = {"control": [0, 0], "discount": [0, 0]}
    producer = event_producer(settings.kafka_bootstrap)
    for n in range(1_200):
        user, at = f"user-{n}", T0 + n * 1_000
        variant = experiment.assign(user)
        segment = "returning" if n % 3 == 0 else "new"
        events = [{"type": "track", "event": "Experiment Viewed", "userId": user, "messageId": f"x-{n}",
                   "timestamp": at, "properties": {"experiment_name": "hero-test", "variation_name": variant,
                                                   "segments": [segment]}}]
        if n % 2:  # half go on browsing: not a bounce
            events.append({"type": "track", "event": "Product Viewed", "userId": user, "messageId": f"v-{n}",
                           "timestamp": at + 60_000, "properties": {"product_id": "p1"}})
        converted = rng.random() < RATES[variant]
        if converted:
            events.append({"type": "track", "event": "Order Completed", "userId": user, "messageId": f"o-{n}",
                           "timestamp": at + 3_600_000, "properties": {"product_id": "p1"}})
        events.append({"type": "track", "event": "Experiment Viewed", "userId": user, "messageId": f"x2-{n}",
                       "timestamp": at + 7_200_000, "properties": {"experiment_name": "hero-test",
                                                                   "variation_name": variant}})  # counted once
        for event in events:
            publish_event(producer, settings.events_topic, event)
        truth[variant][0] += 1
        truth[variant][1] += converted
    producer.flush()
    producer.close()
    return truth


def test_the_report_recovers_a_planted_effect_from_the_events_topic(stack_settings, tmp_path) -> None:
    settings = isolated_settings(stack_settings, "experiments")
    experiments_file = tmp_path / "experiments.yaml"
    experiments_file.write_text(EXPERIMENT)
    [experiment] = load_experiments(experiments_file)
    truth = publish(settings, experiment)

    lines: list[str] = []
    [row, *by_segment] = report(settings, experiments_file, out=lines.append)["hero-test"]

    assert (row["segment"], row["control_users"], row["variant_users"]) == ("*", truth["control"][0],
                                                                          truth["discount"][0])
    assert round(row["control_rate"] * truth["control"][0]) == truth["control"][1]
    assert round(row["variant_rate"] * truth["discount"][0]) == truth["discount"][1]
    assert row["ci_low"] <= 0.10 <= row["ci_high"] and row["decision"] == "significant"
    assert 0.45 <= row["control_bounce_rate"] <= 0.55 and row["variant_engagement_s"] > 0
    assert sorted(r["segment"] for r in by_segment) == ["new", "returning"]
    assert any("hero-test" in line for line in lines) and orjson.dumps(row)

    with running_server(settings, tmp_path / "serve.log") as url:  # the result, served
        with urllib.request.urlopen(f"{url}/v1/experiments/hero-test", timeout=10) as response:
            served = orjson.loads(response.read())
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/v1/experiments/nope", timeout=10)
    assert served["schema"] == "tailor.experiment_report/1" and served["rows"][0]["decision"] == "significant"
    assert served["rows"][0]["control_users"] == truth["control"][0] and missing.value.code == 404


def test_the_jobs_live_totals_equal_the_report_from_the_topic(stack_settings, tmp_path) -> None:
    """The job sums outcomes per bucket as events arrive (Redis and the compacted metrics topic); the
    report from its totals equals the report from one pass over the topic, which shares only the per-user
    step with it (operators.experiment_outcomes)."""
    settings = isolated_settings(stack_settings, "experiment-metrics", models_enabled=False)
    experiments_file = tmp_path / "experiments.yaml"
    experiments_file.write_text(EXPERIMENT)
    [experiment] = load_experiments(experiments_file)
    truth = publish(settings, experiment)

    run_bounded_job(settings, PROJECT_ROOT / "config" / "segments.yaml", tmp_path)

    from_topic = report(settings, experiments_file, out=lambda _line: None)["hero-test"]
    live = report(settings, experiments_file, out=lambda _line: None, live=True)["hero-test"]
    assert live == from_topic and live[0]["control_users"] == truth["control"][0]
    records = read_topic(settings, settings.experiment_metrics_topic)
    latest = {r.key: experiment_metrics.decode(r.value) for r in records}  # what compaction keeps
    in_kafka = sum(m["users"] for m in latest.values() if m["segment"] == "*")
    assert in_kafka == truth["control"][0] + truth["discount"][0]
