"""Small-slice replays of the real data with quality bounds well below the measured numbers.

Measured (full runs in the closing note / ``tailor evaluate``): MovieLens first 20k ratings RMSE 0.970;
Taobao first 5k events Recall@10 ~0.018 vs popularity ~0.0002. The bounds catch regressions, not noise.
"""

import pytest

from operators.recommender import RecommenderConfig
from tailor.evaluation import movielens, taobao

pytestmark = pytest.mark.skipif(
    not (movielens.DATA / "u.data").exists() or not taobao.DATA.exists(), reason="shared data missing"
)


def test_movielens_slice_rmse_is_bounded():
    result = movielens.replay(movielens.read_ratings(limit=20_000), movielens.TUTORIAL)
    assert result["rmse"] < 1.02 and result["mae"] < 0.81


def test_taobao_slice_beats_popularity():
    result = taobao.replay(RecommenderConfig(), limit=5_000, segments=False)
    hybrid, popular = result["hybrid"]["all"], result["popular"]["all"]
    assert hybrid["recall@10"] > 0.008
    assert hybrid["recall@10"] > 3 * popular["recall@10"]
    assert hybrid["precision@10"] == pytest.approx(hybrid["recall@10"] / 10)
