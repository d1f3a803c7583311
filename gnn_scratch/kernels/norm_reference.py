"""Batch normalisation in plain NumPy (the readable truth): batch statistics, the normalisation, its backward.

Contract of the family (shared by ``norm_cpu`` and ``norm_cuda``). X, G (N, F) float; per-feature
arrays (F,) of X's dtype; ``gamma`` / ``beta`` (F,), or (0,) for no affine transform (gamma = 1,
beta = 0); ``running_mean`` / ``running_var`` (F,), or (0,) for no running statistics. Outputs are
preallocated and fully overwritten; the running statistics are updated in place.

    batch_norm_stats(X, factor, mean, var, running_mean, running_var)
        mean = (1/N) sum_n X[n],   var = (1/N) sum_n (X[n] - mean)^2      (biased: what normalises)
        running_mean <- (1 - factor) running_mean + factor mean
        running_var  <- (1 - factor) running_var  + factor var N / (N - 1)  (unbiased, as torch)
        factor = momentum, or 1 / (batches seen) for a cumulative average. Needs N >= 1 (N >= 2
        with running statistics: the unbiased variance of one row is undefined).
    batch_norm_forward(X, mean, var, eps, gamma, beta, out)
        out = (X - mean) * inv_std * gamma + beta,   inv_std = 1 / sqrt(var + eps)
    batch_norm_backward(G, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat)
        x_hat = (X - mean) * inv_std;  sum_g = sum_n G[n];  sum_gxhat = sum_n G[n] * x_hat[n]
        batch_stats (mean, var are X's own):  dX = gamma inv_std / N * (N G - sum_g - x_hat sum_gxhat)
        otherwise   (running statistics):     dX = gamma inv_std G
        sum_g and sum_gxhat are dbeta and dgamma (the layer adds them into its gradients).
    batch_norm_relu_forward(X, mean, var, eps, gamma, beta, out, pos)
        out = max(y, 0), pos = y > 0 (bool (N, F)) with y = batch_norm_forward's output: BatchNorm
        followed by ReLU in one pass (GIN's MLP and its outer norm; ``BatchNorm1d.forward(relu=True)``)
    batch_norm_relu_backward(G, pos, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat)
        batch_norm_backward with G * pos in place of G: the ReLU's backward, then the norm's

Derived in derivations/batch_norm.md.
"""
import numpy as np


def _affine(a, F, dtype, value):
    return a if a.shape[0] else np.full(F, value, dtype=dtype)


def batch_norm_stats(X, factor, mean, var, running_mean, running_var):
    """Per-feature batch mean and biased variance, and the running statistics' update. O(N F)."""
    N = X.shape[0]
    dt = X.dtype.type
    mean[:] = X.sum(axis=0) / dt(N)
    var[:] = ((X - mean) ** 2).sum(axis=0) / dt(N)
    if running_mean.shape[0]:
        f = dt(factor)
        running_mean[:] = (dt(1) - f) * running_mean + f * mean
        running_var[:] = (dt(1) - f) * running_var + f * (var * (dt(N) / dt(N - 1)))


def batch_norm_forward(X, mean, var, eps, gamma, beta, out):
    """out = (X - mean) / sqrt(var + eps) * gamma + beta, per feature. O(N F)."""
    F, dt = X.shape[1], X.dtype.type
    inv_std = dt(1) / np.sqrt(var + dt(eps))
    out[:] = (X - mean) * inv_std * _affine(gamma, F, X.dtype, 1) + _affine(beta, F, X.dtype, 0)


def batch_norm_backward(G, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat):
    """dX, and the column sums sum_g = dbeta, sum_gxhat = dgamma (see the module docstring). O(N F)."""
    N, F = X.shape
    dt = X.dtype.type
    inv_std = dt(1) / np.sqrt(var + dt(eps))
    x_hat = (X - mean) * inv_std
    sum_g[:] = G.sum(axis=0)
    sum_gxhat[:] = (G * x_hat).sum(axis=0)
    scale = _affine(gamma, F, X.dtype, 1) * inv_std                     # gamma / sigma, (F,)
    if batch_stats:
        dX[:] = (scale / dt(N)) * (dt(N) * G - sum_g - x_hat * sum_gxhat)
    else:
        dX[:] = scale * G


# ------------------------------------------------------------------ fused with a following ReLU
def batch_norm_relu_forward(X, mean, var, eps, gamma, beta, out, pos):
    """out = max(batch_norm(X), 0), pos = batch_norm(X) > 0: ``batch_norm_forward`` then ReLU. O(N F)."""
    batch_norm_forward(X, mean, var, eps, gamma, beta, out)
    pos[...] = out > 0
    out[...] = np.where(pos, out, 0)


def batch_norm_relu_backward(G, pos, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat):
    """``batch_norm_backward`` of the ReLU's input gradient G * pos (the composition; pos from the forward)."""
    batch_norm_backward(G * pos, X, mean, var, eps, gamma, batch_stats, dX, sum_g, sum_gxhat)
