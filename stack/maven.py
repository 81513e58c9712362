"""Fetch the stack's jars from Maven Central with ``mvn``.

Maven Central is the only place our machines can get Kafka and the Flink connector from (no Apache
download mirrors), and ``mvn`` already knows the machine's repository, mirror and proxy settings.
We write a tiny pom per artifact set and let the dependency plugin copy the resolved jars out.

Two artifact sets:

* the Kafka broker: ``kafka_2.13`` and its runtime dependencies, plus ``log4j-slf4j-impl`` (not a
  transitive dependency, but without an SLF4J binding the broker logs nothing) and
  ``jackson-dataformat-yaml`` (log4j2 needs it to read our ``log4j2.yaml``);
* the shaded Flink SQL Kafka connector, the one jar PyFlink jobs add with ``env.add_jars``.

Every download runs with ``-C`` (strict checksums: mvn refuses a file whose ``.sha1`` from Maven
Central does not match). The connector jar, which we hand to Flink directly, is additionally compared
with the ``.sha1`` mvn stored in the local repository, and a ``.sha256`` is written next to it so later
runs re-check it offline. Both sets are assembled into a temporary directory and moved into place only
when complete, so a half-finished download is never mistaken for a finished one; after the first run
no ``mvn`` process is started at all.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from settings import Settings
from stack import apt
from stack.errors import StackError

KAFKA_VERSION = "4.1.1"
KAFKA_BROKER = (
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
    "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3",
    # Same version as Kafka's jackson-databind: as a direct dependency its jackson-core would win.
    "com.fasterxml.jackson.dataformat:jackson-dataformat-yaml:2.19.0",
)
FLINK_KAFKA_CONNECTOR = "org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2"
# Pinned: Maven 3.8's super-POM would otherwise pick dependency-plugin 2.8 from 2013.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# Explicit, so we know where mvn keeps the .sha1 files it verified (the usual ~/.m2 cache is shared).
LOCAL_REPOSITORY = Path.home() / ".m2" / "repository"
MARKER = ".assembled"


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str

    @classmethod
    def parse(cls, coordinates: str) -> Artifact:
        group, name, version = coordinates.split(":")
        return cls(group, name, version)

    @property
    def jar_name(self) -> str:
        return f"{self.name}-{self.version}.jar"

    @property
    def repository_dir(self) -> Path:
        return LOCAL_REPOSITORY.joinpath(*self.group.split("."), self.name, self.version)

    def __str__(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"


def kafka_libs_dir(settings: Settings) -> Path:
    return settings.home / "kafka" / "libs"


def connector_path(settings: Settings) -> Path:
    return settings.home / "jars" / Artifact.parse(FLINK_KAFKA_CONNECTOR).jar_name


def kafka_libs_ready(settings: Settings) -> bool:
    marker = kafka_libs_dir(settings) / MARKER
    return marker.is_file() and marker.read_text() == _marker_text(KAFKA_BROKER)


def ensure_kafka_libs(settings: Settings, progress=print) -> Path:
    """``<home>/kafka/libs`` with the broker and its runtime dependencies; downloads only the first time."""
    libs = kafka_libs_dir(settings)
    if kafka_libs_ready(settings):
        return libs
    progress(
        f"jars      downloading Kafka {KAFKA_VERSION} broker libs from Maven Central (first run only) ..."
    )
    staging = libs.with_name(libs.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _copy_dependencies(settings, "kafka-broker", KAFKA_BROKER, staging, transitive=True)
    (staging / MARKER).write_text(_marker_text(KAFKA_BROKER))
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def connector_ready(settings: Settings) -> bool:
    """True if the connector jar is present and still matches the sha256 recorded when it was verified."""
    jar = connector_path(settings)
    recorded = jar.with_name(jar.name + ".sha256")
    if not (jar.is_file() and recorded.is_file()):
        return False
    return recorded.read_text().split()[0] == _digest(jar, "sha256")


def ensure_connector(settings: Settings, progress=print) -> Path:
    """The Flink Kafka connector fat jar, downloaded once and checksum-verified; returns its path."""
    jar = connector_path(settings)
    if connector_ready(settings):
        return jar
    artifact = Artifact.parse(FLINK_KAFKA_CONNECTOR)
    progress(f"jars      downloading {artifact.jar_name} from Maven Central ...")
    staging = jar.parent / "connector.partial"
    for attempt in (1, 2):
        shutil.rmtree(staging, ignore_errors=True)
        _copy_dependencies(
            settings, "flink-kafka-connector", (FLINK_KAFKA_CONNECTOR,), staging, transitive=False
        )
        copied = staging / artifact.jar_name
        if not copied.is_file():
            raise StackError(f"mvn finished but did not produce {copied}; see {staging} and re-run")
        published, actual = _published_sha1(artifact), _digest(copied, "sha1")
        if published == actual:
            break
        if attempt == 2:
            raise StackError(
                f"{artifact.jar_name} from Maven Central has sha1 {actual}, but its published .sha1 says "
                f"{published or '(missing)'}: a proxy or mirror may be altering downloads; re-run to retry"
            )
        # mvn took the jar from an older local-repository copy that lacks (or contradicts) its .sha1:
        # drop that copy so the second run downloads jar and .sha1 afresh, checking both with -C.
        shutil.rmtree(artifact.repository_dir, ignore_errors=True)
    jar.unlink(missing_ok=True)
    copied.rename(jar)
    jar.with_name(jar.name + ".sha256").write_text(f"{_digest(jar, 'sha256')}  {jar.name}\n")
    shutil.rmtree(staging, ignore_errors=True)
    return jar


def _published_sha1(artifact: Artifact) -> str | None:
    sha1_file = artifact.repository_dir / (artifact.jar_name + ".sha1")
    try:
        return sha1_file.read_text().split()[0].lower()
    except (FileNotFoundError, IndexError):
        return None


def _copy_dependencies(
    settings: Settings, name: str, coordinates: tuple[str, ...], output: Path, transitive: bool
) -> None:
    mvn = _ensure_mvn()
    work = settings.home / "maven" / name
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_pom(name, [Artifact.parse(c) for c in coordinates]))
    # -C: refuse files whose published .sha1 does not match; -U: retry artifacts an earlier (e.g. offline)
    # run failed to fetch, instead of trusting that miss cached in the local repository.
    argv = [
        mvn,
        "--batch-mode",
        "--quiet",
        "--strict-checksums",
        "--update-snapshots",
        "--file",
        str(work / "pom.xml"),
        f"-Dmaven.repo.local={LOCAL_REPOSITORY}",
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DexcludeTransitive={str(not transitive).lower()}",
        f"-DoutputDirectory={output}",
    ]
    result = subprocess.run(
        argv, cwd=work, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # mvn colours even in batch mode
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        # The first [ERROR] lines say what failed; the rest is Maven's generic "re-run with -X" advice.
        errors = [ln for ln in lines if ln.startswith("[ERROR]") and ln != "[ERROR]"]
        errors = errors[: next((i for i, ln in enumerate(errors) if "re-run Maven" in ln), 8)] or lines[-15:]
        raise StackError(
            f"Maven Central refused {', '.join(coordinates)} (mvn exit {result.returncode}):\n"
            + "\n".join(errors)
            + f"\nCheck the coordinates and that `mvn` can reach Maven Central (proxy or mirror in "
            f"~/.m2/settings.xml), then re-run; the generated pom is {work / 'pom.xml'}"
        )


def _ensure_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        apt.install(["maven"], "Maven (`mvn`) not found on PATH; it fetches Kafka and the Flink connector")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("installed the maven package but `mvn` is still not on PATH: add it to PATH")
    return mvn


def _pom(name: str, artifacts: list[Artifact]) -> str:
    deps = "\n".join(
        f"    <dependency><groupId>{a.group}</groupId><artifactId>{a.name}</artifactId>"
        f"<version>{a.version}</version></dependency>"
        for a in artifacts
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by stack.maven: only used to let mvn resolve and copy these jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>stack</groupId>
  <artifactId>{name}</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _marker_text(coordinates: tuple[str, ...]) -> str:
    return "\n".join(coordinates) + "\n"


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
