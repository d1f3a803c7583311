"""Element-wise activations: ReLU, LeakyReLU, ELU (derivations/activations.md)."""
from .. import ops
from .checks import finite_real
from .module import Module


class ReLU(Module):
    """y = max(x, 0);  dx = g * [x > 0]  (the subgradient 0 is taken at x = 0).

    x: any shape, float32 or float64; the cache is the bool mask x > 0.
    """

    def forward(self, x, graph=None):
        y, self._cache = ops.relu(x)
        return y

    def backward(self, grad_out):
        return ops.relu_backward(grad_out, self._saved())


class LeakyReLU(Module):
    """y = x if x > 0 else s x;  dx = g * (1 if x > 0 else s)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = finite_real("negative_slope", negative_slope)

    def forward(self, x, graph=None):
        y, self._cache = ops.leaky_relu(x, self.negative_slope)
        return y

    def backward(self, grad_out):
        return ops.leaky_relu_backward(grad_out, self._saved(), self.negative_slope)


class ELU(Module):
    """y = x if x > 0 else a (e^x - 1);  dx = g * (1 if x > 0 else y + a)  (Clevert et al. 2016)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = finite_real("alpha", alpha)

    def forward(self, x, graph=None):
        y, pos = ops.elu(x, self.alpha)
        self._cache = (pos, y)
        return y

    def backward(self, grad_out):
        pos, y = self._saved()
        return ops.elu_backward(grad_out, pos, y, self.alpha)
