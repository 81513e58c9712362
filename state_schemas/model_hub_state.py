"""Flink state of the model hub: what survives a restart of the online models.

The hub keeps three pieces of keyed state under its single model key, written incrementally after
every event so a checkpoint always holds the models exactly as of the events it covers:

``model_users`` MapState  user id -> ``[2, cluster, recommender_user, deferred]`` (version 1: no ``deferred``)
    ``cluster``           the user's current ML segment (cluster name), null before the first one
    ``recommender_user``  ``HybridRecommender.export_user`` payload (state_schemas.recommender_state),
                          null for a user with no interaction yet
    ``deferred``          the user's feature vectors not yet clustered, in arrival order: ``[[event_time,
                          message_id, [feature, ...]], ...]`` (the clusterer learns in event-time order, once
                          the watermark passed them; ``operators.model_hub``)
``model_items`` MapState  item id -> ``HybridRecommender.export_item`` payload
``model_globals`` ValueState  ``[1, river_version, recommender_globals, clusterer]``
    ``river_version``     ``river.__version__`` that wrote it: River objects are not stable across
                          versions, so a restore under another version stops with a clear error
    ``clusterer``         ``BehaviorClusterer.export_state`` payload (state_schemas.cluster_model)

>>> decode_user(encode_user("Browsers", None))
('Browsers', None, [])
>>> decode_user(encode_user(None, None, [(5, "m1", (0.5, 1.0))]))
(None, None, [(5, 'm1', (0.5, 1.0))])
>>> decode_user('[1, "Browsers", null]')   # version 1, written before deferral
('Browsers', None, [])
>>> decode_globals(encode_globals("0.23.0", "r", "c"), river_version="0.23.0")
('r', 'c')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from state_schemas.profile_state import StateVersionError

CURRENT_VERSION: Final = 1  # of the globals
USER_VERSION: Final = 2
# (event time, message id, feature vector): one model input the clusterer has not learned yet
Deferred = tuple[int, str | None, tuple[float, ...]]


def encode_user(cluster: str | None, recommender_user: str | None, deferred: Sequence[Deferred] = ()) -> str:
    return orjson.dumps([USER_VERSION, cluster, recommender_user, deferred]).decode()


def decode_user(payload: str) -> tuple[str | None, str | None, list[Deferred]]:
    row = orjson.loads(payload)
    if isinstance(row, list) and row[:1] == [1] and len(row) == 3:
        return row[1], row[2], []
    row = _versioned(payload, "model hub user", 4, USER_VERSION)
    return row[1], row[2], [(t, m, tuple(f)) for t, m, f in row[3]]


def encode_globals(river_version: str, recommender: str, clusterer: str) -> str:
    return orjson.dumps([CURRENT_VERSION, river_version, recommender, clusterer]).decode()


def decode_globals(payload: str, river_version: str) -> tuple[str, str]:
    """``(recommender_globals, clusterer)``; refuses models written by another River version.

    >>> decode_globals(encode_globals("0.21.0", "r", "c"), river_version="0.23.0")
    Traceback (most recent call last):
    ...
    state_schemas.profile_state.StateVersionError: model state was written with River 0.21.0, this job runs River 0.23.0: restore with the matching Tailor/River version, or start the models from scratch (new job without the savepoint's model state)
    """  # noqa: E501 (a doctest's expected output cannot wrap)
    row = _versioned(payload, "model hub globals", 4)
    if row[1] != river_version:
        raise StateVersionError(
            f"model state was written with River {row[1]}, this job runs River {river_version}: restore with "
            "the matching Tailor/River version, or start the models from scratch (new job without the "
            "savepoint's model state)"
        )
    return row[2], row[3]


def _versioned(payload: str, what: str, fields: int, version: int = CURRENT_VERSION) -> list[Any]:
    row = orjson.loads(payload)
    if not isinstance(row, list) or not row or row[0] != version or len(row) != fields:
        found = row[0] if isinstance(row, list) and row else None
        raise StateVersionError(
            f"{what} state version {found!r} / {len(row) if isinstance(row, list) else 0} fields is not "
            f"readable by this Tailor (knows version {version}, {fields} fields)"
        )
    return row
