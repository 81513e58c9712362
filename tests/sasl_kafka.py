"""A Kafka broker of a test's own that only speaks SASL_PLAINTEXT with the PLAIN mechanism: a client
without the right user name and password cannot even read metadata. It runs from the local stack's jars
(``stack.kafka``), with the stack's server.properties except the listeners, in a temporary directory."""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

from settings import Settings
from stack import java, kafka, process

USER, PASSWORD = "tailor", "tailor-secret"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SaslKafka:
    def __init__(self, directory: Path, stack_settings: Settings) -> None:
        self.port, self.controller_port = _free_port(), _free_port()
        self.settings = stack_settings.replace(
            home=directory, kafka_port=self.port, kafka_controller_port=self.controller_port, kafka_partitions=2
        )
        self.paths = kafka.Paths.of(self.settings)
        self.libs = kafka.Paths.of(stack_settings).libs  # the stack's downloaded jars
        self.process: subprocess.Popen[bytes] | None = None

    def client_properties(self, path: Path, password: str = PASSWORD) -> Path:
        """A Kafka client properties file for user ``tailor``, as a user would write it."""
        path.write_text(
            "# Kafka client properties for the test broker\n"
            "security.protocol=SASL_PLAINTEXT\n"
            "sasl.mechanism=PLAIN\n"
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
            f'    username="{USER}" password="{password}";\n'
        )
        return path

    def start(self) -> SaslKafka:
        for d in (self.paths.config_dir, self.paths.data, self.paths.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.paths.server_properties.write_text(self._server_properties())
        self.paths.log4j_config.write_text(kafka.log4j_config(self.paths))
        jvm = str(java.ensure().path)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        classpath = ["-cp", f"{self.libs}/*", f"-Dlog4j2.configurationFile={self.paths.log4j_config}"]
        subprocess.run([jvm, "-Xmx256m", *classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                        "-c", str(self.paths.server_properties)], check=True, capture_output=True)
        with open(self.paths.stdout_log, "wb") as out:
            self.process = subprocess.Popen(
                [jvm, "-Xmx384m", "-Xms128m", *classpath, kafka.MAIN_CLASS, str(self.paths.server_properties)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while not process.port_open("127.0.0.1", self.port):
            assert self.process.poll() is None, f"the SASL broker exited: {self.log()}"
            assert time.monotonic() < deadline, f"the SASL broker did not open its port: {self.log()}"
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return process.log_tail(self.paths.server_log, 30) + "\n" + process.log_tail(self.paths.stdout_log, 10)

    def _server_properties(self) -> str:
        text = kafka.server_properties(self.settings, self.paths)
        host, port, cport = "127.0.0.1", self.port, self.controller_port
        replaced = {
            "listeners": f"SASL_PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"SASL_PLAINTEXT://{host}:{port}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
        }
        for key, value in replaced.items():
            text, found = re.subn(rf"(?m)^{re.escape(key)}=.*$", f"{key}={value}", text)
            assert found == 1, key
        admin = 'username="admin" password="admin-secret" user_admin="admin-secret"'
        return text + (
            "\n# SASL/PLAIN only (tests/sasl_kafka.py)\n"
            "sasl.enabled.mechanisms=PLAIN\n"
            "sasl.mechanism.inter.broker.protocol=PLAIN\n"
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {admin} user_{USER}=\"{PASSWORD}\";\n"
        )
