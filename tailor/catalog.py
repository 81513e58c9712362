"""``tailor catalog load``: publish item metadata to the compacted catalog topic.

The recommender's content similarity needs titles, categories and tags; the job reads them from
``settings.catalog_topic``, one ``tailor.catalog_item/1`` record per item, keyed by item id (compaction
keeps the latest record per item, so loading again overwrites rather than duplicates). Three sources:

    movielens   the 1,682 movies of MovieLens-100K (``u.item`` + ``u.genre``): title, genres as tags
    taobao      the distinct items of the Taobao sample CSV: category id only (the data has no titles)
    simulated   the products ``tailor simulate`` shops for (``ShopperSimulator.catalog``): same ids and
                categories as its events for the same ``--seed`` and ``--users``

>>> [item.item_id for item in catalog_items("simulated", users=50, seed=1)[:3]]
['p0', 'p1', 'p2']
>>> catalog_items("netflix")
Traceback (most recent call last):
...
tailor.catalog.CatalogError: unknown catalog source 'netflix'; choose one of movielens, taobao, simulated
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from connectors import kafka_bulk
from connectors.catalog_files import read_movielens_items, read_taobao_items
from connectors.kafka_events import KafkaUnavailable
from settings import PROJECT_ROOT, Settings
from settings.errors import TailorError
from settings.progress import progress_bar
from state_schemas import catalog_item
from state_schemas.catalog_item import CatalogItem

SOURCES = ("movielens", "taobao", "simulated")
DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
# Where each file-based source is read from unless a path is given.
DEFAULT_PATHS = {
    "movielens": DATA_DIR / "movielens-100k",
    "taobao": DATA_DIR / "taobao" / "user_behavior_sample.csv",
}
# The simulator's defaults (tailor simulate): a catalog loaded with them matches its events.
SIMULATED_USERS, SIMULATED_SEED = 2000, 7


class CatalogError(TailorError, ValueError):
    """A catalog cannot be read or published; the message says what to do."""


@dataclass(frozen=True)
class LoadReport:
    source: str
    topic: str
    sent: int
    elapsed_s: float


def catalog_items(
    source: str, path: Path | None = None, users: int = SIMULATED_USERS, seed: int = SIMULATED_SEED
) -> list[CatalogItem]:
    """Every item of ``source``; ``path`` replaces the default data location of movielens / taobao."""
    if source not in SOURCES:
        raise CatalogError(f"unknown catalog source {source!r}; choose one of {', '.join(SOURCES)}")
    if source == "simulated":
        from evaluation.simulator import ShopperSimulator

        return ShopperSimulator(seed=seed, users=users).catalog()
    path = Path(path) if path is not None else DEFAULT_PATHS[source]
    if source == "movielens":
        missing = [p for p in (path / "u.item", path / "u.genre") if not p.is_file()]
        if missing:
            raise CatalogError(
                f"MovieLens-100K files not found: {', '.join(map(str, missing))}; expected the unpacked "
                f"ml-100k directory at {path} (see {DATA_DIR / 'README.md'}), or pass --path DIR"
            )
        return read_movielens_items(path)
    if not path.is_file():
        raise CatalogError(
            f"Taobao CSV not found: {path}; expected the UserBehavior sample "
            f"(user,item,category,behavior,timestamp) there (see {DATA_DIR / 'README.md'}), or pass --path FILE"
        )
    return read_taobao_items(path)


def load_catalog(
    settings: Settings, items: list[CatalogItem], source: str = "catalog", progress: bool | None = None
) -> LoadReport:
    """Publish ``items`` to ``settings.catalog_topic`` (created, compacted, if missing), keyed by item id."""
    from connectors import kafka_topics as topics

    try:
        topics.ensure_topics(settings, [settings.catalog_topic])
    except KafkaUnavailable as exc:
        raise CatalogError(_with_cli_hint(str(exc))) from None
    bar = progress_bar(len(items), unit="items", enabled=progress)
    sent = 0
    t0 = time.monotonic()
    try:
        with kafka_bulk.bulk_publisher(settings) as publisher:
            now_ms = int(time.time() * 1000)
            for item in items:
                publisher.send(
                    settings.catalog_topic, catalog_item.encode(item).encode(), key=item.item_id.encode(),
                    timestamp_ms=now_ms,
                )
                sent += 1
                bar.update()
            publisher.flush()
    except KafkaUnavailable as exc:
        raise CatalogError(
            _with_cli_hint(
                f"publishing the {source} catalog to {settings.catalog_topic} failed after {sent:,} items: {exc}"
            )
        ) from None
    finally:
        bar.close()
    return LoadReport(source, settings.catalog_topic, sent, time.monotonic() - t0)


_STACK_HINT = "start the local stack (stack.up)"
_CLI_HINT = (
    "start the local stack with `bin/tailor stack up`, or point TAILOR_KAFKA_HOST / TAILOR_KAFKA_PORT at your broker"
)


def _with_cli_hint(message: str) -> str:
    """The connectors' hint names the library call; on the command line, name the command.

    >>> _with_cli_hint("cannot reach Kafka on h:1 (x): start the local stack (stack.up)")
    'cannot reach Kafka on h:1 (x): start the local stack with `bin/tailor stack up`, or point TAILOR_KAFKA_HOST / TAILOR_KAFKA_PORT at your broker'
    """  # noqa: E501 (a doctest's expected output cannot wrap)
    return message.replace(_STACK_HINT, _CLI_HINT) if _STACK_HINT in message else f"{message}; {_CLI_HINT}"
