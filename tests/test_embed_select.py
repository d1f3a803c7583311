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


def test_standardize_only_centres_columns_constant_up_to_rounding():
    # 0.1 and 1/3 are not binary fractions: their computed mean is off by an ulp and the std is ~1e-17, not 0
    rng = np.random.default_rng(3)
    for n in (7, 1000):
        Z = np.column_stack([np.full(n, 0.1), np.full(n, 1 / 3), np.full(n, -123456.789),
                             rng.normal(5.0, 1e-9, n)])       # the last varies, if little: still scaled
        fit = np.arange(n - 2)
        X = normalize_embedding(Z, "standardize", fit)
        scale = n * np.finfo(np.float64).eps * np.abs(Z[0, :3])     # centred: only the mean's rounding is left
        assert (np.abs(X[:, :3]) <= scale).all()
        np.testing.assert_allclose(X[fit, 3].std(), 1.0, rtol=1e-9)
        assert (np.abs(normalize_embedding(Z, "standardize")[:, :3]) <= scale).all()
    # a column constant on the fit rows only: centred, the held-out rows keep their offset
    Z = np.full((6, 1), 0.1)
    Z[5] = 2.1
    X = normalize_embedding(Z, "standardize", np.arange(5))
    np.testing.assert_allclose(X[:, 0], [0, 0, 0, 0, 0, 2.0], atol=1e-15)


def test_normalize_rejects_bad_input():
    Z = np.ones((3, 2))
    with pytest.raises(ValueError, match="normalize"):
        normalize_embedding(Z, "unit")
    with pytest.raises(TypeError, match=r"normalize must be None or one of the names .* got int 3"):
        normalize_embedding(Z, 3)
    with pytest.raises(TypeError, match="normalize must be None or one of the names .* got list"):
        normalize_embedding(Z, ["l2"])
    with pytest.raises(ValueError, match="fit_rows"):
        normalize_embedding(Z, "standardize", np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="fit_rows"):
        normalize_embedding(Z, "standardize", [])
    with pytest.raises(ValueError, match=r"fit_rows must hold row ids in \[0, 3\), got 1000000"):
        normalize_embedding(Z, "standardize", [0, 10**6])
    with pytest.raises(ValueError, match=r"fit_rows must hold row ids in \[0, 3\), got -1"):
        normalize_embedding(Z, "standardize", [-1, 0])
    with pytest.raises(TypeError, match=r"fit_rows must be a 1-D array of int row ids or a \(3,\) bool mask, "
                                         r"got float64 \(2,\)"):
        normalize_embedding(Z, "standardize", [0.0, 1.0])
    with pytest.raises(TypeError, match="fit_rows must be a 1-D array"):
        normalize_embedding(Z, "standardize", [[0, 1]])
    with pytest.raises(ValueError, match=r"fit_rows as a bool mask must have shape \(3,\), got \(2,\)"):
        normalize_embedding(Z, "standardize", [True, False])
    mask = np.array([True, False, True])
    Zr = np.random.default_rng(0).normal(size=(3, 2))
    np.testing.assert_array_equal(normalize_embedding(Zr, "standardize", mask),
                                  normalize_embedding(Zr, "standardize", [0, 2]))
    with pytest.raises(ValueError, match="normalize"):
        evaluate_multilabel(Z, np.ones((3, 1), bool), (0.5,), repeats=1, normalize="L2")
    with pytest.raises(TypeError, match="normalize"):
        evaluate_multilabel(Z, np.ones((3, 1), bool), (0.5,), repeats=1, normalize=("l2",))


def test_evaluate_multilabel_normalize_equals_normalising_first():
    Y, good, _ = _data()
    a = evaluate_multilabel(good, Y, (0.5,), repeats=3, normalize="l2")[0.5]
    b = evaluate_multilabel(normalize_embedding(good, "l2"), Y, (0.5,), repeats=3)[0.5]
    assert a["macro_f1"]["all"] == b["macro_f1"]["all"]
    c = evaluate_multilabel(good, Y, (0.5,), repeats=3)[0.5]
    assert a["macro_f1"]["all"] != c["macro_f1"]["all"]       # the option does something


def test_evaluate_multilabel_standardizes_with_the_training_rows_only():
    Y, good, _ = _data()
    r = evaluate_multilabel(good, Y, (0.3,), repeats=3, seed=2, normalize="standardize")[0.3]
    ntr = int(0.3 * Y.shape[0])
    for s, perm in enumerate(random_splits(Y.shape[0], 3, 2)):
        tr, te = perm[:ntr], perm[ntr:]
        mu, sd = good[tr].mean(axis=0), good[tr].std(axis=0)          # the training rows' statistics, by hand
        X = (good - mu) / sd
        clf = OneVsRestLogisticRegression(1.0).fit(X[tr], Y[tr])
        ma, mi = f1_scores(Y[te], clf.predict_top_k(X[te], Y[te].sum(axis=1)))
        assert (r["macro_f1"]["all"][s], r["micro_f1"]["all"][s]) == (ma, mi)


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
    for bad in ((0.3, 0.5), [0.5], "0.5", True, None):
        with pytest.raises(TypeError, match="train_fraction must be one float in \\(0, 1\\), got"):
            validation_splits(n, bad)
    for bad in (0.0, 1.0, -0.5, 1.5, float("nan"), float("inf"), 1):
        with pytest.raises(ValueError, match="train_fraction must lie strictly between 0 and 1"):
            validation_splits(n, bad)
    assert all((a[0] == b[0]).all() for a, b in zip(validation_splits(n, np.float32(0.5), 4, 3), splits))


# ---------------------------------------------------------------- selection
def test_one_candidate_is_the_plain_protocol():
    Y, good, _ = _data()
    r = select_and_evaluate({"good": good}, Y, 0.5, repeats=3, seed=1)
    e = evaluate_multilabel(good, Y, (0.5,), repeats=3, seed=1)[0.5]
    assert r["macro_f1"]["all"] == e["macro_f1"]["all"]
    assert r["micro_f1"]["all"] == e["micro_f1"]["all"]
    assert r["choices"] == [("good", None, 1.0)] * 3 and r["validation"] == {}


def _fit_f1(Z, Y, nm, C, fit, score):
    """Macro-F1 on ``score`` of the classifier fitted on ``fit`` (normalisation statistics of ``fit`` only)."""
    X = normalize_embedding(Z, nm, fit)
    clf = OneVsRestLogisticRegression(C).fit(X[fit], Y[fit])
    return f1_scores(Y[score], clf.predict_top_k(X[score], Y[score].sum(axis=1)))[0]


def test_selection_prefers_the_informative_embedding():
    Y, good, noise = _data()
    embeddings = {"noise": noise, "good": good}
    norms, Cs = (None, "l2", "standardize"), (0.1, 1.0)
    r = select_and_evaluate(embeddings, Y, 0.5, repeats=3, C=Cs, normalize=norms)
    assert [c[0] for c in r["choices"]] == ["good"] * 3
    assert list(r["validation"]) == [(k, nm, c) for k in ("noise", "good") for nm in norms for c in Cs]
    assert all(len(v) == 3 for v in r["validation"].values())
    splits = validation_splits(Y.shape[0], 0.5, 3, 0)
    for s, ((inner, val, train, test), (key, nm, C), ma) in enumerate(zip(splits, r["choices"],
                                                                          r["macro_f1"]["all"])):
        # every candidate's validation Macro-F1 of split s, recomputed here by hand (fitted and normalised on
        # the inner rows only), and the winner has the best of them
        for (k, n, c), scores in r["validation"].items():
            assert scores[s] == _fit_f1(embeddings[k], Y, n, c, inner, val), (k, n, c, s)
        assert r["validation"][(key, nm, C)][s] == max(w[s] for w in r["validation"].values())
        # and the reported test score is the winner's, refitted on the whole training part
        assert _fit_f1(good, Y, nm, C, train, test) == ma
    # the same with "standardize" the only normalisation, so the refit of every split is standardised, on an
    # embedding whose test rows of split 0 sit far off: statistics that took them in would move every feature
    shifted = good.copy()
    shifted[splits[0][3]] += 20.0
    embeddings = {"noise": noise, "good": shifted}
    r = select_and_evaluate(embeddings, Y, 0.5, repeats=3, C=Cs, normalize="standardize")
    for s, ((inner, val, train, test), (key, nm, C), ma) in enumerate(zip(splits, r["choices"],
                                                                          r["macro_f1"]["all"])):
        assert nm == "standardize"
        assert all(scores[s] == _fit_f1(embeddings[k], Y, n, c, inner, val)
                   for (k, n, c), scores in r["validation"].items())
        assert _fit_f1(embeddings[key], Y, nm, C, train, test) == ma


def test_choices_never_look_at_test_nodes():
    Y, good, noise = _data(seed=4)
    cands = {"noise": noise, "good": good}
    r = select_and_evaluate(cands, Y, 0.5, repeats=3, C=(0.1, 1.0, 10.0), normalize=(None, "standardize"))
    # scramble every test row of every embedding and every test label: the choices and validation scores stay
    splits = validation_splits(Y.shape[0], 0.5, 3, 0)
    rng = np.random.default_rng(9)
    for s, (_, _, train, test) in enumerate(splits):
        bad = {k: Z.copy() for k, Z in cands.items()}
        Yb = Y.copy()
        for Z in bad.values():
            Z[test] = rng.normal(0, 50.0, (test.size, Z.shape[1]))
        Yb[test] = rng.random((test.size, Y.shape[1])) < 0.5
        Yb[test, 0] = True
        rb = select_and_evaluate(bad, Yb, 0.5, repeats=s + 1, C=(0.1, 1.0, 10.0), normalize=(None, "standardize"))
        assert rb["choices"][s] == r["choices"][s]
        assert all(rb["validation"][k][s] == r["validation"][k][s] for k in r["validation"])
        # the test score: the classifier fitted (and standardised) on the clean training part alone, applied to
        # the scrambled test rows -- the scrambled rows reach the score only through their own predictions
        key, nm, C = r["choices"][s]
        X = normalize_embedding(cands[key], nm, train)
        Xb = normalize_embedding(bad[key], nm, train)
        np.testing.assert_array_equal(Xb[train], X[train])
        clf = OneVsRestLogisticRegression(C).fit(X[train], Y[train])
        pred = clf.predict_top_k(Xb[test], Yb[test].sum(axis=1))
        assert (rb["macro_f1"]["all"][s], rb["micro_f1"]["all"][s]) == f1_scores(Yb[test], pred)
    assert "standardize" in [nm for _, nm, _ in r["choices"]]      # the standardised refit is among those checked


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
    for bad, err, msg in [(3, TypeError, "normalize must be one of .* got int 3"),
                          (b"l2", TypeError, "normalize must be one of"),
                          ([], ValueError, "normalize must name at least one"),
                          ([None, 2], TypeError, r"normalize must be .*\(an element of type int"),
                          ([["l2"]], TypeError, r"normalize must be .*\(an element of type list")]:
        with pytest.raises(err, match=msg):
            select_and_evaluate({"a": good}, Y, normalize=bad)
    for bad, err, msg in [([[1, 2]], TypeError, r"C must be a positive finite real number or a 1-D sequence of "
                                                r"them, got \[\[1, 2\]\] \(an element of type list\)"),
                          (np.ones((1, 2)), TypeError, "C must be .*\\(an element of type ndarray"),
                          ("x", TypeError, "C must be a positive finite real number or a 1-D sequence of them, "
                                           "got str 'x'"),
                          (["1"], TypeError, "C must be .*\\(an element of type str"),
                          (True, TypeError, "C must be .* got bool True"),
                          ((1.0, np.True_), TypeError, "C must be .*\\(an element of type bool"),
                          (None, TypeError, "C must be .* got NoneType None"),
                          ((), ValueError, "C must hold at least one value"),
                          ((1.0, float("inf")), ValueError, "C must hold positive finite numbers, got inf"),
                          ((float("nan"),), ValueError, "C must hold positive finite numbers, got nan"),
                          (-1, ValueError, "C must hold positive finite numbers, got -1")]:
        with pytest.raises(err, match=msg):
            select_and_evaluate({"a": good}, Y, C=bad)
    with pytest.raises(TypeError, match="train_fraction must be one float"):
        select_and_evaluate({"a": good}, Y, train_fraction=(0.3, 0.5))
    # what is accepted: one int or NumPy number, a NumPy array
    r = select_and_evaluate({"a": good}, Y, repeats=1, C=np.array([2, 0.5]), normalize=["l2"])
    assert list(r["validation"]) == [("a", "l2", 2.0), ("a", "l2", 0.5)]
    assert select_and_evaluate({"a": good}, Y, repeats=1, C=np.float32(2))["choices"] == [("a", None, 2.0)]


def test_repeated_candidates_are_fitted_once():
    Y, good, noise = _data(n=80)
    kw = dict(train_fraction=0.5, repeats=2, seed=1)
    r = select_and_evaluate({"g": good, "n": noise}, Y, C=(1.0, 0.1, 1, 1.0), normalize=("l2", None, "l2"), **kw)
    once = select_and_evaluate({"g": good, "n": noise}, Y, C=(1.0, 0.1), normalize=("l2", None), **kw)
    assert list(r["validation"]) == [(k, nm, c) for k in "gn" for nm in ("l2", None) for c in (1.0, 0.1)]
    assert all(len(v) == 2 for v in r["validation"].values())          # one Macro-F1 per repeat
    assert r == once
    # a single distinct candidate is the plain protocol (no validation fit)
    r = select_and_evaluate({"g": good}, Y, C=(1.0, 1.0), normalize=(None, None), **kw)
    assert r["validation"] == {} and r["choices"] == [("g", None, 1.0)] * 2


def test_progress_reports_each_embedding_once_and_changes_nothing():
    Y, good, noise = _data(n=80)
    kw = dict(train_fraction=0.5, repeats=2, C=(0.1, 1.0), normalize=(None, "l2"))
    calls = []
    r = select_and_evaluate({"g": good, "n": noise}, Y, progress=lambda k, v: calls.append((k, v)), **kw)
    assert [k for k, _ in calls] == ["g", "n"]
    assert {c: v for _, scores in calls for c, v in scores.items()} == r["validation"]
    assert r == select_and_evaluate({"g": good, "n": noise}, Y, **kw)
    with pytest.raises(TypeError, match="progress must be None or a callable, got str"):
        select_and_evaluate({"g": good}, Y, progress="yes")


def test_a_label_with_one_node_outside_the_inner_split():
    """A label carried by a single node, which split 0 puts in the validation half (so the inner training rows
    have no positive): it gets the constant -inf predictor, no error, and the Macro-F1 the docstrings promise --
    a label true somewhere but never predicted counts F1 = 0, a label neither true nor predicted is left out."""
    Y, good, noise = _data(n=80)
    splits = validation_splits(80, 0.5, 2, 0)
    lone = splits[0][1][0]                                       # the first validation node of split 0
    Y = np.concatenate([Y, np.zeros((80, 1), bool)], axis=1)
    Y[lone, -1] = True
    r = select_and_evaluate({"g": good, "n": noise}, Y, 0.5, repeats=2, C=(0.1, 1.0))
    assert np.isfinite(r["macro_f1"]["all"]).all() and np.isfinite(r["micro_f1"]["all"]).all()

    def macro(T, P):                                             # F1 per label by its definition, 0/0 left out
        tp, fp, fn = (T & P).sum(0), (~T & P).sum(0), (T & ~P).sum(0)
        seen = tp + fp + fn > 0
        return np.mean(2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])), seen

    for s, (inner, val, train, test) in enumerate(splits):
        for (k, nm, C), scores in r["validation"].items():
            Z = {"g": good, "n": noise}[k]
            clf = OneVsRestLogisticRegression(C).fit(Z[inner], Y[inner])
            P = clf.predict_top_k(Z[val], Y[val].sum(axis=1))
            if s == 0:
                assert not Y[inner, -1].any() and clf.constant_[-1] == -np.inf
                assert Y[val, -1].any() and not P[:, -1].any()    # true once, never predicted: F1 = 0 counted
            want, seen = macro(Y[val], P)
            assert s != 0 or seen[-1]
            assert scores[s] == pytest.approx(want, rel=1e-12, abs=0)
        key, nm, C = r["choices"][s]
        Z = {"g": good, "n": noise}[key]
        clf = OneVsRestLogisticRegression(C).fit(Z[train], Y[train])
        P = clf.predict_top_k(Z[test], Y[test].sum(axis=1))
        want, seen = macro(Y[test], P)
        if s == 0:
            assert not Y[test, -1].any() and seen[-1] == P[:, -1].any()   # absent from the test nodes
        assert r["macro_f1"]["all"][s] == pytest.approx(want, rel=1e-12, abs=0)
