"""The masked softmax cross-entropy and accuracy (derivations/softmax_cross_entropy.md).

The loss is a 0-d array on the logits' device (``device.item`` reads it), so a training step on
the GPU never waits for the host.
"""
import numpy as np

from ..device import empty, empty_like, to_host
from ..kernels.registry import run
from .checks import dense, one_float, shape


def _checked(op, Z, y, mask):
    """(y, mask) as the kernels take them, after the checks a kernel cannot make: Z (N, C) float,
    y (N,) int, mask (N,) bool (None: every node, passed on as a (0,) array)."""
    shape(op, "Z", dense(op, "Z", Z), "N", "C")
    one_float(op, Z=Z)
    shape(op, "y", y, Z.shape[0])
    if getattr(y, "dtype", np.dtype(float)).kind not in "iu":
        raise TypeError(f"ops.{op}: y must hold integer class ids, got dtype {y.dtype}")
    if mask is None:
        return y, empty((0,), np.bool_, like=Z)
    shape(op, "mask", mask, Z.shape[0])
    if mask.dtype != np.bool_:
        raise TypeError(f"ops.{op}: mask must be a bool array, got dtype {mask.dtype}")
    return y, mask


def cross_entropy(Z, y, mask=None):
    """(loss, cache): L = -(1/|M|) sum_{n in M} log softmax(Z_n)[y_n], a 0-d array of Z's dtype.

    Z (N, C) float, y (N,) int, mask (N,) bool or None for every node. On the host, labels out of
    [0, C) on the masked rows and an empty mask raise ValueError.
    """
    y, mask = _checked("cross_entropy", Z, y, mask)
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
    y, mask = _checked("accuracy", Z, y, mask)
    rows = empty((Z.shape[0], 2), np.float64, like=Z)
    totals = empty((2,), np.float64, like=Z)
    run("accuracy_counts", Z.size, Z, y, mask, rows, totals)

    correct, count = to_host(totals)
    return float(correct / count) if count else float("nan")


def mse(P, Y):
    """(loss, cache): L = (1 / (N F)) sum_{n,f} (P[n,f] - Y[n,f])^2, a 0-d array of P's dtype (derivations/mse.md).

    P, Y (N, F) float of one dtype (a (N,) pair is read as (N, 1)). ValueError for shapes that differ
    (no broadcasting: an (N, 1) prediction against (N,) targets would silently compare every pair).
    """
    P2, Y2 = (a.reshape(-1, 1) if getattr(a, "ndim", 2) == 1 else a for a in (P, Y))
    shape("mse", "P", dense("mse", "P", P2), "N", "F")
    if tuple(Y2.shape) != tuple(P2.shape) or tuple(P.shape) != tuple(Y.shape):
        raise ValueError(f"ops.mse: Y must have the shape of P {tuple(P.shape)}, got {tuple(Y.shape)} "
                         f"(no broadcasting)")
    one_float("mse", P=P2, Y=dense("mse", "Y", Y2))
    rows = empty((P2.shape[0],), P2.dtype, like=P2)
    loss = empty((1,), P2.dtype, like=P2)
    run("mse", P2.size, P2, Y2, rows, loss)
    return loss.reshape(()), (P2, Y2, P.shape)


def mse_backward(cache):
    """dL/dP = 2 (P - Y) / P.size, in P's shape, from ``mse``'s cache."""
    P2, Y2, shape_ = cache
    dP = empty_like(P2)
    run("mse_backward", P2.size, P2, Y2, dP)
    return dP.reshape(shape_)
