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


def test_mf_one_step_is_rivers_biased_mf_update_bit_for_bit():
    import random

    from river import optim, reco

    mf = MatrixFactorization(n_factors=5, lr_bias=0.03, lr_latent=0.05, l2_bias=0.01, l2_latent=0.02)
    river_mf = reco.BiasedMF(
        n_factors=5, bias_optimizer=optim.SGD(0.03), latent_optimizer=optim.SGD(0.05), l2_bias=0.01,
        l2_latent=0.02, weight_initializer=optim.initializers.Zeros(),
    )
    rnd = random.Random(1)
    for _ in range(500):
        u, i, y = f"u{rnd.randrange(20)}", f"i{rnd.randrange(30)}", float(rnd.randrange(1, 6))
        if u not in river_mf.u_latents:  # River draws from one stream: give it our id-seeded vectors
            river_mf.u_latents[u] = np.array(mf.export_user(u)[1]) if mf.has_user(u) else mf._new_latent(b"u", u)
        if i not in river_mf.i_latents:
            river_mf.i_latents[i] = np.array(mf.export_item(i)[1]) if mf.has_item(i) else mf._new_latent(b"i", i)
        mf.learn_one(u, i, y)
        river_mf.learn_one(u, i, y)
        assert mf.predict_one(u, i) == river_mf.predict_one(u, i)


def test_mf_steps_and_lr_decay_persist_counts_and_restore_exactly():
    a = MatrixFactorization(n_factors=4, steps=3, lr_decay=0.1)
    _train(a, 5)
    assert a.export_user("u1")[2] == 10 and a.export_item("good")[2] == 10
    b = MatrixFactorization(n_factors=4, steps=3, lr_decay=0.1)
    b.import_globals(a.export_globals())
    for u in ("u1", "u2"):
        b.import_user(u, a.export_user(u))
    for i in ("good", "bad"):
        b.import_item(i, a.export_item(i))
    for mf in (a, b):
        _train(mf, 5)
    assert a.export_user("u1") == b.export_user("u1") and a.export_item("bad") == b.export_item("bad")


def test_mf_remove_item_keeps_the_other_rows():
    mf = MatrixFactorization(n_factors=4)
    _train(mf, 3)
    mf.learn_one("u1", "third", 2.0)
    before = {i: mf.export_item(i) for i in ("bad", "third")}
    mf.remove_item("good")
    assert not mf.has_item("good") and np.isnan(mf.score_items("u1", ["good"])[0])
    assert {i: mf.export_item(i) for i in ("bad", "third")} == before
    for n in range(100):  # grows past the initial capacity
        mf.learn_one("u2", f"x{n}", 1.0)
    assert mf.export_item("third") == before["third"]
