"""The fused attention (FlashAttention within each graph of a batch) against the dense definition.

``kernels/attention_reference.dense_attention`` and its backward are the truth (derivations/
flash_attention.md sections 1-5; themselves checked against central differences and torch's SDPA).
Every implementation of the ``attention`` family -- the NumPy tiles, the Numba kernels, the CUDA
kernels under the simulator -- must equal it: float64 to 1e-12, float32 to 1e-5 relative (max
error over the max magnitude, against the float64 truth of the same inputs). Batches mix graph
sizes across the tile sizes (a one-node graph, an empty graph in graph_ptr, graphs longer than
a tile, tiles spanning several graphs); tile sizes are also shrunk (monkeypatched) so that small
graphs cross many tiles.
"""
import re
from pathlib import Path

import numba
import numpy as np
import pytest

from gnn_scratch import ops
from gnn_scratch.graph import Graph, GraphBatch
from gnn_scratch.gradcheck import flash_attention as fa_cases
from gnn_scratch.kernels import attention_cpu, attention_reference, registry
from gnn_scratch.kernels.attention_reference import dense_attention, dense_attention_backward

REPO = Path(__file__).resolve().parents[1]
TOL = {np.float64: 1e-12, np.float32: 1e-5}

# graph 0: one node; graph 1: empty; graph 2: 70 nodes (crosses 64-row tiles); then 2, 9 and 37 nodes
PTR = np.array([0, 1, 1, 71, 73, 82, 119], dtype=np.int64)


def rel(a, b):
    """max |a - b| / max |b|: the error relative to the size of the truth."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def inputs(ptr, H, d, dv, dtype, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    N = int(ptr[-1])
    Q, K = (spread * rng.standard_normal((N, H, d)) for _ in range(2))
    V, dO = (rng.standard_normal((N, H, dv)) for _ in range(2))
    return [np.ascontiguousarray(x, dtype=dtype) for x in (Q, K, V, dO)]


def truth(ptr, Q, K, V, dO, scale):
    """The dense definition in float64 of the same values: (O, L, dQ, dK, dV)."""
    x64 = [x.astype(np.float64) for x in (Q, K, V, dO)]
    O, L = dense_attention(*x64[:3], ptr, float(scale))
    return (O, L) + dense_attention_backward(x64[3], *x64[:3], ptr, float(scale))


def kernel_run(impl, ptr, Q, K, V, dO, scale):
    """(O, L, dQ, dK, dV) of the registered kernels of ``impl``; outputs start as NaN so a skipped row shows."""
    fwd, bwd = (registry.resolve(n, impl) for n in ("flash_attention_forward", "flash_attention_backward"))
    N, H, d = Q.shape
    dv = V.shape[2]
    dt = Q.dtype.type
    nan = lambda *s: np.full(s, np.nan, Q.dtype)                              # noqa: E731
    outs = [nan(N, H, dv), nan(N, H), nan(N, H), nan(N, H, d), nan(N, H, d), nan(N, H, dv)]
    if impl == "cuda":
        from numba import cuda
        dev = [cuda.to_device(a) for a in (ptr, Q, K, V, dO)]
        o = [cuda.to_device(a) for a in outs]
        fwd(*dev[:4], dt(scale), o[0], o[1])
        bwd(*dev[:4], o[0], o[1], dev[4], dt(scale), *o[2:])
        outs = [a.copy_to_host() for a in o]
    else:
        fwd(ptr, Q, K, V, dt(scale), outs[0], outs[1])
        bwd(ptr, Q, K, V, outs[0], outs[1], dO, dt(scale), *outs[2:])
    O, L, D, dQ, dK, dV = outs
    np.testing.assert_allclose(D, np.sum(dO.astype(np.float64) * O, axis=2), rtol=TOL[Q.dtype.type] * 10,
                               atol=TOL[Q.dtype.type])
    return O, L, dQ, dK, dV


def assert_equal_to_truth(got, want, dtype, what, names=("O", "L", "dQ", "dK", "dV")):
    for name, g, w in zip(names, got, want):
        assert not np.isnan(g).any(), f"{what}: {name} has rows that were never written"
        assert rel(g, w) < TOL[dtype], f"{what}: {name} relative error {rel(g, w):.2e}"


# ------------------------------------------------------------------------------------ the definition
def test_dense_backward_matches_finite_differences():
    """The truth's own backward (sections 2-5), entry by entry, against central differences of the definition."""
    ptr = np.array([0, 3, 3, 7])
    Q, K, V, G = inputs(ptr, 2, 3, 2, np.float64, seed=3)
    grads = dense_attention_backward(G, Q, K, V, ptr, 0.8)
    loss = lambda: float(np.sum(G * dense_attention(Q, K, V, ptr, 0.8)[0]))   # noqa: E731
    from gnn_scratch.gradcheck import numerical_gradient
    for name, X, g in zip("QKV", (Q, K, V), grads):
        np.testing.assert_allclose(g, numerical_gradient(loss, X), rtol=1e-6, atol=1e-9, err_msg=name)
    O, L = dense_attention(Q, K, V, ptr, 0.8)
    S = 0.8 * Q[3:, 1] @ K[3:, 1].T                      # L is the row log-sum-exp, computed stably
    np.testing.assert_allclose(L[3:, 1], np.log(np.exp(S).sum(axis=1)), rtol=1e-14)


@pytest.mark.oracle
def test_ours_equals_torch_sdpa():
    """Forward and every gradient against torch's scaled_dot_product_attention, float64, graph by graph."""
    torch = pytest.importorskip("torch")
    Q, K, V, dO = inputs(PTR, 2, 5, 3, np.float64, seed=4)
    O, L = ops.flash_attention(Q, K, V, PTR)
    dQ, dK, dV = ops.flash_attention_backward(dO, Q, K, V, O, L, PTR)
    for a, b in zip(PTR[:-1], PTR[1:]):
        if b == a:
            continue
        t = [torch.tensor(x[a:b].transpose(1, 0, 2)[None], requires_grad=True) for x in (Q, K, V)]
        out = torch.nn.functional.scaled_dot_product_attention(*t)
        out.backward(torch.tensor(dO[a:b].transpose(1, 0, 2)[None]))
        for ours, theirs in ((O, out.detach()), (dQ, t[0].grad), (dK, t[1].grad), (dV, t[2].grad)):
            want = theirs.numpy()[0].transpose(1, 0, 2)
            assert rel(ours[a:b], want) <= 1e-10 or np.abs(ours[a:b] - want).max() < 1e-15


# ---------------------------------------------------------------------------------- the implementations
@pytest.mark.parametrize("tiles", [(64, 64), (8, 5), (3, 2)])
def test_reference_tiles_equal_the_dense_definition(monkeypatch, tiles):
    monkeypatch.setattr(attention_reference, "BR", tiles[0])
    monkeypatch.setattr(attention_reference, "BC", tiles[1])
    Q, K, V, dO = inputs(PTR, 2, 4, 3, np.float64, seed=1)
    assert_equal_to_truth(kernel_run("reference", PTR, Q, K, V, dO, 0.5), truth(PTR, Q, K, V, dO, 0.5),
                          np.float64, f"reference tiles {tiles}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tiles,dims", [((64, 64), (2, 8, 8)), ((8, 4), (3, 4, 3)), ((5, 3), (1, 2, 6)),
                                        ((64, 64), (1, 128, 96))])
def test_cpu_kernels_equal_the_dense_definition(monkeypatch, dtype, tiles, dims):
    """Default tiles, small tiles (many per graph, partial last tiles), and a wide head (Bc shrinks to 32)."""
    monkeypatch.setattr(attention_cpu, "BR", tiles[0])
    monkeypatch.setattr(attention_cpu, "BC", tiles[1])
    H, d, dv = dims
    Q, K, V, dO = inputs(PTR, H, d, dv, dtype, seed=2)
    scale = 1 / np.sqrt(d)
    assert_equal_to_truth(kernel_run("cpu", PTR, Q, K, V, dO, scale), truth(PTR, Q, K, V, dO, scale), dtype,
                          f"cpu {dtype.__name__} tiles {tiles} dims {dims}")


def test_tile_sizes_keep_a_tile_product_within_the_bound():
    assert attention_cpu.tile_sizes(64, 64) == (64, 64)
    assert attention_cpu.tile_sizes(128, 64) == (64, 32)
    assert attention_cpu.tile_sizes(8, 512) == (64, 8)
    for d in (1, 16, 64, 65, 128, 256):
        Br, Bc = attention_cpu.tile_sizes(d, d)
        assert Br * Bc * d <= attention_cpu.GEMM_MAX


def _cuda_or_skip():
    pytest.importorskip("numba.cuda")
    from gnn_scratch.kernels.cuda import require_cuda
    try:
        require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tile", [4, 16])
def test_cuda_kernels_equal_the_dense_definition(monkeypatch, dtype, tile):
    """One block (grid-stride over every tile) under the simulator; tiles of 4 rows cross graphs and rows."""
    _cuda_or_skip()
    from gnn_scratch.kernels import attention_cuda
    from gnn_scratch.kernels import cuda as ck
    monkeypatch.setattr(attention_cuda, "TILE", tile)
    monkeypatch.setattr(ck, "_MAX_BLOCKS", 2)
    ptr = np.array([0, 1, 1, 7, 9, 30], dtype=np.int64)   # a one-node graph, an empty one, 21 nodes
    Q, K, V, dO = inputs(ptr, 2, 3, 2, dtype, seed=5)
    assert_equal_to_truth(kernel_run("cuda", ptr, Q, K, V, dO, 0.7), truth(ptr, Q, K, V, dO, 0.7), dtype,
                          f"cuda {dtype.__name__} tile {tile}")


def test_cuda_tile_fits_in_shared_memory():
    pytest.importorskip("numba.cuda")
    from gnn_scratch.kernels import attention_cuda as ac
    for d, dv, itemsize in ((64, 64, 4), (64, 64, 8), (128, 128, 4), (8, 8, 8)):
        T = ac.tile_rows(d, dv, itemsize)
        assert ac._shared_elems(T, d, dv) * itemsize <= ac.SHARED_BYTES and T >= 1
    with pytest.raises(ValueError, match="too wide for the CUDA attention kernels"):
        ac.tile_rows(4000, 4000, 8)


# ---------------------------------------------------------------------------------------- the ops
def test_ops_equal_the_definition_on_both_backends(backend):
    Q, K, V, dO = inputs(PTR, 2, 4, 5, np.float64, seed=6)
    O, L = ops.flash_attention(Q, K, V, PTR)
    got = (O, L) + ops.flash_attention_backward(dO, Q, K, V, O, L, PTR)
    assert_equal_to_truth(got, truth(PTR, Q, K, V, dO, 1 / 2), np.float64, f"ops, {backend} backend")
    assert O.dtype == L.dtype == np.float64 and O.shape == (119, 2, 5) and L.shape == (119, 2)


def test_ops_take_a_graph_batch():
    graphs = [Graph.from_edge_index(np.array([[0, n - 1], [n - 1, 0]]), num_nodes=n) for n in (3, 1, 12)]
    batch = GraphBatch.from_graphs(graphs)
    Q, K, V, dO = inputs(batch.graph_ptr, 1, 3, 3, np.float32, seed=7)
    O, L = ops.flash_attention(Q, K, V, batch, scale=0.3)
    O2, L2 = ops.flash_attention(Q, K, V, batch.graph_ptr, scale=0.3)
    np.testing.assert_array_equal(O, O2)
    np.testing.assert_array_equal(L, L2)
    assert O.dtype == np.float32
    for g, g2 in zip(ops.flash_attention_backward(dO, Q, K, V, O, L, batch, 0.3),
                     ops.flash_attention_backward(dO, Q, K, V, O, L, list(batch.graph_ptr), 0.3)):
        np.testing.assert_array_equal(g, g2)


def test_ops_on_the_device_equal_the_host():
    _cuda_or_skip()
    from gnn_scratch.device import to_device, to_host
    graphs = [Graph.from_edge_index(np.zeros((2, 0), np.int64), num_nodes=n) for n in (2, 1, 6)]
    batch = GraphBatch.from_graphs(graphs)
    Q, K, V, dO = inputs(batch.graph_ptr, 2, 3, 2, np.float64, seed=8)
    host = ops.flash_attention(Q, K, V, batch)
    host += ops.flash_attention_backward(dO, Q, K, V, *host[:2], batch)
    dev = [to_device(x) for x in (Q, K, V, dO)]
    for ptr in (batch.to("cuda"), batch.graph_ptr):        # a device batch, or a host graph_ptr (copied over)
        O, L = ops.flash_attention(*dev[:3], ptr)
        got = [O, L] + list(ops.flash_attention_backward(dev[3], *dev[:3], O, L, ptr))
        for g, h in zip(got, host):
            np.testing.assert_allclose(to_host(g), h, rtol=1e-12, atol=1e-14)


def test_no_attention_crosses_graphs():
    """Changing one graph's nodes leaves every other graph's outputs and gradients bit for bit unchanged,
    and a batch gives each graph what it gets alone."""
    Q, K, V, dO = inputs(PTR, 2, 4, 4, np.float64, seed=9)
    O, L = ops.flash_attention(Q, K, V, PTR)
    grads = ops.flash_attention_backward(dO, Q, K, V, O, L, PTR)
    a, b = PTR[3], PTR[4]                                # graph 3: nodes 71, 72
    K2, V2 = K.copy(), V.copy()
    K2[a:b] += 1.0
    V2[a:b] -= 2.0
    O2, L2 = ops.flash_attention(Q, K2, V2, PTR)
    grads2 = ops.flash_attention_backward(dO, Q, K2, V2, O2, L2, PTR)
    outside = np.r_[0:a, b:PTR[-1]]
    for x, y in zip((O, L) + grads, (O2, L2) + grads2):
        np.testing.assert_array_equal(x[outside], y[outside])
    for lo, hi in zip(PTR[:-1], PTR[1:]):
        if hi > lo:
            one = ops.flash_attention(Q[lo:hi], K[lo:hi], V[lo:hi], np.array([0, hi - lo]))
            np.testing.assert_allclose(one[0], O[lo:hi], rtol=1e-13, atol=1e-15)


def test_one_node_graph_copies_its_value():
    """P = [1]: o = v and dV = dO exactly, L = c q·k, dQ = dK = 0 (dS = dP - D: two roundings of dO·v)."""
    Q, K, V, dO = inputs(PTR, 3, 4, 2, np.float64, seed=10)
    O, L = ops.flash_attention(Q, K, V, PTR, scale=0.5)
    dQ, dK, dV = ops.flash_attention_backward(dO, Q, K, V, O, L, PTR, scale=0.5)
    np.testing.assert_array_equal(O[0], V[0])
    np.testing.assert_allclose(L[0], 0.5 * np.sum(Q[0] * K[0], axis=1), rtol=1e-15)
    np.testing.assert_array_equal(dV[0], dO[0])
    np.testing.assert_allclose(dQ[0], 0, atol=1e-15)
    np.testing.assert_allclose(dK[0], 0, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_scores_stay_finite_and_exact(dtype):
    """Scores past exp's overflow (~88 in float32, ~709 in float64) and exact ties: finite, equal to the definition.

    Integer queries and keys with scale 1 make every score exact, so the comparison measures the
    softmax, not the rounding of the scores. One limit is the contract's: the saved L = m + log l is
    one float, rounded to |L| 2^-24 in float32, and the backward's P = exp(S - L) inherits that as a
    relative error (derivations/flash_attention.md, section 6); the backward is judged with it.
    """
    Q, K, V, dO = inputs(PTR, 2, 4, 3, dtype, seed=11)
    rng = np.random.default_rng(11)
    top = 40 if dtype == np.float64 else 7                # scores up to 4 top² = 6400 / 196
    Q[:], K[:] = rng.integers(-top, top + 1, Q.shape), rng.integers(-top, top + 1, K.shape)
    Q[75:80], K[75:80] = Q[74], K[74]                     # rows of identical scores in graph 4
    O, L = ops.flash_attention(Q, K, V, PTR, scale=1.0)
    got = (O, L) + ops.flash_attention_backward(dO, Q, K, V, O, L, PTR, scale=1.0)
    assert np.abs(L).max() > (1000 if dtype == np.float64 else 100) and all(np.isfinite(g).all() for g in got)
    want = truth(PTR, Q, K, V, dO, 1.0)
    assert_equal_to_truth(got[:2], want[:2], dtype, "huge scores", ("O", "L"))
    tol = TOL[dtype] if dtype == np.float64 else max(TOL[dtype], 4 * 2.0**-24 * np.abs(L).max())
    for name, g, w in zip(("dQ", "dK", "dV"), got[2:], want[2:]):
        assert rel(g, w) < tol, f"huge scores: {name} relative error {rel(g, w):.2e} > {tol:.1e}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_exp_equals_numpy(dtype):
    """The kernels' vectorisable exp: within 2 ulp of NumPy's for x in [-700, 1] (float32: [-87, 1]), 0 below."""
    lo = -700.0 if dtype == np.float64 else -87.0
    x = np.concatenate([np.linspace(lo, 1.0, 200_001), -np.logspace(-30, 0, 1001), [0.0, -np.inf]]).astype(dtype)
    x = x[x > lo]
    out = np.empty_like(x)
    attention_cpu.exp_array(x, out)
    want = np.exp(x.astype(np.float64))
    ulp = np.spacing(want.astype(dtype)).astype(np.float64)
    assert np.max(np.abs(out - want) / ulp) <= 2.0
    below = np.array([lo, lo - 1, -1e4, -np.inf], dtype)
    attention_cpu.exp_array(below, out[:4])
    assert not out[:4].any()


def test_cpu_kernels_are_the_same_bits_run_twice_and_on_one_thread():
    ptr = np.array([0, 3, 130, 131, 400], dtype=np.int64)
    Q, K, V, dO = inputs(ptr, 2, 32, 16, np.float32, seed=12)
    runs = []
    old = numba.get_num_threads()
    try:
        for threads in (old, 1, old):
            numba.set_num_threads(threads)
            O, L = ops.flash_attention(Q, K, V, ptr)
            runs.append((O, L) + ops.flash_attention_backward(dO, Q, K, V, O, L, ptr))
    finally:
        numba.set_num_threads(old)
    for other in runs[1:]:
        for x, y in zip(runs[0], other):
            np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------------- gradient check
def test_gradcheck_rows_pass(backend):
    rows = fa_cases.flash_attention()
    assert len(rows) == 3 * 3                              # Q, K, V of each of the three batches
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


# -------------------------------------------------------------------------------------- bad input
def test_errors_name_the_argument():
    Q, K, V, dO = inputs(np.array([0, 5]), 2, 3, 2, np.float64)
    ptr = np.array([0, 2, 5])
    cases = [
        (ValueError, r"ops.flash_attention: Q must have shape \(N, H, d\)", (Q[:, 0], K, V, ptr)),
        (ValueError, r"K must have the shape of Q \(5, 2, 3\), got \(5, 2, 4\)", (Q, np.zeros((5, 2, 4)), V, ptr)),
        (ValueError, r"V must have shape \(5, 2, dv\), got \(4, 2, 2\)", (Q, K, V[:4], ptr)),
        (TypeError, r"K must have the dtype of Q \(float64\), got float32", (Q, K.astype(np.float32), V, ptr)),
        (TypeError, r"Q must be float32 or float64, got int64", (Q.astype(np.int64), K, V, ptr)),
        (ValueError, r"Q must be C-contiguous", (np.asfortranarray(Q), K, V, ptr)),
        (ValueError, r"graph_ptr must start at 0 and end at the number of rows N = 5", (Q, K, V, np.array([0, 4]))),
        (ValueError, r"graph_ptr must be non-decreasing, got graph_ptr\[1\] = 4 > graph_ptr\[2\] = 2",
         (Q, K, V, np.array([0, 4, 2, 5]))),
        (TypeError, r"graph_ptr must be an integer array", (Q, K, V, np.array([0.0, 5.0]))),
        (ValueError, r"graph_ptr must have shape \(B \+ 1,\)", (Q, K, V, np.array([[0, 5]]))),
    ]
    for exc, msg, args in cases:
        with pytest.raises(exc, match=msg):
            ops.flash_attention(*args)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        ops.flash_attention(Q, K, V, ptr, scale=np.inf)
    with pytest.raises(ValueError, match="the GraphBatch has 3 nodes but Q has 5 rows"):
        ops.flash_attention(Q, K, V, GraphBatch.from_graphs([Graph.from_edge_index(np.zeros((2, 0), int), 3)]))
    O, L = ops.flash_attention(Q, K, V, ptr)
    with pytest.raises(ValueError, match=r"flash_attention_backward: dO must have the shape of O \(5, 2, 2\)"):
        ops.flash_attention_backward(dO[:, :, :1], Q, K, V, O, L, ptr)
    with pytest.raises(ValueError, match=r"flash_attention_backward: L must have shape \(5, 2\)"):
        ops.flash_attention_backward(dO, Q, K, V, O, L[:, :1], ptr)
    with pytest.raises(TypeError, match=r"flash_attention_backward: dO must have the dtype of Q"):
        ops.flash_attention_backward(dO.astype(np.float32), Q, K, V, O, L, ptr)


# ---------------------------------------------------------------------------- memory, the benchmark
def test_fused_memory_grows_linearly_and_dense_quadratically():
    """In this process, small N: tracemalloc's peak of forward + backward (the benchmark does it in fresh
    processes up to 64k). Fused: the outputs + a workspace, as predicted; dense: two (H, N, N) arrays."""
    from gnn_scratch.bench import attention as bench
    peaks = {impl: [bench.measure_memory(impl, N, H=1, d=16)["traced_peak_bytes"] for N in (512, 2048)]
             for impl in ("fused", "dense")}
    from gnn_scratch.device import CACHE_LINE
    slack = 4096 + 32 * CACHE_LINE   # Python objects, and each large array's padding to a cache line (device.host_empty)
    for N, peak in zip((512, 2048), peaks["fused"]):
        assert abs(peak - bench.fused_bytes(N, 1, 16, 4)) < slack, (N, peak, bench.fused_bytes(N, 1, 16, 4))
    assert peaks["dense"][1] / peaks["dense"][0] > 12                  # ~16 for 4x the nodes
    assert peaks["fused"][1] / peaks["fused"][0] < 4.1
    assert peaks["dense"][1] > bench.dense_bytes(2048, 1, 4) > 20 * peaks["fused"][1]


def test_benchmark_rows_and_tables():
    from gnn_scratch.bench import attention as bench
    row = bench.measure_time("fused", 256, H=1, d=8, repeats=2)
    assert row["n"] == 2 and 0 < row["min_s"] <= row["median_s"] and row["forward_s"] > 0 and row["backward_s"] > 0
    rows = [row, bench._skip("time", "dense", 256, 1, 8, "float32", 1, threads=row["threads"]),
            dict(part="attention", kind="memory", impl="fused", N=256, H=1, d=8, dtype="float32",
                 traced_peak_bytes=2**20, rss_peak_bytes=None, seconds=0.1)]
    table = bench.format_tables(rows)
    assert "| 256 | 1.0 | - | 0.10 |" in table and "torch SDPA" in table
    assert f"{row['threads']} thread" in table and "| 256 | " + f"{row['median_s']:.3f}" in table


def test_derivation_snippets_run():
    text = (REPO / "derivations" / "flash_attention.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "flash_attention.md has no Python block"
    for code in blocks:
        exec(compile(code, "flash_attention.md", "exec"), {})


def test_a_non_finite_row_gives_nan_like_the_reference_not_an_exception():
    """A NaN / Inf query (diverged training) poisons its own rows with NaN, as the dense reference does;
    the Numba kernel must not raise (its row sum is 0 or NaN there: a division it now guards)."""
    from gnn_scratch.kernels.attention_reference import dense_attention
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((70, 2, 8)) for _ in range(3))
    for bad in (np.nan, np.inf):
        Qb = Q.copy()
        Qb[3] = bad
        O, _ = ops.flash_attention(Qb, K, V, np.array([0, 70]))
        with np.errstate(invalid="ignore"):          # the reference's own inf - inf
            R = dense_attention(Qb, K, V, np.array([0, 70]), 1 / np.sqrt(8))[0]
        assert np.isnan(O[3]).all() and np.isnan(R[3]).all()
        np.testing.assert_allclose(np.delete(O, 3, axis=0), np.delete(R, 3, axis=0), rtol=1e-12, atol=1e-14)
