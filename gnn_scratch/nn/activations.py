"""Element-wise activations: ReLU, LeakyReLU, ELU (derivations/activations.md); PReLU (derivations/dgi.md)."""
import numpy as np

from .. import ops
from .checks import check_features, finite_real, float_dtype, positive_int
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
        # evaluation mode: a vectorised expm1 (ops.elu_inference; training keeps ops.elu's bits)
        y, pos = ops.elu(x, self.alpha) if self.training else ops.elu_inference(x, self.alpha)
        self._cache = (pos, y)
        return y

    def backward(self, grad_out):
        pos, y = self._saved()
        return ops.elu_backward(grad_out, pos, y, self.alpha)


class PReLU(Module):
    """y = x if x > 0 else a x, with the slope a learned (He et al. 2015; torch's ``nn.PReLU``).

    ``num_parameters=1`` (torch's default, and Deep Graph Infomax's ``nn.PReLU()``): one slope shared by
    every channel; ``num_parameters=F``: one per channel (column) of x. Parameter ``a``: (num_parameters,),
    torch's ``weight``, filled with ``init`` (0.25 as torch). x: (N, F) dense float of a's dtype.

    Backward (derivations/dgi.md):  dx = G where x > 0, a G elsewhere;
        da[f] = sum_n [x[n, f] <= 0] G[n, f] x[n, f]  (per channel),  da = sum_f of those  (shared).
    The cache is x itself (the slope's gradient needs its values, not only its sign). Raises ValueError
    for a non-positive num_parameters, a non-finite init, or an x whose width does not match
    num_parameters > 1; TypeError for another dtype.
    """

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        self.num_parameters = positive_int("num_parameters", num_parameters)
        self.add_param("a", np.full(self.num_parameters, finite_real("init", init), dtype=float_dtype(dtype)))

    def forward(self, x, graph=None):
        a = self.params["a"]
        x = check_features(x, num_cols=None if self.num_parameters == 1 else self.num_parameters, dtype=a.dtype)
        self._cache = x
        return ops.prelu(x, a)

    def backward(self, grad_out):
        x = self._saved()
        dx, da = ops.prelu_backward(grad_out, x, self.params["a"])
        ops.add_(self.grads["a"], da)                  # da += sum of G x over the negative side
        return dx
