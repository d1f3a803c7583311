"""Inverted dropout (derivations/dropout.md)."""
import numpy as np
import scipy.sparse as sp

from .init import as_rng
from .module import Module


class Dropout(Module):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p) per entry; evaluation: y = x.

    Scaling by 1/(1-p) at training time keeps E[y] = x, so evaluation needs no rescaling.
    Backward: dx = g * m / (1 - p). A sparse x keeps its sparsity: only stored entries are dropped.
    """

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1), got {p}")
        self.p = p
        self.rng = as_rng(seed)

    def forward(self, x, graph=None):
        if not self.training or self.p == 0.0:
            self._cache = "identity"
            return x
        keep = 1.0 - self.p
        if sp.issparse(x):
            x = x.tocsr(copy=True)
            x.data *= (self.rng.random(x.data.size) < keep) / np.asarray(keep, dtype=x.dtype)
            self._cache = "sparse"
            return x
        scale = (self.rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype) / np.asarray(keep, dtype=x.dtype)
        self._cache = scale
        return x * scale

    def backward(self, grad_out):
        scale = self._saved()  # what the forward did decides, not the current mode
        if isinstance(scale, str):
            # "sparse": the input was sparse data, it has no gradient to pass on
            return grad_out if scale == "identity" else None
        return grad_out * scale
