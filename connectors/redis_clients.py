"""How every Redis client Tailor builds authenticates (ACL user, password) and encrypts (TLS).

:class:`RedisAuth` holds where the credentials are, never the password itself: it travels inside the
Flink job graph (the job's Redis writers are built on the client and shipped to the TaskManagers), and
the password is read from its file or from ``TAILOR_REDIS_PASSWORD`` when a client connects
(``settings.secrets``). The default is the local Redis: no user, no password, no TLS.

>>> RedisAuth().options()
{}
>>> RedisAuth(username="tailor", tls=True).options(environ={"TAILOR_REDIS_PASSWORD": "s3cret"})
{'username': 'tailor', 'password': 's3cret', 'ssl': True}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from settings import Settings
from settings.secrets import redis_password


@dataclass(frozen=True)
class RedisAuth:
    username: str = ""
    password_file: str = ""
    tls: bool = False
    tls_ca_file: str = ""

    @classmethod
    def of(cls, settings: Settings) -> RedisAuth:
        return cls(settings.redis_username, settings.redis_password_file, settings.redis_tls,
                   settings.redis_tls_ca_file)

    def options(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """redis-py keyword arguments (``redis.Redis`` and ``redis.asyncio.Redis`` alike)."""
        options: dict[str, Any] = {}
        if self.username:
            options["username"] = self.username
        password = redis_password(self.password_file, environ)
        if password is not None:
            options["password"] = password
        if self.tls:
            options["ssl"] = True
            if self.tls_ca_file:
                options["ssl_ca_certs"] = self.tls_ca_file
        return options


NO_AUTH = RedisAuth()  # the local Redis
