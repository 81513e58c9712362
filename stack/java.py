"""Find a Java 17+ JDK (Kafka 4.x and Flink 2.x need the runtime; the job's own operators need javac),
installing it if we may.

The check parses ``java -version`` rather than trusting the path, because an older default JVM
selected by update-alternatives is a common cause of baffling Kafka start-up failures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack import apt
from stack.errors import StackError

MIN_MAJOR = 17
APT_PACKAGE = "openjdk-17-jdk-headless"


@dataclass(frozen=True)
class Java:
    path: Path
    version: str  # as printed, e.g. "17.0.15"
    major: int


def find() -> Java | None:
    """The ``java`` on PATH and its version, or None if there is none."""
    path = shutil.which("java")
    if path is None:
        return None
    result = subprocess.run(
        [path, "-version"], check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    match = re.search(r'version "([^"]+)"', result.stderr + result.stdout)
    if result.returncode != 0 or match is None:
        raise StackError(f"`{path} -version` failed: {(result.stderr or result.stdout).strip()[:300]}")
    version = match.group(1)
    parts = version.split(".")
    major = int(parts[1] if parts[0] == "1" else re.match(r"\d+", parts[0]).group())  # "1.8.0_x" is Java 8
    return Java(Path(path), version, major)


def ensure() -> Java:
    """A usable Java >= 17 with javac; installs openjdk-17-jdk-headless via apt if either is missing."""
    java = find()
    if java is None or shutil.which("javac") is None:
        apt.install([APT_PACKAGE], f"Java {MIN_MAJOR} not found on PATH")
        java = find()
        if java is None:
            raise StackError(f"installed {APT_PACKAGE} but `java` is still not on PATH: add its bin/ to PATH")
        if shutil.which("javac") is None:
            raise StackError(f"installed {APT_PACKAGE} but `javac` is still not on PATH: add its bin/ to PATH")
    if java.major < MIN_MAJOR:
        raise StackError(
            f"{java.path} is Java {java.version}; Kafka 4 and Flink 2 need Java {MIN_MAJOR}+: "
            f"install {APT_PACKAGE} and select it with `update-alternatives --config java`"
        )
    return java
