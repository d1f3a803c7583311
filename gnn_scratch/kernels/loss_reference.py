"""The masked softmax cross-entropy and accuracy counts in plain NumPy (the readable truth).

Contract of the family (shared by ``loss_cpu`` and ``loss_cuda``): Z (N, C) float logits, y (N,)
int labels, mask (N,) bool or (0,) meaning every node; workspaces and outputs preallocated:
rows (N, 2), totals (2,), loss (1,) in Z's dtype (accuracy: float64, exact counts to 2^53).

    L = -(1/|M|) sum_{n in M} log softmax(Z_n)[y_n],    dZ_n = (softmax(Z_n) - onehot(y_n)) / |M|

log softmax is max-shifted (derivations/softmax_cross_entropy.md), so exp never overflows. The
host implementations check the labels of the masked rows and refuse an empty mask (ValueError);
the GPU's cannot raise without a round trip, so the trainer checks labels before moving them.
"""
import numpy as np


def _selected(Z, mask):
    return np.arange(Z.shape[0]) if mask.shape[0] == 0 else np.flatnonzero(mask)


def _check_labels(Z, y, idx):
    if idx.size == 0:
        raise ValueError("mask selects no node: the loss over an empty set is undefined")
    C = Z.shape[1]
    lo, hi = y[idx].min(), y[idx].max()
    if lo < 0 or hi >= C:
        raise ValueError(f"labels of the masked nodes must be in [0, {C}), got range [{lo}, {hi}]")


def log_softmax(Z):
    """Row-wise log-softmax, shifted by the row max so exp never overflows: (N, C) -> (N, C)."""
    m = Z.max(axis=1, keepdims=True)
    S = Z - m
    return S - np.log(np.exp(S).sum(axis=1, keepdims=True))


def cross_entropy(Z, y, mask, rows, totals, loss):
    """rows[n] = (-log p_n[y_n], 1) on masked rows, (0, 0) elsewhere; totals = column sums; loss[0] = mean."""
    idx = _selected(Z, mask)
    _check_labels(Z, y, idx)
    rows[...] = 0
    rows[idx, 0] = -log_softmax(Z[idx])[np.arange(idx.size), y[idx]]
    rows[idx, 1] = 1
    totals[...] = rows.sum(axis=0)
    loss[0] = totals[0] / totals[1]


def cross_entropy_backward(Z, y, mask, totals, dZ):
    """dZ_n = (softmax(Z_n) - onehot(y_n)) / |M| on masked rows (|M| = totals[1]), 0 elsewhere."""
    idx = _selected(Z, mask)
    _check_labels(Z, y, idx)
    P = np.exp(log_softmax(Z[idx]))
    P[np.arange(idx.size), y[idx]] -= 1.0
    dZ[...] = 0
    dZ[idx] = P / totals[1]


def accuracy_counts(Z, y, mask, rows, totals):
    """totals = (masked rows whose arg-max logit is the label, masked rows); ties: the first maximum wins."""
    idx = _selected(Z, mask)
    rows[...] = 0
    rows[idx, 0] = Z[idx].argmax(axis=1) == y[idx]
    rows[idx, 1] = 1
    totals[...] = rows.sum(axis=0)


# ------------------------------------------------------------------------------ mean squared error
# P (N, F) predictions, Y (N, F) targets, one float dtype; rows (N,) and loss (1,) of that dtype.
#     L = (1 / (N F)) sum_{n,f} (P[n,f] - Y[n,f])^2,    dP = (2 / (N F)) (P - Y)
def mse(P, Y, rows, loss):
    """rows[n] = sum_f (P[n, f] - Y[n, f])^2; loss[0] = sum(rows) / P.size (NaN for an empty P)."""
    D = P - Y
    rows[...] = np.sum(D * D, axis=1)
    loss[0] = rows.sum() / P.size if P.size else np.nan


def mse_backward(P, Y, dP):
    """dP = 2 (P - Y) / P.size."""
    dP[...] = (P - Y) * (P.dtype.type(2) / max(P.size, 1))
