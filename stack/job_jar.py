"""The job's own Java operators (``pipelines/java``), compiled into a jar beside the connector's.

They are small (the micro-batcher, the Kafka record deserializer, the unbatcher, a key selector: see
their sources) and compiled here with the JDK's ``javac`` against the jars of the installed PyFlink and
the Kafka connector, once per version of the sources: the jar's name carries a hash of them, so an edit
rebuilds it and a stale jar is never used. Layout: ``<home>/jars/tailor-flink-ops-<hash>.jar``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from settings import PROJECT_ROOT, Settings
from stack.errors import StackError

SOURCES = PROJECT_ROOT / "pipelines" / "java"


def source_hash() -> str:
    digest = hashlib.sha256()
    for source in sorted(SOURCES.rglob("*.java")):
        digest.update(source.relative_to(SOURCES).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:12]


def ensure_job_jar(settings: Settings, pyflink_home: Path, connector: Path) -> Path:
    """The compiled jar of ``pipelines/java`` (built if missing or stale). Idempotent."""
    jar = settings.home / "jars" / f"tailor-flink-ops-{source_hash()}.jar"
    if jar.exists():
        return jar
    javac, jar_tool = shutil.which("javac"), shutil.which("jar")
    if javac is None or jar_tool is None:
        raise StackError("javac and jar (a JDK 17) are needed to build the job's Java operators: "
                         "`apt-get install openjdk-17-jdk-headless` (bin/tailor stack up does it)")
    classpath = [*sorted((pyflink_home / "lib").glob("*.jar")), connector]
    classpath += sorted((pyflink_home / "opt").glob("flink-python-*.jar"))
    sources = sorted(str(s) for s in SOURCES.rglob("*.java"))
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tailor-javac-") as classes:
        for argv in (
            [javac, "-nowarn", "--release", "17", "-d", classes, "-cp", ":".join(map(str, classpath)), *sources],
            [jar_tool, "cf", str(jar.with_suffix(".tmp")), "-C", classes, "."],
        ):
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise StackError(f"building the job's Java operators failed ({Path(argv[0]).name}):\n"
                                 f"{(result.stdout + result.stderr)[-3000:]}")
    jar.with_suffix(".tmp").rename(jar)
    for old in jar.parent.glob("tailor-flink-ops-*.jar"):
        if old != jar:
            old.unlink()
    return jar
