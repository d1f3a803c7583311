"""Element-wise CUDA kernels: activations and their backward, dropout and keep masks.

Conventions as in ``dense_cuda.py``: device arrays, preallocated outputs, one thread per element
with grid-stride loops, arithmetic in the array's dtype, no atomics. Masks draw from ``rng``'s
counter-based hash, so they equal the CPU's bit for bit.
"""
import math

import numpy as np

from .dense_cuda import _contiguous, _flat, _flat_launch  # the launch helpers of the dense kernels
from . import rng
from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda


# ---------------------------------------------------------------------------------------- activations
@_jit
def _relu_kernel(x, y, pos):
    zero = y.dtype.type(0)
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else zero


@_jit
def _leaky_relu_kernel(x, slope, y, pos):
    zero = y.dtype.type(0)
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else slope * v


@_jit
def _relu_backward_kernel(g, pos, slope, out):
    for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        out[k] = g[k] if pos[k] else g[k] * slope


def _check_activation(x, out, pos):
    _check("out", out, x.shape)
    _check("pos", pos, x.shape, dtype=np.bool_)
    _check_float(("x", x), ("out", out))
    _contiguous(x=x, out=out, pos=pos)


def relu(x, y, pos):
    """y = max(x, 0), pos = (x > 0). x, y (any shape, one float dtype), pos bool of x's shape; both overwritten.

    O(size), one thread per element. A non-positive x gives +0, as np.where(x > 0, x, 0).
    """
    require_cuda()
    x, y, pos = _device(x=x, y=y, pos=pos)
    _check_activation(x, y, pos)
    _launch(_relu_kernel, _flat_launch(x.size), _flat(x), _flat(y), _flat(pos))


def relu_backward(g, pos, out):
    """out = g * pos (the subgradient 0 at x = 0). g, out one float dtype, pos bool; O(size)."""
    leaky_relu_backward(g, pos, 0.0, out)


def leaky_relu(x, negative_slope, y, pos):
    """y = x if x > 0 else s x, pos = (x > 0); s cast to x's dtype. Shapes as ``relu``. O(size)."""
    require_cuda()
    x, y, pos = _device(x=x, y=y, pos=pos)
    _check_activation(x, y, pos)
    _launch(_leaky_relu_kernel, _flat_launch(x.size), _flat(x), x.dtype.type(negative_slope), _flat(y), _flat(pos))


def leaky_relu_backward(g, pos, negative_slope, out):
    """out = g if pos else s g; s cast to g's dtype. g, out one float dtype, pos bool. O(size)."""
    require_cuda()
    g, pos, out = _device(g=g, pos=pos, out=out)
    _check_activation(g, out, pos)
    _launch(_relu_backward_kernel, _flat_launch(g.size), _flat(g), _flat(pos), g.dtype.type(negative_slope),
            _flat(out))


@_jit
def _elu_kernel(x, alpha, y, pos):
    zero = y.dtype.type(0)
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else alpha * math.expm1(min(v, zero))


@_jit
@_jit
def _elu_backward_kernel(g, pos, y, alpha, out):
    for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        out[k] = g[k] if pos[k] else g[k] * (y[k] + alpha)


def elu(x, alpha, y, pos):
    """y = x if x > 0 else a (e^x - 1) (expm1 of min(x, 0): no overflow), pos = (x > 0). O(size)."""
    require_cuda()
    x, y, pos = _device(x=x, y=y, pos=pos)
    _check_activation(x, y, pos)
    _launch(_elu_kernel, _flat_launch(x.size), _flat(x), x.dtype.type(alpha), _flat(y), _flat(pos))


def elu_inference(x, alpha, y, pos):
    """``elu`` (evaluation mode): the GPU's expm1 is already vectorised; the same kernel."""
    elu(x, alpha, y, pos)


def elu_backward(g, pos, y, alpha, out):
    """out = g if pos else g (y + a), with y the forward output. g, y, out one float dtype. O(size)."""
    require_cuda()
    g, pos, y, out = _device(g=g, pos=pos, y=y, out=out)
    _check_activation(g, out, pos)
    _check("y", y, g.shape)
    _check_float(("g", g), ("y", y))
    _launch(_elu_backward_kernel, _flat_launch(g.size), _flat(g), _flat(pos), _flat(y), g.dtype.type(alpha),
            _flat(out))


# --------------------------------------------------------------------------------------------- dropout
def _mask_kernels():
    """The dropout and keep-mask kernels, built on first use around ``rng``'s device hash."""
    global _DROPOUT_KERNEL, _KEEP_MASK_KERNEL
    if _DROPOUT_KERNEL is None:
        _, keep_dev = rng.cuda_functions()

        @_jit
        def dropout_kernel(x, key, threshold, scale, out):
            zero = out.dtype.type(0)
            for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
                out[k] = x[k] * scale if keep_dev(key, k, threshold) else zero

        @_jit
        def keep_mask_kernel(key, threshold, mask):
            for k in range(cuda.grid(1), mask.shape[0], cuda.gridsize(1)):
                mask[k] = 1 if keep_dev(key, k, threshold) else 0
        _DROPOUT_KERNEL, _KEEP_MASK_KERNEL = dropout_kernel, keep_mask_kernel
    return _DROPOUT_KERNEL, _KEEP_MASK_KERNEL


_DROPOUT_KERNEL = _KEEP_MASK_KERNEL = None


def dropout(x, key, threshold, scale, out):
    """out[k] = x[k] * scale if element k is kept under ``key`` else 0 (flat index k, any shape).

    x, out: one float dtype, C-contiguous, out overwritten (may be x). key: uint64 naming the mask;
    threshold: uint64 from ``rng.keep_threshold``; scale: 1/keep in x's dtype. The forward of
    inverted dropout, and with the same key its backward. The mask is ``rng.keep``'s, so it equals
    the CPU kernel's bit for bit and does not depend on the grid. O(size).
    """
    require_cuda()
    x, out = _device(x=x, out=out)
    _check("out", out, x.shape)
    _check_float(("x", x), ("out", out))
    _contiguous(x=x, out=out)
    kernel, _ = _mask_kernels()
    _launch(kernel, _flat_launch(x.size), _flat(x), np.uint64(key), np.uint64(threshold), x.dtype.type(scale),
            _flat(out))


def keep_mask(key, threshold, mask):
    """mask[k] = 1 if element k is kept under ``key`` else 0: a dropout keep mask (GAT's attention dropout).

    mask: uint8 of any shape ((E, H): k = e H + h), C-contiguous, overwritten. O(size), no state.
    """
    require_cuda()
    (mask,) = _device(mask=mask)
    _check("mask", mask, (None,) * mask.ndim, dtype=np.uint8)
    _contiguous(mask=mask)
    _, kernel = _mask_kernels()
    _launch(kernel, _flat_launch(mask.size), np.uint64(key), np.uint64(threshold), _flat(mask))
