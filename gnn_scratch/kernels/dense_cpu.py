"""Dense operations on the host: BLAS, scipy.sparse and NumPy where those are already the fast path.

A matrix product is BLAS's (or scipy.sparse's) job, and a reduction over axis 0 is NumPy's: for
those ops the CPU implementation *is* the reference's call (imported from ``dense_reference``,
so the two cannot drift), and the registry test checks it like any other. Where NumPy pays a
fixed cost per row of its broadcast loop, a Numba kernel takes over: ``add_bias`` (a GCN's 16 or 7
columns: ~35 ns a row, several times the additions themselves). Contract: ``dense_reference``.
"""
import numpy as np
from numba import njit, prange

from ..threads import call_numba
from .dense_reference import (add, sub, col_sum, fill, head_dot, head_dot_backward_att, head_dot_backward_Z,  # noqa: F401
                              head_mean, head_mean_backward, matmul, matmul_nt, matmul_tn, mul, row_normalize,
                              row_normalize_backward)

_ROWS = 256     # rows per prange task


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
