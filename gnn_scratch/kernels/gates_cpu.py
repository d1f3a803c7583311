"""Gate non-linearities of recurrent cells as fused Numba kernels: one flat ``prange`` loop per op.

The GRU state, the LSTM state (``lstm_state``: the candidate, the new cell state, the output gate and
the output) and their backwards read their inputs once and write every output in the same pass
(NumPy needs 6-10 temporaries for the same formulas). Each element is computed from its own
inputs only, so results do not depend on the thread count; small arrays run on one thread
(``threads.call_numba``). Contract: ``gates_reference``.

Numba's tanh is glibc's scalar one here (no SVML): ~40 ns an element, 25x the rest of a gate. So
sigma and tanh are written with one ``exp`` of a non-positive argument (it never overflows), in a
branch-free form that LLVM vectorises (~2 ns an element):
    sigma(v) = 1 / (1 + e) if v >= 0 else e / (1 + e),   e = exp(-|v|)   (relative error ~1 ulp)
    tanh(v)  = sign(v) (1 - e) / (1 + e),                 e = exp(-2|v|)  (absolute error ~1 ulp of 1:
               near 0 that is a larger relative error, 5e-4 in float32 at |v| ~ 1e-4, 1e-12 in float64)
"""
import math

from numba import njit, prange

from ..threads import call_numba

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


def _flat(a):
    return a.reshape(-1)


# ``one`` is 1 in the arrays' dtype: a Python 1 would promote float32 arithmetic to float64
@njit(inline="always", cache=True)
def _sig(v, one):
    e = math.exp(-abs(v))
    r = one / (one + e)
    return r if v >= 0 else e * r


@njit(inline="always", cache=True)
def _th(v, one):
    e = math.exp(-(one + one) * abs(v))
    return math.copysign((one - e) / (one + e), v)


@njit(**_PARALLEL)
def _sigmoid(x, y):
    one = y.dtype.type(1)
    for k in prange(x.size):
        y[k] = _sig(x[k], one)


@njit(**_PARALLEL)
def _tanh(x, y):
    one = y.dtype.type(1)
    for k in prange(x.size):
        y[k] = _th(x[k], one)


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


# ------------------------------------------------------------------------------------ the LSTM (GConvLSTM)
# (N, F) arrays and one-row vectors w, b of F entries: rows in parallel, so each thread owns its rows.
@njit(**_PARALLEL)
def _lstm_gate(A, w, C, b, y):
    one = y.dtype.type(1)
    for n in prange(A.shape[0]):
        for f in range(A.shape[1]):
            y[n, f] = _sig(A[n, f] + w[f] * C[n, f] + b[f], one)


@njit(**_PARALLEL)
def _lstm_state(I, F, A_c, b_c, C, A_o, w_o, b_o, T, C_new, O, H_new):
    one = T.dtype.type(1)
    for n in prange(I.shape[0]):
        for f in range(I.shape[1]):
            t = _th(A_c[n, f] + b_c[f], one)
            c = F[n, f] * C[n, f] + I[n, f] * t
            o = _sig(A_o[n, f] + w_o[f] * c + b_o[f], one)
            T[n, f], C_new[n, f], O[n, f] = t, c, o
            H_new[n, f] = o * _th(c, one)


@njit(**_PARALLEL)
def _lstm_state_backward(G_H, G_C, I, F, T, C, O, C_new, w_i, w_f, w_o, dA_i, dA_f, dA_c, dA_o, dC):
    for n in prange(G_H.shape[0]):
        for f in range(G_H.shape[1]):
            gh, i, fg, t, o = G_H[n, f], I[n, f], F[n, f], T[n, f], O[n, f]
            tc = _th(C_new[n, f], G_H.dtype.type(1))
            da_o = gh * tc * o * (1 - o)
            dcn = G_C[n, f] + gh * o * (1 - tc * tc) + w_o[f] * da_o
            da_i = dcn * t * i * (1 - i)
            da_f = dcn * C[n, f] * fg * (1 - fg)
            dA_o[n, f], dA_i[n, f], dA_f[n, f] = da_o, da_i, da_f
            dA_c[n, f] = dcn * i * (1 - t * t)
            dC[n, f] = dcn * fg + w_i[f] * da_i + w_f[f] * da_f


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


def lstm_gate(A, w, C, b, y):
    call_numba(_lstm_gate, A.size, A, _flat(w), C, _flat(b), y)


def lstm_state(I, F, A_c, b_c, C, A_o, w_o, b_o, T, C_new, O, H_new):
    call_numba(_lstm_state, I.size, I, F, A_c, _flat(b_c), C, A_o, _flat(w_o), _flat(b_o), T, C_new, O, H_new)


def lstm_state_backward(G_H, G_C, I, F, T, C, O, C_new, w_i, w_f, w_o, dA_i, dA_f, dA_c, dA_o, dC):
    call_numba(_lstm_state_backward, G_H.size, G_H, G_C, I, F, T, C, O, C_new, _flat(w_i), _flat(w_f), _flat(w_o),
               dA_i, dA_f, dA_c, dA_o, dC)
