"""Pieces of attention over time as Numba kernels: the names and semantics of ``temporal_reference``.

``row_softmax`` and its backward give each row to one ``prange`` task (a max pass, a sum pass, a
write pass, in column order), so no two tasks write the same element and the sums do not depend on
the thread count. The window transposes give each (period, node) output row to one task. Small
arrays run on one thread (``threads.call_numba``).
"""
import numpy as np
from numba import njit, prange

from ..threads import call_numba

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


@njit(**_PARALLEL)
def _row_softmax(x, out):
    R, C = x.shape
    for r in prange(R):
        m = x[r, 0]
        for c in range(1, C):
            m = max(m, x[r, c])
        s = out.dtype.type(0)
        for c in range(C):
            e = np.exp(x[r, c] - m)
            out[r, c] = e
            s += e
        for c in range(C):
            out[r, c] /= s


@njit(**_PARALLEL)
def _row_softmax_backward(p, g, out):
    R, C = p.shape
    for r in prange(R):
        s = out.dtype.type(0)
        for c in range(C):
            s += p[r, c] * g[r, c]
        for c in range(C):
            out[r, c] = p[r, c] * (g[r, c] - s)


@njit(**_PARALLEL)
def _periods_first(X, out):
    N, F, P = X.shape
    for k in prange(P * N):
        p, n = k // N, k % N
        for f in range(F):
            out[p, n, f] = X[n, f, p]


@njit(**_PARALLEL)
def _periods_last(Xs, out):
    P, N, F = Xs.shape
    for n in prange(N):
        for f in range(F):
            for p in range(P):
                out[n, f, p] = Xs[p, n, f]


def row_softmax(x, out):
    if x.shape[1]:
        call_numba(_row_softmax, x.size, x, out)


def row_softmax_backward(p, g, out):
    call_numba(_row_softmax_backward, p.size, p, g, out)


def periods_first(X, out):
    call_numba(_periods_first, X.size, X, out)


def periods_last(Xs, out):
    call_numba(_periods_last, Xs.size, Xs, out)
