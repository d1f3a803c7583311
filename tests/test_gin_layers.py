"""Graph classification's layers: the readouts, BatchNorm1d and GINConv -- definitions, errors, kernels, device, PyG."""
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch import ops
from gnn_scratch.device import to_host
from gnn_scratch.gradcheck import gin as gin_cases
from gnn_scratch.gradcheck import relative_error
from gnn_scratch.graph import Graph, GraphBatch
from gnn_scratch.kernels import registry
from gnn_scratch.nn import (BackwardBeforeForward, BatchNorm, BatchNorm1d, GINConv, GlobalAddPool, GlobalMaxPool,
                            GlobalMeanPool, Linear, ReLU, Sequential)

F64 = np.float64
REPO = Path(__file__).resolve().parents[1]


def random_graph(seed, n, num_edges, weighted=False):
    """A random directed graph on n >= 3 nodes: the last node isolated, a self-loop 0 -> 0, the edge 1 -> 2 twice."""
    rng = np.random.default_rng(seed)
    src = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 1, 1]])
    dst = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 2, 2]])
    w = rng.uniform(0.5, 2.0, src.size) if weighted else None
    return Graph.from_edge_index(np.stack([src, dst]), n, w)


def random_batch(seed, sizes=(7, 3, 9, 5), weighted=False):
    """A GraphBatch of random graphs of the given sizes and a one-node graph without edges (after the first)."""
    gs = [random_graph(seed + k, n, 2 * n, weighted) for k, n in enumerate(sizes)]
    single = Graph.from_edge_index(np.zeros((2, 0), np.int64), 1, np.zeros(0) if weighted else None)
    return GraphBatch.from_graphs(gs[:1] + [single] + gs[1:])


def edge_index(g):
    """The (2, E) edge_index of a graph in CSR order (source, target)."""
    return np.stack([g.indices.astype(np.int64), g.dst_of_edge().astype(np.int64)])


def run(module, x, g, G):
    """(out, dx, {param: grad}) of one forward and backward with upstream gradient G."""
    out = module(x, g)
    module.zero_grad()
    dx = module.backward(G)
    return out, dx, {name: np.array(to_host(g)) for name, _, g in module.named_parameters()}


# =========================================================================== gradient checks
@pytest.mark.parametrize("name", ["global pooling", "BatchNorm1d", "GINConv", "GINConv eval",
                                  "GINConv + global_add_pool"])
def test_gradcheck_rows_pass(name, backend):
    rows = getattr(gin_cases, {"global pooling": "global_pooling", "BatchNorm1d": "batch_norm_rows",
                               "GINConv": "gin_conv", "GINConv eval": "gin_conv_eval",
                               "GINConv + global_add_pool": "gin_readout"}[name])()
    assert rows
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


def test_gradcheck_fixture_has_what_it_promises():
    b = gin_cases.fixture_batch()
    sizes = np.diff(b.graph_ptr)
    assert 1 in sizes                                                   # a one-node graph
    g0 = b.graph(0)
    assert g0.in_degree()[-1] == 0 and g0.to_scipy().T.toarray()[:, -1].sum() == 0     # an isolated node
    ei = edge_index(g0)
    assert np.any(ei[0] == ei[1])                                       # a self-loop
    assert len({tuple(e) for e in ei.T}) < ei.shape[1]                  # a repeated edge


# =========================================================================== readouts
def dense_pools(x, b):
    parts = b.unbatch(x)
    return (np.stack([p.sum(0) for p in parts]), np.stack([p.mean(0) for p in parts]),
            np.stack([p.max(0) for p in parts]))


def test_readouts_equal_their_definitions_forward_and_backward(backend):
    b = random_batch(0)
    rng = np.random.default_rng(1)
    x, G = rng.standard_normal((b.num_nodes, 4)), rng.standard_normal((b.num_graphs, 4))
    add, mean, mx = dense_pools(x, b)
    sizes = np.diff(b.graph_ptr)
    for module, want, dx_want in [
            (GlobalAddPool(), add, np.repeat(G, sizes, axis=0)),
            (GlobalMeanPool(), mean, np.repeat(G / sizes[:, None], sizes, axis=0)),
            (GlobalMaxPool(), mx, None)]:
        out = module(x, b)
        np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-14)
        dx = module.backward(G)
        if dx_want is None:                                             # max: G to the winner of each (graph, feature)
            dx_want = np.zeros_like(x)
            for k, (lo, hi) in enumerate(zip(b.graph_ptr[:-1], b.graph_ptr[1:])):
                win = lo + np.argmax(x[lo:hi], axis=0)
                dx_want[win, np.arange(4)] = G[k]
        np.testing.assert_allclose(dx, dx_want, rtol=1e-13, atol=1e-14)


def test_functional_readouts_match_the_modules():
    b = random_batch(2)
    x = np.random.default_rng(3).standard_normal((b.num_nodes, 3))
    np.testing.assert_array_equal(ops.global_add_pool(x, b), GlobalAddPool()(x, b))
    np.testing.assert_array_equal(ops.global_mean_pool(x, b), GlobalMeanPool()(x, b))
    out, argmax = ops.global_max_pool(x, b, return_argmax=True)
    np.testing.assert_array_equal(ops.global_max_pool(x, b), out)
    assert argmax.dtype == np.int64 and argmax.shape == (b.num_graphs, 3)
    for k in range(b.num_graphs):                                       # each winner lies in its own graph
        assert np.all((b.graph_ptr[k] <= argmax[k]) & (argmax[k] < b.graph_ptr[k + 1]))


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
def test_max_pool_tie_rule_first_node_of_the_graph_wins(implementation):
    b = GraphBatch.from_graphs([Graph.from_edge_index(np.zeros((2, 0), np.int64), n) for n in (3, 4)])
    x = np.array([[1.0, 5.0], [2.0, 5.0], [2.0, 0.0],           # graph 0: ties 2.0 (nodes 1, 2) and 5.0 (0, 1)
                  [7.0, -1.0], [7.0, -1.0], [7.0, -1.0], [0.0, -1.0]])
    G = np.array([[10.0, 20.0], [30.0, 40.0]])
    registry.set_cpu_backend(implementation)
    try:
        out, argmax = ops.global_max_pool(x, b, return_argmax=True)
        dx = ops.global_max_pool_backward(b, argmax, G)
    finally:
        registry.set_cpu_backend("cpu")
    np.testing.assert_array_equal(out, [[2.0, 5.0], [7.0, -1.0]])
    np.testing.assert_array_equal(argmax, [[1, 0], [3, 3]])
    want = np.zeros_like(x)
    want[1, 0], want[0, 1], want[3, 0], want[3, 1] = 10.0, 20.0, 30.0, 40.0
    np.testing.assert_array_equal(dx, want)


def test_readout_errors_name_the_argument():
    b = random_batch(0)
    N = b.num_nodes
    with pytest.raises(ValueError, match=r"^GlobalAddPool.forward needs the batch: forward\(x, batch\)$"):
        GlobalAddPool()(np.zeros((N, 2)))
    with pytest.raises(TypeError, match=r"^batch must be a gnn_scratch GraphBatch"):
        GlobalMeanPool()(np.zeros((N, 2)), Graph.from_edge_index(np.zeros((2, 0), np.int64), N))
    with pytest.raises(ValueError, match=rf"^x must have shape \({N}, F\) for a graph with {N} nodes, got \({N - 1}, 2\)$"):
        GlobalMaxPool()(np.zeros((N - 1, 2)), b)
    with pytest.raises(TypeError, match=r"^x must be float32 or float64, got int64$"):
        GlobalAddPool()(np.zeros((N, 2), np.int64), b)
    bad = np.zeros((N, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^x must be finite, got nan at row 3, column 1$"):
        GlobalAddPool()(bad, b)
    with pytest.raises(TypeError, match=r"^GlobalAddPool needs dense x"):
        GlobalAddPool()(sp.csr_matrix(np.ones((N, 2))), b)
    with pytest.raises(BackwardBeforeForward):
        GlobalMaxPool().backward(np.zeros((b.num_graphs, 2)))
    pool = GlobalAddPool()
    pool(np.zeros((N, 2)), b)
    with pytest.raises(ValueError, match=rf"^grad_out must have shape \({b.num_graphs}, 2\)"):
        pool.backward(np.zeros((N, 2)))
    # the functional forms check what they are given, too
    with pytest.raises(TypeError, match=r"^ops.global_add_pool: batch must be a gnn_scratch GraphBatch"):
        ops.global_add_pool(np.zeros((N, 2)), np.arange(N))
    with pytest.raises(ValueError, match=rf"^ops.global_mean_pool: x must have shape \({N}, F\), got \(3,\)$"):
        ops.global_mean_pool(np.zeros(3), b)
    with pytest.raises(ValueError, match=rf"^ops.global_add_pool_backward: G must have shape \({b.num_graphs}, F\)"):
        ops.global_add_pool_backward(b, np.zeros((N, 2)))
    _, argmax = ops.global_max_pool(np.ones((N, 2)), b, return_argmax=True)
    with pytest.raises(TypeError, match=r"^ops.global_max_pool_backward: argmax must be int64"):
        ops.global_max_pool_backward(b, argmax.astype(np.int32), np.zeros((b.num_graphs, 2)))
    with pytest.raises(ValueError, match=r"^ops.global_max_pool_backward: argmax must have the shape of G"):
        ops.global_max_pool_backward(b, argmax[:, :1], np.zeros((b.num_graphs, 2)))


# =========================================================================== the kernels, beyond test_registry's examples
def _impl_outputs(name, implementation, args, outs):
    fn = registry.resolve(name, implementation)
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    fn(*args)
    return [args[i] for i in outs]


def kernel_cases():
    """(op, args, output indices): float32 and float64, wide features, a block's transpose, no affine, eval mode."""
    b = random_batch(4, sizes=(40, 3, 17, 300))
    rng = np.random.default_rng(5)
    cases = []
    for dt in (np.float32, np.float64):
        N, F, B = b.num_nodes, 37, b.num_graphs
        x, G = rng.standard_normal((N, F)).astype(dt), rng.standard_normal((B, F)).astype(dt)
        ptr = b.graph_ptr
        argmax = np.empty((B, F), np.int64)
        registry.resolve("pool_max", "reference")(ptr, x, np.empty((B, F), dt), argmax)
        cases += [("segment_sum", (ptr, x, np.empty((B, F), dt)), [2]),      # the sum readout's op
                  ("pool_mean", (ptr, x, np.empty((B, F), dt)), [2]),
                  ("pool_max", (ptr, x, np.empty((B, F), dt), np.empty((B, F), np.int64)), [2, 3]),
                  ("pool_sum_backward", (ptr, G, np.empty((N, F), dt)), [2]),
                  ("pool_mean_backward", (ptr, G, np.empty((N, F), dt)), [2]),
                  ("pool_max_backward", (ptr, argmax, G, np.empty((N, F), dt)), [3])]
        xb, Gb = (3 + 2 * rng.standard_normal((N, F))).astype(dt), rng.standard_normal((N, F)).astype(dt)
        mean, var = rng.standard_normal(F).astype(dt), (0.5 + rng.random(F)).astype(dt)
        gamma, beta, none = rng.standard_normal(F).astype(dt), rng.standard_normal(F).astype(dt), np.zeros(0, dt)
        cases += [("batch_norm_stats", (xb, 0.1, np.empty(F, dt), np.empty(F, dt), mean.copy(), var.copy()), [2, 3, 4, 5]),
                  ("batch_norm_stats", (xb, 0.0, np.empty(F, dt), np.empty(F, dt), none, none), [2, 3]),
                  ("batch_norm_forward", (xb, mean, var, 1e-5, gamma, beta, np.empty((N, F), dt)), [6]),
                  ("batch_norm_forward", (xb, mean, var, 1e-3, none, none, np.empty((N, F), dt)), [6])]
        for stats in (True, False):
            for gm in (gamma, none):
                cases.append(("batch_norm_backward", (Gb, xb, mean, var, 1e-5, gm, stats, np.empty((N, F), dt),
                                                      np.empty(F, dt), np.empty(F, dt)), [7, 8, 9]))
        blk = gin_cases.random_test_graph(3, 30, 90, num_src=45)
        eps = np.array([0.25], dt)
        xs, Gd = rng.standard_normal((45, F)).astype(dt), rng.standard_normal((30, F)).astype(dt)
        cases += [("gin_aggregate", (b.indptr, b.indices, x, eps, np.empty((N, F), dt)), [4]),
                  ("gin_aggregate", (blk.indptr, blk.indices, xs, eps, np.empty((30, F), dt)), [4]),
                  ("gin_aggregate", (blk.t_indptr, blk.t_indices, Gd, eps, np.empty((45, F), dt)), [4])]
    return cases


def test_cpu_kernels_equal_the_reference_and_repeat_bit_for_bit():
    for name, args, outs in kernel_cases():
        want = _impl_outputs(name, "reference", args, outs)
        got = _impl_outputs(name, "cpu", args, outs)
        again = _impl_outputs(name, "cpu", args, outs)
        for i, w, o, a in zip(outs, want, got, again):
            assert o.dtype == w.dtype, (name, i)
            np.testing.assert_array_equal(o, a, err_msg=f"{name}: argument {i} differs between two runs")
            rtol = 1e-5 if w.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(o, w, rtol=rtol, atol=rtol, err_msg=f"{name} ({w.dtype}): argument {i}")


def test_pool_kernels_are_parallel_over_graphs_with_the_reference_sums():
    """The pool sums run in node order on one thread per graph: the same bits as the reference."""
    for name, args, outs in kernel_cases():
        if name.startswith("pool_") or name == "gin_aggregate":
            for i, w, o in zip(outs, _impl_outputs(name, "reference", args, outs), _impl_outputs(name, "cpu", args, outs)):
                np.testing.assert_array_equal(o, w, err_msg=f"{name}: argument {i}")


# =========================================================================== BatchNorm1d
def test_batchnorm_training_normalises_and_updates_the_running_statistics(backend):
    rng = np.random.default_rng(6)
    bn = BatchNorm1d(5, momentum=0.2, dtype=F64)
    bn.params["gamma"][:], bn.params["beta"][:] = rng.uniform(0.5, 2, 5), rng.standard_normal(5)
    rm, rv = np.zeros(5), np.ones(5)
    for step in range(3):
        x = 2 + 3 * rng.standard_normal((11, 5))
        y = bn(x)
        x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
        np.testing.assert_allclose(y, x_hat * bn.params["gamma"] + bn.params["beta"], rtol=1e-12, atol=1e-12)
        rm, rv = 0.8 * rm + 0.2 * x.mean(0), 0.8 * rv + 0.2 * x.var(0, ddof=1)
        np.testing.assert_allclose(bn.buffers["running_mean"], rm, rtol=1e-13)
        np.testing.assert_allclose(bn.buffers["running_var"], rv, rtol=1e-13)
    assert bn.num_batches_tracked == 3
    bn.eval()
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(bn(x), (x - rm) / np.sqrt(rv + 1e-5) * bn.params["gamma"] + bn.params["beta"],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(bn.buffers["running_mean"], rm)      # eval mode leaves them alone


def test_batchnorm_momentum_none_is_a_cumulative_average_and_no_tracking_means_batch_stats():
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((6, 3)) for _ in range(4)]
    bn = BatchNorm1d(3, momentum=None, dtype=F64)
    for x in xs:
        bn(x)
    np.testing.assert_allclose(bn.buffers["running_mean"], np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], np.mean([x.var(0, ddof=1) for x in xs], axis=0), rtol=1e-12)
    free = BatchNorm1d(3, track_running_stats=False, affine=False, dtype=F64).eval()
    assert free.buffers == {} and free.params == {}
    np.testing.assert_allclose(free(xs[0]), (xs[0] - xs[0].mean(0)) / np.sqrt(xs[0].var(0) + 1e-5), rtol=1e-12)


def test_batchnorm_single_row_and_state_dict():
    bn = BatchNorm1d(2, dtype=F64)
    with pytest.raises(ValueError, match=r"^BatchNorm1d with batch statistics needs more than 1 row per feature, "
                                         r"got x of shape \(1, 2\)"):
        bn(np.ones((1, 2)))
    single = BatchNorm1d(2, allow_single_element=True, dtype=F64)
    single.buffers["running_mean"][:] = [1.0, 2.0]
    np.testing.assert_allclose(single(np.array([[3.0, 2.0]])), [[2.0 / np.sqrt(1 + 1e-5), 0.0]], rtol=1e-14)
    assert single.num_batches_tracked == 0
    bn(np.random.default_rng(0).standard_normal((5, 2)))
    state = bn.state_dict()
    assert set(state) == {"gamma", "beta", "running_mean", "running_var"}
    other = BatchNorm1d(2, dtype=F64)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.buffers["running_var"], bn.buffers["running_var"])
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.buffers["running_var"], [1.0, 1.0])
    assert BatchNorm is BatchNorm1d


def test_batchnorm_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^in_channels must be a positive int, got 0$"):
        BatchNorm1d(0)
    with pytest.raises(ValueError, match=r"^eps must be a positive number, got 0$"):
        BatchNorm1d(3, eps=0)
    with pytest.raises(ValueError, match=r"^momentum must be in \[0, 1\] or None"):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(TypeError, match=r"^affine must be a bool, got 1$"):
        BatchNorm1d(3, affine=1)
    with pytest.raises(ValueError, match=r"^allow_single_element requires track_running_stats=True"):
        BatchNorm1d(3, track_running_stats=False, allow_single_element=True)
    bn = BatchNorm1d(3, dtype=F64)
    with pytest.raises(ValueError, match=r"^x must have shape \(N, 3\) for in_channels=3, got \(4, 2\)$"):
        bn(np.zeros((4, 2)))
    with pytest.raises(TypeError, match=r"^x must have the layer's dtype float64, got float32$"):
        bn(np.zeros((4, 3), np.float32))
    with pytest.raises(BackwardBeforeForward):
        bn.backward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"^ops.batch_norm: mean must have shape \(3,\), got \(2,\)$"):
        ops.batch_norm(np.zeros((4, 3)), np.zeros(2), np.ones(3), 1e-5)


def test_batchnorm_backward_follows_the_forward_not_the_current_mode():
    rng = np.random.default_rng(8)
    x, G = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    bn = BatchNorm1d(3, dtype=F64)
    bn(x)
    train_dx = bn.backward(G)
    bn.eval()
    bn.zero_grad()
    eval_dx = bn.backward(G)                        # the cache is still the training forward's
    np.testing.assert_array_equal(eval_dx, train_dx)
    np.testing.assert_allclose(train_dx.sum(0), 0, atol=1e-12)        # batch statistics: dX sums to 0 per feature


# =========================================================================== GINConv
def mlp(F_in, F_hidden, F_out, seed, bn=True):
    layers = dict(lin1=Linear(F_in, F_hidden, seed=seed, dtype=F64))
    if bn:
        layers["bn"] = BatchNorm1d(F_hidden, dtype=F64)
    layers.update(act=ReLU(), lin2=Linear(F_hidden, F_out, seed=seed + 1, dtype=F64))
    m = Sequential(**layers)
    rng = np.random.default_rng(seed)
    m.lin1.params["b"][:] = rng.standard_normal(F_hidden)
    m.lin2.params["b"][:] = rng.standard_normal(F_out)
    return m


@pytest.mark.parametrize("train_eps", [False, True])
def test_ginconv_equals_its_dense_definition_and_ignores_edge_weights(train_eps, backend):
    b, bw = random_batch(9), random_batch(9, weighted=True)
    x = np.random.default_rng(10).standard_normal((b.num_nodes, 4))
    A = sp.csr_matrix((np.ones(b.num_edges), b.indices, b.indptr), shape=b.shape).toarray()   # repeated edges count
    conv = GINConv(mlp(4, 6, 3, 1, bn=False), eps=0.7, train_eps=train_eps)
    H = 1.7 * x + A @ x
    want = np.maximum(H @ conv.nn.lin1.params["W"] + conv.nn.lin1.params["b"], 0) @ conv.nn.lin2.params["W"] \
        + conv.nn.lin2.params["b"]
    np.testing.assert_allclose(conv(x, b), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(conv(x, bw), conv(x, b))
    assert ("eps" in conv.params) == train_eps and ("eps" in conv.buffers) != train_eps


def test_ginconv_on_a_batch_equals_each_graph_alone():
    """Without BatchNorm (whose statistics span the batch) a GIN layer is per-graph: blocks of the batch."""
    sizes = (6, 4, 8)
    b = random_batch(11, sizes)
    rng = np.random.default_rng(12)
    x, G = rng.standard_normal((b.num_nodes, 3)), rng.standard_normal((b.num_nodes, 2))
    conv = GINConv(mlp(3, 5, 2, 2, bn=False), eps=-0.4, train_eps=True)
    out, dx, grads = run(conv, x, b, G)
    parts = [run(conv, xk, b.graph(k), Gk) for k, (xk, Gk) in enumerate(zip(b.unbatch(x), b.unbatch(G)))]
    np.testing.assert_allclose(out, np.concatenate([p[0] for p in parts]), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, np.concatenate([p[1] for p in parts]), rtol=1e-12, atol=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads[k], sum(p[2][k] for p in parts), rtol=1e-12, atol=1e-13, err_msg=k)


def test_ginconv_train_and_eval_reach_the_inner_nn_and_needs_input_grad():
    conv = GINConv(mlp(3, 4, 2, 3), train_eps=True)
    conv.eval()
    assert not conv.nn.bn.training
    conv.train()
    assert conv.nn.bn.training
    assert [n for n, _, _ in conv.named_parameters()] == ["eps", "nn.lin1.W", "nn.lin1.b", "nn.bn.gamma",
                                                         "nn.bn.beta", "nn.lin2.W", "nn.lin2.b"]
    assert set(conv.state_dict()) >= {"eps", "nn.bn.running_mean", "nn.bn.running_var"}
    b = random_batch(13)
    rng = np.random.default_rng(14)
    x, G = rng.standard_normal((b.num_nodes, 3)), rng.standard_normal((b.num_nodes, 2))
    _, dx, grads = run(conv, x, b, G)
    conv.needs_input_grad = False
    _, dx_none, grads_none = run(conv, x, b, G)
    assert dx.shape == x.shape and dx_none is None
    for k in grads:
        np.testing.assert_array_equal(grads_none[k], grads[k], err_msg=k)


def test_ginconv_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"^nn must be a gnn_scratch Module"):
        GINConv(lambda x: x)
    with pytest.raises(TypeError, match=r"^train_eps must be a bool, got 1$"):
        GINConv(mlp(3, 4, 2, 0), train_eps=1)
    with pytest.raises(ValueError, match=r"^eps must be a finite number, got inf$"):
        GINConv(mlp(3, 4, 2, 0), eps=float("inf"))
    conv = GINConv(mlp(3, 4, 2, 0))
    assert conv.dtype == F64
    b = random_batch(0)
    N = b.num_nodes
    with pytest.raises(ValueError, match=r"^GINConv.forward needs the graph: forward\(x, graph\)$"):
        conv(np.zeros((N, 3)))
    with pytest.raises(ValueError, match=rf"^x must have shape \({N}, 3\) for a graph with {N} nodes and in_channels=3, "
                                         rf"got \({N - 1}, 3\)$"):
        conv(np.zeros((N - 1, 3)), b)
    with pytest.raises(ValueError, match=rf"^x must have shape \({N}, 3\) .* got \({N}, 4\)$"):
        conv(np.zeros((N, 4)), b)                                # the width nn's first Linear takes, named here
    with pytest.raises(TypeError, match=r"^x must have the layer's dtype float64, got float32$"):
        conv(np.zeros((N, 3), np.float32), b)
    with pytest.raises(TypeError, match=r"^GINConv needs dense x"):
        conv(sp.csr_matrix(np.ones((N, 3))), b)
    with pytest.raises(BackwardBeforeForward):
        GINConv(mlp(3, 4, 2, 0)).backward(np.zeros((N, 2)))


# =========================================================================== the device (CUDA simulator or GPU)
def test_gin_batchnorm_and_readouts_on_the_device_equal_the_cpu():
    pytest.importorskip("numba.cuda")
    from gnn_scratch import device
    from gnn_scratch.kernels.cuda import require_cuda
    try:
        require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    b = random_batch(15, sizes=(5, 4))
    rng = np.random.default_rng(16)
    x, G = rng.standard_normal((b.num_nodes, 3)), rng.standard_normal((b.num_graphs, 2))

    def model():
        conv = GINConv(mlp(3, 4, 2, 5), eps=0.2, train_eps=True)
        return Sequential(conv=conv, pool=GlobalAddPool())

    results = []
    for where in ("cpu", "cuda"):
        m = model()
        if where == "cuda":
            m.to("cuda")
        xs, gs, Gs = (x, b, G) if where == "cpu" else (device.to_device(x), b.to("cuda"), device.to_device(G))
        out, dx, grads = run(m, xs, gs, Gs)
        state = m.state_dict()                     # running statistics came back from the device too
        m.eval()
        ev = m(xs, gs)
        results.append([to_host(out), to_host(dx), grads, state, to_host(ev)])
    (o0, d0, g0, s0, e0), (o1, d1, g1, s1, e1) = results
    np.testing.assert_allclose(o1, o0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d1, d0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(e1, e0, rtol=1e-10, atol=1e-12)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-10, atol=1e-12, err_msg=k)
    for k in s0:
        np.testing.assert_allclose(s1[k], s0[k], rtol=1e-10, atol=1e-12, err_msg=k)
    # and the other two readouts
    Gp = rng.standard_normal((b.num_graphs, 3))
    for pool in (GlobalMeanPool(), GlobalMaxPool()):
        want = run(pool, x, b, Gp)
        got = run(pool, device.to_device(x), b.to("cuda"), device.to_device(Gp))
        np.testing.assert_allclose(to_host(got[0]), want[0], rtol=1e-12)
        np.testing.assert_allclose(to_host(got[1]), want[1], rtol=1e-12)


# =========================================================================== the derivations' snippets run
@pytest.mark.parametrize("page", ["pooling.md", "batch_norm.md", "gin_conv.md"])
def test_derivation_snippets_run(page):
    text = (REPO / "derivations" / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{page} has no Python block"
    for code in blocks:
        exec(compile(code, page, "exec"), {})


# =========================================================================== PyG
def _torch_pyg():
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    return torch, pyg


@pytest.mark.oracle
def test_readouts_equal_torch_geometric():
    torch, pyg = _torch_pyg()
    for seed in range(3):
        b = random_batch(20 + seed)
        rng = np.random.default_rng(seed)
        x, G = rng.standard_normal((b.num_nodes, 5)), rng.standard_normal((b.num_graphs, 5))   # continuous: no ties
        bt = torch.from_numpy(b.batch)
        for ours, theirs in ((GlobalAddPool(), pyg.global_add_pool), (GlobalMeanPool(), pyg.global_mean_pool),
                             (GlobalMaxPool(), pyg.global_max_pool)):
            out, dx, _ = run(ours, x, b, G)
            xt = torch.from_numpy(x).requires_grad_(True)
            yt = theirs(xt, bt)
            yt.backward(torch.from_numpy(G))
            assert relative_error(out, yt.detach().numpy()) <= 1e-10, (seed, type(ours).__name__)
            assert relative_error(dx, xt.grad.numpy()) <= 1e-10, (seed, type(ours).__name__)


def _copy_bn(torch, ours, theirs):
    with torch.no_grad():
        if ours.affine:
            theirs.weight.copy_(torch.from_numpy(ours.params["gamma"]))
            theirs.bias.copy_(torch.from_numpy(ours.params["beta"]))
        if ours.track_running_stats:
            theirs.running_mean.copy_(torch.from_numpy(ours.buffers["running_mean"]))
            theirs.running_var.copy_(torch.from_numpy(ours.buffers["running_var"]))


@pytest.mark.oracle
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_equals_torch_geometric_in_training_and_eval(momentum, affine):
    torch, pyg = _torch_pyg()
    rng = np.random.default_rng(30)
    ours = BatchNorm1d(6, momentum=momentum, affine=affine, dtype=F64)
    if affine:
        ours.params["gamma"][:], ours.params["beta"][:] = rng.uniform(0.5, 2, 6), rng.standard_normal(6)
    theirs = pyg.BatchNorm(6, momentum=momentum, affine=affine).double()
    _copy_bn(torch, ours, theirs.module)
    for step, mode in enumerate(["train", "train", "train", "eval", "train", "eval"]):
        ours.train(mode == "train")
        theirs.train(mode == "train")
        x, G = 1 + 2 * rng.standard_normal((13, 6)), rng.standard_normal((13, 6))
        out, dx, grads = run(ours, x, None, G)
        xt = torch.from_numpy(x).requires_grad_(True)
        theirs.zero_grad()
        yt = theirs(xt)
        yt.backward(torch.from_numpy(G))
        checks = [("out", out, yt.detach().numpy()), ("x", dx, xt.grad.numpy()),
                  ("running_mean", ours.buffers["running_mean"], theirs.module.running_mean.numpy()),
                  ("running_var", ours.buffers["running_var"], theirs.module.running_var.numpy())]
        if affine:
            checks += [("gamma", grads["gamma"], theirs.module.weight.grad.numpy()),
                       ("beta", grads["beta"], theirs.module.bias.grad.numpy())]
        for name, a, t in checks:
            assert relative_error(a, t) <= 1e-10, (step, mode, name, relative_error(a, t))
        assert ours.num_batches_tracked == int(theirs.module.num_batches_tracked)


def _torch_mlp(torch, ours):
    """torch Sequential(Linear, BatchNorm1d, ReLU, Linear) of our MLP's shape."""
    l1, bn, l2 = ours.lin1, ours.bn, ours.lin2
    return torch.nn.Sequential(torch.nn.Linear(*l1.params["W"].shape), torch.nn.BatchNorm1d(bn.in_channels),
                               torch.nn.ReLU(), torch.nn.Linear(*l2.params["W"].shape)).double()


def _copy_mlp(torch, ours, t):
    """Our MLP's parameters and running statistics into the torch one (Linear weights transposed)."""
    l1, bn, l2 = ours.lin1, ours.bn, ours.lin2
    with torch.no_grad():
        t[0].weight.copy_(torch.from_numpy(l1.params["W"].T))
        t[0].bias.copy_(torch.from_numpy(l1.params["b"]))
        t[3].weight.copy_(torch.from_numpy(l2.params["W"].T))
        t[3].bias.copy_(torch.from_numpy(l2.params["b"]))
    _copy_bn(torch, bn, t[1])


@pytest.mark.oracle
@pytest.mark.parametrize("train_eps", [False, True])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_ginconv_equals_torch_geometric(train_eps, mode):
    torch, pyg = _torch_pyg()
    for seed in range(3):
        b = random_batch(40 + seed)
        rng = np.random.default_rng(50 + seed)
        x, G = rng.standard_normal((b.num_nodes, 4)), rng.standard_normal((b.num_nodes, 3))
        inner = mlp(4, 8, 3, seed)
        inner.bn.params["gamma"][:] = rng.uniform(0.5, 2, 8)
        inner.bn.params["beta"][:] = rng.standard_normal(8)
        inner.bn.buffers["running_mean"][:] = rng.standard_normal(8)
        inner.bn.buffers["running_var"][:] = rng.uniform(0.5, 2, 8)
        conv = GINConv(inner, eps=0.3 * seed - 0.2, train_eps=train_eps)
        ref = pyg.GINConv(_torch_mlp(torch, inner), eps=0.3 * seed - 0.2, train_eps=train_eps).double()
        _copy_mlp(torch, inner, ref.nn)                # after the constructor, which re-initialises its nn
        with torch.no_grad():                          # PyG filled eps in float32 before .double(): -0.2 would be off
            ref.eps.fill_(0.3 * seed - 0.2)
        conv.train(mode == "train")
        ref.train(mode == "train")
        out, dx, grads = run(conv, x, b, G)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = ref(xt, torch.from_numpy(edge_index(b)))
        yt.backward(torch.from_numpy(G))
        t = ref.nn
        checks = [("out", out, yt.detach().numpy()), ("x", dx, xt.grad.numpy()),
                  ("nn.lin1.W", grads["nn.lin1.W"], t[0].weight.grad.numpy().T),
                  ("nn.lin1.b", grads["nn.lin1.b"], t[0].bias.grad.numpy()),
                  ("nn.bn.gamma", grads["nn.bn.gamma"], t[1].weight.grad.numpy()),
                  ("nn.bn.beta", grads["nn.bn.beta"], t[1].bias.grad.numpy()),
                  ("nn.lin2.W", grads["nn.lin2.W"], t[3].weight.grad.numpy().T),
                  ("nn.lin2.b", grads["nn.lin2.b"], t[3].bias.grad.numpy()),
                  ("running_mean", inner.bn.buffers["running_mean"], t[1].running_mean.numpy()),
                  ("running_var", inner.bn.buffers["running_var"], t[1].running_var.numpy())]
        if train_eps:
            checks.append(("eps", grads["eps"], ref.eps.grad.numpy()))
        for name, ours, theirs in checks:
            # in training mode the gradient of lin1.b is 0 in exact arithmetic (BatchNorm removes any shift):
            # both sides give round-off, compared with an absolute tolerance
            if name == "nn.lin1.b" and mode == "train":
                assert np.max(np.abs(ours - theirs)) <= 1e-12, (seed, name)
                continue
            assert relative_error(ours, theirs) <= 1e-10, (seed, name, relative_error(ours, theirs))


def test_forward_scans_keyword_inputs_and_max_pool_backward_refuses_a_foreign_argmax():
    from gnn_scratch import ops
    from gnn_scratch.graph import GraphBatch
    from gnn_scratch.nn import BatchNorm1d
    x = np.ones((4, 3), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="x must be finite, got nan at row 1, column 2"):
        BatchNorm1d(3).forward(x=x)
    b = GraphBatch.from_edge_indices([np.zeros((2, 0), np.int64)] * 2, [2, 3])
    argmax = np.array([[0, 1], [2, 1]])                         # graph 1 owns nodes 2..4: node 1 is not its own
    with pytest.raises(ValueError, match=r"argmax\[1, 1\] = 1 is not a node of graph 1 \(nodes 2 .. 4\)"):
        ops.global_max_pool_backward(b, argmax, np.ones((2, 2), np.float32))


def test_elementwise_layers_take_column_major_input():
    from gnn_scratch.nn import ReLU
    x = np.random.default_rng(0).standard_normal((40, 300)).T        # a transposed (column-major) view
    np.testing.assert_array_equal(ReLU().forward(x), np.maximum(x, 0))
