"""GraphConv (Morris et al., 2019) on the MessagePassing base: finite differences, PyG, batches, errors."""
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch.device import to_host
from gnn_scratch.gradcheck import relative_error
from gnn_scratch.gradcheck import graph_conv as gc_cases
from gnn_scratch.graph import Graph, GraphBatch
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.conv import GraphConv

AGGRS = ("add", "mean", "max")
F64 = np.float64


def random_graph(seed, n_dst=12, n_src=None, num_edges=30, weighted=False):
    """A random directed graph (or block when n_src > n_dst) with an isolated destination (the last), a
    self-loop 0 -> 0 and the edge 1 -> 2 three times; (Graph, edge_index (2, E) in input order, weights or None)."""
    rng = np.random.default_rng(seed)
    n_src = n_dst if n_src is None else n_src
    src = np.concatenate([rng.integers(0, n_src, num_edges), [0, 1, 1, 1]])
    dst = np.concatenate([rng.integers(0, n_dst - 1, num_edges), [0, 2, 2, 2]])
    ei = np.stack([src, dst])
    w = rng.uniform(0.5, 2.0, ei.shape[1]) if weighted else None
    if n_src == n_dst:
        return Graph.from_edge_index(ei, n_dst, w), ei, w
    order = np.argsort(dst, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n_dst))])
    return Graph.from_csr(indptr, src[order], None if w is None else w[order], num_src=n_src), ei, w


def run(conv, x, g, G):
    """(out, dx, {param: grad}) of one forward and backward with upstream gradient G."""
    out = conv(x, g)
    conv.zero_grad()
    dx = conv.backward(G)
    return out, dx, {k: np.array(to_host(v)) for k, v in conv.grads.items()}


def dense_reference(conv, x, g):
    """GraphConv written densely: A[i, j] = sum of the weights of j -> i, mean divides by the edge count."""
    W_rel, W_root, b = conv.params["W_rel"], conv.params["W_root"], conv.params["b"]
    w = np.ones(g.num_edges) if g.edge_weight is None else g.edge_weight
    dst = g.dst_of_edge()
    if conv.aggr == "max":
        agg = np.zeros((g.num_dst, x.shape[1]))
        for i in range(g.num_dst):
            e = dst == i
            if e.any():
                agg[i] = np.max(w[e, None] * x[g.indices[e]], axis=0)
    else:
        A = sp.csr_matrix((w, (dst, g.indices)), shape=g.shape).toarray()
        if conv.aggr == "mean":
            A /= np.maximum(g.in_degree(), 1)[:, None]
        agg = A @ x
    return agg @ W_rel + b + x[:g.num_dst] @ W_root


# --------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("aggr", AGGRS)
def test_gradcheck_rows_pass(aggr, backend):
    rows = gc_cases.conv_rows(aggr)
    assert len(rows) == 4 * 2 * 4                 # 4 graphs x 2 widths x (W_rel, W_root, b, input)
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


# --------------------------------------------------------------------------- forward values
@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_src", [None, 17])
@pytest.mark.parametrize("fin, fout", [(5, 3), (3, 5)])
def test_graphconv_equals_its_dense_definition(aggr, weighted, n_src, fin, fout):
    g, _, _ = random_graph(0, n_src=n_src, weighted=weighted)
    conv = GraphConv(fin, fout, aggr=aggr, seed=1, dtype=F64)
    conv.params["b"][:] = np.arange(fout)
    x = np.random.default_rng(2).standard_normal((g.num_src, fin))
    np.testing.assert_allclose(conv(x, g), dense_reference(conv, x, g), rtol=1e-12, atol=1e-12)


def test_isolated_node_gets_its_root_term_and_bias_only():
    g, _, _ = random_graph(0, weighted=True)
    for aggr in AGGRS:
        conv = GraphConv(3, 2, aggr=aggr, seed=1, dtype=F64)
        conv.params["b"][:] = [1.0, -2.0]
        x = np.random.default_rng(3).standard_normal((12, 3))
        np.testing.assert_allclose(conv(x, g)[11], x[11] @ conv.params["W_root"] + conv.params["b"], rtol=1e-14)


@pytest.mark.parametrize("aggr", ["add", "mean"])
def test_sparse_input_gives_the_dense_result_and_no_input_gradient(aggr):
    g, _, _ = random_graph(1, weighted=True)
    x = np.random.default_rng(4).standard_normal((12, 6))
    x[np.random.default_rng(5).random(x.shape) < 0.6] = 0
    G = np.random.default_rng(6).standard_normal((12, 8))               # F_out > F_in: sparse still transforms first
    conv = GraphConv(6, 8, aggr=aggr, seed=1, dtype=F64)
    out, dx, grads = run(conv, x, g, G)
    out_s, dx_s, grads_s = run(conv, sp.csr_matrix(x), g, G)
    assert dx is not None and dx_s is None
    np.testing.assert_allclose(out_s, out, rtol=1e-12, atol=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads_s[k], grads[k], rtol=1e-12, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("aggr", AGGRS)
def test_needs_input_grad_false_skips_dx_but_not_the_weights(aggr):
    g, _, _ = random_graph(2, n_src=15, weighted=True)
    rng = np.random.default_rng(7)
    x, G = rng.standard_normal((15, 4)), rng.standard_normal((12, 3))
    conv = GraphConv(4, 3, aggr=aggr, seed=1, dtype=F64)
    _, dx, grads = run(conv, x, g, G)
    conv.needs_input_grad = False
    _, dx_none, grads_none = run(conv, x, g, G)
    assert dx.shape == x.shape and dx_none is None
    for k in grads:
        np.testing.assert_array_equal(grads_none[k], grads[k])


def test_gradients_accumulate_and_backward_needs_a_forward():
    conv = GraphConv(3, 2, dtype=F64)
    with pytest.raises(BackwardBeforeForward):
        conv.backward(np.ones((4, 2)))
    g, _, _ = random_graph(3)
    x, G = np.random.default_rng(8).standard_normal((12, 3)), np.random.default_rng(9).standard_normal((12, 2))
    _, _, once = run(conv, x, g, G)
    conv.backward(G)
    for k in once:
        np.testing.assert_allclose(conv.grads[k], 2 * once[k], rtol=1e-14)


def test_errors_name_the_argument():
    g, _, _ = random_graph(0)
    with pytest.raises(ValueError, match=r"^in_channels must be a positive int, got 0$"):
        GraphConv(0, 2)
    with pytest.raises(TypeError, match=r"^out_channels must be a positive int, got 2.0$"):
        GraphConv(3, 2.0)
    with pytest.raises(ValueError, match=r"^aggr must be one of \('add', 'mean', 'max'\), got 'sum'$"):
        GraphConv(3, 2, aggr="sum")
    with pytest.raises(TypeError, match=r"^dtype must be float32 or float64, got int64$"):
        GraphConv(3, 2, dtype=np.int64)
    conv = GraphConv(3, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"^GraphConv.forward needs the graph: forward\(x, graph\)$"):
        conv(np.zeros((12, 3)))
    with pytest.raises(ValueError, match=r"^x must have shape \(12, 3\) for a graph with 12 nodes and in_channels=3, "
                                         r"got \(11, 3\)$"):
        conv(np.zeros((11, 3)), g)
    with pytest.raises(ValueError, match=r"^x must have shape \(12, 3\) for a graph with 12 nodes and in_channels=3, "
                                         r"got \(12, 4\)$"):
        conv(np.zeros((12, 4)), g)
    with pytest.raises(TypeError, match=r"^x must have the layer's dtype float64, got float32$"):
        conv(np.zeros((12, 3), np.float32), g)
    with pytest.raises(ValueError, match=r"^GraphConv\(aggr='max'\) needs dense x"):
        GraphConv(3, 2, aggr="max", dtype=F64)(sp.csr_matrix(np.zeros((12, 3))), g)
    wide = Graph.from_csr([0, 1, 2, 2], [0, 1], num_src=2)
    with pytest.raises(ValueError, match=r"^graph must have its N_dst = 3 destinations among its N_src = 2 sources"):
        conv(np.zeros((2, 3)), wide)


# --------------------------------------------------------------------------- batches
@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("weighted", [False, True])
def test_graphconv_on_a_batch_equals_each_graph_alone(aggr, weighted):
    gs = [random_graph(s, n_dst=n, num_edges=2 * n, weighted=weighted)[0] for s, n in ((0, 7), (1, 5), (2, 9))]
    b = GraphBatch.from_graphs(gs)
    rng = np.random.default_rng(10)
    x, G = rng.standard_normal((b.num_nodes, 4)), rng.standard_normal((b.num_nodes, 3))
    conv = GraphConv(4, 3, aggr=aggr, seed=1, dtype=F64)
    conv.params["b"][:] = rng.standard_normal(3)
    out, dx, grads = run(conv, x, b, G)
    parts = [run(conv, xk, g, Gk) for g, xk, Gk in zip(gs, b.unbatch(x), b.unbatch(G))]
    np.testing.assert_allclose(out, np.concatenate([p[0] for p in parts]), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, np.concatenate([p[1] for p in parts]), rtol=1e-12, atol=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads[k], sum(p[2][k] for p in parts), rtol=1e-12, atol=1e-13, err_msg=k)


# --------------------------------------------------------------------------- PyG
@pytest.mark.oracle
@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_src", [None, 17])
@pytest.mark.parametrize("fin, fout", [(5, 3), (3, 5)])
def test_graphconv_equals_torch_geometric(aggr, weighted, n_src, fin, fout):
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    for seed in range(3):
        g, ei, w = random_graph(seed, n_src=n_src, weighted=weighted)
        rng = np.random.default_rng(100 + seed)
        # continuous random features and weights: no max ties (PyG 2.8 splits a tie evenly, we give it to one edge)
        x, G = rng.standard_normal((g.num_src, fin)), rng.standard_normal((g.num_dst, fout))
        conv = GraphConv(fin, fout, aggr=aggr, seed=seed, dtype=F64)
        conv.params["b"][:] = rng.standard_normal(fout)
        out, dx, grads = run(conv, x, g, G)

        ref = pyg.GraphConv(fin, fout, aggr=aggr).double()
        with torch.no_grad():
            ref.lin_rel.weight.copy_(torch.from_numpy(conv.params["W_rel"].T))
            ref.lin_rel.bias.copy_(torch.from_numpy(conv.params["b"]))
            ref.lin_root.weight.copy_(torch.from_numpy(conv.params["W_root"].T))
        xt = torch.from_numpy(x).requires_grad_(True)
        ew = None if w is None else torch.from_numpy(w)
        if n_src is None:
            yt = ref(xt, torch.from_numpy(ei), ew)
        else:                                        # the block: destinations are the first N_dst sources
            yt = ref((xt, xt[:g.num_dst]), torch.from_numpy(ei), ew, size=(g.num_src, g.num_dst))
        yt.backward(torch.from_numpy(G))
        checks = [("out", out, yt.detach().numpy()), ("x", dx, xt.grad.numpy()),
                  ("W_rel", grads["W_rel"], ref.lin_rel.weight.grad.numpy().T),
                  ("W_root", grads["W_root"], ref.lin_root.weight.grad.numpy().T),
                  ("b", grads["b"], ref.lin_rel.bias.grad.numpy())]
        for name, ours, theirs in checks:
            assert relative_error(ours, theirs) <= 1e-10, (seed, name, relative_error(ours, theirs))


# --------------------------------------------------------------------------- the device (CUDA simulator or GPU)
@pytest.mark.parametrize("aggr", AGGRS)
def test_graphconv_on_the_device_equals_the_cpu(aggr):
    pytest.importorskip("numba.cuda")
    from gnn_scratch import device
    from gnn_scratch.kernels.cuda import require_cuda
    try:
        require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    g, _, _ = random_graph(4, n_dst=8, num_edges=14, weighted=True)
    b = GraphBatch.from_graphs([g, random_graph(5, n_dst=6, num_edges=10, weighted=True)[0]])
    rng = np.random.default_rng(11)
    x, G = rng.standard_normal((b.num_nodes, 3)), rng.standard_normal((b.num_nodes, 2))
    conv = GraphConv(3, 2, aggr=aggr, seed=1, dtype=F64)
    conv.params["b"][:] = rng.standard_normal(2)
    want = run(conv, x, b, G)
    conv.to("cuda")
    got = run(conv, device.to_device(x), b.to("cuda"), device.to_device(G))
    np.testing.assert_allclose(device.to_host(got[0]), want[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(device.to_host(got[1]), want[1], rtol=1e-10, atol=1e-12)
    for k in want[2]:
        np.testing.assert_allclose(device.to_host(got[2][k]), want[2][k], rtol=1e-10, atol=1e-12, err_msg=k)


# --------------------------------------------------------------------------- the derivation's snippet runs
def test_derivation_snippets_run():
    text = (Path(__file__).resolve().parents[1] / "derivations" / "graph_conv.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "graph_conv.md has no Python block"
    for code in blocks:
        exec(compile(code, "graph_conv.md", "exec"), {})
