"""Classifier options of the embedding evaluation (gnn_scratch/embed/evaluate.py): feature normalisation, the
validation splits, and the choice of (embedding, normalisation, C) on validation data only (select_and_evaluate)."""
import numpy as np
import pytest

from gnn_scratch.embed.evaluate import (OneVsRestLogisticRegression, evaluate_multilabel, f1_scores,
                                        normalize_embedding, random_splits, select_and_evaluate, validation_splits)


def _data(n=240, labels=4, d=8, seed=0):
    """Multi-label Y (every node labelled) and two embeddings: one carrying the labels, one pure noise."""
    rng = np.random.default_rng(seed)
    Y = rng.random((n, labels)) < 0.3
    Y[np.arange(n), rng.integers(0, labels, n)] = True
    good = np.concatenate([Y * 2.0 - 1.0, np.zeros((n, d - labels))], axis=1) + rng.normal(0, 0.8, (n, d))
    noise = rng.normal(0, 1.0, (n, d))
    return Y, good, noise


# ---------------------------------------------------------------- normalisation
def test_l2_rows_have_unit_norm_and_zero_rows_stay_zero():
    Z = np.random.default_rng(1).normal(size=(6, 5))
    Z[2] = 0.0
    X = normalize_embedding(Z, "l2")
    norms = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(np.delete(norms, 2), 1.0, rtol=1e-12)
    assert (X[2] == 0).all()
    np.testing.assert_allclose(X[0], Z[0] / np.linalg.norm(Z[0]), rtol=1e-12)
    np.testing.assert_array_equal(normalize_embedding(Z, None), Z)


def test_standardize_uses_only_the_fit_rows():
    rng = np.random.default_rng(2)
    Z = rng.normal(3.0, 2.0, size=(20, 4))
    Z[:, 3] = 7.0                                   # a constant column: centred, not divided by 0
    fit = np.arange(12)
    X = normalize_embedding(Z, "standardize", fit)
    np.testing.assert_allclose(X[fit, :3].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X[fit, :3].std(axis=0), 1.0, rtol=1e-12)
    assert (X[:, 3] == 0).all()
    Z2 = Z.copy()
    Z2[12:] = 1e6                                   # the held-out rows do not move the transform
    np.testing.assert_array_equal(normalize_embedding(Z2, "standardize", fit)[fit], X[fit])
    # without fit_rows: all rows
    np.testing.assert_allclose(normalize_embedding(Z, "standardize")[:, :3].mean(axis=0), 0.0, atol=1e-12)


def test_normalize_rejects_bad_input():
    Z = np.ones((3, 2))
    with pytest.raises(ValueError, match="normalize"):
        normalize_embedding(Z, "unit")
    with pytest.raises(ValueError, match="fit_rows"):
        normalize_embedding(Z, "standardize", np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="normalize"):
        evaluate_multilabel(Z, np.ones((3, 1), bool), (0.5,), repeats=1, normalize="L2")


def test_evaluate_multilabel_normalize_equals_normalising_first():
    Y, good, _ = _data()
    a = evaluate_multilabel(good, Y, (0.5,), repeats=3, normalize="l2")[0.5]
    b = evaluate_multilabel(normalize_embedding(good, "l2"), Y, (0.5,), repeats=3)[0.5]
    assert a["macro_f1"]["all"] == b["macro_f1"]["all"]
    c = evaluate_multilabel(good, Y, (0.5,), repeats=3)[0.5]
    assert a["macro_f1"]["all"] != c["macro_f1"]["all"]       # the option does something


# ---------------------------------------------------------------- validation splits
def test_validation_splits_stay_inside_the_training_part():
    n = 101
    splits = validation_splits(n, 0.5, repeats=4, seed=3)
    perms = random_splits(n, 4, 3)
    for (inner, val, train, test), perm in zip(splits, perms):
        np.testing.assert_array_equal(train, perm[:50])
        np.testing.assert_array_equal(test, perm[50:])
        assert inner.size == 25 and val.size == 25
        np.testing.assert_array_equal(np.sort(np.r_[inner, val]), np.sort(train))
        assert np.intersect1d(np.r_[inner, val], test).size == 0
    again = validation_splits(n, 0.5, repeats=4, seed=3)
    assert all((a[0] == b[0]).all() for a, b in zip(splits, again))
    with pytest.raises(ValueError, match="validation"):
        validation_splits(3, 0.3)


# ---------------------------------------------------------------- selection
def test_one_candidate_is_the_plain_protocol():
    Y, good, _ = _data()
    r = select_and_evaluate({"good": good}, Y, 0.5, repeats=3, seed=1)
    e = evaluate_multilabel(good, Y, (0.5,), repeats=3, seed=1)[0.5]
    assert r["macro_f1"]["all"] == e["macro_f1"]["all"]
    assert r["micro_f1"]["all"] == e["micro_f1"]["all"]
    assert r["choices"] == [("good", None, 1.0)] * 3 and r["validation"] == {}


def test_selection_prefers_the_informative_embedding():
    Y, good, noise = _data()
    r = select_and_evaluate({"noise": noise, "good": good}, Y, 0.5, repeats=3, C=(0.1, 1.0),
                            normalize=(None, "l2"))
    assert [c[0] for c in r["choices"]] == ["good"] * 3
    assert list(r["validation"]) == [(k, nm, c) for k in ("noise", "good") for nm in (None, "l2") for c in (0.1, 1.0)]
    assert all(len(v) == 3 for v in r["validation"].values())
    splits = validation_splits(Y.shape[0], 0.5, 3, 0)
    for s, ((inner, val, train, test), (key, nm, C), ma) in enumerate(zip(splits, r["choices"],
                                                                          r["macro_f1"]["all"])):
        # the winner has the best validation Macro-F1 of split s, recomputed here by hand
        X = normalize_embedding(good, nm, inner)
        clf = OneVsRestLogisticRegression(C).fit(X[inner], Y[inner])
        v = f1_scores(Y[val], clf.predict_top_k(X[val], Y[val].sum(axis=1)))[0]
        assert v == r["validation"][(key, nm, C)][s] == max(w[s] for w in r["validation"].values())
        # and the reported test score is the winner's, refitted on the whole training part
        X = normalize_embedding(good, nm, train)
        clf = OneVsRestLogisticRegression(C).fit(X[train], Y[train])
        assert f1_scores(Y[test], clf.predict_top_k(X[test], Y[test].sum(axis=1)))[0] == ma


def test_choices_never_look_at_test_nodes():
    Y, good, noise = _data(seed=4)
    cands = {"noise": noise, "good": good}
    r = select_and_evaluate(cands, Y, 0.5, repeats=3, C=(0.1, 1.0, 10.0), normalize=(None, "standardize"))
    # scramble every test row of every embedding and every test label: the choices and validation scores stay
    splits = validation_splits(Y.shape[0], 0.5, 3, 0)
    rng = np.random.default_rng(9)
    for s, (_, _, _, test) in enumerate(splits):
        bad = {k: Z.copy() for k, Z in cands.items()}
        Yb = Y.copy()
        for Z in bad.values():
            Z[test] = rng.normal(0, 50.0, (test.size, Z.shape[1]))
        Yb[test] = rng.random((test.size, Y.shape[1])) < 0.5
        Yb[test, 0] = True
        rb = select_and_evaluate(bad, Yb, 0.5, repeats=s + 1, C=(0.1, 1.0, 10.0), normalize=(None, "standardize"))
        assert rb["choices"][s] == r["choices"][s]
        assert all(rb["validation"][k][s] == r["validation"][k][s] for k in r["validation"])


def test_select_rejects_bad_input():
    Y, good, _ = _data(n=40)
    with pytest.raises(ValueError, match="at least one"):
        select_and_evaluate({}, Y)
    with pytest.raises(ValueError, match="one row per node"):
        select_and_evaluate({"a": good[:30]}, Y)
    with pytest.raises(ValueError, match="C must"):
        select_and_evaluate({"a": good}, Y, C=(1.0, 0.0))
    with pytest.raises(ValueError, match="normalize"):
        select_and_evaluate({"a": good}, Y, normalize=("l2", "max"))
    Y2 = Y.copy()
    Y2[0] = False
    with pytest.raises(ValueError, match="label"):
        select_and_evaluate({"a": good}, Y2)
