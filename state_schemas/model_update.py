"""``InteractionUpdate``: the global side of one learned interaction (wire version 1).

A recommender replica that owns a user learns the user's side of an interaction (their factors, recent
and purchased items) and hands the rest -- what every replica's item-side models must learn -- to
``HybridRecommender.apply_update`` of every replica, its own included (``operators.model_updates``).
Exchanged between replicas as a compact JSON array::

    0 version     1
    1 item_id     the item interacted with
    2 timestamp   event time, epoch ms (popularity decays by it)
    3 weight      the interaction's weight (event weight, or the rating)
    4 category    the event's category, null if none (the item's category, when given)
    5 segments    the user's segments at the time (per-segment popularity)
    6 window      the user's latest distinct items before this one (co-visitation)
    7 mf          [[item_id, y, [bias step, ...], [[latent step...], ...]], ...]: the interaction's SGD
                  steps on item parameters (``ItemStep``); the item itself first, then sampled negatives

Floats round-trip exactly (orjson writes the shortest repr), so a replica that applies a decoded update
ends bit for bit where one that applied the original does.

>>> import numpy as np
>>> u = InteractionUpdate("i1", 5, 1.0, None, ("vip",), ("i0",),
...                       (("i1", ItemStep(1.0, [0.25], [np.array([0.5, -0.125])])),))
>>> v = decode(encode(u))
>>> (v.item_id, v.segments, v.mf[0][0], v.mf[0][1].bias, v.mf[0][1].latent[0].tolist())
('i1', ('vip',), 'i1', [0.25], [0.5, -0.125])
>>> decode(b'[2, "i1"]')
Traceback (most recent call last):
...
state_schemas.profile_state.StateVersionError: model update version 2 is not readable by this Tailor (knows version 1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from state_schemas.profile_state import StateVersionError

WIRE_VERSION: Final = 1


@dataclass(slots=True)
class ItemStep:
    """The item's side of one interaction for matrix factorization: its target ``y`` (the running mean
    learns it) and, per SGD step, what to subtract from the item's bias and latent vector. ``mean``: the
    running mean ``(n, mean)`` after it as the learning replica saw it (a next step of the same
    interaction starts there); not exchanged."""

    y: float
    bias: list[float]
    latent: list[NDArray[np.float64]]
    mean: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True, slots=True)
class InteractionUpdate:
    item_id: str
    timestamp: int
    weight: float
    category: str | None
    segments: tuple[str, ...]
    window: tuple[str, ...]
    mf: tuple[tuple[str, ItemStep], ...]


def encode(u: InteractionUpdate) -> bytes:
    return orjson.dumps(_row(u))


def encode_batch(updates: list[InteractionUpdate]) -> bytes:
    """Several updates as one JSON array of update arrays (one record on the wire)."""
    return orjson.dumps([_row(u) for u in updates])


def decode(payload: str | bytes) -> InteractionUpdate:
    return _from_row(orjson.loads(payload))


def decode_batch(payload: str | bytes) -> list[InteractionUpdate]:
    """What ``encode_batch`` wrote.

    >>> [u.item_id for u in decode_batch(encode_batch([InteractionUpdate("a", 1, 1.0, None, (), (), ()),
    ...                                                 InteractionUpdate("b", 2, 1.0, None, (), (), ())]))]
    ['a', 'b']
    """
    rows = orjson.loads(payload)
    if not isinstance(rows, list):
        raise StateVersionError(f"a model update batch must be a JSON array; got {type(rows).__name__}")
    return [_from_row(row) for row in rows]


def _row(u: InteractionUpdate) -> list[Any]:
    mf = [[item, s.y, s.bias, [d.tolist() for d in s.latent]] for item, s in u.mf]
    return [WIRE_VERSION, u.item_id, u.timestamp, u.weight, u.category, u.segments, u.window, mf]


def _from_row(row: Any) -> InteractionUpdate:
    if not isinstance(row, list) or not row or row[0] != WIRE_VERSION:
        version = row[0] if isinstance(row, list) and row else row
        raise StateVersionError(f"model update version {version!r} is not readable by this Tailor "
                                f"(knows version {WIRE_VERSION})")
    mf = tuple((item, ItemStep(y, bias, [np.asarray(d, dtype=float) for d in latent]))
               for item, y, bias, latent in row[7])
    return InteractionUpdate(row[1], row[2], row[3], row[4], tuple(row[5]), tuple(row[6]), mf)


# -- the exchange record: what a replica writes to the model-updates topic ------------------------------
EXCHANGE_SCHEMA: Final = "tailor.model_updates/1"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One record of the model-updates topic: updates a replica learned, in its learning order.

    ``record_id`` names the record uniquely (the writing replica's id and a sequence number): the writer has
    applied its own updates already and skips them when the record comes back. ``emit_time`` (epoch ms,
    the writer's clock) lets a reader measure staleness; ``retune`` carries live model settings
    ``[applied_at, settings]`` (``HybridRecommender.retune``) so that every replica puts them in force at
    the same place in the log.
    """

    record_id: str
    emit_time: int
    updates: list[InteractionUpdate]
    retune: list[Any] | None = None


def encode_exchange(e: Exchange) -> bytes:
    """The record as a JSON object (one per Kafka record; a writer splits long runs of updates).

    >>> u = InteractionUpdate("a", 1, 1.0, None, (), (), ())
    >>> r = decode_exchange(encode_exchange(Exchange("w1:1", 7, [u])))
    >>> r.record_id, r.emit_time, [u.item_id for u in r.updates], r.retune
    ('w1:1', 7, ['a'], None)
    >>> decode_exchange(b'{"schema": "tailor.model_updates/2"}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    state_schemas.profile_state.StateVersionError: model updates record 'tailor.model_updates/2' is not readable ...
    """
    return orjson.dumps({"schema": EXCHANGE_SCHEMA, "record_id": e.record_id, "emit_time": e.emit_time,
                         "updates": [_row(u) for u in e.updates], "retune": e.retune})


def decode_exchange(payload: str | bytes) -> Exchange:
    record = orjson.loads(payload)
    schema = record.get("schema") if isinstance(record, dict) else None
    if schema != EXCHANGE_SCHEMA:
        raise StateVersionError(f"model updates record {schema!r} is not readable by this Tailor "
                                f"(knows {EXCHANGE_SCHEMA})")
    return Exchange(str(record["record_id"]), int(record["emit_time"]), [_from_row(row) for row in record["updates"]],
                    record.get("retune"))


# -- a replica's globals in broadcast state ------------------------------------------------------------
REPLICA_STATE_VERSION: Final = 1


def encode_replica_globals(recommender_globals: str, unreturned: Iterable[str]) -> str:
    """A replica's globals as broadcast state holds them: the recommender's globals payload, and the ids of
    the records it wrote whose updates its item side already holds but which have not come back yet.

    >>> globals_, unreturned = decode_replica_globals(encode_replica_globals("{}", ["w:2", "w:1"]))
    >>> globals_, sorted(unreturned)
    ('{}', ['w:1', 'w:2'])
    """
    return orjson.dumps([REPLICA_STATE_VERSION, recommender_globals, sorted(unreturned)]).decode()


def decode_replica_globals(payload: str) -> tuple[str, set[str]]:
    row = orjson.loads(payload)
    if not isinstance(row, list) or not row or row[0] != REPLICA_STATE_VERSION:
        raise StateVersionError(f"recommender replica state {str(payload)[:40]!r} is not readable by this "
                                f"Tailor (knows version {REPLICA_STATE_VERSION})")
    return row[1], set(row[2])
