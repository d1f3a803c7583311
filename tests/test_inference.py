"""Issue 19, the inference path: split dense products, ELU without its mask, the block-wise input scan.

Evaluation mode must compute what training mode computes (dropout off): float64 to 1e-12 relative,
float32 to a few ulps; training-mode products stay the unsplit one-thread BLAS call (same bits as
before); the split products give the same bits for any thread count; bad input is still refused.
"""
import os

import numba
import numpy as np
import pytest

from gnn_scratch import ops, threads
from gnn_scratch.graph import Graph
from gnn_scratch.graph.csr import _SCAN_SPLIT, first_non_finite
from gnn_scratch.kernels import dense_cpu, dense_reference, elementwise_cpu, elementwise_reference
from gnn_scratch.models import build_model
from gnn_scratch.nn import ELU, Sequential
from gnn_scratch.nn.module import BackwardBeforeForward
from gnn_scratch.nn.conv import GCNConv

two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs Numba's pool of >= 2 threads")


def _graph(n, e, seed=0):
    rng = np.random.default_rng(seed)
    ei = np.stack([rng.integers(0, n, e), rng.integers(0, n - 1, e)])   # node n - 1: no incoming edge
    return Graph.from_edge_index(ei, num_nodes=n)


def _with_threads(k, fn):
    old = numba.get_num_threads()
    numba.set_num_threads(k)
    try:
        return fn()
    finally:
        numba.set_num_threads(old)


# ------------------------------------------------------------------------------ threads.launch_numba_pool
_LAUNCH = """
import os
from gnn_scratch import threads
from numba.np.ufunc import parallel
threads.call_numba(lambda: None, 0)       # the first kernel call starts Numba's pool
print(parallel._is_initialized, os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"))
"""


@pytest.mark.parametrize("user_env, expected", [
    ({}, "True None None"),                                       # passive only while the runtime loads
    ({"OMP_WAIT_POLICY": "active"}, "True active None"),          # the user's choice is left alone
    ({"GOMP_SPINCOUNT": "1000"}, "True None 1000"),
])
def test_the_pool_starts_without_leaving_a_wait_policy_behind(user_env, expected):
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in threads._WAIT_POLICY_KNOBS}
    env.update(user_env)
    out = subprocess.run([sys.executable, "-c", _LAUNCH], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


_FIRST_OP = """
import numpy as np
from gnn_scratch import ops
ops.relu(np.ones((4, 4), np.float32))     # the first op through the registry starts Numba's pool
"""


@pytest.mark.parametrize("user_env, passive", [({}, True), ({"OMP_WAIT_POLICY": "active"}, False)])
def test_gnu_openmp_reads_the_passive_policy_when_the_first_op_starts_the_pool(user_env, passive):
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in threads._WAIT_POLICY_KNOBS}
    env.update(user_env, OMP_DISPLAY_ENV="VERBOSE")
    out = subprocess.run([sys.executable, "-c", _FIRST_OP], env=env, capture_output=True, text=True, check=True)
    if "GOMP_SPINCOUNT" not in out.stderr:
        pytest.skip("Numba's threading layer is not GNU OpenMP here (nothing displays GOMP_SPINCOUNT)")
    assert ("GOMP_SPINCOUNT = '0'" in out.stderr) == passive    # libgomp's spin count under PASSIVE


def test_the_variable_is_removed_when_the_launch_fails(monkeypatch):
    from numba.np.ufunc import parallel

    def fail():
        assert os.environ.get("OMP_WAIT_POLICY") == "PASSIVE"
        raise RuntimeError("no threading layer")
    monkeypatch.setattr(parallel, "_is_initialized", False)
    monkeypatch.setattr(parallel, "_launch_threads", fail)
    for k in threads._WAIT_POLICY_KNOBS:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(RuntimeError, match="no threading layer"):
        threads.launch_numba_pool()
    assert "OMP_WAIT_POLICY" not in os.environ


def test_launch_sets_the_passive_policy_only_while_numba_loads_its_runtime(monkeypatch):
    from numba.np.ufunc import parallel
    seen = []
    monkeypatch.setattr(parallel, "_is_initialized", False)
    monkeypatch.setattr(parallel, "_launch_threads", lambda: seen.append(os.environ.get("OMP_WAIT_POLICY")))
    for k in threads._WAIT_POLICY_KNOBS:
        monkeypatch.delenv(k, raising=False)
    threads.launch_numba_pool()
    monkeypatch.setenv("KMP_BLOCKTIME", "0")
    threads.launch_numba_pool()
    assert seen == ["PASSIVE", None] and "OMP_WAIT_POLICY" not in os.environ


# ------------------------------------------------------------------------------ threads.row_blocks
@pytest.mark.parametrize("n_rows,block", [(0, 4), (1, 4), (4, 4), (17, 4), (1000, 7)])
def test_row_blocks_visits_every_fixed_block_once(n_rows, block):
    seen = []
    threads.row_blocks(lambda lo, hi: seen.append((lo, hi)), n_rows, block)
    expected = [(lo, min(n_rows, lo + block)) for lo in range(0, n_rows, block)]
    assert sorted(seen) == expected


@two_threads
def test_row_blocks_raises_a_workers_error():
    def fail(lo, hi):
        if lo == 8:
            raise KeyError("block 8")
    with pytest.raises(KeyError, match="block 8"):
        _with_threads(2, lambda: threads.row_blocks(fail, 64, 4))


# ------------------------------------------------------------------------------ split products
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_product_is_the_blocked_product_for_any_thread_count(dtype):
    rng = np.random.default_rng(1)
    M = 3 * threads.PRODUCT_BLOCK + 123
    A = rng.standard_normal((M, 96)).astype(dtype)
    B = rng.standard_normal((96, 64)).astype(dtype)
    assert A.size * B.shape[1] >= threads.PRODUCT_GRAIN
    blocked = np.empty((M, 64), dtype)
    with threads.blas_threads(1):     # one-thread BLAS per block, as the split product runs them
        for lo in range(0, M, threads.PRODUCT_BLOCK):
            np.matmul(A[lo:lo + threads.PRODUCT_BLOCK], B, out=blocked[lo:lo + threads.PRODUCT_BLOCK])

    def split():
        out = np.empty((M, 64), dtype)
        with threads.parallel_products():
            dense_cpu.matmul(A, B, out)
        return out
    for k in range(1, min(numba.config.NUMBA_NUM_THREADS, 3) + 1):
        np.testing.assert_array_equal(_with_threads(k, split), blocked)
    whole = A @ B
    np.testing.assert_allclose(blocked, whole, rtol=1e-12 if dtype == np.float64 else 2e-5,
                               atol=1e-12 if dtype == np.float64 else 2e-5)


@pytest.mark.parametrize("split", [False, True])
def test_accumulating_product_adds_the_same_product(split):
    """ops.matmul(A, B, out=, accumulate=True) == out + (the product ops.matmul(A, B) gives), bit for bit, split
    (evaluation mode, blocks added while in cache) or not; ``out=`` alone overwrites; a wrong ``out`` is refused."""
    rng = np.random.default_rng(7)
    M = 2 * threads.PRODUCT_BLOCK + 77
    A = rng.standard_normal((M, 128)).astype(np.float32)
    B = rng.standard_normal((128, 64)).astype(np.float32)
    start = rng.standard_normal((M, 64)).astype(np.float32)
    policy = threads.parallel_products if split else threads.training_products
    with policy():
        assert threads.products_split() == split
        want = start + ops.matmul(A, B)
        out = start.copy()
        assert ops.matmul(A, B, out=out, accumulate=True) is out
        np.testing.assert_array_equal(out, want)
        ops.matmul(A, B, out=out)
        np.testing.assert_array_equal(out, ops.matmul(A, B))
        with pytest.raises(ValueError, match="out"):
            ops.matmul(A, B, out=np.empty((M, 63), np.float32), accumulate=True)
        with pytest.raises(TypeError):
            ops.matmul(A, B, out=np.empty((M, 64), np.float64), accumulate=True)


def test_products_outside_inference_are_the_unsplit_call():
    rng = np.random.default_rng(2)
    M = 2 * threads.PRODUCT_BLOCK + 5
    A = rng.standard_normal((M, 128)).astype(np.float32)
    B = rng.standard_normal((128, 64)).astype(np.float32)
    out, ref = np.empty((M, 64), np.float32), np.empty((M, 64), np.float32)
    with threads.blas_threads(1):
        dense_cpu.matmul(A, B, out)
        dense_reference.matmul(A, B, ref)
    np.testing.assert_array_equal(out, ref)
    assert not threads.products_split()


def _numpy_blas():
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:           # NumPy < 2 has no mode="dicts"
        return None


@pytest.mark.skipif(_numpy_blas() != "scipy-openblas", reason="NumPy is not built on its bundled OpenBLAS here")
def test_openblas_is_found_and_a_platform_without_dlopen_null_is_skipped(monkeypatch):
    import ctypes
    assert threads._find() is not False      # NumPy's wheels bundle OpenBLAS: blas_threads must reach it
    real = ctypes.CDLL

    def windows_like(path, *a, **k):         # Windows: CDLL(None) is a TypeError, not an OSError
        if path is None:
            raise TypeError("expected str, bytes or os.PathLike object, not NoneType")
        return real(path, *a, **k)
    monkeypatch.setattr(ctypes, "CDLL", windows_like)
    libs = list(threads._libraries())        # the bundled library still, and no error for the process
    assert libs and all(lib._name is not None for lib in libs)


def test_layer_blas_pool_follows_the_mode():
    seen = []
    real = dense_cpu.products_split

    conv = GCNConv(8, 4)
    g = _graph(30, 90)
    x = np.random.default_rng(3).standard_normal((30, 8)).astype(np.float32)
    try:
        dense_cpu.products_split = lambda: seen.append(real()) or False
        conv.train()
        conv(x, g)
        conv.eval()
        conv(x, g)
    finally:
        dense_cpu.products_split = real
    assert seen[0] is False and seen[-1] is True
    assert not threads.products_split()


# ------------------------------------------------------------------------------ models: eval == training
MODELS = [("gcn", dict(hidden_channels=64)), ("sage", dict(hidden_channels=64)),
          ("gat", dict(hidden_channels=8, heads=8))]


@pytest.mark.parametrize("name,cfg", MODELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eval_forward_equals_training_forward_without_dropout(name, cfg, dtype):
    # N rows past PRODUCT_BLOCK and enough work: the first layer's product is split in evaluation mode
    N = 2 * threads.PRODUCT_BLOCK + 300
    g = _graph(N, 6 * N, seed=4)
    x = np.random.default_rng(5).standard_normal((N, 128)).astype(dtype)
    model = build_model(name, in_channels=128, out_channels=5, dropout=0.0, seed=1, dtype=dtype, **cfg)
    model.train()
    with threads.blas_threads(1):
        train_out = np.array(model.forward(x, g))
    model.eval()
    eval_out = np.array(model.forward(x, g))
    scale = np.abs(train_out).max()
    if dtype == "float64":
        np.testing.assert_allclose(eval_out, train_out, rtol=1e-12, atol=1e-12 * scale)
    else:   # a few float32 ulps of the output's scale (blocked products, the polynomial expm1)
        np.testing.assert_allclose(eval_out, train_out, rtol=0, atol=8 * np.finfo(np.float32).eps * scale)
    # training mode after an evaluation: the same bits as before it
    model.train()
    with threads.blas_threads(1):
        np.testing.assert_array_equal(np.array(model.forward(x, g)), train_out)


@two_threads
@pytest.mark.parametrize("name,cfg", MODELS)
def test_eval_forward_bits_do_not_depend_on_the_thread_count(name, cfg):
    N = 2 * threads.PRODUCT_BLOCK + 300
    g = _graph(N, 6 * N, seed=6)
    x = np.random.default_rng(7).standard_normal((N, 128)).astype(np.float32)
    model = build_model(name, in_channels=128, out_channels=5, seed=2, **cfg).eval()
    one = _with_threads(1, lambda: np.array(model.forward(x, g)))
    two = _with_threads(2, lambda: np.array(model.forward(x, g)))
    np.testing.assert_array_equal(one, two)


# ------------------------------------------------------------------------------ ELU in evaluation mode
def test_expm1_polynomial_accuracy():
    t = -np.concatenate([np.geomspace(1e-300, 745, 200_001), np.linspace(0, 45, 200_001)])
    y = np.empty_like(t)
    elementwise_cpu._elu_inference(t, 1.0, y, np.empty(t.shape, np.bool_))
    ref = np.expm1(t)
    assert np.max(np.abs(y - ref) / np.abs(np.where(ref == 0, 1, ref))) <= 2.3e-16   # 1 ulp
    t32 = t.astype(np.float32)
    y32 = np.empty_like(t32)
    elementwise_cpu._elu_inference(t32, 1.0, y32, np.empty(t.shape, np.bool_))
    truth = np.expm1(t32.astype(np.float64)).astype(np.float32)     # expm1 correctly rounded to float32, nearly
    ulps = np.abs(y32.view(np.int32).astype(np.int64) - truth.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_inference_equals_elu(dtype):
    x = (np.random.default_rng(8).standard_normal((300, 37)) * 6).astype(dtype)
    x[0, :6] = [np.nan, -np.inf, np.inf, -0.0, 0.0, -1e-40]
    got, pos = ops.elu_inference(x, 1.7)
    ref, ref_pos = ops.elu(x, 1.7)
    want, want_pos = np.empty_like(x), np.empty(x.shape, np.bool_)
    elementwise_reference.elu_inference(x, dtype(1.7), want, want_pos)
    np.testing.assert_array_equal(pos, ref_pos)
    np.testing.assert_array_equal(pos, want_pos)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(x))
    ok = ~np.isnan(x)
    tol = dict(rtol=1e-15, atol=0) if dtype == np.float64 else dict(rtol=3 * np.finfo(np.float32).eps, atol=0)
    np.testing.assert_allclose(got[ok], ref[ok], **tol)
    np.testing.assert_allclose(got[ok], want[ok], **tol)
    assert got[0, 1] == dtype(-1.7) and got[0, 2] == np.inf
    assert np.signbit(got[0, 3]) and not np.signbit(got[0, 4])


def test_elu_module_backward_after_an_evaluation_forward():
    # analysis/oversquashing.py differentiates a model in evaluation mode: the eval cache must be its own
    x = np.random.default_rng(9).standard_normal((20, 3))
    G = np.random.default_rng(10).standard_normal((20, 3))
    act = ELU(alpha=0.5)
    y_train = act(x)
    dx_train = act.backward(G)
    act(-x)                                   # a different training cache, which eval must replace
    act.eval()
    y = act(x)
    np.testing.assert_allclose(y, y_train, rtol=1e-15)
    np.testing.assert_allclose(act.backward(G), dx_train, rtol=1e-15)


# ------------------------------------------------------------------------------ the input scan
def test_block_scan_finds_the_first_non_finite_entry():
    n_rows = _SCAN_SPLIT // 64 + 3
    x = np.ones((n_rows, 64), np.float32)
    assert first_non_finite(x) is None
    x[n_rows - 1, 63] = np.nan
    assert first_non_finite(x) == (n_rows - 1, 63)
    x[5, 7] = -np.inf
    assert first_non_finite(x) == (5, 7)
    big = np.full((n_rows, 64), 3e38, np.float32)      # every entry finite, the sums overflow
    assert first_non_finite(big) is None


def test_layer_refuses_non_finite_input_of_a_big_graph():
    N = _SCAN_SPLIT // 32 + 1
    g = _graph(N, 2 * N, seed=10)
    x = np.zeros((N, 32), np.float32)
    x[N - 2, 31] = np.inf
    model = build_model("gcn", in_channels=32, out_channels=3, seed=0).eval()
    with pytest.raises(ValueError, match=rf"x must be finite, got inf at row {N - 2}, column 31"):
        model.forward(x, g)


def test_the_evaluation_policy_is_per_thread_and_a_nested_training_layer_keeps_training_bits():
    import threading
    from gnn_scratch.nn import Linear
    lin = Linear(512, 64, seed=0)
    x = np.random.default_rng(0).standard_normal((20000, 512)).astype(np.float32)
    ref = lin.forward(x).copy()                                   # training mode: one unsplit product
    inside, release = threading.Event(), threading.Event()

    def other():
        with threads.parallel_products():
            inside.set()
            release.wait()
    t = threading.Thread(target=other)
    t.start()
    inside.wait()
    try:
        assert not threads.products_split()                       # another thread's eval forward is not ours
        assert np.array_equal(lin.forward(x), ref)
    finally:
        release.set()
        t.join()
    with threads.parallel_products():
        assert threads.products_split()
        assert np.array_equal(lin.forward(x), ref)                # a training-mode layer inside an eval one
        assert threads.products_split()
    assert not threads.products_split()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_row_blocks_work_in_a_forked_child():
    threads.row_blocks(lambda lo, hi: None, 5 * threads.PRODUCT_BLOCK)     # the parent's pool exists
    pid = os.fork()
    if pid == 0:                                                            # the child: its pool must be new
        code = 1
        try:
            import signal
            signal.alarm(20)
            seen = []
            threads.row_blocks(lambda lo, hi: seen.append(lo), 5 * threads.PRODUCT_BLOCK)
            code = 0 if sorted(seen) == [k * threads.PRODUCT_BLOCK for k in range(5)] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# ------------------------------------------------------------------- cache-line-aligned op outputs
def test_host_empty_starts_large_arrays_on_a_cache_line():
    from gnn_scratch.device import ALIGN_MIN_BYTES, CACHE_LINE, empty, empty_like, host_empty
    for shape, dtype in [((100_000, 16), np.float32), ((3000, 7), np.float64), ((ALIGN_MIN_BYTES,), np.uint8),
                         (50_000, np.int64), ((40, 30, 20), np.float32)]:
        arrays = [host_empty(shape, dtype) for _ in range(4)] + [empty(shape, dtype)]
        arrays.append(empty_like(arrays[0]))
        for a in arrays:
            assert a.shape == ((shape,) if np.isscalar(shape) else shape) and a.dtype == dtype
            assert a.flags.c_contiguous and a.flags.writeable
            assert a.ctypes.data % CACHE_LINE == 0
        arrays[0][...] = 1        # separate buffers: writing one leaves the others alone
        arrays[1][...] = 2
        assert (arrays[0] == 1).all()
    for dtype, shape in [(object, (100_000, 2)), (np.dtype(("f4", (3,))), (10_000,))]:   # no uint8 view: NumPy's
        a = host_empty(shape, dtype)
        assert a.shape == np.empty(shape, dtype).shape and a.dtype == np.empty(shape, dtype).dtype
    for bad in [(True, 100_000), True, (np.bool_(True), 100_000)]:     # a bool is no dimension, as for NumPy
        with pytest.raises(TypeError):
            host_empty(bad, np.float32)
    big_endian = host_empty((100_000, 4), ">f4")
    assert big_endian.dtype == np.dtype(">f4") and big_endian.ctypes.data % CACHE_LINE == 0
    for shape, error in [((3.5, 2), TypeError), ((-1, 70_000), ValueError), ((-2, -2), ValueError)]:
        with pytest.raises(error):
            host_empty(shape, np.float32)
    small = host_empty((3, 5), np.float32)    # below the threshold: NumPy's own array
    assert small.shape == (3, 5) and small.base is None
    assert host_empty((0, 64), np.float32).shape == (0, 64)


def test_op_outputs_that_kernels_gather_are_aligned():
    from gnn_scratch.device import CACHE_LINE
    rng = np.random.default_rng(0)
    g = _graph(5000, 40_000)
    X = rng.standard_normal((5000, 32), dtype=np.float32)
    W = rng.standard_normal((32, 16), dtype=np.float32)
    Z = ops.matmul(X, W)
    out = ops.spmm(g, ops.ones_on_edges(g, np.float32), Z)
    for a in (Z, out):
        assert a.ctypes.data % CACHE_LINE == 0
    np.testing.assert_allclose(out, g.to_scipy() @ (X.astype(np.float64) @ W), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------ SpMM + bias (+ ReLU)
def _spmm_bias_case(dtype, seed=3, n=40, e=160, f=5):
    g = _graph(n, e, seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, f)).astype(dtype)
    X[1] = np.nan                          # rows that gather it become NaN: the ReLU gives 0, the bias-only path NaN
    w = rng.uniform(-1, 1, g.num_edges).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    b[0] = 0                               # with a zero sum, -0 + 0 and 0 + 0: the ReLU's +0 either way
    return g, X, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
def test_spmm_bias_is_spmm_then_add_bias_then_relu_bit_for_bit(dtype, relu):
    from gnn_scratch.kernels import cpu, reference
    g, X, w, b = _spmm_bias_case(dtype)
    want = ops.spmm(g, w, X)
    ops.add_bias(want, b)
    if relu:
        want, _ = ops.relu(want)
    got = ops.spmm_bias(g, w, X, b, relu)
    np.testing.assert_array_equal(got, want)
    if relu:
        assert not np.signbit(got).any()     # the ReLU leaves no -0
    for impl in (reference, cpu):
        out = np.full_like(want, 7)
        impl.spmm_sum_bias(g.indptr, g.indices, w, X, b, relu, out)
        np.testing.assert_array_equal(out, want, err_msg=impl.__name__)
    assert np.isnan(got).any() != relu     # the NaN row: kept without the ReLU, 0 with it (as ops.relu)


def test_spmm_bias_refuses_a_bias_of_the_wrong_width_or_dtype():
    g, X, w, b = _spmm_bias_case(np.float64)
    with pytest.raises(ValueError, match="b"):
        ops.spmm_bias(g, w, X, b[:-1])
    with pytest.raises(TypeError, match="b"):
        ops.spmm_bias(g, w, X, b.astype(np.float32))


def _assert_fused_relu_equals_the_pair(fused, plain, x, g, G, train):
    """Sequential(fused, ReLU) runs as one step, and its output, dL/dx and every gradient equal plain's followed by
    a ReLU module, bit for bit; returns the output."""
    from gnn_scratch.nn import ReLU, Sequential
    seq = Sequential(conv=fused, act=ReLU()).train(train)
    assert seq._steps() == [(fused, True)]
    act = ReLU()
    want = act.forward(plain.forward(x, g))
    got = seq.forward(x, g)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(seq.backward(G), plain.backward(act.backward(G)))
    for k in plain.grads:
        np.testing.assert_array_equal(fused.grads[k], plain.grads[k], err_msg=k)
    return got


# ------------------------------------------------------------------ mean + bias (+ self term) (+ ReLU)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_mean_aggregate_bias_is_the_steps_apart_bit_for_bit(dtype, accumulate, relu):
    """mean_aggregate, add_bias, + the self term already in out, relu: one op, the same bits on every path (a
    NaN row stays NaN without the ReLU and gives 0 with it; node n - 1 has no neighbours: its mean is 0)."""
    from gnn_scratch.kernels import cpu, reference
    g, X, _, b = _spmm_bias_case(dtype)
    R = np.random.default_rng(4).standard_normal((g.num_dst, X.shape[1])).astype(dtype)
    want = ops.mean_aggregate(g, X)
    ops.add_bias(want, b)
    if accumulate:
        ops.add_(want, R)
    if relu:
        want, _ = ops.relu(want)
    got = ops.mean_aggregate_bias(g, X, b, R.copy() if accumulate else None, relu)
    np.testing.assert_array_equal(got, want)
    for impl in (reference, cpu):
        out = R.copy() if accumulate else np.full_like(want, 7)
        impl.spmm_mean_bias(g.indptr, g.indices, X, b, accumulate, relu, out)
        np.testing.assert_array_equal(out, want, err_msg=impl.__name__)
    assert np.isnan(got).any() != relu
    if relu:
        assert not np.signbit(got).any()


def test_mean_aggregate_bias_refuses_a_bias_or_out_of_the_wrong_shape_or_dtype():
    g, X, _, b = _spmm_bias_case(np.float64)
    out = np.zeros((g.num_dst, X.shape[1]))
    with pytest.raises(ValueError, match="b must have shape"):
        ops.mean_aggregate_bias(g, X, b[:-1])
    with pytest.raises(TypeError, match="b must have the dtype"):
        ops.mean_aggregate_bias(g, X, b.astype(np.float32))
    with pytest.raises(ValueError, match="out must have shape"):
        ops.mean_aggregate_bias(g, X, b, out[:-1])
    with pytest.raises(TypeError, match="out must have the dtype"):
        ops.mean_aggregate_bias(g, X, b, out.astype(np.float32))
    with pytest.raises(ValueError, match="out must not share memory with X"):
        ops.mean_aggregate_bias(g, X, b, X)        # a square graph: X has out's shape


@pytest.mark.parametrize("aggr", ["mean", "sum", "max"])
@pytest.mark.parametrize("transform_first", [True, False])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("self_term", ["root_weight", "concat", "none"])
@pytest.mark.parametrize("sparse_x", [False, True])
def test_sageconv_with_its_relu_fused_equals_the_layer_then_relu(aggr, transform_first, train, self_term, sparse_x):
    """SAGEConv.forward(relu=True) (what the SAGE model and Sequential run): the output and every gradient are
    the layer's followed by a ReLU module, bit for bit (evaluation mode, mean, transform first: the self term,
    the bias and the ReLU inside ops.mean_aggregate_bias, and the backward's mask rebuilt from the output)."""
    from gnn_scratch.nn.conv import SAGEConv
    g = _graph(30, 120, seed=5)
    F_in, F_out = (6, 4) if transform_first else (4, 6)
    x = np.random.default_rng(6).standard_normal((30, F_in)).astype(np.float32)
    if sparse_x:     # a first layer's sparse features: the CSR products on both paths
        import scipy.sparse as sp
        x[np.random.default_rng(9).random(x.shape) < 0.6] = 0
        x = sp.csr_matrix(x)
    G = np.random.default_rng(7).standard_normal((30, F_out)).astype(np.float32)
    kw = dict(root_weight=self_term != "none", concat=self_term == "concat")
    convs = [SAGEConv(F_in, F_out, aggr=aggr, seed=8, **kw) for _ in range(2)]
    for c in convs:
        c.params["b"][:] = np.linspace(-0.5, 0.5, F_out)
        c.train(train)
    got = _assert_fused_relu_equals_the_pair(*convs, x, g, G, train)
    assert 0 < np.count_nonzero(got) < got.size


def test_sage_model_in_evaluation_mode_runs_the_fused_mean_and_gives_the_training_forward(monkeypatch):
    """The SAGE model's eval forward goes through ops.mean_aggregate_bias once per layer (with the ReLU after
    the first, none after the last), and equals its training-mode forward without dropout bit for bit."""
    g = _graph(40, 160, seed=9)
    x = np.random.default_rng(10).standard_normal((40, 12)).astype(np.float32)
    model = build_model("sage", in_channels=12, out_channels=3, hidden_channels=8, dropout=0.0, seed=1)
    for name in ("conv1", "conv2"):
        getattr(model, name).params["b"][:] = np.linspace(-0.3, 0.3, getattr(model, name).out_channels)
    want = model.train().forward(x, g)
    calls = []
    real = ops.mean_aggregate_bias
    monkeypatch.setattr(ops, "mean_aggregate_bias", lambda *a: calls.append(a[-1]) or real(*a))
    got = model.eval().forward(x, g)
    np.testing.assert_array_equal(got, want)
    assert calls == [True, False]


@pytest.mark.parametrize("transform_first", [True, False])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_gcnconv_with_its_relu_fused_equals_the_layer_then_relu(transform_first, train, bias):
    """Sequential(GCNConv, ReLU) runs GCNConv.forward(relu=True): the output and every gradient are the unfused
    pair's, bit for bit, in both modes and orders, with and without a bias (evaluation mode, order A(HW) with a
    bias: the ReLU inside the SpMM and the backward's mask rebuilt from the output)."""
    g = _graph(30, 120, seed=5)
    F_in, F_out = (6, 4) if transform_first else (4, 6)
    x = np.random.default_rng(6).standard_normal((30, F_in)).astype(np.float32)
    G = np.random.default_rng(7).standard_normal((30, F_out)).astype(np.float32)
    convs = [GCNConv(F_in, F_out, bias=bias, seed=8) for _ in range(2)]
    for c in convs:
        if bias:
            c.params["b"][:] = np.linspace(-0.5, 0.5, F_out)
        c.train(train)
    _assert_fused_relu_equals_the_pair(*convs, x, g, G, train)


# ------------------------------------------------------------------ GCN: a layer times the next W, in one op
def _gcn(N, e, F_in, hidden, C, dtype=np.float32, seed=11):
    g = _graph(N, e, seed)
    x = np.random.default_rng(seed + 1).standard_normal((N, F_in)).astype(dtype)
    model = build_model("gcn", in_channels=F_in, out_channels=C, hidden_channels=hidden, seed=seed, dtype=dtype)
    for conv in (model.conv1, model.conv2):   # biases that move the ReLU's cut
        conv.params["b"][:] = np.linspace(-0.2, 0.2, conv.out_channels)
    return g, x, model


# (N, edges, F_in, hidden, C): below the product split; split with the chunked sums (E F >= INFERENCE_GRAIN);
# split with the one-thread form's sums (E F below it)
GCN_SIZES = [(300, 1200, 24, 16, 7), (2 * threads.PRODUCT_BLOCK + 300, 6 * 8492, 96, 64, 32),
             (2 * threads.PRODUCT_BLOCK + 300, 4000, 96, 64, 32)]


@pytest.mark.parametrize("size", GCN_SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gcn_eval_forward_fuses_the_second_product_and_gives_the_layers_bits(monkeypatch, size, dtype):
    """In evaluation mode GCN's hidden output times conv2's W is one op (ops.spmm_bias_matmul, once per forward),
    and the logits are those of the layers run one by one, bit for bit, at every size: below the split product
    (the two steps as they are), and above it in blocks whose H never leaves the cache."""
    N, e, F_in, hidden, C = size
    g, x, model = _gcn(N, e, F_in, hidden, C, dtype)
    model.eval()
    want = np.array(Sequential.forward(model, x, g))          # the layers one by one
    calls, blocks = [], []
    real_op, real_rows = ops.spmm_bias_matmul, dense_cpu.spmm_sum_bias_rows
    monkeypatch.setattr(ops, "spmm_bias_matmul", lambda *a: calls.append(a[-1]) or real_op(*a))
    monkeypatch.setattr(dense_cpu, "spmm_sum_bias_rows", lambda *a: blocks.append(a[6]) or real_rows(*a))
    got = np.array(model.forward(x, g))
    np.testing.assert_array_equal(got, want)
    assert calls == [True]
    split = N * hidden * C >= threads.PRODUCT_GRAIN
    assert len(blocks) == (-(-N // threads.PRODUCT_BLOCK) if split else 0)
    if split:   # which sums the blocks used: the form call_numba gives the whole op at this size
        g_hat, _ = model.conv1.propagation(g, np.dtype(dtype))
        assert set(blocks) == {g_hat.num_edges * hidden < threads.INFERENCE_GRAIN}


@two_threads
def test_gcn_fused_eval_forward_bits_do_not_depend_on_the_thread_count():
    g, x, model = _gcn(*GCN_SIZES[1])
    model.eval()
    one = _with_threads(1, lambda: np.array(model.forward(x, g)))
    two = _with_threads(2, lambda: np.array(model.forward(x, g)))
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("size", GCN_SIZES[:2])
def test_gcn_backward_after_a_fused_eval_forward_is_the_layers_backward(size):
    """The fused forward keeps no layer caches; a backward after it runs the layers on the same input first (in
    evaluation mode, whatever the mode is now), so dL/dx and every gradient are those of the unfused pair."""
    g, x, model = _gcn(*size, dtype=np.float64)
    g2, x2, plain = _gcn(*size, dtype=np.float64)
    G = np.random.default_rng(3).standard_normal((x.shape[0], size[4]))
    model.eval()
    plain.eval()
    out = model.forward(x, g)
    model.train()                                   # the mode at backward time does not matter
    dx = model.backward(G)
    np.testing.assert_array_equal(out, Sequential.forward(plain, x2, g2))
    np.testing.assert_array_equal(dx, plain.backward(G))
    assert model.training and all(m.training for _, m in model.modules())
    for (name, _, grad), (_, _, want) in zip(model.named_parameters(), plain.named_parameters()):
        np.testing.assert_array_equal(grad, want, err_msg=name)
    fresh = _gcn(*size, dtype=np.float64)[2].eval()
    fresh.forward(x, g)
    with pytest.raises(BackwardBeforeForward):      # the layers themselves keep nothing from a fused forward
        fresh.conv1.backward(np.zeros((x.shape[0], size[3])))


def test_gcn_in_training_mode_or_with_a_wide_second_layer_runs_the_layers(monkeypatch):
    calls = []
    real = ops.spmm_bias_matmul
    monkeypatch.setattr(ops, "spmm_bias_matmul", lambda *a: calls.append(1) or real(*a))
    g, x, model = _gcn(60, 240, 12, 8, 3)
    model.train().forward(x, g)
    model.eval()
    model.drop2.train()                             # one layer left in training mode: no fusion
    model.forward(x, g)
    g, x, wide = _gcn(60, 240, 12, 8, 10)           # C > hidden: conv2 aggregates first
    wide.eval().forward(x, g)
    g, x, no_bias = _gcn(60, 240, 12, 8, 3)
    no_bias.conv1 = GCNConv(12, 8, bias=False, seed=1)
    no_bias.eval().forward(x, g)
    assert calls == []


def test_gcn_with_mismatched_layers_or_after_a_fused_forward_says_what_is_wrong():
    """A conv2 whose in_channels is not conv1's out_channels gets the layers' own error in evaluation mode too, and a
    fused forward leaves no earlier forward's cache in the layers it skipped (a backward there would use it)."""
    g, x, model = _gcn(60, 240, 12, 8, 3)
    model.conv2 = GCNConv(6, 3, seed=2)
    with pytest.raises(ValueError, match=r"x must have shape \(60, 6\).*in_channels=6"):
        model.eval().forward(x, g)
    g, x, model = _gcn(60, 240, 12, 8, 3)
    model.train().forward(x, g)                     # every layer caches something
    model.eval().forward(x, g)
    for layer in (model.conv1, model.act1, model.drop2, model.conv2):
        with pytest.raises(BackwardBeforeForward):
            layer.backward(np.ones((60, layer.out_channels if hasattr(layer, "out_channels") else 8), np.float32))
    with pytest.raises(ValueError, match=r"W_next must have shape \(8, C\)"):
        model.conv1.forward_product(x, g, np.ones((7, 3), np.float32))


_WORKQUEUE = """
import numpy as np
from numba import threading_layer
from gnn_scratch.graph import Graph
from gnn_scratch.models import build_model
from gnn_scratch.nn import Sequential
rng = np.random.default_rng(0)
N = 9000
g = Graph.from_edge_index(rng.integers(0, N, (2, 6 * N)), num_nodes=N)
x = rng.standard_normal((N, 96)).astype(np.float32)
model = build_model("gcn", in_channels=96, out_channels=32, hidden_channels=64, seed=0).eval()
same = np.array_equal(model.forward(x, g), Sequential.forward(model, x, g))
print(threading_layer(), same)
"""


def test_the_fused_gcn_forward_runs_under_numbas_workqueue_layer():
    """workqueue aborts the process when two threads enter a parallel region: the blocks then run one after
    another, the same blocks, the same bits."""
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    out = subprocess.run([sys.executable, "-c", _WORKQUEUE], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["workqueue", "True"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("n", [40, 2 * threads.PRODUCT_BLOCK + 300])
def test_spmm_bias_matmul_is_spmm_bias_then_matmul_bit_for_bit(dtype, relu, n):
    from gnn_scratch.kernels import dense_reference
    g, X, w, b = _spmm_bias_case(dtype, n=n, e=4 * n, f=64)
    W = np.random.default_rng(4).standard_normal((64, 32)).astype(dtype)
    with threads.parallel_products():
        want = ops.matmul(ops.spmm_bias(g, w, X, b, relu), W)
        got = ops.spmm_bias_matmul(g, w, X, b, W, relu)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got).any() != relu           # the NaN row of X: kept without the ReLU, cut by it
    ref = np.full_like(want, 7)
    dense_reference.spmm_sum_bias_matmul(g.indptr, g.indices, w, X, b, relu, W, ref)
    np.testing.assert_allclose(ref, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_spmm_bias_matmul_refuses_mismatched_shapes_and_dtypes():
    import scipy.sparse as sp
    g, X, w, b = _spmm_bias_case(np.float64)
    W = np.ones((X.shape[1], 3))
    with pytest.raises(ValueError, match="W"):
        ops.spmm_bias_matmul(g, w, X, b, W[:-1])
    with pytest.raises(ValueError, match="b"):
        ops.spmm_bias_matmul(g, w, X, b[:-1], W)
    with pytest.raises(TypeError, match="W"):
        ops.spmm_bias_matmul(g, w, X, b, W.astype(np.float32))
    with pytest.raises(TypeError, match="W"):
        ops.spmm_bias_matmul(g, w, X, b, sp.csr_matrix(W))
    with pytest.raises(ValueError, match="X"):
        ops.spmm_bias_matmul(g, w, X[:-1], b, W)
