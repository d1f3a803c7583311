"""Graph attention: the fused kernels, the GATConv layer, the GAT model (derivations/gat.md).

What is checked, and against what:

1. the NumPy reference kernels (``kernels/gat_reference.py``) against a slow per-row loop written
   straight from the definition (``test_reference_*``);
2. the Numba kernels (``kernels/gat_cpu.py``) against the reference on hypothesis-drawn graphs
   (empty rows, bipartite blocks, E = 0, self-loops, repeated edges), with and without a dropout
   mask, float32 and float64 (``test_cpu_*``), and bit-for-bit repeatability across runs and
   thread counts;
3. the layer's two paths, fused and composed of the foundation ops, against each other: forward,
   input gradient and every parameter gradient, heads 1 and 3, concat and mean, attention dropout
   on (the same mask) and off, to 1e-6 (float32) and 1e-12 (float64) relative to the largest
   entry -- or, for the gradients of att_src / att_dst, which are sums that cancel, relative to
   the size of their terms (``attention_grad_scales``) -- (``test_fused_equals_unfused``);
4. PyG's ``GATConv`` (outputs, attention coefficients and gradients) when torch_geometric is
   installed;
5. the GAT model: config round trip, save/load, and one training run on Cora.
The finite-difference checks are the registered cases of ``gnn_scratch/gradcheck/gat.py``,
run by tests/test_gradcheck.py.
"""
import re
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph import Graph
from gnn_scratch.kernels import gat_cpu
from gnn_scratch.kernels import gat_reference as ref
from gnn_scratch.models import MODELS, build_model
from gnn_scratch.models.gat import GAT
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.conv.gat_conv import GATConv
from gnn_scratch.train import DEFAULTS

REPO = Path(__file__).resolve().parents[1]
RTOL = {np.float32: 1e-6, np.float64: 1e-12}
KERNEL_RTOL = {np.float32: 1e-5, np.float64: 1e-12}
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------- helpers
def rel_err(got, want):
    """max |got - want| / max |want|: the error relative to the array's scale (0 when both are 0)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    if want.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


def messy_graph(seed, n=40, E=200):
    """A random graph with an isolated node (n-1), self-loops, repeated edges and a node with no in-edge."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n - 1, E)
    dst = rng.integers(0, n - 2, E)             # node n-2 receives nothing (only its added self-loop)
    src = np.concatenate([src, [0, 3, 3, 5, 5]])
    dst = np.concatenate([dst, [0, 4, 4, 5, 5]])  # a self-loop, a repeated edge, a repeated self-loop
    return Graph.from_edge_index(np.stack([src, dst]), num_nodes=n)


def make_graph(src, dst, n_dst, n_src):
    """CSR with n_dst destination rows over n_src sources (bipartite when they differ)."""
    n = max(n_dst, n_src)
    square = Graph.from_edge_index(np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)]), n)
    if n_dst == n_src:
        return square
    return Graph.from_csr(square.indptr[: n_dst + 1], square.indices, num_src=n_src)


@st.composite
def graphs(draw):
    n_dst = draw(st.integers(1, 10))
    n_src = draw(st.one_of(st.just(n_dst), st.integers(n_dst, 12)))
    E = draw(st.integers(0, 40))
    src = draw(st.lists(st.integers(0, n_src - 1), min_size=E, max_size=E))
    dst = draw(st.lists(st.integers(0, n_dst - 1), min_size=E, max_size=E))
    return make_graph(src, dst, n_dst, n_src)


def kernel_inputs(g, H, F, dtype, seed, dropout):
    """Random a_dst, a_src, Z, keep_mask, grad_out for kernel-level tests."""
    rng = np.random.default_rng(seed)
    a_dst = (2 * rng.standard_normal((g.num_dst, H))).astype(dtype)
    a_src = (2 * rng.standard_normal((g.num_src, H))).astype(dtype)
    Z = rng.standard_normal((g.num_src, H, F)).astype(dtype)
    keep = ((rng.random((g.num_edges, H)) < 0.6).astype(np.uint8) if dropout
            else np.zeros((0, H), np.uint8))
    G = rng.standard_normal((g.num_dst, H, F)).astype(dtype)
    return a_dst, a_src, Z, keep, G


def run_forward(K, g, a_dst, a_src, Z, keep, scale=1 / 0.6, slope=0.2):
    dt = Z.dtype
    H, F = Z.shape[1:]
    out = np.full((g.num_dst, H, F), 7, dt)        # garbage: the kernel must overwrite everything
    row_max = np.full((g.num_dst, H), 7, dt)
    row_sum = np.full((g.num_dst, H), 7, dt)
    K.gat_forward(g.indptr, g.indices, a_dst, a_src, Z, dt.type(slope), keep, dt.type(scale), out, row_max,
                  row_sum)
    return out, row_max, row_sum


def run_backward(K, g, a_dst, a_src, Z, keep, row_max, row_sum, G, scale=1 / 0.6, slope=0.2):
    dt = Z.dtype
    H = Z.shape[1]
    grad_pre = np.full((g.num_edges, H), 7, dt)
    alpha_d = np.full((g.num_edges, H), 7, dt)
    grad_Z = np.full(Z.shape, 7, dt)
    grad_a_dst = np.full(a_dst.shape, 7, dt)
    grad_a_src = np.full(a_src.shape, 7, dt)
    K.gat_backward(g.indptr, g.indices, g.t_indptr, g.t_indices, g.t_perm, a_dst, a_src, Z, dt.type(slope), keep,
                   dt.type(scale), row_max, row_sum, G, grad_pre, alpha_d, grad_Z, grad_a_dst, grad_a_src)
    return grad_Z, grad_a_dst, grad_a_src, grad_pre, alpha_d


def slow_gat(g, a_dst, a_src, Z, keep, scale, slope=0.2):
    """GAT aggregation from the definition, one destination at a time with Python loops: (N_dst, H, F)."""
    H, F = Z.shape[1:]
    out = np.zeros((g.num_dst, H, F))
    for i in range(g.num_dst):
        edges = range(g.indptr[i], g.indptr[i + 1])
        for h in range(H):
            e_ = {e: a_dst[i, h] + a_src[g.indices[e], h] for e in edges}
            e_ = {e: v if v > 0 else slope * v for e, v in e_.items()}
            m = max(e_.values(), default=0.0)
            total = sum(np.exp(v - m) for v in e_.values())
            for e, v in e_.items():
                d = 1.0 if keep.shape[0] == 0 else keep[e, h] * scale
                out[i, h] += np.exp(v - m) / total * d * Z[g.indices[e], h]
    return out


# ---------------------------------------------------------------------------------- the reference kernels
@pytest.mark.parametrize("dropout", [False, True])
def test_reference_forward_matches_the_definition(dropout):
    g = messy_graph(0, n=12, E=40)
    a_dst, a_src, Z, keep, _ = kernel_inputs(g, 3, 4, np.float64, 1, dropout)
    out, row_max, row_sum = run_forward(ref, g, a_dst, a_src, Z, keep)
    np.testing.assert_allclose(out, slow_gat(g, a_dst, a_src, Z, keep, 1 / 0.6), rtol=1e-12, atol=1e-14)
    empty = g.in_degree() == 0
    assert empty.any()
    assert np.all(out[empty] == 0) and np.all(row_max[empty] == 0) and np.all(row_sum[empty] == 0)
    assert np.all(row_sum[~empty] >= 1)           # the max edge contributes exp(0) = 1


def test_reference_forward_is_stable_for_huge_scores():
    g = messy_graph(1, n=12, E=40)
    a_dst, a_src, Z, keep, _ = kernel_inputs(g, 2, 3, np.float64, 2, False)
    out, _, _ = run_forward(ref, g, 1e4 * a_dst, 1e4 * a_src, Z, keep)   # exp(1e4) overflows unless shifted
    assert np.all(np.isfinite(out))


def test_reference_backward_matches_the_composed_ops():
    """The fused backward formulas equal edge_softmax_backward & co. of the foundation reference."""
    from gnn_scratch.kernels import reference as base
    g = messy_graph(2, n=12, E=40)
    H, F = 3, 4
    a_dst, a_src, Z, keep, G = kernel_inputs(g, H, F, np.float64, 3, True)
    _, row_max, row_sum = run_forward(ref, g, a_dst, a_src, Z, keep)
    grad_Z, grad_a_dst, grad_a_src, _, _ = run_backward(ref, g, a_dst, a_src, Z, keep, row_max, row_sum, G)
    pre = np.empty((g.num_edges, H))
    base.sddmm_add(g.indptr, g.indices, a_dst, a_src, pre)
    alpha = np.empty_like(pre)
    base.edge_softmax(g.indptr, np.where(pre > 0, pre, 0.2 * pre), alpha)
    d = keep / 0.6
    g_alpha = np.empty_like(pre)
    base.sddmm_dot(g.indptr, g.indices, G, Z, g_alpha)
    grad_e = np.empty_like(pre)
    base.edge_softmax_backward(g.indptr, alpha, g_alpha * d, grad_e)
    grad_pre = grad_e * np.where(pre > 0, 1, 0.2)
    want_dst, want_src = np.empty((g.num_dst, H)), np.empty((g.num_src, H))
    base.segment_sum(g.indptr, grad_pre, want_dst)
    base.segment_sum_perm(g.t_indptr, g.t_perm, grad_pre, want_src)
    assert rel_err(grad_a_dst, want_dst) < 1e-12 and rel_err(grad_a_src, want_src) < 1e-12
    for h in range(H):
        want = np.empty((g.num_src, F))
        base.spmm_sum_perm(g.t_indptr, g.t_indices, g.t_perm, alpha[:, h] * d[:, h], G[:, h].copy(), want)
        assert rel_err(grad_Z[:, h], want) < 1e-12


# ---------------------------------------------------------------------------------- Numba against the reference
@SETTINGS
@given(graphs(), st.sampled_from([1, 3]), st.sampled_from([1, 5, 16]), st.booleans(),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def test_cpu_kernels_equal_the_reference(g, H, F, dropout, dtype, seed):
    a_dst, a_src, Z, keep, G = kernel_inputs(g, H, F, dtype, seed, dropout)
    fwd = [run_forward(K, g, a_dst, a_src, Z, keep) for K in (ref, gat_cpu)]
    tol = KERNEL_RTOL[dtype]
    np.testing.assert_array_equal(fwd[0][1], fwd[1][1])      # the max is exact
    # Errors are bounded relative to the size of the terms summed, not of the result: the
    # gradients w.r.t. a_dst and a_src are sums that cancel (a softmax Jacobian's rows sum to 0).
    deg = max(int(g.in_degree().max(initial=0)), int(g.out_degree().max(initial=0)), 1)
    terms = float(np.abs(Z).max(initial=0) * np.abs(G).max(initial=0)) * F / 0.6 * deg + 1e-30
    scales = [np.abs(Z).max(initial=0) / 0.6 + 1e-30, 1.0, deg, terms, terms, terms, terms, 1 / 0.6]
    for got, want, scale in zip(fwd[1], fwd[0], scales[:3]):
        assert got.dtype == want.dtype
        assert np.max(np.abs(got.astype(np.float64) - want), initial=0) <= tol * scale
    _, row_max, row_sum = fwd[0]
    bwd = [run_backward(K, g, a_dst, a_src, Z, keep, row_max, row_sum, G) for K in (ref, gat_cpu)]
    for got, want, scale in zip(bwd[1], bwd[0], scales[3:]):   # grad_Z, grad_a_dst, grad_a_src, grad_pre, alpha_d
        assert got.dtype == want.dtype
        assert np.max(np.abs(got.astype(np.float64) - want), initial=0) <= tol * scale


def test_cpu_kernels_repeat_bit_for_bit_across_runs_and_threads():
    g = messy_graph(3, n=3000, E=40000)
    a_dst, a_src, Z, keep, G = kernel_inputs(g, 4, 8, np.float32, 4, True)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in (old, old, 1):
            numba.set_num_threads(threads)
            out, row_max, row_sum = run_forward(gat_cpu, g, a_dst, a_src, Z, keep)
            results.append((out, row_max, row_sum)
                           + run_backward(gat_cpu, g, a_dst, a_src, Z, keep, row_max, row_sum, G))
    finally:
        numba.set_num_threads(old)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------- the layer: fused == unfused
def _run_layer(fused, X, g, heads, concat, dropout, dtype, G_seed=0, training=True, layer=False):
    conv = GATConv(X.shape[1], 5, heads=heads, concat=concat, dropout=dropout, seed=7, dtype=dtype, fused=fused)
    conv.params["b"][:] = np.random.default_rng(1).standard_normal(conv.params["b"].shape)
    conv.train(training)
    out = conv.forward(X, g)
    G = np.random.default_rng(G_seed).standard_normal(out.shape).astype(dtype)
    dX = conv.backward(G)
    res = [out, dX] + [conv.grads[k] for k in sorted(conv.grads)]
    return (res, conv, G) if layer else res


def attention_grad_scales(conv, G, slope=0.2):
    """Magnitudes of the terms summed into dL/datt_dst and dL/datt_src (float64), from conv's last forward.

    dL/datt_dst[h, f] = sum_i da_dst[i, h] Z[i, h, f] with da_dst[i] = sum_{e in row i} grad_pre[e] and
    grad_pre = alpha (g - s) slope: a sum that cancels (a softmax Jacobian's rows sum to 0, so
    da_dst is 0 wherever a row's scores sit on one side of the LeakyReLU kink). Its rounding error
    scales with sum_i sum_e alpha (|g| + |s|) slope |Z[i]|, not with the result; that is the scale
    returned here (max over entries), (scale_att_dst, scale_att_src).
    """
    g, _, Z, a_src, a_dst, keep, _ = conv._cache
    Z, a_src, a_dst = (np.asarray(a, np.float64) for a in (Z, a_src, a_dst))
    N_dst, H, F = g.num_dst, conv.heads, conv.out_channels
    G3 = G.reshape(N_dst, H, F) if conv.concat else np.broadcast_to(G[:, None, :] / H, (N_dst, H, F))
    rows, idx = g.dst_of_edge(), g.indices
    pre = a_dst[rows] + a_src[idx]
    e = np.where(pre > 0, pre, slope * pre)
    m = np.full((N_dst, H), -np.inf)
    np.maximum.at(m, rows, e)
    p = np.exp(e - m[rows])
    total = np.zeros((N_dst, H))
    np.add.at(total, rows, p)
    alpha = p / total[rows]
    d = 1.0 if keep.shape[0] == 0 else keep / (1 - conv.dropout)
    g_ = d * np.einsum("ehf,ehf->eh", G3[rows], Z[idx])
    s = np.zeros((N_dst, H))
    np.add.at(s, rows, alpha * g_)
    term = alpha * (np.abs(g_) + np.abs(s[rows])) * np.where(pre > 0, 1, slope)
    mag_dst, mag_src = np.zeros((N_dst, H)), np.zeros((g.num_src, H))
    np.add.at(mag_dst, rows, term)
    np.add.at(mag_src, idx, term)
    return (np.einsum("nh,nhf->hf", mag_dst, np.abs(Z[:N_dst])).max(),
            np.einsum("nh,nhf->hf", mag_src, np.abs(Z)).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("heads,concat", [(1, True), (3, True), (3, False)])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_fused_equals_unfused(dtype, heads, concat, dropout, backend):
    for seed in (0, 1):
        g = messy_graph(seed)
        X = np.random.default_rng(seed + 10).standard_normal((g.num_nodes, 6)).astype(dtype)
        fused, conv, G = _run_layer(True, X, g, heads, concat, dropout, dtype, layer=True)
        unfused = _run_layer(False, X, g, heads, concat, dropout, dtype)
        scale_att_dst, scale_att_src = attention_grad_scales(conv, G)
        for name, a, b in zip(["out", "dX", "W", "att_dst", "att_src", "b"], fused, unfused):
            assert a.dtype == dtype, name
            if name.startswith("att"):   # sums that cancel: error relative to the size of their terms
                scale = scale_att_dst if name == "att_dst" else scale_att_src
                err = float(np.max(np.abs(a.astype(np.float64) - b)) / scale)
            else:
                err = rel_err(a, b)
            assert err <= RTOL[dtype], f"{name}: fused vs unfused relative error {err:.2e}"


def test_fused_equals_unfused_on_a_bipartite_block_without_self_loops():
    g = make_graph(*np.random.default_rng(0).integers(0, 6, (2, 30)), 6, 9)   # 6 destinations of 9 sources
    X = np.random.default_rng(1).standard_normal((9, 4))
    res = []
    for fused in (True, False):
        conv = GATConv(4, 3, heads=2, add_self_loops=False, seed=2, dtype=np.float64, fused=fused)
        out = conv.forward(X, g)
        assert out.shape == (6, 6)
        res.append([out, conv.backward(np.ones_like(out))] + [conv.grads[k] for k in sorted(conv.grads)])
    for a, b in zip(*res):
        assert rel_err(a, b) < 1e-12


def test_dropout_mask_is_reproducible_by_seed_and_off_in_eval():
    g = messy_graph(4)
    X = np.random.default_rng(0).standard_normal((g.num_nodes, 6)).astype(np.float32)
    a = _run_layer(True, X, g, 3, True, 0.5, np.float32)
    b = _run_layer(True, X, g, 3, True, 0.5, np.float32)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    no_drop = _run_layer(True, X, g, 3, True, 0.0, np.float32)
    assert rel_err(a[0], no_drop[0]) > 1e-2                      # dropout did something in training
    evaluated = _run_layer(True, X, g, 3, True, 0.5, np.float32, training=False)
    for u, v in zip(evaluated, no_drop):
        np.testing.assert_array_equal(u, v)                     # and nothing in evaluation


def test_node_without_in_edges_gets_the_bias():
    g = messy_graph(5)
    X = np.random.default_rng(0).standard_normal((g.num_nodes, 6))
    for fused in (True, False):
        conv = GATConv(6, 2, heads=2, add_self_loops=False, seed=0, dtype=np.float64, fused=fused)
        conv.params["b"][:] = [1.0, 2.0, 3.0, 4.0]
        out = conv.forward(X, g)
        np.testing.assert_array_equal(out[g.in_degree() == 0], np.tile([1.0, 2.0, 3.0, 4.0], (2, 1)))


def test_sparse_input_gives_the_same_output_and_no_input_gradient():
    g = messy_graph(6)
    X = sp.random(g.num_nodes, 30, density=0.1, format="csr", random_state=0, dtype=np.float32)
    dense, sparse = (GATConv(30, 4, heads=2, seed=0) for _ in range(2))
    out_d, out_s = dense.forward(X.toarray(), g), sparse.forward(X, g)
    assert rel_err(out_s, out_d) < 1e-6
    G = np.ones_like(out_d)
    assert dense.backward(G).shape == X.shape and sparse.backward(G) is None
    assert rel_err(sparse.grads["W"], dense.grads["W"]) < 1e-6


def test_input_layer_skips_the_input_gradient_under_input_is_data():
    # a dense first-layer input is data: the trainer's input_is_data makes conv1 return None without
    # computing dZ W^T, and every parameter gradient is the same as with the input gradient taken
    from gnn_scratch.train import input_is_data
    g = messy_graph(7)
    X = np.random.default_rng(1).standard_normal((g.num_nodes, 12)).astype(np.float64)
    grads = []
    for skip in (False, True):
        model = GAT(12, 3, hidden_channels=4, heads=2, dropout=0.0, seed=0, dtype="float64")
        out = model.forward(X, g)
        G = np.random.default_rng(2).standard_normal(out.shape)
        if skip:
            with input_is_data(model):
                assert model.conv1.needs_input_grad is False
                assert model.backward(G) is None
            assert model.conv1.needs_input_grad is True          # restored on exit
        else:
            assert model.backward(G).shape == X.shape
        grads.append([g_.copy() for _, g_ in model.parameters()])
    assert len(grads[0]) == len(grads[1]) == 8
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_attention_rows_sum_to_one_in_csr_order_of_the_self_loop_graph():
    g = messy_graph(7)
    X = np.random.default_rng(0).standard_normal((g.num_nodes, 6)).astype(np.float32)
    conv = GATConv(6, 4, heads=3, dropout=0.5, seed=0)
    alpha = conv.attention(X, g)
    g_loops = conv.message_graph(g)
    assert alpha.shape == (g_loops.num_edges, 3) and conv._cache is None
    sums = np.zeros((g.num_nodes, 3))
    np.add.at(sums, g_loops.dst_of_edge(), alpha)
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)          # every node has its self-loop


def test_self_loop_graph_is_cached_per_graph():
    g = messy_graph(8)
    conv = GATConv(6, 2, seed=0, dtype=np.float64)
    X = np.zeros((g.num_nodes, 6))
    conv.forward(X, g)
    first = conv.message_graph(g)
    conv.forward(X, g)
    assert conv.message_graph(g) is first
    assert np.sum(first.indices == first.dst_of_edge()) == g.num_nodes    # exactly one loop per node


def test_gradients_accumulate_and_backward_needs_forward():
    g = messy_graph(9)
    X = np.random.default_rng(0).standard_normal((g.num_nodes, 6))
    conv = GATConv(6, 2, heads=2, seed=0, dtype=np.float64)
    with pytest.raises(BackwardBeforeForward):
        conv.backward(np.ones((g.num_nodes, 4)))
    out = conv.forward(X, g)
    conv.backward(np.ones_like(out))
    once = {k: v.copy() for k, v in conv.grads.items()}
    conv.backward(np.ones_like(out))
    for k in once:
        np.testing.assert_allclose(conv.grads[k], 2 * once[k])


def test_bad_arguments_raise_clear_errors():
    g = messy_graph(10)
    conv = GATConv(6, 2, heads=2, seed=0)
    with pytest.raises(ValueError, match="graph"):
        conv.forward(np.zeros((g.num_nodes, 6), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(40, 6\)"):
        conv.forward(np.zeros((g.num_nodes, 5), np.float32), g)
    with pytest.raises(TypeError, match="x must have the layer's dtype float32"):
        conv.forward(np.zeros((g.num_nodes, 6)), g)
    with pytest.raises(ValueError, match="heads"):
        GATConv(6, 2, heads=0)
    with pytest.raises(ValueError, match="dropout"):
        GATConv(6, 2, dropout=1.0)
    bip = make_graph([0, 1], [0, 1], 2, 4)
    with pytest.raises(ValueError, match="add_self_loops"):
        conv.forward(np.zeros((4, 6), np.float32), bip)
    out = conv.forward(np.zeros((g.num_nodes, 6), np.float32), g)
    with pytest.raises(ValueError, match="grad_out"):
        conv.backward(np.zeros((g.num_nodes, 2), np.float32))
    assert out.shape == (g.num_nodes, 4)


# ---------------------------------------------------------------------------------- PyG
def _pyg_pair(heads, concat, dtype=np.float64):
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    # node 6 isolated, 0 -> 0 an existing self-loop, 1 -> 2 twice, 5 -> 0 and 0 -> 5 a 2-cycle
    ei = np.array([[0, 1, 1, 2, 3, 3, 4, 2, 0, 5], [0, 2, 2, 1, 1, 4, 3, 3, 5, 0]])
    g = Graph.from_edge_index(ei, 7)
    ours = GATConv(5, 4, heads=heads, concat=concat, seed=3, dtype=dtype)
    ours.params["b"][:] = np.random.default_rng(1).standard_normal(ours.params["b"].shape)
    theirs = pyg.GATConv(5, 4, heads=heads, concat=concat).double()
    with torch.no_grad():
        theirs.lin.weight.copy_(torch.from_numpy(ours.params["W"].T.astype(np.float64)))   # PyG's lin is W^T
        theirs.att_src.copy_(torch.from_numpy(ours.params["att_src"][None].astype(np.float64)))  # (1, H, F)
        theirs.att_dst.copy_(torch.from_numpy(ours.params["att_dst"][None].astype(np.float64)))
        theirs.bias.copy_(torch.from_numpy(ours.params["b"].astype(np.float64)))
    return torch, g, ei, ours, theirs


@pytest.mark.oracle
@pytest.mark.parametrize("heads,concat", [(1, True), (3, True), (3, False)])
@pytest.mark.parametrize("fused", [True, False])
def test_equals_torch_geometric_gatconv(heads, concat, fused):
    torch, g, ei, ours, theirs = _pyg_pair(heads, concat)
    ours.fused = fused
    X = np.random.default_rng(0).standard_normal((7, 5))
    out = ours.forward(X, g)
    xt = torch.from_numpy(X).requires_grad_(True)
    ref_out, (ref_ei, ref_alpha) = theirs(xt, torch.from_numpy(ei), return_attention_weights=True)
    np.testing.assert_allclose(out, ref_out.detach().numpy(), rtol=1e-12, atol=1e-13)
    # the same attention coefficients, edge by edge (PyG orders its edges differently)
    alpha = ours.attention(X, g)
    gl = ours.message_graph(g)
    ours_by_edge = sorted(zip(gl.indices, gl.dst_of_edge(), map(tuple, np.round(alpha, 12))))
    theirs_by_edge = sorted(zip(ref_ei[0].numpy(), ref_ei[1].numpy(),
                                map(tuple, np.round(ref_alpha.detach().numpy(), 12))))
    assert ours_by_edge == theirs_by_edge
    # and the same gradients
    G = np.random.default_rng(1).standard_normal(out.shape)
    dX = ours.backward(G)
    ref_out.backward(torch.from_numpy(G))
    np.testing.assert_allclose(dX, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.grads["W"], theirs.lin.weight.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.grads["att_src"], theirs.att_src.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.grads["att_dst"], theirs.att_dst.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.grads["b"], theirs.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------- the model
def test_gat_model_is_registered_with_the_papers_defaults():
    assert MODELS["gat"] is GAT
    assert DEFAULTS["gat"] == dict(hidden_channels=8, heads=8, dropout=0.6, lr=0.005, weight_decay=5e-4,
                                   epochs=1000, patience=100)
    model = GAT(20, 3)
    assert model.conv1.heads == 8 and model.conv1.concat and model.conv1.dropout == 0.6
    assert model.conv2.heads == 1 and not model.conv2.concat and model.conv2.in_channels == 64
    assert not hasattr(model, "param_groups")          # weight decay on every parameter


def test_gat_config_rebuilds_the_model_and_save_load_round_trips(tmp_path):
    import inspect

    from gnn_scratch.io import load_model, save_model
    model = GAT(6, 3, hidden_channels=4, heads=2, dropout=0.3, seed=5, dtype="float64", fused=False)
    params = set(inspect.signature(GAT.__init__).parameters) - {"self"}
    assert set(model.config) == params | {"model"}
    cfg = dict(model.config)
    rebuilt = build_model(cfg.pop("model"), **cfg)
    for (n1, p1, _), (n2, p2, _) in zip(model.named_parameters(), rebuilt.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1, p2)
    g = messy_graph(11)
    X = np.random.default_rng(0).standard_normal((g.num_nodes, 6))
    save_model(tmp_path / "gat.npz", model)
    loaded, _ = load_model(tmp_path / "gat.npz")
    np.testing.assert_array_equal(loaded.forward(X, g), model.eval().forward(X, g))


def test_derivation_snippets_run():
    text = (REPO / "derivations" / "gat.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "derivations/gat.md has no python snippet"
    for code in blocks:
        exec(compile(code, "derivations/gat.md", "exec"), {})


def test_gat_trains_on_cora(data_root):
    """One seed, epochs capped at EPOCHS_CAP so the run stays short; CORA_FLOOR is set from what the cap gives.

    Seed 0 reaches 82.3 % test accuracy after 200 epochs (83.2 % with the full 1000-epoch schedule);
    the floor leaves room for BLAS rounding differences between machines. No time limit is asserted
    (the machine is shared); an epoch takes about 15-30 ms when the machine is quiet.
    """
    from gnn_scratch.data import get_dataset
    from gnn_scratch.train import run
    data = get_dataset("cora", root=data_root)
    summary, model = run("gat", data, runs=1, seed=0, epochs=EPOCHS_CAP, patience=100)
    assert summary["test_acc_mean"] >= CORA_FLOOR, summary
    assert model.config["model"] == "gat"


EPOCHS_CAP = 200
CORA_FLOOR = 0.80
