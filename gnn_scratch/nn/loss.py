"""Losses: masked softmax cross-entropy for classification (derivations/softmax_cross_entropy.md), mean squared
error for regression and forecasting (derivations/mse.md)."""
import numpy as np

from .. import ops
from ..kernels.loss_reference import log_softmax  # noqa: F401  (the max-shifted log-softmax, re-exported)


class SoftmaxCrossEntropy:
    """L = -(1/|M|) sum_{n in M} log softmax(Z_n)[y_n] over the masked nodes M.

    Z: (N, C) logits, y: (N,) int class ids, mask: (N,) bool (None = every node).
    Backward: dZ_n = (softmax(Z_n) - onehot(y_n)) / |M| for n in M, 0 elsewhere.
    ``forward`` returns the loss as a 0-d array of Z's dtype (``float(loss)``, or ``device.item``).
    Raises ValueError for y of the wrong shape, and (host arrays) for labels outside [0, C) on the
    masked rows or an empty mask.
    """

    def forward(self, Z, y, mask=None):
        y = y if hasattr(y, "shape") else np.asarray(y)
        if y.shape != (Z.shape[0],):
            raise ValueError(f"y must have shape ({Z.shape[0]},) to match the logits {Z.shape}, got {y.shape}")
        loss, self._cache = ops.cross_entropy(Z, y, mask)
        return loss

    def backward(self):
        return ops.cross_entropy_backward(self._cache)


def accuracy(Z, y, mask=None):
    """Fraction of the masked nodes whose arg-max logit is their label (NaN for an empty mask)."""
    return ops.accuracy(Z, np.asarray(y) if isinstance(y, (list, tuple)) else y, mask)


class MSELoss:
    """L = (1 / (N F)) sum_{n,f} (P[n, f] - Y[n, f])^2: the mean squared error (PyTorch's ``MSELoss``, mean).

    P, Y: (N, F) or (N,) float of one dtype and the same shape -- never broadcast (the forecasting
    examples of PyG Temporal compare a (N, 1) prediction with (N,) targets, which broadcasts to N x N
    pairs; here that is a ValueError). Backward: dP = 2 (P - Y) / (N F).
    ``forward`` returns a 0-d array of P's dtype; raises ValueError / TypeError for mismatched shapes or dtypes.
    """

    def forward(self, P, Y):
        loss, self._cache = ops.mse(P, Y)
        return loss

    def backward(self):
        return ops.mse_backward(self._cache)
