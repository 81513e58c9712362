"""Secrets: read where they are used, never stored in settings, the job graph or the repository.

The Redis password (``connectors.redis_clients``) comes from the file named by ``redis_password_file``,
else from ``TAILOR_REDIS_PASSWORD``, read when a client connects.

The pseudonymisation key (``operators.privacy``) comes from the file named by the ``pseudonym_key_file``
setting, else from the ``TAILOR_PSEUDONYM_KEY`` environment variable (on every TaskManager of a cluster).
The settings hold at most the file's path, so the key never reaches the Flink job graph, its web UI or a
log; the job reads it when its operators open.

>>> pseudonym_key("", environ={"TAILOR_PSEUDONYM_KEY": "0123456789abcdef"})
b'0123456789abcdef'
>>> pseudonym_key("", environ={}) is None
True
>>> pseudonym_key("", environ={"TAILOR_PSEUDONYM_KEY": "short"})
Traceback (most recent call last):
...
settings.errors.ConfigError: the pseudonymisation key (env TAILOR_PSEUDONYM_KEY) has 5 bytes; use at least 16 random bytes, e.g. `openssl rand -hex 32`
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from settings.errors import ConfigError

KEY_ENV = "TAILOR_PSEUDONYM_KEY"
REDIS_PASSWORD_ENV = "TAILOR_REDIS_PASSWORD"
MIN_KEY_BYTES = 16


def pseudonym_key(key_file: str | Path, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key, or None if pseudonymisation is off (no file configured and no environment variable)."""
    environ = os.environ if environ is None else environ
    if key_file:
        try:
            key, where = Path(key_file).read_bytes().strip(), f"file {key_file}"
        except OSError as e:
            raise ConfigError(f"cannot read the pseudonymisation key file {key_file}: {e.strerror}") from e
    elif environ.get(KEY_ENV):
        key, where = environ[KEY_ENV].encode(), f"env {KEY_ENV}"
    else:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the pseudonymisation key ({where}) has {len(key)} bytes; use at least "
                          f"{MIN_KEY_BYTES} random bytes, e.g. `openssl rand -hex 32`")
    return key


def redis_password(password_file: str | Path, environ: Mapping[str, str] | None = None) -> str | None:
    """Redis's password: the file's first line, else ``TAILOR_REDIS_PASSWORD``; None: no AUTH.

    >>> redis_password("", environ={"TAILOR_REDIS_PASSWORD": "s3cret"}), redis_password("", environ={})
    ('s3cret', None)
    """
    environ = os.environ if environ is None else environ
    if password_file:
        try:
            lines = Path(password_file).read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"cannot read the Redis password file {password_file}: {e.strerror}") from e
        return lines[0] if lines else ""
    return environ.get(REDIS_PASSWORD_ENV) or None
