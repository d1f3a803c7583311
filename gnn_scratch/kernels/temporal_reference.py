"""Pieces of attention over time in plain NumPy (the readable truth): a row softmax and the window transposes.

A3T-GCN (derivations/tgcn.md, section A3TGCN) weighs the hidden states of P periods by
p = softmax(a), a a free parameter vector, and reads its input window as PyG Temporal lays it out,
X (N, F, P). The ops here are what that needs beyond the dense products:

* ``row_softmax`` / ``row_softmax_backward`` -- a softmax along each row of an (R, C) array, shifted by
  the row max (a (P,) attention vector is one row), and its vector-Jacobian product;
* ``periods_first`` / ``periods_last`` -- X (N, F, P) <-> (P, N, F), so that each period is a
  C-contiguous (N, F) block a graph convolution can read (and each is the other's backward).

Contract of the family (shared by ``temporal_cpu`` and ``temporal_cuda``): arrays of one float
dtype per call, C-contiguous, outputs preallocated and overwritten; arithmetic in the arrays' dtype.
A row of no column (C = 0) has nothing to normalise: nothing is written.
"""
import numpy as np


def row_softmax(x, out):
    """out[r, c] = exp(x[r, c] - m_r) / sum_c' exp(x[r, c'] - m_r), m_r = max_c x[r, c]. x, out (R, C). O(R C).

    The shift by the row max changes nothing mathematically (it cancels between numerator and
    denominator) and keeps every exponent <= 0, so nothing overflows.
    """
    if x.shape[1] == 0:
        return
    z = np.exp(x - x.max(axis=1, keepdims=True))
    out[...] = z / z.sum(axis=1, keepdims=True)


def row_softmax_backward(p, g, out):
    """out[r, c] = p[r, c] (g[r, c] - sum_c' p[r, c'] g[r, c']): dL/dx from g = dL/dp, p = row_softmax(x). O(R C)."""
    out[...] = p * (g - (p * g).sum(axis=1, keepdims=True))


def periods_first(X, out):
    """out[p, n, f] = X[n, f, p]: X (N, F, P) -> out (P, N, F). O(N F P)."""
    out[...] = np.moveaxis(X, 2, 0)


def periods_last(Xs, out):
    """out[n, f, p] = Xs[p, n, f]: Xs (P, N, F) -> out (N, F, P), ``periods_first``'s inverse and backward. O(N F P)."""
    out[...] = np.moveaxis(Xs, 0, 2)
