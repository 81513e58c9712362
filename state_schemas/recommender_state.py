"""Versioned payloads of ``operators.recommender.HybridRecommender`` state (users, items: version 2; globals: 1).

The model hub persists them in Flink state (``state_schemas.model_hub_state``): one payload per user,
one per item, one for the globals. Compact JSON arrays, element 0 = version; floats round-trip exactly
(orjson writes the shortest repr), so a restored model continues bit for bit.

User ``[2, seq, n_events, mf, recent, purchased, last_emit_ms, last_emitted]`` (bytes per user count: the
job writes it after every event of the user, so it holds only what the recommender reads)::

    seq           LRU clock value of the user's last event (eviction order after a restore)
    n_events      interactions learned
    mf            [bias, [latent...]] or null (matrix_factorization.MatrixFactorization.export_user;
                  [bias, [latent...], updates] with per-id learning-rate decay)
    recent        [[item_id, weight], ...], oldest first, capped
    purchased     [item_id, ...], oldest first, capped (excluded from recommendations)
    last_emit_ms  event time of the last emitted list, null if none
    last_emitted  [item_id, ...] of the last emitted list (to emit only lists that changed)

Version 1 users (``recent`` entries with a timestamp, ``last_emitted`` as ``[item_id, score, source]``)
are upgraded on read.

Item ``[2, seq, pos, n_events, category, mf, popularity, catalog, occurrences, covisits]``::

    seq           LRU clock value of the item's last touch
    pos           slot in the negative-sampling array of known items
    n_events      interactions learned
    category      category seen in events, null if none
    mf            [bias, [latent...]] or null
    popularity    {segment: forward-decay level}, overall under ""
    catalog       [catalog_seq, title, category, [tags...]] or null: the catalog record, with the order
                  in which it was added (the content index is rebuilt from these in that order)
    occurrences   interactions counted by the co-visitation index (operators.next_item_baselines)
    covisits      {item_id: count} of items seen in the same user's window, capped per item

Version 1 items (no co-visitation) are upgraded on read with none.

Globals ``[2, river_version, config_hash, mf, rng, clock, catalog_clock, tuned]``::

    river_version ``river.__version__`` that wrote the state
    config_hash   short hash of the recommender config (its model_version suffix)
    mf            [n, mean] of the running target mean
    rng           negative-sampling generator state (64-bit integer)
    clock         LRU clock; catalog_clock: catalog insertion counter
    tuned         [applied_at, {"blend": {name: weight}}] the model settings a running job was given
                  (``tailor recalibrate``), over the config file's; null if none

Version 1 globals (before live model settings) are upgraded on read with ``tuned`` null.

>>> u = UserState(3, 2, [0.0, [0.1]], [("i1", 1.0)], ["i0"], 7, ["i1"])
>>> decode_user(encode_user(u)) == u
True
>>> decode_user('[1, 3, 2, null, [["i1", 1.0, 5]], [], 7, [["i1", 0.5, "mf"]]]').last_emitted
['i1']
>>> decode_item('[1, 4, 0, 2, "c", null, {}, null]').covisits
{}
>>> decode_globals('[1, "0.22.0", "ab12", [0, 0.0], 1, 2, 3]').tuned is None
True
>>> g = GlobalsState("0.22.0", "ab12", [0, 0.0], 1, 2, 3, [5, {"blend": {"mf": 0.5}}])
>>> decode_globals(encode_globals(g)) == g
True
>>> decode_item('[7, 1]')
Traceback (most recent call last):
...
state_schemas.profile_state.StateVersionError: recommender item state version 7 is not readable by this Tailor (knows version 1 and 2); restore with the Tailor version that wrote it, or drop the model state
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from state_schemas.profile_state import StateVersionError

CURRENT_VERSION: Final = 2  # globals
USER_VERSION: Final = 2
ITEM_VERSION: Final = 2


@dataclass(slots=True)
class UserState:
    seq: int = 0
    n_events: int = 0
    mf: list[Any] | None = None
    recent: list[tuple[str, float]] = field(default_factory=list)
    purchased: list[str] = field(default_factory=list)
    last_emit_ms: int | None = None
    last_emitted: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ItemState:
    seq: int = 0
    pos: int = -1
    n_events: int = 0
    category: str | None = None
    mf: list[Any] | None = None
    popularity: dict[str, float] = field(default_factory=dict)
    catalog: tuple[int, str, str | None, tuple[str, ...]] | None = None
    occurrences: float = 0.0
    covisits: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class GlobalsState:
    river_version: str
    config_hash: str
    mf: list[float]
    rng: int
    clock: int
    catalog_clock: int
    tuned: list[Any] | None = None  # [applied_at, settings]


def encode_user(u: UserState) -> str:
    return orjson.dumps(
        [USER_VERSION, u.seq, u.n_events, u.mf, u.recent, u.purchased, u.last_emit_ms, u.last_emitted]
    ).decode()


def decode_user(payload: str | bytes) -> UserState:
    row = _versioned(payload, "recommender user", 8, known=(1, USER_VERSION))
    if row[0] == 1:
        return UserState(row[1], row[2], row[3], [(e[0], e[1]) for e in row[4]], row[5], row[6],
                         [e[0] for e in row[7]])
    return UserState(row[1], row[2], row[3], [(i, w) for i, w in row[4]], row[5], row[6], row[7])


def encode_item(i: ItemState) -> str:
    return orjson.dumps(
        [ITEM_VERSION, i.seq, i.pos, i.n_events, i.category, i.mf, i.popularity, i.catalog, i.occurrences,
         i.covisits]
    ).decode()


def decode_item(payload: str | bytes) -> ItemState:
    row = _versioned(payload, "recommender item", {1: 8, ITEM_VERSION: 10})
    catalog = row[7]
    if catalog is not None:
        catalog = (catalog[0], catalog[1], catalog[2], tuple(catalog[3]))
    if row[0] == 1:
        return ItemState(row[1], row[2], row[3], row[4], row[5], row[6], catalog)
    return ItemState(row[1], row[2], row[3], row[4], row[5], row[6], catalog, row[8], row[9])


def encode_globals(g: GlobalsState) -> str:
    return orjson.dumps(
        [CURRENT_VERSION, g.river_version, g.config_hash, g.mf, g.rng, g.clock, g.catalog_clock, g.tuned]
    ).decode()


def decode_globals(payload: str | bytes) -> GlobalsState:
    row = _versioned(payload, "recommender globals", {1: 7, CURRENT_VERSION: 8})
    river_version, config_hash, mf, rng, clock, catalog_clock = row[1:7]
    tuned = row[7] if row[0] == CURRENT_VERSION else None
    return GlobalsState(river_version, config_hash, mf, rng, clock, catalog_clock, tuned)


def _versioned(
    payload: str | bytes, what: str, fields: int | Mapping[int, int], known: tuple[int, ...] = (CURRENT_VERSION,)
) -> list[Any]:
    if isinstance(fields, Mapping):
        known = tuple(fields)
    try:
        row = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise StateVersionError(f"{what} state is not JSON ({e}); the state is corrupted") from e
    if not isinstance(row, list) or not row:
        raise StateVersionError(f"{what} state must be a JSON array [version, ...]; got {type(row).__name__}")
    if row[0] not in known:
        versions = " and ".join(str(v) for v in known)
        raise StateVersionError(
            f"{what} state version {row[0]!r} is not readable by this Tailor (knows version {versions}); "
            "restore with the Tailor version that wrote it, or drop the model state"
        )
    expected = fields[row[0]] if isinstance(fields, Mapping) else fields
    if len(row) != expected:
        raise StateVersionError(
            f"{what} state version {row[0]} must have {expected} fields, got {len(row)}; the state is corrupted"
        )
    return row
