"""Tests for the 1-WL test, the WL subtree kernel, the kernel SVM and the expressiveness experiment."""
from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from gnn_scratch.analysis.kernel_svm import KernelSVC, dual_coordinate_descent, smo
from gnn_scratch.analysis.wl import (ColorTable, wl_colors, wl_graph_classes, wl_subtree_features,
                                     wl_subtree_kernel, wl_test)
from gnn_scratch.graph import Graph


def und(edges, n):
    e = np.array(edges, dtype=np.int64).T.reshape(2, -1)
    return np.concatenate([e, e[::-1]], axis=1), n


C6 = und([(i, (i + 1) % 6) for i in range(6)], 6)
TWO_TRIANGLES = und([(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)], 6)
PATH4 = und([(0, 1), (1, 2), (2, 3)], 4)
STAR4 = und([(0, 1), (0, 2), (0, 3)], 4)


def shared_data_root():
    env = os.environ.get("GNN_SCRATCH_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets"


# ---------------------------------------------------------------- 1-WL
def test_wl_test_known_pairs():
    assert wl_test(C6, TWO_TRIANGLES) is False          # both 2-regular on 6 nodes: 1-WL is blind
    assert wl_test(PATH4, STAR4) is True                 # degree histograms differ after one round
    assert wl_test(PATH4, PATH4) is False
    # a relabelled copy is never told apart
    perm = np.array([2, 0, 3, 1])
    assert wl_test(PATH4, (perm[PATH4[0]], 4)) is False
    # initial colours can separate what structure cannot
    assert wl_test(C6, TWO_TRIANGLES, np.zeros(6, int), np.array([0, 0, 0, 0, 0, 1])) is True
    # different sizes are told apart at round 0
    assert wl_test(und([(0, 1)], 2), und([(0, 1), (1, 2)], 3)) is True


def test_wl_colors_refine_and_stabilise():
    # a path on 5 nodes: rounds split {ends}, {next}, {middle}, then nothing changes
    g = und([(0, 1), (1, 2), (2, 3), (3, 4)], 5)
    colors = wl_colors(g)
    assert colors.shape == (3, 5)
    classes = [len(set(r.tolist())) for r in colors]
    assert classes == [1, 2, 3]
    for a, b in zip(colors[:-1], colors[1:]):            # each round refines the previous partition
        for c in np.unique(b):
            assert np.unique(a[b == c]).size == 1
    # one more round gives the same partition (stable), with fresh ids
    more = wl_colors(g, iterations=4)
    assert more.shape == (5, 5)
    last = more[-1]
    assert all(np.unique(last[colors[-1] == c]).size == 1 for c in np.unique(colors[-1]))
    assert np.unique(last).size == np.unique(colors[-1]).size
    # the Graph form gives the same partition as the edge_index form
    gr = Graph.from_edge_index(g[0], 5)
    assert np.array_equal(wl_colors(gr), colors)


def test_colour_table_is_shared_and_canonical():
    table = ColorTable()
    a = wl_colors(PATH4, iterations=2, table=table)
    b = wl_colors((np.array([2, 0, 3, 1])[PATH4[0]], 4), iterations=2, table=table)
    assert np.array_equal(np.sort(a, axis=1), np.sort(b, axis=1))   # same colours, permuted nodes
    assert np.all(np.diff(table.iteration) >= 0)
    c = wl_colors(STAR4, iterations=2, table=table)
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


def test_wl_bad_input():
    with pytest.raises(ValueError, match="edge_index"):
        wl_colors(np.zeros((3, 2), dtype=np.int64), 3)
    with pytest.raises(ValueError, match="initial"):
        wl_colors(PATH4, initial=np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="iterations"):
        wl_colors(PATH4, iterations=-1)
    with pytest.raises(ValueError, match="node ids"):
        wl_colors(np.array([[0], [5]]), 3)


# ---------------------------------------------------------------- WL subtree kernel
def test_subtree_features_count_colours():
    graphs = [PATH4, STAR4, C6, TWO_TRIANGLES]
    Phi, it = wl_subtree_features(graphs, 2)
    assert Phi.shape[0] == 4 and it.size == Phi.shape[1]
    n = np.array([4, 4, 6, 6])
    for t in range(3):                                  # every round counts each node once
        assert np.array_equal(np.asarray(Phi[:, it == t].sum(axis=1)).ravel(), n)
    # 1-WL-equivalent graphs have identical feature vectors
    assert (Phi[2] != Phi[3]).nnz == 0 and (Phi[0] != Phi[1]).nnz > 0


def test_subtree_kernel_symmetric_psd():
    rng = np.random.default_rng(0)
    graphs = []
    for k in range(12):
        n = int(rng.integers(3, 9))
        pairs = [(i, j) for i, j in combinations(range(n), 2) if rng.random() < 0.4]
        graphs.append(und(pairs or [(0, 1)], n))
    initial = rng.integers(0, 3, size=sum(n for _, n in graphs))
    for normalize in (False, True):
        Ks = wl_subtree_kernel(graphs, 3, initial=initial, normalize=normalize)
        assert len(Ks) == 4
        for K in Ks:
            assert np.array_equal(K, K.T)
            assert np.linalg.eigvalsh(K).min() > -1e-9 * max(1.0, np.abs(K).max())
            if normalize:
                assert np.allclose(np.diag(K), 1.0)
        if not normalize:
            Phi, it = wl_subtree_features(graphs, 3, initial)
            dense = Phi.toarray()
            assert np.allclose(Ks[3], dense @ dense.T)
            assert np.allclose(Ks[1], dense[:, it <= 1] @ dense[:, it <= 1].T)


# ---------------------------------------------------------------- the SVM
def _toy(n=60, seed=0, margin=0.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    s = np.where(X[:, 0] + X[:, 1] > 0, 1, -1)
    X += margin * s[:, None]                            # push the classes apart: separable
    return X, s


@pytest.mark.parametrize("solver", ["smo", "dcd"])
def test_svm_separates_a_separable_problem(solver):
    X, s = _toy()
    K = X @ X.T
    svm = KernelSVC(C=100.0, solver=solver).fit(K, s)
    assert svm.converged_
    assert np.array_equal(svm.predict(K), s)
    Xt, st = _toy(200, seed=1)
    assert np.mean(svm.predict(Xt @ X.T) == st) > 0.95
    # deterministic: the same call gives the same bits
    again = KernelSVC(C=100.0, solver=solver).fit(K, s)
    assert np.array_equal(svm.alpha_, again.alpha_)


def test_smo_satisfies_kkt_and_matches_a_general_solver():
    so = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    s = np.where(X[:, 0] + 0.7 * rng.normal(size=40) > 0, 1.0, -1.0)    # overlapping classes
    K, C = X @ X.T, 1.0
    alpha, rho, _, gap = smo(K, s, C, tol=1e-9)
    assert gap < 1e-9 and abs(alpha @ s) < 1e-12 and alpha.min() >= 0 and alpha.max() <= C
    f = K @ (alpha * s) - rho
    margin = s * f
    free = (alpha > 1e-9) & (alpha < C - 1e-9)
    assert free.any() and np.allclose(margin[free], 1.0, atol=1e-6)        # KKT: free -> on the margin
    assert np.all(margin[alpha < 1e-9] >= 1 - 1e-6) and np.all(margin[alpha > C - 1e-9] <= 1 + 1e-6)
    Q = K * np.outer(s, s)
    obj = lambda a: 0.5 * a @ Q @ a - a.sum()                               # noqa: E731
    ref = so.minimize(obj, np.zeros(40), jac=lambda a: Q @ a - 1, bounds=[(0, C)] * 40, method="SLSQP",
                      constraints=[dict(type="eq", fun=lambda a: a @ s, jac=lambda a: s)],
                      options=dict(ftol=1e-14, maxiter=1000))
    assert obj(alpha) <= ref.fun + 1e-9


def test_dcd_solves_the_bias_free_dual():
    X, s = _toy(30, seed=2, margin=0.0)
    K = X @ X.T
    alpha, _, spread = dual_coordinate_descent(K, s.astype(float), 1.0, tol=1e-10, max_epochs=100000)
    Q = (K + 1) * np.outer(s, s)
    g = Q @ alpha - 1
    assert spread < 1e-10
    assert np.all(g[alpha < 1e-12] >= -1e-8) and np.all(g[alpha > 1 - 1e-12] <= 1e-8)
    inside = (alpha > 1e-12) & (alpha < 1 - 1e-12)
    assert np.allclose(g[inside], 0, atol=1e-8)


def test_svm_multiclass_and_errors():
    rng = np.random.default_rng(0)
    centres = np.array([[4, 0], [0, 4], [-4, -4]])
    y = np.repeat([0, 1, 2], 20)
    X = centres[y] + rng.normal(size=(60, 2))
    K = X @ X.T
    svm = KernelSVC(C=1.0).fit(K, y)
    assert np.mean(svm.predict(K) == y) > 0.95 and svm.alpha_.shape == (3, 60)
    with pytest.raises(ValueError, match="C must be"):
        KernelSVC(C=0)
    with pytest.raises(ValueError, match="square"):
        KernelSVC().fit(np.zeros((3, 2)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="two classes"):
        KernelSVC().fit(np.eye(3), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="NaN"):
        KernelSVC().fit(np.full((2, 2), np.nan), np.array([0, 1]))


# ---------------------------------------------------------------- expressiveness (graphs up to 6 nodes)
@pytest.fixture(scope="module")
def small_graphs():
    from gnn_scratch.data.graph6 import load_wl_graphs

    root = shared_data_root()
    if not (root / "wl" / "graph6c.g6").is_file():
        pytest.skip(f"shared wl/ files not found under {root}")
    return sum((load_wl_graphs(f"graph{k}c", root) for k in range(2, 7)), [])


def test_wl_classes_of_small_connected_graphs(small_graphs):
    cls = wl_graph_classes(small_graphs)
    final = cls[-1]
    # the classic 1-WL failure among them: C6 and two triangles are not both connected, but the prism
    # (C3 x K2) and K_{3,3} are: both 3-regular on 6 nodes
    six = [k for k, (_, n) in enumerate(small_graphs) if n == 6]
    cubic = [k for k in six if np.all(np.bincount(small_graphs[k][0][1], minlength=6) == 3)]
    assert len(cubic) == 2 and final[cubic[0]] == final[cubic[1]]
    # rows only split classes
    for a, b in zip(cls[:-1], cls[1:]):
        for c in np.unique(b):
            assert np.unique(a[b == c]).size == 1
    # pairwise wl_test agrees with the joint classes on a sample of pairs
    rng = np.random.default_rng(0)
    for a, b in rng.integers(0, len(small_graphs), size=(40, 2)):
        assert wl_test(small_graphs[a], small_graphs[b]) == (final[a] != final[b])
    assert wl_test(small_graphs[cubic[0]], small_graphs[cubic[1]]) is False


def test_expressiveness_claims(small_graphs):
    from gnn_scratch.analysis.expressiveness import pair_table

    r = pair_table(small_graphs, models=("gin", "sum", "mean", "max"), layers=4, hidden=32)
    B = len(small_graphs)
    assert r["pairs"] == B * (B - 1) // 2 and 0 < r["wl"] < r["pairs"]
    m = r["models"]
    for name in m:                                        # no model goes beyond 1-WL
        assert m[name]["beyond_wl"] == 0
    assert m["gin"]["separated"] == r["wl"] and m["gin"]["missed"] == 0
    assert m["mean"]["separated"] < m["gin"]["separated"] and m["max"]["separated"] < m["gin"]["separated"]
    # the smallest pair mean confuses: an edge and a path on 3 nodes (constant features: every mean is 1)
    a, b = m["mean"]["smallest_missed"]
    assert {small_graphs[a][1], small_graphs[b][1]} == {2, 3}
    # the tolerance sits in a real gap: roundoff far below it, real differences far above
    assert m["gin"]["max_equal"] < 1e-12 and m["gin"]["min_different"] > 1e-8


def test_no_model_separates_strongly_regular_graphs():
    from gnn_scratch.analysis.expressiveness import pair_table
    from gnn_scratch.data.graph6 import load_wl_graphs

    root = shared_data_root()
    if not (root / "wl" / "sr251256.g6").is_file():
        pytest.skip(f"shared wl/ files not found under {root}")
    sr = load_wl_graphs("sr251256", root)[:6]
    r = pair_table(sr, models=("gin", "sum", "mean", "max"), layers=3, hidden=16)
    assert r["wl"] == 0 and all(v["separated"] == 0 for v in r["models"].values())
