"""The behavior clusterer's persisted state (``BehaviorClusterer.export_state``), layout version 1.

Compact JSON, written into Flink state by the model hub after every event, so it holds numbers only
(no pickles) for the index-stable algorithms: the online scaler, the centers, the names. A JSON array::

    0  version            1
    1  river_version      ``river.__version__`` that wrote it
    2  algorithm          "kmeans" | "streamkmeans" | "dbstream"
    3  n_features         length of every vector below (the feature order is the job's FEATURE_NAMES)
    4  counters           [events_seen, model_updates, relabeled_at_update, relabeled_at_time (epoch ms)]
    5  scaler             [count, [means], [sums of squared deviations]]   (Welford)
    6  named              [[name, model_cluster_id, [centroid z-scores]], ...] as of the last relabel
    7  model              algorithm-specific:
                            kmeans        {"centers": [[...], ...], "absorbed": [points per center]}
                                          ("absorbed" drives the sequential 1/n steps; a payload without
                                          it is read as settled centers, stepping at ``halflife``)
                            streamkmeans  {"centers": [[...]], "time_stamp": int, "chunk": [[...], ...]}
                            dbstream      {"pickle": base64 of the River object}
                          plus "seed_points": [[raw feature values], ...] while still warming up
                          (the k-means++ seeding input; gone once the model starts learning)

River objects are only ever pickled for DBSTREAM (no stable public state). A payload with a pickle is
refused under another River major.minor: River has broken old pickles before (0.25).

>>> m = ClusterModel("0.23.0", "kmeans", 2, (10, 5, 5, 0), (10, (0.0, 1.0), (2.0, 3.0)),
...                  (("Browsers", 0, (0.5, -1.0)),), {"centers": [[0.5, -1.0]]})
>>> decode(encode(m)) == m
True
>>> decode('[7]')
Traceback (most recent call last):
...
state_schemas.cluster_model.ClusterModelError: cluster model payload version 7 is not readable by this Tailor (knows 1); restore with the Tailor version that wrote it, or start the clusterer from scratch
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from settings.errors import TailorError

CURRENT_VERSION: Final = 1
ALGORITHMS: Final = ("kmeans", "streamkmeans", "dbstream")


class ClusterModelError(TailorError):
    """A clusterer payload this Tailor cannot load (other version, other River, corrupted)."""


@dataclass(frozen=True, slots=True)
class ClusterModel:
    river_version: str
    algorithm: str
    n_features: int
    counters: tuple[int, int, int, int]
    scaler: tuple[int, tuple[float, ...], tuple[float, ...]]
    named: tuple[tuple[str, int, tuple[float, ...]], ...]
    model: dict[str, Any]


def encode(m: ClusterModel) -> str:
    return orjson.dumps(
        [CURRENT_VERSION, m.river_version, m.algorithm, m.n_features, m.counters, m.scaler,
         m.named, m.model]
    ).decode()


def decode(payload: str | bytes, river_version: str | None = None) -> ClusterModel:
    """Parse a payload; with ``river_version``, refuse a pickle written under another River major.minor.

    >>> m = ClusterModel("0.21.0", "dbstream", 1, (0, 0, 0, 0), (0, (0.0,), (0.0,)), (), {"pickle": ""})
    >>> decode(encode(m), river_version="0.23.0")
    Traceback (most recent call last):
    ...
    state_schemas.cluster_model.ClusterModelError: the dbstream clusterer was pickled by River 0.21.0 and this job runs River 0.23.0 (pickles only load within one major.minor); restore with River 0.21.x, or start the clusterer from scratch
    """  # noqa: E501 (a doctest's expected output cannot wrap)
    try:
        row = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ClusterModelError(f"cluster model payload is not JSON ({exc})") from None
    version = row[0] if isinstance(row, list) and row else None
    if version != CURRENT_VERSION:
        raise ClusterModelError(
            f"cluster model payload version {version!r} is not readable by this Tailor (knows {CURRENT_VERSION}); "
            "restore with the Tailor version that wrote it, or start the clusterer from scratch"
        )
    try:
        _, river, algorithm, n_features, counters, (count, means, m2), named, model = row
        m = ClusterModel(
            river, algorithm, n_features, tuple(counters), (count, tuple(means), tuple(m2)),
            tuple((name, cid, tuple(z)) for name, cid, z in named), model,
        )
    except (ValueError, TypeError) as exc:
        raise ClusterModelError(
            f"cluster model payload is corrupted ({exc}); expected the version-1 layout documented in "
            "state_schemas/cluster_model.py"
        ) from None
    if m.algorithm not in ALGORITHMS:
        raise ClusterModelError(f"cluster model algorithm {m.algorithm!r} is unknown; expected one of {ALGORITHMS}")
    if river_version is not None and "pickle" in m.model and _minor(m.river_version) != _minor(river_version):
        raise ClusterModelError(
            f"the {m.algorithm} clusterer was pickled by River {m.river_version} and this job runs River "
            f"{river_version} (pickles only load within one major.minor); restore with River "
            f"{_minor(m.river_version)}.x, or start the clusterer from scratch"
        )
    return m


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
