"""LINE and SDNE (gnn_scratch/embed/line.py, sdne.py): gradient checks, the SGD kernel as a gradient step,
LINE's sampling frequencies, determinism, SDNE's loss against a direct NumPy evaluation, bad input."""
import numpy as np
import pytest

from gnn_scratch.data import karate_club
from gnn_scratch.embed.evaluate import roc_auc
from gnn_scratch.embed.line import (LINE, _line_update, line_embedding, line_loss_and_grads, negative_weights)
from gnn_scratch.embed.sdne import SDNE, adjacency_rows, train_sdne
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.gradcheck.line_sdne import line_rows, sdne_rows
from gnn_scratch.graph import Graph


# ---------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("rows", [line_rows, sdne_rows], ids=["LINE", "SDNE"])
def test_gradients_match_finite_differences(rows):
    got = rows()
    assert got and all(r.passed for r in got), [(r.case, r.parameter, r.error) for r in got if not r.passed]


def test_sdne_gradcheck_covers_every_parameter():
    names = {r.parameter for r in sdne_rows() if r.case == "SDNE"}
    model = SDNE(8, hidden=(5, 3), dtype=np.float64)
    assert names == {n for n, _, _ in model.named_parameters()}


# ---------------------------------------------------------------- LINE
@pytest.mark.parametrize("order", [1, 2])
def test_kernel_step_is_an_sgd_step_on_the_derived_gradient(order):
    """With distinct targets (none equal to the source) line.cpp's in-place order changes nothing: one kernel
    step equals emb - lr dE, ctx - lr dC of ``line_loss_and_grads`` on that one sample."""
    rng = np.random.default_rng(order)
    emb = rng.standard_normal((9, 6))
    ctx = rng.standard_normal((9, 6)) if order == 2 else None
    u, targets, lr = 4, np.array([7, 0, 2, 8]), 0.01
    _, dE, dC = line_loss_and_grads(emb, ctx, [u], [targets[0]], targets[None, 1:])
    e2 = emb.copy()
    c2 = e2 if order == 1 else ctx.copy()
    _line_update(e2, c2, u, targets, lr, np.empty(6))
    assert np.allclose(e2, emb - lr * dE, rtol=0, atol=1e-14)
    if order == 2:
        assert np.allclose(c2, ctx - lr * dC, rtol=0, atol=1e-14)


def _weighted_graph():
    g = random_test_graph(5)
    w = np.arange(1, g.num_edges + 1, dtype=np.float64)
    return Graph.from_csr(g.indptr, g.indices, w, num_src=g.num_src)


def test_edge_and_negative_sampling_frequencies():
    g = _weighted_graph()
    model = LINE(g.num_nodes, dim=4, order=2, num_negatives=5)
    n = 200_000
    sources, targets = model.draws(g, n, seed=3)
    src, dst, w = g.indices, g.dst_of_edge(), g.edge_weight
    # each draw is an edge; the pair frequencies follow the weights (repeated edges' weights add up)
    key = sources * g.num_nodes + targets[:, 0]
    ekey = src.astype(np.int64) * g.num_nodes + dst
    assert np.isin(key, ekey).all()
    uk, inv = np.unique(ekey, return_inverse=True)
    p_edge = np.bincount(inv, weights=w) / w.sum()
    f_edge = np.array([np.mean(key == k) for k in uk])
    assert np.all(np.abs(f_edge - p_edge) < 5 * np.sqrt(p_edge * (1 - p_edge) / n) + 1e-12)
    # negatives ∝ weighted out-degree^0.75; the isolated node (and any node without out-edges) never drawn
    p_neg = negative_weights(g) / negative_weights(g).sum()
    f_neg = np.bincount(targets[:, 1:].ravel(), minlength=g.num_nodes) / targets[:, 1:].size
    m = targets[:, 1:].size
    assert np.all(np.abs(f_neg - p_neg) < 5 * np.sqrt(p_neg * (1 - p_neg) / m) + 1e-12)
    assert f_neg[p_neg == 0].sum() == 0 and p_neg[g.num_nodes - 1] == 0
    assert np.allclose(negative_weights(g), np.bincount(src, weights=w, minlength=g.num_nodes) ** 0.75)


def test_fit_is_deterministic_with_one_worker():
    g = karate_club().graph
    a = LINE(34, 8, order=2, seed=1).fit(g, 5000)
    b = LINE(34, 8, order=2, seed=1).fit(g, 5000)
    c = LINE(34, 8, order=2, seed=2).fit(g, 5000)
    assert np.array_equal(a.emb, b.emb) and np.array_equal(a.ctx, b.ctx)
    assert not np.array_equal(a.emb, c.emb)
    assert a.emb.dtype == np.float32 and a.samples_seen == 5000


@pytest.mark.parametrize("order", [1, 2])
def test_training_lowers_the_loss_and_ranks_edges_above_non_edges(order):
    ds = karate_club()
    g = ds.graph
    model = LINE(34, 16, order=order, seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    ei = g.edge_index()
    neg = rng.integers(0, 34, (ei.shape[1], 5))
    before = line_loss_and_grads(model.emb, model.ctx, ei[0], ei[1], neg)[0]
    model.fit(g, 200_000, num_workers=2)          # also runs the multi-worker (Hogwild) path
    after = line_loss_and_grads(model.emb, model.ctx, ei[0], ei[1], neg)[0]
    assert np.isfinite(model.emb).all() and after < before
    # the model's own score u_i . c_j ranks the edges above the non-edges
    C = model.emb if order == 1 else model.ctx
    P = model.emb @ C.T
    A = np.zeros((34, 34), bool)
    A[ei[0], ei[1]] = True
    off = ~np.eye(34, dtype=bool)
    assert roc_auc(P[off], A[off]) > 0.85


def test_line_embedding_concatenates_normalised_orders():
    g = karate_club().graph
    Z = line_embedding(g, dim=8, order="1+2", num_samples=2000, seed=4)
    assert Z.shape == (34, 8)
    assert np.allclose(np.linalg.norm(Z[:, :4], axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(Z[:, 4:], axis=1), 1, atol=1e-5)
    first = LINE(34, 4, order=1, seed=4).fit(g, 2000).embedding()
    assert np.array_equal(Z[:, :4], first)


def test_line_rejects_bad_input():
    g = karate_club().graph
    with pytest.raises(ValueError, match="order"):
        LINE(34, 8, order=3)
    with pytest.raises(ValueError, match="dim"):
        LINE(34, 0)
    with pytest.raises(ValueError, match="num_samples"):
        LINE(34, 8).fit(g, 0)
    with pytest.raises(ValueError, match="lr"):
        LINE(34, 8).fit(g, 10, lr=-1.0)
    with pytest.raises(ValueError, match="34 nodes, the model 35"):
        LINE(35, 8).fit(g, 10)
    with pytest.raises(ValueError, match="square"):
        LINE(8, 4).fit(random_test_graph(0, num_src=6), 10)
    neg_w = Graph.from_csr(g.indptr, g.indices, -np.ones(g.num_edges), num_src=34)
    with pytest.raises(ValueError, match="non-negative"):
        LINE(34, 4).fit(neg_w, 10)
    with pytest.raises(ValueError, match="even"):
        line_embedding(g, dim=7, order="1+2", num_samples=10)
    with pytest.raises(ValueError, match="outside"):
        line_loss_and_grads(np.zeros((3, 2)), None, [0], [5], [[1]])


# ---------------------------------------------------------------- SDNE
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_sdne_loss_equals_a_direct_evaluation():
    g = random_test_graph(4)
    S = adjacency_rows(g, np.float64).toarray()
    model = SDNE(g.num_nodes, hidden=(6, 4, 2), alpha=0.7, beta=5.0, nu=0.01, seed=3, dtype=np.float64)
    idx = np.array([0, 1, 2, 3, 7])
    L, l2nd, l1st, lreg = model.loss(S[idx], S[idx][:, idx])
    P = {n: p for n, p, _ in model.named_parameters()}

    def mlp(x, part, depth):
        for k in range(depth):
            x = _sigmoid(x @ P[f"{part}.lin{k}.W"] + P[f"{part}.lin{k}.b"])
        return x
    Y = mlp(S[idx], "encoder", 3)
    Xh = mlp(Y, "decoder", 3)
    want2 = want1 = 0.0
    for a, i in enumerate(idx):
        b_i = np.where(S[i] > 0, 5.0, 1.0)
        want2 += np.sum(((Xh[a] - S[i]) * b_i) ** 2)
        for c, j in enumerate(idx):
            want1 += S[i, j] * np.sum((Y[a] - Y[c]) ** 2)
    wreg = 0.5 * sum(np.sum(p ** 2) for n, p in P.items() if n.endswith(".W"))
    assert (l2nd, l1st, lreg) == pytest.approx((want2, want1, wreg), rel=1e-12)
    assert L == pytest.approx(want2 + 0.7 * want1 + 0.01 * wreg, rel=1e-12)
    assert want1 > 0                      # the batch holds edges (and the repeated one, weight 2)
    assert np.allclose(model.forward(S[idx]), Y)


def test_sdne_sparse_rows_equal_dense_rows():
    g = random_test_graph(2)
    S = adjacency_rows(g, np.float64)
    model = SDNE(g.num_nodes, hidden=(4, 2), seed=0, dtype=np.float64)
    idx = np.array([1, 2, 5])
    Ls = model.loss(S[idx], S[idx][:, idx])[0]
    model.zero_grad()
    model.backward_loss()
    gs = [g_.copy() for _, _, g_ in model.named_parameters()]
    Ld = model.loss(S[idx].toarray(), S[idx][:, idx].toarray())[0]
    model.zero_grad()
    model.backward_loss()
    assert Ls == pytest.approx(Ld, rel=1e-14)
    assert all(np.allclose(a, b, rtol=1e-12, atol=1e-14) for a, (_, _, b) in zip(gs, model.named_parameters()))
    assert np.allclose(model.embedding(S, batch_size=3), model.forward(S.toarray()))


def test_sdne_training_lowers_the_loss_on_karate():
    g = karate_club().graph
    model, hist = train_sdne(g, hidden=(16, 4), epochs=40, batch_size=17, lr=5e-3, seed=0)
    assert len(hist) == 40 and hist[-1] < 0.6 * hist[0]
    Z = model.embedding(adjacency_rows(g))
    assert Z.shape == (34, 4) and np.isfinite(Z).all()


def test_sdne_rejects_bad_input():
    g = random_test_graph(0)
    S = adjacency_rows(g, np.float64).toarray()
    with pytest.raises(ValueError, match="beta"):
        SDNE(8, beta=0.0)
    with pytest.raises(ValueError, match="alpha"):
        SDNE(8, alpha=-1.0)
    with pytest.raises(ValueError, match="hidden"):
        SDNE(8, hidden=())
    model = SDNE(8, hidden=(3,), dtype=np.float64)
    with pytest.raises(RuntimeError, match="before loss"):
        model.backward_loss()
    with pytest.raises(ValueError, match=r"X must have shape \(B, 8\)"):
        model.loss(S[:, :5], S[:5, :5])
    with pytest.raises(ValueError, match="S_B must have shape"):
        model.loss(S[:3], S[:2, :2])
    bad = S[:3].copy()
    bad[0, 0] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        model.loss(bad, S[:3, :3])
    with pytest.raises(ValueError, match="epochs"):
        train_sdne(g, epochs=0)
