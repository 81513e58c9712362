"""The interpreter-wide garbage-collection metrics (the Flink UI side is checked on the real cluster in
``tests/integration/test_flink_cluster.py``)."""

import gc

from pipelines.flink_metrics import FullCollectionPauses


class RecordingGroup:
    """What the metrics received, by name (the subset of Flink's metric group the class uses)."""

    def __init__(self) -> None:
        self.values: dict[str, list[int]] = {}

    def counter(self, name: str) -> "RecordingGroup._Metric":
        return RecordingGroup._Metric(self.values.setdefault(name, []))

    distribution = counter

    class _Metric:
        def __init__(self, into: list[int]) -> None:
            self.into = into

        def inc(self, n: int = 1) -> None:
            self.into.append(n)

        def update(self, value: int) -> None:
            self.into.append(value)


def test_full_collections_are_counted_once_and_timed() -> None:
    first, second = RecordingGroup(), RecordingGroup()
    a, b = FullCollectionPauses(first), FullCollectionPauses(second)
    a.report()  # whatever ran before this test
    first.values = {name: [] for name in first.values}
    a = FullCollectionPauses(first)
    gc.collect(0)  # a young collection is not a pause of everything
    gc.collect()
    gc.collect()
    a.report()
    b.report()  # the pauses went to the first reporter: never counted twice
    assert first.values["python_full_gc"] == [2]
    assert first.values["python_full_gc_ms"][0] >= 0
    assert len(first.values["python_full_gc_pause_ms"]) == 1
    assert second.values == {"python_full_gc": [], "python_full_gc_ms": [], "python_full_gc_pause_ms": []}
    assert gc.callbacks.count(FullCollectionPauses._on_gc) == 1  # one hook per interpreter
