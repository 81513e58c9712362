"""The clusterer payload: round trip, versions, River versions, corruption."""

from __future__ import annotations

import orjson
import pytest

from state_schemas.cluster_model import ClusterModel, ClusterModelError, decode, encode

MODEL = ClusterModel("0.23.0", "kmeans", 2, (10, 5, 5, 1_000), (10, (0.1, 1.0), (2.0, 3.5)),
                     (("Browsers", 0, (0.5, -1.0)), ("Cart Fillers", 1, (-0.2, 2.0))),
                     {"centers": [[0.5, -1.0], [-0.2, 2.0]]})


def test_cluster_model_round_trips_exactly() -> None:
    assert decode(encode(MODEL)) == MODEL
    assert decode(encode(MODEL).encode(), river_version="0.23.1") == MODEL  # bytes; no pickle: any River


def test_cluster_model_refuses_unknown_versions_and_algorithms() -> None:
    row = orjson.loads(encode(MODEL))
    with pytest.raises(ClusterModelError, match="version 2 is not readable"):
        decode(orjson.dumps([2, *row[1:]]))
    with pytest.raises(ClusterModelError, match="algorithm 'birch' is unknown"):
        decode(orjson.dumps([*row[:2], "birch", *row[3:]]))
    with pytest.raises(ClusterModelError, match="corrupted"):
        decode(orjson.dumps(row[:5]))
    with pytest.raises(ClusterModelError, match="not JSON"):
        decode(b"\x80garbage")


def test_cluster_model_refuses_a_pickle_from_another_river_minor() -> None:
    pickled = ClusterModel("0.22.0", "dbstream", 1, (0, 0, 0, 0), (0, (0.0,), (0.0,)), (), {"pickle": "AA=="})
    with pytest.raises(ClusterModelError, match=r"pickled by River 0.22.0 .* runs River 0.23.0"):
        decode(encode(pickled), river_version="0.23.0")
    assert decode(encode(pickled), river_version="0.22.5") == pickled
