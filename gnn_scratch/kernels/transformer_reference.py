"""Pieces of the graph transformers in plain NumPy (the readable truth): a scale, LayerNorm, TransformerConv's beta gate.

The attention itself is composed of the sparse ops (SDDMM-dot, edge softmax, SpMM; see
``nn/conv/transformer_conv.py``) or is the fused full attention of the "attention" family. What
those do not cover, and is done here, one row at a time:

* ``scale``                 -- out = a x (the 1/sqrt(d) of scaled dot-product attention);
* ``layer_norm`` / ``_backward`` -- Ba et al. (2016): each row normalised by its own mean and
  (biased) variance, then an affine map per feature (derivations/layer_norm.md);
* ``beta_gate`` / ``_backward``  -- PyG TransformerConv's ``beta=True`` skip: a per-row sigmoid gate
  between the aggregated messages and the skip projection (derivations/transformer_conv.md, step 6).

Contract of the family (shared by ``transformer_cpu`` and ``transformer_cuda``): arrays of one float
dtype per call, C-contiguous, outputs preallocated and overwritten; arithmetic in the arrays' dtype;
each output row has one writer (no atomics). A row of no column (F = 0) is never handed in (the
layers refuse zero widths).
"""
import numpy as np


def scale(x, a, out):
    """out = a * x element-wise: x, out any one shape, a a scalar of their dtype. O(size)."""
    np.multiply(x, a, out=out)


def layer_norm(x, gamma, beta, eps, out, xhat, rstd):
    """Normalise each row of x (N, F): mu = mean_f x, var = mean_f (x - mu)^2 (biased, as torch).

    rstd[n] = 1 / sqrt(var[n] + eps); xhat = (x - mu) rstd; out = xhat * gamma + beta.
    gamma, beta (F,); out, xhat (N, F); rstd (N,). O(N F).
    """
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    xhat[...] = (x - mu) * r
    rstd[...] = r[:, 0]
    out[...] = xhat * gamma + beta


def layer_norm_backward(G, xhat, rstd, gamma, dx):
    """dx = rstd (g - mean_f g - xhat mean_f(g xhat)),  g = G * gamma: the gradient through the row statistics.

    G, xhat, dx (N, F); rstd (N,); gamma (F,). O(N F). (dgamma = sum_n G xhat, dbeta = sum_n G are
    column sums, composed by the layer.)
    """
    g = G * gamma
    dx[...] = rstd[:, None] * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))


def _sigmoid(s):
    e = np.exp(-np.abs(s))                    # exp of a non-positive number: never overflows
    return np.where(s >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def beta_gate(out, xr, w, y, b):
    """PyG TransformerConv's gate: b = sigmoid([out, xr, out - xr] . w), y = b xr + (1 - b) out, per row.

    out, xr, y (N, D); w (3 D,) (lin_beta's weight: out's, xr's, then (out - xr)'s coefficients);
    b (N,). O(N D).
    """
    D = out.shape[1]
    s = out @ w[:D] + xr @ w[D:2 * D] + (out - xr) @ w[2 * D:]
    b[...] = _sigmoid(s)
    y[...] = b[:, None] * xr + (1.0 - b[:, None]) * out


def beta_gate_backward(G, out, xr, b, w, d_out, d_xr, dz):
    """The gate's vector-Jacobian product, G = dL/dy (N, D):

    dz[n]  = b (1 - b) sum_f G (xr - out)          (dL/ds, s the gate's logit; (N,))
    d_out  = G (1 - b) + dz (w_out + w_diff)
    d_xr   = G b       + dz (w_xr  - w_diff)
    (dw = [out, xr, out - xr]^T dz is composed by the layer.) O(N D).
    """
    D = out.shape[1]
    bb = b[:, None]
    dz[...] = b * (1.0 - b) * (G * (xr - out)).sum(axis=1)
    d_out[...] = G * (1.0 - bb) + dz[:, None] * (w[:D] + w[2 * D:])
    d_xr[...] = G * bb + dz[:, None] * (w[D:2 * D] - w[2 * D:])
