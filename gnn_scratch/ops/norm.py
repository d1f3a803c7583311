"""Batch normalisation (Ioffe & Szegedy, 2015) over the rows of a node array, each step beside its backward.

Derived in derivations/batch_norm.md. Shapes: x, G (N, F) float; mean, var, gamma, beta and the
running statistics (F,) of x's dtype. ``gamma`` / ``beta`` None: no affine transform; running
statistics None: none kept. Every array lives where x lives (a layer's parameters and buffers move
with it, ``Module.to``).

    batch_norm_stats(x, factor, running_mean, running_var) -> (mean, var)    biased var; updates the running ones
    batch_norm(x, mean, var, eps, gamma, beta) -> out                        (x - mean) / sqrt(var + eps) * gamma + beta
    batch_norm_backward(G, x, mean, var, eps, gamma, batch_stats) -> (dX, dbeta, dgamma)
    batch_norm_relu(x, mean, var, eps, gamma, beta) -> (out, pos)             max(batch_norm(...), 0), one pass
    batch_norm_relu_backward(G, pos, x, mean, var, eps, gamma, batch_stats) -> (dX, dbeta, dgamma)
                                                                             batch_norm_backward of G * pos
"""
import numpy as np

from ..device import empty, empty_like
from ..kernels.registry import run
from .checks import dense, one_float, shape


def _rows(op, name, x):
    shape(op, name, dense(op, name, x), "N", "F")


def _per_feature(op, x, **vectors):
    """Each given vector (F,) of x's dtype; None becomes the (0,) array the kernels read as "absent"."""
    out = []
    F, dtype = x.shape[1], x.dtype
    for name, v in vectors.items():
        if v is None:
            out.append(empty((0,), dtype, like=x))
            continue
        if getattr(v, "shape", None) != (F,) or getattr(v, "dtype", None) != dtype:
            shape(op, name, v, F)                   # the checks that name what is wrong (x's dtype is checked)
            one_float(op, x=x, **{name: v})
        out.append(v)
    return out


def batch_norm_stats(x, factor=0.0, running_mean=None, running_var=None):
    """(mean, var) of x's columns, var biased (divided by N); the running statistics updated in place.

    running <- (1 - factor) running + factor batch, the running variance unbiased (x N / (N - 1)).
    x (N, F) with N >= 1, and N >= 2 when running statistics are given (ValueError otherwise).
    """
    _rows("batch_norm_stats", "x", x)
    one_float("batch_norm_stats", x=x)
    if (running_mean is None) != (running_var is None):
        raise ValueError("ops.batch_norm_stats: give both running_mean and running_var, or neither")
    N = x.shape[0]
    if N < (2 if running_mean is not None else 1):
        raise ValueError(f"ops.batch_norm_stats: x must have at least {2 if running_mean is not None else 1} rows "
                         f"{'to update the running (unbiased) variance ' if running_mean is not None else ''}"
                         f"per feature, got shape {tuple(x.shape)}")
    rm, rv = _per_feature("batch_norm_stats", x, running_mean=running_mean, running_var=running_var)
    mean, var = empty((x.shape[1],), x.dtype, like=x), empty((x.shape[1],), x.dtype, like=x)
    run("batch_norm_stats", x.size, x, float(factor), mean, var, rm, rv)
    return mean, var


def batch_norm(x, mean, var, eps, gamma=None, beta=None):
    """(x - mean) / sqrt(var + eps) * gamma + beta per column: (N, F). gamma and beta both given or both None."""
    _rows("batch_norm", "x", x)
    one_float("batch_norm", x=x)
    if (gamma is None) != (beta is None):
        raise ValueError("ops.batch_norm: give both gamma and beta, or neither")
    mean, var, gamma, beta = _per_feature("batch_norm", x, mean=mean, var=var, gamma=gamma, beta=beta)
    out = empty_like(x)
    run("batch_norm_forward", x.size, x, mean, var, float(eps), gamma, beta, out)
    return out


def batch_norm_backward(G, x, mean, var, eps, gamma=None, batch_stats=True):
    """(dX, dbeta, dgamma) of ``batch_norm``; dbeta = sum_n G[n], dgamma = sum_n G[n] x_hat[n].

    batch_stats True: mean and var are x's own batch statistics, and the gradient flows through them,
        dX = gamma / (N sigma) (N G - sum_n G[n] - x_hat sum_n G[n] x_hat[n]),   sigma = sqrt(var + eps);
    False: they are constants (running statistics), dX = gamma G / sigma.
    """
    _rows("batch_norm_backward", "G", G)
    shape("batch_norm_backward", "x", dense("batch_norm_backward", "x", x), G.shape[0], G.shape[1])
    one_float("batch_norm_backward", G=G, x=x)
    mean, var, gamma = _per_feature("batch_norm_backward", x, mean=mean, var=var, gamma=gamma)
    dX = empty_like(G)
    sum_g, sum_gxhat = empty((x.shape[1],), x.dtype, like=x), empty((x.shape[1],), x.dtype, like=x)
    run("batch_norm_backward", x.size, G, x, mean, var, float(eps), gamma, bool(batch_stats), dX, sum_g, sum_gxhat)
    return dX, sum_g, sum_gxhat


def batch_norm_relu(x, mean, var, eps, gamma=None, beta=None):
    """(out, pos): out = max(batch_norm(x, ...), 0), pos = batch_norm(x, ...) > 0 (bool (N, F)), in one pass.

    The composition ``relu(batch_norm(x, ...))`` (the same bits): BatchNorm followed by ReLU, as in
    GIN's MLP, without the normalised array in between. Arguments as ``batch_norm``.
    """
    _rows("batch_norm_relu", "x", x)
    one_float("batch_norm_relu", x=x)
    if (gamma is None) != (beta is None):
        raise ValueError("ops.batch_norm_relu: give both gamma and beta, or neither")
    mean, var, gamma, beta = _per_feature("batch_norm_relu", x, mean=mean, var=var, gamma=gamma, beta=beta)
    out, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    run("batch_norm_relu_forward", x.size, x, mean, var, float(eps), gamma, beta, out, pos)
    return out, pos


def batch_norm_relu_backward(G, pos, x, mean, var, eps, gamma=None, batch_stats=True):
    """(dX, dbeta, dgamma) of ``batch_norm_relu``: ``batch_norm_backward(G * pos, ...)`` (the ReLU's backward, then
    the norm's -- the composition, derivations/batch_norm.md), the mask applied as G is read. pos (N, F) bool."""
    _rows("batch_norm_relu_backward", "G", G)
    shape("batch_norm_relu_backward", "x", dense("batch_norm_relu_backward", "x", x), G.shape[0], G.shape[1])
    shape("batch_norm_relu_backward", "pos", pos, G.shape[0], G.shape[1])
    if pos.dtype != np.bool_:
        raise TypeError(f"ops.batch_norm_relu_backward: pos must be the forward's bool mask, got dtype {pos.dtype}")
    one_float("batch_norm_relu_backward", G=G, x=x)
    mean, var, gamma = _per_feature("batch_norm_relu_backward", x, mean=mean, var=var, gamma=gamma)
    dX = empty_like(G)
    sum_g, sum_gxhat = empty((x.shape[1],), x.dtype, like=x), empty((x.shape[1],), x.dtype, like=x)
    run("batch_norm_relu_backward", x.size, G, pos, x, mean, var, float(eps), gamma, bool(batch_stats), dX, sum_g,
        sum_gxhat)
    return dX, sum_g, sum_gxhat
