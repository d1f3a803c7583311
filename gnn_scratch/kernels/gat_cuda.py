"""Fused GAT kernels in numba.cuda: the same names, argument order and results as ``gat_cpu.py``.

Read the contract at the top of ``gat_reference.py`` first (shapes, the (0, H) "no dropout" mask,
empty rows: out = 0, row_max = 0, row_sum = 0). How the GPU versions meet it:

* **Forward -- one streaming pass per destination row** with the online softmax, as ``gat_cpu``:
  a group of lanes owns row i (``cuda._row_launch``: a warp, up to a block for wide rows) and
  splits the row's (head, feature) pairs. Each lane recomputes its head's scores, running max and
  running sum edge by edge -- the same operations in the same order for every lane of a head, so
  they agree exactly -- and accumulates its own out[i, h, f]. No shared memory, no atomics; the
  lane with f = 0 writes row_max and row_sum. Nothing of size E x H x F exists, nor E x H.
* **Backward pass 1 -- destination rows**: one thread per (row, head) recomputes alpha from the
  saved statistics, forms g (the dot products over F), the softmax sum s, then grad_pre, alpha_d
  and grad_a_dst, in CSR order (``gat_cpu``'s pass 1, head by head).
* **Backward pass 2 -- source rows of the cached transpose**: lanes of a row group own grad_Z[j]
  (split over (head, feature)), reading alpha_d and grad_pre through t_perm; the lane with f = 0
  sums grad_a_src[j, h]. Each output element has one writer that reads its edges in a fixed
  order: results repeat bit for bit, and no kernel here uses atomics.

Arithmetic stays in Z's dtype (the caller passes ``negative_slope`` and ``keep_scale`` as scalars
of that dtype). On a real GPU ``exp`` is the device's and multiply-adds may fuse, so results equal
``gat_cpu``'s to rounding, not bit for bit. Arrays must be device arrays, C-contiguous.
"""
import math

import numpy as np

from .cuda import _check, _check_csr, _check_float, _device, _flat_launch, _jit, _launch, _row_launch, cuda, \
    require_cuda


@_jit
def _gat_forward_kernel(indptr, indices, a_dst, a_src, Z, negative_slope, keep_mask, keep_scale, out, row_max,
                        row_sum):
    H = out.shape[1]
    F = out.shape[2]
    dropout = keep_mask.shape[0] > 0
    zero = out.dtype.type(0)
    for i in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, out.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = indptr[i], indptr[i + 1]
        for p in range(cuda.threadIdx.x, H * F, cuda.blockDim.x):
            h = p // F
            f = p % F
            m = zero
            l = zero
            o = zero
            for e in range(lo, hi):
                j = indices[e]
                s = a_dst[i, h] + a_src[j, h]
                if not s > 0:
                    s = negative_slope * s
                if e == lo:
                    m = s
                elif s > m:                    # the max grew: rescale what was summed under the old max
                    r = math.exp(m - s)
                    l *= r
                    o *= r
                    m = s
                w = math.exp(s - m)
                l += w
                if dropout:
                    if keep_mask[e, h] == 0:
                        continue
                    w = w * keep_scale
                o += w * Z[j, h, f]
            out[i, h, f] = o / l if hi > lo else zero
            if f == 0:
                row_max[i, h] = m
                row_sum[i, h] = l


def gat_forward(indptr, indices, a_dst, a_src, Z, negative_slope, keep_mask, keep_scale, out, row_max, row_sum):
    """GAT aggregation: out[i, h] = sum_{e: j -> i} alpha[e, h] d[e, h] Z[j, h], alpha = softmax_j LeakyReLU(pre).

    indptr (N_dst+1,) int, indices (E,) int, a_dst (N_dst, H), a_src (N_src, H), Z (N_src, H, F),
    negative_slope and keep_scale scalars of Z's dtype, keep_mask (E, H) or (0, H) uint8, out
    (N_dst, H, F), row_max and row_sum (N_dst, H): all three overwritten (an empty row: 0, 0, 0).
    O(E * H * F) work, no workspace. Launch: a row group per destination row, lanes over (h, f); no atomics.
    """
    require_cuda()
    indptr, indices, a_dst, a_src, Z, keep_mask, out, row_max, row_sum = _device(
        indptr=indptr, indices=indices, a_dst=a_dst, a_src=a_src, Z=Z, keep_mask=keep_mask, out=out,
        row_max=row_max, row_sum=row_sum)
    n_dst, E = _check_csr(indptr, indices)
    _check("Z", Z, (None, None, None))
    H, F = Z.shape[1], Z.shape[2]
    _check("a_dst", a_dst, (n_dst, H))
    _check("a_src", a_src, (Z.shape[0], H))
    _check("keep_mask", keep_mask, (None, H), dtype=np.uint8)
    if keep_mask.shape[0] not in (0, E):
        raise ValueError(f"keep_mask must have shape ({E}, {H}) or (0, {H}), got {tuple(keep_mask.shape)}")
    _check("out", out, (n_dst, H, F))
    _check("row_max", row_max, (n_dst, H))
    _check("row_sum", row_sum, (n_dst, H))
    _check_float(("Z", Z), ("a_dst", a_dst), ("a_src", a_src), ("out", out), ("row_max", row_max),
                 ("row_sum", row_sum))
    dt = Z.dtype.type
    _launch(_gat_forward_kernel, _row_launch(n_dst, H * F), indptr, indices, a_dst, a_src, Z, dt(negative_slope),
            keep_mask, dt(keep_scale), out, row_max, row_sum)


@_jit
def _gat_backward_rows_kernel(indptr, indices, a_dst, a_src, Z, negative_slope, keep_mask, keep_scale, row_max,
                              row_sum, grad_out, grad_pre, alpha_d, grad_a_dst):
    H = grad_out.shape[1]
    F = grad_out.shape[2]
    dropout = keep_mask.shape[0] > 0
    zero = grad_out.dtype.type(0)
    one = grad_out.dtype.type(1)
    for k in range(cuda.grid(1), grad_a_dst.shape[0] * H, cuda.gridsize(1)):
        i = k // H
        h = k % H
        lo, hi = indptr[i], indptr[i + 1]
        m = row_max[i, h]
        l = row_sum[i, h]
        s = zero
        for e in range(lo, hi):
            j = indices[e]
            pre = a_dst[i, h] + a_src[j, h]
            sc = pre if pre > 0 else negative_slope * pre
            alpha = math.exp(sc - m) / l
            alpha_d[e, h] = alpha
            g = zero
            if (not dropout) or keep_mask[e, h] != 0:
                for f in range(F):
                    g += grad_out[i, h, f] * Z[j, h, f]
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


@_jit
def _gat_backward_sources_kernel(t_indptr, t_indices, t_perm, grad_out, grad_pre, alpha_d, grad_Z, grad_a_src):
    H = grad_Z.shape[1]
    F = grad_Z.shape[2]
    zero = grad_Z.dtype.type(0)
    for j in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, grad_Z.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = t_indptr[j], t_indptr[j + 1]
        for p in range(cuda.threadIdx.x, H * F, cuda.blockDim.x):
            h = p // F
            f = p % F
            acc = zero
            for t in range(lo, hi):
                acc += alpha_d[t_perm[t], h] * grad_out[t_indices[t], h, f]
            grad_Z[j, h, f] = acc
            if f == 0:
                a = zero
                for t in range(lo, hi):
                    a += grad_pre[t_perm[t], h]
                grad_a_src[j, h] = a


def gat_backward(indptr, indices, t_indptr, t_indices, t_perm, a_dst, a_src, Z, negative_slope, keep_mask,
                 keep_scale, row_max, row_sum, grad_out, grad_pre, alpha_d, grad_Z, grad_a_dst, grad_a_src):
    """Gradients of gat_forward w.r.t. Z (message path), a_dst and a_src, alpha recomputed (see gat_cpu).

    Arguments as ``gat_cpu.gat_backward``: the forward's inputs and saved row_max, row_sum; the
    transpose t_indptr (N_src+1,), t_indices (E,), t_perm (E,); grad_out (N_dst, H, F); workspaces
    grad_pre and alpha_d (E, H), overwritten with dL/dpre and alpha * d; outputs grad_Z (N_src, H, F),
    grad_a_dst (N_dst, H), grad_a_src (N_src, H), overwritten. O(E * H * F) work, O(E * H) workspace.
    Launch: pass 1 one thread per (destination, head); pass 2 a row group per source row of the
    transpose, lanes over (h, f). No atomics.
    """
    require_cuda()
    (indptr, indices, t_indptr, t_indices, t_perm, a_dst, a_src, Z, keep_mask, row_max, row_sum, grad_out,
     grad_pre, alpha_d, grad_Z, grad_a_dst, grad_a_src) = _device(
        indptr=indptr, indices=indices, t_indptr=t_indptr, t_indices=t_indices, t_perm=t_perm, a_dst=a_dst,
        a_src=a_src, Z=Z, keep_mask=keep_mask, row_max=row_max, row_sum=row_sum, grad_out=grad_out,
        grad_pre=grad_pre, alpha_d=alpha_d, grad_Z=grad_Z, grad_a_dst=grad_a_dst, grad_a_src=grad_a_src)
    n_dst, E = _check_csr(indptr, indices)
    _check("Z", Z, (None, None, None))
    n_src, H, F = Z.shape
    n_t, E_t = _check_csr(t_indptr, t_indices, "t_indptr", "t_indices")
    if n_t != n_src or E_t != E:
        raise ValueError(f"the transpose must have {n_src} rows and {E} edges, got {n_t} and {E_t}")
    _check("t_perm", t_perm, (E,), kind="iu")
    _check("a_dst", a_dst, (n_dst, H))
    _check("a_src", a_src, (n_src, H))
    _check("keep_mask", keep_mask, (None, H), dtype=np.uint8)
    if keep_mask.shape[0] not in (0, E):
        raise ValueError(f"keep_mask must have shape ({E}, {H}) or (0, {H}), got {tuple(keep_mask.shape)}")
    for name, a, shape in (("row_max", row_max, (n_dst, H)), ("row_sum", row_sum, (n_dst, H)),
                           ("grad_out", grad_out, (n_dst, H, F)), ("grad_pre", grad_pre, (E, H)),
                           ("alpha_d", alpha_d, (E, H)), ("grad_Z", grad_Z, (n_src, H, F)),
                           ("grad_a_dst", grad_a_dst, (n_dst, H)), ("grad_a_src", grad_a_src, (n_src, H))):
        _check(name, a, shape)
    _check_float(("Z", Z), ("a_dst", a_dst), ("a_src", a_src), ("row_max", row_max), ("row_sum", row_sum),
                 ("grad_out", grad_out), ("grad_pre", grad_pre), ("alpha_d", alpha_d), ("grad_Z", grad_Z),
                 ("grad_a_dst", grad_a_dst), ("grad_a_src", grad_a_src))
    dt = Z.dtype.type
    _launch(_gat_backward_rows_kernel, _flat_launch(n_dst * H), indptr, indices, a_dst, a_src, Z,
            dt(negative_slope), keep_mask, dt(keep_scale), row_max, row_sum, grad_out, grad_pre, alpha_d,
            grad_a_dst)
    _launch(_gat_backward_sources_kernel, _row_launch(n_src, H * F), t_indptr, t_indices, t_perm, grad_out,
            grad_pre, alpha_d, grad_Z, grad_a_src)
