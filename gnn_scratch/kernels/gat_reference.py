"""Fused GAT kernels in plain NumPy: the readable truth that ``gat_cpu`` (and a future ``gat_cuda``) must equal.

A fused GAT layer never stores the (E, H) attention coefficients ``alpha`` nor any E x H x F
message: the forward saves two (N_dst, H) statistics per destination and head, the max and the
sum of the softmax,

    row_max[i, h] = max_{e in row i} e_ih(e),    row_sum[i, h] = sum_{e in row i} exp(e_ih(e) - row_max[i, h]),

and the backward recomputes alpha from them (derivations/gat.md, "Fused forward, recomputing
backward"). The graph, shape and empty-row conventions of ``reference.py`` hold here too, plus:

* ``Z`` (N_src, H, F) holds the transformed source features; destinations are the first N_dst of
  the sources (a square graph has N_dst == N_src).
* Scores:  pre[e, h] = a_dst[i, h] + a_src[j, h] for edge e: j -> i;
           e[e, h]   = LeakyReLU(pre) = pre if pre > 0 else negative_slope * pre.
* Attention dropout (PyG's order, after normalisation):  alpha_d = alpha * keep_mask * keep_scale,
  with ``keep_mask`` (E, H) uint8 (1 = kept) in CSR order. "No dropout" is a zero-length mask,
  shape (0, H): one compiled signature serves both cases.
* ``negative_slope`` and ``keep_scale`` are scalars of Z's dtype, so float32 runs stay float32.
* An empty destination row gets out = 0, row_max = 0, row_sum = 0, and the backward skips it.

Here the forward is computed as written in the definition (max, exp, sum, divide, aggregate);
the Numba kernels compute it in one streaming pass. They agree to rounding.
"""
import numpy as np


def _rows(indptr):
    """Destination row of each CSR edge: (E,) int64."""
    return np.repeat(np.arange(indptr.size - 1), np.diff(indptr))


def _scores(rows, indices, a_dst, a_src, negative_slope):
    """(pre, e): the logits before and after LeakyReLU, both (E, H)."""
    pre = a_dst[rows] + a_src[indices]
    return pre, np.where(pre > 0, pre, negative_slope * pre)


def _dropout_factor(keep_mask, keep_scale, E, H, dtype):
    """The (E, H) factor multiplying alpha: keep_mask * keep_scale, or ones without dropout."""
    if keep_mask.shape[0] == 0:
        return np.ones((E, H), dtype=dtype)
    return keep_mask.astype(dtype) * keep_scale


def gat_forward(indptr, indices, a_dst, a_src, Z, negative_slope, keep_mask, keep_scale, out, row_max, row_sum):
    """GAT aggregation: out[i, h] = sum_{e: j -> i} alpha[e, h] * d[e, h] * Z[j, h], alpha = softmax_j e[., h].

    indptr        (N_dst+1,) int64   CSR row pointers, rows = destinations
    indices       (E,) int32         source node of each edge
    a_dst         (N_dst, H) float   destination half of the logit, <Z[i, h], att_dst[h]>
    a_src         (N_src, H) float   source half of the logit, <Z[j, h], att_src[h]>
    Z             (N_src, H, F)      transformed source features, C-contiguous
    negative_slope scalar            LeakyReLU slope, Z's dtype
    keep_mask     (E, H) uint8       attention-dropout keep mask d/keep_scale, or shape (0, H) for none
    keep_scale    scalar             1 / (1 - p), Z's dtype (ignored without a mask)
    out           (N_dst, H, F)      overwritten; an empty row gets 0
    row_max       (N_dst, H)         overwritten: max of e over the row (0 for an empty row)
    row_sum       (N_dst, H)         overwritten: sum of exp(e - row_max) over the row (0 for an empty row)
    O(E * H * F) work.
    """
    N_dst, H, F = out.shape
    rows = _rows(indptr)
    _, e = _scores(rows, indices, a_dst, a_src, negative_slope)
    row_max[:] = -np.inf
    np.maximum.at(row_max, rows, e)
    empty = np.diff(indptr) == 0
    row_max[empty] = 0                      # a row with no edges: nothing to normalise
    p = np.exp(e - row_max[rows])
    row_sum[:] = 0
    np.add.at(row_sum, rows, p)
    alpha = p / row_sum[rows]
    w = alpha * _dropout_factor(keep_mask, keep_scale, e.shape[0], H, Z.dtype)
    out[:] = 0
    for h in range(H):                      # one head at a time: an (E, F) temporary, never (E, H, F)
        np.add.at(out[:, h], rows, w[:, h, None] * Z[indices, h])


def gat_backward(indptr, indices, t_indptr, t_indices, t_perm, a_dst, a_src, Z, negative_slope, keep_mask,
                 keep_scale, row_max, row_sum, grad_out, grad_pre, alpha_d, grad_Z, grad_a_dst, grad_a_src):
    """Gradients of gat_forward w.r.t. Z, a_dst and a_src, recomputing alpha from row_max and row_sum.

    With d = keep_mask * keep_scale (1 without dropout) and G = grad_out (derivations/gat.md):
        g[e, h]        = d[e, h] * <G[i, h], Z[j, h]>               dL/dalpha
        s[i, h]        = sum_{e in row i} alpha[e, h] g[e, h]
        grad_pre[e, h] = alpha[e, h] (g[e, h] - s[i, h]) * (1 if pre > 0 else negative_slope)
        grad_a_dst[i]  = sum_{e in row i} grad_pre[e]
        grad_a_src[j]  = sum_{e: j -> .} grad_pre[e]
        grad_Z[j, h]   = sum_{e: j -> i} alpha[e, h] d[e, h] G[i, h]  (the message path only; the
                         score path, grad_a_* times att_*, is added by the layer)

    indptr, indices, a_dst, a_src, Z, negative_slope, keep_mask, keep_scale: as in gat_forward
    t_indptr (N_src+1,) int64, t_indices (E,) int32, t_perm (E,) int64: the cached transpose
    row_max, row_sum (N_dst, H)  saved by gat_forward
    grad_out   (N_dst, H, F)     dL/dout, C-contiguous
    grad_pre   (E, H)            workspace, overwritten with dL/dpre (E x H, never E x H x F)
    alpha_d    (E, H)            workspace, overwritten with alpha * d (alpha recomputed once)
    grad_Z     (N_src, H, F)     overwritten
    grad_a_dst (N_dst, H)        overwritten
    grad_a_src (N_src, H)        overwritten
    O(E * H * F) work. The transpose arguments are unused here (NumPy scatters with add.at) but
    keep the argument order of the row-owner kernels.
    """
    N_dst, H, F = grad_out.shape
    rows = _rows(indptr)
    pre, e = _scores(rows, indices, a_dst, a_src, negative_slope)
    alpha = np.exp(e - row_max[rows]) / row_sum[rows]
    d = _dropout_factor(keep_mask, keep_scale, e.shape[0], H, Z.dtype)
    g = np.empty_like(alpha)
    for h in range(H):
        g[:, h] = np.sum(grad_out[rows, h] * Z[indices, h], axis=1)
    g *= d
    s = np.zeros((N_dst, H), dtype=alpha.dtype)
    np.add.at(s, rows, alpha * g)
    grad_pre[:] = alpha * (g - s[rows]) * np.where(pre > 0, 1, negative_slope).astype(alpha.dtype)
    grad_a_dst[:] = 0
    np.add.at(grad_a_dst, rows, grad_pre)
    grad_a_src[:] = 0
    np.add.at(grad_a_src, indices, grad_pre)
    alpha_d[:] = alpha * d
    grad_Z[:] = 0
    for h in range(H):
        np.add.at(grad_Z[:, h], indices, alpha_d[:, h, None] * grad_out[rows, h])
