"""Graph readouts in plain NumPy (the readable truth): sum, mean and max of node rows per graph, and their backwards.

Contract of the family (shared by ``pool_cpu`` and ``pool_cuda``); the sum readout itself is the
sparse family's ``segment_sum`` with ``graph_ptr`` as its ``indptr``:

* ``graph_ptr`` (B + 1,) int64: graph k owns the contiguous node rows graph_ptr[k] : graph_ptr[k+1]
  (a ``GraphBatch``'s segments, non-decreasing, graph_ptr[0] = 0, graph_ptr[B] = N).
* X (N, F) float node features, G (B, F) the upstream gradient of the (B, F) readout, one float dtype.
* ``out`` / ``dX`` are preallocated and fully overwritten (never accumulated into).
* Empty-segment rule (a ``GraphBatch`` has none, every graph has a node): a sum or mean over no node
  is 0, a max over no node is 0 with argmax -1, and nothing flows back.
* Max tie rule: the first node of the segment (lowest index) that attains the maximum wins and alone
  receives the gradient. ``argmax`` holds that node's index in the batch (0 .. N-1).

Derived in derivations/pooling.md.
"""
import numpy as np


def _segments(graph_ptr):
    return zip(range(graph_ptr.size - 1), graph_ptr[:-1], graph_ptr[1:])


def pool_mean(graph_ptr, X, out):
    """out[k] = (1 / n_k) sum_{n in segment k} X[n], n_k = graph_ptr[k+1] - graph_ptr[k]; 0 for n_k = 0. O(N F)."""
    out[:] = 0
    for k, lo, hi in _segments(graph_ptr):
        if hi > lo:
            out[k] = X[lo:hi].sum(axis=0) / X.dtype.type(hi - lo)


def pool_max(graph_ptr, X, out, argmax):
    """out[k, f] = max_{n in segment k} X[n, f]; argmax (B, F) int64 = the winning node (first on ties). O(N F)."""
    out[:] = 0
    argmax[:] = -1
    F = X.shape[1]
    for k, lo, hi in _segments(graph_ptr):
        if hi > lo:
            w = np.argmax(X[lo:hi], axis=0)           # the first maximum wins
            out[k] = X[lo + w, np.arange(F)]
            argmax[k] = lo + w


def pool_sum_backward(graph_ptr, G, dX):
    """dX[n] = G[k] for every node n of segment k: (N, F). O(N F)."""
    counts = np.diff(graph_ptr)
    dX[:] = np.repeat(G, counts, axis=0)


def pool_mean_backward(graph_ptr, G, dX):
    """dX[n] = G[k] / n_k for every node n of segment k: (N, F). O(N F)."""
    counts = np.diff(graph_ptr)
    dX[:] = np.repeat(G / np.maximum(counts, 1)[:, None].astype(G.dtype), counts, axis=0)


def pool_max_backward(graph_ptr, argmax, G, dX):
    """dX[n, f] = G[k, f] if n = argmax[k, f] (n in segment k), else 0: (N, F). O(N F)."""
    dX[:] = 0
    k, f = np.nonzero(argmax >= 0)
    dX[argmax[k, f], f] = G[k, f]                     # one winner per (k, f), distinct nodes per f: no clash
