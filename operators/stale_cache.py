"""A small in-process cache with a time to live and stale-while-revalidate, for the serving path.

A value younger than ``ttl_s`` is ``FRESH``; up to ``stale_s`` it is ``STALE``: the caller serves it at
once and refreshes it in the background (so a slow or absent Redis costs a request nothing while a
recent value exists); older, or absent, it is a ``MISS``. At most ``max_entries`` keys, least recently
used out first. The clock is passed in, so the behaviour is testable without sleeping. Hand-written:
cachetools' TTLCache drops an entry at its TTL, which is exactly the value stale-while-revalidate needs.

``invalidate`` (the source changed) makes the next ``get`` a ``MISS``. A value is ``put`` with the time it
was *read* from its source, and one read before the latest invalidation is refused: a fetch that was in
flight when the change arrived cannot put the old value back, nor can any read older than the one stored.

>>> cache = StaleWhileRevalidate(ttl_s=1.0, stale_s=30.0, max_entries=2)
>>> cache.put("u1", {"segments": ["vip"]}, now=100.0)
>>> cache.get("u1", now=100.5), cache.get("u1", now=110.0)[1], cache.get("u1", now=131.0)[1]
(({'segments': ['vip']}, 'fresh'), 'stale', 'miss')
>>> cache.put("u2", 2, now=100.0); cache.put("u3", 3, now=100.0); cache.get("u1", now=100.0)[1]
'miss'
>>> cache.invalidate("u2", now=101.0); cache.get("u2", now=101.0)[1]
'miss'
>>> cache.put("u2", "read before the change", now=100.5); cache.get("u2", now=101.5)[1]
'miss'
>>> cache.put("u2", "read after it", now=101.2); cache.get("u2", now=101.5)
('read after it', 'fresh')
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

_GONE: Final = object()  # an invalidation: a MISS that refuses values read before it
FRESH: Final = "fresh"
STALE: Final = "stale"
MISS: Final = "miss"


class StaleWhileRevalidate:
    def __init__(self, ttl_s: float, stale_s: float, max_entries: int = 100_000) -> None:
        self.ttl_s, self.stale_s, self.max_entries = ttl_s, stale_s, max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str, now: float) -> tuple[Any, str]:
        """``(value, FRESH | STALE)``, or ``(None, MISS)``."""
        entry = self._entries.get(key)
        if entry is None:
            return None, MISS
        stored_at, value = entry
        age = now - stored_at
        if age > self.stale_s:
            del self._entries[key]
            return None, MISS
        if value is _GONE:
            return None, MISS
        self._entries.move_to_end(key)
        return value, FRESH if age <= self.ttl_s else STALE

    def put(self, key: str, value: Any, now: float) -> None:
        """Store ``value``, read from its source at ``now``; ignored if what the cache holds for the key (a
        value or an invalidation) is more recent."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return
        self._store(key, now, value)

    def invalidate(self, key: str, now: float) -> None:
        """The source of ``key`` changed at ``now``: the next ``get`` is a ``MISS``."""
        self._store(key, now, _GONE)

    def _store(self, key: str, now: float, value: Any) -> None:
        self._entries[key] = (now, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
