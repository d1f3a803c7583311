"""Batch normalisation on the GPU (numba.cuda): the same names, argument order and semantics as ``norm_reference``.

The per-feature sums are ``dense_cuda.col_sum``'s deterministic tree (fixed chunks of rows, a
shared-memory tree per chunk, the partials summed in order): no atomics, the same bits from run to
run. What it sums -- the centred squares (X - mean)^2, the products G * x_hat -- is written first
by a flat element-wise kernel into an (N, F) workspace, so each step is one simple kernel.
Element-wise kernels: one thread per element, grid-stride (``dense_cuda._flat_launch``).
"""
import math

from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda
from .dense_cuda import _contiguous, _flat_launch, col_sum


@_jit
def _divide_kernel(a, n):
    for k in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[k] = a[k] / n


@_jit
def _centred_squares_kernel(X, mean, work):
    F = X.shape[1]
    for k in range(cuda.grid(1), X.shape[0] * F, cuda.gridsize(1)):
        r, f = k // F, k % F
        d = X[r, f] - mean[f]
        work[r, f] = d * d


@_jit
def _finish_stats_kernel(n, factor, mean, var, running_mean, running_var):
    one = var.dtype.type(1)
    for f in range(cuda.grid(1), var.shape[0], cuda.gridsize(1)):
        var[f] = var[f] / n
        if running_mean.shape[0] > 0:
            running_mean[f] = (one - factor) * running_mean[f] + factor * mean[f]
            running_var[f] = (one - factor) * running_var[f] + factor * (var[f] * (n / (n - one)))


@_jit
def _forward_kernel(X, mean, var, eps, gamma, beta, out):
    F = X.shape[1]
    one = X.dtype.type(1)
    for k in range(cuda.grid(1), X.shape[0] * F, cuda.gridsize(1)):
        r, f = k // F, k % F
        y = (X[r, f] - mean[f]) * (one / math.sqrt(var[f] + eps))
        if gamma.shape[0] > 0:
            y = y * gamma[f] + beta[f]
        out[r, f] = y


@_jit
def _g_xhat_kernel(G, X, mean, var, eps, work):
    F = X.shape[1]
    one = X.dtype.type(1)
    for k in range(cuda.grid(1), X.shape[0] * F, cuda.gridsize(1)):
        r, f = k // F, k % F
        work[r, f] = G[r, f] * ((X[r, f] - mean[f]) * (one / math.sqrt(var[f] + eps)))


@_jit
def _backward_kernel(G, X, mean, var, eps, gamma, batch_stats, sum_g, sum_gxhat, dX):
    N, F = X.shape
    one = X.dtype.type(1)
    n = X.dtype.type(N)
    for k in range(cuda.grid(1), N * F, cuda.gridsize(1)):
        r, f = k // F, k % F
        inv_std = one / math.sqrt(var[f] + eps)
        scale = gamma[f] * inv_std if gamma.shape[0] > 0 else inv_std
        if batch_stats:
            x_hat = (X[r, f] - mean[f]) * inv_std
            dX[r, f] = (scale / n) * (n * G[r, f] - sum_g[f] - x_hat * sum_gxhat[f])
        else:
            dX[r, f] = scale * G[r, f]


def _check_features(X, named_vectors, optional=()):
    """X (N, F) float C-contiguous; each named vector (F,) of X's dtype; optional ones (F,) or (0,)."""
    _check("X", X, (None, None))
    F = X.shape[1]
    for name, v in named_vectors:
        _check(name, v, (F,))
    for name, v in optional:
        if v.shape[0] not in (0, F):
            raise ValueError(f"{name} must have shape ({F},) or (0,), got {tuple(v.shape)}")
    _check_float(("X", X), *named_vectors, *optional)
    _contiguous(X=X)


def batch_norm_stats(X, factor, mean, var, running_mean, running_var):
    """Per-feature batch mean, biased variance, and the running update in place (``norm_reference``).

    X (N, F), mean / var (F,) overwritten, running_mean / running_var (F,) or (0,). O(N F) work and
    an (N, F) workspace. Launch: ``col_sum`` for sum X, a flat kernel for (X - mean)^2, ``col_sum``
    again, then one thread per feature divides and updates. No atomics.
    """
    require_cuda()
    X, mean, var, running_mean, running_var = _device(X=X, mean=mean, var=var, running_mean=running_mean,
                                                      running_var=running_var)
    _check_features(X, [("mean", mean), ("var", var)], [("running_mean", running_mean), ("running_var", running_var)])
    N, F = X.shape
    n = X.dtype.type(N)
    col_sum(X, mean)
    _launch(_divide_kernel, _flat_launch(F), mean, n)
    work = cuda.device_array(X.shape, dtype=X.dtype)
    _launch(_centred_squares_kernel, _flat_launch(N * F), X, mean, work)
    col_sum(work, var)
    _launch(_finish_stats_kernel, _flat_launch(F), n, X.dtype.type(factor), mean, var, running_mean, running_var)


def batch_norm_forward(X, mean, var, eps, gamma, beta, out):
    """out = (X - mean) / sqrt(var + eps) * gamma + beta. X, out (N, F); mean, var (F,); gamma, beta (F,) or (0,).

    O(N F). Launch: one thread per element, grid-stride.
    """
    require_cuda()
    X, mean, var, gamma, beta, out = _device(X=X, mean=mean, var=var, gamma=gamma, beta=beta, out=out)
    _check_features(X, [("mean", mean), ("var", var)], [("gamma", gamma), ("beta", beta)])
    _check("out", out, X.shape)
    _check_float(("X", X), ("out", out))
    _launch(_forward_kernel, _flat_launch(X.size), X, mean, var, X.dtype.type(eps), gamma, beta, out)


def batch_norm_backward(G, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat):
    """dX, and sum_g = sum_n G[n], sum_gxhat = sum_n G[n] x_hat[n] (overwritten) -- ``norm_reference``.

    G, X, dX (N, F); mean, var, sum_g, sum_gxhat (F,); gamma (F,) or (0,). O(N F) work and an (N, F)
    workspace. Launch: ``col_sum`` of G, a flat kernel for G * x_hat and its ``col_sum``, then one
    thread per element of dX. No atomics.
    """
    require_cuda()
    G, X, mean, var, gamma, dX, sum_g, sum_gxhat = _device(G=G, X=X, mean=mean, var=var, gamma=gamma, dX=dX,
                                                           sum_g=sum_g, sum_gxhat=sum_gxhat)
    _check_features(X, [("mean", mean), ("var", var), ("sum_g", sum_g), ("sum_gxhat", sum_gxhat)],
                    [("gamma", gamma)])
    _check("G", G, X.shape)
    _check("dX", dX, X.shape)
    _check_float(("X", X), ("G", G), ("dX", dX))
    _contiguous(G=G)
    dt = X.dtype.type
    col_sum(G, sum_g)
    work = cuda.device_array(X.shape, dtype=X.dtype)
    _launch(_g_xhat_kernel, _flat_launch(X.size), G, X, mean, var, dt(eps), work)
    col_sum(work, sum_gxhat)
    _launch(_backward_kernel, _flat_launch(X.size), G, X, mean, var, dt(eps), gamma, bool(batch_stats), sum_g,
            sum_gxhat, dX)


# ------------------------------------------------------------------ fused with a following ReLU
@_jit
def _forward_relu_kernel(X, mean, var, eps, gamma, beta, out, pos):
    F = X.shape[1]
    one = X.dtype.type(1)
    zero = X.dtype.type(0)
    for k in range(cuda.grid(1), X.shape[0] * F, cuda.gridsize(1)):
        r, f = k // F, k % F
        y = (X[r, f] - mean[f]) * (one / math.sqrt(var[f] + eps))
        if gamma.shape[0] > 0:
            y = y * gamma[f] + beta[f]
        p = y > zero
        pos[r, f] = p
        out[r, f] = y if p else zero


@_jit
def _mask_kernel(G, pos, out):
    F = G.shape[1]
    zero = G.dtype.type(0)
    for k in range(cuda.grid(1), G.shape[0] * F, cuda.gridsize(1)):
        r, f = k // F, k % F
        out[r, f] = G[r, f] if pos[r, f] else zero


def batch_norm_relu_forward(X, mean, var, eps, gamma, beta, out, pos):
    """out = max(batch_norm(X), 0), pos = batch_norm(X) > 0 (``norm_reference``). pos (N, F) bool.

    O(N F). Launch: one thread per element, grid-stride.
    """
    require_cuda()
    X, mean, var, gamma, beta, out, pos = _device(X=X, mean=mean, var=var, gamma=gamma, beta=beta, out=out, pos=pos)
    _check_features(X, [("mean", mean), ("var", var)], [("gamma", gamma), ("beta", beta)])
    _check("out", out, X.shape)
    _check("pos", pos, X.shape)
    _check_float(("X", X), ("out", out))
    _launch(_forward_relu_kernel, _flat_launch(X.size), X, mean, var, X.dtype.type(eps), gamma, beta, out, pos)


def batch_norm_relu_backward(G, pos, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat):
    """``batch_norm_backward`` of G * pos (``norm_reference``): a flat kernel writes the masked G into an
    (N, F) workspace, then the norm's backward runs on it. O(N F)."""
    require_cuda()
    G, pos = _device(G=G, pos=pos)
    _check("G", G, (None, None))
    _check("pos", pos, G.shape)
    work = cuda.device_array(G.shape, dtype=G.dtype)
    _launch(_mask_kernel, _flat_launch(G.size), G, pos, work)
    batch_norm_backward(work, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat)
