"""``tailor collect`` while the Kafka broker is SIGKILLed and restarted: nothing acknowledged is lost.

A sender behaves like an SDK: batches of 20 events with fixed messageIds, a batch retried until it is
acknowledged (200). Every acknowledged messageId must be in the events topic afterwards; while the broker
is down the collector must answer 503 with Retry-After (not hang, not acknowledge).
"""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import orjson
import pytest

from connectors.kafka_events import read_topic
from stack import kafka
from stack.service_process import running_collector
from tests.faults.harness import BROKER_RECOVERY_S
from tests.integration.harness import isolated_settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KEY = "fault-write-key"
AUTH = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()


class Sender(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.acknowledged: list[str] = []
        self.statuses: dict[str, int] = {}
        self.retry_after: set[str] = set()

    def run(self) -> None:
        batch_no = 0
        while not self.stop.is_set():
            ids = [f"b{batch_no}-{i}" for i in range(20)]
            body = orjson.dumps({"batch": [
                {"type": "track", "event": "Product Viewed", "userId": f"u{(batch_no * 20 + i) % 500}",
                 "messageId": m, "properties": {"product_id": f"p{i}"}} for i, m in enumerate(ids)]})
            while not self.stop.is_set():  # the same batch until it is acknowledged, as an SDK retries
                status = self._post(body)
                self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
                if status == 200:
                    self.acknowledged += ids
                    break
                time.sleep(0.5)
            batch_no += 1

    def _post(self, body: bytes) -> int | str:
        request = urllib.request.Request(self.url + "/v1/batch", data=body, method="POST",
                                         headers={"Authorization": AUTH, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:
            if e.headers.get("Retry-After"):
                self.retry_after.add(str(e.code))
            return int(e.code)
        except OSError as e:
            return type(e).__name__


def test_broker_killed_and_restarted_under_the_collector_loses_no_acknowledged_event(stack_settings, tmp_path):
    settings = isolated_settings(stack_settings, "fault-collector", models_enabled=False)
    with running_collector(settings, KEY, tmp_path / "collector.log") as url:
        sender = Sender(url)
        sender.start()
        try:
            wait_for(lambda: len(sender.acknowledged) >= 200, 60, "the collector acknowledging batches")
            before_kill = len(sender.acknowledged)
            pid = kafka.running_pid(stack_settings)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: "503" in sender.retry_after, 60, "the collector answering 503 + Retry-After")
            during_outage = len(sender.acknowledged)
            kafka.start(stack_settings, timeout=BROKER_RECOVERY_S)
            wait_for(lambda: len(sender.acknowledged) >= during_outage + 200, 120,
                     "the collector acknowledging batches again after the restart")
        finally:
            sender.stop.set()
            sender.join(60)
            kafka.start(stack_settings, timeout=BROKER_RECOVERY_S)
    stored = [orjson.loads(r.value)["messageId"] for r in read_topic(settings.kafka_bootstrap, settings.events_topic)]
    lost = set(sender.acknowledged) - set(stored)
    print(f"\ncollector under broker SIGKILL: {len(sender.acknowledged):,} acknowledged ({before_kill:,} before the "
          f"kill), {len(stored):,} stored ({len(stored) - len(set(stored)):,} retried duplicates, dropped by the job "
          f"by messageId), responses {sender.statuses}, lost {len(lost)}")
    assert before_kill > 0 and len(sender.acknowledged) > during_outage  # it worked before and after
    assert not lost
    assert "503" in sender.retry_after  # the outage was answered 503 + Retry-After, not acknowledged
