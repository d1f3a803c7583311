"""Deep Graph Infomax's pieces as Numba kernels: PReLU, bilinear row scores, binary cross-entropy with logits.

Contract: ``dgi_reference``. Every output entry is written by one iteration of a ``prange`` loop and every
sum runs in a fixed order, so the results do not depend on the thread count (small arrays run on one
thread, ``threads.call_numba``):

* ``prelu`` is row-parallel;
* ``prelu_backward`` is parallel over fixed chunks of ``CHUNK_ROWS`` rows: a chunk writes its rows of dx
  and its partial slope sums, row by row; the partials are then added in chunk order (and, for a shared
  slope, the channels in order);
* ``bilinear_rows`` and its backward are row-parallel (row n owns y[n], dx1[n], dT[n]);
* ``bce_with_logits`` is one serial pass accumulating in float64 (M = 2N scores: no pool is worth waking).
"""
import numpy as np
from numba import njit, prange

from ..threads import call_numba
from .dgi_reference import CHUNK_ROWS

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


@njit(**_PARALLEL)
def _prelu(x, a, y):
    N, F = x.shape
    shared = a.shape[0] == 1
    for n in prange(N):
        for f in range(F):
            v = x[n, f]
            y[n, f] = v if v > 0 else a[0 if shared else f] * v


@njit(**_PARALLEL)
def _prelu_backward(G, x, a, dx, part, R):
    N, F = x.shape
    shared = a.shape[0] == 1
    zero, one = x.dtype.type(0), x.dtype.type(1)
    for k in prange(part.shape[0]):
        acc = part[k]
        acc[:] = 0
        for n in range(k * R, min(N, k * R + R)):
            for f in range(F):
                v, g = x[n, f], G[n, f]
                neg = v <= zero
                dx[n, f] = g * ((a[0] if shared else a[f]) if neg else one)
                acc[f] += g * v if neg else zero


@njit(cache=True, nogil=True)
def _sum_chunks(part, da):
    K, F = part.shape
    shared = da.shape[0] == 1
    total = part.dtype.type(0)
    for f in range(F):
        s = part.dtype.type(0)
        for k in range(K):
            s += part[k, f]
        if shared:
            total += s
        else:
            da[f] = s
    if shared:
        da[0] = total


@njit(**_PARALLEL)
def _bilinear_rows(x1, T, y):
    N, O, I = T.shape
    for n in prange(N):
        for o in range(O):
            s = y.dtype.type(0)
            for i in range(I):
                s += x1[n, i] * T[n, o, i]
            y[n, o] = s


@njit(**_PARALLEL)
def _bilinear_rows_backward(G, x1, T, dx1, dT):
    N, O, I = T.shape
    for n in prange(N):
        for i in range(I):
            dx1[n, i] = 0
        for o in range(O):
            g = G[n, o]
            for i in range(I):
                dx1[n, i] += g * T[n, o, i]
                dT[n, o, i] = g * x1[n, i]


@njit(cache=True, nogil=True)
def _bce_with_logits(z, t, rows, loss):
    total = 0.0                       # float64 whatever z's dtype: the order is fixed, so are the bits
    zero = z.dtype.type(0)
    for m in range(z.shape[0]):
        v = z[m]
        r = (v if v > zero else zero) - v * t[m] + np.log1p(np.exp(-abs(v)))
        rows[m] = r
        total += r
    loss[0] = total / z.shape[0] if z.shape[0] else np.nan


@njit(cache=True, nogil=True)
def _bce_with_logits_backward(z, t, dz):
    one = z.dtype.type(1)
    scale = z.dtype.type(1.0 / max(z.shape[0], 1))
    for m in range(z.shape[0]):
        v = z[m]
        e = np.exp(-abs(v))
        sig = (one if v >= 0 else e) / (one + e)
        dz[m] = (sig - t[m]) * scale


def _flat(a):
    return a.reshape(-1)


def prelu(x, a, y):
    call_numba(_prelu, x.size, x, a, y)


def prelu_backward(G, x, a, dx, part, da):
    call_numba(_prelu_backward, x.size, G, x, a, dx, part, CHUNK_ROWS)
    _sum_chunks(part, da)


def bilinear_rows(x1, T, y):
    call_numba(_bilinear_rows, T.size, x1, T, y)


def bilinear_rows_backward(G, x1, T, dx1, dT):
    call_numba(_bilinear_rows_backward, T.size, G, x1, T, dx1, dT)


def bce_with_logits(z, t, rows, loss):
    _bce_with_logits(_flat(z), _flat(t), _flat(rows), loss)


def bce_with_logits_backward(z, t, dz):
    _bce_with_logits_backward(_flat(z), _flat(t), _flat(dz))
