"""Losses: masked softmax cross-entropy for classification (derivations/softmax_cross_entropy.md), mean squared
error for regression and forecasting (derivations/mse.md)."""
import numpy as np

from .. import ops
from ..kernels.loss_reference import log_softmax  # noqa: F401  (the max-shifted log-softmax, re-exported)


def _finite(loss, why):
    """``loss``; ValueError when it is a host value that is NaN or infinite. Free (a scalar), and with a stable
    log-sum-exp a finite loss is what finite inputs give, so a non-finite one means a NaN / Inf input on the
    rows it reads -- typically a training run that diverged. A loss on the GPU is not read back to check."""
    if isinstance(loss, (np.ndarray, np.generic, float)) and not np.isfinite(loss):
        raise ValueError(f"the loss is {float(loss)}: {why} (a diverged training run? try a lower learning rate)")
    return loss


class SoftmaxCrossEntropy:
    """L = -(1/|M|) sum_{n in M} log softmax(Z_n)[y_n] over the masked nodes M.

    Z: (N, C) logits, y: (N,) int class ids, mask: (N,) bool (None = every node).
    Backward: dZ_n = (softmax(Z_n) - onehot(y_n)) / |M| for n in M, 0 elsewhere.
    ``forward`` returns the loss as a 0-d array of Z's dtype (``float(loss)``, or ``device.item``).
    Raises ValueError for y of the wrong shape, and (host arrays) for labels outside [0, C) on the
    masked rows, an empty mask, or a NaN / infinite loss (NaN or Inf logits on the masked rows).
    """

    def forward(self, Z, y, mask=None):
        y = y if hasattr(y, "shape") else np.asarray(y)
        if y.shape != (Z.shape[0],):
            raise ValueError(f"y must have shape ({Z.shape[0]},) to match the logits {Z.shape}, got {y.shape}")
        loss, self._cache = ops.cross_entropy(Z, y, mask)
        return _finite(loss, "the logits Z hold NaN or Inf on the rows the mask keeps")

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
    ``forward`` returns a 0-d array of P's dtype; raises ValueError / TypeError for mismatched shapes or dtypes,
    and ValueError for a NaN / infinite loss on host arrays (a NaN or Inf in P or Y, or an overflow).
    """

    def forward(self, P, Y):
        loss, self._cache = ops.mse(P, Y)
        return _finite(loss, "P or Y hold NaN or Inf, or their squared differences overflow")

    def backward(self):
        return ops.mse_backward(self._cache)


class WeightedSoftmaxCrossEntropy:
    """Class-weighted softmax cross-entropy: torch's ``CrossEntropyLoss(weight=w)`` with its mean reduction.

        L = sum_{n in M} w[y_n] l_n / sum_{n in M} w[y_n],     l_n = -log softmax(Z_n)[y_n]

    over the masked nodes M (every node when ``mask`` is None). ``weight``: (C,) non-negative class
    weights, or "balanced" (benchmarking-gnns' SBM loss, recomputed from each call's labels): with
    V = |M| and V_c the number of nodes of M labelled c, w_c = (V - V_c) / V for a class present in M
    and 0 for an absent one, so the rarer class weighs more (PATTERN's pattern nodes).

    Composed from the masked cross-entropy op, one call per class c present (derivations/
    weighted_cross_entropy.md):  L = sum_c a_c CE(Z, y, M_c),  M_c = M and (y == c),
    a_c = w_c V_c / sum_c' w_c' V_c';  backward  dZ = sum_c a_c dCE_c, which on row n is
    w[y_n] (softmax(Z_n) - onehot(y_n)) / sum_{m in M} w[y_m].
    Z: (N, C) float; y: (N,) int host labels (the class masks are built from them); mask: (N,) bool or None.
    ``forward`` returns the loss as a 0-d array of Z's dtype. Raises ValueError for y of the wrong
    shape, labels outside [0, C), a weight of the wrong shape or with a negative or non-finite entry,
    an empty mask, present classes whose weights sum to 0 (torch returns NaN there: e.g. a
    "balanced" loss over nodes that all carry one label), or a NaN / infinite loss (NaN or Inf logits).
    """

    def __init__(self, weight="balanced"):
        if isinstance(weight, str):
            if weight != "balanced":
                raise ValueError(f"weight must be 'balanced' or a (C,) array of class weights, got {weight!r}")
        else:
            weight = np.asarray(weight, dtype=np.float64)
            if weight.ndim != 1 or not np.all(np.isfinite(weight)) or np.any(weight < 0):
                raise ValueError(f"weight must be a (C,) array of finite non-negative class weights, got {weight!r}")
        self.weight = weight

    def class_weights(self, y, num_classes):
        """(C,) the weights in force for labels ``y`` (the masked ones): fixed, or "balanced" from their counts."""
        if isinstance(self.weight, str):
            counts = np.bincount(y, minlength=num_classes).astype(np.float64)
            return np.where(counts > 0, (y.size - counts) / y.size, 0.0)
        if self.weight.shape != (num_classes,):
            raise ValueError(f"weight must have shape ({num_classes},) for {num_classes} classes, got "
                             f"{self.weight.shape}")
        return self.weight

    def forward(self, Z, y, mask=None):
        y = np.asarray(y)
        N, C = Z.shape
        if y.shape != (N,) or y.dtype.kind not in "iu":
            raise ValueError(f"y must be ({N},) integer labels to match the logits {tuple(Z.shape)}, got "
                             f"{y.shape} {y.dtype}")
        keep = np.ones(N, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if keep.shape != (N,):
            raise ValueError(f"mask must have shape ({N},), got {keep.shape}")
        ym = y[keep]
        if ym.size == 0:
            raise ValueError("the weighted cross-entropy needs at least one node, got an empty mask")
        if ym.min() < 0 or ym.max() >= C:
            raise ValueError(f"labels y must lie in [0, {C}), got range [{ym.min()}, {ym.max()}]")
        w = self.class_weights(ym, C)
        counts = np.bincount(ym, minlength=C)
        total = float(np.sum(w * counts))                       # sum_{n in M} w[y_n]
        if not total > 0:
            raise ValueError("the class weights of the labels present sum to 0: the weighted mean is undefined "
                             "(torch gives NaN; with weight='balanced' every node carries the same label)")
        loss, self._parts = 0.0, []
        for c in np.flatnonzero((counts > 0) & (w > 0)):
            a_c = float(w[c] * counts[c] / total)
            part, cache = ops.cross_entropy(Z, y, keep & (y == c))
            loss += a_c * float(part)
            self._parts.append((a_c, cache))
        return _finite(np.asarray(loss, dtype=Z.dtype), "the logits Z hold NaN or Inf on the rows the mask keeps")

    def backward(self):
        """dL/dZ (N, C): sum_c a_c (softmax - onehot) / V_c on the rows of class c, 0 off the mask."""
        dZ = None
        for a_c, cache in self._parts:
            d = ops.scale(ops.cross_entropy_backward(cache), a_c)
            dZ = d if dZ is None else ops.add_(dZ, d)
        return dZ
