"""Read real catalogs into ``CatalogItem`` records (for the catalog topic and the evaluations).

* MovieLens-100K ``u.item`` (latin-1, ``|``-separated): ``id|title|release date|video date|IMDb url|19
  genre flags``; the flags are named by ``u.genre`` (``name|index``) and become the item's tags.
* Taobao UserBehavior CSV: the only metadata is each item's category id; the title is ``"item <id>"``
  (its words carry no signal: the content index gives a term present in every item zero weight).

>>> items = list(parse_movielens_items(["1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1" + "|0" * 14],
...                                     genres=["unknown", "Action", "Adventure", "Animation", "Children's"]))
>>> items[0]
CatalogItem(item_id='1', title='Toy Story (1995)', category=None, tags=('Animation', "Children's"))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from state_schemas.catalog_item import CatalogItem


def read_movielens_genres(path: str | Path) -> list[str]:
    """Genre names by flag index from ``u.genre``."""
    genres: dict[int, str] = {}
    with open(path, encoding="latin-1") as lines:
        for line in lines:
            if line.strip():
                name, _, index = line.strip().rpartition("|")
                genres[int(index)] = name
    return [genres[i] for i in range(len(genres))]


def parse_movielens_items(lines: Iterable[str], genres: list[str]) -> Iterator[CatalogItem]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("|")
        if len(fields) < 5 + len(genres):
            raise ValueError(f"u.item line {number}: expected {5 + len(genres)} fields, got {len(fields)}")
        flags = fields[5 : 5 + len(genres)]
        tags = tuple(g for g, flag in zip(genres, flags, strict=True) if flag == "1")
        yield CatalogItem(fields[0], fields[1], None, tags)


def read_movielens_items(directory: str | Path) -> list[CatalogItem]:
    """All movies of a MovieLens-100K directory (``u.item`` + ``u.genre``)."""
    directory = Path(directory)
    genres = read_movielens_genres(directory / "u.genre")
    with open(directory / "u.item", encoding="latin-1") as lines:
        return list(parse_movielens_items(lines, genres))


def read_taobao_items(path: str | Path) -> list[CatalogItem]:
    """One item per distinct item id of the Taobao CSV, in order of first appearance; bad rows skipped.

    An item seen with several categories keeps the first (the dataset assigns one category per item).
    """
    seen: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            fields = line.rstrip("\r\n").split(",")
            if len(fields) == 5 and fields[1].isdigit() and fields[2].isdigit() and len(fields[4]) >= 9:
                seen.setdefault(fields[1], fields[2])
    return [CatalogItem(item, f"item {item}", category, ()) for item, category in seen.items()]
