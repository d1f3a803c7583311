"""Launch shapes a real GPU enforces and the simulator does not, and the GPU's own block sizes.

The simulator runs any grid and, to stay fast, the other tests shrink the module constants
(8-thread blocks, 8 x 8 tiles). Here: no launch asks for more than 65535 blocks along y (a hard
CUDA limit; ``_MAX_BLOCKS`` stands for it), and the reductions and products run with the block
sizes they use on a GPU (256 threads, 16 x 16 tiles, 256-lane rows) on small inputs.
"""
import numpy as np
import pytest

from gnn_scratch.kernels import cuda as ck
from gnn_scratch.kernels import dense_cuda as dc

cuda = ck.cuda


def _spy_grids(monkeypatch, factory_name):
    """Record the grid of every launch of the kernels that ``dc.<factory_name>`` builds."""
    grids = []
    orig = getattr(dc, factory_name)

    class Spy:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, config):
            grids.append(config[0] if isinstance(config[0], tuple) else (config[0], 1))
            return self.kernel[config]

    monkeypatch.setattr(dc, factory_name, lambda *a: Spy(orig(*a)))
    return grids


@pytest.mark.parametrize("weighted", [False, True])
def test_col_sum_keeps_grid_y_within_the_cuda_limit(monkeypatch, weighted):
    monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)         # stands for 65535: 300 rows of 64-row chunks would be 5
    grids = _spy_grids(monkeypatch, "_col_sum_kernel")
    rng = np.random.default_rng(0)
    R, H, F = 300, 2, 3
    G = rng.standard_normal((R, H * F)).astype(np.float32)
    out = cuda.device_array(H * F, dtype=np.float32)
    if weighted:
        da = rng.standard_normal((R, H)).astype(np.float32)
        dc.head_dot_backward_att(cuda.to_device(da), cuda.to_device(G.reshape(R, H, F)), out.reshape(H, F))
        want = np.einsum("nh,nhf->hf", da, G.reshape(R, H, F)).reshape(-1)
    else:
        dc.col_sum(cuda.to_device(G), out)
        want = G.sum(axis=0)
    np.testing.assert_allclose(out.copy_to_host(), want, rtol=1e-5, atol=1e-5)
    assert grids and all(gy <= dc._MAX_BLOCKS for _, gy in grids), grids
    assert any(gy == 2 for _, gy in grids)              # still split: two chunks of 150 rows


def test_matmul_tn_keeps_its_splits_within_the_cuda_limit(monkeypatch):
    monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)
    grids = _spy_grids(monkeypatch, "_matmul_kernel")
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((100, 3)), rng.standard_normal((100, 2))   # 100 rows: 7 splits of 16 unbounded
    out = cuda.device_array((3, 2))
    dc.matmul_tn(cuda.to_device(A), cuda.to_device(B), out)
    np.testing.assert_allclose(out.copy_to_host(), A.T @ B, rtol=1e-10)
    assert all(gy <= 2 for _, gy in grids), grids


def test_reductions_and_products_with_the_gpus_block_sizes(monkeypatch):
    """col_sum with 256-thread blocks (32 columns x 8 row lanes and 1 x 256), 16 x 16 matmul tiles, split K."""
    monkeypatch.setattr(dc, "_BLOCK_THREADS", 256)
    monkeypatch.setattr(dc, "_TILE", 16)
    monkeypatch.setattr(dc, "_SPLIT_K", 16)            # a multiple of the tile, small enough to split 20 rows
    monkeypatch.setattr(dc, "_ROWS_PER_CHUNK", 512)
    monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)
    rng = np.random.default_rng(2)
    for R, C in ((40, 33), (300, 1)):                   # TX = 32 (two column blocks), TX = 1 (256 row lanes)
        G = rng.standard_normal((R, C)).astype(np.float32)
        out = cuda.device_array(C, dtype=np.float32)
        dc.col_sum(cuda.to_device(G), out)
        np.testing.assert_allclose(out.copy_to_host(), G.sum(axis=0), rtol=1e-5, atol=1e-5)
    A, B = rng.standard_normal((20, 18)), rng.standard_normal((18, 17))
    out = cuda.device_array((20, 17))
    dc.matmul(cuda.to_device(A), cuda.to_device(B), out)
    np.testing.assert_allclose(out.copy_to_host(), A @ B, rtol=1e-10)
    D = rng.standard_normal((20, 17))
    out = cuda.device_array((18, 17))
    dc.matmul_tn(cuda.to_device(A), cuda.to_device(D), out)            # K = 20 > 16: two partial products
    np.testing.assert_allclose(out.copy_to_host(), A.T @ D, rtol=1e-10)
    out = cuda.device_array((20, 18))
    dc.matmul_nt(cuda.to_device(D), cuda.to_device(B), out)
    np.testing.assert_allclose(out.copy_to_host(), D @ B.T, rtol=1e-10)


def test_row_owners_with_a_whole_block_per_row(monkeypatch):
    """F = 300 > 128: 256 lanes (the GPU's block) own one row and stride over its features (spmm_max)."""
    monkeypatch.setattr(ck, "_BLOCK_THREADS", 256)
    monkeypatch.setattr(ck, "_MAX_BLOCKS", 2)
    rng = np.random.default_rng(3)
    indptr = np.array([0, 2, 2, 5], dtype=np.int64)
    indices = np.array([1, 3, 0, 2, 3], dtype=np.int32)
    X = rng.standard_normal((4, 300)).astype(np.float32)
    assert ck._row_launch(3, 300)[1] == (256, 1)
    out = cuda.device_array((3, 300), dtype=np.float32)
    argmax = cuda.device_array((3, 300), dtype=np.int64)
    ck.spmm_max(cuda.to_device(indptr), cuda.to_device(indices), cuda.to_device(X), out, argmax)
    want = np.zeros((3, 300), dtype=np.float32)
    for i in range(3):
        if indptr[i] < indptr[i + 1]:
            want[i] = X[indices[indptr[i]:indptr[i + 1]]].max(axis=0)
    np.testing.assert_array_equal(out.copy_to_host(), want)


@pytest.mark.parametrize("F", [1, 3, 4, 8, 9, 17, 64, 70, 300])
def test_gather_kernels_with_the_gpu_block_on_long_rows(monkeypatch, F):
    """The four gather aggregations with 256-thread blocks: lanes = the power of two covering F / 4 (at most a
    warp), the four-edge unrolled pass and the one-edge tail, rows of degree 0 to 13 (repeats, self-loops):
    in float64 and with the additions in CSR order, the means equal the NumPy reference exactly and the
    weighted sums to the last bits (a GPU contracts acc + w * x into an FMA)."""
    from gnn_scratch.kernels import reference as ref
    monkeypatch.setattr(ck, "_BLOCK_THREADS", 256)
    monkeypatch.setattr(ck, "_MAX_BLOCKS", 3)           # fewer blocks than rows: the grid-stride loop runs
    lanes, rows = ck._gather_launch(40, F)[1]
    assert lanes == min(32, 1 << max(0, int(np.ceil(np.log2(F / 4))))) and lanes * rows == 256
    rng = np.random.default_rng(F)
    deg = np.arange(14)[rng.permutation(40) % 14]
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    indices = rng.integers(0, 40, size=indptr[-1]).astype(np.int32)
    val = rng.random(indptr[-1])
    X = rng.standard_normal((40, F))
    d = {k: cuda.to_device(v) for k, v in dict(indptr=indptr, indices=indices, val=val, X=X).items()}
    out = cuda.device_array((40, F))
    want = np.empty((40, F))
    ck.spmm_sum(d["indptr"], d["indices"], d["val"], d["X"], out)
    ref.spmm_sum(indptr, indices, val, X, want)
    np.testing.assert_allclose(out.copy_to_host(), want, rtol=1e-13, atol=1e-14)   # a GPU may fuse w * x + acc
    ck.spmm_mean(d["indptr"], d["indices"], d["X"], out)
    ref.spmm_mean(indptr, indices, X, want)
    np.testing.assert_array_equal(out.copy_to_host(), want)
    perm = rng.permutation(indptr[-1]).astype(np.int64)
    ck.spmm_sum_perm(d["indptr"], d["indices"], cuda.to_device(perm), d["val"], d["X"], out)
    ref.spmm_sum_perm(indptr, indices, perm, val, X, want)
    np.testing.assert_allclose(out.copy_to_host(), want, rtol=1e-13, atol=1e-14)
    # the mean's backward over this graph read as a transpose (sources' rows) of a 40-destination graph
    dst_deg = rng.integers(0, 5, size=40)
    dst_indptr = np.concatenate([[0], np.cumsum(dst_deg)]).astype(np.int64)
    ck.spmm_mean_backward(d["indptr"], d["indices"], cuda.to_device(dst_indptr), d["X"], out)
    ref.spmm_mean_backward(indptr, indices, dst_indptr, X, want)
    np.testing.assert_array_equal(out.copy_to_host(), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_register_tiles_of_one_two_and_four_columns(monkeypatch, dtype):
    """The three products (with and without accumulate) at widths that give 4, 2 and 1 output columns per thread
    (``_cols_per_thread``: N > 2 _TILE, _TILE < N <= 2 _TILE, N <= _TILE; on a GPU, _TILE = 16, N = 40, 17, 3 and
    12; in the simulator, _TILE = 8, N = 40 and 17, 12, 3), M and K not multiples of the tile, K = 37 split over
    K in matmul_tn, fewer blocks than tiles; against the float64 product of NumPy."""
    monkeypatch.setattr(dc, "_MAX_BLOCKS", 2)           # 2 x 2 output tiles at (33, 40): the grid-stride loop runs
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(4)
    shapes = ((33, 9, 40), (9, 37, 17), (70, 5, 3), (20, 11, 12))
    assert {dc._cols_per_thread(N) for _, _, N in shapes} == {1, 2, 4}
    assert 37 > dc._SPLIT_K
    r = lambda *s: rng.standard_normal(s).astype(dtype)   # noqa: E731
    for M, K, N in shapes:
        A, B = r(M, K), r(K, N)
        for name, a, b in (("matmul", A, B), ("matmul_tn", np.ascontiguousarray(A.T), B),
                           ("matmul_nt", A, np.ascontiguousarray(B.T))):
            for accumulate in (False, True):
                start = r(M, N) if accumulate else np.full((M, N), np.nan, dtype)
                out = cuda.to_device(start)
                getattr(dc, name)(cuda.to_device(a), cuda.to_device(b), out, accumulate=accumulate)
                want = (start if accumulate else 0) + A.astype(np.float64) @ B.astype(np.float64)
                np.testing.assert_allclose(out.copy_to_host(), want, err_msg=f"{name} {(M, K, N)} {accumulate}",
                                           **tol)
