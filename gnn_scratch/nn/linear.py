"""Linear layer: Y = X W + b."""
import numpy as np
import scipy.sparse as sp

from .init import as_rng, glorot
from .module import Module


class Linear(Module):
    """Y = X W + b.

    X: (N, F_in) float (dense, or scipy.sparse for a first layer), W: (F_in, F_out), b: (F_out,).
    Backward (derivations/linear.md):  dW = X^T G,  db = sum_n G[n],  dX = G W^T.
    For a sparse X the input gradient is not computed (``backward`` returns None): features are data.
    """

    def __init__(self, in_channels, out_channels, bias=True, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.add_param("W", glorot(as_rng(seed), in_channels, out_channels, dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(out_channels, dtype=dtype))

    def forward(self, x, graph=None):
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"Linear expects x with {self.in_channels} features, got shape {x.shape}")
        self._cache = x
        y = x @ self.params["W"]
        if "b" in self.params:
            y += self.params["b"]
        return np.asarray(y)

    def backward(self, grad_out):
        x = self._saved()
        self.grads["W"] += np.asarray(x.T @ grad_out)
        if "b" in self.params:
            self.grads["b"] += grad_out.sum(axis=0)
        if sp.issparse(x):
            return None
        return grad_out @ self.params["W"].T
