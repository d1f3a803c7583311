"""Gate non-linearities of recurrent cells on the GPU (numba.cuda): the names and semantics of ``gates_reference``.

One thread per element with a grid-stride loop (``dense_cuda``'s launch helpers), arithmetic in the
arrays' dtype, no atomics.
"""
import math

from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda
from .dense_cuda import _contiguous, _flat, _flat_launch


@_jit
def _sigmoid_kernel(x, y):
    half = y.dtype.type(0.5)
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        y[k] = half * (math.tanh(half * x[k]) + 1)


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
    """y = (tanh(x / 2) + 1) / 2. x, y one shape and float dtype; y overwritten. O(size)."""
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
