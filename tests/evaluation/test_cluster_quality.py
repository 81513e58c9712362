"""Small-slice regression test of the ML segments on real Taobao data (the `tailor evaluate clusters` code).

Measured on the first 15,000 rows with the default settings (kmeans): silhouette 0.77, ARI run vs run
0.83, ARI p1 vs p2 0.87, 5 named clusters. Bounds sit well below, so only a real regression fails.
"""

from __future__ import annotations

import pytest

from operators.behavior_clusters import ClusteringConfig
from operators.segment_rules import SegmentRules
from tailor.evaluation import clusters
from tests.conftest import DEFAULT_RULES_PATH


@pytest.fixture(scope="module")
def taobao_slice() -> list[clusters.FeatureEvent]:
    if not clusters.TAOBAO.exists():
        pytest.fail(f"{clusters.TAOBAO} is missing (see ../shared/data/README.md)")
    stream, _ = clusters.feature_stream(clusters.TAOBAO, SegmentRules.from_yaml(DEFAULT_RULES_PATH), limit=15_000)
    return stream


def test_cluster_quality_on_a_taobao_slice(taobao_slice: list[clusters.FeatureEvent]) -> None:
    result = clusters.evaluate(ClusteringConfig(), taobao_slice, sample=2_000)
    assert result["clusters"] == 5
    assert result["silhouette"] > 0.5
    assert result["ari_run_vs_run"] > 0.6
    assert result["ari_p1_vs_p2"] > 0.6
    assert {"Cart Fillers", "Wishlisters"} <= set(result["sizes"])  # the small, clear groups are found
    assert result["us_learn"] < 1_000 and result["us_predict"] < 1_000
