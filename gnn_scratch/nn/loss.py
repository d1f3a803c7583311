"""Masked softmax cross-entropy for node classification (derivations/softmax_cross_entropy.md)."""
import numpy as np

from .. import dense


def log_softmax(Z):
    """Row-wise log-softmax, shifted by the row max so exp never overflows: (N, C) -> (N, C)."""
    m = Z.max(axis=1, keepdims=True)
    S = Z - m
    return S - np.log(np.exp(S).sum(axis=1, keepdims=True))


class SoftmaxCrossEntropy:
    """L = -(1/|M|) sum_{n in M} log softmax(Z_n)[y_n] over the masked nodes M.

    Z: (N, C) logits, y: (N,) int class ids, mask: (N,) bool (None = every node).
    Backward: dZ_n = (softmax(Z_n) - onehot(y_n)) / |M| for n in M, 0 elsewhere.
    """

    def forward(self, Z, y, mask=None):
        if dense.is_device(Z):   # on the GPU: loss is a (1,) device array; labels are checked when moved (train.fit)
            loss, self._cache = dense.cross_entropy(Z, y, mask)
            return loss
        N, C = Z.shape
        y = np.asarray(y)
        if y.shape != (N,):
            raise ValueError(f"y must have shape ({N},) to match the logits {Z.shape}, got {y.shape}")
        idx = np.arange(N) if mask is None else np.flatnonzero(mask)
        if idx.size == 0:
            raise ValueError("mask selects no node: the loss over an empty set is undefined")
        if y[idx].min() < 0 or y[idx].max() >= C:
            raise ValueError(f"labels of the masked nodes must be in [0, {C}), got range [{y[idx].min()}, {y[idx].max()}]")
        logp = log_softmax(Z[idx].astype(np.float64) if Z.dtype == np.float64 else Z[idx])
        self._cache = (Z.shape, Z.dtype, idx, y[idx], np.exp(logp))
        return float(-logp[np.arange(idx.size), y[idx]].mean())

    def backward(self):
        if isinstance(self._cache, dense.CrossEntropyCache):
            return dense.cross_entropy_backward(self._cache)
        shape, dtype, idx, y_m, P = self._cache
        dZ = np.zeros(shape, dtype=dtype)
        P = P.copy()
        P[np.arange(idx.size), y_m] -= 1.0
        dZ[idx] = P / idx.size
        return dZ


def accuracy(Z, y, mask=None):
    """Fraction of the masked nodes whose arg-max logit is their label."""
    if dense.is_device(Z):   # counted on the GPU, two numbers copied back
        return dense.accuracy(Z, y, mask)
    pred = Z.argmax(axis=1)
    if mask is not None:
        pred, y = pred[mask], np.asarray(y)[mask]
    return float((pred == y).mean()) if pred.size else float("nan")
