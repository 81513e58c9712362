"""The deployment files under docker/: valid against their official schemas, and with the properties that
let the deployment survive faults. Nothing here starts a container or a cluster (no Docker engine on the
machines this runs on) and nothing goes beyond the loopback interface:

* docker/docker-compose.yml against the Compose Specification's JSON Schema (docker/schemas/), then its
  properties: Flink REST published on 127.0.0.1 only, checkpoints and savepoints on one named volume
  shared by the JobManager, both TaskManagers and the submitter, checkpoints retained on cancellation, the
  restart strategy, 2 TaskManagers x 1 slot, healthchecks, Tailor's settings as TAILOR_* variables.
* docker/kubernetes/flink-deployment.yaml against the Flink Kubernetes Operator's CRD schema (made strict:
  unknown fields are errors), its companions (PVC, ConfigMap, topics Job) with kubernetes-validate, then
  the properties: upgradeMode savepoint, durable checkpoint and savepoint dirs, retained checkpoints, HA,
  the same restart strategy, the Python driver running the job.
* The Flink configuration of both, read by Flink 2.2.1 itself (the venv's PyFlink JVM): every key is a
  Flink option (none deprecated), every value parses, the memory settings give valid process sizes, the
  job's own configuration agrees with the cluster's, and the `flink run` and Python driver arguments parse.
* docker/Dockerfile.flink copies every package pyproject.toml installs; docker/submit-job.sh submits the
  job from the newest retained state, against a stub JobManager and stub `flink` / `tailor` commands.

The property checks return a list of problems, so each is also run on a broken copy and must complain.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SCHEMAS = DOCKER / "schemas"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile.flink"
DOCKERIGNORE = DOCKER / "Dockerfile.flink.dockerignore"
SUBMIT_SCRIPT = DOCKER / "submit-job.sh"
K8S = DOCKER / "kubernetes"
FLINK_DEPLOYMENT_FILE = K8S / "flink-deployment.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

JOB_PY = "/opt/tailor/pipelines/segmentation_job.py"
FLINK_SERVICES = ("jobmanager", "taskmanager", "tailor-job")  # run the image, read FLINK_PROPERTIES
# The restart strategy asked for: exponential delay 1 s .. 60 s, unlimited attempts, reset after 10 min.
RESTART_STRATEGY = {
    "restart-strategy.type": "exponential-delay",
    "restart-strategy.exponential-delay.initial-backoff": 1.0,
    "restart-strategy.exponential-delay.max-backoff": 60.0,
    "restart-strategy.exponential-delay.reset-backoff-threshold": 600.0,
    "restart-strategy.exponential-delay.attempts-before-reset-backoff": 2**31 - 1,
}
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


# -- reading the files -----------------------------------------------------------------------------------
def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def k8s_documents() -> dict[str, dict[str, Any]]:
    """Every manifest under docker/kubernetes/, by "Kind/name"."""
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return docs


def flink_properties(service: dict[str, Any]) -> dict[str, str]:
    """FLINK_PROPERTIES as the image's entrypoint reads it (flink-docker's docker-entrypoint.sh): line by
    line, all whitespace removed, key up to the first colon."""
    text = service.get("environment", {}).get("FLINK_PROPERTIES", "")
    props = {}
    for line in text.splitlines():
        prop = re.sub(r"\s", "", line)
        if prop:
            key, _, value = prop.partition(":")
            props[key] = value
    return props


def duration_s(value: str) -> float:
    """A Flink duration ("1 s", "60s", "10 min", "500 ms") in seconds; Flink's own parse is checked in
    test_flink_reads_the_restart_strategy_and_retention_as_intended."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", value)
    if not match or match.group(2) not in (*DURATION_UNITS, ""):
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "ms"]


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: source} of a compose service's volumes, short or long syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of a compose service's published ports, short or long syntax;
    host ip "" means every interface."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((port.get("host_ip", ""), str(port.get("published", "")), str(port["target"])))
            continue
        spec = str(port).split("/")[0]
        ip = ""
        if spec.startswith("["):  # [::1]:8081:8081
            ip, _, spec = spec[1:].partition("]:")
        parts = spec.split(":")
        if len(parts) == 3:
            ip, host, container = parts
        elif len(parts) == 2:
            host, container = parts
        else:
            host, container = "", parts[0]  # container port only: a random port on every interface
        ports.append((ip, host, container))
    return ports


def path_under(uri_or_path: str, mount: str) -> bool:
    path = uri_or_path.removeprefix("file://")
    return uri_or_path.startswith(("file:///", "/")) and PurePosixPath(path).is_relative_to(mount)


def strict(schema: Any) -> Any:
    """A copy of a Kubernetes structural schema in which an object with declared properties accepts no
    others (the API server would drop them silently; kubectl --validate=strict refuses them)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items() if key != "properties"}
    if "properties" in schema:
        out["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


@functools.cache
def compose_schema_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@functools.cache
def flink_deployment_validator() -> jsonschema.Draft7Validator:
    schema = strict(json.loads((SCHEMAS / "flinkdeployment-v1beta1.openapi.json").read_text()))
    # The API server handles these itself; the CRD schema leaves them out.
    schema["properties"] |= {
        "apiVersion": {"type": "string", "enum": ["flink.apache.org/v1beta1"]},
        "kind": {"type": "string", "enum": ["FlinkDeployment"]},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 45},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        }, "additionalProperties": False},
    }
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator: jsonschema.Draft7Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)]


def tailor_setting_problems(env: dict[str, str], where: str) -> list[str]:
    """TAILOR_* variables must name settings: Settings.load ignores unknown ones silently."""
    from settings import Settings

    fields = {f"TAILOR_{name.upper()}" for name in Settings.load(environ={}).to_dict()} | {"TAILOR_CONFIG"}
    problems = [f"{where}: {name} is not a Tailor setting" for name in env if name.startswith("TAILOR_")
                and name not in fields]
    if not problems:
        Settings.load(environ=env)  # values of the right types
    return problems


def restart_strategy_problems(conf: dict[str, str], where: str) -> list[str]:
    problems = []
    for key, want in RESTART_STRATEGY.items():
        value = conf.get(key)
        if value is None:
            problems.append(f"{where}: restart strategy: {key} is not set")
            continue
        got: Any = value
        if isinstance(want, float):
            got = duration_s(value)
        elif isinstance(want, int):
            got = int(value)
        if got != want:
            problems.append(f"{where}: restart strategy: {key} is {value!r}, want {want!r}")
    return problems


def retention_problems(conf: dict[str, str], where: str) -> list[str]:
    problems = []
    if conf.get("execution.checkpointing.externalized-checkpoint-retention") != "RETAIN_ON_CANCELLATION":
        problems.append(f"{where}: checkpoints are not retained on cancellation "
                        "(execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION)")
    if int(conf.get("execution.checkpointing.num-retained", "0")) < 1:
        problems.append(f"{where}: execution.checkpointing.num-retained is not set")
    return problems


# -- the properties of docker-compose.yml ---------------------------------------------------------------
def compose_problems(doc: dict[str, Any]) -> list[str]:
    problems = schema_errors(compose_schema_validator(), doc)
    if problems:
        return problems
    services = doc["services"]
    named_volumes = set(doc.get("volumes") or {})

    # Nothing is published beyond the loopback interface; Flink REST (job submission = code execution)
    # exactly as 127.0.0.1:8081:8081.
    for name, service in services.items():
        for ip, host, container in published_ports(service):
            if ip not in ("127.0.0.1", "::1"):
                problems.append(f"{name}: port {container} is published on {ip or 'every interface'}, "
                                "not on 127.0.0.1 only")
            if not host:
                problems.append(f"{name}: port {container} is published on a random host port")
    jm_ports = published_ports(services["jobmanager"])
    if ("127.0.0.1", "8081", "8081") not in jm_ports:
        problems.append(f"jobmanager: Flink REST is not published as 127.0.0.1:8081:8081 (got {jm_ports})")

    # One cluster configuration: the client (tailor-job) submits with the cluster's settings.
    confs = {name: flink_properties(services[name]) for name in FLINK_SERVICES}
    for name, service in services.items():
        text = service.get("environment", {}).get("FLINK_PROPERTIES", "")
        for line in text.splitlines():
            if line.strip().startswith("#") or (":" in line and re.search(r"\S\s+\S", line.partition(":")[2])):
                problems.append(f"{name}: FLINK_PROPERTIES line {line.strip()!r}: the entrypoint strips all "
                                "whitespace (and has no comments)")
    conf = confs["jobmanager"]
    for name, other in confs.items():
        if other != conf:
            problems.append(f"{name}: FLINK_PROPERTIES differ from the jobmanager's")

    # Checkpoints and savepoints on one named volume mounted by every Flink container.
    mounts = {name: volume_mounts(services[name]) for name in FLINK_SERVICES}
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
        uri = conf.get(key, "")
        shared = [
            (target, source) for target, source in mounts["jobmanager"].items()
            if path_under(uri, target) and source in named_volumes
        ]
        if not shared:
            problems.append(f"{key} ({uri or 'not set'}) is not on a named volume of the jobmanager")
            continue
        target, source = shared[0]
        for name in FLINK_SERVICES:
            if mounts[name].get(target) != source:
                problems.append(f"{name}: does not mount the volume {source} at {target}, where {key} is")
    for name in FLINK_SERVICES:
        state_dir = services[name].get("environment", {}).get("TAILOR_STATE_DIR", "")
        if not any(path_under(state_dir, target) and source in named_volumes
                   for target, source in mounts[name].items()):
            problems.append(f"{name}: TAILOR_STATE_DIR ({state_dir or 'not set'}), where the job keeps its own "
                            "checkpoints and savepoints, is not on a named volume")
    if len({services[name].get("environment", {}).get("TAILOR_STATE_DIR") for name in FLINK_SERVICES}) != 1:
        problems.append("TAILOR_STATE_DIR differs between the Flink containers")

    problems += retention_problems(conf, "FLINK_PROPERTIES")
    problems += restart_strategy_problems(conf, "FLINK_PROPERTIES")
    if conf.get("python.execution-mode") != "thread":
        problems.append("FLINK_PROPERTIES: python.execution-mode is not thread")
    if not conf.get("metrics.reporter.prom.factory.class", "").endswith("PrometheusReporterFactory"):
        problems.append("FLINK_PROPERTIES: no Prometheus reporter")

    # 2 TaskManagers x 1 slot, and the job's parallelism uses both.
    taskmanagers = [s for s in services.values() if s.get("command") in ("taskmanager", ["taskmanager"])]
    count = sum(s.get("deploy", {}).get("replicas", 1) for s in taskmanagers)
    slots = int(conf.get("taskmanager.numberOfTaskSlots", "1"))
    if (count, slots) != (2, 1):
        problems.append(f"{count} TaskManager(s) x {slots} slot(s), want 2 x 1")
    parallelism = services["tailor-job"].get("environment", {}).get("TAILOR_PARALLELISM", "1")
    if int(parallelism) != count * slots:
        problems.append(f"tailor-job: TAILOR_PARALLELISM {parallelism} != {count * slots} slots")

    # Healthchecks where there is something to ask, and start order on them.
    for name in ("kafka", "redis", "jobmanager"):
        test = services[name].get("healthcheck", {}).get("test")
        if not test or services[name]["healthcheck"].get("disable"):
            problems.append(f"{name}: no healthcheck")
    for dependency in ("jobmanager", "kafka", "redis"):
        condition = (services["tailor-job"].get("depends_on") or {}).get(dependency, {})
        if not isinstance(condition, dict) or condition.get("condition") != "service_healthy":
            problems.append(f"tailor-job: does not wait for {dependency} to be healthy")
    for name, service in services.items():
        if service.get("restart") not in ("always", "unless-stopped"):
            problems.append(f"{name}: restart is {service.get('restart')!r}: a crashed container stays down")

    # The job submitter: submit-job.sh, which submits segmentation_job.py from the newest retained state.
    command = services["tailor-job"].get("command")
    command = shlex.split(command) if isinstance(command, str) else command or []
    if not command or command[0] not in ("submit-job.sh", "/usr/local/bin/submit-job.sh"):
        problems.append(f"tailor-job: command {command} does not run submit-job.sh")

    # Kafka in KRaft mode, its data and Redis's on named volumes, Redis with AOF.
    kafka = services["kafka"]
    if kafka.get("image") != "apache/kafka:4.1.1" or "controller" not in kafka["environment"].get(
            "KAFKA_PROCESS_ROLES", ""):
        problems.append("kafka: not apache/kafka:4.1.1 in KRaft mode")
    if volume_mounts(kafka).get(kafka["environment"].get("KAFKA_LOG_DIRS", "")) not in named_volumes:
        problems.append("kafka: KAFKA_LOG_DIRS is not a named volume")
    redis_command = services["redis"].get("command", [])
    redis_command = " ".join(redis_command) if isinstance(redis_command, list) else redis_command
    if "--appendonly yes" not in redis_command or volume_mounts(services["redis"]).get("/data") not in named_volumes:
        problems.append("redis: no AOF persistence on a named volume")

    for name, service in services.items():
        problems += tailor_setting_problems(service.get("environment", {}), name)
    return problems


# -- the properties of the Kubernetes manifests ----------------------------------------------------------
def flink_deployment_problems(doc: dict[str, Any], companions: dict[str, dict[str, Any]]) -> list[str]:
    problems = schema_errors(flink_deployment_validator(), doc)
    if problems:
        return problems
    spec = doc["spec"]
    conf = spec.get("flinkConfiguration", {})
    problems += [f"flinkConfiguration {key}: {value!r} is not a string" for key, value in conf.items()
                 if not isinstance(value, str)]
    conf = {key: str(value) for key, value in conf.items()}

    flink_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("apache-flink=="))
    major, minor = flink_pin.split("==")[1].split(".")[:2]
    if spec.get("flinkVersion") != f"v{major}_{minor}":
        problems.append(f"flinkVersion {spec.get('flinkVersion')} is not the project's Flink ({flink_pin})")

    job = spec.get("job", {})
    if job.get("upgradeMode") != "savepoint":
        problems.append(f"job.upgradeMode is {job.get('upgradeMode')!r}, not savepoint")
    if job.get("entryClass") != "org.apache.flink.client.python.PythonDriver":
        problems.append("job.entryClass is not the Python driver")
    args = job.get("args", [])
    if JOB_PY not in args or args[args.index(JOB_PY) - 1] != "-py" or "-pyfs" not in args:
        problems.append(f"job.args {args} do not run -py {JOB_PY} with -pyfs")
    if not re.fullmatch(r"local:///opt/flink/(opt|lib)/flink-python-[\d.]+\.jar", job.get("jarURI", "")):
        problems.append(f"job.jarURI {job.get('jarURI')!r} is not Flink's Python driver jar in the image")

    # Durable checkpoint and savepoint dirs (the operator refuses savepoint upgrades without them) on the
    # PVC mounted by every pod, or on object storage.
    pod = spec.get("podTemplate", {}).get("spec", {})
    main = next((c for c in pod.get("containers", []) if c.get("name") == "flink-main-container"), {})
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", [])
              if "persistentVolumeClaim" in v}
    pvc_mounts = {m["mountPath"]: claims[m["name"]] for m in main.get("volumeMounts", []) if m["name"] in claims}
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir", "high-availability.storageDir"):
        uri = conf.get(key, "")
        on_pvc = [claim for path, claim in pvc_mounts.items() if path_under(uri, path)]
        if not (on_pvc or uri.startswith(("s3://", "s3a://", "s3p://", "gs://", "abfss://", "hdfs://"))):
            problems.append(f"flinkConfiguration {key} ({uri or 'not set'}) is not on a PVC or object storage")
        for claim in on_pvc:
            pvc = companions.get(f"PersistentVolumeClaim/{claim}")
            if pvc is None:
                problems.append(f"{key}: PVC {claim} is not among the manifests")
            elif "ReadWriteMany" not in pvc["spec"].get("accessModes", []):
                problems.append(f"PVC {claim} is not ReadWriteMany: JobManager and TaskManagers share it")
    problems += retention_problems(conf, "flinkConfiguration")
    problems += restart_strategy_problems(conf, "flinkConfiguration")
    if conf.get("kubernetes.rest-service.exposed.type") != "ClusterIP":
        problems.append("flinkConfiguration: Flink REST (job submission) is exposed beyond the cluster "
                        "(kubernetes.rest-service.exposed.type is not ClusterIP)")
    if conf.get("high-availability.type") != "kubernetes":
        problems.append("flinkConfiguration: high-availability.type is not kubernetes")
    if conf.get("python.execution-mode") != "thread":
        problems.append("flinkConfiguration: python.execution-mode is not thread")

    # 2 TaskManagers x 1 slot, sized; the job's parallelism (a Tailor setting) uses both.
    taskmanagers = spec.get("taskManager", {}).get("replicas")
    slots = int(conf.get("taskmanager.numberOfTaskSlots", "1"))
    if (taskmanagers, slots) != (2, 1):
        problems.append(f"{taskmanagers} TaskManager(s) x {slots} slot(s), want 2 x 1")
    for role in ("jobManager", "taskManager"):
        resource = spec.get(role, {}).get("resource", {})
        if not resource.get("memory") or not resource.get("cpu"):
            problems.append(f"{role}.resource has no memory or cpu")

    env: dict[str, str] = {}
    for source in main.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        config_map = companions.get(f"ConfigMap/{name}")
        if config_map is None:
            problems.append(f"envFrom: ConfigMap {name} is not among the manifests")
        else:
            env |= config_map["data"]
    if int(env.get("TAILOR_PARALLELISM", "1")) != (taskmanagers or 0) * slots:
        problems.append(f"TAILOR_PARALLELISM {env.get('TAILOR_PARALLELISM')} != the slots of the deployment")
    state_dir = env.get("TAILOR_STATE_DIR", "")
    if not any(path_under(state_dir, path) for path in pvc_mounts):
        problems.append(f"TAILOR_STATE_DIR ({state_dir or 'not set'}) is not on the PVC")
    problems += tailor_setting_problems(env, "ConfigMap")
    return problems


# -- schema and property tests ---------------------------------------------------------------------------
def test_vendored_schemas_are_the_recorded_upstream_files() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    for path in sorted(SCHEMAS.glob("*.json")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`{path.name}`" in readme, f"{path.name} has no source line in docker/schemas/README.md"
        assert digest in readme, f"{path.name} was changed since vendored (sha256 {digest} not in the README)"


def test_compose_file_is_valid_and_has_the_fault_tolerance_properties() -> None:
    assert compose_problems(load_yaml(COMPOSE_FILE)) == []


def test_compose_file_needs_no_interpolation() -> None:
    # docker compose substitutes $VAR and ${VAR} everywhere, FLINK_PROPERTIES and commands included.
    assert "$" not in COMPOSE_FILE.read_text()


def _mutate(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with ``value`` at ``path`` ("a/b/0/c"); value None deletes."""
    doc = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    node = doc
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


def _flink_property(doc: dict[str, Any], key: str, value: str | None) -> dict[str, Any]:
    """A copy with one FLINK_PROPERTIES line changed (None: removed) in every service."""
    doc = copy.deepcopy(doc)
    for service in doc["services"].values():
        env = service.get("environment", {})
        if "FLINK_PROPERTIES" in env:
            lines = [ln for ln in env["FLINK_PROPERTIES"].splitlines() if not ln.strip().startswith(key + ":")]
            env["FLINK_PROPERTIES"] = "\n".join(lines + ([f"{key}: {value}"] if value is not None else []))
    return doc


COMPOSE_BREAKAGES = {
    "REST on every interface": (
        lambda d: _mutate(d, "services/jobmanager/ports", ["0.0.0.0:8081:8081"]), "not on 127.0.0.1"),
    "REST without a host ip": (lambda d: _mutate(d, "services/jobmanager/ports", ["8081:8081"]), "every interface"),
    "Redis on every interface": (lambda d: _mutate(d, "services/redis/ports", ["6380:6379"]), "every interface"),
    "REST long syntax on 0.0.0.0": (
        lambda d: _mutate(d, "services/jobmanager/ports",
                          [{"target": 8081, "published": "8081", "host_ip": "0.0.0.0"}]), "not on 127.0.0.1"),
    "TaskManagers without the volume": (lambda d: _mutate(d, "services/taskmanager/volumes", []), "does not mount"),
    "checkpoints in the container": (
        lambda d: _flink_property(d, "execution.checkpointing.dir", "file:///tmp/checkpoints"),
        "not on a named volume"),
    "a bind mount instead of the volume": (
        lambda d: _mutate(d, "services/jobmanager/volumes", ["./data:/flink-data"]), "not on a named volume"),
    "checkpoints deleted on cancel": (
        lambda d: _flink_property(d, "execution.checkpointing.externalized-checkpoint-retention",
                                  "DELETE_ON_CANCELLATION"), "not retained"),
    "no restart strategy": (lambda d: _flink_property(d, "restart-strategy.type", None), "restart-strategy.type"),
    "max backoff 5 min": (
        lambda d: _flink_property(d, "restart-strategy.exponential-delay.max-backoff", "5min"), "max-backoff"),
    "one TaskManager": (lambda d: _mutate(d, "services/taskmanager/deploy/replicas", 1), "want 2 x 1"),
    "two slots each": (lambda d: _flink_property(d, "taskmanager.numberOfTaskSlots", "2"), "want 2 x 1"),
    "a comment in FLINK_PROPERTIES": (
        lambda d: _flink_property(d, "# retained", "on cancel"), "strips all whitespace"),
    "no JobManager healthcheck": (lambda d: _mutate(d, "services/jobmanager/healthcheck", None), "no healthcheck"),
    "a misspelt setting": (
        lambda d: _mutate(d, "services/tailor-job/environment/TAILOR_PARALELLISM", "2"), "not a Tailor setting"),
    "an unknown service key": (lambda d: _mutate(d, "services/jobmanager/portz", ["8081"]), "portz"),
    "Redis without AOF": (lambda d: _mutate(d, "services/redis/command", ["redis-server"]), "AOF"),
}


@pytest.mark.parametrize("breakage", COMPOSE_BREAKAGES)
def test_a_broken_compose_file_fails_the_check(breakage: str) -> None:
    mutate, expected = COMPOSE_BREAKAGES[breakage]
    problems = compose_problems(mutate(load_yaml(COMPOSE_FILE)))
    assert any(expected in p for p in problems), f"{breakage}: no problem mentions {expected!r}: {problems}"


def test_flink_deployment_is_valid_and_has_the_fault_tolerance_properties() -> None:
    docs = k8s_documents()
    assert flink_deployment_problems(load_yaml(FLINK_DEPLOYMENT_FILE), docs) == []


@pytest.mark.parametrize("version", ["1.30", kubernetes_validate.latest_version()])
def test_kubernetes_core_manifests_are_valid(version: str) -> None:
    """The PVC, ConfigMap and topics Job, and the FlinkDeployment's pod template as a Pod, strictly
    (unknown fields are errors) against the Kubernetes API schemas that kubernetes-validate ships."""
    docs = k8s_documents()
    core = [doc for doc in docs.values() if doc["apiVersion"] != "flink.apache.org/v1beta1"]
    assert {doc["kind"] for doc in core} >= {"PersistentVolumeClaim", "ConfigMap", "Job"}
    template = load_yaml(FLINK_DEPLOYMENT_FILE)["spec"]["podTemplate"]
    core.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-template", **template["metadata"]},
                 "spec": template["spec"]})
    for doc in core:
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validate_refuses_an_unknown_field() -> None:
    pvc = copy.deepcopy(k8s_documents()["PersistentVolumeClaim/tailor-flink-data"])
    pvc["spec"]["acessModes"] = pvc["spec"].pop("accessModes")
    with pytest.raises(kubernetes_validate.ValidationError, match="acessModes"):
        kubernetes_validate.validate(pvc, kubernetes_validate.latest_version(), strict=True)


def _conf(doc: dict[str, Any], key: str, value: str | None) -> dict[str, Any]:
    return _mutate(doc, f"spec/flinkConfiguration/{key.replace('/', '~')}", value)


K8S_BREAKAGES = {
    "stateless upgrades": (lambda d: _mutate(d, "spec/job/upgradeMode", "stateless"), "not savepoint"),
    "a misspelt field": (lambda d: _mutate(d, "spec/job/upgadeMode", "savepoint"), "upgadeMode"),
    "no savepoint dir": (lambda d: _conf(d, "execution.checkpointing.savepoint-dir", None), "savepoint-dir"),
    "checkpoints in the pod": (
        lambda d: _conf(d, "execution.checkpointing.dir", "file:///tmp/checkpoints"), "not on a PVC"),
    "no retained checkpoints": (lambda d: _conf(d, "execution.checkpointing.num-retained", None), "num-retained"),
    "checkpoints deleted on cancel": (
        lambda d: _conf(d, "execution.checkpointing.externalized-checkpoint-retention", "DELETE_ON_CANCELLATION"),
        "not retained"),
    "attempts limited": (
        lambda d: _conf(d, "restart-strategy.exponential-delay.attempts-before-reset-backoff", "10"), "attempts"),
    "no HA": (lambda d: _conf(d, "high-availability.type", None), "high-availability"),
    "REST on a LoadBalancer": (
        lambda d: _conf(d, "kubernetes.rest-service.exposed.type", "LoadBalancer"), "exposed beyond the cluster"),
    "an unknown Flink version": (lambda d: _mutate(d, "spec/flinkVersion", "v2_9"), "flinkVersion"),
    "one TaskManager": (lambda d: _mutate(d, "spec/taskManager/replicas", 1), "want 2 x 1"),
    "a number, not a string": (lambda d: _conf(d, "taskmanager.numberOfTaskSlots", 1), "not a string"),
    "no volume mount": (
        lambda d: _mutate(d, "spec/podTemplate/spec/containers/0/volumeMounts", []), "not on a PVC"),
}


@pytest.mark.parametrize("breakage", K8S_BREAKAGES)
def test_a_broken_flink_deployment_fails_the_check(breakage: str) -> None:
    mutate, expected = K8S_BREAKAGES[breakage]
    problems = flink_deployment_problems(mutate(load_yaml(FLINK_DEPLOYMENT_FILE)), k8s_documents())
    assert any(expected in p for p in problems), f"{breakage}: no problem mentions {expected!r}: {problems}"


def test_compose_and_kubernetes_give_tailor_the_same_settings() -> None:
    compose_env = load_yaml(COMPOSE_FILE)["services"]["tailor-job"]["environment"]
    compose_env = {k: str(v) for k, v in compose_env.items() if k.startswith("TAILOR_")}
    k8s_env = k8s_documents()["ConfigMap/tailor-settings"]["data"]
    assert set(compose_env) == set(k8s_env)
    differing = {k for k in compose_env if compose_env[k] != k8s_env[k]}
    assert differing <= {"TAILOR_KAFKA_HOST", "TAILOR_REDIS_HOST"}, differing  # the addresses may differ


def test_all_deployments_use_the_same_image_and_jobs_file() -> None:
    compose = load_yaml(COMPOSE_FILE)["services"]
    k8s = k8s_documents()
    images = {compose[name]["image"] for name in FLINK_SERVICES}
    images |= {k8s["FlinkDeployment/tailor-segmentation"]["spec"]["image"]}
    images |= {c["image"] for c in k8s["Job/tailor-topics"]["spec"]["template"]["spec"]["containers"]}
    assert images == {f"tailor-flink:{PYPROJECT['project']['version']}"}
    assert (ROOT / JOB_PY.removeprefix("/opt/tailor/")).is_file()


# -- the image -------------------------------------------------------------------------------------------
def _dockerfile_copies() -> list[list[str]]:
    """The arguments of each COPY without --from (sources..., destination)."""
    copies = []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copies.append([w for w in words[1:] if not w.startswith("--")])
    return copies


def test_dockerfile_copies_every_package_pip_installs_and_config() -> None:
    copied = {PurePosixPath(src).parts[0] for *sources, _ in _dockerfile_copies() for src in sources}
    packages = {name.split(".")[0] for name in PYPROJECT["tool"]["setuptools"]["packages"]}
    needed = packages | {"config", "pyproject.toml", PYPROJECT["project"]["readme"]}
    assert needed <= copied, f"Dockerfile.flink does not copy {sorted(needed - copied)}"
    assert all((ROOT / name).exists() for name in copied), "Dockerfile.flink copies something that does not exist"


def test_dockerignore_lets_every_copied_path_into_the_build_context() -> None:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "the dockerignore is an allow-list"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    sources = {src.rstrip("/") for *sources, _ in _dockerfile_copies() for src in sources}
    excluded = {s for s in sources if not any(s == a or s.startswith(f"{a}/") for a in allowed)}
    assert not excluded, f"excluded from the build context: {sorted(excluded)}"


def test_image_versions_match_the_project() -> None:
    from stack.maven import FLINK_KAFKA_CONNECTOR

    text = DOCKERFILE.read_text()
    flink = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("apache-flink==")).split("==")[1]
    assert re.search(rf"^FROM flink:{re.escape(flink)}-java17$", text, re.M), "base image is not the pinned Flink"
    assert f"flink-python-{flink}.jar" in text
    assert f"-Dartifact={FLINK_KAFKA_CONNECTOR} " in text, "not the local stack's Kafka connector"
    python = re.search(r">=(3\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)  # type: ignore[union-attr]
    assert f"python{python} -m venv /opt/tailor-venv" in text
    deployment = load_yaml(FLINK_DEPLOYMENT_FILE)
    assert deployment["spec"]["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{flink}.jar"
    for conf in (flink_properties(load_yaml(COMPOSE_FILE)["services"]["jobmanager"]),
                 deployment["spec"]["flinkConfiguration"]):
        assert conf["python.executable"] == "/opt/tailor-venv/bin/python"
        assert conf["python.pythonpath"] == f"/opt/tailor-venv/lib/python{python}/site-packages"
    assert text.rstrip().splitlines()[-1] == "USER flink"
    assert "chown -R flink:flink /flink-data" in text  # a new named volume takes this owner


def test_prometheus_reporter_ships_with_flink() -> None:
    import pyflink

    jars = list((Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus").glob("*.jar"))
    assert jars, "no metrics-prometheus plugin in the Flink distribution"
    factory = load_yaml(FLINK_DEPLOYMENT_FILE)["spec"]["flinkConfiguration"]["metrics.reporter.prom.factory.class"]
    with zipfile.ZipFile(jars[0]) as jar:
        assert factory.replace(".", "/") + ".class" in jar.namelist()


# -- Flink 2.2.1 reads the configuration -----------------------------------------------------------------
class Flink:
    """Flink's own configuration classes, through the venv's PyFlink JVM (PyFlink's one gateway per process,
    as any PyFlink code in the test process would start it)."""

    def __init__(self) -> None:
        import pyflink
        from pyflink.java_gateway import get_gateway

        self.gateway = get_gateway()
        self.jvm = self.gateway.jvm
        home = Path(pyflink.__file__).parent
        classes = []
        for jar in (*home.glob("lib/flink-dist-*.jar"), *home.glob("opt/flink-python-*.jar")):
            with zipfile.ZipFile(jar) as z:
                classes += [n[:-6].replace("/", ".") for n in z.namelist()
                            if n.endswith("Options.class") and "$" not in n and n.startswith("org/apache/flink/")
                            and ".shaded." not in n.replace("/", ".")]
        self.options: dict[str, Any] = {}
        self.deprecated: dict[str, str] = {}
        modifier = self.jvm.java.lang.reflect.Modifier
        for name in classes:
            try:
                fields = self.jvm.java.lang.Class.forName(name).getFields()
            except Exception:  # noqa: BLE001 - a class that does not load holds no option we use
                continue
            for field in fields:
                if (modifier.isStatic(field.getModifiers())
                        and field.getType().getName() == "org.apache.flink.configuration.ConfigOption"):
                    option = field.get(None)
                    self.options[option.key()] = option
                    for fallback in option.fallbackKeys():
                        if fallback.isDeprecated():
                            self.deprecated[fallback.getKey()] = option.key()
        metric_options = self.jvm.java.lang.Class.forName("org.apache.flink.configuration.MetricOptions")
        self.reporter_keys = {f.get(None).key() for f in metric_options.getFields()
                              if f.getType().getName() == "org.apache.flink.configuration.ConfigOption"
                              and not f.get(None).key().startswith("metrics.")}
        self.reporter_keys.add("port")  # a parameter of PrometheusReporterFactory (ARG_PORT, default 9249)

    def configuration(self, conf: dict[str, str]) -> Any:
        java_map = self.jvm.java.util.HashMap()
        for key, value in conf.items():
            java_map.put(key, str(value))
        return self.jvm.org.apache.flink.configuration.Configuration.fromMap(java_map)

    def problems(self, conf: dict[str, str], where: str) -> list[str]:
        """Keys Flink does not know (or knows as deprecated) and values it cannot parse."""
        problems = []
        jconf = self.configuration(conf)
        for key in conf:
            reporter = re.fullmatch(r"metrics\.reporter\.[^.]+\.(.+)", key)
            if key in self.deprecated:
                problems.append(f"{where}: {key} is deprecated in Flink 2.2, use {self.deprecated[key]}")
            elif reporter:
                if reporter.group(1) not in self.reporter_keys:
                    problems.append(f"{where}: {key} is not a metrics reporter option")
            elif key not in self.options:
                problems.append(f"{where}: {key} is not a Flink 2.2 option")
            else:
                try:
                    jconf.get(self.options[key])
                except Exception as exc:  # noqa: BLE001 - py4j wraps Flink's IllegalArgumentException
                    problems.append(f"{where}: {key}: {conf[key]!r} does not parse: {str(exc).splitlines()[0]}")
        return problems

    def effective(self, conf: dict[str, str]) -> dict[str, Any]:
        """The restart and retention options as Flink reads them (durations in ms)."""
        jconf = self.configuration(conf)
        out = {}
        for key in (*RESTART_STRATEGY, "execution.checkpointing.externalized-checkpoint-retention"):
            value = jconf.get(self.options[key])  # py4j turns String and Integer into str and int
            is_duration = not isinstance(value, str | int) and value.getClass().getName() == "java.time.Duration"
            out[key] = value.toMillis() if is_duration else str(value)
        return out


@pytest.fixture(scope="module")
def flink() -> Flink:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        # `tailor test` installs Java 17 with the stack; `tailor test --unit` on a machine without it cannot.
        pytest.skip("needs Java 17 for Flink's own configuration classes (bin/tailor test installs it)")
    return Flink()


def _compose_conf() -> dict[str, str]:
    return flink_properties(load_yaml(COMPOSE_FILE)["services"]["jobmanager"])


def _k8s_conf() -> dict[str, str]:
    return {k: str(v) for k, v in load_yaml(FLINK_DEPLOYMENT_FILE)["spec"]["flinkConfiguration"].items()}


def test_flink_knows_every_key_and_parses_every_value(flink: Flink) -> None:
    assert flink.problems(_compose_conf(), "compose") + flink.problems(_k8s_conf(), "kubernetes") == []


def test_flink_check_refuses_unknown_keys_deprecated_keys_and_bad_values(flink: Flink) -> None:
    problems = flink.problems({
        "restart-strategy.exponential-delay.max-backof": "60s",
        "state.checkpoints.num-retained": "2",
        "restart-strategy.exponential-delay.initial-backoff": "one second",
        "metrics.reporter.prom.prot": "9249",
    }, "broken")
    assert len(problems) == 4, problems


def test_flink_reads_the_restart_strategy_and_retention_as_intended(flink: Flink) -> None:
    want = {
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": 1_000,
        "restart-strategy.exponential-delay.max-backoff": 60_000,
        "restart-strategy.exponential-delay.reset-backoff-threshold": 600_000,
        "restart-strategy.exponential-delay.attempts-before-reset-backoff": str(2**31 - 1),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
    }
    assert flink.effective(_compose_conf()) == want
    assert flink.effective(_k8s_conf()) == want


def test_the_jobs_own_configuration_agrees_with_the_clusters(flink: Flink) -> None:
    """The job sets its restart strategy, retention and checkpoint dirs itself (from TAILOR_STATE_DIR), over
    the cluster's: with each deployment's settings, they must be the same strategy and on the shared volume."""
    from pipelines.segmentation_job import flink_configuration
    from settings import Settings

    compose = load_yaml(COMPOSE_FILE)["services"]["tailor-job"]["environment"]
    k8s = k8s_documents()["ConfigMap/tailor-settings"]["data"]
    for env, cluster in ((compose, _compose_conf()), (k8s, _k8s_conf())):
        job = flink_configuration(Settings.load(environ={k: str(v) for k, v in env.items()}), local=False).to_dict()
        assert flink.effective({**cluster, **job}) == flink.effective(cluster)
        for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
            assert path_under(job.get(key, cluster[key]), "/flink-data"), f"the job's {key}: {job.get(key)}"


def test_memory_settings_give_valid_process_sizes(flink: Flink) -> None:
    """As the operator's validator does: Flink derives the JobManager's and TaskManagers' memory budgets."""
    deployment = load_yaml(FLINK_DEPLOYMENT_FILE)["spec"]
    k8s = {**_k8s_conf(), "jobmanager.memory.process.size": deployment["jobManager"]["resource"]["memory"],
           "taskmanager.memory.process.size": deployment["taskManager"]["resource"]["memory"]}
    runtime = flink.jvm.org.apache.flink.runtime
    for where, conf in (("compose", _compose_conf()), ("kubernetes", k8s)):
        jconf = flink.configuration(conf)
        tm = runtime.clusterframework.TaskExecutorProcessUtils.processSpecFromConfig(jconf)
        jm = runtime.jobmanager.JobManagerProcessUtils.processSpecFromConfig(jconf)
        assert tm.getJvmHeapMemorySize().getMebiBytes() >= 256, where
        # Thread mode: the Python interpreter allocates inside the TaskManager process, outside its heap.
        assert tm.getJvmOverheadSize().getMebiBytes() >= 512, where
        assert jm.getJvmHeapMemorySize().getMebiBytes() >= 256, where


def test_kubernetes_ha_is_on_as_the_operator_sees_it(flink: Flink) -> None:
    mode = flink.jvm.org.apache.flink.runtime.jobmanager.HighAvailabilityMode
    assert mode.isHighAvailabilityModeActivated(flink.configuration(_k8s_conf()))
    assert not mode.isHighAvailabilityModeActivated(flink.configuration(_compose_conf()))  # said in the file


def test_python_driver_parses_the_kubernetes_job_args(flink: Flink) -> None:
    args = load_yaml(FLINK_DEPLOYMENT_FILE)["spec"]["job"]["args"]
    jvm = flink.jvm
    factory_class = jvm.java.lang.Class.forName("org.apache.flink.client.python.PythonDriverOptionsParserFactory")
    constructor = factory_class.getDeclaredConstructors()[0]
    constructor.setAccessible(True)
    factory = constructor.newInstance(flink.gateway.new_array(jvm.java.lang.Object, 0))
    java_args = flink.gateway.new_array(jvm.java.lang.String, len(args))
    for i, arg in enumerate(args):
        java_args[i] = arg
    options = jvm.org.apache.flink.runtime.entrypoint.parser.CommandLineParser(factory).parse(java_args)
    assert options.getEntryPointScript().get() == JOB_PY


# -- docker/submit-job.sh --------------------------------------------------------------------------------
def _state_dir(root: Path, layout: str = "layout-{n}") -> Path:
    """A TAILOR_STATE_DIR with a completed checkpoint and, 50 ms later, a savepoint of the current layout."""
    from pipelines.state_layout import STATE_LAYOUT

    group = root / "tailor-segmentation-v1" / layout.format(n=STATE_LAYOUT)
    for done in ("checkpoints/a1b2/chk-7", "savepoints/savepoint-a1b2c3-d4e5f6a7b8c9"):
        (group / done).mkdir(parents=True)
        (group / done / "_metadata").write_bytes(b"x")
        time.sleep(0.05)
    (group / "checkpoints/a1b2/chk-8").mkdir()  # unfinished: no _metadata
    return group


def _run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    base |= {"SUBMIT_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", str(SUBMIT_SCRIPT), *args], env=base | env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def test_submit_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(SUBMIT_SCRIPT)], check=False).returncode == 0
    assert os.access(SUBMIT_SCRIPT, os.X_OK)


def test_submit_script_resumes_from_the_newest_retained_state(tmp_path: Path) -> None:
    group = _state_dir(tmp_path)
    result = _run_script("--dry-run", env={"TAILOR_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    command = shlex.split(result.stdout)
    savepoint = group / "savepoints/savepoint-a1b2c3-d4e5f6a7b8c9"
    assert command[:5] == ["flink", "run", "-m", "jobmanager:8081", "-d"]
    assert command[command.index("-s") + 1] == str(savepoint), "not the newest (the savepoint)"
    assert command[command.index("-py") + 1] == JOB_PY
    assert command[command.index("-pyfs") + 1] == "/opt/tailor"

    # A newer checkpoint wins over the savepoint.
    (group / "checkpoints/a1b2/chk-8/_metadata").write_bytes(b"x")
    command = shlex.split(_run_script("--dry-run", env={"TAILOR_STATE_DIR": str(tmp_path)}).stdout)
    assert command[command.index("-s") + 1] == str(group / "checkpoints/a1b2/chk-8")


def test_submit_script_refuses_state_it_cannot_restore(tmp_path: Path) -> None:
    _state_dir(tmp_path, layout="layout-0")
    result = _run_script("--dry-run", env={"TAILOR_STATE_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert result.stdout == ""
    assert "another state layout" in result.stderr and "submit-job.sh --fresh" in result.stderr


def test_flink_accepts_the_submit_command(flink: Flink, tmp_path: Path) -> None:
    _state_dir(tmp_path)
    args = shlex.split(_run_script("--dry-run", env={"TAILOR_STATE_DIR": str(tmp_path)}).stdout)[2:]
    jvm = flink.jvm
    java_args = flink.gateway.new_array(jvm.java.lang.String, len(args))
    for i, arg in enumerate(args):
        java_args[i] = arg
    parser = jvm.org.apache.flink.client.cli.CliFrontendParser
    # As CliFrontend.run: the run options and those of the default command line (-m, -D).
    options = jvm.org.apache.commons.cli.Options()
    default_cli = jvm.org.apache.flink.client.cli.DefaultCLI()
    default_cli.addGeneralOptions(options)
    default_cli.addRunOptions(options)
    line = parser.parse(parser.mergeOptions(parser.getRunCommandOptions(), options), java_args, True)
    assert line.hasOption("d") and line.getOptionValue("m") == "jobmanager:8081"
    assert line.getOptionValue("py") == JOB_PY and line.getOptionValue("pyfs") == "/opt/tailor"
    assert line.getOptionValue("s").endswith("savepoint-a1b2c3-d4e5f6a7b8c9")
    assert list(line.getArgs()) == []


class _StubJobManager(BaseHTTPRequestHandler):
    jobs: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        body = json.dumps({"jobs": self.jobs}).encode()
        self.send_response(200 if self.path == "/jobs/overview" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_cluster(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A stub JobManager REST API on 127.0.0.1 and stub `flink` and `tailor` commands that log their calls."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubJobManager)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    calls = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("flink", "tailor"):
        (bin_dir / command).write_text(f'#!/bin/sh\necho "{command} $*" >> "{calls}"\n')
        (bin_dir / command).chmod(0o755)
    env = {"FLINK_JOBMANAGER": f"127.0.0.1:{server.server_address[1]}", "SUBMIT_CHECK_INTERVAL_S": "0",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TAILOR_STATE_DIR": str(tmp_path / "state")}
    try:
        yield env, calls
    finally:
        server.shutdown()
        server.server_close()


def _job(state: str) -> dict[str, Any]:
    return {"jid": "f" * 32, "name": "tailor-segmentation", "state": state, "start-time": 1,
            "tasks": {"running": 1, "total": 1}}


def test_submit_script_leaves_a_running_job_alone(stub_cluster: tuple[dict[str, str], Path]) -> None:
    env, calls = stub_cluster
    _StubJobManager.jobs = [_job("FAILED"), _job("RESTARTING")]
    result = _run_script(env=env)
    assert result.returncode == 0, result.stderr
    assert not calls.exists(), calls.read_text()


def test_submit_script_resubmits_a_lost_job_from_its_state(stub_cluster: tuple[dict[str, str], Path]) -> None:
    env, calls = stub_cluster
    group = _state_dir(Path(env["TAILOR_STATE_DIR"]))
    _StubJobManager.jobs = [_job("FAILED")]  # e.g. a JobManager restart: the job is gone
    result = _run_script(env=env)
    assert result.returncode == 0, result.stderr
    topics, submit = calls.read_text().splitlines()
    assert topics == "tailor topics create"
    assert submit.startswith(f"flink run -m {env['FLINK_JOBMANAGER']} -d -s {group}/savepoints/savepoint-")
    assert f"-py {JOB_PY} -pyfs /opt/tailor" in submit


def test_submit_script_submits_nothing_when_flink_does_not_answer(stub_cluster: tuple[dict[str, str], Path]) -> None:
    env, calls = stub_cluster
    result = _run_script(env=env | {"FLINK_JOBMANAGER": "127.0.0.1:9"})  # the discard port: refused
    assert result.returncode != 0
    assert "does not answer" in result.stderr
    assert not calls.exists()


def test_submit_script_does_not_replay_under_a_running_job(stub_cluster: tuple[dict[str, str], Path]) -> None:
    env, calls = stub_cluster
    group = _state_dir(Path(env["TAILOR_STATE_DIR"]))
    _StubJobManager.jobs = [_job("RUNNING")]
    result = _run_script("--fresh", env=env)
    assert result.returncode != 0 and "stop it first" in result.stderr
    assert not calls.exists()
    assert group.exists(), "the retained state was moved under a running job"
