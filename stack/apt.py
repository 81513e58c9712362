"""Install missing system packages (Java, Maven, Redis) from Debian's apt.

Debian packages are one of the three registries our machines can reach, and "no manual steps" means
the stack installs what it needs itself. That only works as root; otherwise we stop with the exact
command to run, rather than trying sudo behind the user's back.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from stack.errors import StackError

_updated = False  # `apt-get update` once per process is enough


def install(packages: list[str], why: str) -> None:
    """``apt-get install -y`` the packages, or raise a StackError saying how to do it by hand."""
    command = "apt-get install -y " + " ".join(packages)
    if shutil.which("apt-get") is None:
        raise StackError(
            f"{why}, and this is not a Debian/Ubuntu system: install {' '.join(packages)} yourself"
        )
    if os.geteuid() != 0:
        raise StackError(f"{why}: install it with `sudo apt-get update && sudo {command}`")
    global _updated  # noqa: PLW0603 - one `apt-get update` per process is the point
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = ([] if _updated else [["apt-get", "update"]]) + [["apt-get", "install", "-y", *packages]]
    for argv in steps:
        result = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, check=False, capture_output=True, text=True
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
            raise StackError(f"{why}, and `{' '.join(argv)}` failed (exit {result.returncode}):\n{tail}")
    _updated = True
