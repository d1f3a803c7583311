"""Pieces of the graph transformers as Numba kernels: the names and semantics of ``transformer_reference``.

Every kernel gives each row to one ``prange`` task (its statistics, then its writes, in column
order), so no two tasks write the same element and the sums do not depend on the thread count.
Small arrays run on one thread (``threads.call_numba``).
"""
import numpy as np
from numba import njit, prange

from ..threads import call_numba

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


@njit(**_PARALLEL)
def _scale(x, a, out):
    for k in prange(x.size):
        out[k] = a * x[k]


@njit(**_PARALLEL)
def _layer_norm(x, gamma, beta, eps, out, xhat, rstd):
    N, F = x.shape
    for n in prange(N):
        mu = x.dtype.type(0)
        for f in range(F):
            mu += x[n, f]
        mu /= F
        var = x.dtype.type(0)
        for f in range(F):
            d = x[n, f] - mu
            var += d * d
        var /= F
        r = 1 / np.sqrt(var + eps)
        rstd[n] = r
        for f in range(F):
            xh = (x[n, f] - mu) * r
            xhat[n, f] = xh
            out[n, f] = xh * gamma[f] + beta[f]


@njit(**_PARALLEL)
def _layer_norm_backward(G, xhat, rstd, gamma, dx):
    N, F = G.shape
    for n in prange(N):
        m1 = G.dtype.type(0)
        m2 = G.dtype.type(0)
        for f in range(F):
            g = G[n, f] * gamma[f]
            m1 += g
            m2 += g * xhat[n, f]
        m1 /= F
        m2 /= F
        for f in range(F):
            dx[n, f] = rstd[n] * (G[n, f] * gamma[f] - m1 - xhat[n, f] * m2)


@njit(**_PARALLEL)
def _beta_gate(out, xr, w, y, b):
    N, D = out.shape
    for n in prange(N):
        s = out.dtype.type(0)
        for f in range(D):
            s += out[n, f] * w[f] + xr[n, f] * w[D + f] + (out[n, f] - xr[n, f]) * w[2 * D + f]
        if s >= 0:
            bn = 1 / (1 + np.exp(-s))
        else:
            e = np.exp(s)
            bn = e / (1 + e)
        b[n] = bn
        for f in range(D):
            y[n, f] = bn * xr[n, f] + (1 - bn) * out[n, f]


@njit(**_PARALLEL)
def _beta_gate_backward(G, out, xr, b, w, d_out, d_xr, dz):
    N, D = out.shape
    for n in prange(N):
        s = G.dtype.type(0)
        for f in range(D):
            s += G[n, f] * (xr[n, f] - out[n, f])
        bn = b[n]
        z = bn * (1 - bn) * s
        dz[n] = z
        for f in range(D):
            d_out[n, f] = G[n, f] * (1 - bn) + z * (w[f] + w[2 * D + f])
            d_xr[n, f] = G[n, f] * bn + z * (w[D + f] - w[2 * D + f])


def scale(x, a, out):
    call_numba(_scale, x.size, x.reshape(-1), x.dtype.type(a), out.reshape(-1))


def layer_norm(x, gamma, beta, eps, out, xhat, rstd):
    call_numba(_layer_norm, x.size, x, gamma, beta, x.dtype.type(eps), out, xhat, rstd)


def layer_norm_backward(G, xhat, rstd, gamma, dx):
    call_numba(_layer_norm_backward, G.size, G, xhat, rstd, gamma, dx)


def beta_gate(out, xr, w, y, b):
    call_numba(_beta_gate, out.size, out, xr, w, y, b)


def beta_gate_backward(G, out, xr, b, w, d_out, d_xr, dz):
    call_numba(_beta_gate_backward, G.size, G, out, xr, b, w, d_out, d_xr, dz)
