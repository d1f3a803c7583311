"""GConvLSTM, DConv and DCRNN: finite differences through time, PyG Temporal, an independent dense definition of
DConv, a dense model of PyG Temporal's DConv that pins its quirks down, bad input, frames, the device.

Where PyG Temporal's DConv computes something else than the diffusion convolution (nn/conv/dconv.py, quirks (a) -
(f); derivations/dcrnn.md § 2), the oracle runs where the two definitions agree -- symmetric graphs whose
edge_index is sorted by (source, target), without repeated edges, unweighted, K <= 3 -- and
``test_pyg_temporal_dconv_is_the_dense_model_of_its_quirks`` shows that every difference is exactly a quirk.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from gnn_scratch import ops
from gnn_scratch.device import to_host
from gnn_scratch.gradcheck import lstm_dcrnn as cases
from gnn_scratch.gradcheck import random_test_graph, relative_error
from gnn_scratch.graph import Graph, GraphBatch
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.conv import DConv
from gnn_scratch.nn.recurrent import DCRNN, GConvLSTM, Recurrent

F64 = np.float64
TOL = 1e-10
N = 8


def _seq(seed, T=4, n=N, f=3):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, f)) for _ in range(T)]


def _randomize(cell, seed, scale=0.5):
    """Every parameter random (biases and peepholes included), so that no path of the backward is multiplied by 0."""
    rng = np.random.default_rng(seed)
    for _, p, _ in cell.named_parameters():
        p[...] = scale * rng.standard_normal(p.shape)
    return cell


# ------------------------------------------------------------------------------------ finite differences
@pytest.mark.parametrize("case", [cases.gconv_lstm, cases.dcrnn, cases.dconv], ids=["GConvLSTM", "DCRNN", "DConv"])
def test_gradcheck_rows_pass(case, backend):
    rows = case()
    bad = [r for r in rows if not r.passed]
    assert rows and not bad, bad


# ------------------------------------------------------------------------------------ the graphs
def symmetric_graph(seed, n=N, pairs=9, loops=2):
    """A symmetric graph without repeated edges, its edge_index sorted by (source, target): the graphs on which PyG
    Temporal's DConv is the diffusion convolution. Node n - 1 is isolated; ``loops`` self-loops. (Graph, edge_index)."""
    rng = np.random.default_rng(seed)
    edges = set()
    while len(edges) < 2 * pairs:
        i, j = rng.integers(0, n - 1, 2)
        if i != j:
            edges |= {(i, j), (j, i)}
    edges |= {(v, v) for v in rng.choice(n - 1, loops, replace=False)}
    ei = np.array(sorted(edges), dtype=np.int64).T
    return Graph.from_edge_index(ei, num_nodes=n), ei


def directed_graph(seed, n=N, num_edges=18, weighted=True, repeated=True):
    """A random directed graph with self-loops, node n - 1 isolated and (with ``repeated``) the edge 1 -> 2 three
    times; edges in random order. (Graph, edge_index, weights or None)."""
    rng = np.random.default_rng(seed)
    src = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 3]])
    dst = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 3]])
    ei = np.stack([src, dst])
    if repeated:
        ei = np.concatenate([ei, [[1, 1, 1], [2, 2, 2]]], axis=1)
    else:
        ei = np.array(list(dict.fromkeys(map(tuple, ei.T)))).T
    w = rng.uniform(0.5, 2.0, ei.shape[1]) if weighted else None
    return Graph.from_edge_index(ei, num_nodes=n, edge_weight=w), ei, w


# ------------------------------------------------------------------------------------ DConv: the dense definition
def dense_walks(ei, w, n):
    """M_O, M_I of the definition, densely (row = the node that receives): M_O = Wᵀ D_O^-1, M_I = W D_I^-1 with
    W[j, i] = the summed weight of the edges j -> i; 1 / 0 := 0."""
    A = np.zeros((n, n))
    np.add.at(A, (ei[0], ei[1]), np.ones(ei.shape[1]) if w is None else w)
    d_out, d_in = A.sum(axis=1), A.sum(axis=0)
    inv_out = np.divide(1.0, d_out, out=np.zeros(n), where=d_out != 0)
    inv_in = np.divide(1.0, d_in, out=np.zeros(n), where=d_in != 0)
    return A.T * inv_out[None, :], A * inv_in[None, :]


def dense_dconv(X, ei, w, W, b):
    """(out, the terms T[d][k] as matrices) of the diffusion convolution, from its definition."""
    n, K = X.shape[0], W.shape[1]
    out = np.zeros((n, W.shape[3])) + (0 if b is None else b)
    polys = []
    for d, M in enumerate(dense_walks(ei, w, n)):
        T = [np.eye(n), M]
        while len(T) < K:
            T.append(2 * M @ T[-1] - T[-2])
        T = T[:K]
        polys.append(T)
        for k in range(K):
            out += T[k] @ X @ W[d, k]
    return out, polys


@pytest.mark.parametrize("weighted, repeated", [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize("K", [1, 2, 3, 5])
@pytest.mark.parametrize("fin, fout", [(3, 2), (2, 4)])
def test_dconv_equals_its_dense_definition(weighted, repeated, K, fin, fout):
    g, ei, w = directed_graph(K + 10 * weighted, weighted=weighted, repeated=repeated)
    rng = np.random.default_rng(K)
    conv = _randomize(DConv(fin, fout, K, seed=1, dtype=F64), K)
    X, G = rng.standard_normal((N, fin)), rng.standard_normal((N, fout))
    out = conv.forward(X, g)
    conv.zero_grad()
    dX = conv.backward(G)
    W = conv.params["W"]
    want, T = dense_dconv(X, ei, w, W, conv.params["b"])
    assert relative_error(out, want) < 1e-12
    assert relative_error(dX, sum(T[d][k].T @ G @ W[d, k].T for d in range(2) for k in range(K))) < 1e-12
    dW = np.stack([np.stack([(T[d][k] @ X).T @ G for k in range(K)]) for d in range(2)])
    assert relative_error(conv.grads["W"], dW) < 1e-12
    assert relative_error(conv.grads["b"], G.sum(axis=0)) < 1e-12


def test_dconv_zero_degrees_give_coefficient_zero_not_nan():
    """Zero-weight edges leave nodes with a degree of 0 that still carry edges: their coefficient is 0."""
    g = cases._zero_degree_graph()
    ei, w = g.edge_index(), g.edge_weight
    M_O, M_I = dense_walks(ei, w, N)
    assert np.all(np.isfinite(M_O)) and np.all(np.isfinite(M_I))
    conv = _randomize(DConv(3, 2, 3, seed=1, dtype=F64), 3)
    X = np.random.default_rng(0).standard_normal((N, 3))
    out = conv.forward(X, g)
    assert np.all(np.isfinite(out))
    assert relative_error(out, dense_dconv(X, ei, w, conv.params["W"], conv.params["b"])[0]) < 1e-12
    # node 1 leaves only by weight-0 edges: its column of M_O is 0; node 5 is entered only so: its column of M_I
    assert not M_O[:, 1].any() and not M_I[:, 5].any()


def test_dconv_walks_are_random_walks():
    """Columns of M_O sum to 1 for a node with out-edges (each node splits its value among them), of M_I for a node
    with in-edges: the transposes of the paper's row-stochastic D_O^-1 W and D_I^-1 Wᵀ."""
    g, ei, w = directed_graph(3)
    M_O, M_I = dense_walks(ei, w, N)
    has_out, has_in = np.bincount(ei[0], minlength=N) > 0, np.bincount(ei[1], minlength=N) > 0
    np.testing.assert_allclose(M_O.sum(axis=0), has_out.astype(float), atol=1e-14)
    np.testing.assert_allclose(M_I.sum(axis=0), has_in.astype(float), atol=1e-14)
    # and DConv applies exactly these (K = 2, one weight at a time)
    conv = DConv(1, 1, 2, bias=False, dtype=F64)
    conv.params["W"][...] = 0
    conv.params["W"][0, 1] = 1
    np.testing.assert_allclose(conv.forward(np.eye(N)[:, [4]], g), M_O[:, [4]], atol=1e-14)


def test_dconv_blocks_equal_the_concatenation():
    g, _, _ = directed_graph(5)
    rng = np.random.default_rng(5)
    X, H, G = rng.standard_normal((N, 2)), rng.standard_normal((N, 3)), rng.standard_normal((N, 4))
    for fout in (4, 7):                                        # transform first, propagate first
        conv = _randomize(DConv(5, fout, 3, dtype=F64), fout)
        G = rng.standard_normal((N, fout))
        out = conv.forward(np.hstack([X, H]), g)
        conv.zero_grad()
        dXH = conv.backward(G)
        grads = {k: v.copy() for k, v in conv.grads.items()}
        out_b = conv.forward((X, H), g)
        conv.zero_grad()
        dX, dH = conv.backward(G)
        assert relative_error(out_b, out) < 1e-13
        assert relative_error(np.hstack([dX, dH]), dXH) < 1e-13
        for k in grads:
            assert relative_error(conv.grads[k], grads[k]) < 1e-13
        conv.needs_input_grad = (False, True)                  # the data block needs no gradient
        conv.forward((X, H), g)
        dX2, dH2 = conv.backward(G)
        assert dX2 is None and relative_error(dH2, dH) < 1e-14


def test_dconv_on_a_batch_equals_each_graph_alone():
    gs = [directed_graph(s)[0] for s in (1, 2)]
    batch = GraphBatch.from_graphs(gs)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2 * N, 3))
    conv = _randomize(DConv(3, 2, 3, dtype=F64), 0)
    out = conv.forward(X, batch)
    for k, g in enumerate(gs):
        np.testing.assert_allclose(out[k * N:(k + 1) * N], conv.forward(X[k * N:(k + 1) * N], g), rtol=1e-13,
                                   atol=1e-14)


# ------------------------------------------------------------------------------------ PyG Temporal's DConv, pinned down
QUIRKS = ("misaligned", "unweighted", "from_x", "inf")


def pyg_dconv_model(X, ei, w, W, b, quirks=QUIRKS):
    """PyG Temporal 0.56.2's DConv written with NumPy from its source, each quirk switchable (all off: the definition).

    misaligned: the backward walk's r-th reverse edge (v -> u, the r-th nonzero of Aᵀ in row-major order) takes
                1 / d_in(row[r]), row[r] the source of the r-th edge of edge_index, not 1 / d_in(v);
    unweighted: no message carries its edge weight (the weights enter the degrees only);
    from_x:     T_k = 2 M T_{k-1} - X for every k >= 2 (``Tx_0`` stays X);
    inf:        1 / 0 = inf (torch.reciprocal) instead of 0.
    """
    n, K = X.shape[0], W.shape[1]
    src, dst = ei
    w1 = np.ones(ei.shape[1]) if w is None else w
    A = np.zeros((n, n))
    np.add.at(A, (src, dst), w1)
    with np.errstate(divide="ignore"):
        inv = (lambda d: 1.0 / d) if "inf" in quirks else (lambda d: np.divide(1.0, d, out=np.zeros(n), where=d != 0))
        inv_out, inv_in = inv(A.sum(axis=1)), inv(A.sum(axis=0))
    rv, ru = np.nonzero(A.T)                                     # reverse edges v -> u, sorted by (v, u), de-duplicated
    if "misaligned" in quirks and rv.size != ei.shape[1]:
        raise RuntimeError(f"size mismatch: {ei.shape[1]} coefficients for {rv.size} reverse edges")
    c_out = inv_out[src] * (1.0 if "unweighted" in quirks else w1)
    c_in = (inv_in[src] if "misaligned" in quirks else inv_in[rv]) * (1.0 if "unweighted" in quirks else A[ru, rv])

    def walk_out(Z):
        out = np.zeros_like(Z)
        np.add.at(out, dst, c_out[:, None] * Z[src])
        return out

    def walk_in(Z):
        out = np.zeros_like(Z)
        np.add.at(out, ru, c_in[:, None] * Z[rv])
        return out
    out = np.zeros((n, W.shape[3])) + b
    with np.errstate(invalid="ignore", over="ignore"):
        for d, walk in enumerate((walk_out, walk_in)):
            T = [X, walk(X)]
            while len(T) < K:
                T.append(2 * walk(T[-1]) - (X if "from_x" in quirks else T[-2]))
            for k in range(K):
                out = out + T[k] @ W[d, k]
    return out


@pytest.fixture
def torch_float64():
    """torch's default dtype float64 for the test: PyG Temporal's DConv builds its adjacency (``to_dense_adj`` without
    weights) and its degree vectors (``torch.ones``) in the default dtype, so under float32 its 1 / d are rounded to
    float32 (a relative 1e-8 off) and a float64 weighted graph fails in ``matmul`` (quirk (f), dconv.py)."""
    import torch
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _pyg_dconv(pyg_temporal, fin, fout, K, seed):
    import torch
    conv = pyg_temporal["DConv"](fin, fout, K).double()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        conv.bias.copy_(torch.from_numpy(rng.standard_normal(fout)))
    return conv


def _run_pyg_dconv(conv, X, ei, w):
    import torch
    with torch.no_grad():
        return conv(torch.from_numpy(X), torch.from_numpy(ei), None if w is None else torch.from_numpy(w)).numpy()


@pytest.mark.oracle
def test_pyg_temporal_dconv_is_the_dense_model_of_its_quirks(pyg_temporal, torch_float64):
    """The docstring's list of quirks is complete and exact: PyG Temporal's DConv equals the model with all quirks
    on random directed weighted graphs (NaN where it gives NaN), the model without quirks equals our DConv, and each
    quirk alone changes the result on a graph where only it is active."""
    rng = np.random.default_rng(0)
    for seed in range(4):
        K = 2 + seed                                                       # K = 2 .. 5
        _, ei, w = directed_graph(seed, weighted=seed % 2 == 1, repeated=False)
        ei = ei[:, rng.permutation(ei.shape[1])]
        conv = _pyg_dconv(pyg_temporal, 3, 2, K, seed)
        W, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
        X = rng.standard_normal((N, 3))
        theirs = _run_pyg_dconv(conv, X, ei, w)
        model = pyg_dconv_model(X, ei, w, W, b)
        assert np.array_equal(np.isfinite(theirs), np.isfinite(model))
        ok = np.isfinite(theirs)
        assert relative_error(theirs[ok], model[ok]) < TOL
        ours = DConv(3, 2, K, dtype=F64)
        ours.params["W"][...], ours.params["b"][...] = W, b
        g = Graph.from_edge_index(ei, num_nodes=N, edge_weight=w)
        assert relative_error(ours.forward(X, g), pyg_dconv_model(X, ei, w, W, b, quirks=())) < 1e-12

    def only(quirks, g_ei, w, K, X):
        """PyG Temporal's output, checked to be the model with just ``quirks``, and whether it differs from ours."""
        conv = _pyg_dconv(pyg_temporal, X.shape[1], 2, K, 1)
        W, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
        theirs = _run_pyg_dconv(conv, X, g_ei, w)
        with np.errstate(invalid="ignore"):
            assert np.allclose(theirs, pyg_dconv_model(X, g_ei, w, W, b, quirks=quirks), rtol=1e-12, atol=1e-12,
                               equal_nan=True), quirks
            return theirs, not np.allclose(theirs, pyg_dconv_model(X, g_ei, w, W, b, quirks=()), rtol=1e-6)

    _, ei = symmetric_graph(1)
    X = rng.standard_normal((N, 3))
    assert only(("misaligned",), ei[:, rng.permutation(ei.shape[1])], None, 2, X)[1]   # (a) unsorted edge_index
    assert only(("unweighted",), ei, rng.uniform(0.5, 2.0, ei.shape[1]), 2, X)[1]     # (b) weights
    assert only(("from_x",), ei, None, 4, X)[1]                                      # (c) K = 4
    assert not only((), ei, None, 3, X)[1]                                           # ... but not K = 3
    # (e) a directed path: (a) hands the reverse edge 1 -> 0 the 1 / d_in of node 0, which has no in-edge: inf
    theirs, differs = only(("misaligned", "inf"), np.array([[0, 1, 2, 4], [1, 2, 3, 2]]), None, 2, X)
    assert differs and not np.all(np.isfinite(theirs))
    with pytest.raises(RuntimeError):                                                # (d) a repeated edge
        _run_pyg_dconv(_pyg_dconv(pyg_temporal, 3, 2, 2, 0), X, np.array([[0, 0, 1], [1, 1, 0]]), None)


# ------------------------------------------------------------------------------------ the oracles
@pytest.mark.oracle
@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("fin, fout", [(3, 2), (2, 4)])
def test_dconv_equals_pyg_temporal_where_the_definitions_agree(K, fin, fout, pyg_temporal, torch_float64):
    import torch
    g, ei = symmetric_graph(K)
    theirs = _pyg_dconv(pyg_temporal, fin, fout, K, K)
    ours = DConv(fin, fout, K, dtype=F64)
    ours.params["W"][...] = theirs.weight.detach().numpy()                # weight (2, K, F_in, F_out) = W
    ours.params["b"][...] = theirs.bias.detach().numpy()                  # bias = b
    rng = np.random.default_rng(K)
    X, G = rng.standard_normal((N, fin)), rng.standard_normal((N, fout))
    out = ours.forward(X, g)
    ours.zero_grad()
    dX = ours.backward(G)
    xt = torch.tensor(X, requires_grad=True)
    y = theirs(xt, torch.from_numpy(ei), None)
    (y * torch.from_numpy(G)).sum().backward()
    assert relative_error(out, y.detach().numpy()) < TOL
    assert relative_error(dX, xt.grad.numpy()) < TOL
    assert relative_error(ours.grads["W"], theirs.weight.grad.numpy()) < TOL
    assert relative_error(ours.grads["b"], theirs.bias.grad.numpy()) < TOL


@pytest.mark.oracle
@pytest.mark.parametrize("K", [1, 2, 3])
def test_dcrnn_equals_pyg_temporal(K, pyg_temporal, torch_float64):
    import torch
    g, ei = symmetric_graph(10 + K)
    ours = _randomize(DCRNN(3, 4, K=K, seed=K, dtype=F64), K)
    theirs = pyg_temporal["DCRNN"](3, 4, K).double()
    with torch.no_grad():
        for gate in "zrh":
            o, t = getattr(ours, f"conv_x_{gate}"), getattr(theirs, f"conv_x_{gate}")
            t.weight.copy_(torch.from_numpy(o.params["W"]))               # (2, K, 3 + 4, 4): rows 0-2 X, 3-6 H
            t.bias.copy_(torch.from_numpy(o.params["b"]))
    rng = np.random.default_rng(K)
    xs, H0 = _seq(K, T=4), rng.standard_normal((N, 4))
    Gs = [rng.standard_normal((N, 4)) for _ in xs]

    rnn = Recurrent(ours)
    outs = rnn.forward(xs, g, H0)
    dxs = rnn.backward(Gs)

    eit = torch.from_numpy(ei)
    xt = [torch.tensor(x, requires_grad=True) for x in xs]
    H = H0t = torch.tensor(H0, requires_grad=True)
    loss = 0
    for t, x in enumerate(xt):
        H = theirs(x, eit, None, H)
        assert relative_error(outs[t], H.detach().numpy()) < TOL, t
        loss = loss + (H * torch.from_numpy(Gs[t])).sum()
    loss.backward()
    for t in range(len(xs)):
        assert relative_error(dxs[t], xt[t].grad.numpy()) < TOL, t
    assert relative_error(rnn.state_grad, H0t.grad.numpy()) < TOL
    for gate in "zrh":
        o, t = getattr(ours, f"conv_x_{gate}"), getattr(theirs, f"conv_x_{gate}")
        assert relative_error(o.grads["W"], t.weight.grad.numpy()) < TOL, gate
        assert relative_error(o.grads["b"], t.bias.grad.numpy()) < TOL, gate


LSTM_CONVS = [f"conv_{s}_{gate}" for gate in "ifco" for s in "xh"]
LSTM_OWN = ["w_c_i", "w_c_f", "w_c_o", "b_i", "b_f", "b_c", "b_o"]


@pytest.mark.oracle
@pytest.mark.parametrize("K, normalization, weighted", [(1, "sym", False), (2, "sym", True), (3, "rw", False),
                                                        (3, None, True)])
def test_gconv_lstm_equals_pyg_temporal(K, normalization, weighted, pyg_temporal):
    """Four steps carrying (H, C), a loss on every H_t and every C_t, the cell's own backward step by step."""
    import torch
    g0 = random_test_graph(3)
    w = np.random.default_rng(0).uniform(0.5, 2.0, g0.num_edges) if weighted else None
    g = Graph.from_csr(g0.indptr, g0.indices, w, num_src=g0.num_src)
    lam = 3.0 if normalization is None else None
    ours = _randomize(GConvLSTM(3, 4, K=K, normalization=normalization, seed=K, dtype=F64), K)
    theirs = pyg_temporal["GConvLSTM"](3, 4, K, normalization=normalization).double()
    with torch.no_grad():
        for name in LSTM_CONVS:
            o, t = getattr(ours, name), getattr(theirs, name)
            for k in range(K):
                t.lins[k].weight.copy_(torch.from_numpy(o.params["W"][k].T))     # lins[k].weight = W_kᵀ
            t.bias.copy_(torch.from_numpy(o.params["b"]))
        for name in LSTM_OWN:                                                     # (1, out) both sides
            getattr(theirs, name).copy_(torch.from_numpy(ours.params[name]))
    rng = np.random.default_rng(K)
    xs, H0, C0 = _seq(K, T=4), rng.standard_normal((N, 4)), rng.standard_normal((N, 4))
    GH = [rng.standard_normal((N, 4)) for _ in xs]
    GC = [rng.standard_normal((N, 4)) for _ in xs]

    H, C, outs = H0, C0, []
    for x in xs:
        H, C = ours.forward(x, g, H, C, lambda_max=lam)
        outs.append((H, C))
    dH, dC, dxs = np.zeros((N, 4)), np.zeros((N, 4)), [None] * len(xs)
    for t in reversed(range(len(xs))):
        dxs[t], dH, dC = ours.backward(dH + GH[t], dC + GC[t])

    ei = torch.from_numpy(g.edge_index())
    ew = None if w is None else torch.from_numpy(np.array(g.edge_weight))
    lam_t = None if lam is None else torch.tensor(lam, dtype=torch.float64)
    xt = [torch.tensor(x, requires_grad=True) for x in xs]
    Ht = H0t = torch.tensor(H0, requires_grad=True)
    Ct = C0t = torch.tensor(C0, requires_grad=True)
    loss = 0
    for t, x in enumerate(xt):
        Ht, Ct = theirs(x, ei, ew, Ht, Ct, lambda_max=lam_t)
        assert relative_error(outs[t][0], Ht.detach().numpy()) < TOL, t
        assert relative_error(outs[t][1], Ct.detach().numpy()) < TOL, t
        loss = loss + (Ht * torch.from_numpy(GH[t])).sum() + (Ct * torch.from_numpy(GC[t])).sum()
    loss.backward()
    for t in range(len(xs)):
        assert relative_error(dxs[t], xt[t].grad.numpy()) < TOL, t
    assert relative_error(dH, H0t.grad.numpy()) < TOL
    assert relative_error(dC, C0t.grad.numpy()) < TOL
    for name in LSTM_CONVS:
        o, t = getattr(ours, name), getattr(theirs, name)
        for k in range(K):
            assert relative_error(o.grads["W"][k], t.lins[k].weight.grad.numpy().T) < TOL, (name, k)
        assert relative_error(o.grads["b"], t.bias.grad.numpy()) < TOL, name
    for name in LSTM_OWN:
        assert relative_error(ours.grads[name], getattr(theirs, name).grad.numpy()) < TOL, name


# ------------------------------------------------------------------------------------ the cells' contract
def _lstm(K=2, seed=0, dtype=F64):
    return GConvLSTM(3, 4, K=K, seed=seed, dtype=dtype)


def _dcrnn(K=2, seed=0, dtype=F64):
    return DCRNN(3, 4, K=K, seed=seed, dtype=dtype)


def test_lstm_state_is_passed_on_and_the_output_peephole_sees_the_new_cell_state():
    g, x = random_test_graph(0), _seq(0)[0]
    cell = _randomize(_lstm(), 1)
    H1, C1 = cell.forward(x, g)
    H2, C2 = cell.forward(x, g, H1, C1)
    assert not np.allclose(C2, C1)
    # O is computed from C' (not C): changing w_c_o moves H' but not C'
    cell.params["w_c_o"] += 1.0
    H2b, C2b = cell.forward(x, g, H1, C1)
    np.testing.assert_array_equal(C2b, C2)
    assert not np.allclose(H2b, H2)


@pytest.mark.parametrize("make", [_lstm, _dcrnn], ids=["GConvLSTM", "DCRNN"])
def test_cell_frames_follow_training_and_eval(make):
    g, xs = random_test_graph(0), _seq(6)
    cell = make()
    state = ()
    for x in xs:
        out = cell.forward(x, g, *state)
        state = out if isinstance(out, tuple) else (out,)
    assert cell.saved_steps == 4
    cell.eval()
    for x in xs:
        out = cell.forward(x, g, *state)
        state = out if isinstance(out, tuple) else (out,)
        assert cell.saved_steps == 1                  # inference holds one step, not T
    cell.reset()
    with pytest.raises(BackwardBeforeForward):
        cell.backward(*(np.zeros((N, 4)) for _ in range(cell.num_states)))


@pytest.mark.parametrize("make", [_lstm, _dcrnn], ids=["GConvLSTM", "DCRNN"])
def test_needs_input_grad_false_skips_dx_and_keeps_the_rest(make):
    g, xs = random_test_graph(0), _seq(7)
    G = [np.random.default_rng(1).standard_normal((N, 4))] * 4
    results = []
    for needs in (True, False):
        cell = _randomize(make(K=3, seed=2), 2)
        cell.needs_input_grad = needs
        rnn = Recurrent(cell)
        rnn.forward(xs, g)
        dxs = rnn.backward(G)
        results.append(({n: gr.copy() for n, _, gr in rnn.named_parameters()}, dxs, rnn.state_grad))
    (p1, dx1, s1), (p2, dx2, s2) = results
    assert all(d is None for d in dx2) and all(d is not None for d in dx1)
    for n in p1:
        np.testing.assert_allclose(p1[n], p2[n], rtol=1e-13, atol=1e-15)
    s1, s2 = (s if isinstance(s, tuple) else (s,) for s in (s1, s2))
    for a, b in zip(s1, s2):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("make", [_lstm, _dcrnn], ids=["GConvLSTM", "DCRNN"])
def test_same_seed_same_bits_and_float32_close_to_float64(make):
    g, xs = random_test_graph(0), _seq(3)
    a, b = make(seed=5), make(seed=5)
    for (n1, p1, _), (n2, p2, _) in zip(a.named_parameters(), b.named_parameters()):
        assert n1 == n2 and np.array_equal(p1, p2)
    outs = [Recurrent(c).forward(xs, g)[-1] for c in (a, b)]
    np.testing.assert_array_equal(outs[0], outs[1])
    c32 = make(seed=5, dtype=np.float32)
    out32 = Recurrent(c32).forward([x.astype(np.float32) for x in xs], g)[-1]
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, outs[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name, bad, err", [
    ("H", np.zeros((N, 5)), ValueError), ("H", np.zeros((7, 4)), ValueError),
    ("H", np.zeros((N, 4), np.float32), TypeError), ("C", np.zeros((N, 5)), ValueError),
    ("C", np.zeros((7, 4)), ValueError), ("C", np.zeros((N, 4), np.float32), TypeError),
    ("C", np.full((N, 4), np.nan), ValueError), ("H", np.full((N, 4), np.inf), ValueError),
])
def test_lstm_bad_state_is_named(name, bad, err):
    states = {"H": np.zeros((N, 4)), "C": np.zeros((N, 4)), name: bad}
    with pytest.raises(err, match=rf"\b{name}\b"):
        _lstm().forward(_seq(0)[0], random_test_graph(0), states["H"], states["C"])


@pytest.mark.parametrize("bad, err, match", [
    (np.zeros((N, 5)), ValueError, "H"), (np.zeros((7, 4)), ValueError, "H"),
    (np.zeros((N, 4), np.float32), TypeError, "H"), (np.full((N, 4), np.nan), ValueError, "H"),
])
def test_dcrnn_bad_state_is_named(bad, err, match):
    with pytest.raises(err, match=match):
        _dcrnn().forward(_seq(0)[0], random_test_graph(0), bad)


@pytest.mark.parametrize("make", [_lstm, _dcrnn], ids=["GConvLSTM", "DCRNN"])
def test_bad_input_is_named(make):
    g = random_test_graph(0)
    with pytest.raises(ValueError, match="x"):
        make().forward(np.zeros((N, 2)), g)
    with pytest.raises(TypeError, match="x"):
        make().forward(np.zeros((N, 3), np.float32), g)
    xs = _seq(0)
    xs[2][3, 1] = np.nan
    with pytest.raises(ValueError, match=r"xs\[2\]"):
        Recurrent(make()).forward(xs, g)
    with pytest.raises(ValueError, match="square"):
        make().forward(np.zeros((5, 3)), Graph.from_csr([0, 1, 1], [4], num_src=5))
    with pytest.raises(ValueError, match="2 state|1 state"):
        Recurrent(make()).forward(_seq(0), g, *(np.zeros((N, 4)) for _ in range(3)))


def test_lstm_bad_upstream_gradients_are_named():
    cell = _lstm()
    cell.forward(_seq(0)[0], random_test_graph(0))
    with pytest.raises(ValueError, match="dC"):
        cell.backward(np.zeros((N, 4)), np.zeros((N, 3)))
    cell.forward(_seq(0)[0], random_test_graph(0))
    with pytest.raises(TypeError, match="dH"):
        cell.backward(np.zeros((N, 4), np.float32), np.zeros((N, 4)))


def test_dconv_bad_input_is_named():
    g = random_test_graph(0)
    conv = DConv(5, 2, 2, dtype=F64)
    with pytest.raises(ValueError, match="in_channels=5"):
        conv.forward((np.zeros((N, 2)), np.zeros((N, 2))), g)
    with pytest.raises(ValueError, match=r"x\[1\]"):
        conv.forward((np.zeros((N, 2)), np.zeros((N - 1, 3))), g)
    with pytest.raises(TypeError, match=r"x\[0\]"):
        conv.forward((np.zeros((N, 2), np.float32), np.zeros((N, 3))), g)
    with pytest.raises(ValueError, match="non-empty"):
        conv.forward((), g)
    with pytest.raises(ValueError, match="square"):
        conv.forward(np.zeros((5, 5)), Graph.from_csr([0, 1, 1], [4], num_src=5))
    bad = np.zeros((N, 5))
    bad[2, 3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        conv.forward(bad, g)
    with pytest.raises(ValueError, match="K"):
        DConv(5, 2, 0)


def test_lstm_ops_name_a_bad_row_vector():
    A = np.zeros((N, 4))
    with pytest.raises(ValueError, match=r"ops.lstm_gate: w must have shape \(4,\) or \(1, 4\)"):
        ops.lstm_gate(A, np.zeros((2, 4)), A, np.zeros(4))
    with pytest.raises(TypeError, match="b_o"):
        ops.lstm_state(A, A, A, np.zeros(4), A, A, np.zeros(4), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="G_C"):
        ops.lstm_state_backward(A, np.zeros((N, 3)), A, A, A, A, A, A, np.zeros(4), np.zeros(4), np.zeros(4))


# ------------------------------------------------------------------------------------ the device
def _device_or_skip(monkeypatch):
    """gnn_scratch.device, after a skip without a GPU or the simulator; small launch grids under the simulator
    (``cuda_support.small_grids``: simulated threads are Python threads, and a launch costs ~0.1 s there)."""
    pytest.importorskip("numba.cuda")
    from gnn_scratch import device
    from gnn_scratch.kernels import cuda as ck
    from gnn_scratch.kernels import dense_cuda as dc
    try:
        ck.require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    if ck._simulator_enabled():
        monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)
        monkeypatch.setattr(ck, "_MAX_BLOCKS", 1)
        monkeypatch.setattr(ck, "_BLOCK_THREADS", 32)
    return device


def _host(grads):
    return {k: np.array(to_host(v)) for k, v in grads.items()}


def test_dconv_on_the_device_equals_the_cpu(monkeypatch):
    """The walks cached on a device graph (``Graph.derived``), both walks' products, the weight's row-block views
    (transform first with DCRNN's two blocks: each launch costs ~0.1 s under the simulator, so one order only)."""
    fout, blocks = 2, True
    device = _device_or_skip(monkeypatch)
    g, _, _ = directed_graph(4, weighted=True)
    rng = np.random.default_rng(fout)
    X, H, G = rng.standard_normal((N, 2)), rng.standard_normal((N, 3)), rng.standard_normal((N, fout))
    conv = _randomize(DConv(5, fout, 2, dtype=F64), fout)
    x_host = (X, H) if blocks else np.hstack([X, H])
    want = conv.forward(x_host, g)
    conv.zero_grad()
    dwant = conv.backward(G)
    gwant = _host(conv.grads)
    conv.to("cuda")
    x_dev = tuple(device.to_device(a) for a in x_host) if blocks else device.to_device(x_host)
    got = conv.forward(x_dev, g.to("cuda"))
    conv.zero_grad()
    dgot = conv.backward(device.to_device(G))
    np.testing.assert_allclose(to_host(got), want, rtol=1e-10, atol=1e-12)
    for a, b in zip(dgot if blocks else (dgot,), dwant if blocks else (dwant,)):
        np.testing.assert_allclose(to_host(a), b, rtol=1e-10, atol=1e-12)
    for k, v in _host(conv.grads).items():
        np.testing.assert_allclose(v, gwant[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_gconv_lstm_on_the_device_equals_the_cpu(monkeypatch):
    """The LSTM ops and the peepholes' (1, F) gradients through reshaped views, one step from given (H, C).
    (K = 1: ChebConv's device path is tested in test_cheb_conv.py; here every launch is a cell's own.)"""
    device = _device_or_skip(monkeypatch)
    g = random_test_graph(4)
    xs = _seq(3, T=1)
    Gs = [np.random.default_rng(0).standard_normal((N, 2))]
    H0, C0 = (np.random.default_rng(k).standard_normal((N, 2)) for k in (1, 2))

    def run(cell, xs, g, Gs, *states):
        rnn = Recurrent(cell)
        outs = rnn.forward(xs, g, *states)
        rnn.zero_grad()
        dxs = rnn.backward(Gs)
        return [to_host(a) for a in (*outs, *rnn.final_state, *dxs, *rnn.state_grad)], _host(
            {n: gr for n, _, gr in rnn.named_parameters()})
    cell = _randomize(GConvLSTM(3, 2, K=1, seed=1, dtype=F64), 2)
    want = run(cell, xs, g, Gs, H0, C0)
    cell.to("cuda")
    got = run(cell, [device.to_device(x) for x in xs], g.to("cuda"), [device.to_device(x) for x in Gs],
              device.to_device(H0), device.to_device(C0))
    for a, b in zip(got[0], want[0]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for k in want[1]:
        np.testing.assert_allclose(got[1][k], want[1][k], rtol=1e-10, atol=1e-12, err_msg=k)


# ------------------------------------------------------------------------------------ the derivations' snippets run
@pytest.mark.parametrize("name", ["gconv_lstm.md", "dcrnn.md"])
def test_derivation_snippets_run(name):
    text = (Path(__file__).resolve().parents[1] / "derivations" / name).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{name} has no Python block"
    namespace = {"__name__": f"derivations.{name}"}
    for code in blocks:
        exec(compile(code, name, "exec"), namespace)
