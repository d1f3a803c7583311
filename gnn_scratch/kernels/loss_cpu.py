"""The masked softmax cross-entropy and accuracy counts on the host: one Numba pass over the logits each.

NumPy's version (``loss_reference``) makes about ten passes and as many temporaries (max, shift,
exp, sum, log, gather, the masked copies); on a small graph those calls cost more than the loss's
arithmetic. Each kernel here reads a row of Z once. Serial: a loss touches N x C numbers once per
step, less than a thread-pool wake-up is worth. Labels of the masked rows are checked before any
row is written (ValueError, as the reference). Contract: ``loss_reference``.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _labels_ok(y, mask, N, C):
    """-1 when every selected row has a label in [0, C) and some row is selected; -2 when none is;
    else the first selected row whose label is out of range."""
    every = mask.shape[0] == 0
    any_row = False
    for n in range(N):
        if every or mask[n]:
            any_row = True
            if y[n] < 0 or y[n] >= C:
                return n
    return -1 if any_row else -2


def _check(Z, y, mask):
    bad = _labels_ok(y, mask, Z.shape[0], Z.shape[1])
    if bad == -2:
        raise ValueError("mask selects no node: the loss over an empty set is undefined")
    if bad >= 0:
        sel = np.arange(Z.shape[0]) if mask.shape[0] == 0 else np.flatnonzero(mask)
        raise ValueError(f"labels of the masked nodes must be in [0, {Z.shape[1]}), got range "
                         f"[{y[sel].min()}, {y[sel].max()}]")


@njit(cache=True, nogil=True)
def _row_max_and_sum(Z, n):
    """(m, s): row n's largest logit and sum_c exp(Z[n, c] - m), the max-shifted softmax denominator."""
    m = Z[n, 0]
    for c in range(1, Z.shape[1]):
        m = max(m, Z[n, c])
    s = 0.0
    for c in range(Z.shape[1]):
        s += np.exp(Z[n, c] - m)
    return m, s


@njit(cache=True, nogil=True)
def _cross_entropy(Z, y, mask, rows, totals, loss):
    N, C = Z.shape
    every = mask.shape[0] == 0
    for n in range(N):
        if not (every or mask[n]):
            rows[n, 0] = 0
            rows[n, 1] = 0
            continue
        m, s = _row_max_and_sum(Z, n)
        rows[n, 0] = np.log(s) - (Z[n, y[n]] - m)          # -log softmax(Z_n)[y_n], max-shifted
        rows[n, 1] = 1
    t0 = 0.0
    t1 = 0.0
    for n in range(N):
        t0 += rows[n, 0]
        t1 += rows[n, 1]
    totals[0] = t0
    totals[1] = t1
    loss[0] = totals[0] / totals[1]


@njit(cache=True, nogil=True)
def _cross_entropy_backward(Z, y, mask, totals, dZ):
    N, C = Z.shape
    every = mask.shape[0] == 0
    scale = 1.0 / totals[1]
    for n in range(N):
        if not (every or mask[n]):
            for c in range(C):
                dZ[n, c] = 0
            continue
        m, s = _row_max_and_sum(Z, n)
        for c in range(C):
            p = np.exp(Z[n, c] - m) / s
            dZ[n, c] = ((p - 1.0) if c == y[n] else p) * scale


@njit(cache=True, nogil=True)
def _accuracy_counts(Z, y, mask, rows, totals):
    N, C = Z.shape
    every = mask.shape[0] == 0
    t0 = 0.0
    t1 = 0.0
    for n in range(N):
        rows[n, 0] = 0
        rows[n, 1] = 0
        if not (every or mask[n]):
            continue
        best = 0
        for c in range(1, C):
            if Z[n, c] > Z[n, best]:                          # ties: the first maximum wins, as np.argmax
                best = c
        rows[n, 0] = 1.0 if best == y[n] else 0.0
        rows[n, 1] = 1
        t0 += rows[n, 0]
        t1 += 1
    totals[0] = t0
    totals[1] = t1


def cross_entropy(Z, y, mask, rows, totals, loss):
    """rows[n] = (-log p_n[y_n], 1) on masked rows, (0, 0) elsewhere; totals = column sums; loss[0] = mean."""
    _check(Z, y, mask)
    _cross_entropy(Z, y, mask, rows, totals, loss)


def cross_entropy_backward(Z, y, mask, totals, dZ):
    """dZ_n = (softmax(Z_n) - onehot(y_n)) / |M| on masked rows (|M| = totals[1]), 0 elsewhere."""
    _check(Z, y, mask)
    _cross_entropy_backward(Z, y, mask, totals, dZ)


def accuracy_counts(Z, y, mask, rows, totals):
    """totals = (masked rows whose arg-max logit is the label, masked rows); ties: the first maximum wins."""
    _accuracy_counts(Z, y, mask, rows, totals)


# ------------------------------------------------------------------------------ mean squared error
@njit(cache=True, nogil=True)
def _mse(P, Y, rows, loss):
    N, F = P.shape
    total = 0.0                       # float64 whatever P's dtype: the order is fixed, so are the bits
    for n in range(N):
        s = rows.dtype.type(0)
        for f in range(F):
            d = P[n, f] - Y[n, f]
            s += d * d
        rows[n] = s
        total += s
    loss[0] = total / (N * F) if N * F else np.nan


@njit(cache=True, nogil=True)
def _mse_backward(P, Y, dP):
    N, F = P.shape
    scale = P.dtype.type(2.0 / max(N * F, 1))
    for n in range(N):
        for f in range(F):
            dP[n, f] = (P[n, f] - Y[n, f]) * scale


def mse(P, Y, rows, loss):
    """rows[n] = sum_f (P - Y)[n, f]^2, loss[0] = mean; one serial pass (the sum's order is fixed)."""
    _mse(P, Y, rows, loss)


def mse_backward(P, Y, dP):
    """dP = 2 (P - Y) / P.size, one pass."""
    _mse_backward(P, Y, dP)
