"""Embedding evaluation (gnn_scratch/embed/evaluate.py): F1 by hand, top-k prediction, the one-vs-rest
logistic regression and its gradient, the multi-label / single-label protocols, AUC with ties, and the
link-prediction split. Compared with scikit-learn where it is importable."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.stats

from gnn_scratch.embed.evaluate import (EDGE_OPERATORS, OneVsRestLogisticRegression, average_ranks,
                                        classify_split, edge_features, evaluate_multiclass, evaluate_multilabel,
                                        f1_scores, labels_to_matrix, link_prediction_auc, link_prediction_split,
                                        random_splits, roc_auc, top_k_predictions)
from gnn_scratch.gradcheck import numerical_gradient, relative_error


# ---------------------------------------------------------------- F1
def test_f1_by_hand():
    T = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], bool)
    P = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 0, 0]], bool)
    # label 0: TP 1 (row 0), FP 1 (row 3), FN 1 (row 2) -> 2/4;  label 1: TP 2, FP 0, FN 0 -> 1;
    # label 2: TP 0, FP 1 (row 1), FN 1 (row 0) -> 0
    macro, micro = f1_scores(T, P)
    assert macro == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert micro == pytest.approx(2 * 3 / (2 * 3 + 2 + 2))      # ΣTP 3, ΣFP 2, ΣFN 2


def test_f1_label_absent_everywhere_is_skipped_or_zero():
    T = np.array([[1, 0], [1, 0]], bool)
    P = np.array([[1, 0], [0, 0]], bool)
    # label 0: TP 1 FN 1 -> 2/3; label 1: never true, never predicted: 0/0
    assert f1_scores(T, P) == pytest.approx((2 / 3, 2 / 3))
    assert f1_scores(T, P, empty="zero") == pytest.approx((1 / 3, 2 / 3))
    # a label true somewhere but never predicted is a plain 0 under both rules
    T2 = np.array([[1, 1], [1, 0]], bool)
    assert f1_scores(T2, P)[0] == pytest.approx((2 / 3 + 0) / 2)
    assert np.isnan(f1_scores(np.zeros((2, 2), bool), np.zeros((2, 2), bool))[0])


def test_micro_f1_of_single_label_predictions_is_accuracy():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    _, micro = f1_scores(labels_to_matrix(y, 4), labels_to_matrix(p, 4))
    assert micro == pytest.approx(np.mean(y == p))


def test_f1_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        f1_scores(np.zeros((2, 3), bool), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="0/1"):
        f1_scores(np.full((2, 2), 2), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="empty"):
        f1_scores(np.zeros((2, 2), bool), np.zeros((2, 2), bool), empty="nan")


# ---------------------------------------------------------------- top-k
def test_top_k_predictions_by_hand_with_ties_and_infinities():
    S = np.array([[0.1, 0.9, 0.5, 0.9],
                  [2.0, 2.0, 2.0, 2.0],
                  [-np.inf, 0.0, np.inf, 1.0],
                  [3.0, 1.0, 2.0, 0.0]])
    got = top_k_predictions(S, [2, 1, 2, 0])
    want = np.array([[0, 1, 0, 1],          # the two 0.9s
                     [1, 0, 0, 0],          # all tied: the lowest index
                     [0, 0, 1, 1],          # +inf first, then 1.0
                     [0, 0, 0, 0]], bool)   # k = 0
    assert np.array_equal(got, want)
    assert np.array_equal(top_k_predictions(S[:1], 1), np.array([[0, 1, 0, 0]], bool))
    with pytest.raises(ValueError, match="k must"):
        top_k_predictions(S, 5)
    with pytest.raises(ValueError, match="NaN"):
        top_k_predictions(np.array([[np.nan, 1.0]]), 1)


def test_top_k_row_counts_equal_k():
    rng = np.random.default_rng(1)
    S = rng.integers(0, 3, (40, 6)).astype(float)       # many ties
    k = rng.integers(0, 7, 40)
    assert np.array_equal(top_k_predictions(S, k).sum(axis=1), k)


# ---------------------------------------------------------------- logistic regression
@pytest.mark.parametrize("penalize_intercept", [True, False])
def test_ovr_logistic_regression_gradient(penalize_intercept):
    rng = np.random.default_rng(2)
    Z, Y = rng.standard_normal((12, 4)), rng.random((12, 3)) < 0.4
    clf = OneVsRestLogisticRegression(C=0.7, penalize_intercept=penalize_intercept)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    _, dW, db = clf.loss_and_grads(W, b, Z, Y.astype(float))
    loss = lambda: clf.loss_and_grads(W, b, Z, Y.astype(float))[0]      # noqa: E731
    assert relative_error(dW, numerical_gradient(loss, W)) < 1e-7
    assert relative_error(db, numerical_gradient(loss, b)) < 1e-7


def test_ovr_fit_reaches_each_labels_optimum_and_constant_labels():
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((60, 5))
    Y = np.zeros((60, 4), bool)
    Y[:, 0] = Z[:, 0] + 0.3 * rng.standard_normal(60) > 0
    Y[:, 1] = rng.random(60) < 0.2
    Y[:, 3] = True                                        # label 2: no positive; label 3: no negative
    clf = OneVsRestLogisticRegression(C=1.0).fit(Z, Y)
    assert clf.converged_
    # stationarity of every fitted label's own problem
    _, dW, db = clf.loss_and_grads(clf.W[:, :2], clf.b[:2], Z, Y[:, :2].astype(float))
    assert np.abs(dW).max() < 1e-5 and np.abs(db).max() < 1e-5
    S = clf.decision_function(Z)
    assert np.all(S[:, 2] == -np.inf) and np.all(S[:, 3] == np.inf)
    # fitting one label alone gives the same weights (the labels' problems are independent)
    alone = OneVsRestLogisticRegression(C=1.0).fit(Z, Y[:, :1])
    assert np.allclose(alone.W[:, 0], clf.W[:, 0], atol=1e-4)


def test_ovr_matches_sklearn_liblinear_if_available():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((80, 6))
    y = Z @ rng.standard_normal(6) + 0.5 * rng.standard_normal(80) > 0.2
    ours = OneVsRestLogisticRegression(C=1.0, penalize_intercept=False).fit(Z, y[:, None])
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(Z, y)
    assert np.allclose(ours.W[:, 0], ref.coef_[0], atol=1e-4) and np.isclose(ours.b[0], ref.intercept_[0], atol=1e-4)


def test_f1_and_auc_match_sklearn_if_available():
    pytest.importorskip("sklearn")
    from sklearn.metrics import f1_score, roc_auc_score
    rng = np.random.default_rng(5)
    T, P = rng.random((30, 5)) < 0.3, rng.random((30, 5)) < 0.3
    macro, micro = f1_scores(T, P, empty="zero")
    assert macro == pytest.approx(f1_score(T, P, average="macro", zero_division=0))
    assert micro == pytest.approx(f1_score(T, P, average="micro"))
    s, lab = rng.integers(0, 5, 40).astype(float), rng.random(40) < 0.5
    assert roc_auc(s, lab) == pytest.approx(roc_auc_score(lab, s))


# ---------------------------------------------------------------- the protocols
def _clustered(n=300, L=4, d=8, seed=0):
    """Nodes in L clusters, each node labelled with its cluster and, for a third of them, one more label."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, L, n)
    centres = 3.0 * rng.standard_normal((L, d))
    Z = centres[c] + 0.5 * rng.standard_normal((n, d))
    Y = labels_to_matrix(c, L)
    extra = rng.random(n) < 0.33
    Y[np.flatnonzero(extra), (c[extra] + 1) % L] = True
    return Z, Y, c


def test_evaluate_multilabel_on_separable_clusters_and_seeded():
    Z, Y, _ = _clustered()
    r = evaluate_multilabel(Z, Y, train_fractions=(0.1, 0.5), repeats=3, seed=1)
    assert set(r) == {0.1, 0.5}
    for f in r:
        assert len(r[f]["macro_f1"]["all"]) == 3
        assert r[f]["micro_f1"]["mean"] > 0.75           # the cluster label is always recovered
    noise = evaluate_multilabel(np.random.default_rng(9).standard_normal(Z.shape), Y, (0.5,), repeats=3)
    assert noise[0.5]["micro_f1"]["mean"] < r[0.5]["micro_f1"]["mean"] - 0.2
    again = evaluate_multilabel(Z, Y, train_fractions=(0.1, 0.5), repeats=3, seed=1)
    assert again == r


def test_random_splits_are_seeded_permutations():
    P = random_splits(20, repeats=4, seed=3)
    assert P.shape == (4, 20) and all(np.array_equal(np.sort(p), np.arange(20)) for p in P)
    assert np.array_equal(P, random_splits(20, repeats=4, seed=3)) and not np.array_equal(P[0], P[1])


def test_single_label_classification():
    Z, _, c = _clustered(seed=2)
    r = classify_split(Z, c, np.arange(150), np.arange(150, 300))
    assert r["accuracy"] > 0.95 and r["micro_f1"] == pytest.approx(r["accuracy"])
    mask = np.zeros(300, bool)
    mask[:150] = True
    assert classify_split(Z, c, mask, ~mask) == r
    rr = evaluate_multiclass(Z, c, (0.2,), repeats=2)
    assert rr[0.2]["accuracy"]["mean"] > 0.9


def test_protocols_reject_bad_input():
    Z, Y, c = _clustered(n=40)
    with pytest.raises(ValueError, match="train_fractions"):
        evaluate_multilabel(Z, Y, (0.0,))
    with pytest.raises(ValueError, match="one row per node"):
        evaluate_multilabel(Z[:-1], Y)
    Zbad = Z.copy()
    Zbad[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3, column 1"):
        evaluate_multilabel(Zbad, Y)
    with pytest.raises(ValueError, match="repeats"):
        evaluate_multilabel(Z, Y, repeats=0)
    with pytest.raises(ValueError, match="C must"):
        OneVsRestLogisticRegression(C=0)
    with pytest.raises(RuntimeError, match="before fit"):
        OneVsRestLogisticRegression().decision_function(Z)
    y = c.copy()
    y[0] = -1
    with pytest.raises(ValueError, match="without a label"):
        classify_split(Z, y, [0, 1], [2, 3])


# ---------------------------------------------------------------- AUC
def test_roc_auc_by_hand_with_ties():
    assert roc_auc([0.5, 0.5], [1, 0]) == 0.5
    # positives {2, 3}, negatives {1, 2}: 2>1, 2=2 (1/2), 3>1, 3>2 -> 3.5 / 4
    assert roc_auc([1, 2, 2, 3], [0, 1, 0, 1]) == 0.875
    assert roc_auc([3, 2, 1], [1, 1, 0]) == 1.0 and roc_auc([1, 2, 3], [1, 1, 0]) == 0.0


def test_roc_auc_equals_pairwise_definition():
    rng = np.random.default_rng(6)
    s = rng.integers(0, 6, 120).astype(float)            # heavy ties
    lab = rng.random(120) < 0.4
    pos, neg = s[lab], s[~lab]
    pairwise = (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (pos.size * neg.size)
    assert roc_auc(s, lab) == pytest.approx(pairwise, abs=1e-15)


def test_average_ranks_equal_scipy():
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    assert np.array_equal(average_ranks(x), scipy.stats.rankdata(x))


def test_roc_auc_rejects_bad_input():
    with pytest.raises(ValueError, match="positives and negatives"):
        roc_auc([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([np.inf, 2.0], [1, 0])
    with pytest.raises(ValueError, match="one length"):
        roc_auc([1.0, 2.0], [1])


# ---------------------------------------------------------------- link prediction
def _two_blocks(n=60, seed=0):
    """Two dense communities with a few links between them, plus an isolated node."""
    rng = np.random.default_rng(seed)
    comm = np.arange(n) % 2
    iu = np.triu_indices(n, 1)
    p = np.where(comm[iu[0]] == comm[iu[1]], 0.3, 0.02)
    keep = rng.random(p.size) < p
    a, b = iu[0][keep], iu[1][keep]
    a, b = a[(a != n - 1) & (b != n - 1)], b[(a != n - 1) & (b != n - 1)]
    return np.stack([np.r_[a, b], np.r_[b, a]]), n + 0, comm


def _components(edge_index, n):
    A = sp.coo_matrix((np.ones(edge_index.shape[1]), (edge_index[0], edge_index[1])), shape=(n, n))
    return csgraph.connected_components(A, directed=False)[1]


def test_link_split_keeps_components_and_separates_pairs():
    ei, n, _ = _two_blocks()
    s = link_prediction_split(ei, n, test_fraction=0.5, seed=1)
    U = np.unique(np.minimum(ei[0], ei[1]) * n + np.maximum(ei[0], ei[1])).size
    assert len(s.test_pos) == round(0.5 * U) and len(s.test_pos) + len(s.train_pos) == U
    assert len(s.test_neg) == len(s.test_pos) and len(s.train_neg) == len(s.train_pos)
    # the residual graph has exactly the original's components (the isolated node stays alone)
    c0, c1 = _components(ei, n), _components(s.train_edge_index, n)
    assert np.array_equal(c0[:, None] == c0[None, :], c1[:, None] == c1[None, :])
    key = lambda p: set((np.minimum(p[:, 0], p[:, 1]) * n + np.maximum(p[:, 0], p[:, 1])).tolist())  # noqa: E731
    edges = key(ei.T)
    assert key(s.test_pos) <= edges and key(s.train_pos) <= edges and not key(s.test_pos) & key(s.train_pos)
    negs = np.concatenate([s.test_neg, s.train_neg])
    assert not key(negs) & edges and len(key(negs)) == len(negs) and np.all(negs[:, 0] != negs[:, 1])
    assert np.array_equal(link_prediction_split(ei, n, 0.5, seed=1).test_pos, s.test_pos)


def test_link_split_refuses_to_disconnect_a_tree():
    path = np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
    with pytest.raises(ValueError, match="spanning forest"):
        link_prediction_split(path, 5, 0.5)
    with pytest.raises(ValueError, match="test_fraction"):
        link_prediction_split(path, 5, 1.0)


def test_link_prediction_auc_on_community_embedding():
    ei, n, comm = _two_blocks(seed=3)
    s = link_prediction_split(ei, n, 0.3, seed=0)
    Z = np.eye(2)[comm] + 0.05 * np.random.default_rng(0).standard_normal((n, 2))
    for op in ("dot",) + EDGE_OPERATORS[:1]:
        assert link_prediction_auc(Z, s, op) > 0.7
    assert abs(link_prediction_auc(np.random.default_rng(1).standard_normal((n, 2)), s) - 0.5) < 0.2
    Zc = np.random.default_rng(2).standard_normal((n, 3))
    pairs = s.test_pos[:4]
    assert np.allclose(edge_features(Zc, pairs, "hadamard").sum(1), np.einsum("pd,pd->p", Zc[pairs[:, 0]],
                                                                              Zc[pairs[:, 1]]))
    with pytest.raises(ValueError, match="operator"):
        edge_features(Zc, pairs, "concat")
