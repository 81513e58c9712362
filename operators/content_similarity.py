"""Content-based similarity: TF-IDF over item metadata, cosine neighbours, with bounded work per call.

Each catalog item becomes a bag of terms: title words (``t:``), its category (``c:``) and its tags
(``g:``). Term weights are ``(1 + log tf) * idf`` with ``idf = log((1 + N) / (1 + df))``, computed from the
*current* document frequencies at query time, so the index is a pure function of the items it holds (a
restore that re-adds the same items answers the same). A term present in every item weighs 0 and is
ignored, e.g. "item" in Taobao's synthetic titles.

Queries walk an inverted index but only the ``max_postings`` most recently added items of each query
term and the ``max_query_terms`` heaviest query terms: the cost of a call is bounded whatever the
catalog size. Memory is bounded by the number of items, which the caller caps.

>>> index = ContentIndex()
>>> for item in [CatalogItem("1", "Toy Story", None, ("Animation", "Comedy")),
...              CatalogItem("2", "Aladdin", None, ("Animation", "Comedy", "Musical")),
...              CatalogItem("3", "Heat", None, ("Action", "Crime")),
...              CatalogItem("4", "Casino", None, ("Crime", "Drama"))]:
...     index.add(item)
>>> [(i, round(s, 2)) for i, s in index.similar("1", k=2)]
[('2', 0.24)]
>>> [i for i, _ in index.similar_to_profile({"3": 1.0, "2": 0.5}, k=3)]
['4', '1']
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Container, Mapping
from itertools import islice

from state_schemas.catalog_item import CatalogItem

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def item_terms(item: CatalogItem) -> dict[str, int]:
    """Term counts of an item (pure numbers in titles, like years or ids, are left out).

    >>> item_terms(CatalogItem("9", "item 9", "4756105", ("Red",)))
    {'t:item': 1, 'c:4756105': 1, 'g:red': 1}
    """
    terms: dict[str, int] = {}
    for word in _WORD.findall(item.title.lower()):
        if len(word) > 1 and not word.isdigit():
            terms["t:" + word] = terms.get("t:" + word, 0) + 1
    if item.category:
        terms["c:" + item.category.lower()] = 1
    for tag in item.tags:
        terms["g:" + tag.strip().lower()] = 1
    return terms


class ContentIndex:
    def __init__(self, max_postings: int = 200, max_query_terms: int = 32) -> None:
        self.max_postings = max_postings
        self.max_query_terms = max_query_terms
        self.items: dict[str, CatalogItem] = {}
        self._terms: dict[str, dict[str, int]] = {}
        self._postings: dict[str, dict[str, None]] = {}  # term -> items in insertion order
        # Weights depend on every item (idf), so the caches below hold until the next add / remove: the
        # catalog changes rarely, queries come with every event.
        self._idf_cache: dict[str, float] = {}
        self._unit_cache: dict[str, dict[str, float]] = {}
        self._heads: dict[str, list[tuple[str, float]]] = {}  # term -> scanned postings with their weights

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.items

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: CatalogItem) -> None:
        """Add or replace an item (a replaced item counts as the most recently added)."""
        self.remove(item.item_id)
        self._idf_cache.clear()
        self._unit_cache.clear()
        self._heads.clear()
        terms = item_terms(item)
        self.items[item.item_id] = item
        self._terms[item.item_id] = terms
        for term in terms:
            self._postings.setdefault(term, {})[item.item_id] = None

    def remove(self, item_id: str) -> None:
        terms = self._terms.pop(item_id, None)
        if terms is None:
            return
        del self.items[item_id]
        self._idf_cache.clear()
        self._unit_cache.clear()
        self._heads.clear()
        for term in terms:
            posting = self._postings[term]
            del posting[item_id]
            if not posting:
                del self._postings[term]

    def category(self, item_id: str) -> str | None:
        item = self.items.get(item_id)
        return None if item is None else item.category

    # -- scoring ------------------------------------------------------------------------------------
    def _idf(self, term: str) -> float:
        return math.log((1 + len(self.items)) / (1 + len(self._postings.get(term, ()))))

    def _unit(self, item_id: str) -> dict[str, float]:
        """The item's TF-IDF vector divided by its norm (cached until the catalog changes)."""
        out = self._unit_cache.get(item_id)
        if out is not None:
            return out
        idf = self._idf_cache
        out = {}
        for term, count in self._terms.get(item_id, {}).items():
            w = idf.get(term)
            if w is None:
                w = idf[term] = self._idf(term)
            if w > 0:
                out[term] = (1.0 + math.log(count)) * w
        norm = math.sqrt(sum(v * v for v in out.values())) or 1.0
        out = self._unit_cache[item_id] = {term: v / norm for term, v in out.items()}
        return out

    def similar(self, item_id: str, k: int = 10, exclude: Container[str] = ()) -> list[tuple[str, float]]:
        """Items most similar to ``item_id`` by cosine, best first (the item itself left out)."""
        return self.similar_to_profile({item_id: 1.0}, k, exclude)

    def similar_to_profile(
        self, profile: Mapping[str, float], k: int = 10, exclude: Container[str] = ()
    ) -> list[tuple[str, float]]:
        """Items most similar to a weighted set of items (e.g. a user's recent items), profile items left out.

        The profile vector is the weighted sum of the items' normalized TF-IDF vectors.
        """
        query: dict[str, float] = {}
        for item_id, weight in profile.items():
            for term, v in self._unit(item_id).items():
                query[term] = query.get(term, 0.0) + weight * v
        if not query:
            return []
        terms = sorted(query.items(), key=lambda tv: (-tv[1], tv[0]))[: self.max_query_terms]
        q_norm = math.sqrt(sum(v * v for v in query.values()))
        dots: dict[str, float] = {}
        for term, raw in terms:
            qv = raw / q_norm
            for cand, weight in self._head(term):
                if cand in profile or cand in exclude:
                    continue
                dots[cand] = dots.get(cand, 0.0) + qv * weight
        return heapq.nsmallest(k, dots.items(), key=lambda cs: (-cs[1], cs[0]))

    def _head(self, term: str) -> list[tuple[str, float]]:
        """The ``max_postings`` most recently added items with ``term`` and its unit weight in each."""
        head = self._heads.get(term)
        if head is None:
            unit = self._unit
            head = self._heads[term] = [
                (cand, unit(cand)[term]) for cand in islice(reversed(self._postings.get(term, {})), self.max_postings)
            ]
        return head
