"""Element-wise activations: ReLU, LeakyReLU, ELU (derivations/activations.md)."""
import numpy as np

from .module import Module


class ReLU(Module):
    """y = max(x, 0);  dx = g * [x > 0]  (the subgradient 0 is taken at x = 0)."""

    def forward(self, x, graph=None):
        self._cache = x > 0
        return np.where(self._cache, x, 0).astype(x.dtype, copy=False)

    def backward(self, grad_out):
        return grad_out * self._saved()


class LeakyReLU(Module):
    """y = x if x > 0 else s x;  dx = g * (1 if x > 0 else s)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x, graph=None):
        self._cache = x > 0
        return np.where(self._cache, x, self.negative_slope * x).astype(x.dtype, copy=False)

    def backward(self, grad_out):
        pos = self._saved()
        return grad_out * np.where(pos, 1, self.negative_slope).astype(grad_out.dtype)


class ELU(Module):
    """y = x if x > 0 else a (e^x - 1);  dx = g * (1 if x > 0 else y + a)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x, graph=None):
        # expm1 on the clipped input: no overflow warning from the branch that is thrown away
        y = np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)
        self._cache = (x > 0, y)
        return y

    def backward(self, grad_out):
        pos, y = self._saved()
        return grad_out * np.where(pos, 1, y + self.alpha).astype(grad_out.dtype)
