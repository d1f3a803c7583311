"""Dense operations on the host: BLAS, scipy.sparse and NumPy where those are already the fast path.

A dense matrix product is BLAS's job (scipy.sparse's for a sparse A^T), and a reduction over axis 0 is
NumPy's: for those ops the CPU implementation *is* the reference's call (imported from ``dense_reference``,
so the two cannot drift), and the registry test checks it like any other. A CSR matrix times a dense one (a
first layer's sparse features times W) is the SpMM the sparse kernels already compute -- a weighted gather of
W's rows, summed in the order scipy sums them -- and runs there. Where NumPy pays a
fixed cost per row of its broadcast loop, a Numba kernel takes over: ``add_bias`` (a GCN's 16 or 7
columns: ~35 ns a row, several times the additions themselves). An evaluation-mode GCN layer followed by the
next layer's product (``spmm_sum_bias_matmul``) runs block by block, so its hidden output never reaches memory.
Contract: ``dense_reference``.
"""
import numpy as np
from numba import njit, prange

from ..threads import PRODUCT_BLOCK, PRODUCT_GRAIN, call_numba, numba_grain, products_split, row_blocks
from .cpu import ONE_THREAD, spmm_sum, spmm_sum_bias, spmm_sum_bias_rows
from .dense_reference import (add, sub, col_sum, fill, head_dot, head_dot_backward_att, head_dot_backward_Z,  # noqa: F401
                              head_mean, head_mean_backward, matmul_nt, matmul_tn, mul, row_normalize,
                              row_normalize_backward)
from .dense_reference import matmul as _matmul_whole

_ROWS = 256     # rows per prange task


def matmul(A, B, out, accumulate=False):
    """out = A @ B (or +=), as ``dense_reference.matmul``; inside ``threads.parallel_products`` (an
    evaluation-mode forward) a large dense product runs as one-thread BLAS calls on fixed blocks of
    ``PRODUCT_BLOCK`` rows spread over the threads (``threads.row_blocks``): the same bits for any
    thread count, a few float32 ulps from the unsplit product (BLAS rounds a block's rows differently). So
    a node's evaluation-mode output can differ by those ulps between a graph above the split's size and a
    subgraph below it. With ``accumulate`` each block's product is added to its rows of ``out`` while they
    are in cache (the same sums as adding the whole split product afterwards)."""
    if getattr(A, "format", None) == "csr" and A.dtype == B.dtype == out.dtype and B.flags.c_contiguous:
        # sparse features times W is a weighted gather of W's rows: the SpMM kernel, whose one-thread form
        # (below the grain) is 1.4x faster than scipy's product on Cora's features (kernels/cpu.py). With
        # ``accumulate`` (a sparse input's self term in training) the product is added afterwards, as the
        # reference adds scipy's: the same product on both paths, so evaluation and training agree.
        P = out if not accumulate and out.flags.c_contiguous else np.empty(out.shape, out.dtype)
        call_numba(spmm_sum, A.nnz * B.shape[1], A.indptr, A.indices, A.data, B, P,
                   one_thread=ONE_THREAD["spmm_sum"])
        if P is not out:
            if accumulate:
                out += P
            else:
                out[...] = P
    elif isinstance(A, np.ndarray) and A.ndim == 2 and _splits(A.shape[0], A.shape[1], B.shape[1]):
        if accumulate:
            row_blocks(lambda lo, hi: np.add(out[lo:hi], np.matmul(A[lo:hi], B), out=out[lo:hi]), A.shape[0])
        else:
            row_blocks(lambda lo, hi: np.matmul(A[lo:hi], B, out=out[lo:hi]), A.shape[0])
    else:
        _matmul_whole(A, B, out, accumulate)


def _splits(M, K, N):
    """Whether ``matmul`` splits an (M, K) by (K, N) dense product into row blocks here (evaluation mode, large)."""
    return products_split() and M > PRODUCT_BLOCK and M * K * N >= PRODUCT_GRAIN


def spmm_sum_bias_matmul(indptr, indices, edge_val, X, b, relu, W, out):
    """out = act(A X + b) @ W, as ``dense_reference.spmm_sum_bias_matmul``, with the bits of its two steps as the
    host runs them apart (``spmm_sum_bias`` through ``call_numba``, then ``matmul``). Where ``matmul`` would split
    the product (``_splits``), each block of ``PRODUCT_BLOCK`` rows is aggregated into a block-sized scratch H
    (``cpu.spmm_sum_bias_rows``, the sums the whole op would use at this size) and multiplied while it is in
    cache, the blocks spread over the threads (``row_blocks``): the (N_dst, F) H is never written to memory,
    which on a graph beyond the caches saves its write, its read back and its page faults. Elsewhere the two
    steps run as they are."""
    n, F = out.shape[0], X.shape[1]
    work = indices.size * F
    if _splits(n, F, W.shape[1]):
        in_cache = work < numba_grain()     # the form call_numba would run the whole op in

        def block(lo, hi):
            H = np.empty((hi - lo, F), X.dtype)
            # work 0: on this Python thread alone (Numba's thread count is per thread)
            call_numba(spmm_sum_bias_rows, 0, indptr, indices, edge_val, X, b, relu, in_cache, lo, H)
            np.matmul(H, W, out=out[lo:hi])
        row_blocks(block, n, enters_numba=True)     # one after another under Numba's workqueue layer
        return
    H = np.empty((n, F), X.dtype)
    call_numba(spmm_sum_bias, work, indptr, indices, edge_val, X, b, relu, H, one_thread=ONE_THREAD["spmm_sum_bias"])
    _matmul_whole(H, W, out, False)


@njit(parallel=True, cache=True, nogil=True)
def _add_bias_rows(Y, b):
    N, F = Y.shape
    for bk in prange((N + _ROWS - 1) // _ROWS):
        for i in range(bk * _ROWS, min(N, bk * _ROWS + _ROWS)):
            for f in range(F):
                Y[i, f] += b[f]


def add_bias(Y, b):
    """Y[n, :] += b for every row n, in place: one parallel pass (the same sums as NumPy's ``Y += b``)."""
    if Y.ndim == 2 and Y.flags.c_contiguous and Y.dtype in (np.float32, np.float64) and b.dtype == Y.dtype:
        call_numba(_add_bias_rows, Y.size, Y, np.ascontiguousarray(b))
    else:
        Y += b
