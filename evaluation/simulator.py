"""Seeded, realistic shopper traffic as Segment-Spec events (published by ``tailor simulate``).

Shoppers follow one of five personas (the mix is configurable):

    browser     a page and 1-4 product views, then gone; often anonymous (anonymousId only)
    hesitant    6-12 product views and 1-2 cart adds, sometimes a wishlist add; never buys
    abandoner   1-4 views and a cart add, then gone
    buyer       2-6 views, 1-2 cart adds, "Checkout Started", "Order Completed"
    loyal       comes back 1 h - 3 days after each visit (``return_after_s``); buys on 80 % of visits

Products come from a catalog of ``items`` in ``categories`` with a Zipf-like popularity; a visit
browses mostly one category. Many visits are open at once and their events interleave: event ``i``
happens at ``start_ms + i * 1000 / rate`` and belongs to a visit drawn at random among the open ones,
so a shopper's events are ``concurrency / rate`` seconds apart on average (``think_s`` by default).

:meth:`ShopperSimulator.events` is pure (no Kafka, no clock) and repeatable: same settings, same
events. :func:`tailor.simulate.simulate` publishes them, either paced by the wall clock (timestamps = now) or, with
``fast=True``, as fast as Kafka takes them, with synthetic timestamps advancing at ``rate`` events per
simulated second.

>>> sim = ShopperSimulator(seed=1, users=50, items=100, categories=5)
>>> for e in sim.events(1_700_000_000_000, rate=10, count=4):
...     print(e["timestamp"], e.get("userId") or e["anonymousId"], e.get("event") or e["name"])
2023-11-14T22:13:20.000Z user-29 Category
2023-11-14T22:13:20.100Z user-5 Home
2023-11-14T22:13:20.200Z anon-2e47959f3a51 Search
2023-11-14T22:13:20.300Z user-29 Product Viewed
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from settings.errors import TailorError
from state_schemas.catalog_item import CatalogItem


class SimulationError(TailorError, ValueError):
    """Simulator settings that cannot work; the message says which and what is expected."""


PERSONAS = ("browser", "hesitant", "abandoner", "buyer", "loyal")
DEFAULT_MIX = {"browser": 0.45, "hesitant": 0.15, "abandoner": 0.15, "buyer": 0.15, "loyal": 0.10}

# One step of a visit: (message type, event or page name, items it is about).
Step = tuple[str, str, tuple[int, ...]]


class ShopperSimulator:
    """Settings only; :meth:`events` builds its own ``random.Random(seed)`` so every call is the same."""

    def __init__(
        self,
        seed: int = 0,
        users: int = 1000,
        items: int = 5000,
        categories: int = 50,
        persona_mix: dict[str, float] | None = None,
        think_s: float = 20.0,
        concurrency: int | None = None,
        anonymous_share: float = 0.6,
        return_after_s: tuple[float, float] = (3600.0, 3 * 86400.0),
        zipf_exponent: float = 1.1,
    ) -> None:
        mix = DEFAULT_MIX if persona_mix is None else persona_mix
        unknown = set(mix) - set(PERSONAS)
        if unknown or not any(mix.values()) or users < 1 or items < 1 or categories < 1:
            raise SimulationError(
                f"persona_mix must weigh some of {PERSONAS} (got {mix}), users/items/categories must be >= 1"
            )
        self.seed, self.users, self.items, self.categories = seed, users, items, categories
        self.persona_mix = dict(mix)
        self.think_s, self.concurrency, self.anonymous_share = think_s, concurrency, anonymous_share
        self.return_after_s, self.zipf_exponent = return_after_s, zipf_exponent

        # Derived, fixed data: every user's persona and the catalog (item -> category, price, popularity).
        rng = random.Random(f"catalog-{seed}")
        self._persona_of = rng.choices(PERSONAS, [mix.get(p, 0.0) for p in PERSONAS], k=users)
        popularity = [1.0 / (rank + 1) ** zipf_exponent for rank in range(items)]  # item i has rank i
        self._category_of = [rng.randrange(categories) for _ in range(items)]
        self._price_of = [round(rng.lognormvariate(3.0, 0.8), 2) for _ in range(items)]
        by_category: list[list[int]] = [[] for _ in range(categories)]
        for item, category in enumerate(self._category_of):
            by_category[category].append(item)
        self._category_items = [c for c in by_category if c]
        self._category_cum = list(
            itertools.accumulate(sum(popularity[i] for i in items) for items in self._category_items)
        )
        self._item_cum = [list(itertools.accumulate(popularity[i] for i in c)) for c in self._category_items]

    # -- the stream --------------------------------------------------------------------------------
    def events(
        self, start_ms: int, rate: float, count: int | None = None, duration_s: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """``count`` events (or ``duration_s`` seconds' worth; endless if neither) from ``start_ms``."""
        return (event for _ts, event in self.timed_events(start_ms, rate, count, duration_s))

    def timed_events(
        self, start_ms: int, rate: float, count: int | None = None, duration_s: float | None = None
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Like :meth:`events`, paired with each event's epoch-ms time (what Kafka stamps records with)."""
        if rate <= 0:
            raise SimulationError(f"rate must be a positive number of events per second; got {rate}")
        total = count if count is not None else int(duration_s * rate) if duration_s else None
        concurrency = self.concurrency or round(rate * self.think_s)
        run = _Run(random.Random(self.seed), max(1, min(concurrency, 10_000, self.users // 2)))
        rng, visits = run.rng, run.visits
        step_ms = 1000.0 / rate
        for i in itertools.count() if total is None else range(total):
            now = start_ms + int(i * step_ms)
            while len(visits) < run.concurrency:
                visits.append(self._open_visit(run, now))
            pick = rng.randrange(len(visits))
            visit = visits[pick]
            yield now, self._event(rng, visit, visit.steps.pop(), now)
            if not visit.steps:  # visit over: swap-remove it; a loyal shopper will be back
                visits[pick] = visits[-1]
                visits.pop()
                run.busy.discard(visit.user)
                if visit.persona == "loyal":
                    gap_ms = int(rng.uniform(*self.return_after_s) * 1000)
                    heapq.heappush(run.returning, (now + gap_ms, visit.user))
                    run.away.add(visit.user)

    def _open_visit(self, run: _Run, now: int) -> _Visit:
        user = self._next_user(run, now)
        run.busy.add(user)
        persona = self._persona_of[user]
        if persona == "browser" and run.rng.random() < self.anonymous_share:
            id_field, id_value = "anonymousId", f"anon-{run.rng.getrandbits(48):012x}"
        else:
            id_field, id_value = "userId", f"user-{user}"
        steps = self._script(run.rng, persona)
        steps.reverse()  # popped from the end
        return _Visit(user, persona, id_field, id_value, steps, opened_ms=now)

    def _next_user(self, run: _Run, now: int) -> int:
        """A loyal shopper whose return is due, else a random shopper who is neither busy nor away."""
        if not run.returning or run.returning[0][0] > now:
            for _ in range(100):
                user = run.rng.randrange(self.users)
                if user not in run.busy and user not in run.away:
                    return user
        # a return is due, or (a tiny, mostly loyal user base) everyone else is busy or away
        user = heapq.heappop(run.returning)[1]
        run.away.discard(user)
        return user

    # -- personas ----------------------------------------------------------------------------------
    def _script(self, rng: random.Random, persona: str) -> list[Step]:
        category = bisect(self._category_cum, rng.random() * self._category_cum[-1])
        viewed = [self._pick_item(rng, category) for _ in range(_VIEWS[persona](rng))]
        steps: list[Step] = [("page", rng.choice(("Home", "Search", "Category")), ())]
        steps += [("track", "Product Viewed", (item,)) for item in viewed]
        if persona == "browser":
            return steps
        cart = tuple(rng.sample(viewed, min(len(viewed), 1 if persona == "abandoner" else rng.randint(1, 2))))
        steps += [("track", "Product Added", (item,)) for item in cart]
        if persona == "hesitant":
            if rng.random() < 0.3:
                steps.append(("track", "Product Added to Wishlist", (rng.choice(viewed),)))
            more = [self._pick_item(rng, category) for _ in range(rng.randint(0, 2))]
            steps += [("track", "Product Viewed", (item,)) for item in more]
        elif persona == "buyer" or (persona == "loyal" and rng.random() < 0.8):
            steps += [("track", "Checkout Started", cart), ("track", "Order Completed", cart)]
        return steps

    def _pick_item(self, rng: random.Random, category: int) -> int:
        if rng.random() < 0.2:  # a detour to another category
            category = bisect(self._category_cum, rng.random() * self._category_cum[-1])
        cum = self._item_cum[category]
        return self._category_items[category][bisect(cum, rng.random() * cum[-1])]

    # -- wire form ---------------------------------------------------------------------------------
    def _event(self, rng: random.Random, visit: _Visit, step: Step, now: int) -> dict[str, Any]:
        kind, name, items = step
        event: dict[str, Any] = {"type": kind, "event" if kind == "track" else "name": name}
        event["messageId"] = uuid4_from(rng.getrandbits(128))
        event[visit.id_field] = visit.id
        event["timestamp"] = iso_ms(now)
        first = items[0] if items else None
        props: dict[str, Any] = {} if first is None else self._product(first)
        if name in ("Checkout Started", "Order Completed"):
            props["products"] = [self._product(item) for item in items]
            props["order_id"] = f"order-{visit.user}-{visit.opened_ms}"
            props["revenue" if name == "Order Completed" else "value"] = round(
                sum(self._price_of[i] for i in items), 2
            )
            props["currency"] = "USD"
        event["properties"] = props
        event["context"] = {"library": {"name": "tailor-simulator"}, "persona": visit.persona}
        return event

    def _product(self, item: int) -> dict[str, Any]:
        category, price = self._category_of[item], self._price_of[item]
        return {"product_id": f"p{item}", "category": f"c{category}", "price": price}

    # -- catalog -----------------------------------------------------------------------------------
    def catalog(self) -> list[CatalogItem]:
        """The catalog the events are about, for the catalog topic: one ``CatalogItem`` per product.

        Ids and categories are exactly those of the events (``p<i>``, ``c<k>``), so they depend on the
        same settings as the events (``seed``, ``users``, ``items``, ``categories``). Titles give the
        content index something to match: every category sells one kind of thing ("Lamp"), each item
        adds a made-up adjective; the tag is the price band.

        >>> sim = ShopperSimulator(seed=1, users=50, items=100, categories=5)
        >>> sim.catalog()[0]
        CatalogItem(item_id='p0', title='Bright Teapot', category='c4', tags=('price:25-50',))
        """
        rng = random.Random(f"titles-{self.seed}")  # its own stream: the events stay as they were
        kinds = [_PRODUCT_KINDS[k % len(_PRODUCT_KINDS)] for k in range(self.categories)]
        items = []
        for item in range(self.items):
            product = self._product(item)
            title = f"{rng.choice(_ADJECTIVES)} {kinds[self._category_of[item]]}"
            tags = (price_band(product["price"]),)
            items.append(CatalogItem(product["product_id"], title, product["category"], tags))
        return items


@dataclass(slots=True)
class _Run:
    """The moving parts of one :meth:`ShopperSimulator.timed_events` run."""

    rng: random.Random
    concurrency: int
    visits: list[_Visit] = field(default_factory=list)  # open visits
    busy: set[int] = field(default_factory=set)  # users with an open visit
    returning: list[tuple[int, int]] = field(default_factory=list)  # heap of (due ms, loyal user)
    away: set[int] = field(default_factory=set)  # users in `returning`


@dataclass(slots=True)
class _Visit:
    user: int
    persona: str
    id_field: str
    id: str
    steps: list[Step]  # what is left to do, last step first
    opened_ms: int


_VIEWS: dict[str, Callable[[random.Random], int]] = {
    "browser": lambda rng: rng.randint(1, 4),
    "hesitant": lambda rng: rng.randint(6, 12),
    "abandoner": lambda rng: rng.randint(1, 4),
    "buyer": lambda rng: rng.randint(2, 6),
    "loyal": lambda rng: rng.randint(1, 5),
}


_PRODUCT_KINDS = (
    "Backpack", "Lamp", "Sneakers", "Headphones", "Teapot", "Jacket", "Blender", "Novel", "Watch", "Tent",
    "Guitar", "Scarf", "Keyboard", "Candle", "Skillet", "Yoga Mat", "Sunglasses", "Board Game", "Pillow",
    "Camera", "Bicycle Helmet", "Coffee Grinder", "Puzzle", "Raincoat", "Speaker",
)
_ADJECTIVES = (
    "Classic", "Compact", "Deluxe", "Everyday", "Vintage", "Sturdy", "Bright", "Quiet", "Travel", "Modern",
    "Cozy", "Pro", "Eco", "Mini", "Urban", "Rustic",
)
PRICE_BANDS = ((10.0, "price:under-10"), (25.0, "price:10-25"), (50.0, "price:25-50"), (100.0, "price:50-100"))


def price_band(price: float) -> str:
    """The catalog tag of a price.

    >>> price_band(9.99), price_band(10.0), price_band(250.0)
    ('price:under-10', 'price:10-25', 'price:100-plus')
    """
    for upper, band in PRICE_BANDS:
        if price < upper:
            return band
    return "price:100-plus"


def uuid4_from(bits: int) -> str:
    """A random (version 4) UUID string from 128 random bits; 5x cheaper than ``str(uuid.UUID(...))``.

    >>> import uuid; bits = 0x0123456789abcdef0123456789abcdef
    >>> uuid4_from(bits) == str(uuid.UUID(int=bits, version=4))
    True
    """
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def iso_ms(ms: int) -> str:
    """
    >>> iso_ms(1511658000123)
    '2017-11-26T01:00:00.123Z'
    """
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
