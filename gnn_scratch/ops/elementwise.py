"""Element-wise operations: activations with their backward, and dropout masks (derivations/activations.md,
derivations/dropout.md).

Each returns its output and what its backward needs, allocated on the input's device; the
registry runs the Numba kernels on the host and numba.cuda kernels on the GPU. Dropout masks are
named by a 64-bit ``key`` that the layer draws from its own generator: the mask itself is a
counter-based hash (``kernels/rng.py``), so a backward recomputes it instead of storing it, and
the host and the GPU draw the very same mask for the same key.
"""
import numpy as np

from ..device import empty, empty_like
from ..kernels.registry import run
from ..kernels.rng import keep_threshold


def relu(x):
    """(y, pos): y = max(x, 0), pos = x > 0 (the backward's cache)."""
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    run("relu", x.size, x, y, pos)
    return y, pos


def relu_backward(grad_out, pos):
    """grad_out * [x > 0]."""
    out = empty_like(grad_out)
    run("relu_backward", grad_out.size, grad_out, pos, out)
    return out


def leaky_relu(x, negative_slope):
    """(y, pos): y = x if x > 0 else s x, pos = x > 0."""
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    run("leaky_relu", x.size, x, x.dtype.type(negative_slope), y, pos)
    return y, pos


def leaky_relu_backward(grad_out, pos, negative_slope):
    """grad_out * (1 if x > 0 else s)."""
    out = empty_like(grad_out)
    run("leaky_relu_backward", grad_out.size, grad_out, pos, grad_out.dtype.type(negative_slope), out)
    return out


def elu(x, alpha):
    """(y, pos): y = x if x > 0 else alpha (e^x - 1), pos = x > 0."""
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    run("elu", x.size, x, x.dtype.type(alpha), y, pos)
    return y, pos


def elu_backward(grad_out, pos, y, alpha):
    """grad_out * (1 if x > 0 else y + alpha), y the forward output."""
    out = empty_like(grad_out)
    run("elu_backward", grad_out.size, grad_out, pos, y, grad_out.dtype.type(alpha), out)
    return out


def dropout(x, key, keep):
    """Inverted dropout of the dense array x with the mask named ``key``: x * mask / keep.

    The backward is the same call on the upstream gradient with the same key. keep in (0, 1].
    """
    out = empty_like(x)
    run("dropout", x.size, x, np.uint64(key), keep_threshold(keep), x.dtype.type(1) / x.dtype.type(keep), out)
    return out


def keep_mask(shape, key, keep, like):
    """A dropout keep mask of ``shape`` (uint8: 1 = kept) named ``key``, on the device of ``like``.

    GAT's attention dropout, (E, H): element k = e H + h is kept with probability ``keep``.
    """
    mask = empty(shape, np.uint8, like=like)
    run("keep_mask", mask.size, np.uint64(key), keep_threshold(keep), mask)
    return mask
