"""``tailor demo`` settings: its own namespace for every topic and key, models that warm up fast."""

from __future__ import annotations

import socket

import pytest
import yaml

from connectors import kafka_topics as topics
from operators.model_hub import ModelHub
from operators.models_config import ModelsConfig
from settings import Settings
from tailor.demo import DemoError, _check_port_free, demo_settings, write_demo_models


def test_demo_settings_use_their_own_topics_and_prefix():
    base = Settings.load(environ={})
    demo = demo_settings(base)

    assert all(name.startswith("tailor-demo.") for name in topics.tailor_topics(demo))
    assert not set(topics.tailor_topics(demo)) & set(topics.tailor_topics(base))
    assert demo.redis_prefix == "tailor-demo:"
    assert topics.topic_config(demo, demo.catalog_topic)["cleanup.policy"] == "compact"


def test_demo_models_are_models_yaml_with_a_short_warm_up(tmp_path):
    base = Settings.load(environ={}, home=tmp_path)
    demo = demo_settings(base)

    path = write_demo_models(base, demo)
    demo_models = yaml.safe_load(path.read_text())
    models = yaml.safe_load(base.models_file.read_text())

    assert path.parent == tmp_path
    assert demo_models["clustering"]["warmup_events"] <= 300
    assert demo_models["recommendations"]["min_emit_interval_ms"] <= 10_000
    for section in ("clustering", "recommendations"):
        differs = {k for k in models[section] if demo_models[section].get(k) != models[section][k]}
        assert differs == {"clustering": {"warmup_events"}, "recommendations": {"min_emit_interval_ms"}}[section]
    ModelHub(ModelsConfig.from_dict(demo_models))  # the job can build its models from it


def test_demo_refuses_a_busy_web_ui_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(DemoError, match="TAILOR_REST_PORT"):
            _check_port_free(busy.getsockname()[1])
