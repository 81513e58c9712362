"""``EventTimeOrder``: the same release order whatever the interleaving of the partitions."""

from __future__ import annotations

import random

from operators.event_time_order import EventTimeOrder


def release(arrivals: list[tuple[int, str, int]], out_of_orderness: int = 5) -> list[tuple[str, int]]:
    """(partition, key, event time) arrivals, watermark = least partition time - out_of_orderness."""
    q: EventTimeOrder[tuple[str, int]] = EventTimeOrder()
    latest: dict[int, int] = {}
    out = []
    for partition, key, ts in arrivals:
        latest[partition] = max(latest.get(partition, ts), ts)
        watermark = min(latest.values()) - out_of_orderness if len(latest) == 2 else -1
        out += [e for _, e in q.pop_due(watermark)]
        q.push(key, ts, (key, ts))
    return out + [e for _, e in q.pop_due(10**9)]


def test_two_interleavings_of_the_same_partitions_release_the_same_order() -> None:
    rng = random.Random(5)
    parts = {p: [(p, f"u{p}{rng.randrange(9)}", t + rng.randrange(4)) for t in range(0, 400, 2)] for p in (0, 1)}
    parts = {p: sorted(events, key=lambda e: e[2]) for p, events in parts.items()}

    def interleave(chunk: int, lead: int) -> list:
        a, b = parts[0][:], parts[1][:]
        order = a[:lead]
        del a[:lead]
        while a or b:
            order += b[:chunk] + a[:chunk]
            del a[:chunk], b[:chunk]
        return order

    first = release(interleave(1, 0))
    assert len(first) == 400
    assert release(interleave(30, 100)) == first == sorted(first, key=lambda e: (e[1], e[0]))


def test_drop_forgets_a_key_and_the_bound_counts_only_live_entries() -> None:
    q: EventTimeOrder[int] = EventTimeOrder(max_waiting=2)
    q.push("a", 1, 1)
    q.push("a", 2, 2)
    q.drop("a")
    q.push("b", 3, 3)
    q.push("b", 4, 4)

    assert list(q.pop_due(0)) == [] and len(q) == 2 and q.waiting("b") == [3, 4]
