"""``tailor.catalog_item/1``: one item of the catalog, as a record on the compacted catalog topic.

The record key is the item id; the latest record per item wins (log compaction keeps it). Layout
(JSON object)::

    schema     "tailor.catalog_item/1"
    item_id    the id events use in ``properties.product_id``
    title      display title, free text (tokenized for content similarity)
    category   category id or name, null if unknown
    tags       list of short labels (genres, brands, ...), may be empty

>>> item = CatalogItem("1", "Toy Story (1995)", None, ("Animation", "Comedy"))
>>> decode(encode(item)) == item
True
>>> encode(item)
'{"schema":"tailor.catalog_item/1","item_id":"1","title":"Toy Story (1995)","category":null,"tags":["Animation","Comedy"]}'
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson

SCHEMA: Final = "tailor.catalog_item/1"


@dataclass(frozen=True, slots=True)
class CatalogItem:
    item_id: str
    title: str
    category: str | None = None
    tags: tuple[str, ...] = ()


def encode(item: CatalogItem) -> str:
    return orjson.dumps(
        {"schema": SCHEMA, "item_id": item.item_id, "title": item.title, "category": item.category,
         "tags": list(item.tags)}
    ).decode()


def decode(payload: bytes | str) -> CatalogItem:
    """Parse a catalog record; ``ValueError`` says what is wrong with it.

    >>> decode('{"schema": "tailor.catalog_item/2", "item_id": "1"}')
    Traceback (most recent call last):
    ...
    ValueError: catalog record: expected schema 'tailor.catalog_item/1', got 'tailor.catalog_item/2'
    >>> decode('{"schema": "tailor.catalog_item/1", "item_id": 5, "title": "x"}')
    Traceback (most recent call last):
    ...
    ValueError: catalog record: item_id must be a non-empty string, got 5
    """
    record = orjson.loads(payload)
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        got = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"catalog record: expected schema {SCHEMA!r}, got {got!r}")
    item_id, title = record.get("item_id"), record.get("title", "")
    category, tags = record.get("category"), record.get("tags") or []
    if not isinstance(item_id, str) or not item_id:
        raise ValueError(f"catalog record: item_id must be a non-empty string, got {item_id!r}")
    if not isinstance(title, str):
        raise ValueError(f"catalog record {item_id!r}: title must be a string, got {title!r}")
    if category is not None and not isinstance(category, str):
        raise ValueError(f"catalog record {item_id!r}: category must be a string or null, got {category!r}")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"catalog record {item_id!r}: tags must be a list of strings, got {tags!r}")
    return CatalogItem(item_id, title, category, tuple(tags))
