"""Gate non-linearities of recurrent cells as fused Numba kernels: one flat ``prange`` loop per op.

The GRU state and its backward read Z, H, H_tilde once and write every output in the same pass
(NumPy needs 6-10 temporaries for the same formulas). Each element is computed from its own
inputs only, so results do not depend on the thread count; small arrays run on one thread
(``threads.call_numba``). Contract: ``gates_reference``.
"""
import numpy as np
from numba import njit, prange

from ..threads import call_numba

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


def _flat(a):
    return a.reshape(-1)


@njit(**_PARALLEL)
def _sigmoid(x, y):
    half = y.dtype.type(0.5)
    for k in prange(x.size):
        y[k] = half * (np.tanh(half * x[k]) + 1)


@njit(**_PARALLEL)
def _tanh(x, y):
    for k in prange(x.size):
        y[k] = np.tanh(x[k])


@njit(**_PARALLEL)
def _sigmoid_backward(g, y, out):
    for k in prange(g.size):
        out[k] = g[k] * y[k] * (1 - y[k])


@njit(**_PARALLEL)
def _tanh_backward(g, y, out):
    for k in prange(g.size):
        out[k] = g[k] * (1 - y[k] * y[k])


@njit(**_PARALLEL)
def _gru_state(Z, H, Ht, out):
    for k in prange(Z.size):
        out[k] = Z[k] * H[k] + (1 - Z[k]) * Ht[k]


@njit(**_PARALLEL)
def _gru_state_backward(G, Z, H, Ht, dA_z, dH, dA_h):
    for k in prange(G.size):
        g, z, ht = G[k], Z[k], Ht[k]
        dA_z[k] = g * (H[k] - ht) * z * (1 - z)
        dH[k] = g * z
        dA_h[k] = g * (1 - z) * (1 - ht * ht)


def sigmoid(x, y):
    call_numba(_sigmoid, x.size, _flat(x), _flat(y))


def tanh(x, y):
    call_numba(_tanh, x.size, _flat(x), _flat(y))


def sigmoid_backward(g, y, out):
    call_numba(_sigmoid_backward, g.size, _flat(g), _flat(y), _flat(out))


def tanh_backward(g, y, out):
    call_numba(_tanh_backward, g.size, _flat(g), _flat(y), _flat(out))


def gru_state(Z, H, H_tilde, out):
    call_numba(_gru_state, Z.size, _flat(Z), _flat(H), _flat(H_tilde), _flat(out))


def gru_state_backward(G, Z, H, H_tilde, dA_z, dH, dA_h):
    call_numba(_gru_state_backward, G.size, _flat(G), _flat(Z), _flat(H), _flat(H_tilde), _flat(dA_z), _flat(dH),
               _flat(dA_h))
