"""Full multi-head self-attention within each graph of a batch, fused: FlashAttention and its backward.

Dao et al., *FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness*
(NeurIPS 2022), on a ``GraphBatch``: node i attends to every node of its own graph, itself
included (a graph transformer's global attention; ``graph_ptr`` marks the graphs). Per graph and
head h, with S = scale Q_h K_hᵀ (n x n) and P its row softmax,

    O_h = P V_h,            L[i, h] = log sum_j exp(S[i, j])          (the saved row log-sum-exp)

    dV_h = Pᵀ dO_h,   dP = dO_h V_hᵀ,   D[i] = <dO[i, h], O[i, h]>,   dS = P ⊙ (dP - D 1ᵀ),
    dQ_h = scale dS K_h,   dK_h = scale dSᵀ Q_h

(derivations/flash_attention.md). The n x n matrices S, P, dP, dS are never stored: the kernels
(``kernels/attention_{reference,cpu,cuda}.py``, family "attention") walk them in tiles with an
online softmax and recompute P from L in the backward, so memory is O(N H d), not O(n² H).

Shapes: Q, K (N, H, d), V (N, H, dv) float (one dtype, C-contiguous), O and dO (N, H, dv), L (N, H).
``graph_ptr``: (B+1,) integers (graph k = nodes graph_ptr[k] : graph_ptr[k+1], non-decreasing from 0
to N), as a host array (checked, then copied to Q's device: B + 1 integers), or a ``GraphBatch``
(its ``graph_ptr``, cached on the batch's device). ``scale`` defaults to 1 / sqrt(d).
Errors: TypeError for a non-float or mixed dtype, a sparse matrix or a graph_ptr that is not an
integer array; ValueError for a shape that does not fit, a non-contiguous array, a graph_ptr that
does not run from 0 to N or decreases, a non-finite scale.
"""
import math

import numpy as np

from ..device import copy_, empty, to_host
from ..kernels.registry import run
from .checks import dense, one_float, same_shape, shape


def _qkv(op, Q, K, V):
    """Q, K (N, H, d), V (N, H, dv): dense, one float dtype, C-contiguous. Returns N, H, d, dv."""
    shape(op, "Q", dense(op, "Q", Q), "N", "H", "d")
    N, H, d = Q.shape
    same_shape(op, "Q", Q, K=dense(op, "K", K))
    shape(op, "V", dense(op, "V", V), N, H, "dv")
    one_float(op, Q=Q, K=K, V=V)
    if d == 0:
        raise ValueError(f"ops.{op}: Q must have a head dimension d >= 1, got shape {tuple(Q.shape)}")
    _contiguous(op, Q=Q, K=K, V=V)
    return N, H, d, V.shape[2]


def _contiguous(op, **arrays):
    for name, a in arrays.items():
        if not a.flags["C_CONTIGUOUS"]:
            raise ValueError(f"ops.{op}: {name} must be C-contiguous (the kernels read rows as flat memory); "
                             f"pass np.ascontiguousarray({name})")


def _graph_ptr(op, graph_ptr, N, like):
    """graph_ptr as an int64 array on ``like``'s device, checked: (B+1,), from 0 to N, non-decreasing."""
    if hasattr(graph_ptr, "graph_ptr") and hasattr(graph_ptr, "derived"):      # a GraphBatch
        if graph_ptr.num_nodes != N:
            raise ValueError(f"ops.{op}: the GraphBatch has {graph_ptr.num_nodes} nodes but Q has {N} rows")
        return graph_ptr.derived(("attention", "graph_ptr"),
                                 lambda g: np.ascontiguousarray(g.graph_ptr, dtype=np.int64))
    host = np.asarray(to_host(graph_ptr))          # a device graph_ptr: one copy of B + 1 integers
    if host.dtype.kind not in "iu":
        raise TypeError(f"ops.{op}: graph_ptr must be an integer array (B + 1,), got dtype {host.dtype}")
    if host.ndim != 1 or host.size < 1:
        raise ValueError(f"ops.{op}: graph_ptr must have shape (B + 1,) with B >= 0, got {host.shape}")
    if host[0] != 0 or host[-1] != N:
        raise ValueError(f"ops.{op}: graph_ptr must start at 0 and end at the number of rows N = {N}, "
                         f"got graph_ptr[0] = {host[0]}, graph_ptr[-1] = {host[-1]}")
    step = np.diff(host)
    if np.any(step < 0):
        k = int(np.flatnonzero(step < 0)[0])
        raise ValueError(f"ops.{op}: graph_ptr must be non-decreasing, got graph_ptr[{k}] = {host[k]} > "
                         f"graph_ptr[{k + 1}] = {host[k + 1]}")
    ptr = empty(host.shape, np.int64, like=like)
    copy_(ptr, host.astype(np.int64))
    return ptr


def _scale(op, scale, d, dtype):
    """The scale as a scalar of ``dtype``: 1 / sqrt(d) by default; ValueError unless finite."""
    if scale is None:
        return dtype.type(1.0 / math.sqrt(d))
    value = float(scale)
    if not math.isfinite(value):
        raise ValueError(f"ops.{op}: scale must be a finite number, got {scale!r}")
    return dtype.type(value)


def _work(N, H, d, dv):
    return N * H * (d + dv)


def flash_attention(Q, K, V, graph_ptr, scale=None):
    """O = softmax(scale Q Kᵀ) V per head within each graph, without storing the attention: (O, L).

    Q, K (N, H, d), V (N, H, dv) float; graph_ptr (B+1,) integers or a GraphBatch; scale default
    1 / sqrt(d). Returns O (N, H, dv) and L (N, H), the row log-sum-exp the backward needs, both in
    Q's dtype on Q's device. Memory: the outputs and a few tiles per thread (no n x n array).
    """
    N, H, d, dv = _qkv("flash_attention", Q, K, V)
    ptr = _graph_ptr("flash_attention", graph_ptr, N, Q)
    sc = _scale("flash_attention", scale, d, Q.dtype)
    O = empty((N, H, dv), Q.dtype, like=Q)
    L = empty((N, H), Q.dtype, like=Q)
    run("flash_attention_forward", _work(N, H, d, dv), ptr, Q, K, V, sc, O, L)
    return O, L


def flash_attention_backward(dO, Q, K, V, O, L, graph_ptr, scale=None):
    """dQ, dK, dV of ``flash_attention``'s O, with the attention recomputed tile by tile from L.

    dO (N, H, dv) the upstream gradient dL/dO; Q, K, V, graph_ptr, scale as in the forward; O (N, H, dv)
    and L (N, H) what the forward returned. Returns dQ, dK (N, H, d) and dV (N, H, dv) on Q's device.
    Memory: the gradients, D = <dO, O> (N, H) and a few tiles per thread.
    """
    op = "flash_attention_backward"
    N, H, d, dv = _qkv(op, Q, K, V)
    shape(op, "O", dense(op, "O", O), N, H, dv)
    same_shape(op, "O", O, dO=dense(op, "dO", dO))
    shape(op, "L", dense(op, "L", L), N, H)
    one_float(op, Q=Q, O=O, L=L, dO=dO)
    _contiguous(op, O=O, L=L, dO=dO)
    ptr = _graph_ptr(op, graph_ptr, N, Q)
    sc = _scale(op, scale, d, Q.dtype)
    D = empty((N, H), Q.dtype, like=Q)
    dQ = empty((N, H, d), Q.dtype, like=Q)
    dK = empty((N, H, d), Q.dtype, like=Q)
    dV = empty((N, H, dv), Q.dtype, like=Q)
    run("flash_attention_backward", _work(N, H, d, dv), ptr, Q, K, V, O, L, dO, sc, D, dQ, dK, dV)
    return dQ, dK, dV
