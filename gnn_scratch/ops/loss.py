"""The masked softmax cross-entropy and accuracy (derivations/softmax_cross_entropy.md).

The loss is a 0-d array on the logits' device (``device.item`` reads it), so a training step on
the GPU never waits for the host.
"""
import numpy as np

from ..device import empty, empty_like, to_host
from ..kernels.registry import run


def _mask(mask, Z):
    """The mask as the kernels take it: (N,) bool, or a (0,) array meaning every node."""
    return empty((0,), np.bool_, like=Z) if mask is None else mask


def cross_entropy(Z, y, mask=None):
    """(loss, cache): L = -(1/|M|) sum_{n in M} log softmax(Z_n)[y_n], a 0-d array of Z's dtype.

    Z (N, C) float, y (N,) int, mask (N,) bool or None for every node. On the host, labels out of
    [0, C) on the masked rows and an empty mask raise ValueError.
    """
    mask = _mask(mask, Z)
    rows = empty((Z.shape[0], 2), Z.dtype, like=Z)
    totals = empty((2,), Z.dtype, like=Z)
    loss = empty((1,), Z.dtype, like=Z)
    run("cross_entropy", Z.size, Z, y, mask, rows, totals, loss)
    return loss.reshape(()), (Z, y, mask, totals)


def cross_entropy_backward(cache):
    """dL/dZ from ``cross_entropy``'s cache: (softmax - onehot) / |M| on the masked rows, 0 elsewhere."""
    Z, y, mask, totals = cache
    dZ = empty_like(Z)
    run("cross_entropy_backward", Z.size, Z, y, mask, totals, dZ)
    return dZ


def accuracy(Z, y, mask=None):
    """Fraction of the masked nodes whose arg-max logit is their label (NaN for an empty mask).

    Ties: the first maximum wins, as ``np.argmax``. Counted where Z lives; two numbers come back.
    """
    mask = _mask(mask, Z)
    rows = empty((Z.shape[0], 2), np.float64, like=Z)
    totals = empty((2,), np.float64, like=Z)
    run("accuracy_counts", Z.size, Z, y, mask, rows, totals)

    correct, count = to_host(totals)
    return float(correct / count) if count else float("nan")
