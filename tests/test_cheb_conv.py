"""ChebConv (Defferrard et al., 2016) and FirstOrderConv (Kipf & Welling's first-order models): finite
differences, an independent dense definition, PyG, batches, the device, errors."""
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch.device import to_host
from gnn_scratch.gradcheck import relative_error
from gnn_scratch.gradcheck import spectral as cases
from gnn_scratch.graph import Graph, GraphBatch
from gnn_scratch.nn import BackwardBeforeForward, GCNConv
from gnn_scratch.nn.conv.cheb_conv import (ChebConv, FirstOrderConv, default_lambda_max, estimate_lambda_max,
                                           laplacian, scaled_laplacian)

NORMS = ("sym", "rw", None)
F64 = np.float64


def random_graph(seed, n=12, num_edges=30, weighted=False, undirected=False):
    """A random directed graph with an isolated node (the last), self-loops 0 -> 0 and 3 -> 3 (twice) and the
    edge 1 -> 2 three times; (Graph, edge_index (2, E) in input order, weights or None)."""
    rng = np.random.default_rng(seed)
    src = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 1, 1, 1, 3, 3]])
    dst = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 2, 2, 2, 3, 3]])
    ei = np.stack([src, dst])
    if undirected:
        ei = np.concatenate([ei, ei[::-1]], axis=1)
    w = rng.uniform(0.5, 2.0, ei.shape[1]) if weighted else None
    if undirected and weighted:
        w[ei.shape[1] // 2:] = w[:ei.shape[1] // 2]
    return Graph.from_edge_index(ei, n, w), ei, w


def run(conv, x, g, G, **kw):
    """(out, dx, {param: grad}) of one forward and backward with upstream gradient G."""
    out = conv.forward(x, g, **kw)
    conv.zero_grad()
    dx = conv.backward(G)
    return out, dx, {k: np.array(to_host(v)) for k, v in conv.grads.items()}


def dense_laplacian(ei, w, n, normalization):
    """PyG's get_laplacian written densely from its definition: L[i, j] for the edge j -> i (row = destination)."""
    w = np.ones(ei.shape[1]) if w is None else w
    A = np.zeros((n, n))
    for (j, i), wj in zip(ei.T, w):
        if i != j:                                  # self-loops removed; repeated edges summed
            A[i, j] += wj
    deg = A.sum(axis=0)                             # out-degree: column sums (edge j -> i sits in column j)
    inv = np.divide(1.0, deg, out=np.zeros(n), where=deg > 0)
    if normalization is None:
        return np.diag(deg) - A
    if normalization == "sym":
        return np.eye(n) - np.sqrt(inv)[:, None] * A * np.sqrt(inv)[None, :]
    return np.eye(n) - A * inv[None, :]


def dense_cheb(conv, x, L_tilde):
    T = [x, L_tilde @ x]
    for _ in range(2, conv.K):
        T.append(2 * L_tilde @ T[-1] - T[-2])
    return sum(T[k] @ conv.params["W"][k] for k in range(conv.K)) + conv.params["b"]


# --------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("normalization", NORMS)
def test_gradcheck_rows_pass(normalization, backend):
    rows = cases.cheb_rows(normalization)
    assert len(rows) == 2 * 4 * 2 * 2 * 3             # 2 graphs x K 1..4 x 2 widths x 2 lambda_max x (W, b, x)
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


def test_first_order_gradcheck_rows_pass(backend):
    rows = cases.first_order()
    assert len(rows) == 2 * 2 * (4 + 3 + 3)            # 2 graphs x 2 widths x (first_order: W_0 W_1 b x; others: W b x)
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


# --------------------------------------------------------------------------- the Laplacian and lambda_max
@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("weighted", [False, True])
def test_laplacian_follows_pygs_definition(normalization, weighted):
    g, ei, w = random_graph(0, weighted=weighted)
    gl, val = laplacian(g, normalization)
    np.testing.assert_allclose(gl.to_scipy(val).toarray(), dense_laplacian(ei, w, 12, normalization),
                               rtol=1e-14, atol=1e-15)
    loops = gl.indices == gl.dst_of_edge()
    assert loops.sum() == 12 and np.array_equal(loops, gl.edge_id == -1)      # the old loops gone, one per node


@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("lam", [None, 1.7])
@pytest.mark.parametrize("fin, fout", [(5, 3), (3, 5)])
def test_chebconv_equals_its_dense_definition(normalization, lam, fin, fout):
    g, ei, w = random_graph(1, weighted=True)
    L = dense_laplacian(ei, w, 12, normalization)
    lam_used = 2 * L.max() if lam is None else lam            # PyG 2.8: 2 max L[i, j] when not given
    assert default_lambda_max(g, normalization) == pytest.approx(2 * L.max(), rel=1e-15)
    for K in (1, 2, 3, 4):
        conv = ChebConv(fin, fout, K, normalization=normalization, seed=K, dtype=F64)
        conv.params["b"][:] = np.arange(fout)
        x = np.random.default_rng(2).standard_normal((12, fin))
        want = dense_cheb(conv, x, 2 * L / lam_used - np.eye(12))
        np.testing.assert_allclose(conv.forward(x, g, lambda_max=lam), want, rtol=1e-12, atol=1e-12)


def test_default_lambda_max_is_2_for_sym_and_rw_and_twice_the_max_degree_for_none():
    g, ei, w = random_graph(2, weighted=True)
    assert default_lambda_max(g, "sym") == 2.0 and default_lambda_max(g, "rw") == 2.0
    deg = dense_laplacian(ei, w, 12, None).diagonal()
    assert default_lambda_max(g, None) == pytest.approx(2 * deg.max(), rel=1e-15)
    assert scaled_laplacian(g, None).lambda_max == pytest.approx(2 * deg.max(), rel=1e-15)
    assert scaled_laplacian(g, "sym", 3).lambda_max == 3.0


@pytest.mark.parametrize("normalization", NORMS)
def test_estimate_lambda_max_is_the_largest_eigenvalue(normalization):
    for n, undirected in ((12, True), (12, False), (80, True), (80, False)):   # dense below 64 nodes, ARPACK above
        g, ei, w = random_graph(3, n=n, num_edges=3 * n, weighted=True, undirected=undirected)
        ev = np.linalg.eigvals(dense_laplacian(ei, w, n, normalization))
        want = ev[np.argmax(np.abs(ev))].real
        assert estimate_lambda_max(g, normalization) == pytest.approx(want, rel=1e-8), (n, undirected)
        assert estimate_lambda_max(g, normalization) == estimate_lambda_max(g, normalization)   # repeatable


def test_sym_laplacian_of_an_undirected_graph_is_symmetric_and_of_a_directed_one_not():
    for undirected in (True, False):
        g, _, _ = random_graph(4, weighted=True, undirected=undirected)
        lap = scaled_laplacian(g, "sym", dtype=F64)
        Lt = lap.graph.to_scipy(lap.val).toarray()
        assert np.allclose(Lt, Lt.T, rtol=0, atol=1e-15) == undirected


@pytest.mark.parametrize("fin, fout", [(5, 3), (3, 5)])
def test_backward_uses_the_transpose_on_a_directed_graph(fin, fout):
    """dX = Σ_k T_k(L~ᵀ) G W_kᵀ: on a directed graph L~ᵀ != L~, and using L~ would be wrong."""
    g, ei, w = random_graph(5, weighted=True)
    Lt = 2 * dense_laplacian(ei, w, 12, "sym") / 2.0 - np.eye(12)
    assert not np.allclose(Lt, Lt.T)
    conv = ChebConv(fin, fout, 3, seed=1, dtype=F64)
    rng = np.random.default_rng(6)
    x, G = rng.standard_normal((12, fin)), rng.standard_normal((12, fout))
    _, dx, grads = run(conv, x, g, G)
    T_of = lambda M: [np.eye(12), M, 2 * M @ M - np.eye(12)]                      # noqa: E731
    want = sum(Tk @ G @ conv.params["W"][k].T for k, Tk in enumerate(T_of(Lt.T)))
    wrong = sum(Tk @ G @ conv.params["W"][k].T for k, Tk in enumerate(T_of(Lt)))
    np.testing.assert_allclose(dx, want, rtol=1e-12, atol=1e-12)
    assert relative_error(dx, wrong) > 1e-3
    for k, Tk in enumerate(T_of(Lt)):
        np.testing.assert_allclose(grads["W"][k], (Tk @ x).T @ G, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- PyG
@pytest.mark.oracle
@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("lam", [None, 3.3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fin, fout, sparse_x", [(5, 3, False), (3, 5, False), (5, 3, True)])
def test_chebconv_equals_torch_geometric(normalization, K, lam, weighted, fin, fout, sparse_x):
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    for seed in range(3):
        g, ei, w = random_graph(seed, weighted=weighted)
        rng = np.random.default_rng(100 + seed)
        x, G = rng.standard_normal((12, fin)), rng.standard_normal((12, fout))
        if sparse_x:
            x[rng.random(x.shape) < 0.5] = 0
        conv = ChebConv(fin, fout, K, normalization=normalization, seed=seed, dtype=F64)
        conv.params["b"][:] = rng.standard_normal(fout)
        out, dx, grads = run(conv, sp.csr_matrix(x) if sparse_x else x, g, G, lambda_max=lam)

        ref = pyg.ChebConv(fin, fout, K, normalization=normalization).double()
        with torch.no_grad():
            for k in range(K):
                ref.lins[k].weight.copy_(torch.from_numpy(conv.params["W"][k].T))
            ref.bias.copy_(torch.from_numpy(conv.params["b"]))
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = ref(xt, torch.from_numpy(ei), None if w is None else torch.from_numpy(w), lambda_max=lam)
        yt.backward(torch.from_numpy(G))
        checks = [("out", out, yt.detach().numpy()), ("b", grads["b"], ref.bias.grad.numpy())]
        checks += [(f"W[{k}]", grads["W"][k], ref.lins[k].weight.grad.numpy().T) for k in range(K)]
        if sparse_x:
            assert dx is None                       # features are data: no input gradient
        else:
            checks.append(("x", dx, xt.grad.numpy()))
        for name, ours, theirs in checks:
            assert relative_error(ours, theirs) <= 1e-10, (seed, name, relative_error(ours, theirs))


@pytest.mark.oracle
@pytest.mark.parametrize("normalization", NORMS)
def test_estimate_lambda_max_equals_pygs_transform(normalization):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Data
    from torch_geometric.transforms import LaplacianLambdaMax
    for n, undirected in ((12, False), (80, True), (80, False)):
        g, ei, w = random_graph(7, n=n, num_edges=3 * n, weighted=True, undirected=undirected)
        data = Data(edge_index=torch.from_numpy(ei), edge_attr=torch.from_numpy(w), num_nodes=n)
        theirs = LaplacianLambdaMax(normalization, is_undirected=undirected)(data).lambda_max
        assert estimate_lambda_max(g, normalization) == pytest.approx(theirs, rel=1e-8)


# --------------------------------------------------------------------------- the layer's contract
@pytest.mark.parametrize("fin, fout", [(5, 3), (3, 5)])
def test_needs_input_grad_false_skips_dx_and_gradients_accumulate(fin, fout):
    g, _, _ = random_graph(8, weighted=True)
    rng = np.random.default_rng(9)
    x, G = rng.standard_normal((12, fin)), rng.standard_normal((12, fout))
    conv = ChebConv(fin, fout, 4, normalization="rw", seed=1, dtype=F64)
    with pytest.raises(BackwardBeforeForward):
        conv.backward(G)
    _, dx, once = run(conv, x, g, G)
    conv.backward(G)
    for k in once:
        np.testing.assert_allclose(conv.grads[k], 2 * once[k], rtol=1e-14)
    conv.needs_input_grad = False
    _, dx_none, grads = run(conv, x, g, G)
    assert dx.shape == x.shape and dx_none is None
    for k in once:
        np.testing.assert_array_equal(grads[k], once[k])


def test_both_orders_agree():
    g, _, _ = random_graph(9, weighted=True)
    rng = np.random.default_rng(10)
    x, G = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
    conv = ChebConv(4, 4, 4, normalization=None, seed=1, dtype=F64)            # F_out <= F_in: transform first
    a = run(conv, x, g, G)
    b = run(conv, sp.csr_matrix(x), g, G)                                        # sparse: transform first too
    conv.out_channels = 5                                                        # fool the rule: propagate first
    c = run(conv, x, g, G)
    np.testing.assert_allclose(b[0], a[0], rtol=1e-12)
    np.testing.assert_allclose(c[0], a[0], rtol=1e-12)
    np.testing.assert_allclose(c[1], a[1], rtol=1e-12)
    np.testing.assert_allclose(c[2]["W"], a[2]["W"], rtol=1e-12)


def test_chebconv_on_a_batch_equals_each_graph_alone():
    gs = [random_graph(s, n=n, num_edges=2 * n, weighted=True)[0] for s, n in ((0, 7), (1, 5), (2, 9))]
    b = GraphBatch.from_graphs(gs)
    rng = np.random.default_rng(11)
    x, G = rng.standard_normal((b.num_nodes, 4)), rng.standard_normal((b.num_nodes, 3))
    conv = ChebConv(4, 3, 3, seed=1, dtype=F64)
    conv.params["b"][:] = rng.standard_normal(3)
    out, dx, grads = run(conv, x, b, G)                                           # "sym": lambda_max 2 for each
    parts = [run(conv, xk, g, Gk) for g, xk, Gk in zip(gs, b.unbatch(x), b.unbatch(G))]
    np.testing.assert_allclose(out, np.concatenate([p[0] for p in parts]), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, np.concatenate([p[1] for p in parts]), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grads["W"], sum(p[2]["W"] for p in parts), rtol=1e-12, atol=1e-13)


def test_errors_name_the_argument():
    g, _, _ = random_graph(0)
    with pytest.raises(ValueError, match=r"^K must be a positive int, got 0$"):
        ChebConv(3, 2, 0)
    with pytest.raises(ValueError, match=r"^normalization must be one of \('sym', 'rw', None\), got 'Sym'$"):
        ChebConv(3, 2, 2, normalization="Sym")
    conv = ChebConv(3, 2, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"^ChebConv.forward needs the graph"):
        conv(np.zeros((12, 3)))
    with pytest.raises(ValueError, match=r"^lambda_max must be a finite number > 0, got -1.0$"):
        conv.forward(np.zeros((12, 3)), g, lambda_max=-1.0)
    with pytest.raises(ValueError, match=r"^ChebConv needs a square graph"):
        conv(np.zeros((5, 3)), Graph.from_csr([0, 1, 2, 2], [0, 4], num_src=5))
    edgeless = Graph.from_edge_index(np.array([[0], [0]]), num_nodes=3)           # only a self-loop: removed
    with pytest.raises(ValueError, match=r"default lambda_max = 2 max L\[i, j\] is 0 <= 0"):
        ChebConv(3, 2, 2, normalization=None, dtype=F64)(np.zeros((3, 3)), edgeless)
    np.testing.assert_array_equal(ChebConv(3, 2, 2, normalization=None, dtype=F64).forward(
        np.ones((3, 3)), edgeless, lambda_max=1.0).shape, (3, 2))
    negative = Graph.from_edge_index(np.array([[0, 1], [1, 0]]), num_nodes=2, edge_weight=np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match=r"node 0 has weighted out-degree -1 < 0"):
        ChebConv(3, 2, 2, dtype=F64)(np.zeros((2, 3)), negative)


# --------------------------------------------------------------------------- FirstOrderConv
def test_first_order_variants_equal_their_formulas_and_their_relatives():
    g, ei, w = random_graph(12, undirected=True)
    n = 12
    A = np.zeros((n, n))
    for j, i in ei.T:
        A[i, j] += 1                                       # GCN's rules without added loops: the loops stay
    d = A.sum(axis=1)
    dis = np.divide(1, np.sqrt(d), out=np.zeros(n), where=d > 0)
    A_hat = dis[:, None] * A * dis[None, :]
    x = np.random.default_rng(13).standard_normal((n, 4))
    fo = FirstOrderConv(4, 3, "first_order", seed=1, dtype=F64)
    sp_ = FirstOrderConv(4, 3, "single_param", seed=1, dtype=F64)
    t = FirstOrderConv(4, 3, "first_order_term", seed=1, dtype=F64)
    for conv in (fo, sp_, t):
        conv.params["b"][:] = [1.0, -1.0, 0.5]
    P, b = fo.params, fo.params["b"]
    np.testing.assert_allclose(fo(x, g), x @ P["W_0"] + A_hat @ x @ P["W_1"] + b, rtol=1e-12)
    np.testing.assert_allclose(sp_(x, g), (x + A_hat @ x) @ sp_.params["W"] + b, rtol=1e-12)
    np.testing.assert_allclose(t(x, g), A_hat @ x @ t.params["W"] + b, rtol=1e-12)
    gcn = GCNConv(4, 3, add_self_loops=False, seed=0, dtype=F64)                 # first_order_term = GCN without loops
    gcn.params["W"][:], gcn.params["b"][:] = t.params["W"], t.params["b"]
    np.testing.assert_allclose(t(x, g), gcn(x, g), rtol=1e-14)
    # without self-loops and undirected, first_order = ChebConv(K=2, "sym", lambda_max=2) with W_1 negated
    g2, _, _ = random_graph(14, undirected=True)
    g2 = Graph.from_edge_index(g2.edge_index()[:, g2.indices != g2.dst_of_edge()], num_nodes=12)
    cheb = ChebConv(4, 3, 2, seed=0, dtype=F64)
    cheb.params["W"][0], cheb.params["W"][1], cheb.params["b"][:] = P["W_0"], -P["W_1"], b
    np.testing.assert_allclose(fo(x, g2), cheb.forward(x, g2, lambda_max=2.0), rtol=1e-12, atol=1e-14)


def test_first_order_errors_and_sparse_input():
    with pytest.raises(ValueError, match=r"^variant must be one of"):
        FirstOrderConv(3, 2, "second_order")
    g, _, _ = random_graph(15)
    x = np.random.default_rng(16).standard_normal((12, 4))
    x[np.random.default_rng(17).random(x.shape) < 0.5] = 0
    G = np.random.default_rng(18).standard_normal((12, 3))
    for v in ("first_order", "single_param", "first_order_term"):
        conv = FirstOrderConv(4, 3, v, seed=1, dtype=F64)
        out, dx, grads = run(conv, x, g, G)
        out_s, dx_s, grads_s = run(conv, sp.csr_matrix(x), g, G)
        assert dx is not None and dx_s is None
        np.testing.assert_allclose(out_s, out, rtol=1e-12, atol=1e-13)
        for k in grads:
            np.testing.assert_allclose(grads_s[k], grads[k], rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------- the device (CUDA simulator or GPU)
@pytest.mark.parametrize("layer", ["cheb transform first", "cheb propagate first", "first_order", "single_param"])
def test_on_the_device_equals_the_cpu(layer):
    pytest.importorskip("numba.cuda")
    from gnn_scratch import device
    from gnn_scratch.kernels.cuda import require_cuda
    try:
        require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    g, _, _ = random_graph(19, n=8, num_edges=14, weighted=True)
    fin, fout = (3, 2) if layer != "cheb propagate first" else (2, 3)
    rng = np.random.default_rng(20)
    x, G = rng.standard_normal((8, fin)), rng.standard_normal((8, fout))
    conv = (ChebConv(fin, fout, 3, normalization="rw", seed=1, dtype=F64) if layer.startswith("cheb")
            else FirstOrderConv(fin, fout, layer, seed=1, dtype=F64))
    conv.params["b"][:] = rng.standard_normal(fout)
    want = run(conv, x, g, G)
    conv.to("cuda")
    got = run(conv, device.to_device(x), g.to("cuda"), device.to_device(G))
    np.testing.assert_allclose(device.to_host(got[0]), want[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(device.to_host(got[1]), want[1], rtol=1e-10, atol=1e-12)
    for k in want[2]:
        np.testing.assert_allclose(device.to_host(got[2][k]), want[2][k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("make", [lambda: ChebConv(5, 3, 3, seed=1, dtype=F64),
                                  lambda: FirstOrderConv(5, 3, "first_order", seed=1, dtype=F64)])
def test_sparse_features_on_the_device_equal_the_cpu(make):
    pytest.importorskip("numba.cuda")
    from gnn_scratch import device
    from gnn_scratch.kernels.cuda import require_cuda
    try:
        require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    g, _, _ = random_graph(21, n=8, num_edges=14, weighted=True)
    rng = np.random.default_rng(22)
    x, G = rng.standard_normal((8, 5)), rng.standard_normal((8, 3))
    x[rng.random(x.shape) < 0.5] = 0
    conv = make()
    want = run(conv, sp.csr_matrix(x), g, G)
    conv.to("cuda")
    got = run(conv, device.to(sp.csr_matrix(x), "cuda"), g.to("cuda"), device.to_device(G))
    assert want[1] is None and got[1] is None                   # features are data: no input gradient
    np.testing.assert_allclose(device.to_host(got[0]), want[0], rtol=1e-10, atol=1e-12)
    for k in want[2]:
        np.testing.assert_allclose(device.to_host(got[2][k]), want[2][k], rtol=1e-10, atol=1e-12, err_msg=k)


# --------------------------------------------------------------------------- the derivation's snippet runs
def test_derivation_snippets_run():
    text = (Path(__file__).resolve().parents[1] / "derivations" / "cheb_conv.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "cheb_conv.md has no Python block"
    namespace = {"__name__": "derivations.cheb_conv"}
    for code in blocks:
        exec(compile(code, "cheb_conv.md", "exec"), namespace)


def test_a_second_lambda_max_on_the_same_graph_is_not_served_from_the_first_ones_cache():
    """L~'s graph is shared by every lambda_max: its cached values (and their transpose) must follow it."""
    rng = np.random.default_rng(0)
    ei = rng.integers(0, 10, (2, 30))
    x, G = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))

    def run(graph, lam):
        conv = ChebConv(3, 2, K=3, dtype=np.float64, seed=0)
        out = conv.forward(x, graph, lambda_max=lam)
        return out, conv.backward(G), conv.grads["W"].copy()

    shared = Graph.from_edge_index(ei, num_nodes=10)
    first, second = run(shared, 2.0), run(shared, 1.5)
    fresh = run(Graph.from_edge_index(ei, num_nodes=10), 1.5)
    for got, want in zip(second, fresh):
        np.testing.assert_array_equal(got, want)
    assert np.abs(first[0] - second[0]).max() > 1e-3
