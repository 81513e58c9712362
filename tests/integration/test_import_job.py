"""``tailor import`` on the real stack: a CRM export, mapped by the shipped example mapping, links a web
visitor to their customer id, withdraws one customer's consent and introduces a customer who never came;
the real job (embedded Flink, unbounded) applies it. Rows it cannot use are reported with their line
numbers; importing the file a second time changes nothing."""

from __future__ import annotations

import csv
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from connectors.kafka_events import event_producer, read_topic
from connectors.kafka_topics import committed_offsets
from connectors.redis_keys import RedisKeys
from settings import PROJECT_ROOT
from state_schemas import segment_change
from tailor.imports import import_file, load_mapping
from tests.faults.harness import JobProcess
from tests.integration.harness import isolated_settings, send_events, wait_for

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000
HEADER = ["customer_id", "web_visitor_id", "updated_at", "email", "loyalty_tier", "consent_personalization"]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def views(n: int, **ids: str) -> list[dict]:
    return [{"type": "track", "event": "Product Viewed", "messageId": f"{next(iter(ids.values()))}-{i}",
             "timestamp": T0 + i * 1_000, "properties": {"product_id": f"p{i}", "category": "c1"}, **ids}
            for i in range(n)]


def read_everything_sent(settings) -> None:
    """Until the job has committed (checkpointed) its reading of every record sent so far: a marker per
    partition, a traits-only identify (no change of any kind), must be behind its committed offset."""
    producer = event_producer(settings.kafka_bootstrap)
    marked = {}
    for partition in range(settings.kafka_partitions):
        marker = {"type": "identify", "userId": "marker", "messageId": uuid.uuid4().hex, "context": {"active": False},
                  "timestamp": T0}
        sent = producer.send(settings.events_topic, orjson.dumps(marker), key=b"marker", partition=partition,
                             timestamp_ms=T0)  # a record stamped now would move event time 15 days on
        marked[partition] = sent.get(timeout=30).offset
    producer.close()

    def committed() -> bool:
        offsets = committed_offsets(settings, settings.consumer_group, settings.events_topic)
        return all(offsets.get(p, 0) > offset for p, offset in marked.items())

    wait_for(committed, 60, f"the job to commit its reading up to {marked} (partition: offset)")


def test_a_crm_import_links_ids_applies_consent_and_is_not_activity(stack_settings, redis_client, tmp_path) -> None:
    settings = isolated_settings(stack_settings, "import", models_enabled=False, consent_categories="personalization")
    keys = RedisKeys(settings.redis_prefix)
    export = tmp_path / "crm.csv"
    with open(export, "w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(HEADER)
        rows.writerow(["cust-1", "anon-1", iso(T0 + 60_000), "ann@example.com", "gold", "yes"])  # line 2
        rows.writerow(["", "anon-9", "", "nobody@example.com", "", ""])  # line 3: no customer id
        rows.writerow(["cust-2", "", iso(T0 + 60_000), "bob@example.com", "", "no"])  # line 4
        rows.writerow(["cust-3", "", iso(T0 + 60_000), "cy@example.com", "silver", "yes"])  # line 5: never came
        rows.writerow(["cust-4", "", "", "", "", "maybe"])  # line 6: consent neither yes nor no
        out.write("cust-5,anon-5\n")  # line 7: two fields of six
    mapping = load_mapping(PROJECT_ROOT / "config" / "crm-import.yaml")

    job = JobProcess(settings, tmp_path / "job", bounded=False).start()
    try:
        send_events(settings, views(4, anonymousId="anon-1") + views(4, userId="cust-2"))
        wait_for(lambda: redis_client.sismember(keys.segment("active"), "anon-1")
                 and redis_client.sismember(keys.segment("active"), "cust-2"), 180, "both visitors active")

        first = import_file(settings, export, mapping, report_path=tmp_path / "report.csv", echo=None)
        wait_for(lambda: not redis_client.sismember(keys.segment("active"), "anon-1")
                 and not redis_client.sismember(keys.segment("active"), "cust-2"), 60, "the merge and the withdrawal")
        read_everything_sent(settings)
        time.sleep(3)  # the merge's changes are committed with a checkpoint after the import's
        before = changes_of(settings)

        second = import_file(settings, export, mapping, report_path=tmp_path / "again.csv", echo=None)
        read_everything_sent(settings)
        time.sleep(3)  # a change the re-import caused would be committed with the checkpoint after it
    finally:
        job.stop()

    assert (first.sent, first.linked, first.rejected) == (3, 1, 3)
    with open(tmp_path / "report.csv", newline="") as report:
        rejected = [(int(r["line"]), r["reason"]) for r in csv.DictReader(report)]
    assert [line for line, _ in rejected] == [3, 6, 7]
    assert "customer_id" in rejected[0][1] and "consent" in rejected[1][1] and "2 fields" in rejected[2][1]

    changes = changes_of(settings)
    assert changes == before  # the second import: the same message ids, dropped as duplicates
    assert second.sent == first.sent
    by_user: dict[str, list[tuple[str, str, str]]] = {}
    for c in changes:
        by_user.setdefault(c["user_id"], []).append((c["segment"], c["change"], c["trigger"]))
    assert sorted(by_user["anon-1"]) == sorted([("active", "enter", "event"), ("weekly_active", "enter", "event"),
                                                ("active", "exit", "merge"), ("weekly_active", "exit", "merge")])
    assert {("active", "enter", "merge"), ("weekly_active", "enter", "merge")} <= set(by_user["cust-1"])
    assert {(s, ch) for s, ch, trigger in by_user["cust-2"] if trigger == "consent"} == {
        ("active", "exit"), ("weekly_active", "exit")}
    assert "cust-3" not in by_user  # an imported customer who never came is in no audience

    audiences = {keys.segment_name(k): redis_client.smembers(k) for k in redis_client.scan_iter(keys.segments_pattern)}
    assert {s for s, members in audiences.items() if "cust-1" in members} == {"active", "weekly_active"}
    assert all(not members & {"anon-1", "cust-2", "cust-3"} for members in audiences.values()), audiences
    assert not redis_client.exists(keys.profile("cust-3"))
    topic = [orjson.loads(r.value) for r in read_topic(settings.kafka_bootstrap, settings.events_topic)]
    imported = [m for m in topic if m.get("type") == "identify" and m["userId"] != "marker"]
    assert len(imported) == 6 and all(m["context"]["active"] is False for m in imported)


def changes_of(settings) -> list[dict]:
    records = read_topic(settings.kafka_bootstrap, settings.segment_changes_topic)
    return [segment_change.decode(r.value) for r in records]
