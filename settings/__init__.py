"""One frozen settings object for every command and job, and the base errors (``settings.errors``).

This package sits below every layer: ``state_schemas``, ``operators``, ``connectors``, ``pipelines`` and
the CLI may all import it; it imports none of them.

Defaults live in code, a YAML file can override them (``--config`` or ``TAILOR_CONFIG``), and
``TAILOR_*`` environment variables override both. Nothing else in the project reads the environment.

>>> s = Settings.load(environ={"TAILOR_KAFKA_PARTITIONS": "4"})
>>> s.kafka_partitions, s.events_topic
(4, 'tailor.events')
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from settings.config_files import read_yaml_file
from settings.errors import ConfigError, TailorError

__all__ = ["PROJECT_ROOT", "ConfigError", "Settings", "TailorError"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Settings:
    # Where the local stack keeps downloaded jars, service data and logs (git-ignored).
    home: Path = PROJECT_ROOT / ".tailor"
    # Kafka
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_partitions: int = 2
    events_topic: str = "tailor.events"
    segment_changes_topic: str = "tailor.segment-changes"
    dead_letters_topic: str = "tailor.dead-letters"
    recommendations_topic: str = "tailor.recommendations"
    # Item metadata (title, category, tags), keyed by item id; compacted: the latest record per item wins.
    catalog_topic: str = "tailor.catalog"
    # Experiment outcomes per bucket of users, absolute, keyed experiment|variant|segment|bucket; compacted.
    experiment_metrics_topic: str = "tailor.experiment-metrics"
    consumer_group: str = "tailor-segmentation-v1"
    # A secured cluster (SASL, TLS): a Kafka client properties file, as Kafka's own tools take
    # (kafka-console-consumer --consumer.config), for every client: the job's, the CLI's, the collector's
    # (connectors/kafka_clients.py). Empty: plaintext, no authentication (the local broker). It holds
    # credentials: keep it outside the repository.
    kafka_client_properties: str = ""
    # Redis
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_prefix: str = "tailor:"
    # Redis ACL user and TLS (connectors/redis_clients.py). The password is read where a client connects,
    # from this file, else env TAILOR_REDIS_PASSWORD (settings/secrets.py); never kept in the settings.
    redis_username: str = ""
    redis_password_file: str = ""
    redis_tls: bool = False
    redis_tls_ca_file: str = ""  # a PEM bundle of the CAs to trust (empty: the system's)
    # Flink
    parallelism: int = 1
    execution_mode: str = "thread"
    checkpoint_interval_ms: int = 500
    out_of_orderness_ms: int = 5000
    # A partition with no records for this long stops holding back event time (live jobs; 0 = never).
    # Bounded replays never mark a partition idle: every partition has data up to its end offset.
    idle_partition_ms: int = 30_000
    # Where keyed state lives: "hashmap" (JVM heap, full snapshots) or "rocksdb" (local disk,
    # incremental checkpoints: each uploads only what changed).
    state_backend: str = "hashmap"
    # A network buffer leaves at the latest this long after its first record (Flink's default: 100 ms).
    buffer_timeout_ms: int = 10
    # Micro-batches into the Python operator: at most this many ms or records buffered per source
    # subtask; events are grouped into this many buckets of users (the rule state's unit of rescaling).
    batch_window_ms: int = 10
    batch_max_records: int = 2000
    batch_buckets: int = 32
    # Model inputs of many rule batches gathered into one call of the model hub (``ModelBatcher``): at
    # most this many ms after the first, or this many characters of model inputs (~300 per input).
    model_batch_window_ms: int = 50
    model_batch_max_chars: int = 1_000_000
    # The recommender sharded by user (operators.recommender_replica): each subtask learns its users and
    # scores them, and the replicas exchange the item side through this topic (one partition, written
    # exactly-once, so an update is seen a checkpoint interval after it was learned). Off: one model hub.
    models_sharded: bool = False
    model_updates_topic: str = "tailor.model-updates"
    model_updates_retention_ms: int = 7 * 24 * 3600 * 1000  # a restore from an older checkpoint misses updates
    # Sources pause partitions whose event time runs this far ahead of the slowest (0 = off).
    watermark_alignment_ms: int = 0
    # Retained checkpoints and savepoints, per consumer group and state layout (a shared, durable
    # file system path on a real cluster).
    state_dir: Path = PROJECT_ROOT / ".tailor" / "state"
    rest_port: int = 8081
    # `tailor collect`: where Segment SDKs post, and the write keys it accepts (comma-separated; an SDK's
    # write key is its HTTP Basic user name). Empty: `tailor collect` asks for one.
    collector_host: str = "127.0.0.1"
    collector_port: int = 8088
    collector_write_keys: str = ""
    # `tailor serve` (connectors/serving.py): address, per-request time budget, cache freshness and
    # stale window, and the decision matrix.
    serve_host: str = "127.0.0.1"
    serve_port: int = 8090
    serve_budget_ms: int = 50
    serve_cache_ttl_ms: int = 1000
    serve_stale_ms: int = 30_000
    serve_cors_origins: str = "*"  # origins whose pages may call the API from the browser (comma-separated)
    decisions_file: Path = PROJECT_ROOT / "config" / "decisions.yaml"
    experiments_file: Path = PROJECT_ROOT / "config" / "experiments.yaml"  # served by `tailor serve`'s decide
    # Privacy (operators/privacy.py): a file holding the key that turns user ids into pseudonyms before any
    # state or output (empty: env TAILOR_PSEUDONYM_KEY, else ids as they come); dead letters without
    # traits and context.
    pseudonym_key_file: str = ""
    redact_dead_letters: bool = True
    # Consent (operators/privacy.py ConsentPolicy): the context.consent.categoryPreferences categories that
    # personalization needs, comma-separated (empty: not checked), and what an event stating none means.
    consent_categories: str = ""
    consent_default: str = "allow"
    # Topic retention in ms (-1: forever, the local default because replays carry old timestamps; see
    # connectors/kafka_topics.py). Applied when a topic is created.
    events_retention_ms: int = -1
    outputs_retention_ms: int = -1
    dead_letters_retention_ms: int = -1
    # Segment rules (YAML); relative paths are resolved against the project root.
    segments_file: Path = PROJECT_ROOT / "config" / "segments.yaml"
    # Online models (clustering, recommendations): on/off and their parameters (YAML).
    models_enabled: bool = True
    models_file: Path = PROJECT_ROOT / "config" / "models.yaml"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @classmethod
    def load(
        cls, config_file: Path | None = None, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Defaults <- YAML file <- ``TAILOR_*`` environment <- explicit keyword overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = config_file or (Path(environ["TAILOR_CONFIG"]) if "TAILOR_CONFIG" in environ else None)
        if config_file is not None:
            values.update(_read_yaml(config_file))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in fields:
            env_name = "TAILOR_" + name.upper()
            if env_name in environ:
                values[name] = environ[env_name]
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; known settings: {sorted(fields)}")
        return cls(**{name: _coerce(name, fields[name].type, value) for name, value in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}

    def to_environ(self) -> dict[str, str]:
        """These settings as ``TAILOR_*`` variables, for child processes (jobs, simulators, cluster submits).

        >>> Settings.load(environ={}).to_environ()["TAILOR_KAFKA_PORT"]
        '9092'
        """
        return {f"TAILOR_{k.upper()}": str(v) for k, v in self.to_dict().items()}

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml_file(path, "config file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value, got {type(data).__name__}")
    return data


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    type_name = str(type_name)
    try:
        if type_name == "int":
            return int(value)
        if type_name == "bool":
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if type_name == "Path":
            path = Path(value)
            return path if path.is_absolute() else PROJECT_ROOT / path
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r} must be {type_name}; got {value!r}") from None
