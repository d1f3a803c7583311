"""Element-wise operations as fused Numba kernels: one pass instead of NumPy's several.

NumPy evaluates ``np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))`` as five passes over the
array on one core; the kernels here read their inputs once and write their outputs once, one flat
``prange`` loop each (Numba splits it statically over the threads, and LLVM vectorises the body; an
explicit loop over fixed blocks measured 15-20x slower, its inner loop left scalar). Every element is computed by one
thread from its own inputs only, so results do not depend on the thread count. Masks come from
``rng.keep_cpu``, the same counter-based hash as the reference and the GPU. A small array runs on
one thread (``threads.call_numba``). Contract: ``elementwise_reference``.
"""
import numpy as np
from numba import njit, prange

from ..threads import call_numba
from .fastexp import expm1_nonpositive
from .rng import keep_cpu

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


def _flat(a):
    return a.reshape(-1)


@njit(**_PARALLEL)
def _relu(x, y, pos):
    n = x.size
    zero = y.dtype.type(0)
    for k in prange(n):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else zero


@njit(**_PARALLEL)
def _mask_multiply(g, pos, out):
    n = g.size
    zero = out.dtype.type(0)
    for k in prange(n):
        out[k] = g[k] if pos[k] else zero


@njit(**_PARALLEL)
def _leaky_relu(x, slope, y, pos):
    n = x.size
    zero = y.dtype.type(0)
    for k in prange(n):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else slope * v


@njit(**_PARALLEL)
def _leaky_relu_backward(g, pos, slope, out):
    n = g.size
    for k in prange(n):
        out[k] = g[k] if pos[k] else g[k] * slope


@njit(**_PARALLEL)
def _elu(x, alpha, y, pos):
    n = x.size
    zero = y.dtype.type(0)
    for k in prange(n):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else alpha * np.expm1(v)


@njit(**_PARALLEL)
def _elu_inference(x, alpha, y, pos):
    n = x.size
    zero = y.dtype.type(0)
    for k in prange(n):
        v = x[k]
        p = v > zero
        pos[k] = p
        e = alpha * expm1_nonpositive(np.float64(v) if not p else 0.0)
        y[k] = v if p else e


@njit(**_PARALLEL)
def _elu_backward(g, pos, y, alpha, out):
    n = g.size
    for k in prange(n):
        out[k] = g[k] if pos[k] else g[k] * (y[k] + alpha)


@njit(**_PARALLEL)
def _dropout(x, key, threshold, scale, out):
    n = x.size
    zero = out.dtype.type(0)
    for k in prange(n):
        out[k] = x[k] * scale if keep_cpu(key, k, threshold) else zero


@njit(**_PARALLEL)
def _keep_mask(key, threshold, mask):
    n = mask.size
    for k in prange(n):
        mask[k] = 1 if keep_cpu(key, k, threshold) else 0


def relu(x, y, pos):
    call_numba(_relu, x.size, _flat(x), _flat(y), _flat(pos))


def relu_backward(g, pos, out):
    call_numba(_mask_multiply, g.size, _flat(g), _flat(pos), _flat(out))


def leaky_relu(x, negative_slope, y, pos):
    call_numba(_leaky_relu, x.size, _flat(x), x.dtype.type(negative_slope), _flat(y), _flat(pos))


def leaky_relu_backward(g, pos, negative_slope, out):
    call_numba(_leaky_relu_backward, g.size, _flat(g), _flat(pos), g.dtype.type(negative_slope), _flat(out))


def elu(x, alpha, y, pos):
    call_numba(_elu, x.size, _flat(x), x.dtype.type(alpha), _flat(y), _flat(pos))


def elu_inference(x, alpha, y, pos):
    """``elu`` by the vectorised ``fastexp.expm1_nonpositive`` (evaluated in float64, rounded once)."""
    call_numba(_elu_inference, x.size, _flat(x), np.float64(alpha), _flat(y), _flat(pos))


def elu_backward(g, pos, y, alpha, out):
    call_numba(_elu_backward, g.size, _flat(g), _flat(pos), _flat(y), g.dtype.type(alpha), _flat(out))


def dropout(x, key, threshold, scale, out):
    call_numba(_dropout, x.size, _flat(x), np.uint64(key), np.uint64(threshold), x.dtype.type(scale), _flat(out))


def keep_mask(key, threshold, mask):
    call_numba(_keep_mask, mask.size, np.uint64(key), np.uint64(threshold), _flat(mask))
