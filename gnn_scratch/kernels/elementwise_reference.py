"""Element-wise operations in plain NumPy: activations, dropout and keep masks (the readable truth).

Contract of the family (shared by ``elementwise_cpu`` and ``elementwise_cuda``): arrays of any
shape, C-contiguous, one float dtype per call (``pos`` bool, ``mask`` uint8); outputs preallocated
and overwritten; scalars (slope, alpha, scale) already in the arrays' dtype. ``pos`` records
x > 0, which is what every backward here needs (the subgradient at 0 is taken as 0's side).

Masks: element k (flat index) of the mask named by the uint64 ``key`` is kept when
``rng.hash64(key, k) >> 32 < threshold`` (``rng.keep_threshold(keep)``): a counter-based draw,
identical on every implementation.
"""
import numpy as np

from . import rng


def relu(x, y, pos):
    """y = max(x, 0), pos = x > 0."""
    pos[...] = x > 0
    y[...] = np.where(pos, x, 0)


def relu_backward(g, pos, out):
    """out = g where x > 0, else 0."""
    out[...] = g * pos


def leaky_relu(x, negative_slope, y, pos):
    """y = x if x > 0 else s x, pos = x > 0."""
    pos[...] = x > 0
    y[...] = np.where(pos, x, negative_slope * x)


def leaky_relu_backward(g, pos, negative_slope, out):
    """out = g if x > 0 else s g."""
    out[...] = g * np.where(pos, 1, negative_slope).astype(g.dtype)


def elu(x, alpha, y, pos):
    """y = x if x > 0 else alpha (e^x - 1), pos = x > 0 (expm1 of min(x, 0): no overflow on the other branch)."""
    pos[...] = x > 0
    y[...] = np.where(pos, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_inference(x, alpha, y, pos):
    """``elu`` for evaluation mode: the same contract; the fast implementations may round expm1 differently
    (the CPU one: within 1 ulp of float64's expm1, where ``elu``'s float32 libm expm1 is up to 2 ulp off)."""
    elu(x, alpha, y, pos)


def elu_backward(g, pos, y, alpha, out):
    """out = g if x > 0 else g (y + alpha): ELU's derivative from its output y."""
    out[...] = np.where(pos, g, g * (y + alpha))


def dropout(x, key, threshold, scale, out):
    """out[k] = x[k] * scale if element k is kept under ``key`` else 0 (inverted dropout; its backward too)."""
    keep = rng.keep_mask_host(key, threshold, x.size).reshape(x.shape)
    out[...] = np.where(keep, x * scale, 0)


def keep_mask(key, threshold, mask):
    """mask[k] = 1 if element k is kept under ``key`` else 0 (uint8, any shape)."""
    mask[...] = rng.keep_mask_host(key, threshold, mask.size).reshape(mask.shape)
