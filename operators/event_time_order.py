"""Release entries in event-time order once the watermark passes them: an order that does not depend on
how the partitions of a stream interleave.

``EventTimeOrder`` holds entries per key (a user) and hands them back, once the watermark passes their
event time, in (event time, key, arrival) order. Two readers of the same partitions -- parallelism 1 and
2, a lagging partition, a replay after a restore -- release the same entries in the same order, because
a key's entries arrive in the same order from its one partition and the watermark never passes an entry
still to come (late entries excepted: the caller handles those at once).

The model hub's clusterer learns in this order (``operators.model_hub``); ``tailor evaluate clusters``
replays the same order to measure what the job does.

**Bound.** A stalled watermark (a silent partition that is never marked idle) would keep every entry
waiting. At most ``max_waiting`` entries wait: beyond that, ``pop_due`` releases the oldest first, in the
same order, as if the watermark had passed them. Only a stall long enough to reach the bound gives up the
order's independence from interleaving.

>>> q = EventTimeOrder(max_waiting=3)
>>> for key, t in [("b", 20), ("a", 20), ("a", 10), ("c", 30)]:
...     q.push(key, t, f"{key}@{t}")
>>> [entry for _, entry in q.pop_due(watermark=20)]     # event time, then key; "c" waits
['a@10', 'a@20', 'b@20']
>>> len(q), q.waiting("c")
(1, ['c@30'])
>>> for t in (40, 50, 60):
...     q.push("d", t, f"d@{t}")
>>> [entry for _, entry in q.pop_due(watermark=0)]      # 4 waiting, bound 3: the oldest goes
['c@30']
>>> q.drop("d"); len(q)
0
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class EventTimeOrder(Generic[T]):
    def __init__(self, max_waiting: int = 100_000) -> None:
        self.max_waiting = max_waiting
        self._by_key: dict[str, list[tuple[int, T]]] = {}  # per key, in arrival order (for state)
        # (event time, key, arrival number, entry) over all keys; an entry whose key was dropped is skipped
        self._heap: list[tuple[int, str, int, T]] = []
        self._arrivals = 0
        self._live = 0

    def push(self, key: str, timestamp: int, entry: T) -> None:
        self._by_key.setdefault(key, []).append((timestamp, entry))
        self._arrivals += 1
        self._live += 1
        heapq.heappush(self._heap, (timestamp, key, self._arrivals, entry))

    def pop_due(self, watermark: int) -> Iterator[tuple[str, T]]:
        """``(key, entry)`` of every entry the watermark has passed, and of the oldest beyond the bound."""
        heap = self._heap
        while heap and (heap[0][0] <= watermark or self._live > self.max_waiting):
            timestamp, key, _, entry = heapq.heappop(heap)
            waiting = self._by_key.get(key)
            if not waiting or (timestamp, entry) not in waiting:
                continue  # dropped meanwhile
            waiting.remove((timestamp, entry))
            if not waiting:
                del self._by_key[key]
            self._live -= 1
            yield key, entry

    def drop(self, key: str) -> None:
        """Forget every waiting entry of ``key``."""
        self._live -= len(self._by_key.pop(key, ()))
        if not self._live:
            self._heap.clear()

    def waiting(self, key: str) -> list[T]:
        """The entries of ``key`` still waiting, in arrival order."""
        return [entry for _, entry in self._by_key.get(key, ())]

    def __len__(self) -> int:
        return self._live
