"""Gate non-linearities of recurrent cells on the GPU (numba.cuda): the names and semantics of ``gates_reference``.

One thread per element with a grid-stride loop (``dense_cuda``'s launch helpers), arithmetic in the
arrays' dtype, no atomics.
"""
import math

from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda
from .dense_cuda import _contiguous, _flat, _flat_launch


# sigma(v) is written out in each kernel (a device function would need numba-cuda at import):
#     e = exp(-|v|) <= 1 (never overflows);  sigma = 1 / (1 + e) if v >= 0 else e / (1 + e)
@_jit
def _sigmoid_kernel(x, y):
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[k]
        e = math.exp(-abs(v))
        y[k] = 1 / (1 + e) if v >= 0 else e / (1 + e)


@_jit
def _tanh_kernel(x, y):
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        y[k] = math.tanh(x[k])


@_jit
def _sigmoid_backward_kernel(g, y, out):
    for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        out[k] = g[k] * y[k] * (1 - y[k])


@_jit
def _tanh_backward_kernel(g, y, out):
    for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        out[k] = g[k] * (1 - y[k] * y[k])


@_jit
def _gru_state_kernel(Z, H, Ht, out):
    for k in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        out[k] = Z[k] * H[k] + (1 - Z[k]) * Ht[k]


@_jit
def _gru_state_backward_kernel(G, Z, H, Ht, dA_z, dH, dA_h):
    for k in range(cuda.grid(1), G.shape[0], cuda.gridsize(1)):
        g, z, ht = G[k], Z[k], Ht[k]
        dA_z[k] = g * (H[k] - ht) * z * (1 - z)
        dH[k] = g * z
        dA_h[k] = g * (1 - z) * (1 - ht * ht)


# ------------------------------------------------------------------------------------ the LSTM (GConvLSTM)
# (N, F) arrays flattened, one-row vectors w, b of F entries: element k is in column k % F.
@_jit
def _lstm_gate_kernel(A, w, C, b, y):
    F = w.shape[0]
    for k in range(cuda.grid(1), A.shape[0], cuda.gridsize(1)):
        f = k % F
        v = A[k] + w[f] * C[k] + b[f]
        e = math.exp(-abs(v))
        y[k] = 1 / (1 + e) if v >= 0 else e / (1 + e)


@_jit
def _lstm_state_kernel(I, Fg, A_c, b_c, C, A_o, w_o, b_o, T, C_new, O, H_new):
    F = b_c.shape[0]
    for k in range(cuda.grid(1), I.shape[0], cuda.gridsize(1)):
        f = k % F
        t = math.tanh(A_c[k] + b_c[f])
        c = Fg[k] * C[k] + I[k] * t
        v = A_o[k] + w_o[f] * c + b_o[f]
        e = math.exp(-abs(v))
        o = 1 / (1 + e) if v >= 0 else e / (1 + e)
        T[k] = t
        C_new[k] = c
        O[k] = o
        H_new[k] = o * math.tanh(c)


@_jit
def _lstm_state_backward_kernel(G_H, G_C, I, Fg, T, C, O, C_new, w_i, w_f, w_o, dA_i, dA_f, dA_c, dA_o, dC):
    F = w_i.shape[0]
    for k in range(cuda.grid(1), G_H.shape[0], cuda.gridsize(1)):
        f = k % F
        gh, i, fg, t, o = G_H[k], I[k], Fg[k], T[k], O[k]
        tc = math.tanh(C_new[k])
        da_o = gh * tc * o * (1 - o)
        dcn = G_C[k] + gh * o * (1 - tc * tc) + w_o[f] * da_o
        da_i = dcn * t * i * (1 - i)
        da_f = dcn * C[k] * fg * (1 - fg)
        dA_o[k] = da_o
        dA_i[k] = da_i
        dA_f[k] = da_f
        dA_c[k] = dcn * i * (1 - t * t)
        dC[k] = dcn * fg + w_i[f] * da_i + w_f[f] * da_f


def _elementwise(kernel, **arrays):
    """Check that ``arrays`` (device copies made here) share the first one's shape and float dtype; launch."""
    require_cuda()
    arrays = dict(zip(arrays, _device(**arrays)))
    first = next(iter(arrays.values()))
    for name, a in arrays.items():
        _check(name, a, first.shape)
    _check_float(*arrays.items())
    _contiguous(**arrays)
    _launch(kernel, _flat_launch(first.size), *(_flat(a) for a in arrays.values()))


def sigmoid(x, y):
    """y = 1 / (1 + e^-x) from e = exp(-|x|) (no overflow). x, y one shape and float dtype; y overwritten. O(size)."""
    _elementwise(_sigmoid_kernel, x=x, y=y)


def tanh(x, y):
    """y = tanh(x). O(size)."""
    _elementwise(_tanh_kernel, x=x, y=y)


def sigmoid_backward(g, y, out):
    """out = g y (1 - y) with y the sigmoid's output. O(size)."""
    _elementwise(_sigmoid_backward_kernel, g=g, y=y, out=out)


def tanh_backward(g, y, out):
    """out = g (1 - y^2) with y the tanh's output. O(size)."""
    _elementwise(_tanh_backward_kernel, g=g, y=y, out=out)


def gru_state(Z, H, H_tilde, out):
    """out = Z H + (1 - Z) H_tilde. O(size)."""
    _elementwise(_gru_state_kernel, Z=Z, H=H, H_tilde=H_tilde, out=out)


def gru_state_backward(G, Z, H, H_tilde, dA_z, dH, dA_h):
    """dA_z = G (H - H_tilde) Z (1 - Z), dH = G Z, dA_h = G (1 - Z)(1 - H_tilde^2). O(size)."""
    _elementwise(_gru_state_backward_kernel, G=G, Z=Z, H=H, H_tilde=H_tilde, dA_z=dA_z, dH=dH, dA_h=dA_h)


def _rows_and_vectors(arrays, vectors):
    """Check (N, F) ``arrays`` of one shape and one-row ``vectors`` of F entries ((F,) or (1, F)), all of one
    float dtype and C-contiguous; return them as flat device arrays (a dict, in order) and the element count."""
    require_cuda()
    arrays = dict(zip(arrays, _device(**arrays)))
    vectors = dict(zip(vectors, _device(**vectors)))
    first = next(iter(arrays.values()))
    for name, a in arrays.items():
        _check(name, a, first.shape)
    n_cols = first.shape[first.ndim - 1]              # (the simulator's shape tuple takes no negative index)
    for name, v in vectors.items():
        if v.size != n_cols:
            raise ValueError(f"{name} must hold one row of {n_cols} entries, got shape {tuple(v.shape)}")
    _check_float(*arrays.items(), *vectors.items())
    _contiguous(**arrays, **vectors)
    return {k: _flat(v) for k, v in {**arrays, **vectors}.items()}, first.size


def lstm_gate(A, w, C, b, y):
    """y = sigma(A + w C + b), w and b one row broadcast over A's rows. O(size)."""
    a, n = _rows_and_vectors(dict(A=A, C=C, y=y), dict(w=w, b=b))
    _launch(_lstm_gate_kernel, _flat_launch(n), a["A"], a["w"], a["C"], a["b"], a["y"])


def lstm_state(I, F, A_c, b_c, C, A_o, w_o, b_o, T, C_new, O, H_new):
    """T = tanh(A_c + b_c), C_new = F C + I T, O = sigma(A_o + w_o C_new + b_o), H_new = O tanh(C_new). O(size)."""
    a, n = _rows_and_vectors(dict(I=I, F=F, A_c=A_c, C=C, A_o=A_o, T=T, C_new=C_new, O=O, H_new=H_new),
                             dict(b_c=b_c, w_o=w_o, b_o=b_o))
    _launch(_lstm_state_kernel, _flat_launch(n), a["I"], a["F"], a["A_c"], a["b_c"], a["C"], a["A_o"], a["w_o"],
            a["b_o"], a["T"], a["C_new"], a["O"], a["H_new"])


def lstm_state_backward(G_H, G_C, I, F, T, C, O, C_new, w_i, w_f, w_o, dA_i, dA_f, dA_c, dA_o, dC):
    """The LSTM state's backward (``gates_reference.lstm_state_backward``). O(size)."""
    a, n = _rows_and_vectors(dict(G_H=G_H, G_C=G_C, I=I, F=F, T=T, C=C, O=O, C_new=C_new, dA_i=dA_i, dA_f=dA_f,
                                  dA_c=dA_c, dA_o=dA_o, dC=dC), dict(w_i=w_i, w_f=w_f, w_o=w_o))
    _launch(_lstm_state_backward_kernel, _flat_launch(n), a["G_H"], a["G_C"], a["I"], a["F"], a["T"], a["C"],
            a["O"], a["C_new"], a["w_i"], a["w_f"], a["w_o"], a["dA_i"], a["dA_f"], a["dA_c"], a["dA_o"], a["dC"])
