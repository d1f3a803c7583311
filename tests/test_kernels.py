"""Equivalence tests of the Numba kernels (``kernels/cpu.py``) against the NumPy reference.

Three layers of checking, as ``derivations/aggregation.md`` lays out:

1. the reference itself against dense NumPy / scipy (``test_reference_*``);
2. every ``cpu`` kernel against the reference on random graphs drawn by hypothesis, in float32
   (rtol 1e-5) and float64 (rtol 1e-12) (``test_cpu_*``). The graphs have 1-12 destination and
   source nodes (bipartite shapes included), 0-40 edges, so they hit empty rows, isolated nodes,
   self-loops, repeated edges and E = 0; F in {1, 2, 5, 16, 17}, H in {1, 3};
3. the max tie rule, bitwise repeatability (twice, and with 1 vs 2 threads) and a larger
   power-law graph that spreads rows over many parallel chunks.

The error bound used for floating-point sums is relative to the *magnitude* of the sum (the same
kernel run on absolute values), not to its result, so that cancellation cannot fail a correct
kernel: |got - ref| <= rtol * |sum of |terms||.
The finite-difference checks of the backward formulas live in ``tests/test_gradcheck_kernels.py``
and ``gnn_scratch/gradcheck/foundation.py::aggregation_kernels``.
"""
import re
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnn_scratch.graph import Graph
from gnn_scratch.kernels import cpu
from gnn_scratch.kernels import reference as ref

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------- graphs
def make_graph(src, dst, n_dst, n_src):
    """A CSR graph with ``n_dst`` destination rows over ``n_src`` source nodes (bipartite if they differ).

    Built with ``Graph.from_edge_index`` on max(n_dst, n_src) nodes; the destination rows beyond
    ``n_dst`` are empty by construction, so the first ``n_dst + 1`` row pointers are the block.
    """
    n = max(n_dst, n_src)
    square = Graph.from_edge_index(np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)]), n)
    if n_dst == n_src:
        return square
    return Graph.from_csr(square.indptr[: n_dst + 1], square.indices, num_src=n_src)


def fixture_graph():
    """6 nodes: node 5 isolated, a self-loop on 2, the edge 0 -> 1 twice, node 4 with no in-edges."""
    src = [0, 0, 2, 3, 1, 2, 0, 3]
    dst = [1, 1, 2, 2, 3, 3, 2, 0]
    return make_graph(src, dst, 6, 6)


@st.composite
def graphs(draw):
    n_dst = draw(st.integers(1, 12))
    n_src = draw(st.one_of(st.just(n_dst), st.integers(1, 12)))
    E = draw(st.integers(0, 40))
    src = draw(st.lists(st.integers(0, n_src - 1), min_size=E, max_size=E))
    dst = draw(st.lists(st.integers(0, n_dst - 1), min_size=E, max_size=E))
    return make_graph(src, dst, n_dst, n_src)


FEATURES = st.sampled_from([1, 2, 5, 16, 17])
HEADS = st.sampled_from([1, 3])
SEEDS = st.integers(0, 2**32 - 1)


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def power_law_graph(rng, n=3000, E=30000):
    """A skewed graph (a few hubs hold most in-edges) with isolated nodes: exercises many chunks."""
    dst = np.minimum((rng.pareto(1.2, E) * 10).astype(np.int64), n - 1)
    src = rng.integers(0, n, E)
    return make_graph(src, dst, n, n)


# ---------------------------------------------------------------------------------- assertions
def assert_sum_close(got, want, magnitude, dtype):
    """|got - want| <= rtol * magnitude elementwise (magnitude = the same sum over absolute terms)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = RTOL[dtype] * (np.asarray(magnitude, dtype=np.float64) + np.finfo(dtype).tiny)
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = err > tol
    assert not bad.any(), f"{bad.sum()} mismatches, worst {err[bad].max()} at tolerance {tol[bad].min()}"


def run_both(name, *args, out_shapes, dtype):
    """Run kernel ``name`` from both modules on ``args`` plus fresh garbage-filled outputs."""
    results = []
    for mod in (ref, cpu):
        outs = [np.full(s, 7, dtype=d) for s, d in out_shapes]
        getattr(mod, name)(*args, *outs)
        results.append(outs)
    return results


# ---------------------------------------------------------------------------------- the reference
def test_reference_spmm_sum_matches_scipy():
    rng = np.random.default_rng(0)
    g = fixture_graph()
    w = rng.standard_normal(g.num_edges)
    X = rng.standard_normal((g.num_src, 4))
    out = np.empty((g.num_dst, 4))
    ref.spmm_sum(g.indptr, g.indices, w, X, out)
    np.testing.assert_allclose(out, g.to_scipy(w) @ X, rtol=1e-13, atol=1e-13)
    assert np.all(out[5] == 0) and np.all(out[4] == 0)        # empty rows are 0


@SETTINGS
@given(graphs(), FEATURES, SEEDS)
def test_reference_spmm_sum_perm_on_transpose_is_AT_X(g, F, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(g.num_edges)
    G = rng.standard_normal((g.num_dst, F))
    out = np.empty((g.num_src, F))
    ref.spmm_sum_perm(g.t_indptr, g.t_indices, g.t_perm, w, G, out)
    np.testing.assert_allclose(out, g.to_scipy(w).T @ G, rtol=1e-12, atol=1e-12)


def test_reference_spmm_mean_matches_dense():
    rng = np.random.default_rng(1)
    g = fixture_graph()
    X = rng.standard_normal((g.num_src, 3))
    A = g.to_scipy().toarray()                                # counts repeated edges
    deg = A.sum(axis=1, keepdims=True)
    want = np.divide(A @ X, deg, out=np.zeros((g.num_dst, 3)), where=deg > 0)
    out = np.empty_like(want)
    ref.spmm_mean(g.indptr, g.indices, X, out)
    np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-13)
    G = rng.standard_normal((g.num_dst, 3))
    grad_X = np.empty_like(X)
    ref.spmm_mean_backward(g.t_indptr, g.t_indices, g.indptr, G, grad_X)
    D = np.divide(A, deg, out=np.zeros_like(A), where=deg > 0)
    np.testing.assert_allclose(grad_X, D.T @ G, rtol=1e-13, atol=1e-13)


def test_reference_spmm_max_matches_dense():
    rng = np.random.default_rng(2)
    g = fixture_graph()
    X = rng.standard_normal((g.num_src, 5))
    out = np.empty((g.num_dst, 5))
    argmax = np.empty((g.num_dst, 5), np.int64)
    ref.spmm_max(g.indptr, g.indices, X, out, argmax)
    for i in range(g.num_dst):
        nbrs = g.indices[g.indptr[i]:g.indptr[i + 1]]
        if nbrs.size == 0:
            assert np.all(out[i] == 0) and np.all(argmax[i] == -1)
        else:
            np.testing.assert_array_equal(out[i], X[nbrs].max(axis=0))
            np.testing.assert_array_equal(X[argmax[i], np.arange(5)], out[i])


def test_reference_sddmm_dot_matches_dense():
    rng = np.random.default_rng(3)
    g = fixture_graph()
    A = rng.standard_normal((g.num_dst, 2, 4))
    B = rng.standard_normal((g.num_src, 2, 4))
    out = np.empty((g.num_edges, 2))
    ref.sddmm_dot(g.indptr, g.indices, A, B, out)
    dst = g.dst_of_edge()
    for e in range(g.num_edges):
        for h in range(2):
            assert out[e, h] == pytest.approx(A[dst[e], h] @ B[g.indices[e], h], rel=1e-13)
    # with H = 1 it is the gradient of sum(G * (A_w @ X)) w.r.t. the weights: G_i . X_j
    G, X = A[:, 0], B[:, 0]
    np.testing.assert_allclose(out[:, 0], (G @ X.T)[dst, g.indices], rtol=1e-13)


def test_reference_edge_softmax_rows_sum_to_one_and_is_stable():
    g = fixture_graph()
    rng = np.random.default_rng(4)
    scores = 1e4 * rng.standard_normal((g.num_edges, 3))        # exp(1e4) overflows unless shifted
    alpha = np.empty_like(scores)
    ref.edge_softmax(g.indptr, scores, alpha)
    assert np.all(np.isfinite(alpha)) and np.all(alpha >= 0)
    row_sums = np.zeros((g.num_dst, 3))
    np.add.at(row_sums, g.dst_of_edge(), alpha)
    has_edges = g.in_degree() > 0
    np.testing.assert_allclose(row_sums[has_edges], 1.0, rtol=1e-14)
    # shift invariance: adding a per-row constant changes nothing
    shifted = scores + 123.0 * g.dst_of_edge()[:, None]
    alpha2 = np.empty_like(scores)
    ref.edge_softmax(g.indptr, shifted, alpha2)
    np.testing.assert_allclose(alpha2, alpha, rtol=1e-12, atol=1e-300)


def test_reference_edge_softmax_backward_matches_dense_jacobian():
    g = fixture_graph()
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((g.num_edges, 1))
    alpha = np.empty_like(scores)
    ref.edge_softmax(g.indptr, scores, alpha)
    grad_alpha = rng.standard_normal((g.num_edges, 1))
    got = np.empty_like(scores)
    ref.edge_softmax_backward(g.indptr, alpha, grad_alpha, got)
    for i in range(g.num_dst):
        lo, hi = g.indptr[i], g.indptr[i + 1]
        a = alpha[lo:hi, 0]
        J = np.diag(a) - np.outer(a, a)                         # d alpha / d s within row i
        np.testing.assert_allclose(got[lo:hi, 0], J.T @ grad_alpha[lo:hi, 0], rtol=1e-12, atol=1e-15)


def test_reference_segment_sums_match_dense():
    g = fixture_graph()
    rng = np.random.default_rng(6)
    v = rng.standard_normal((g.num_edges, 3))
    out_dst, out_src = np.empty((g.num_dst, 3)), np.empty((g.num_src, 3))
    ref.segment_sum(g.indptr, v, out_dst)
    ref.segment_sum_perm(g.t_indptr, g.t_perm, v, out_src)
    want_dst, want_src = np.zeros((g.num_dst, 3)), np.zeros((g.num_src, 3))
    np.add.at(want_dst, g.dst_of_edge(), v)
    np.add.at(want_src, g.indices, v)
    np.testing.assert_allclose(out_dst, want_dst, rtol=1e-14)
    np.testing.assert_allclose(out_src, want_src, rtol=1e-14)


# ---------------------------------------------------------------------------------- cpu == reference
@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), F=FEATURES, seed=SEEDS)
def test_cpu_spmm_sum(dtype, g, F, seed):
    rng = np.random.default_rng(seed)
    w, X = rand(rng, g.num_edges, dtype), rand(rng, (g.num_src, F), dtype)
    (want,), (got,) = run_both("spmm_sum", g.indptr, g.indices, w, X,
                               out_shapes=[((g.num_dst, F), dtype)], dtype=dtype)
    mag = np.empty_like(want)
    ref.spmm_sum(g.indptr, g.indices, np.abs(w), np.abs(X), mag)
    assert_sum_close(got, want, mag, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), F=FEATURES, seed=SEEDS)
def test_cpu_spmm_sum_perm(dtype, g, F, seed):
    rng = np.random.default_rng(seed)
    w, G = rand(rng, g.num_edges, dtype), rand(rng, (g.num_dst, F), dtype)
    args = (g.t_indptr, g.t_indices, g.t_perm)
    (want,), (got,) = run_both("spmm_sum_perm", *args, w, G,
                               out_shapes=[((g.num_src, F), dtype)], dtype=dtype)
    mag = np.empty_like(want)
    ref.spmm_sum_perm(*args, np.abs(w), np.abs(G), mag)
    assert_sum_close(got, want, mag, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), F=FEATURES, seed=SEEDS)
def test_cpu_spmm_mean_and_backward(dtype, g, F, seed):
    rng = np.random.default_rng(seed)
    X, G = rand(rng, (g.num_src, F), dtype), rand(rng, (g.num_dst, F), dtype)
    (want,), (got,) = run_both("spmm_mean", g.indptr, g.indices, X,
                               out_shapes=[((g.num_dst, F), dtype)], dtype=dtype)
    mag = np.empty_like(want)
    ref.spmm_mean(g.indptr, g.indices, np.abs(X), mag)
    assert_sum_close(got, want, mag, dtype)
    (want,), (got,) = run_both("spmm_mean_backward", g.t_indptr, g.t_indices, g.indptr, G,
                               out_shapes=[((g.num_src, F), dtype)], dtype=dtype)
    mag = np.empty_like(want)
    ref.spmm_mean_backward(g.t_indptr, g.t_indices, g.indptr, np.abs(G), mag)
    assert_sum_close(got, want, mag, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), F=FEATURES, seed=SEEDS)
def test_cpu_mean_backward_in_two_steps_equals_the_fused_kernel_bit_for_bit(dtype, g, F, seed):
    # ops.mean_aggregate_backward on the CPU: D^-1 G (scale_rows_by_inverse_degree), then a unit-weight
    # spmm_sum over the transpose -- the same divisions and sums as spmm_mean_backward, times 1
    from gnn_scratch import ops
    G = rand(np.random.default_rng(seed), (g.num_dst, F), dtype)
    fused = np.full((g.num_src, F), np.nan, dtype)
    cpu.spmm_mean_backward(g.t_indptr, g.t_indices, g.indptr, G, fused)
    two_step = ops.mean_aggregate_backward(g, G)
    assert two_step.dtype == dtype and two_step.tobytes() == fused.tobytes()
    scaled = np.full_like(G, np.nan)
    cpu.scale_rows_by_inverse_degree(g.indptr, G, scaled)
    np.testing.assert_array_equal(scaled, G / np.maximum(np.diff(g.indptr), 1)[:, None].astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), F=FEATURES, seed=SEEDS)
def test_cpu_spmm_max_and_backward_without_ties(dtype, g, F, seed):
    rng = np.random.default_rng(seed)
    X, G = rand(rng, (g.num_src, F), dtype), rand(rng, (g.num_dst, F), dtype)
    shapes = [((g.num_dst, F), dtype), ((g.num_dst, F), np.int64)]
    (want, want_arg), (got, got_arg) = run_both("spmm_max", g.indptr, g.indices, X,
                                                out_shapes=shapes, dtype=dtype)
    np.testing.assert_array_equal(got, want)                 # a max does no arithmetic: exact
    np.testing.assert_array_equal(got_arg, want_arg)
    (want,), (got,) = run_both("spmm_max_backward", g.t_indptr, g.t_indices, want_arg, G,
                               out_shapes=[((g.num_src, F), dtype)], dtype=dtype)
    mag = np.empty_like(want)
    ref.spmm_max_backward(g.t_indptr, g.t_indices, want_arg, np.abs(G), mag)
    assert_sum_close(got, want, mag, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), F=FEATURES, seed=SEEDS)
def test_cpu_spmm_max_tie_rule_first_edge_in_csr_order_wins(dtype, g, F, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, (g.num_src, F)).astype(dtype)     # three values: ties everywhere
    shapes = [((g.num_dst, F), dtype), ((g.num_dst, F), np.int64)]
    (want, want_arg), (got, got_arg) = run_both("spmm_max", g.indptr, g.indices, X,
                                                out_shapes=shapes, dtype=dtype)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_arg, want_arg)
    for i in range(g.num_dst):                                # the rule itself, spelled out
        nbrs = g.indices[g.indptr[i]:g.indptr[i + 1]]
        for f in range(F):
            if nbrs.size == 0:
                assert got_arg[i, f] == -1 and got[i, f] == 0
            else:
                first = nbrs[np.flatnonzero(X[nbrs, f] == X[nbrs, f].max())[0]]
                assert got_arg[i, f] == first
    # the gradient goes to the one winner only: each row's grad_out lands once per column
    G = rng.standard_normal((g.num_dst, F)).astype(dtype)
    grad_X = np.empty((g.num_src, F), dtype)
    cpu.spmm_max_backward(g.t_indptr, g.t_indices, got_arg, G, grad_X)
    nonempty = g.in_degree() > 0
    np.testing.assert_allclose(grad_X.sum(axis=0, dtype=np.float64),
                               G[nonempty].sum(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), F=FEATURES, H=HEADS, seed=SEEDS)
def test_cpu_sddmm_dot(dtype, g, F, H, seed):
    rng = np.random.default_rng(seed)
    A, B = rand(rng, (g.num_dst, H, F), dtype), rand(rng, (g.num_src, H, F), dtype)
    (want,), (got,) = run_both("sddmm_dot", g.indptr, g.indices, A, B,
                               out_shapes=[((g.num_edges, H), dtype)], dtype=dtype)
    mag = np.empty_like(want)
    ref.sddmm_dot(g.indptr, g.indices, np.abs(A), np.abs(B), mag)
    assert_sum_close(got, want, mag, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), H=HEADS, seed=SEEDS)
def test_cpu_sddmm_add_and_segment_sums(dtype, g, H, seed):
    rng = np.random.default_rng(seed)
    a_dst, a_src = rand(rng, (g.num_dst, H), dtype), rand(rng, (g.num_src, H), dtype)
    (want,), (got,) = run_both("sddmm_add", g.indptr, g.indices, a_dst, a_src,
                               out_shapes=[((g.num_edges, H), dtype)], dtype=dtype)
    np.testing.assert_array_equal(got, want)                 # one addition: exact
    v = rand(rng, (g.num_edges, H), dtype)
    (want,), (got,) = run_both("segment_sum", g.indptr, v,
                               out_shapes=[((g.num_dst, H), dtype)], dtype=dtype)
    mag = np.empty_like(want)
    ref.segment_sum(g.indptr, np.abs(v), mag)
    assert_sum_close(got, want, mag, dtype)
    (want,), (got,) = run_both("segment_sum_perm", g.t_indptr, g.t_perm, v,
                               out_shapes=[((g.num_src, H), dtype)], dtype=dtype)
    mag = np.empty_like(want)
    ref.segment_sum_perm(g.t_indptr, g.t_perm, np.abs(v), mag)
    assert_sum_close(got, want, mag, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(g=graphs(), H=HEADS, seed=SEEDS, scale=st.sampled_from([1.0, 30.0]))
def test_cpu_edge_softmax_and_backward(dtype, g, H, seed, scale):
    rng = np.random.default_rng(seed)
    scores = (scale * rng.standard_normal((g.num_edges, H))).astype(dtype)
    (want,), (got,) = run_both("edge_softmax", g.indptr, scores,
                               out_shapes=[((g.num_edges, H), dtype)], dtype=dtype)
    # alpha in [0, 1]; exp may differ by an ulp between NumPy and LLVM, then a short row sum
    np.testing.assert_allclose(got, want, rtol=4 * RTOL[dtype], atol=RTOL[dtype] * 1e-3)
    grad = rand(rng, (g.num_edges, H), dtype)
    (want_b,), (got_b,) = run_both("edge_softmax_backward", g.indptr, want, grad,
                                   out_shapes=[((g.num_edges, H), dtype)], dtype=dtype)
    prod = np.abs(want * grad)
    row_mag = np.zeros((g.num_dst, H), dtype)
    ref.segment_sum(g.indptr, prod, row_mag)
    mag = prod + want * row_mag[g.dst_of_edge()]
    assert_sum_close(got_b, want_b, mag, dtype)


# ---------------------------------------------------------------------------------- big graph, repeatability
def _run_all_cpu(g, dtype, seed=0, F=33, H=3):
    """Every cpu kernel on ``g``; returns {name: outputs}. Inputs are fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    N_dst, N_src, E = g.num_dst, g.num_src, g.num_edges
    w, X = rand(rng, E, dtype), rand(rng, (N_src, F), dtype)
    G = rand(rng, (N_dst, F), dtype)
    A3, B3 = rand(rng, (N_dst, H, F), dtype), rand(rng, (N_src, H, F), dtype)
    a_dst, a_src, v = rand(rng, (N_dst, H), dtype), rand(rng, (N_src, H), dtype), rand(rng, (E, H), dtype)
    T = (g.t_indptr, g.t_indices, g.t_perm)
    r = {}
    r["spmm_sum"] = np.empty((N_dst, F), dtype)
    cpu.spmm_sum(g.indptr, g.indices, w, X, r["spmm_sum"])
    r["spmm_sum_perm"] = np.empty((N_src, F), dtype)
    cpu.spmm_sum_perm(*T, w, G, r["spmm_sum_perm"])
    r["spmm_mean"] = np.empty((N_dst, F), dtype)
    cpu.spmm_mean(g.indptr, g.indices, X, r["spmm_mean"])
    r["spmm_mean_backward"] = np.empty((N_src, F), dtype)
    cpu.spmm_mean_backward(g.t_indptr, g.t_indices, g.indptr, G, r["spmm_mean_backward"])
    r["spmm_max"], r["argmax"] = np.empty((N_dst, F), dtype), np.empty((N_dst, F), np.int64)
    cpu.spmm_max(g.indptr, g.indices, X, r["spmm_max"], r["argmax"])
    r["spmm_max_backward"] = np.empty((N_src, F), dtype)
    cpu.spmm_max_backward(g.t_indptr, g.t_indices, r["argmax"], G, r["spmm_max_backward"])
    r["sddmm_dot"] = np.empty((E, H), dtype)
    cpu.sddmm_dot(g.indptr, g.indices, A3, B3, r["sddmm_dot"])
    r["sddmm_add"] = np.empty((E, H), dtype)
    cpu.sddmm_add(g.indptr, g.indices, a_dst, a_src, r["sddmm_add"])
    r["segment_sum"] = np.empty((N_dst, H), dtype)
    cpu.segment_sum(g.indptr, v, r["segment_sum"])
    r["segment_sum_perm"] = np.empty((N_src, H), dtype)
    cpu.segment_sum_perm(g.t_indptr, g.t_perm, v, r["segment_sum_perm"])
    r["edge_softmax"] = np.empty((E, H), dtype)
    cpu.edge_softmax(g.indptr, 5 * v, r["edge_softmax"])
    r["edge_softmax_backward"] = np.empty((E, H), dtype)
    cpu.edge_softmax_backward(g.indptr, r["edge_softmax"], a_src[g.indices], r["edge_softmax_backward"])
    inputs = dict(w=w, X=X, G=G, A3=A3, B3=B3, a_dst=a_dst, a_src=a_src, v=v)
    return r, inputs


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_matches_reference_on_power_law_graph(dtype):
    """Thousands of rows over many parallel chunks, hubs of hundreds of edges, isolated nodes."""
    g = power_law_graph(np.random.default_rng(7))
    assert (g.in_degree() == 0).any() and g.in_degree().max() > 500
    got, x = _run_all_cpu(g, dtype)
    rt = 10 * RTOL[dtype]                                     # hub rows sum hundreds of terms
    T = (g.t_indptr, g.t_indices, g.t_perm)
    checks = {
        "spmm_sum": (ref.spmm_sum, (g.indptr, g.indices, x["w"], x["X"])),
        "spmm_sum_perm": (ref.spmm_sum_perm, (*T, x["w"], x["G"])),
        "spmm_mean": (ref.spmm_mean, (g.indptr, g.indices, x["X"])),
        "spmm_mean_backward": (ref.spmm_mean_backward, (g.t_indptr, g.t_indices, g.indptr, x["G"])),
        "spmm_max_backward": (ref.spmm_max_backward, (g.t_indptr, g.t_indices, got["argmax"], x["G"])),
        "sddmm_dot": (ref.sddmm_dot, (g.indptr, g.indices, x["A3"], x["B3"])),
        "sddmm_add": (ref.sddmm_add, (g.indptr, g.indices, x["a_dst"], x["a_src"])),
        "segment_sum": (ref.segment_sum, (g.indptr, x["v"])),
        "segment_sum_perm": (ref.segment_sum_perm, (g.t_indptr, g.t_perm, x["v"])),
        "edge_softmax": (ref.edge_softmax, (g.indptr, 5 * x["v"])),
    }
    for name, (fn, args) in checks.items():
        want = np.empty_like(got[name])
        fn(*args, want)
        mag = np.empty_like(want)
        if name in ("sddmm_add", "edge_softmax"):
            np.testing.assert_allclose(got[name], want, rtol=rt, atol=rt * 1e-3, err_msg=name)
        else:
            fn(*[np.abs(a) if a.dtype == dtype else a for a in args], mag)
            assert_sum_close(got[name], want, mag / RTOL[dtype] * rt, dtype)
    want, want_arg = np.empty_like(got["spmm_max"]), np.empty_like(got["argmax"])
    ref.spmm_max(g.indptr, g.indices, x["X"], want, want_arg)
    np.testing.assert_array_equal(got["spmm_max"], want)
    np.testing.assert_array_equal(got["argmax"], want_arg)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_is_bitwise_repeatable_across_runs_and_thread_counts(dtype):
    g = power_law_graph(np.random.default_rng(8))
    first, _ = _run_all_cpu(g, dtype)
    second, _ = _run_all_cpu(g, dtype)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single, _ = _run_all_cpu(g, dtype)
    finally:
        numba.set_num_threads(threads)
    for name in first:
        np.testing.assert_array_equal(second[name], first[name], err_msg=f"{name}: run to run")
        np.testing.assert_array_equal(single[name], first[name], err_msg=f"{name}: 1 vs {threads} threads")


def test_cpu_overwrites_out_and_handles_an_edgeless_graph():
    g = make_graph([], [], 4, 3)
    X = np.ones((3, 2), np.float32)
    out = np.full((4, 2), np.nan, np.float32)
    cpu.spmm_sum(g.indptr, g.indices, np.empty(0, np.float32), X, out)
    assert np.all(out == 0)
    argmax = np.full((4, 2), 99, np.int64)
    out[:] = np.nan
    cpu.spmm_max(g.indptr, g.indices, X, out, argmax)
    assert np.all(out == 0) and np.all(argmax == -1)
    grad_X = np.full((3, 2), np.nan, np.float32)
    cpu.spmm_max_backward(g.t_indptr, g.t_indices, argmax, np.ones((4, 2), np.float32), grad_X)
    assert np.all(grad_X == 0)
    cpu.spmm_mean_backward(g.t_indptr, g.t_indices, g.indptr, np.ones((4, 2), np.float32), grad_X)
    assert np.all(grad_X == 0)


# ---------------------------------------------------------------------------------- the derivation runs
AGGREGATION_MD = Path(__file__).resolve().parents[1] / "derivations" / "aggregation.md"
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def test_aggregation_md_python_blocks_run():
    """The ```python blocks of derivations/aggregation.md, executed in order in one namespace."""
    blocks = PYTHON_BLOCK.findall(AGGREGATION_MD.read_text(encoding="utf-8"))
    assert len(blocks) >= 2
    namespace = {"__name__": "derivations.aggregation"}
    for n, code in enumerate(blocks):
        exec(compile(code, f"{AGGREGATION_MD}:python-block-{n}", "exec"), namespace)


# ---------------------------------------------------------------------------------- one-thread forms
def _one_thread_case(name, g, F, dtype, rng):
    """The arguments of op ``name`` of ``cpu.ONE_THREAD``, its output last; relu and accumulate drawn from rng."""
    X, w, b = rand(rng, (g.num_src, F), dtype), rand(rng, g.num_edges, dtype), rand(rng, F, dtype)
    out = np.full((g.num_dst, F), 7, dtype)
    if name == "spmm_sum":
        return [g.indptr, g.indices, w, X, out]
    relu, accumulate = bool(rng.integers(2)), bool(rng.integers(2))
    if name == "spmm_sum_bias":
        return [g.indptr, g.indices, w, X, b, relu, out]
    if name == "spmm_sum_perm":
        G = rand(rng, (g.num_dst, F), dtype)
        return [g.t_indptr, g.t_indices, g.t_perm, w, G, np.full((g.num_src, F), 7, dtype)]
    if name == "spmm_mean":
        return [g.indptr, g.indices, X, out]
    if name == "spmm_mean_bias":    # with accumulate the self term in out
        return [g.indptr, g.indices, X, b, accumulate, relu, rand(rng, (g.num_dst, F), dtype)]
    raise KeyError(name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(cpu.ONE_THREAD))
@SETTINGS
@given(g=graphs(), F=FEATURES, seed=SEEDS)
def test_one_thread_forms_equal_the_reference_bit_for_bit_and_the_chunked_kernel(name, dtype, g, F, seed):
    """What call_numba runs below the grain: the reference's sums in its order, to the bit (a zeroed row, as the
    reference's: an all -0 row sums to +0), and the row-chunked kernel's numbers."""
    args = _one_thread_case(name, g, F, dtype, np.random.default_rng(seed))
    outs = [[a.copy() if isinstance(a, np.ndarray) else a for a in args] for _ in range(3)]
    cpu.ONE_THREAD[name](*outs[0])
    getattr(ref, name)(*outs[1])
    getattr(cpu, name)(*outs[2])
    assert outs[0][-1].tobytes() == outs[1][-1].tobytes()
    np.testing.assert_array_equal(outs[0][-1], outs[2][-1])


def test_an_all_minus_zero_row_sums_to_plus_zero_in_the_one_thread_form_as_in_the_reference():
    g = fixture_graph()
    X = np.full((g.num_src, 3), -0.0)
    w = np.ones(g.num_edges)
    got, want = np.full((g.num_dst, 3), 7.0), np.full((g.num_dst, 3), 7.0)
    cpu.ONE_THREAD["spmm_sum"](g.indptr, g.indices, w, X, got)
    ref.spmm_sum(g.indptr, g.indices, w, X, want)
    assert not np.signbit(got).any() and got.tobytes() == want.tobytes()


def test_the_registry_runs_the_one_thread_form_below_the_grain(monkeypatch):
    """ops.spmm on a small graph goes through call_numba with the op's one-thread form."""
    from gnn_scratch import ops, threads
    from gnn_scratch.kernels import registry
    seen = []
    real = threads.call_numba
    monkeypatch.setattr(registry, "call_numba", lambda k, w, *a, one_thread=None: seen.append(one_thread)
                        or real(k, w, *a, one_thread=one_thread))
    g = fixture_graph()
    ops.spmm(g, np.ones(g.num_edges), np.ones((g.num_src, 2)))
    assert seen == [cpu.ONE_THREAD["spmm_sum"]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_csr_features_times_w_runs_the_spmm_kernel_and_equals_scipy(dtype):
    """dense_cpu.matmul of a CSR matrix (a first layer's sparse features) by a dense W: scipy's sums in scipy's
    order, unsorted column indices and empty rows included; a large one through the chunked kernel."""
    import scipy.sparse as sp
    from gnn_scratch.kernels import dense_cpu
    rng = np.random.default_rng(3)
    for n, m, nnz in ((40, 30, 200), (3000, 500, 120_000)):
        rows, cols = rng.integers(0, n - 5, nnz), rng.integers(0, m, nnz)      # the last 5 rows empty
        A = sp.csr_matrix((rand(rng, nnz, dtype), (rows, cols)), shape=(n, m))
        A.indices[: A.indptr[1]] = A.indices[: A.indptr[1]][::-1]             # unsorted within a row
        W = rand(rng, (m, 16), dtype)
        out = np.full((n, 16), np.nan, dtype)
        dense_cpu.matmul(A, W, out)
        np.testing.assert_array_equal(out, np.asarray(A @ W))
        acc = rand(rng, (n, 16), dtype)                                        # a self term added in training
        want = acc + np.asarray(A @ W)
        dense_cpu.matmul(A, W, acc, accumulate=True)
        np.testing.assert_array_equal(acc, want)
