"""GIN's aggregation in plain NumPy (the readable truth): the neighbour sum plus the (1 + eps)-weighted root row.

Contract of the family (shared by ``gin_cpu`` and ``gin_cuda``): one op,

    gin_aggregate(indptr, indices, X, eps, out):
        out[i] = sum_{e in row i} X[indices[e]]  +  (1 + eps[0]) X[i]     for i < min(N_rows, N_X)
        out[i] = sum_{e in row i} X[indices[e]]                           for the rows beyond X's

indptr (N_rows + 1,) int64, indices (E,) int32 (CSR, rows = destinations), X (N_X, F) float,
eps (1,) of X's dtype (a parameter that may live on the GPU, so it is read there, not passed as a
host number), out (N_rows, F) preallocated and fully overwritten. Unweighted: every edge counts
once per copy (a repeated edge twice), edge weights are not read. The sum runs in CSR edge order,
then the root term is added (PyG's order: ``propagate(...) + (1 + eps) * x_r``).

The same op is the backward: with S = A + (1 + eps) I (I the (N_dst, N_src) identity block), the
forward is ``out = S X`` on the graph and dX = Sᵀ G = ``gin_aggregate`` on the transpose
(t_indptr, t_indices) with X = G (N_dst rows): the root term then reaches sources j < N_dst only.
Derived in derivations/gin_conv.md.
"""
import numpy as np


def gin_aggregate(indptr, indices, X, eps, out):
    """out = A X + (1 + eps) X[:n] on the first n = min(N_rows, N_X) rows: (N_rows, F). O(E F + N F)."""
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    out[:] = 0
    np.add.at(out, rows, X[indices])
    n = min(out.shape[0], X.shape[0])
    out[:n] += (X.dtype.type(1) + eps[0]) * X[:n]
