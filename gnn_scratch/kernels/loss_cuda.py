"""The masked softmax cross-entropy, its backward and accuracy counts on the GPU (numba.cuda).

One thread per row, then ``col_sum``'s deterministic tree for the totals: no atomics.
"""
import math

import numpy as np

from .dense_cuda import _flat_launch, col_sum  # the launch helper and the deterministic column sum
from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda


# ================================================================== masked softmax cross-entropy
@_jit
def _xent_rows_kernel(Z, y, mask, rows):
    C = Z.shape[1]
    zero = rows.dtype.type(0)
    use_mask = mask.shape[0] > 0
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        if use_mask and not mask[i]:
            rows[i, 0] = zero
            rows[i, 1] = zero
            continue
        m = Z[i, 0]
        for c in range(1, C):
            m = max(m, Z[i, c])
        s = zero
        for c in range(C):
            s += math.exp(Z[i, c] - m)
        rows[i, 0] = -((Z[i, y[i]] - m) - math.log(s))      # -log softmax(Z_i)[y_i], max-shifted
        rows[i, 1] = rows.dtype.type(1)


@_jit
def _divide_kernel(totals, out):
    if cuda.grid(1) == 0:
        out[0] = totals[0] / totals[1]


@_jit
def _xent_backward_kernel(Z, y, mask, totals, dZ):
    C = Z.shape[1]
    zero = dZ.dtype.type(0)
    one = dZ.dtype.type(1)
    count = totals[1]
    use_mask = mask.shape[0] > 0
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        if use_mask and not mask[i]:
            for c in range(C):
                dZ[i, c] = zero
            continue
        m = Z[i, 0]
        for c in range(1, C):
            m = max(m, Z[i, c])
        s = zero
        for c in range(C):
            s += math.exp(Z[i, c] - m)
        log_s = math.log(s)
        for c in range(C):
            p = math.exp((Z[i, c] - m) - log_s)
            if c == y[i]:
                p -= one
            dZ[i, c] = p / count


def _check_xent(Z, y, mask):
    _check("Z", Z, (None, None))
    _check("y", y, (Z.shape[0],), kind="iu")
    if mask.shape[0] not in (0, Z.shape[0]):
        raise ValueError(f"mask must have shape ({Z.shape[0]},) or (0,) for every node, got {tuple(mask.shape)}")
    _check("mask", mask, (None,), dtype=np.bool_)
    _check_float(("Z", Z),)
    if Z.shape[1] == 0:
        raise ValueError("Z must have at least one class column")


def cross_entropy(Z, y, mask, rows, totals, loss):
    """Masked mean cross-entropy L = -(1/|M|) sum_{n in M} log softmax(Z_n)[y_n].

    Z (N, C) logits, y (N,) int labels (valid on the masked rows: checked on the host, not here),
    mask (N,) bool or (0,) for every node; workspace rows (N, 2), totals (2,) and loss (1,) of Z's
    dtype, all overwritten: rows[n] = (-log p_n[y_n], 1) on masked rows and (0, 0) elsewhere,
    totals = (sum of the losses, |M|), loss[0] = totals[0] / totals[1] (NaN for an empty mask:
    raising would need a host round trip). O(N C) work.
    Launch: one thread per row (max, sum of exps, the label's log-probability), then ``col_sum``
    for the two totals, then one thread divides. No atomics, deterministic.
    """
    require_cuda()
    Z, y, mask, rows, totals, loss = _device(Z=Z, y=y, mask=mask, rows=rows, totals=totals, loss=loss)
    _check_xent(Z, y, mask)
    _check("rows", rows, (Z.shape[0], 2), dtype=Z.dtype)
    _check("totals", totals, (2,), dtype=Z.dtype)
    _check("loss", loss, (1,), dtype=Z.dtype)
    _launch(_xent_rows_kernel, _flat_launch(Z.shape[0]), Z, y, mask, rows)
    col_sum(rows, totals)
    _divide_kernel[1, 1](totals, loss)


def cross_entropy_backward(Z, y, mask, totals, dZ):
    """dZ_n = (softmax(Z_n) - onehot(y_n)) / |M| for n in M, 0 elsewhere (|M| = totals[1] from the forward).

    Z, dZ (N, C) one float dtype, y (N,) int, mask (N,) bool or (0,), totals (2,). dZ overwritten.
    O(N C) work. Launch: one thread per row recomputing the softmax; no atomics.
    """
    require_cuda()
    Z, y, mask, totals, dZ = _device(Z=Z, y=y, mask=mask, totals=totals, dZ=dZ)
    _check_xent(Z, y, mask)
    _check("totals", totals, (2,), dtype=Z.dtype)
    _check("dZ", dZ, Z.shape, dtype=Z.dtype)
    _launch(_xent_backward_kernel, _flat_launch(Z.shape[0]), Z, y, mask, totals, dZ)


@_jit
def _accuracy_rows_kernel(Z, y, mask, rows):
    C = Z.shape[1]
    use_mask = mask.shape[0] > 0
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        if use_mask and not mask[i]:
            rows[i, 0] = 0.0
            rows[i, 1] = 0.0
            continue
        best = 0
        for c in range(1, C):
            if Z[i, c] > Z[i, best]:          # strict: the first maximum wins, as np.argmax
                best = c
        rows[i, 0] = 1.0 if best == y[i] else 0.0
        rows[i, 1] = 1.0


def accuracy_counts(Z, y, mask, rows, totals):
    """totals = (number of masked rows whose arg-max logit is the label, number of masked rows).

    Z (N, C) float, y (N,) int, mask (N,) bool or (0,) for every node; workspace rows (N, 2) and
    totals (2,) float64 (exact counts up to 2^53), overwritten. Ties: the first maximum wins, as
    ``np.argmax``. O(N C). Launch: one thread per row, then ``col_sum``; no atomics.
    """
    require_cuda()
    Z, y, mask, rows, totals = _device(Z=Z, y=y, mask=mask, rows=rows, totals=totals)
    _check_xent(Z, y, mask)
    _check("rows", rows, (Z.shape[0], 2), dtype=np.float64)
    _check("totals", totals, (2,), dtype=np.float64)
    _launch(_accuracy_rows_kernel, _flat_launch(Z.shape[0]), Z, y, mask, rows)
    col_sum(rows, totals)



# ============================================================================== mean squared error
@_jit
def _mse_rows_kernel(P, Y, rows):
    for n in range(cuda.grid(1), P.shape[0], cuda.gridsize(1)):
        s = rows.dtype.type(0)
        for f in range(P.shape[1]):
            d = P[n, f] - Y[n, f]
            s += d * d
        rows[n] = s


@_jit
def _mean_kernel(total, size, out):
    if cuda.grid(1) == 0:
        out[0] = total[0] / size


@_jit
def _mse_backward_kernel(P, Y, scale, dP):
    F = P.shape[1]
    for k in range(cuda.grid(1), P.shape[0] * F, cuda.gridsize(1)):
        n, f = k // F, k % F
        dP[n, f] = (P[n, f] - Y[n, f]) * scale


def _check_mse(P, Y):
    _check("P", P, (None, None))
    _check("Y", Y, P.shape)
    _check_float(("P", P), ("Y", Y))


def mse(P, Y, rows, loss):
    """L = sum_{n,f} (P - Y)^2 / (N F): P, Y (N, F) one float dtype; rows (N,), loss (1,) overwritten.

    Launch: one thread per row for rows[n], then ``col_sum``'s fixed-order tree over rows (as an (N, 1)
    matrix), then one thread divides. No atomics, deterministic. An empty P gives NaN.
    """
    require_cuda()
    P, Y, rows, loss = _device(P=P, Y=Y, rows=rows, loss=loss)
    _check_mse(P, Y)
    _check("rows", rows, (P.shape[0],), dtype=P.dtype)
    _check("loss", loss, (1,), dtype=P.dtype)
    _launch(_mse_rows_kernel, _flat_launch(P.shape[0]), P, Y, rows)
    total = cuda.device_array(1, dtype=P.dtype)
    col_sum(rows.reshape(P.shape[0], 1), total)
    _mean_kernel[1, 1](total, P.dtype.type(P.size) if P.size else P.dtype.type(np.nan), loss)


def mse_backward(P, Y, dP):
    """dP = 2 (P - Y) / P.size; P, Y, dP (N, F) one float dtype. One thread per element."""
    require_cuda()
    P, Y, dP = _device(P=P, Y=Y, dP=dP)
    _check_mse(P, Y)
    _check("dP", dP, P.shape, dtype=P.dtype)
    _launch(_mse_backward_kernel, _flat_launch(P.size), P, Y, P.dtype.type(2.0 / max(P.size, 1)), dP)
