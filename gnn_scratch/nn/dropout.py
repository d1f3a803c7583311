"""Inverted dropout (derivations/dropout.md)."""
import numpy as np

from .. import ops
from ..device import issparse
from .checks import probability
from .init import as_rng
from .module import Module


class Dropout(Module):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p) per entry; evaluation: y = x.

    Scaling by 1/(1-p) at training time keeps E[y] = x, so evaluation needs no rescaling.
    Backward: dx = g * m / (1 - p). A sparse x keeps its sparsity: only stored entries are dropped,
    and it has no gradient (features are data).

    The mask is a counter-based hash of (key, element index) (``kernels/rng.py``) with a fresh
    64-bit key drawn from ``self.rng`` per training forward: the backward recomputes the mask
    from the key instead of storing it, and the host and the GPU draw the same mask for the same
    seed. x: any shape, float32 or float64 (dense), or a scipy / device CSR matrix.
    """

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        self.p = probability("dropout probability p", p)
        self.rng = as_rng(seed)

    def forward(self, x, graph=None):
        if not self.training or self.p == 0.0:
            self._cache = "identity"
            return x
        key = self.rng.integers(0, 1 << 64, dtype=np.uint64)
        if issparse(x):
            x = x if x.format == "csr" else x.tocsr()   # a COO's .data is not in the order of the CSR it becomes
            self._cache = "sparse"   # only stored entries are dropped; the structure is shared, not copied
            return _with_data(x, ops.dropout(x.data, key, 1.0 - self.p))
        self._cache = key
        return ops.dropout(x, key, 1.0 - self.p)

    def backward(self, grad_out):
        key = self._saved()  # what the forward did decides, not the current mode
        if isinstance(key, str):
            # "sparse": the input was sparse data, it has no gradient to pass on
            return grad_out if key == "identity" else None
        return ops.dropout(grad_out, key, 1.0 - self.p)


def _with_data(x, data):
    """The sparse matrix x with new stored values (same structure, not copied)."""
    if hasattr(x, "with_data"):          # a DeviceCSR
        return x.with_data(data)
    import scipy.sparse as sp
    x = sp.csr_matrix(x)
    return sp.csr_matrix((data, x.indices, x.indptr), shape=x.shape)
