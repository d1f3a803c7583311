"""Batch normalisation on the CPU in Numba: the same names, argument order and semantics as ``norm_reference``.

The statistics and the backward reduce over rows (one sum per feature): one thread walks the rows
in order with the features as the (vectorised) inner loop -- the reference's summation order, so
the same bits, and no atomics. They run serially: a pass over N F numbers is memory-bound (about
0.1 ms for 3879 x 64 float32 here), and splitting the features into blocks per ``prange`` task
(tried first) stopped LLVM vectorising the inner loop -- six times slower on one thread. The
element-wise normalisation is parallel over row blocks. ``1 / sqrt(var + eps)`` is computed once
per call in NumPy (F numbers, the reference's expression) and handed to the kernels.
No ``fastmath``, no allocation inside a kernel.
Arrays C-contiguous, X / G float32 or float64, per-feature arrays of X's dtype.
"""
import numpy as np
from numba import njit, prange

from ..threads import call_numba

_PARALLEL = dict(parallel=True, cache=True, nogil=True)
# error_model="numpy": IEEE division, without Numba's divide-by-zero test, which kept the backward's
# element loop scalar (the fused backward as it was then: 52 -> 37 us on 1250 x 64, the same bits;
# every divisor here is N >= 1 or N - 1 >= 1, which the ops check before calling).
_SERIAL = dict(cache=True, nogil=True, error_model="numpy")
_ROWS = 256         # rows per element-wise task


@njit(**_SERIAL)
def _stats(X, factor, mean, var, running_mean, running_var):
    N, F = X.shape
    one = X.dtype.type(1)
    n = X.dtype.type(N)
    for f in range(F):
        mean[f] = 0
        var[f] = 0
    for r in range(N):
        x = X[r]                            # a row view: the inner loop over features vectorises
        for f in range(F):
            mean[f] += x[f]
    for f in range(F):
        mean[f] = mean[f] / n
    for r in range(N):                      # two passes: no cancellation of E[x^2] - E[x]^2
        x = X[r]
        for f in range(F):
            d = x[f] - mean[f]
            var[f] += d * d
    for f in range(F):
        var[f] = var[f] / n
    if running_mean.shape[0] > 0:
        for f in range(F):
            running_mean[f] = (one - factor) * running_mean[f] + factor * mean[f]
            running_var[f] = (one - factor) * running_var[f] + factor * (var[f] * (n / (n - one)))


def batch_norm_stats(X, factor, mean, var, running_mean, running_var):
    """Per-feature batch mean, biased variance and the running update (``norm_reference``). O(N F), serial."""
    _stats(X, X.dtype.type(factor), mean, var, running_mean, running_var)


@njit(**_PARALLEL)
def _forward(X, mean, inv_std, gamma, beta, out):
    N, F = X.shape
    affine = gamma.shape[0] > 0
    for blk in prange((N + _ROWS - 1) // _ROWS):
        for r in range(blk * _ROWS, min(N, blk * _ROWS + _ROWS)):
            x = X[r]
            o = out[r]
            if affine:
                for f in range(F):
                    o[f] = (x[f] - mean[f]) * inv_std[f] * gamma[f] + beta[f]
            else:
                for f in range(F):
                    o[f] = (x[f] - mean[f]) * inv_std[f]


def _inv_std(var, eps):
    """1 / sqrt(var + eps) per feature, (F,): NumPy's, the reference's bits; F numbers, made once per call."""
    dt = var.dtype.type
    return dt(1) / np.sqrt(var + dt(eps))


def batch_norm_forward(X, mean, var, eps, gamma, beta, out):
    """out = (X - mean) / sqrt(var + eps) * gamma + beta (``norm_reference``). O(N F), by row blocks."""
    call_numba(_forward, X.size, X, mean, _inv_std(var, eps), gamma, beta, out)


@njit(inline="always", **_SERIAL)
def _masked(g, q, f, zero):
    """g[f], or 0 where the ReLU's mask ``q`` (a row of pos; None: no ReLU) is False. None is pruned at compile time."""
    if q is None:
        return g[f]
    return g[f] if q[f] else zero


@njit(**_SERIAL)
def _column_sums(G, pos, X, mean, inv_std, sum_g, sum_gxhat):
    """sum_g = sum_r G_m[r], sum_gxhat = sum_r G_m[r] * xhat[r], G_m = G masked by ``pos`` (None: G)."""
    zero = X.dtype.type(0)
    for f in range(X.shape[1]):
        sum_g[f] = 0
        sum_gxhat[f] = 0
    for r in range(X.shape[0]):
        g = G[r]                            # row views: the inner loops over features vectorise
        q = None if pos is None else pos[r]
        x = X[r]
        for f in range(X.shape[1]):
            gm = _masked(g, q, f, zero)
            sum_g[f] += gm
            sum_gxhat[f] += gm * ((x[f] - mean[f]) * inv_std[f])


@njit(**_SERIAL)
def _input_grad(G, pos, X, mean, inv_std, gamma, batch_stats, sum_g, sum_gxhat, dX):
    """dX from G masked by ``pos`` (None: G) and the column sums of ``_column_sums``."""
    N, F = X.shape
    n = X.dtype.type(N)
    zero = X.dtype.type(0)
    affine = gamma.shape[0] > 0
    for r in range(N):
        g = G[r]
        q = None if pos is None else pos[r]
        x = X[r]
        d = dX[r]
        if batch_stats and affine:
            for f in range(F):
                d[f] = ((gamma[f] * inv_std[f]) / n) * (n * _masked(g, q, f, zero) - sum_g[f]
                                                        - ((x[f] - mean[f]) * inv_std[f]) * sum_gxhat[f])
        elif batch_stats:
            for f in range(F):
                d[f] = (inv_std[f] / n) * (n * _masked(g, q, f, zero) - sum_g[f]
                                           - ((x[f] - mean[f]) * inv_std[f]) * sum_gxhat[f])
        elif affine:
            for f in range(F):
                d[f] = (gamma[f] * inv_std[f]) * _masked(g, q, f, zero)
        else:
            for f in range(F):
                d[f] = inv_std[f] * _masked(g, q, f, zero)


@njit(**_SERIAL)
def _backward(G, X, mean, inv_std, gamma, batch_stats, dX, sum_g, sum_gxhat):
    # two compiled passes, not one body: as one body (or, in the fused op, "mask G into dX, then the
    # backward on dX in place") LLVM left the element loops scalar -- 100-150 us instead of 45 on
    # 1250 x 64 float32
    _column_sums(G, None, X, mean, inv_std, sum_g, sum_gxhat)
    _input_grad(G, None, X, mean, inv_std, gamma, batch_stats, sum_g, sum_gxhat, dX)


def batch_norm_backward(G, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat):
    """dX and the column sums dbeta = sum_g, dgamma = sum_gxhat (``norm_reference``). O(N F), serial."""
    _backward(G, X, mean, _inv_std(var, eps), gamma, bool(batch_stats), dX, sum_g, sum_gxhat)


# ------------------------------------------------------------------ fused with a following ReLU
# The same expressions as ``_forward`` / ``_backward`` and ``elementwise_cpu``'s ReLU, element for
# element and in the same order, so the fused op gives the bits of the three ops it replaces; what
# it saves is a pass over the (N, F) array and an (N, F) temporary each way, and two calls.
@njit(**_PARALLEL)
def _forward_relu(X, mean, inv_std, gamma, beta, out, pos):
    N, F = X.shape
    affine = gamma.shape[0] > 0
    zero = out.dtype.type(0)
    for blk in prange((N + _ROWS - 1) // _ROWS):
        for r in range(blk * _ROWS, min(N, blk * _ROWS + _ROWS)):
            x = X[r]
            o = out[r]
            q = pos[r]
            if affine:
                for f in range(F):
                    o[f] = (x[f] - mean[f]) * inv_std[f] * gamma[f] + beta[f]
            else:
                for f in range(F):
                    o[f] = (x[f] - mean[f]) * inv_std[f]
            for f in range(F):              # the row is in L1: the ReLU costs no extra pass over memory
                v = o[f]
                p = v > zero
                q[f] = p
                o[f] = v if p else zero


def batch_norm_relu_forward(X, mean, var, eps, gamma, beta, out, pos):
    """out = max(batch_norm(X), 0), pos = batch_norm(X) > 0 in one pass (``norm_reference``). O(N F), by row blocks."""
    call_numba(_forward_relu, X.size, X, mean, _inv_std(var, eps), gamma, beta, out, pos)


@njit(**_SERIAL)
def _backward_relu(G, pos, X, mean, inv_std, gamma, batch_stats, dX, sum_g, sum_gxhat):
    # _backward's passes with G masked as it is read: the same expressions element for element, so the
    # same bits as the ReLU's backward followed by the BatchNorm's
    _column_sums(G, pos, X, mean, inv_std, sum_g, sum_gxhat)
    _input_grad(G, pos, X, mean, inv_std, gamma, batch_stats, sum_g, sum_gxhat, dX)


def batch_norm_relu_backward(G, pos, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat):
    """``batch_norm_backward`` of (G where pos, else 0), the mask applied as G is read (``norm_reference``).
    O(N F), serial."""
    _backward_relu(G, pos, X, mean, _inv_std(var, eps), gamma, bool(batch_stats), dX, sum_g, sum_gxhat)
