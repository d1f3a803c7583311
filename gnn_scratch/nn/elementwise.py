"""Fused element-wise Numba kernels behind the layers and the optimiser: one pass instead of several.

NumPy evaluates ``(rng.random(shape) < keep).astype(dtype) / keep * x`` as five passes over the
array on one core; the kernels here read their inputs once, write their outputs once, and split the
flat array into fixed blocks over the threads (``prange``). Every element is computed by one
thread from its own inputs only, so results do not depend on the thread count.

Dropout uses a *counter-based* random number: the keep decision of element k is a hash of
(key, k) (SplitMix64's finaliser), so

* the forward needs no (N, F) array of random floats, and the backward *recomputes* the mask from
  the 64-bit ``key`` instead of storing it (the layer keeps one integer, not N x F bytes);
* the mask is the same whatever the thread count or block size.

The key itself is drawn from the layer's ``numpy.random.Generator`` on every training forward, so
seeding (and the gradient checker's replay of generator states) works as before.
Element k is kept when ``hash(key, k) >> 32 < threshold`` with ``threshold = round(keep * 2^32)``:
P(keep) = threshold / 2^32, within 2^-33 of ``keep``.

Conventions: flat (1-D) C-contiguous arrays, float32 or float64, all of one dtype; outputs are
preallocated and fully overwritten (they may alias an input of the same shape); no allocation.
"""
import numpy as np
from numba import njit, prange

from ..threads import call_numba

_PARALLEL = dict(parallel=True, cache=True, nogil=True)
_SERIAL = dict(cache=True, nogil=True)

# Elements per prange task: big enough that scheduling costs nothing, small enough to balance.
_BLOCK = 1 << 14
_ROWS = 256     # rows per prange task of the row-wise kernels

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(inline="always")
def _hash(key, k):
    """SplitMix64 of the counter k under ``key``: 64 well-mixed bits. O(1)."""
    z = key + np.uint64(k) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def dropout_threshold(keep):
    """The uint64 threshold t with P(hash >> 32 < t) = t / 2^32 ~= ``keep`` (0 < keep <= 1)."""
    return np.uint64(min(int(round(keep * 2.0 ** 32)), 2 ** 32))


@njit(**_PARALLEL)
def dropout_apply(x, key, threshold, scale, out):
    """out[k] = x[k] * scale if element k is kept under ``key`` else 0.

    x (n,) float, key uint64, threshold uint64 (``dropout_threshold``), scale x's dtype (1/keep),
    out (n,) float, overwritten (may be x). O(n). The forward of inverted dropout, and with the
    same key its backward (dx = g * mask * scale).
    """
    n = x.size
    zero = out.dtype.type(0)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        for k in range(lo, hi):
            if (_hash(key, k) >> np.uint64(32)) < threshold:
                out[k] = x[k] * scale
            else:
                out[k] = zero


@njit(**_PARALLEL)
def add_bias_rows(Y, b):
    """Y[i, f] += b[f] in place.  Y (N, F) float C-contiguous, b (F,) of Y's dtype. O(N F).

    NumPy's ``Y += b`` pays a fixed cost per row of its broadcast loop, which dominates when F is
    small (a GCN's 16 hidden units or 7 classes: ~35 ns a row, 4x the additions themselves).
    """
    N, F = Y.shape
    for bk in prange((N + _ROWS - 1) // _ROWS):
        for i in range(bk * _ROWS, min(N, bk * _ROWS + _ROWS)):
            for f in range(F):
                Y[i, f] += b[f]


@njit(**_PARALLEL)
def relu_forward(x, out, positive):
    """out[k] = max(x[k], 0); positive[k] = x[k] > 0.  x, out (n,) float; positive (n,) bool. O(n)."""
    n = x.size
    zero = out.dtype.type(0)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        for k in range(lo, hi):
            v = x[k]
            p = v > zero
            positive[k] = p
            out[k] = v if p else zero


@njit(**_PARALLEL)
def mask_multiply(grad, positive, out):
    """out[k] = grad[k] if positive[k] else 0 (ReLU's backward).  grad, out (n,) float; positive (n,) bool."""
    n = grad.size
    zero = out.dtype.type(0)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        for k in range(lo, hi):
            out[k] = grad[k] if positive[k] else zero


@njit(**_PARALLEL)
def elu_forward(x, alpha, out, positive):
    """out[k] = x if x > 0 else alpha * expm1(x); positive[k] = x[k] > 0. alpha in x's dtype. O(n)."""
    n = x.size
    zero = out.dtype.type(0)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        for k in range(lo, hi):
            v = x[k]
            p = v > zero
            positive[k] = p
            out[k] = v if p else alpha * np.expm1(v)


@njit(**_PARALLEL)
def elu_backward(grad, y, positive, alpha, out):
    """out[k] = grad[k] * (1 if positive[k] else y[k] + alpha)  (ELU's derivative from its output). O(n)."""
    n = grad.size
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        for k in range(lo, hi):
            out[k] = grad[k] if positive[k] else grad[k] * (y[k] + alpha)


@njit(**_SERIAL)
def adam_update(p, grad, m, v, weight_decay, beta1, beta2, step_size, bias2, eps):
    """One Adam step on a flat parameter, in place (torch.optim.Adam's L2 form).

    d = grad + weight_decay * p;  m = b1 m + (1 - b1) d;  v = b2 v + (1 - b2) d^2;
    p -= step_size * m / (sqrt(v / bias2) + eps), with step_size = lr / (1 - b1^t), bias2 = 1 - b2^t.
    p, grad, m, v: (n,) of one float dtype; the scalars in that dtype. O(n), serial (parameters are
    small; a parallel launch would cost more than it saves).
    """
    one = p.dtype.type(1)
    c1 = one - beta1
    c2 = one - beta2
    for k in range(p.size):
        d = grad[k] + weight_decay * p[k]
        mk = beta1 * m[k] + c1 * d
        vk = beta2 * v[k] + c2 * d * d
        m[k] = mk
        v[k] = vk
        p[k] -= step_size * mk / (np.sqrt(vk / bias2) + eps)


def call(kernel, n, *args):
    """``kernel(*args)`` for ``n`` elements; on one thread when n < ``threads.SERIAL_GRAIN``."""
    return call_numba(kernel, n, *args)


def flat(a):
    """A 1-D view of a C-contiguous array (a copy only if ``a`` is not contiguous)."""
    return np.ascontiguousarray(a).reshape(-1)
