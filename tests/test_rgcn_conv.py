"""RGCNConv (Schlichtkrull et al., 2018): finite differences, its dense definition, PyG, the relation cache, errors."""
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from gnn_scratch.device import to_host
from gnn_scratch.gradcheck import relative_error
from gnn_scratch.gradcheck import rgcn as rgcn_cases
from gnn_scratch.graph import Graph
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.conv import RGCNConv

F64 = np.float64
R = 3
AGGRS = ("mean", "add", "max")
DECOMPOSITIONS = {"none": {}, "basis": {"num_bases": 2}, "blocks": {"num_blocks": 2}}


def random_graph(seed, n_dst=12, n_src=None, num_edges=40, num_relations=R):
    """A random directed graph (or a block when n_src > n_dst) with an isolated destination (the last), a
    self-loop 0 -> 0 and the edge 1 -> 2 three times (two copies in relation 1, one in relation 0), every
    relation present; (Graph, edge_index (2, E), edge_type (E,)). A block's edge_index is sorted by
    destination, so its CSR order is its column order (PyG takes the same columns)."""
    rng = np.random.default_rng(seed)
    n_src = n_dst if n_src is None else n_src
    src = np.concatenate([rng.integers(0, n_src, num_edges), [0, 1, 1, 1]])
    dst = np.concatenate([rng.integers(0, n_dst - 1, num_edges), [0, 2, 2, 2]])
    et = np.concatenate([rng.integers(0, num_relations, num_edges), [2, 1, 1, 0]])
    et[:num_relations] = np.arange(num_relations)
    ei = np.stack([src, dst])
    if n_src == n_dst:
        return Graph.from_edge_index(ei, n_dst), ei, et
    order = np.argsort(dst, kind="stable")
    ei, et = ei[:, order], et[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(ei[1], minlength=n_dst))])
    return Graph.from_csr(indptr, ei[0], num_src=n_src), ei, et


def run(conv, x, g, et, G):
    """(out, dx, {param: grad}) of one forward and backward with upstream gradient G."""
    out = conv(x, g, et)
    conv.zero_grad()
    dx = conv.backward(G)
    return out, dx, {k: np.array(to_host(v)) for k, v in conv.grads.items()}


def relation_weights_reference(conv):
    """Every W_r (R, F_in, F_out) composed by the paper's formulas, independently of the layer's code."""
    V = conv.params["weight"]
    if conv.num_bases is not None:
        return np.einsum("rb,bio->rio", conv.params["comp"], V)               # eq. 3
    if conv.num_blocks is not None:
        return np.stack([scipy.linalg.block_diag(*V[r]) for r in range(conv.num_relations)])   # eq. 4
    return V


def dense_reference(conv, x, ei, et, n_dst):
    """RGCNConv written densely from eq. 2: out = x_dst root + b + Σ_r ⊕_{j ∈ N_i^r} x_j W_r; x None means I."""
    n_src = x.shape[0] if x is not None else conv.in_channels
    X = np.eye(n_src) if x is None else x
    W = relation_weights_reference(conv)
    out = X[:n_dst] @ conv.params["root"] + conv.params["bias"]
    for r in range(conv.num_relations):
        m = et == r
        A = np.zeros((n_dst, n_src))
        np.add.at(A, (ei[1, m], ei[0, m]), 1.0)                               # a repeated edge counts per copy
        if conv.aggr == "max":
            agg = np.zeros((n_dst, X.shape[1]))
            for i in range(n_dst):
                js = ei[0, m & (ei[1] == i)]
                if js.size:
                    agg[i] = X[js].max(axis=0)
        else:
            if conv.aggr == "mean":
                A /= np.maximum(A.sum(axis=1), 1)[:, None]                    # 1 / |N_i^r|, 0 for no neighbour
            agg = A @ X
        out += agg @ W[r]
    return out


def make(fin, fout, aggr, dec, seed=1):
    conv = RGCNConv(fin, fout, R, aggr=aggr, seed=seed, dtype=F64, **DECOMPOSITIONS[dec])
    conv.params["bias"][:] = np.random.default_rng(seed + 50).standard_normal(fout)
    return conv


# --------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("name", ["mean", "add", "max", "featureless"])
def test_gradcheck_rows_pass(name, backend):
    rows = {"mean": rgcn_cases.rgcn_mean, "add": rgcn_cases.rgcn_add, "max": rgcn_cases.rgcn_max,
            "featureless": rgcn_cases.rgcn_featureless}[name]()
    # per (graph, dims): none -> weight, root, bias, input; basis adds comp; blocks as none
    expected = 2 * 2 * (4 + 5 + 4) if name != "featureless" else 2 * (3 + 4 + 3)
    assert len(rows) == expected
    assert {r.parameter.split(".")[-1] for r in rows} >= {"weight", "root", "bias"}
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


# --------------------------------------------------------------------------- forward values
@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("dec", DECOMPOSITIONS)
@pytest.mark.parametrize("n_src", [None, 17])
@pytest.mark.parametrize("fin, fout", [(6, 4), (4, 6)])
def test_rgcn_equals_its_dense_definition(aggr, dec, n_src, fin, fout):
    g, ei, et = random_graph(0, n_src=n_src)
    conv = make(fin, fout, aggr, dec)
    x = np.random.default_rng(2).standard_normal((g.num_src, fin))
    np.testing.assert_allclose(conv(x, g, et), dense_reference(conv, x, ei, et, g.num_dst), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("aggr", ["mean", "add"])
@pytest.mark.parametrize("dec", DECOMPOSITIONS)
def test_featureless_input_is_the_identity(aggr, dec):
    g, ei, et = random_graph(1)
    conv = make(12, 4, aggr, dec)
    G = np.random.default_rng(3).standard_normal((12, 4))
    out, dx, grads = run(conv, None, g, et, G)
    assert dx is None
    np.testing.assert_allclose(out, dense_reference(conv, None, ei, et, 12), rtol=1e-12, atol=1e-12)
    # x = I given explicitly takes the feature path (x [W_0 | ...] then the SpMM): the same numbers
    out_I, _, grads_I = run(conv, np.eye(12), g, et, G)
    np.testing.assert_allclose(out, out_I, rtol=1e-12, atol=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads_I[k], rtol=1e-12, atol=1e-13, err_msg=k)


def test_relation_mean_counts_repeated_edges_and_isolated_nodes_get_root_and_bias():
    # node 2 receives 1 -> 2 twice in relation 1 and 3 -> 2 once: relation 1's mean is (2 x_1 + x_3) / 3
    ei = np.array([[1, 1, 3, 0], [2, 2, 2, 1]])
    et = np.array([1, 1, 1, 0])
    g = Graph.from_edge_index(ei, 5)
    conv = make(2, 3, "mean", "none")
    x = np.random.default_rng(4).standard_normal((5, 2))
    out = conv(x, g, et)
    W, root, b = conv.params["weight"], conv.params["root"], conv.params["bias"]
    np.testing.assert_allclose(out[2], (2 * x[1] + x[3]) / 3 @ W[1] + x[2] @ root + b, rtol=1e-13)
    np.testing.assert_allclose(out[1], x[0] @ W[0] + x[1] @ root + b, rtol=1e-13)
    np.testing.assert_allclose(out[4], x[4] @ root + b, rtol=1e-13)        # isolated


def test_no_root_no_bias():
    g, ei, et = random_graph(2)
    conv = RGCNConv(3, 2, R, root_weight=False, bias=False, seed=1, dtype=F64)
    assert set(conv.params) == {"weight"}
    x = np.random.default_rng(5).standard_normal((12, 3))
    out = conv(x, g, et)
    want = dense_reference(make(3, 2, "mean", "none"), x, ei, et, 12)      # same seed -> same weight
    want -= x @ make(3, 2, "mean", "none").params["root"] + make(3, 2, "mean", "none").params["bias"]
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    assert conv.backward(np.ones((12, 2))).shape == (12, 3)


@pytest.mark.parametrize("aggr", ["mean", "add"])
def test_sparse_input_gives_the_dense_result_and_no_input_gradient(aggr):
    g, _, et = random_graph(3)
    x = np.random.default_rng(6).standard_normal((12, 4))
    x[np.random.default_rng(7).random(x.shape) < 0.6] = 0
    G = np.random.default_rng(8).standard_normal((12, 6))             # F_out > F_in: sparse still transforms first
    conv = make(4, 6, aggr, "basis")
    out, dx, grads = run(conv, x, g, et, G)
    out_s, dx_s, grads_s = run(conv, sp.csr_matrix(x), g, et, G)
    assert dx is not None and dx_s is None
    np.testing.assert_allclose(out_s, out, rtol=1e-12, atol=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads_s[k], grads[k], rtol=1e-12, atol=1e-13, err_msg=k)


# --------------------------------------------------------------------------- the relation cache
def test_cache_follows_the_edge_type_values_not_the_graph():
    g, ei, et = random_graph(4)
    conv = make(4, 3, "mean", "none")
    x = np.random.default_rng(9).standard_normal((12, 4))
    out_a = conv(x, g, et).copy()
    et_b = (et + 1) % R                                               # another array, same graph
    out_b = conv(x, g, et_b).copy()
    np.testing.assert_allclose(out_b, dense_reference(conv, x, ei, et_b, 12), rtol=1e-12, atol=1e-12)
    assert not np.allclose(out_a, out_b)
    et[5] = (et[5] + 1) % R                                           # the first array, changed in place
    np.testing.assert_allclose(conv(x, g, et), dense_reference(conv, x, ei, et, 12), rtol=1e-12, atol=1e-12)
    # and the backward of each forward uses that forward's structure (the aggregate-first order too)
    for fin, fout in ((4, 3), (3, 4)):
        c = make(fin, fout, "mean", "none")
        xx = np.random.default_rng(10).standard_normal((12, fin))
        G = np.random.default_rng(11).standard_normal((12, fout))
        fresh = run(c, xx, Graph.from_edge_index(ei, 12), et_b, G)
        run(c, xx, g, et, G)
        cached = run(c, xx, g, et_b, G)
        for a, b in zip(fresh[:2], cached[:2]):
            np.testing.assert_array_equal(a, b)
        for k in fresh[2]:
            np.testing.assert_array_equal(fresh[2][k], cached[2][k])


def test_structure_is_built_once_per_edge_type():
    g, _, et = random_graph(5)
    conv = make(4, 3, "mean", "none")
    x = np.random.default_rng(12).standard_normal((12, 4))
    conv(x, g, et)
    n = len(g._cache)
    conv(x, g, et.copy())                                             # equal values: a cache hit
    assert len(g._cache) == n
    conv(x, g, (et + 1) % R)
    assert len(g._cache) > n


# --------------------------------------------------------------------------- dtype, determinism, contract
def test_float32_default_and_same_seed_same_bits():
    g, _, et = random_graph(6)
    x = np.random.default_rng(13).standard_normal((12, 5)).astype(np.float32)
    G = np.random.default_rng(14).standard_normal((12, 4)).astype(np.float32)
    results = []
    for _ in range(2):
        conv = RGCNConv(5, 4, R, num_bases=2, seed=7)
        assert all(p.dtype == np.float32 for p in conv.params.values())
        results.append(run(conv, x, g, et, G))
    assert results[0][0].dtype == np.float32 and results[0][1].dtype == np.float32
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    for k in results[0][2]:
        np.testing.assert_array_equal(results[0][2][k], results[1][2][k])


def test_init_is_glorot_like_pyg():
    conv = RGCNConv(30, 20, 4, num_bases=3, seed=0, dtype=F64)
    for name, (fan_in, fan_out) in (("weight", (30, 20)), ("comp", (4, 3)), ("root", (30, 20))):
        a = np.sqrt(6.0 / (fan_in + fan_out))
        p = conv.params[name]
        assert np.abs(p).max() <= a and np.abs(p).max() > 0.8 * a, name
    assert not conv.params["bias"].any()
    blocks = RGCNConv(30, 20, 4, num_blocks=5, seed=0, dtype=F64).params["weight"]
    assert blocks.shape == (4, 5, 6, 4) and np.abs(blocks).max() <= np.sqrt(6.0 / 10)


def test_gradients_accumulate_and_backward_needs_a_forward():
    conv = make(3, 2, "mean", "basis")
    with pytest.raises(BackwardBeforeForward):
        conv.backward(np.ones((12, 2)))
    g, _, et = random_graph(7)
    x, G = np.random.default_rng(15).standard_normal((12, 3)), np.random.default_rng(16).standard_normal((12, 2))
    _, _, once = run(conv, x, g, et, G)
    conv.backward(G)
    for k in once:
        np.testing.assert_allclose(conv.grads[k], 2 * once[k], rtol=1e-14)


def test_needs_input_grad_false_skips_dx_but_not_the_weights():
    g, _, et = random_graph(8, n_src=15)
    rng = np.random.default_rng(17)
    x, G = rng.standard_normal((15, 4)), rng.standard_normal((12, 6))
    conv = make(4, 6, "max", "blocks")
    _, dx, grads = run(conv, x, g, et, G)
    conv.needs_input_grad = False
    _, dx_none, grads_none = run(conv, x, g, et, G)
    assert dx.shape == x.shape and dx_none is None
    for k in grads:
        np.testing.assert_array_equal(grads_none[k], grads[k])


def test_errors_name_the_argument():
    g, _, et = random_graph(0)
    with pytest.raises(ValueError, match=r"^num_bases=2 and num_blocks=2: set one of them"):
        RGCNConv(4, 4, R, num_bases=2, num_blocks=2)
    with pytest.raises(ValueError, match=r"^num_blocks=3 must divide in_channels=4 and out_channels=6$"):
        RGCNConv(4, 6, R, num_blocks=3)
    with pytest.raises(ValueError, match=r"^num_blocks=2 must divide in_channels=3 and out_channels=4$"):
        RGCNConv(3, 4, R, num_blocks=2)
    with pytest.raises(ValueError, match=r"^aggr must be one of \('mean', 'add', 'max'\), got 'lstm'$"):
        RGCNConv(3, 4, R, aggr="lstm")
    with pytest.raises(ValueError, match=r"^num_relations must be a positive int, got 0$"):
        RGCNConv(3, 4, 0)
    with pytest.raises(TypeError, match=r"^num_bases must be a positive int, got 2.0$"):
        RGCNConv(3, 4, R, num_bases=2.0)
    conv = make(3, 2, "mean", "none")
    x = np.zeros((12, 3))
    with pytest.raises(ValueError, match=r"^RGCNConv.forward needs the graph"):
        conv(x, None, et)
    with pytest.raises(TypeError, match=r"^edge_type must be an integer array of shape \(44,\).*got NoneType$"):
        conv(x, g, None)
    with pytest.raises(TypeError, match=r"^edge_type must be a NumPy integer array of shape \(44,\), got ndarray of "
                                        r"dtype float64$"):
        conv(x, g, et.astype(float))
    with pytest.raises(TypeError, match=r"dtype bool$"):
        conv(x, g, et > 0)
    with pytest.raises(ValueError, match=r"^edge_type must have shape \(44,\), one relation id per edge of the "
                                         r"graph, got \(43,\)$"):
        conv(x, g, et[:-1])
    bad = et.copy()
    bad[7] = 3
    with pytest.raises(ValueError, match=r"^edge_type must hold relation ids in \[0, 3\) for num_relations=3, "
                                         r"got 3 at column 7$"):
        conv(x, g, bad)
    bad[7] = -1
    with pytest.raises(ValueError, match=r"got -1 at column 7$"):
        conv(x, g, bad)
    with pytest.raises(ValueError, match=r"^x must have shape \(12, 3\) for a graph with 12 nodes and in_channels=3, "
                                         r"got \(12, 4\)$"):
        conv(np.zeros((12, 4)), g, et)
    with pytest.raises(TypeError, match=r"^x must have the layer's dtype float64, got float32$"):
        conv(np.zeros((12, 3), np.float32), g, et)
    nan = np.zeros((12, 3))
    nan[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"^x must be finite, got inf at row 4, column 1$"):
        conv(nan, g, et)
    with pytest.raises(ValueError, match=r"^x=None \(featureless nodes, x = I\) needs a square graph with "
                                         r"in_channels = 3 nodes, got a graph of shape \(12, 12\)$"):
        conv(None, g, et)
    with pytest.raises(ValueError, match=r"^x=None \(featureless nodes\) needs aggr 'mean' or 'add'"):
        make(12, 2, "max", "none")(None, g, et)
    with pytest.raises(ValueError, match=r"^RGCNConv\(aggr='max'\) needs dense x"):
        make(3, 2, "max", "none")(sp.csr_matrix(x), g, et)
    looped = g.with_self_loops()
    with pytest.raises(ValueError, match=r"^graph has edges that came from no edge_index column"):
        conv(x, looped, np.zeros(looped.num_edges, dtype=np.int64))
    conv(x, g, et)
    with pytest.raises(ValueError, match=r"^grad_out must have shape \(12, 2\)"):
        conv.backward(np.zeros((12, 3)))


# --------------------------------------------------------------------------- PyG
def pyg_rgcn(conv):
    """PyG's RGCNConv (float64) holding a copy of ``conv``'s parameters (the same layouts)."""
    torch, pyg = pytest.importorskip("torch"), pytest.importorskip("torch_geometric.nn")
    ref = pyg.RGCNConv(conv.in_channels, conv.out_channels, conv.num_relations, num_bases=conv.num_bases,
                       num_blocks=conv.num_blocks, aggr=conv.aggr, root_weight="root" in conv.params,
                       bias="bias" in conv.params).double()
    with torch.no_grad():
        for k, v in conv.params.items():
            getattr(ref, k).copy_(torch.from_numpy(v))
    return ref


@pytest.mark.oracle
@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("dec", DECOMPOSITIONS)
@pytest.mark.parametrize("n_src", [None, 17])
@pytest.mark.parametrize("fin, fout", [(6, 4), (4, 6)])
def test_rgcn_equals_torch_geometric(aggr, dec, n_src, fin, fout):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    for seed in range(3):
        g, ei, et = random_graph(seed, n_src=n_src)
        rng = np.random.default_rng(100 + seed)
        # continuous random features: no max ties (PyG 2.8 splits a tie evenly, we give it to one edge)
        x, G = rng.standard_normal((g.num_src, fin)), rng.standard_normal((g.num_dst, fout))
        conv = make(fin, fout, aggr, dec, seed=seed)
        out, dx, grads = run(conv, x, g, et, G)
        ref = pyg_rgcn(conv)
        xt = torch.from_numpy(x).requires_grad_(True)
        xin = xt if n_src is None else (xt, xt[:g.num_dst])     # the block: destinations are the first N_dst
        yt = ref(xin, torch.from_numpy(ei), torch.from_numpy(et))
        yt.backward(torch.from_numpy(G))
        checks = [("out", out, yt.detach().numpy()), ("x", dx, xt.grad.numpy())]
        checks += [(k, grads[k], getattr(ref, k).grad.numpy()) for k in grads]
        want = {"out", "x", "weight", "root", "bias"} | ({"comp"} if dec == "basis" else set())
        assert {c[0] for c in checks} >= want
        for name, ours, theirs in checks:
            assert relative_error(ours, theirs) <= 1e-10, (seed, name, relative_error(ours, theirs))


@pytest.mark.oracle
@pytest.mark.parametrize("aggr", ["mean", "add"])
@pytest.mark.parametrize("dec", ["none", "basis"])
def test_featureless_rgcn_equals_torch_geometric(aggr, dec):
    """PyG's x=None (node ids as inputs: W_r's rows are looked up); PyG refuses blocks there."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    for seed in range(3):
        g, ei, et = random_graph(seed)
        G = np.random.default_rng(200 + seed).standard_normal((12, 5))
        conv = make(12, 5, aggr, dec, seed=seed)
        out, dx, grads = run(conv, None, g, et, G)
        ref = pyg_rgcn(conv)
        yt = ref(None, torch.from_numpy(ei), torch.from_numpy(et))
        yt.backward(torch.from_numpy(G))
        assert dx is None
        checks = [("out", out, yt.detach().numpy())] + [(k, grads[k], getattr(ref, k).grad.numpy()) for k in grads]
        for name, ours, theirs in checks:
            assert relative_error(ours, theirs) <= 1e-10, (seed, name, relative_error(ours, theirs))


# --------------------------------------------------------------------------- the derivation's snippet runs
def test_derivation_snippets_run():
    text = (Path(__file__).resolve().parents[1] / "derivations" / "rgcn.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "rgcn.md has no Python block"
    for code in blocks:
        exec(compile(code, "rgcn.md", "exec"), {})


# --------------------------------------------------------------------------- the device (CUDA simulator or GPU)
@pytest.mark.parametrize("aggr, dec, fin, fout", [("mean", "none", 4, 3), ("add", "basis", 3, 4),
                                                  ("max", "blocks", 4, 2), ("mean", "blocks", 2, 4)])
def test_rgcn_on_the_device_equals_the_cpu(aggr, dec, fin, fout):
    pytest.importorskip("numba.cuda")
    from gnn_scratch import device
    from gnn_scratch.kernels.cuda import require_cuda
    try:
        require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    g, _, et = random_graph(9, n_dst=7, num_edges=12)
    rng = np.random.default_rng(18)
    x, G = rng.standard_normal((7, fin)), rng.standard_normal((7, fout))
    conv = make(fin, fout, aggr, dec)
    want = run(conv, x, g, et, G)
    conv.to("cuda")
    got = run(conv, device.to_device(x), g.to("cuda"), et, device.to_device(G))
    np.testing.assert_allclose(device.to_host(got[0]), want[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(device.to_host(got[1]), want[1], rtol=1e-10, atol=1e-12)
    for k in want[2]:
        np.testing.assert_allclose(device.to_host(got[2][k]), want[2][k], rtol=1e-10, atol=1e-12, err_msg=k)
