"""Fused GAT kernels in Numba: the same names, argument order and results as ``gat_reference.py``.

Read the contract at the top of ``gat_reference.py`` (and of ``reference.py``) first. How these
kernels meet it:

* **One streaming pass per destination row** in the forward (the online softmax of
  FlashAttention): for each incoming edge the score is computed, the running max ``row_max[i, h]``
  and sum ``row_sum[i, h]`` are updated -- when the max grows by delta, the sum and the partial
  output ``out[i, h, :]`` are rescaled by exp(-delta) -- and Z[j, h, :] is accumulated into
  ``out[i, h, :]``. The row is divided by the sum at the end. ``out``, ``row_max`` and
  ``row_sum`` are the only state: no alpha, no message is stored.
* **One exp per (edge, head)** in the forward: when a score raises the running max, its own
  weight is exp(0) = 1 and only the rescale factor needs an exp. (Without SVML, Numba's scalar
  exp is the most expensive instruction of these kernels.)
* **Recomputation in the backward**: alpha[e, h] = exp(e - row_max[i, h]) / row_sum[i, h] is
  recomputed once per (edge, head) from the two saved statistics, kept in an (E, H) workspace
  for the rest of the backward, and dropped when the backward returns.
* **Row ownership, no atomics**: pass 1 of the backward owns destination rows (grad_a_dst and
  the softmax sum s[i, h]); pass 2 owns *source* rows of the cached transpose (grad_a_src and
  grad_Z), reading the (E, H) workspaces ``grad_pre`` and ``alpha_d`` that pass 1 left in CSR
  order. Every output element is written by one thread in a fixed order, so results repeat bit
  for bit.
* Arithmetic stays in Z's dtype (the caller passes ``negative_slope`` and ``keep_scale`` as
  scalars of that dtype); no ``fastmath``.

Arrays must be C-contiguous (``indptr`` int64, ``indices`` int32, ``keep_mask`` uint8, float32
or float64 values, all of one dtype). The kernels do not validate (the layer does, once).
"""
import numpy as np
from numba import njit, prange

from .cpu import _chunk_start, _num_chunks

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


@njit(**_PARALLEL)
def gat_forward(indptr, indices, a_dst, a_src, Z, negative_slope, keep_mask, keep_scale, out, row_max, row_sum):
    """GAT aggregation: out[i, h] = sum_{e: j -> i} alpha[e, h] * d[e, h] * Z[j, h], alpha = softmax_j e[., h].

    indptr        (N_dst+1,) int64   CSR row pointers, rows = destinations
    indices       (E,) int32         source node of each edge
    a_dst         (N_dst, H) float   <Z[i, h], att_dst[h]>
    a_src         (N_src, H) float   <Z[j, h], att_src[h]>
    Z             (N_src, H, F)      transformed source features
    negative_slope scalar            LeakyReLU slope, Z's dtype
    keep_mask     (E, H) uint8       attention-dropout keep mask, or shape (0, H) for no dropout
    keep_scale    scalar             1 / (1 - p), Z's dtype
    out           (N_dst, H, F)      overwritten; an empty row gets 0
    row_max       (N_dst, H)         overwritten: max of the scores over the row (0 if empty)
    row_sum       (N_dst, H)         overwritten: sum of exp(score - row_max) (0 if empty)
    O(E * H * F) work, O(1) extra memory; row-parallel over destinations, no atomics.

    Edges are the outer loop and heads the inner one, so each Z[j] (H * F contiguous values) is
    read once per edge. A dropped edge still counts in row_sum (dropout acts after normalisation)
    but adds nothing to out.
    """
    n_dst, H, F = out.shape
    dropout = keep_mask.shape[0] > 0
    one = out.dtype.type(1)
    n_chunks = _num_chunks(n_dst)
    # out[i, h, f], Z[j, h, f], ... indexed directly, not through row views: a view per edge is an array
    # struct Numba builds and reference-counts (without them the one-head layer on Cora takes 0.89x the time)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            lo, hi = indptr[i], indptr[i + 1]
            for h in range(H):
                row_max[i, h] = 0
                row_sum[i, h] = 0
                for f in range(F):
                    out[i, h, f] = 0
            for e in range(lo, hi):
                j = indices[e]
                for h in range(H):
                    s = a_dst[i, h] + a_src[j, h]
                    if not s > 0:
                        s = negative_slope * s
                    # one exp per (edge, head): exp(s - max) when the max holds, else the rescale
                    # factor exp(old max - s), the new edge's own weight being exp(0) = 1
                    if e == lo:
                        row_max[i, h] = s
                        p = one
                    elif s > row_max[i, h]:
                        r = np.exp(row_max[i, h] - s)
                        row_sum[i, h] *= r
                        for f in range(F):
                            out[i, h, f] *= r
                        row_max[i, h] = s
                        p = one
                    else:
                        p = np.exp(s - row_max[i, h])
                    row_sum[i, h] += p
                    if dropout:
                        if keep_mask[e, h] == 0:
                            continue
                        p = p * keep_scale
                    for f in range(F):
                        out[i, h, f] += p * Z[j, h, f]
            if hi > lo:
                for h in range(H):
                    for f in range(F):
                        out[i, h, f] /= row_sum[i, h]


@njit(**_PARALLEL)
def gat_backward(indptr, indices, t_indptr, t_indices, t_perm, a_dst, a_src, Z, negative_slope, keep_mask,
                 keep_scale, row_max, row_sum, grad_out, grad_pre, alpha_d, grad_Z, grad_a_dst, grad_a_src):
    """Gradients of gat_forward w.r.t. Z (message path), a_dst and a_src, with alpha recomputed.

    With d = keep_mask * keep_scale (1 without dropout) and G = grad_out:
        alpha[e, h]    = exp(LeakyReLU(pre[e, h]) - row_max[i, h]) / row_sum[i, h]
        g[e, h]        = d[e, h] * <G[i, h], Z[j, h]>
        s[i, h]        = sum_{e in row i} alpha[e, h] g[e, h]
        grad_pre[e, h] = alpha[e, h] (g[e, h] - s[i, h]) * (1 if pre > 0 else negative_slope)
        grad_a_dst[i]  = sum_{e in row i} grad_pre[e];   grad_a_src[j] = sum_{e: j -> .} grad_pre[e]
        grad_Z[j, h]   = sum_{e: j -> i} alpha[e, h] d[e, h] G[i, h]

    indptr, indices, a_dst, a_src, Z, negative_slope, keep_mask, keep_scale: as in gat_forward
    t_indptr (N_src+1,) int64, t_indices (E,) int32 destinations, t_perm (E,) int64 CSR positions
    row_max, row_sum (N_dst, H)  saved by gat_forward
    grad_out   (N_dst, H, F)     dL/dout
    grad_pre   (E, H)            workspace, overwritten with dL/dpre in CSR order
    alpha_d    (E, H)            workspace, overwritten with alpha * d in CSR order
    grad_Z     (N_src, H, F)     overwritten
    grad_a_dst (N_dst, H)        overwritten
    grad_a_src (N_src, H)        overwritten
    O(E * H * F) work (one dot product and one axpy per edge and head), one exp per edge and head,
    O(E * H) workspace -- never E x H x F.

    Pass 1 (destination rows, one head at a time): alpha recomputed once, g, s, then grad_pre,
    grad_a_dst and alpha_d. Pass 2 (source rows of the transpose): grad_a_src and grad_Z read the
    two workspaces through t_perm, so no thread writes another's row.
    """
    n_dst, H, F = grad_out.shape
    n_src = grad_Z.shape[0]
    dropout = keep_mask.shape[0] > 0
    zero = grad_out.dtype.type(0)
    one = grad_out.dtype.type(1)

    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            lo, hi = indptr[i], indptr[i + 1]
            go = grad_out[i]
            for h in range(H):
                m = row_max[i, h]
                l = row_sum[i, h]
                s = zero
                for e in range(lo, hi):
                    j = indices[e]
                    pre = a_dst[i, h] + a_src[j, h]
                    sc = pre if pre > 0 else negative_slope * pre
                    alpha = np.exp(sc - m) / l
                    alpha_d[e, h] = alpha
                    g = zero
                    if (not dropout) or keep_mask[e, h] != 0:
                        z = Z[j, h]
                        for f in range(F):
                            g += go[h, f] * z[f]
                        if dropout:
                            g = g * keep_scale
                    grad_pre[e, h] = g
                    s += alpha * g
                acc = zero
                for e in range(lo, hi):
                    pre = a_dst[i, h] + a_src[indices[e], h]
                    slope = one if pre > 0 else negative_slope
                    alpha = alpha_d[e, h]
                    gp = alpha * (grad_pre[e, h] - s) * slope
                    grad_pre[e, h] = gp
                    acc += gp
                    if dropout:
                        alpha_d[e, h] = alpha * keep_scale if keep_mask[e, h] != 0 else zero
                grad_a_dst[i, h] = acc

    n_chunks = _num_chunks(n_src)
    for c in prange(n_chunks):
        r0 = _chunk_start(t_indptr, c, n_chunks)
        r1 = _chunk_start(t_indptr, c + 1, n_chunks)
        for j in range(r0, r1):
            gz = grad_Z[j]
            for h in range(H):
                grad_a_src[j, h] = 0
                for f in range(F):
                    gz[h, f] = 0
            for t in range(t_indptr[j], t_indptr[j + 1]):
                e = t_perm[t]
                go = grad_out[t_indices[t]]
                for h in range(H):
                    grad_a_src[j, h] += grad_pre[e, h]
                    w = alpha_d[e, h]
                    for f in range(F):
                        gz[h, f] += w * go[h, f]
