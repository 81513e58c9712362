"""connectors.kafka_clients: a Kafka client properties file -> what the Java and Python clients take."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.kafka_clients import KafkaCluster, kafka_cluster, parse_properties, python_options
from connectors.redis_clients import RedisAuth
from settings import Settings
from settings.errors import ConfigError

SCRAM_SSL = """\
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" password="p=w:d";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/ca.pem
ssl.endpoint.identification.algorithm=
"""


def test_scram_over_tls_with_a_pem_truststore() -> None:
    options = python_options(parse_properties(SCRAM_SSL))

    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "svc", "sasl_plain_password": "p=w:d",
                       "ssl_cafile": "/etc/kafka/ca.pem", "ssl_check_hostname": False}


def test_mutual_tls_with_a_pem_keystore() -> None:
    options = python_options({"security.protocol": "SSL", "ssl.keystore.type": "PEM",
                              "ssl.keystore.location": "/k.pem", "ssl.key.password": "kp"})

    assert options == {"security_protocol": "SSL", "ssl_certfile": "/k.pem", "ssl_password": "kp"}


def test_the_java_clients_get_the_file_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(SCRAM_SSL + "client.dns.lookup=use_all_dns_ips\n")

    cluster = kafka_cluster(Settings.load(environ={}, kafka_client_properties=str(path)))

    assert cluster.java_properties()["client.dns.lookup"] == "use_all_dns_ips"
    assert cluster.java_properties()["sasl.jaas.config"].endswith('password="p=w:d";')
    assert cluster.python_options()["bootstrap_servers"] == "127.0.0.1:9092"


def test_no_file_is_plaintext_without_auth() -> None:
    assert kafka_cluster(Settings.load(environ={})) == KafkaCluster("127.0.0.1:9092")
    assert kafka_cluster("broker:9092").python_options() == {"bootstrap_servers": "broker:9092"}


@pytest.mark.parametrize(
    ("properties", "says"),
    [
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI"}, "sasl.mechanism GSSAPI"),
        ({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"}, 'username="..."'),
        ({"security.protocol": "SSL", "ssl.truststore.location": "/ts.jks"}, "must be a PEM file"),
        ({"security.protocol": "SSL", "ssl.engine.factory.class": "x"}, "ssl.engine.factory.class cannot be passed"),
        ({"security.protocol": "TLS"}, "security.protocol TLS is not one of"),
    ],
)
def test_what_the_python_clients_cannot_honour_is_named(properties: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(".", r"\.")):
        python_options(properties)


def test_a_missing_properties_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the Kafka client properties file .*nope"):
        kafka_cluster(Settings.load(environ={}, kafka_client_properties=str(tmp_path / "nope")))


def test_redis_auth_reads_the_password_where_it_connects(tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret\n")
    auth = RedisAuth.of(Settings.load(environ={}, redis_username="svc", redis_password_file=str(secret),
                                      redis_tls=True, redis_tls_ca_file="/ca.pem"))

    assert "s3cret" not in repr(auth)  # it travels in the job graph: the path only
    assert auth.options() == {"username": "svc", "password": "s3cret", "ssl": True, "ssl_ca_certs": "/ca.pem"}
