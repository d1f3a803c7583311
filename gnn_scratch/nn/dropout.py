"""Inverted dropout (derivations/dropout.md)."""
import numpy as np
import scipy.sparse as sp

from .. import dense
from . import elementwise as ew
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
        if dense.is_device(x):   # on the GPU: see dense.dropout_forward for where the mask comes from
            y, self._cache = dense.dropout_forward(x, self)
            return y
        # Host: one fused pass (nn/elementwise.py). The mask is a hash of (key, element index) with
        # a fresh 64-bit key from self.rng per call; the backward recomputes it from the key.
        mask = _HashMask(self.rng.integers(0, 1 << 64, dtype=np.uint64), ew.dropout_threshold(keep),
                         x.dtype.type(1) / x.dtype.type(keep))
        if sp.issparse(x):
            x = sp.csr_matrix(x)
            data = np.empty_like(x.data)
            mask.apply(x.data, data)
            self._cache = "sparse"   # only stored entries are dropped; the structure is shared, not copied
            return sp.csr_matrix((data, x.indices, x.indptr), shape=x.shape)
        y = np.empty(x.shape, dtype=x.dtype)
        mask.apply(x, y)
        self._cache = mask
        return y

    def backward(self, grad_out):
        scale = self._saved()  # what the forward did decides, not the current mode
        if isinstance(scale, str):
            # "sparse": the input was sparse data, it has no gradient to pass on
            return grad_out if scale == "identity" else None
        if isinstance(scale, _HashMask):
            grad_in = np.empty(grad_out.shape, dtype=grad_out.dtype)
            scale.apply(grad_out, grad_in)
            return grad_in
        return dense.mul(grad_out, scale)


class _HashMask:
    """A host dropout mask held as its hash key: keep element k iff hash(key, k) >> 32 < threshold."""

    __slots__ = ("key", "threshold", "scale")

    def __init__(self, key, threshold, scale):
        self.key, self.threshold, self.scale = np.uint64(key), threshold, scale

    def apply(self, x, out):
        """out = x * mask * scale, in x's dtype (out preallocated, same shape)."""
        ew.call(ew.dropout_apply, x.size, ew.flat(x), self.key, self.threshold, out.dtype.type(self.scale),
                out.reshape(-1))
