"""The fused GAT kernels on the GPU (``kernels/gat_cuda.py``) against ``gat_cpu`` and ``gat_reference``.

Runs under Numba's CUDA simulator (tests/conftest.py) or on a real GPU; tiny graphs (<= 9 nodes,
H <= 2, F <= 3) because every simulated GPU thread is a Python thread. Every fixture graph has an
isolated destination, a self-loop and a repeated edge; the bipartite case has N_dst < N_src.
"""
import numpy as np
import pytest

from cuda_support import cuda  # noqa: E402,F401  (skips the module without a GPU)

from gnn_scratch.graph import Graph  # noqa: E402
from gnn_scratch.kernels import cuda as ck  # noqa: E402
from gnn_scratch.kernels import gat_cpu, gat_cuda, gat_reference, rng as krng  # noqa: E402

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(autouse=True)
def one_block(monkeypatch):
    monkeypatch.setattr(ck, "_MAX_BLOCKS", 1)          # grid-stride loops over every row from one block
    monkeypatch.setattr(ck, "_BLOCK_THREADS", 32)


def square():
    # 7 nodes: node 6 isolated, self-loop 2 -> 2, repeated edge 0 -> 1
    src = [0, 0, 2, 1, 3, 2, 2, 4, 5, 3, 0, 4]
    dst = [1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 4]
    return Graph.from_edge_index(np.array([src, dst]), num_nodes=7)


def bipartite():
    # 4 destinations (the first 4 of 9 sources), destination 2 without edges
    return Graph.from_csr([0, 3, 5, 5, 9], [4, 0, 8, 1, 1, 6, 2, 3, 5], num_src=9)


def case(g, dtype, H, F, dropout, seed):
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    # the attention-dropout mask GATConv draws: the counter hash under a 64-bit key, element e H + h
    keep = (krng.keep_mask_host(seed, krng.keep_threshold(0.7), g.num_edges * H).reshape(g.num_edges, H)
            .astype(np.uint8) if dropout else np.zeros((0, H), np.uint8))
    assert not dropout or 0 < keep.sum() < keep.size          # some attention dropped, some kept
    return dict(a_dst=2 * r(g.num_dst, H), a_src=2 * r(g.num_src, H), Z=r(g.num_src, H, F), keep=keep,
                G=r(g.num_dst, H, F), slope=dtype(0.2), scale=dtype(1 / 0.7))


def run(K, g, c, on_device):
    dt = c["Z"].dtype
    H, F = c["Z"].shape[1:]
    mv = cuda.to_device if on_device else (lambda a: a)
    nan = lambda *s: mv(np.full(s, np.nan, dt))          # noqa: E731  garbage: a skipped element shows
    out, row_max, row_sum = nan(g.num_dst, H, F), nan(g.num_dst, H), nan(g.num_dst, H)
    args = [mv(a) for a in (g.indptr, g.indices, c["a_dst"], c["a_src"], c["Z"])]
    K.gat_forward(*args, c["slope"], mv(c["keep"]), c["scale"], out, row_max, row_sum)
    grads = [nan(g.num_edges, H), nan(g.num_edges, H), nan(g.num_src, H, F), nan(g.num_dst, H), nan(g.num_src, H)]
    K.gat_backward(args[0], args[1], mv(g.t_indptr), mv(g.t_indices), mv(g.t_perm), *args[2:], c["slope"],
                   mv(c["keep"]), c["scale"], row_max, row_sum, mv(c["G"]), *grads)
    host = (lambda a: a.copy_to_host()) if on_device else (lambda a: a)
    return [host(a) for a in [out, row_max, row_sum] + grads]


NAMES = ["out", "row_max", "row_sum", "grad_pre", "alpha_d", "grad_Z", "grad_a_dst", "grad_a_src"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("graph, H, F, dropout", [(square, 2, 3, False), (square, 2, 3, True),
                                                  (bipartite, 1, 2, True)],
                         ids=["square", "square-dropout", "bipartite-dropout"])
def test_gat_cuda_matches_cpu_and_reference(graph, H, F, dropout, dtype):
    g = graph()
    c = case(g, dtype, H, F, dropout, seed=H + F)
    gpu = run(gat_cuda, g, c, True)
    for K in (gat_cpu, gat_reference):
        for name, got, want in zip(NAMES, gpu, run(K, g, c, False)):
            assert np.isfinite(got).all(), name
            np.testing.assert_allclose(got, want, err_msg=f"{name} vs {K.__name__}", **TOL[dtype])


def test_gat_cuda_repeats_bit_for_bit_and_empty_rows_are_zero():
    g = square()
    c = case(g, np.float32, 2, 3, True, seed=9)
    first, second = run(gat_cuda, g, c, True), run(gat_cuda, g, c, True)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, second))
    out, row_max, row_sum = first[:3]
    assert not out[0].any() and not out[6].any() and not row_max[6].any() and not row_sum[6].any()


def test_gat_cuda_checks_shapes():
    g = square()
    c = case(g, np.float32, 2, 3, False, seed=1)
    d = cuda.to_device
    with pytest.raises(ValueError, match=r"keep_mask must have shape \(12, 2\) or \(0, 2\)"):
        gat_cuda.gat_forward(d(g.indptr), d(g.indices), d(c["a_dst"]), d(c["a_src"]), d(c["Z"]), c["slope"],
                             d(np.ones((5, 2), np.uint8)), c["scale"], cuda.device_array((7, 2, 3), np.float32),
                             cuda.device_array((7, 2), np.float32), cuda.device_array((7, 2), np.float32))
    with pytest.raises(TypeError, match="Z must be a device array"):
        gat_cuda.gat_forward(d(g.indptr), d(g.indices), d(c["a_dst"]), d(c["a_src"]), c["Z"], c["slope"],
                             d(c["keep"]), c["scale"], None, None, None)
