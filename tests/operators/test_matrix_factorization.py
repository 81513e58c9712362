"""MatrixFactorization: River's update rule, read-only scoring, exact per-id persistence."""

import numpy as np
import pytest

from operators.matrix_factorization import MatrixFactorization


def _train(mf, n=30):
    for _ in range(n):
        mf.learn_one("u1", "good", 5.0)
        mf.learn_one("u1", "bad", 1.0)
        mf.learn_one("u2", "good", 4.0)


def test_mf_learns_preferences():
    mf = MatrixFactorization(n_factors=4)
    _train(mf)
    assert mf.predict_one("u1", "good") > mf.predict_one("u1", "bad")


def test_mf_predict_and_score_do_not_create_state():
    mf = MatrixFactorization(n_factors=4)
    _train(mf)
    mf.predict_one("ghost", "phantom")
    mf.score_items("ghost", ["phantom", "good"])
    assert not mf.has_user("ghost") and not mf.has_item("phantom")


def test_mf_score_items_matches_predict_one_and_marks_unknown():
    mf = MatrixFactorization(n_factors=4)
    _train(mf)
    scores = mf.score_items("u1", ["good", "nope", "bad"])
    assert scores[0] == pytest.approx(mf.predict_one("u1", "good"))
    assert np.isnan(scores[1])


def test_mf_export_import_continues_identically():
    a = MatrixFactorization(n_factors=4)
    _train(a, 5)
    b = MatrixFactorization(n_factors=4)
    b.import_globals(a.export_globals())
    for u in ("u1", "u2"):
        b.import_user(u, a.export_user(u))
    for i in ("good", "bad"):
        b.import_item(i, a.export_item(i))
    for mf in (a, b):
        _train(mf, 5)
        mf.learn_one("u3", "new", 3.0)
    assert a.predict_one("u3", "good") == b.predict_one("u3", "good")
    assert a.export_item("new") == b.export_item("new")


def test_mf_import_rejects_wrong_dimension():
    mf = MatrixFactorization(n_factors=4)
    with pytest.raises(ValueError, match="has 2 factors, this model has 4"):
        mf.import_user("u", [0.0, [0.1, 0.2]])


def test_mf_funk_kind_and_bad_kind():
    mf = MatrixFactorization(kind="funk", n_factors=3)
    mf.learn_one("u", "i", 1.0)
    assert mf.export_user("u")[0] is None
    with pytest.raises(ValueError, match="must be one of biased, funk"):
        MatrixFactorization(kind="svd")
