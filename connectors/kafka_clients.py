r"""Where every Kafka client Tailor builds finds its broker and its credentials (SASL, TLS).

A production cluster wants credentials. Tailor takes them as Kafka's own tools do: a client properties
file (setting ``kafka_client_properties``; the file you would pass to ``kafka-console-consumer
--consumer.config``). The Java clients of the Flink job (``KafkaSource``, ``KafkaSink``, the SQL sinks)
get its properties verbatim; the Python clients (kafka-python, aiokafka) get them translated. The file
stays outside the repository; the settings hold only its path.

Translated for the Python clients: ``security.protocol``; ``sasl.mechanism`` PLAIN, SCRAM-SHA-256 or
SCRAM-SHA-512 with the ``username`` and ``password`` of ``sasl.jaas.config``; TLS with PEM files
(``ssl.truststore.type=PEM`` and ``ssl.truststore.location``, ``ssl.keystore.type=PEM`` and
``ssl.keystore.location`` holding key and certificate, ``ssl.key.password``) and
``ssl.endpoint.identification.algorithm`` (empty: no host name check). Anything else a Python client
cannot honour is an error that names the property, not a silent downgrade.

>>> props = parse_properties('security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n'
...     'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n'
...     '    username="tailor" password="s3cret";\n')
>>> sorted(python_options(props).items())  # doctest: +NORMALIZE_WHITESPACE
[('sasl_mechanism', 'PLAIN'), ('sasl_plain_password', 's3cret'), ('sasl_plain_username', 'tailor'),
 ('security_protocol', 'SASL_SSL')]
>>> python_options({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI"})
Traceback (most recent call last):
...
settings.errors.ConfigError: Kafka client properties: sasl.mechanism GSSAPI is not supported by Tailor's Python clients; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from settings import Settings
from settings.errors import ConfigError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Properties the Python clients take (translated below); any other is Java-only and refused.
_PYTHON_KEYS = frozenset({
    "security.protocol", "sasl.mechanism", "sasl.jaas.config", "ssl.truststore.type", "ssl.truststore.location",
    "ssl.keystore.type", "ssl.keystore.location", "ssl.key.password", "ssl.endpoint.identification.algorithm",
})
_PROPERTY = re.compile(r"([^=:\s]+)\s*[=:]?\s*(.*)")
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class KafkaCluster:
    """A broker list and the client properties every client of it needs (empty: plaintext, no auth)."""

    bootstrap: str
    properties: dict[str, str] = field(default_factory=dict)

    def python_options(self) -> dict[str, Any]:
        """kafka-python keyword arguments (``KafkaProducer``, ``KafkaConsumer``, ``KafkaAdminClient``)."""
        return {"bootstrap_servers": self.bootstrap, **python_options(self.properties)}

    def aiokafka_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments: the same, with TLS as an ``ssl_context``."""
        options = self.python_options()
        tls = {k: options.pop(k) for k in ("ssl_cafile", "ssl_certfile", "ssl_password") if k in options}
        check_hostname = options.pop("ssl_check_hostname", True)
        if options.get("security_protocol") in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            context = create_ssl_context(cafile=tls.get("ssl_cafile"), certfile=tls.get("ssl_certfile"),
                                         password=tls.get("ssl_password"))
            context.check_hostname = check_hostname
            options["ssl_context"] = context
        return options

    def java_properties(self) -> dict[str, str]:
        """Kafka client properties for the Java clients of the Flink job, verbatim."""
        return dict(self.properties)


# What a function that connects to Kafka takes: the settings (their broker and properties file), a bare
# broker list (plaintext, no auth: tests and the local stack), or a cluster already read.
KafkaTarget = Settings | str | KafkaCluster


def kafka_cluster(settings: KafkaTarget) -> KafkaCluster:
    """The cluster of ``settings`` (its client properties file read now), or a bare broker list."""
    if isinstance(settings, KafkaCluster):
        return settings
    if isinstance(settings, str):
        return KafkaCluster(settings)
    path = settings.kafka_client_properties
    if not path:
        return KafkaCluster(settings.kafka_bootstrap)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the Kafka client properties file {path}: {exc.strerror}") from None
    properties = parse_properties(text)
    python_options(properties)  # refuse what the Python clients cannot honour before anything connects
    return KafkaCluster(settings.kafka_bootstrap, properties)


def parse_properties(text: str) -> dict[str, str]:
    r"""A Java ``.properties`` text: ``key=value`` or ``key: value``, ``#``/``!`` comments, ``\``-continued
    lines.

    >>> parse_properties("# c\na=1\nb : x \\\n  y\n")
    {'a': '1', 'b': 'x y'}
    """
    properties: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and (len(line) - len(line.rstrip("\\"))) % 2 == 1:
            logical += line[:-1]
            continue
        match = _PROPERTY.match(logical + line)
        if match is not None:
            properties[match.group(1)] = match.group(2).rstrip()
        logical = ""
    return properties


def python_options(properties: dict[str, str]) -> dict[str, Any]:
    """kafka-python / aiokafka keyword arguments for the security ``properties``; ConfigError for what they
    cannot honour."""
    unknown = sorted(k for k in properties if k not in _PYTHON_KEYS and k.startswith(("sasl.", "ssl.", "security.")))
    if unknown:
        raise _error(f"{', '.join(unknown)} cannot be passed to Tailor's Python clients; supported: "
                     f"{', '.join(sorted(_PYTHON_KEYS))}")
    options: dict[str, Any] = {}
    protocol = properties.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise _error(f"security.protocol {protocol} is not one of {', '.join(PROTOCOLS)}")
    if protocol != "PLAINTEXT":
        options["security_protocol"] = protocol
    if protocol.startswith("SASL"):
        mechanism = properties.get("sasl.mechanism", "GSSAPI").upper()
        if mechanism not in MECHANISMS:
            raise _error(f"sasl.mechanism {mechanism} is not supported by Tailor's Python clients; use "
                         f"{', '.join(MECHANISMS[:-1])} or {MECHANISMS[-1]}")
        jaas = dict(_JAAS_OPTION.findall(properties.get("sasl.jaas.config", "")))
        if "username" not in jaas or "password" not in jaas:
            raise _error('sasl.jaas.config needs username="..." and password="..." for ' + mechanism)
        options.update(sasl_mechanism=mechanism, sasl_plain_username=jaas["username"],
                       sasl_plain_password=jaas["password"])
    if protocol.endswith("SSL"):
        for store, option in (("truststore", "ssl_cafile"), ("keystore", "ssl_certfile")):
            location = properties.get(f"ssl.{store}.location")
            if location:
                if properties.get(f"ssl.{store}.type", "JKS").upper() != "PEM":
                    raise _error(f"ssl.{store}.location must be a PEM file (ssl.{store}.type=PEM) for Tailor's "
                                 "Python clients; convert a JKS/PKCS12 store with openssl or keytool")
                options[option] = location
        if properties.get("ssl.key.password"):
            options["ssl_password"] = properties["ssl.key.password"]
        if properties.get("ssl.endpoint.identification.algorithm", "https") == "":
            options["ssl_check_hostname"] = False
    return options


def _error(message: str) -> ConfigError:
    return ConfigError(f"Kafka client properties: {message}")
