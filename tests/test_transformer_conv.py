"""TransformerConv (derivations/transformer_conv.md) and the ops it adds (scale, beta gate).

What is checked, and against what:
1. PyG's ``TransformerConv`` in float64: the output, dL/dx, dL/d edge_attr and the gradient of every
   weight and bias (lin_query / key / value / skip / edge / beta), for concat, beta, root_weight and
   edge features each on and off, on a graph with an isolated node, a node without in-edges,
   self-loops and repeated edges (``test_equals_torch_geometric``), and on a bipartite block
   (PyG's pair input);
2. a GraphBatch gives each graph what the layer gives on that graph alone (edge_attr follows the
   batch's edge_index columns);
3. the head-expanded graphs against their definition; the empty-neighbourhood rule; E = 0;
4. dropout: identity in eval mode, repeatable with one seed; bad input raises one clear line.
The finite-difference checks are the registered case "TransformerConv" of
``gnn_scratch/gradcheck/transformer.py`` (run by tests/test_gradcheck.py).
"""
import numpy as np
import pytest

from gnn_scratch.graph import Graph, GraphBatch
from gnn_scratch.nn import TransformerConv
from gnn_scratch.nn.conv.transformer_conv import edge_feature_graph, head_graph, head_positions

F_IN, C, H = 5, 4, 3


def messy_edge_index(seed, n=9, E=25):
    """Random edges over n nodes: node n-1 isolated, node n-2 with no in-edge, a self-loop, a repeated edge."""
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n - 1, E), rng.integers(0, n - 2, E)
    return np.stack([np.r_[src, 0, 1, 1, 3, 3], np.r_[dst, 0, 2, 2, 3, 3]])


def rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


def _pyg_pair(torch, pyg_conv, ours, seed):
    """Copy our weights into PyG's layer (PyG's weight is our W transposed), with random non-zero biases."""
    rng = np.random.default_rng(seed)
    for name, lin in ours.children():
        theirs = getattr(pyg_conv, name)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(np.ascontiguousarray(lin.params["W"].T)))
            if "b" in lin.params:
                lin.params["b"][:] = rng.standard_normal(lin.params["b"].shape)
                theirs.bias.copy_(torch.from_numpy(lin.params["b"]))
            else:
                assert theirs.bias is None
    mine, pygs = {n for n, _ in ours.children()}, {n for n, _ in pyg_conv.named_children() if n.startswith("lin_")}
    assert mine <= pygs and pygs - mine <= {"lin_skip"}     # PyG builds lin_skip even when root_weight=False


def _compare_grads(torch, ours, theirs):
    """Every parameter gradient: relative 1e-10, except lin_key's bias (see below)."""
    for name, lin in ours.children():
        t = getattr(theirs, name)
        assert rel(lin.grads["W"], t.weight.grad.numpy().T) < 1e-10, name
        if "b" in lin.grads:
            want = t.bias.grad.numpy()
            if name == "lin_key":
                # q_i . b_k is the same for every edge entering i, and the softmax cancels it: the true
                # gradient is 0, and both sides are sums that cancel to round-off
                scale = np.max(np.abs(ours.lin_key.grads["W"]))
                assert np.max(np.abs(lin.grads["b"])) < 1e-12 * scale and np.max(np.abs(want)) < 1e-12 * scale
            else:
                assert rel(lin.grads["b"], want) < 1e-10, name


@pytest.mark.oracle
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("root_weight", [True, False])
@pytest.mark.parametrize("beta", [True, False])
@pytest.mark.parametrize("concat", [True, False])
def test_equals_torch_geometric(concat, beta, root_weight, edge_dim):
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    ei = messy_edge_index(0)
    n = 9
    g = Graph.from_edge_index(ei, n)
    ours = TransformerConv(F_IN, C, heads=H, concat=concat, beta=beta, root_weight=root_weight, edge_dim=edge_dim,
                           seed=1, dtype=np.float64)
    theirs = pyg.TransformerConv(F_IN, C, heads=H, concat=concat, beta=beta, root_weight=root_weight,
                                 edge_dim=edge_dim).double()
    _pyg_pair(torch, theirs, ours, 2)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, F_IN))
    ea = rng.standard_normal((ei.shape[1], edge_dim)) if edge_dim else None
    out = ours.forward(X, g, ea)
    xt = torch.from_numpy(X).requires_grad_(True)
    eat = torch.from_numpy(ea).requires_grad_(True) if edge_dim else None
    ref = theirs(xt, torch.from_numpy(ei), eat)
    assert rel(out, ref.detach().numpy()) < 1e-12
    G = rng.standard_normal(out.shape)
    ours.zero_grad()
    dX = ours.backward(G)
    ref.backward(torch.from_numpy(G))
    assert rel(dX, xt.grad.numpy()) < 1e-10
    if edge_dim:
        assert rel(ours.grad_edge_attr, eat.grad.numpy()) < 1e-10
    _compare_grads(torch, ours, theirs)
    # node 7 has no in-edge: its messages are 0, so the output is the skip alone (or 0)
    want7 = ours.lin_skip.forward(X[7:8]) if root_weight else np.zeros((1, out.shape[1]))
    if not beta:
        np.testing.assert_allclose(out[7:8], want7, rtol=1e-13, atol=1e-14)


@pytest.mark.oracle
def test_bipartite_block_equals_torch_geometric_pair_input():
    """A block whose N_dst destinations are its first sources: PyG's (x_src, x_dst) with x_dst = x[:N_dst]."""
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    rng = np.random.default_rng(4)
    n_src, n_dst = 10, 6
    src, dst = rng.integers(0, n_src, 30), rng.integers(0, n_dst - 1, 30)
    ei = np.stack([np.r_[src, 1, 1, 2], np.r_[dst, 2, 2, 2]])
    order = np.argsort(ei[1], kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(ei[1], minlength=n_dst))]
    g = Graph.from_csr(indptr, ei[0][order], num_src=n_src)
    ours = TransformerConv(F_IN, C, heads=2, beta=True, edge_dim=2, seed=5, dtype=np.float64)
    theirs = pyg.TransformerConv(F_IN, C, heads=2, beta=True, edge_dim=2).double()
    _pyg_pair(torch, theirs, ours, 6)
    X = rng.standard_normal((n_src, F_IN))
    ea_cols = rng.standard_normal((ei.shape[1], 2))
    # the block was built from CSR directly: its edge_id is the CSR order, so hand edge_attr in that order
    ea = ea_cols[order]
    out = ours.forward(X, g, ea)
    xt = torch.from_numpy(X).requires_grad_(True)
    eat = torch.from_numpy(ea_cols).requires_grad_(True)
    ref = theirs((xt, xt[:n_dst]), torch.from_numpy(ei), eat)
    assert rel(out, ref.detach().numpy()) < 1e-12
    G = rng.standard_normal(out.shape)
    ours.zero_grad()
    dX = ours.backward(G)
    ref.backward(torch.from_numpy(G))
    assert rel(dX, xt.grad.numpy()) < 1e-10
    assert rel(ours.grad_edge_attr, eat.grad.numpy()[order]) < 1e-10
    _compare_grads(torch, ours, theirs)


def test_batch_equals_each_graph_alone():
    eis, ns = [messy_edge_index(s, n=n, E=12) for s, n in [(7, 5), (8, 7), (9, 4)]], [5, 7, 4]
    batch = GraphBatch.from_edge_indices(eis, ns)
    rng = np.random.default_rng(10)
    X = rng.standard_normal((sum(ns), F_IN))
    eas = [rng.standard_normal((ei.shape[1], 2)) for ei in eis]
    conv = TransformerConv(F_IN, C, heads=2, concat=False, beta=True, edge_dim=2, seed=11, dtype=np.float64)
    out = conv.forward(X, batch, np.concatenate(eas))
    G = rng.standard_normal(out.shape)
    dX = conv.backward(G)
    dE = conv.grad_edge_attr
    offs, eoffs = np.r_[0, np.cumsum(ns)], np.r_[0, np.cumsum([ei.shape[1] for ei in eis])]
    for k, (ei, n) in enumerate(zip(eis, ns)):
        rows, erows = slice(offs[k], offs[k + 1]), slice(eoffs[k], eoffs[k + 1])
        alone = conv.forward(X[rows], Graph.from_edge_index(ei, n), eas[k])
        np.testing.assert_allclose(out[rows], alone, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(dX[rows], conv.backward(G[rows]), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(dE[erows], conv.grad_edge_attr, rtol=1e-11, atol=1e-13)


def test_head_graphs_follow_their_definition():
    ei = messy_edge_index(12, n=6, E=10)
    g = Graph.from_edge_index(ei, 6)
    Hh = 3
    gH, gE, pos = head_graph(g, Hh), edge_feature_graph(g, Hh), head_positions(g, Hh)
    dst = g.dst_of_edge()
    assert gH.shape == (6 * Hh, 6 * Hh) and gE.shape == (6 * Hh, g.num_edges * Hh)
    assert sorted(pos.ravel()) == list(range(g.num_edges * Hh))          # a bijection (edge, head) -> position
    gH_dst, gE_dst = gH.dst_of_edge(), gE.dst_of_edge()
    for e in range(g.num_edges):
        for h in range(Hh):
            p = pos[e, h]
            assert gH_dst[p] == gE_dst[p] == dst[e] * Hh + h
            assert gH.indices[p] == g.indices[e] * Hh + h
            assert gE.indices[p] == g.edge_id[e] * Hh + h
    assert head_graph(g, Hh) is gH                                       # built once per graph


def test_graph_without_edges_gives_the_skip_and_zero_edge_gradient():
    g = Graph.from_edge_index(np.zeros((2, 0), np.int64), 4)
    conv = TransformerConv(F_IN, C, heads=2, edge_dim=2, seed=13, dtype=np.float64)
    X = np.random.default_rng(14).standard_normal((4, F_IN))
    out = conv.forward(X, g, np.zeros((0, 2)))
    np.testing.assert_allclose(out, conv.lin_skip.forward(X), rtol=1e-14)
    conv.forward(X, g, np.zeros((0, 2)))
    G = np.ones_like(out)
    dX = conv.backward(G)
    np.testing.assert_allclose(dX, G @ conv.lin_skip.params["W"].T, rtol=1e-13)
    assert conv.grad_edge_attr.shape == (0, 2)


def test_dropout_is_identity_in_eval_and_repeatable_with_one_seed():
    g = Graph.from_edge_index(messy_edge_index(15), 9)
    X = np.random.default_rng(16).standard_normal((9, F_IN)).astype(np.float32)
    a = TransformerConv(F_IN, C, heads=2, dropout=0.5, seed=17)
    b = TransformerConv(F_IN, C, heads=2, dropout=0.5, seed=17)
    c = TransformerConv(F_IN, C, heads=2, dropout=0.0, seed=17)
    out = a.forward(X, g)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, b.forward(X, g))                     # same seed, same bits
    assert not np.array_equal(a.forward(X, g), c.forward(X, g))              # dropout did something
    np.testing.assert_array_equal(a.eval().forward(X, g), c.eval().forward(X, g))


def test_bad_input_raises_one_clear_line():
    ei = messy_edge_index(18)
    g = Graph.from_edge_index(ei, 9)
    X = np.zeros((9, F_IN))
    conv = TransformerConv(F_IN, C, edge_dim=2, dtype=np.float64)
    with pytest.raises(ValueError, match="needs edge_attr of shape"):
        conv.forward(X, g)
    with pytest.raises(ValueError, match="edge_attr"):
        conv.forward(X, g, np.zeros((ei.shape[1] + 1, 2)))
    with pytest.raises(ValueError, match="no edge_dim"):
        TransformerConv(F_IN, C, dtype=np.float64).forward(X, g, np.zeros((ei.shape[1], 2)))
    with pytest.raises(ValueError, match="edge_index"):        # self-loops added: edges without features
        conv.forward(X, g.with_self_loops(), np.zeros((g.with_self_loops().num_edges, 2)))
    with pytest.raises(ValueError, match="dropout"):
        TransformerConv(F_IN, C, dropout=1.0)
    with pytest.raises(TypeError, match="concat"):
        TransformerConv(F_IN, C, concat="yes")
    with pytest.raises(ValueError, match="graph"):
        conv.forward(X, None, np.zeros((ei.shape[1], 2)))
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        TransformerConv(F_IN, C, dtype=np.float64).forward(bad, g)


def _cuda_or_skip():
    """numba.cuda when a GPU or Numba's simulator (NUMBA_ENABLE_CUDASIM=1, set before the run) is there."""
    pytest.importorskip("numba.cuda")
    from numba import cuda
    try:
        from numba.cuda.core import config
    except ImportError:
        import numba as config_module
        config = config_module.config
    if not (getattr(config, "ENABLE_CUDASIM", 0) or cuda.is_available()):
        pytest.skip("no CUDA GPU and the simulator is off (NUMBA_ENABLE_CUDASIM=1 runs this on the CPU)")
    return cuda


def test_device_path_equals_the_host():
    """One code path: the layer moved with .to("cuda") gives the host's output and gradients (beta gate, edge_attr)."""
    cuda = _cuda_or_skip()
    ei = messy_edge_index(20, n=7, E=10)
    g = Graph.from_edge_index(ei, 7)
    rng = np.random.default_rng(21)
    X, ea, G = rng.standard_normal((7, F_IN)), rng.standard_normal((ei.shape[1], 2)), rng.standard_normal((7, 6))
    conv = TransformerConv(F_IN, 3, heads=2, beta=True, edge_dim=2, seed=22, dtype=np.float64)
    out, dX = conv.forward(X, g, ea), conv.backward(G)
    host = {name: gr.copy() for name, _, gr in conv.named_parameters()}
    dE = conv.grad_edge_attr
    conv.zero_grad()
    conv.to("cuda")
    out_d = conv.forward(cuda.to_device(X), g.to("cuda"), cuda.to_device(ea))
    dX_d = conv.backward(cuda.to_device(G))
    np.testing.assert_allclose(out_d.copy_to_host(), out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dX_d.copy_to_host(), dX, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(conv.grad_edge_attr.copy_to_host(), dE, rtol=1e-11, atol=1e-13)
    for name, _, gr in conv.named_parameters():
        np.testing.assert_allclose(gr.copy_to_host(), host[name], rtol=1e-11, atol=1e-13, err_msg=name)
