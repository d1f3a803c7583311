"""Element-wise activations: ReLU, LeakyReLU, ELU (derivations/activations.md)."""
import numpy as np

from .. import dense
from . import elementwise as ew
from .module import Module


def _fused(a):
    """True for a host float array: the one-pass Numba kernels of nn/elementwise.py handle it."""
    return isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64)


class ReLU(Module):
    """y = max(x, 0);  dx = g * [x > 0]  (the subgradient 0 is taken at x = 0)."""

    def forward(self, x, graph=None):
        if _fused(x):   # host: y and the mask x > 0 in one parallel pass
            y, pos = np.empty(x.shape, x.dtype), np.empty(x.shape, np.bool_)
            ew.call(ew.relu_forward, x.size, ew.flat(x), y.reshape(-1), pos.reshape(-1))
            self._cache = pos
            return y
        y, self._cache = dense.relu_forward(x)       # cache: x > 0
        return y

    def backward(self, grad_out):
        pos = self._saved()
        if _fused(grad_out) and isinstance(pos, np.ndarray):
            grad_in = np.empty(grad_out.shape, grad_out.dtype)
            ew.call(ew.mask_multiply, grad_out.size, ew.flat(grad_out), ew.flat(pos), grad_in.reshape(-1))
            return grad_in
        return dense.relu_backward(grad_out, pos)


class LeakyReLU(Module):
    """y = x if x > 0 else s x;  dx = g * (1 if x > 0 else s)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x, graph=None):
        y, self._cache = dense.leaky_relu_forward(x, self.negative_slope)   # cache: x > 0
        return y

    def backward(self, grad_out):
        return dense.leaky_relu_backward(grad_out, self._saved(), self.negative_slope)


class ELU(Module):
    """y = x if x > 0 else a (e^x - 1);  dx = g * (1 if x > 0 else y + a)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x, graph=None):
        if _fused(x):   # host: one parallel pass; expm1 only on the branch that is kept
            y, pos = np.empty(x.shape, x.dtype), np.empty(x.shape, np.bool_)
            ew.call(ew.elu_forward, x.size, ew.flat(x), x.dtype.type(self.alpha), y.reshape(-1), pos.reshape(-1))
        else:
            y, pos = dense.elu_forward(x, self.alpha)
        self._cache = (pos, y)
        return y

    def backward(self, grad_out):
        pos, y = self._saved()
        if _fused(grad_out) and isinstance(pos, np.ndarray) and y.dtype == grad_out.dtype:
            grad_in = np.empty(grad_out.shape, grad_out.dtype)
            ew.call(ew.elu_backward, grad_out.size, ew.flat(grad_out), ew.flat(y), ew.flat(pos),
                    grad_out.dtype.type(self.alpha), grad_in.reshape(-1))
            return grad_in
        return dense.elu_backward(grad_out, pos, y, self.alpha)
