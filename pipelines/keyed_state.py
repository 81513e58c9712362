"""What the job's Python operators read from Flink's context -- the bucket a call is keyed by, this
subtask's index -- and how they write a batch of map-state changes back at once."""

from __future__ import annotations

from typing import Any

from pyflink.common import Row


def bucket_of(key: Any) -> int:
    """The bucket of the current key (``KeyByKeySelector`` keys are one-field rows)."""
    return key[0] if isinstance(key, Row | tuple) else int(key)


def put_all(map_state: Any, entries: dict[str, str]) -> None:
    """``map_state.put_all(entries)`` in either execution mode. PyFlink 2.2's process-mode ``put_all``
    iterates its argument as (key, value) pairs, so a dict fails there (or, with two-character keys,
    writes the wrong entries); thread mode's hands the dict to Java in one call."""
    if type(map_state).__module__.startswith("pyflink.fn_execution.datastream.embedded"):
        map_state.put_all(entries)
    else:  # process mode: each put lands in PyFlink's write cache, flushed to the runner in one request
        for key, value in entries.items():
            map_state.put(key, value)


def write_changes(map_state: Any, entries: dict[str, str | None]) -> None:
    """Put the entries with a value in one call, remove those with None."""
    puts = {k: v for k, v in entries.items() if v is not None}
    if puts:
        put_all(map_state, puts)
    for key, value in entries.items():
        if value is None:
            map_state.remove(key)


def subtask_index(runtime_context: Any) -> int:
    """The index of this parallel subtask. PyFlink 2.2's thread mode asks the Java ``RuntimeContext`` for
    ``getIndexOfThisSubtask``, which Flink 2 moved to ``getTaskInfo()`` (AttributeError); process mode works."""
    java_context = getattr(runtime_context, "_runtime_context", None)
    if java_context is not None and hasattr(java_context, "getTaskInfo"):
        return int(java_context.getTaskInfo().getIndexOfThisSubtask())
    return int(runtime_context.get_index_of_this_subtask())
