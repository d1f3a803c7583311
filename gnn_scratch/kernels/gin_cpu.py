"""GIN's aggregation on the CPU in Numba: the same name, argument order and semantics as ``gin_reference``.

Row-parallel over destination rows in edge-balanced chunks (``cpu._chunk_start``), each output row
owned by one thread: the neighbour rows are summed in CSR order by SpMM's own row gather
(``cpu._weighted_row_sum``, unweighted), then the root row is added -- the reference's order. No atomics, no allocation, no ``fastmath``.
"""
from numba import njit, prange

from .cpu import _chunk_start, _num_chunks, _prefetch_distance, _weighted_row_sum


@njit(parallel=True, cache=True, nogil=True)
def gin_aggregate(indptr, indices, X, eps, out):
    """out[i] = sum_{e in row i} X[indices[e]] + (1 + eps[0]) X[i] (root term for i < N_X only).

    indptr  (N_rows+1,) int64   CSR row pointers (the graph, or its transpose for the backward)
    indices (E,) int32          the other endpoint of each edge
    X       (N_X, F) float      C-contiguous
    eps     (1,) float          X's dtype
    out     (N_rows, F) float   overwritten; an empty row gets only its root term (or 0)
    O(E F + N F), row-parallel, no atomics.
    """
    n_rows, F = out.shape
    n_root = min(n_rows, X.shape[0])
    scale = out.dtype.type(1) + eps[0]
    pd = _prefetch_distance(X)
    n_chunks = _num_chunks(n_rows)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            _weighted_row_sum(out, i, X, indices, indptr[i], indptr[i + 1], None, None, pd)   # SpMM's gather
            if i < n_root:
                for f in range(F):
                    out[i, f] += scale * X[i, f]
