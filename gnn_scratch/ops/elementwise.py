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
from .checks import dense, one_float, same_shape


def _floats(op, **arrays):
    for name, a in arrays.items():
        dense(op, name, a)
    return one_float(op, **arrays)


def _scalar(op, name, value, dtype):
    """``value`` in ``dtype``, or ValueError when it is not finite there (1e39 in float32 is inf)."""
    with np.errstate(over="ignore"):
        v = dtype.type(value)
    if not np.isfinite(v):
        raise ValueError(f"ops.{op}: {name} must be finite in {dtype}, got {value!r}")
    return v


def relu(x):
    """(y, pos): y = max(x, 0), pos = x > 0 (the backward's cache)."""
    _floats("relu", x=x)
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    run("relu", x.size, x, y, pos)
    return y, pos


def relu_backward(grad_out, pos):
    """grad_out * [x > 0]."""
    _floats("relu_backward", grad_out=grad_out)
    same_shape("relu_backward", "grad_out", grad_out, pos=pos)
    out = empty_like(grad_out)
    run("relu_backward", grad_out.size, grad_out, pos, out)
    return out


def leaky_relu(x, negative_slope):
    """(y, pos): y = x if x > 0 else s x, pos = x > 0."""
    s = _scalar("leaky_relu", "negative_slope", negative_slope, _floats("leaky_relu", x=x))
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    run("leaky_relu", x.size, x, s, y, pos)
    return y, pos


def leaky_relu_backward(grad_out, pos, negative_slope):
    """grad_out * (1 if x > 0 else s)."""
    s = _scalar("leaky_relu_backward", "negative_slope", negative_slope,
                _floats("leaky_relu_backward", grad_out=grad_out))
    same_shape("leaky_relu_backward", "grad_out", grad_out, pos=pos)
    out = empty_like(grad_out)
    run("leaky_relu_backward", grad_out.size, grad_out, pos, s, out)
    return out


def elu(x, alpha):
    """(y, pos): y = x if x > 0 else alpha (e^x - 1), pos = x > 0."""
    a = _scalar("elu", "alpha", alpha, _floats("elu", x=x))
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    run("elu", x.size, x, a, y, pos)
    return y, pos


def elu_inference(x, alpha):
    """``elu`` in evaluation mode: (y, pos), y = x if x > 0 else alpha (e^x - 1), pos = x > 0.

    The host kernel's expm1 is a vectorised polynomial (kernels/fastexp.py: within 1 ulp of float64's
    expm1); float32 outputs can differ from ``elu``'s by 1-2 ulp (the libm float32 expm1's error).
    Training keeps ``elu``: its results do not change.
    """
    a = _scalar("elu_inference", "alpha", alpha, _floats("elu_inference", x=x))
    y, pos = empty_like(x), empty(x.shape, np.bool_, like=x)
    run("elu_inference", x.size, x, a, y, pos)
    return y, pos


def elu_backward(grad_out, pos, y, alpha):
    """grad_out * (1 if x > 0 else y + alpha), y the forward output."""
    a = _scalar("elu_backward", "alpha", alpha, _floats("elu_backward", grad_out=grad_out, y=y))
    same_shape("elu_backward", "grad_out", grad_out, pos=pos, y=y)
    out = empty_like(grad_out)
    run("elu_backward", grad_out.size, grad_out, pos, y, a, out)
    return out


def dropout(x, key, keep):
    """Inverted dropout of the dense array x with the mask named ``key``: x * mask / keep.

    The backward is the same call on the upstream gradient with the same key. keep in (0, 1].
    """
    _floats("dropout", x=x)
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
