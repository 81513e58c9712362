"""The end of a bounded replay that resumed from a checkpoint or savepoint.

A bounded ``KafkaSource`` restored from state never finishes: its recreated enumerator finds no new
partition, so it never tells the readers that no more splits will come (FLINK-31006, open in
flink-connector-kafka 5.0.0; seen here: a replay killed and restarted read to its stopping offsets and
then waited forever). So a bounded replay that resumes runs its source unbounded, and this ends it as
the bounded source would have: once every partition of the events topic is read up to the offsets that
were latest when it started, the job stops with a savepoint and *drains* (the watermark goes to the end,
so every timer fires, exactly like a bounded source's final watermark).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.flink_rest import TERMINAL_STATES, FlinkRest
from connectors.kafka_topics import end_offsets
from pipelines.state_layout import state_dirs
from settings import Settings
from stack.errors import StackError

SOURCE = "kafka_events"


def replay_target(settings: Settings) -> dict[int, int]:
    """``{partition: last offset}`` a replay starting now must read (empty partitions left out)."""
    return {p: end - 1 for p, end in end_offsets(settings, settings.events_topic).items() if end > 0}


def drain_when_read(
    settings: Settings, job_id: str, target: dict[int, int], is_alive: Callable[[], bool] = lambda: True,
    poll_s: float = 1.0,
) -> str:
    """Wait until the job has read ``target``, then stop it with a drained savepoint; returns the savepoint.

    ``is_alive``: False when the job's process is gone (then this gives up with a StackError).
    """
    rest = FlinkRest(f"http://127.0.0.1:{settings.rest_port}")
    while True:
        if not is_alive():
            raise StackError(f"the replay job {job_id} ended before it read the topic to its end")
        state = rest.job_overview(job_id).state
        if state in TERMINAL_STATES:
            raise StackError(f"the replay job {job_id} is {state} before it read the topic to its end")
        read = rest.kafka_source_offsets(job_id, SOURCE) if state == "RUNNING" else {}
        if all(read.get(p, -1) >= last for p, last in target.items()):
            break
        time.sleep(poll_s)
    trigger = rest.trigger_stop_with_savepoint(job_id, state_dirs(settings).savepoints, drain=True)
    while True:
        status = rest.savepoint_status(job_id, trigger)
        if status.completed:
            if status.location is None:
                raise StackError(f"draining the replay job {job_id} failed: {status.failure_class}")
            return status.location
        time.sleep(0.3)
