"""Pieces of attention over time on the GPU (numba.cuda): the names and semantics of ``temporal_reference``.

``row_softmax`` and its backward use one thread per row (an attention vector over P periods is one
short row: the passes of ``edge_softmax``'s kernel, in column order); the window transposes one
thread per element with a grid-stride loop. Arithmetic in the arrays' dtype, no atomics.
"""
import math

from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda
from .dense_cuda import _contiguous, _flat_launch


@_jit
def _row_softmax_kernel(x, out):
    C = x.shape[1]
    for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        m = x[r, 0]
        for c in range(1, C):
            m = max(m, x[r, c])
        s = out.dtype.type(0)
        for c in range(C):
            e = math.exp(x[r, c] - m)
            out[r, c] = e
            s += e
        for c in range(C):
            out[r, c] /= s


@_jit
def _row_softmax_backward_kernel(p, g, out):
    C = p.shape[1]
    for r in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        s = out.dtype.type(0)
        for c in range(C):
            s += p[r, c] * g[r, c]
        for c in range(C):
            out[r, c] = p[r, c] * (g[r, c] - s)


@_jit
def _periods_first_kernel(X, out):
    N, F, P = X.shape
    for k in range(cuda.grid(1), P * N * F, cuda.gridsize(1)):    # k indexes out (P, N, F) in memory order
        p = k // (N * F)
        n = (k // F) % N
        f = k % F
        out[p, n, f] = X[n, f, p]


@_jit
def _periods_last_kernel(Xs, out):
    P, N, F = Xs.shape
    for k in range(cuda.grid(1), N * F * P, cuda.gridsize(1)):    # k indexes out (N, F, P) in memory order
        n = k // (F * P)
        f = (k // P) % F
        p = k % P
        out[n, f, p] = Xs[p, n, f]


def _checked(shape_of_out, **arrays):
    """The arrays as device arrays, checked: the first one 2-D or 3-D, the last (out) of ``shape_of_out(first)``."""
    require_cuda()
    arrays = dict(zip(arrays, _device(**arrays)))
    names = list(arrays)
    first = arrays[names[0]]
    for name in names[1:-1]:
        _check(name, arrays[name], first.shape)
    _check(names[-1], arrays[names[-1]], shape_of_out(first.shape))
    _check_float(*arrays.items())
    _contiguous(**arrays)
    return list(arrays.values())


def row_softmax(x, out):
    """out[r] = softmax(x[r]), shifted by the row max. x, out (R, C); out overwritten. O(R C).
    Launch: one thread per row (grid-stride); nothing when C = 0."""
    x, out = _checked(lambda s: s, x=x, out=out)
    if x.shape[1]:
        _launch(_row_softmax_kernel, _flat_launch(x.shape[0]), x, out)


def row_softmax_backward(p, g, out):
    """out[r, c] = p[r, c] (g[r, c] - sum_c' p[r, c'] g[r, c']). p, g, out (R, C). O(R C). One thread per row."""
    p, g, out = _checked(lambda s: s, p=p, g=g, out=out)
    _launch(_row_softmax_backward_kernel, _flat_launch(p.shape[0]), p, g, out)


def periods_first(X, out):
    """out[p, n, f] = X[n, f, p]: (N, F, P) -> (P, N, F). O(N F P). One thread per element."""
    X, out = _checked(lambda s: (s[2], s[0], s[1]), X=X, out=out)
    _launch(_periods_first_kernel, _flat_launch(X.size), X, out)


def periods_last(Xs, out):
    """out[n, f, p] = Xs[p, n, f]: (P, N, F) -> (N, F, P). O(N F P). One thread per element."""
    Xs, out = _checked(lambda s: (s[1], s[2], s[0]), Xs=Xs, out=out)
    _launch(_periods_last_kernel, _flat_launch(Xs.size), Xs, out)
