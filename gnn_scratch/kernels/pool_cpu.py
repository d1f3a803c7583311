"""Graph readouts on the CPU in Numba: the same names, argument order and semantics as ``pool_reference``.

Read the contract at the top of ``pool_reference.py`` first. How:

* **Segment ownership.** A graph's node rows are contiguous, so each parallel task owns whole
  graphs: it reads their rows and writes their output row (forward) or their node rows (backward).
  No two threads write the same element, no atomics, and each output element is reduced by one
  thread in node order -- the reference's order, so the sums are the same bits.
* **Balanced chunks.** Graphs are split into ``_num_chunks`` contiguous chunks of about equal cost
  (nodes + graphs, binary search on ``graph_ptr``: ``cpu._chunk_start`` with ``graph_ptr`` as the
  row pointer), so a batch mixing large and small graphs spreads evenly. A batch of one graph
  runs on one thread (there is one segment to own).
* Contiguous inner loops over the feature axis, no ``fastmath``, no allocation.

Arrays must be C-contiguous: graph_ptr int64, X / G / out / dX float32 or float64, argmax int64.
"""
from numba import njit, prange

from .cpu import _chunk_start, _num_chunks

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


@njit(**_PARALLEL)
def pool_mean(graph_ptr, X, out):
    """out[k] = (1 / n_k) sum_{n in segment k} X[n]; 0 for an empty segment.

    graph_ptr (B+1,) int64, X (N, F) float, out (B, F) float overwritten. O(N F), parallel over graphs.
    """
    B, F = out.shape
    n_chunks = _num_chunks(B)
    for c in prange(n_chunks):
        k0 = _chunk_start(graph_ptr, c, n_chunks)
        k1 = _chunk_start(graph_ptr, c + 1, n_chunks)
        for k in range(k0, k1):
            lo, hi = graph_ptr[k], graph_ptr[k + 1]
            orow = out[k]
            for f in range(F):
                orow[f] = 0
            for n in range(lo, hi):
                xrow = X[n]
                for f in range(F):
                    orow[f] += xrow[f]
            if hi > lo:
                cnt = out.dtype.type(hi - lo)
                for f in range(F):
                    orow[f] = orow[f] / cnt


@njit(**_PARALLEL)
def pool_max(graph_ptr, X, out, argmax):
    """out[k, f] = max_{n in segment k} X[n, f] and argmax[k, f] the winning node.

    graph_ptr (B+1,) int64, X (N, F) float, out (B, F) float and argmax (B, F) int64 overwritten;
    an empty segment gets 0 and -1. Tie rule: the comparison is strict (>), so the first node of
    the segment that attains the maximum keeps it. O(N F), parallel over graphs.
    """
    B, F = out.shape
    n_chunks = _num_chunks(B)
    for c in prange(n_chunks):
        k0 = _chunk_start(graph_ptr, c, n_chunks)
        k1 = _chunk_start(graph_ptr, c + 1, n_chunks)
        for k in range(k0, k1):
            lo, hi = graph_ptr[k], graph_ptr[k + 1]
            orow = out[k]
            arow = argmax[k]
            if lo == hi:
                for f in range(F):
                    orow[f] = 0
                    arow[f] = -1
                continue
            for f in range(F):
                orow[f] = X[lo, f]
                arow[f] = lo
            for n in range(lo + 1, hi):
                xrow = X[n]
                for f in range(F):
                    if xrow[f] > orow[f]:
                        orow[f] = xrow[f]
                        arow[f] = n


@njit(**_PARALLEL)
def pool_sum_backward(graph_ptr, G, dX):
    """dX[n] = G[k] for every node n of segment k.

    graph_ptr (B+1,) int64, G (B, F) float, dX (N, F) float overwritten. O(N F), parallel over graphs.
    """
    B, F = G.shape
    n_chunks = _num_chunks(B)
    for c in prange(n_chunks):
        k0 = _chunk_start(graph_ptr, c, n_chunks)
        k1 = _chunk_start(graph_ptr, c + 1, n_chunks)
        for k in range(k0, k1):
            grow = G[k]
            for n in range(graph_ptr[k], graph_ptr[k + 1]):
                drow = dX[n]
                for f in range(F):
                    drow[f] = grow[f]


@njit(**_PARALLEL)
def pool_mean_backward(graph_ptr, G, dX):
    """dX[n] = G[k] / n_k for every node n of segment k.

    graph_ptr (B+1,) int64, G (B, F) float, dX (N, F) float overwritten. O(N F), parallel over graphs.
    """
    B, F = G.shape
    n_chunks = _num_chunks(B)
    for c in prange(n_chunks):
        k0 = _chunk_start(graph_ptr, c, n_chunks)
        k1 = _chunk_start(graph_ptr, c + 1, n_chunks)
        for k in range(k0, k1):
            lo, hi = graph_ptr[k], graph_ptr[k + 1]
            if hi == lo:
                continue
            cnt = G.dtype.type(hi - lo)
            grow = G[k]
            for n in range(lo, hi):
                drow = dX[n]
                for f in range(F):
                    drow[f] = grow[f] / cnt


@njit(**_PARALLEL)
def pool_max_backward(graph_ptr, argmax, G, dX):
    """dX[n, f] = G[k, f] where n = argmax[k, f] (n in segment k), else 0.

    graph_ptr (B+1,) int64, argmax (B, F) int64 from ``pool_max``, G (B, F) float, dX (N, F) float
    overwritten. O(N F), parallel over graphs: the winner of (k, f) lies in segment k, which the
    task owns, so the write is a scatter within owned rows -- no race.
    """
    B, F = G.shape
    n_chunks = _num_chunks(B)
    for c in prange(n_chunks):
        k0 = _chunk_start(graph_ptr, c, n_chunks)
        k1 = _chunk_start(graph_ptr, c + 1, n_chunks)
        for k in range(k0, k1):
            for n in range(graph_ptr[k], graph_ptr[k + 1]):
                drow = dX[n]
                for f in range(F):
                    drow[f] = 0
            arow = argmax[k]
            grow = G[k]
            for f in range(F):
                if arow[f] >= 0:
                    dX[arow[f], f] = grow[f]
