"""Reference kernels in plain NumPy: the readable truth that the Numba and CUDA versions must equal.

Every kernel module (``reference``, ``cpu``, ``cuda``) exports the same names with the same
argument order. Conventions shared by all of them:

* The graph is CSR with rows = destination nodes: ``indptr`` (N_dst + 1,) int64, ``indices`` (E,)
  int32 source ids. The transpose is ``t_indptr`` (N_src + 1,), ``t_indices`` (E,) destination ids and
  ``t_perm`` (E,) int64, the CSR position of each transposed edge.
* Edge arrays are in CSR order. Per-head edge arrays are (E, H); per-head node arrays (N, H) or
  (N, H, F).
* ``out`` is preallocated by the caller and fully overwritten (never accumulated into).
* Empty-neighbourhood rules: a sum over no edges is 0, a mean over no edges is 0, a max over no
  edges is 0 with argmax -1, a softmax over no edges contributes nothing.
* Max tie rule: the first edge in CSR order that attains the maximum wins, and alone receives the
  gradient.
"""
import numpy as np


def _rows(indptr):
    """Destination row of each CSR edge: (E,) int64."""
    return np.repeat(np.arange(indptr.size - 1), np.diff(indptr))


def spmm_sum(indptr, indices, edge_val, X, out):
    """Weighted sum aggregation: out[i] = sum_{e in row i} edge_val[e] * X[indices[e]].

    indptr (N_dst+1,), indices (E,), edge_val (E,), X (N_src, F), out (N_dst, F). O(E * F).
    """
    rows = _rows(indptr)
    out[:] = 0
    np.add.at(out, rows, edge_val[:, None] * X[indices])


def spmm_sum_bias(indptr, indices, edge_val, X, b, relu, out):
    """out = A X + b, then max(out, 0) when ``relu``: ``spmm_sum``, a bias and a ReLU as one op.

    b (F,); ``relu`` a bool. The same sums as spmm_sum followed by out[i] += b (and the ReLU's
    np.where(out > 0, out, 0): a NaN gives 0, -0 gives +0). O(E * F).
    """
    spmm_sum(indptr, indices, edge_val, X, out)
    out += b
    if relu:
        out[...] = np.where(out > 0, out, 0)


def spmm_sum_perm(indptr, indices, perm, edge_val, X, out):
    """Weighted sum with permuted weights: out[i] = sum_{e in row i} edge_val[perm[e]] * X[indices[e]].

    Used on the transpose (``t_indptr, t_indices, t_perm``) so that the weights stay in CSR order:
    it computes A^T @ X for the A whose weights are ``edge_val``. O(E * F).
    """
    spmm_sum(indptr, indices, edge_val[perm], X, out)


def spmm_mean(indptr, indices, X, out):
    """Mean aggregation: out[i] = (1/deg_i) sum_{e in row i} X[indices[e]]; 0 when deg_i = 0. O(E * F)."""
    deg = np.diff(indptr)
    spmm_sum(indptr, indices, np.ones(indices.size, dtype=X.dtype), X, out)
    out /= np.maximum(deg, 1)[:, None].astype(X.dtype)


def spmm_mean_bias(indptr, indices, X, b, accumulate, relu, out):
    """out = mean(X) + b (+ out's old value when ``accumulate``), then max(out, 0) when ``relu``: ``spmm_mean``,
    a bias, a self term already in ``out`` and a ReLU as one op. b (F,); ``accumulate``, ``relu`` bools. The
    same sums as spmm_mean, then + b, then + the old out, then the ReLU's np.where(out > 0, out, 0). O(E * F).
    """
    agg = np.empty_like(out)
    spmm_mean(indptr, indices, X, agg)
    agg += b
    if accumulate:
        agg += out
    out[...] = np.where(agg > 0, agg, 0) if relu else agg


def spmm_mean_backward(t_indptr, t_indices, indptr, grad_out, grad_X):
    """Gradient of spmm_mean w.r.t. X: grad_X[j] = sum_{edges j -> i} grad_out[i] / deg_i.

    t_indptr (N_src+1,), t_indices (E,) destination ids, indptr (N_dst+1,) for the degrees,
    grad_out (N_dst, F), grad_X (N_src, F). O(E * F).
    """
    deg = np.diff(indptr)
    scaled = grad_out / np.maximum(deg, 1)[:, None].astype(grad_out.dtype)
    spmm_sum(t_indptr, t_indices, np.ones(t_indices.size, dtype=grad_out.dtype), scaled, grad_X)


def scale_rows_by_inverse_degree(indptr, G, out):
    """out[i] = G[i] / max(deg_i, 1), deg_i = indptr[i+1] - indptr[i]: the D^-1 G of the mean's backward.

    indptr (N+1,) int64, G (N, F) float, out (N, F) overwritten (may be G). O(N * F). Then
    A^T out (an unweighted sum over the transpose) is ``spmm_mean_backward``, bit for bit.
    """
    deg = np.diff(indptr)
    out[...] = G / np.maximum(deg, 1)[:, None].astype(G.dtype)


def spmm_max(indptr, indices, X, out, argmax):
    """Max aggregation per feature: out[i, f] = max_{e in row i} X[indices[e], f].

    argmax (N_dst, F) int64 receives the winning source node id (first in CSR order on ties), or
    -1 for an empty row, whose output is 0. O(E * F).
    """
    N_dst, F = out.shape
    out[:] = 0
    argmax[:] = -1
    for i in range(N_dst):
        lo, hi = indptr[i], indptr[i + 1]
        if lo == hi:
            continue
        block = X[indices[lo:hi]]                    # (deg, F)
        k = np.argmax(block, axis=0)                 # first maximum wins
        out[i] = block[k, np.arange(F)]
        argmax[i] = indices[lo:hi][k]


def spmm_max_backward(t_indptr, t_indices, argmax, grad_out, grad_X):
    """Gradient of spmm_max w.r.t. X: grad_X[argmax[i, f], f] += grad_out[i, f]; grad_X is overwritten.

    t_indptr (N_src+1,), t_indices (E,): the transpose of the graph that produced ``argmax`` (the
    CPU and CUDA kernels own the rows of grad_X through it; this reference scatters directly and
    does not read it). argmax (N_dst, F), grad_out (N_dst, F), grad_X (N_src, F). O(N_dst * F).
    """
    grad_X[:] = 0
    i, f = np.nonzero(argmax >= 0)
    np.add.at(grad_X, (argmax[i, f], f), grad_out[i, f])


def sddmm_dot(indptr, indices, A, B, out):
    """Per-edge, per-head dot product: out[e, h] = <A[i, h, :], B[indices[e], h, :]> for e in row i.

    A (N_dst, H, F), B (N_src, H, F), out (E, H). O(E * H * F). This is the gradient of spmm_sum
    w.r.t. its edge weights (A = grad_out, B = X).
    """
    rows = _rows(indptr)
    out[:] = np.einsum("ehf,ehf->eh", A[rows], B[indices])


def sddmm_add(indptr, indices, a_dst, a_src, out):
    """Per-edge, per-head sum of a destination and a source term: out[e, h] = a_dst[i, h] + a_src[indices[e], h].

    a_dst (N_dst, H), a_src (N_src, H), out (E, H). O(E * H). GAT's attention logits.
    """
    out[:] = a_dst[_rows(indptr)] + a_src[indices]


def segment_sum(indptr, edge_val, out):
    """Sum of edge values per destination row: out[i, h] = sum_{e in row i} edge_val[e, h].

    edge_val (E, H), out (N_dst, H). O(E * H). Gradient of sddmm_add w.r.t. a_dst.
    """
    out[:] = 0
    np.add.at(out, _rows(indptr), edge_val)


def segment_sum_perm(t_indptr, t_perm, edge_val, out):
    """Sum of edge values per source node: out[j, h] = sum_{e' in transposed row j} edge_val[t_perm[e'], h].

    edge_val (E, H) in CSR order, out (N_src, H). O(E * H). Gradient of sddmm_add w.r.t. a_src.
    """
    segment_sum(t_indptr, edge_val[t_perm], out)


def edge_softmax(indptr, scores, out):
    """Softmax over each destination's incoming edges, per head, shifted by the row max for stability.

    out[e, h] = exp(s[e, h] - m[i, h]) / sum_{e' in row i} exp(s[e', h] - m[i, h]).
    scores (E, H), out (E, H). O(E * H).
    """
    rows = _rows(indptr)
    N = indptr.size - 1
    m = np.full((N, scores.shape[1]), -np.inf, dtype=scores.dtype)
    np.maximum.at(m, rows, scores)
    z = np.exp(scores - m[rows])
    s = np.zeros_like(m)
    np.add.at(s, rows, z)
    out[:] = z / s[rows]


def edge_softmax_backward(indptr, alpha, grad_alpha, out):
    """Gradient of edge_softmax w.r.t. its scores: out[e] = alpha[e] * (g[e] - sum_{e' in row i} alpha[e'] g[e']).

    alpha, grad_alpha, out: (E, H). O(E * H).
    """
    rows = _rows(indptr)
    prod = alpha * grad_alpha
    s = np.zeros((indptr.size - 1, alpha.shape[1]), dtype=alpha.dtype)
    np.add.at(s, rows, prod)
    out[:] = prod - alpha * s[rows]
