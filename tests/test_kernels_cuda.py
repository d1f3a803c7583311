"""CUDA kernels (``gnn_scratch.kernels.cuda``) against the NumPy reference.

Runs on a real GPU, or on any machine under Numba's CUDA simulator, in its own pytest process:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_kernels_cuda.py -q

Without either, the module is skipped. The simulator runs every GPU thread as a Python thread, so
the graphs here are tiny (<= 12 nodes, <= 40 edges, F <= 5, H <= 2); ``test_large_graph_on_gpu``
(marked ``gpu``) checks a 100k-node, 1M-edge graph and runs only on a real GPU.
"""
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from cuda_support import REAL_GPU, cuda  # noqa: E402  (skips the module without a GPU)

from gnn_scratch.graph import Graph  # noqa: E402
from gnn_scratch.kernels import cuda as ck  # noqa: E402
from gnn_scratch.kernels import reference as ref  # noqa: E402
from gnn_scratch.kernels import registry  # noqa: E402

DTYPES = (np.float32, np.float64)
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


# ------------------------------------------------------------------------------------------- graphs
def _fixture_graph():
    # 7 nodes: node 6 isolated, self-loops 2 -> 2 (twice) and 4 -> 4, repeated edge 0 -> 1.
    src = [0, 0, 2, 1, 3, 2, 2, 4, 5, 3, 0, 4]
    dst = [1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 4]
    return Graph.from_edge_index(np.array([src, dst]), num_nodes=7)


def _random_graph(n, e, seed):
    rng = np.random.default_rng(seed)
    return Graph.from_edge_index(rng.integers(0, n, size=(2, e)), num_nodes=n)


def _bipartite_graph():
    # 5 destinations, 9 sources, 20 edges; destination 3 has no edges, source 8 none either.
    rng = np.random.default_rng(3)
    deg = np.array([6, 1, 8, 0, 5])
    indptr = np.concatenate([[0], np.cumsum(deg)])
    indices = rng.integers(0, 8, size=int(deg.sum()))
    return Graph.from_csr(indptr, indices, num_src=9)


GRAPHS = {
    "fixture": _fixture_graph,
    "random12": lambda: _random_graph(12, 40, 1),
    "random9": lambda: _random_graph(9, 25, 2),
    "no_edges": lambda: Graph.from_edge_index(np.zeros((2, 0), dtype=np.int64), num_nodes=4),
    "one_node_loops": lambda: Graph.from_edge_index(np.zeros((2, 3), dtype=np.int64), num_nodes=1),
    "bipartite": _bipartite_graph,
}


# ------------------------------------------------------------------------------------------ inputs
def _ties(rng, shape, dtype):
    """Small integers (many exact ties) shifted negative, so max's tie rule and sign both matter."""
    return (rng.integers(0, 3, size=shape) - 1.5).astype(dtype)


def make_case(kernel, g, dtype, rng, F=3, H=2):
    """Arguments of ``kernel`` (host arrays) on graph ``g`` and the positions of its outputs."""
    E, Nd, Ns = g.num_edges, g.num_dst, g.num_src
    r = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    out = lambda *shape: np.empty(shape, dtype)                  # noqa: E731
    if kernel == "spmm_sum":
        return [g.indptr, g.indices, r(E), r(Ns, F), out(Nd, F)], [4]
    if kernel == "spmm_sum_bias":   # relu on: the bias and the cut both matter
        return [g.indptr, g.indices, r(E), r(Ns, F), r(F), True, out(Nd, F)], [6]
    if kernel == "spmm_sum_perm":
        return [g.t_indptr, g.t_indices, g.t_perm, r(E), r(Nd, F), out(Ns, F)], [5]
    if kernel == "spmm_mean":
        return [g.indptr, g.indices, r(Ns, F), out(Nd, F)], [3]
    if kernel == "spmm_mean_bias":   # out a pure output here (the self term in it: test_mean_bias_adds_...)
        return [g.indptr, g.indices, r(Ns, F), r(F), False, True, out(Nd, F)], [6]
    if kernel == "spmm_mean_backward":
        return [g.t_indptr, g.t_indices, g.indptr, r(Nd, F), out(Ns, F)], [4]
    if kernel == "scale_rows_by_inverse_degree":
        return [g.indptr, r(Nd, F), out(Nd, F)], [2]
    if kernel == "spmm_max":
        return [g.indptr, g.indices, _ties(rng, (Ns, F), dtype), out(Nd, F), np.empty((Nd, F), np.int64)], [3, 4]
    if kernel == "spmm_max_backward":
        m, argmax = out(Nd, F), np.empty((Nd, F), np.int64)
        ref.spmm_max(g.indptr, g.indices, _ties(rng, (Ns, F), dtype), m, argmax)
        return [g.t_indptr, g.t_indices, argmax, r(Nd, F), out(Ns, F)], [4]
    if kernel == "sddmm_dot":
        return [g.indptr, g.indices, r(Nd, H, F), r(Ns, H, F), out(E, H)], [4]
    if kernel == "sddmm_add":
        return [g.indptr, g.indices, r(Nd, H), r(Ns, H), out(E, H)], [4]
    if kernel == "segment_sum":
        return [g.indptr, r(E, H), out(Nd, H)], [2]
    if kernel == "segment_sum_perm":
        return [g.t_indptr, g.t_perm, r(E, H), out(Ns, H)], [3]
    if kernel == "edge_softmax":
        return [g.indptr, 30 * r(E, H), out(E, H)], [2]      # large scores: exp overflows unshifted
    if kernel == "edge_softmax_backward":
        alpha = out(E, H)
        ref.edge_softmax(g.indptr, 3 * r(E, H), alpha)
        return [g.indptr, alpha, r(E, H), out(E, H)], [3]
    raise KeyError(kernel)


KERNELS = ["spmm_sum", "spmm_sum_bias", "spmm_sum_perm", "spmm_mean", "spmm_mean_bias", "spmm_mean_backward", "scale_rows_by_inverse_degree",
           "spmm_max", "spmm_max_backward", "sddmm_dot", "sddmm_add", "segment_sum", "segment_sum_perm",
           "edge_softmax", "edge_softmax_backward"]
# Plain adds, IEEE divisions and selections: equal to the reference bit for bit, on a GPU too
# (the others may differ in the last bits there, through fused multiply-adds and the device exp).
EXACT = {"spmm_mean", "spmm_mean_bias", "spmm_mean_backward", "scale_rows_by_inverse_degree", "spmm_max", "spmm_max_backward",
         "sddmm_add", "segment_sum", "segment_sum_perm"}


def _sentinel(a):
    """Garbage to prefill an output with, so a kernel that skips an element is caught."""
    return np.full_like(a, -7777) if a.dtype.kind in "iu" else np.full_like(a, np.nan)


def run_cuda(kernel, args, outs):
    """Run the CUDA kernel on device copies of ``args`` (outputs prefilled with garbage); host results."""
    d_args = [cuda.to_device(_sentinel(a) if k in outs else a) if isinstance(a, np.ndarray) else a   # a flag stays
              for k, a in enumerate(args)]
    getattr(ck, kernel)(*d_args)
    return [d_args[k].copy_to_host() for k in outs]


def run_reference(kernel, args, outs):
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    getattr(ref, kernel)(*args)
    return [args[k] for k in outs]


def check_against_reference(kernel, args, outs, dtype):
    expected = run_reference(kernel, args, outs)
    got = run_cuda(kernel, args, outs)
    for want, have in zip(expected, got):
        assert have.dtype == want.dtype and have.shape == want.shape
        if kernel in EXACT or want.dtype.kind in "iu":
            np.testing.assert_array_equal(have, want, err_msg=kernel)
        else:
            np.testing.assert_allclose(have, want, err_msg=kernel, **TOL[dtype])


# -------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("graph", list(GRAPHS))
@pytest.mark.parametrize("kernel", KERNELS)
def test_matches_reference(kernel, graph, dtype):
    g = GRAPHS[graph]()
    rng = np.random.default_rng(zlib.crc32(f"{kernel}/{graph}".encode()))
    F, H = {"random12": (5, 2), "one_node_loops": (1, 1)}.get(graph, (3, 2))
    args, outs = make_case(kernel, g, dtype, rng, F=F, H=H)
    check_against_reference(kernel, args, outs, dtype)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernels_repeat_bit_for_bit(kernel):
    # every kernel owns its outputs (no atomics, spmm_max_backward included): the same bits each run
    g = GRAPHS["random12"]()
    args, outs = make_case(kernel, g, np.float32, np.random.default_rng(7), F=5, H=2)
    first = run_cuda(kernel, args, outs)
    second = run_cuda(kernel, args, outs)
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes(), kernel


def test_every_sparse_op_is_tested_and_dispatches_to_these_kernels():
    sparse_ops = {name for name, family in registry.OPS.items() if family == "sparse"}
    assert sparse_ops == set(KERNELS), sorted(sparse_ops ^ set(KERNELS))
    for name in KERNELS:
        assert registry.resolve(name, "cuda") is getattr(ck, name), name
        assert registry.implementation(name, cuda.to_device(np.zeros(1))) is getattr(ck, name), name


def test_mean_backward_in_two_steps_equals_the_fused_kernel_bit_for_bit():
    # ops.mean_aggregate_backward: D^-1 G (scale_rows_by_inverse_degree), then an unweighted sum over the
    # transpose -- the same divisions and the same sums in the same order as spmm_mean_backward
    d = cuda.to_device
    for name in ("fixture", "bipartite", "random12"):
        g = GRAPHS[name]()
        G = np.random.default_rng(4).standard_normal((g.num_dst, 3))
        fused = cuda.to_device(np.full((g.num_src, 3), np.nan))
        ck.spmm_mean_backward(d(g.t_indptr), d(g.t_indices), d(g.indptr), d(G), fused)
        scaled = cuda.to_device(np.full_like(G, np.nan))
        ck.scale_rows_by_inverse_degree(d(g.indptr), d(G), scaled)
        two_step = cuda.to_device(np.full((g.num_src, 3), np.nan))
        ck.spmm_sum(d(g.t_indptr), d(g.t_indices), d(np.ones(g.num_edges)), scaled, two_step)
        assert two_step.copy_to_host().tobytes() == fused.copy_to_host().tobytes(), name


@pytest.mark.parametrize("relu", [False, True])
def test_mean_bias_adds_the_self_term_already_in_out_as_the_reference_does(relu):
    d = cuda.to_device
    for name in ("fixture", "bipartite", "random12"):
        g = GRAPHS[name]()
        rng = np.random.default_rng(5)
        X, b = rng.standard_normal((g.num_src, 3)), rng.standard_normal(3)
        R = rng.standard_normal((g.num_dst, 3))
        want = R.copy()
        ref.spmm_mean_bias(g.indptr, g.indices, X, b, True, relu, want)
        out = d(R)
        ck.spmm_mean_bias(d(g.indptr), d(g.indices), d(X), d(b), True, relu, out)
        assert out.copy_to_host().tobytes() == want.tobytes(), name


def test_max_tie_rule_first_edge_in_csr_order_wins():
    # row 0 receives sources 3, 1, 2 (in that CSR order) with equal features: 3 wins, alone gets the gradient.
    g = Graph.from_csr([0, 3, 3], [3, 1, 2], num_src=4)
    X = np.array([[9.0], [5.0], [5.0], [5.0]])
    out, argmax = cuda.to_device(np.full((2, 1), np.nan)), cuda.to_device(np.full((2, 1), 99))
    ck.spmm_max(cuda.to_device(g.indptr), cuda.to_device(g.indices), cuda.to_device(X), out, argmax)
    assert out.copy_to_host().tolist() == [[5.0], [0.0]]
    assert argmax.copy_to_host().tolist() == [[3], [-1]]
    grad_X = cuda.to_device(np.full((4, 1), np.nan))
    ck.spmm_max_backward(cuda.to_device(g.t_indptr), cuda.to_device(g.t_indices), argmax,
                         cuda.to_device(np.array([[2.0], [4.0]])), grad_X)
    assert grad_X.copy_to_host().ravel().tolist() == [0.0, 0.0, 0.0, 2.0]


def test_edge_softmax_is_stable_for_huge_scores():
    g = Graph.from_csr([0, 3, 4], [0, 1, 2, 0], num_src=3)
    scores = np.array([[1000.0], [999.0], [-1000.0], [5000.0]], dtype=np.float32)
    out = cuda.to_device(np.full_like(scores, np.nan))
    ck.edge_softmax(cuda.to_device(g.indptr), cuda.to_device(scores), out)
    got = out.copy_to_host()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[:, 0], [1 / (1 + np.exp(-1.0)), np.exp(-1.0) / (1 + np.exp(-1.0)), 0.0, 1.0],
                               rtol=1e-6)


@pytest.mark.parametrize("kernel", ["spmm_sum", "spmm_max", "spmm_mean_backward", "sddmm_dot", "edge_softmax",
                                    "spmm_max_backward"])
def test_wide_rows_and_grid_stride_loops(kernel, monkeypatch):
    # F = 40 > 32 gives a 64-lane row group; one block of one row (or 64 threads) must loop over all rows.
    monkeypatch.setattr(ck, "_BLOCK_THREADS", 64)
    monkeypatch.setattr(ck, "_MAX_BLOCKS", 1)
    assert ck._row_launch(5, 40) == (1, (64, 1))
    g = _random_graph(5, 12, 11)
    args, outs = make_case(kernel, g, np.float64, np.random.default_rng(5), F=40 if kernel != "sddmm_dot" else 3, H=2)
    check_against_reference(kernel, args, outs, np.float64)


def test_launch_shapes():
    assert ck._row_launch(0, 8) is None and ck._flat_launch(0) is None and ck._gather_launch(0, 8) is None
    grid, (lanes, rows) = ck._row_launch(1000, 16)
    assert lanes == 32 and rows == ck._BLOCK_THREADS // 32 and grid * rows >= 1000
    grid, (lanes, rows) = ck._row_launch(10, 10_000)
    assert lanes == min(ck._MAX_LANES, ck._BLOCK_THREADS) and rows * lanes <= ck._BLOCK_THREADS


def test_host_arrays_are_refused():
    g = _fixture_graph()
    X = np.ones((7, 2))
    with pytest.raises(TypeError, match="X must be a device array"):
        ck.spmm_mean(cuda.to_device(g.indptr), cuda.to_device(g.indices), X, cuda.device_array((7, 2)))


def test_shape_and_dtype_errors():
    g = _fixture_graph()
    d = cuda.to_device
    with pytest.raises(ValueError, match=r"out must have shape \(7, 2\), got \(6, 2\)"):
        ck.spmm_mean(d(g.indptr), d(g.indices), d(np.ones((7, 2))), d(np.ones((6, 2))))
    with pytest.raises(TypeError, match="out must have dtype float64 like X, got float32"):
        ck.spmm_mean(d(g.indptr), d(g.indices), d(np.ones((7, 2))), d(np.ones((7, 2), np.float32)))
    with pytest.raises(TypeError, match="X must be float32 or float64, got int64"):
        ck.spmm_mean(d(g.indptr), d(g.indices), d(np.ones((7, 2), np.int64)), d(np.ones((7, 2), np.int64)))


@pytest.mark.parametrize("unsigned", [np.uint64, np.uint32])
def test_gather_kernels_refuse_unsigned_index_arrays(unsigned):
    """The gather loop's edge index has indptr's dtype; Numba types uint64 + int as float64, which cannot index,
    so a GPU would fail to compile: every gather op refuses unsigned index arrays up front, naming the argument."""
    g = _fixture_graph()
    d = cuda.to_device
    u = lambda a: d(np.asarray(a).astype(unsigned))  # noqa: E731
    X, out, val = d(np.ones((7, 2))), cuda.device_array((7, 2)), d(np.ones(g.num_edges))
    msg = (r"{} must have a signed integer dtype \(int64 or int32\) for the gather kernels, got "
           + np.dtype(unsigned).name)
    with pytest.raises(TypeError, match=msg.format("indptr")):
        ck.spmm_sum(u(g.indptr), d(g.indices), val, X, out)
    with pytest.raises(TypeError, match=msg.format("indices")):
        ck.spmm_sum(d(g.indptr), u(g.indices), val, X, out)
    with pytest.raises(TypeError, match=msg.format("indices")):
        ck.spmm_mean(d(g.indptr), u(g.indices), X, out)
    with pytest.raises(TypeError, match=msg.format("perm")):
        ck.spmm_sum_perm(d(g.t_indptr), d(g.t_indices), u(g.t_perm), val, X, out)
    with pytest.raises(TypeError, match=msg.format("t_indices")):
        ck.spmm_mean_backward(d(g.t_indptr), u(g.t_indices), d(g.indptr), X, out)
    with pytest.raises(TypeError, match=msg.format("indptr")):
        ck.spmm_mean_backward(d(g.t_indptr), d(g.t_indices), u(g.indptr), X, out)
    # the signed widths still run (int32 indices, as scipy gives)
    ck.spmm_mean(d(g.indptr.astype(np.int32)), d(g.indices.astype(np.int32)), X, out)
    want = np.empty((7, 2))
    ref.spmm_mean(g.indptr, g.indices, np.ones((7, 2)), want)
    np.testing.assert_array_equal(out.copy_to_host(), want)


def test_require_cuda_message(monkeypatch):
    ck.require_cuda()                                   # available here: no error
    monkeypatch.setattr(ck, "_cuda_ok", False)
    monkeypatch.setattr(ck, "_simulator_enabled", lambda: False)
    monkeypatch.setattr(ck.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"no CUDA GPU available; install the `cuda` extra \(numba-cuda\)"):
        ck.require_cuda()
    with pytest.raises(RuntimeError, match="NUMBA_ENABLE_CUDASIM=1"):
        ck.spmm_mean(None, None, None, None)


@pytest.mark.skipif(REAL_GPU, reason="checks the import on a machine with neither GPU nor simulator")
def test_import_without_gpu_or_simulator_does_not_crash():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import gnn_scratch.kernels.cuda as ck\n"
            "try:\n    ck.require_cuda()\nexcept RuntimeError as e:\n    print('raised:', e)\n"
            "else:\n    print('gpu')\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("gpu") or "raised: no CUDA GPU available" in res.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not REAL_GPU, reason="needs a real CUDA GPU (too large for the simulator)")
def test_large_graph_on_gpu():
    N, E, F, H = 100_000, 1_000_000, 16, 2
    rng = np.random.default_rng(0)
    g = Graph.from_edge_index(rng.integers(0, N, size=(2, E)), num_nodes=N)
    for kernel in KERNELS:
        args, outs = make_case(kernel, g, np.float32, rng, F=F, H=H)
        check_against_reference(kernel, args, outs, np.float32)
    # one float64 pass over the weighted sum and the softmax
    for kernel in ("spmm_sum", "edge_softmax"):
        args, outs = make_case(kernel, g, np.float64, rng, F=F, H=H)
        check_against_reference(kernel, args, outs, np.float64)
