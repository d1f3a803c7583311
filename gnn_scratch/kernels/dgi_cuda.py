"""Deep Graph Infomax's pieces on the GPU (numba.cuda): the names and semantics of ``dgi_reference``.

Grid-stride loops, arithmetic in the arrays' dtype, no atomics. Sums run in a fixed order: the slope
gradient gives one thread to each (chunk of ``CHUNK_ROWS`` rows, channel) pair (it walks the chunk's rows in
order; neighbouring threads read neighbouring channels of a row, so the reads coalesce), then ``col_sum``'s
fixed tree adds the chunks (and a shared slope's channels); the cross-entropy's mean uses the same tree
over the per-score losses.
"""
import math

import numpy as np

from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda
from .dense_cuda import _contiguous, _flat, _flat_launch, col_sum
from .dgi_reference import CHUNK_ROWS, chunks


@_jit
def _prelu_kernel(x, a, y):
    F = x.shape[1]
    shared = a.shape[0] == 1
    for k in range(cuda.grid(1), x.shape[0] * F, cuda.gridsize(1)):
        n, f = k // F, k % F
        v = x[n, f]
        y[n, f] = v if v > 0 else a[0 if shared else f] * v


@_jit
def _prelu_backward_kernel(G, x, a, dx, part, R):
    N, F = x.shape
    shared = a.shape[0] == 1
    for k in range(cuda.grid(1), part.shape[0] * F, cuda.gridsize(1)):
        c, f = k // F, k % F
        s = part.dtype.type(0)
        slope = a[0 if shared else f]
        for n in range(c * R, min(N, c * R + R)):
            v, g = x[n, f], G[n, f]
            if v > 0:
                dx[n, f] = g
            else:
                dx[n, f] = slope * g
                s += g * v
        part[c, f] = s


@_jit
def _bilinear_rows_kernel(x1, T, y):
    N, O, I = T.shape
    for k in range(cuda.grid(1), N * O, cuda.gridsize(1)):
        n, o = k // O, k % O
        s = y.dtype.type(0)
        for i in range(I):
            s += x1[n, i] * T[n, o, i]
        y[n, o] = s


@_jit
def _bilinear_rows_backward_kernel(G, x1, T, dx1, dT):
    N, O, I = T.shape
    for k in range(cuda.grid(1), N * I, cuda.gridsize(1)):
        n, i = k // I, k % I
        s = dx1.dtype.type(0)
        v = x1[n, i]
        for o in range(O):
            g = G[n, o]
            s += g * T[n, o, i]
            dT[n, o, i] = g * v
        dx1[n, i] = s


@_jit
def _bce_rows_kernel(z, t, rows):
    zero = rows.dtype.type(0)
    for m in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        v = z[m]
        rows[m] = (v if v > zero else zero) - v * t[m] + math.log1p(math.exp(-abs(v)))


@_jit
def _mean_kernel(total, size, out):
    if cuda.grid(1) == 0:
        out[0] = total[0] / size


@_jit
def _bce_backward_kernel(z, t, scale, dz):
    one = dz.dtype.type(1)
    for m in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        v = z[m]
        e = math.exp(-abs(v))
        dz[m] = ((one if v >= 0 else e) / (one + e) - t[m]) * scale


def _check_slopes(x, a):
    _check("x", x, (None, None))
    _check("a", a, (None,))
    if a.shape[0] not in (1, x.shape[1]):
        raise ValueError(f"a must have shape (1,) or ({x.shape[1]},) (one slope, or one per channel), "
                         f"got {tuple(a.shape)}")


def prelu(x, a, y):
    """y = x if x > 0 else a[c(f)] x. x, y (N, F); a (1,) or (F,); one float dtype. O(N F), one thread per element."""
    require_cuda()
    x, a, y = _device(x=x, a=a, y=y)
    _check_slopes(x, a)
    _check("y", y, x.shape)
    _check_float(("x", x), ("a", a), ("y", y))
    _contiguous(x=x, y=y)
    _launch(_prelu_kernel, _flat_launch(x.size), x, a, y)


def prelu_backward(G, x, a, dx, part, da):
    """dx = G if x > 0 else a G; part[k, f] = sum over chunk k's rows of [x <= 0] G x; da = sum_k part[k] (or its sum).

    G, x, dx (N, F); a, da (C,) with C in {1, F}; part (ceil(N / CHUNK_ROWS), F) workspace. O(N F).
    Launch: one thread per (chunk, channel) walking the chunk's rows in order (neighbouring threads
    read neighbouring channels: coalesced), then ``col_sum``'s fixed tree over the chunks (and, for
    one shared slope, over the channels).
    """
    require_cuda()
    G, x, a, dx, part, da = _device(G=G, x=x, a=a, dx=dx, part=part, da=da)
    _check_slopes(x, a)
    _check("G", G, x.shape)
    _check("dx", dx, x.shape)
    _check("part", part, (chunks(x.shape[0]), x.shape[1]))
    _check("da", da, a.shape)
    _check_float(("G", G), ("x", x), ("a", a), ("dx", dx), ("part", part), ("da", da))
    _contiguous(G=G, x=x, dx=dx, part=part)
    _launch(_prelu_backward_kernel, _flat_launch(part.size), G, x, a, dx, part, CHUNK_ROWS)
    if da.shape[0] == x.shape[1]:
        col_sum(part, da)
    else:
        cols = cuda.device_array(x.shape[1], dtype=x.dtype)
        col_sum(part, cols)
        col_sum(cols.reshape(x.shape[1], 1), da)


def bilinear_rows(x1, T, y):
    """y[n, o] = <x1[n], T[n, o]>. x1 (N, I), T (N, O, I), y (N, O). O(N O I), one thread per (n, o)."""
    require_cuda()
    x1, T, y = _device(x1=x1, T=T, y=y)
    _check("x1", x1, (None, None))
    _check("T", T, (x1.shape[0], None, x1.shape[1]))
    _check("y", y, T.shape[:2])
    _check_float(("x1", x1), ("T", T), ("y", y))
    _launch(_bilinear_rows_kernel, _flat_launch(y.size), x1, T, y)


def bilinear_rows_backward(G, x1, T, dx1, dT):
    """dx1[n, i] = sum_o G[n, o] T[n, o, i]; dT[n, o, i] = G[n, o] x1[n, i]. O(N O I), one thread per (n, i)."""
    require_cuda()
    G, x1, T, dx1, dT = _device(G=G, x1=x1, T=T, dx1=dx1, dT=dT)
    _check("x1", x1, (None, None))
    _check("T", T, (x1.shape[0], None, x1.shape[1]))
    _check("G", G, T.shape[:2])
    _check("dx1", dx1, x1.shape)
    _check("dT", dT, T.shape)
    _check_float(("G", G), ("x1", x1), ("T", T), ("dx1", dx1), ("dT", dT))
    _launch(_bilinear_rows_backward_kernel, _flat_launch(x1.size), G, x1, T, dx1, dT)


def _check_bce(z, t):
    _check("t", t, z.shape)
    _check_float(("z", z), ("t", t))
    _contiguous(z=z, t=t)


def bce_with_logits(z, t, rows, loss):
    """rows = max(z, 0) - z t + log1p(e^-|z|) (flat), loss[0] = their mean (NaN for none).

    z, t, rows one shape and float dtype; loss (1,). Launch: one thread per score, then ``col_sum``'s
    fixed tree over the scores (as an (M, 1) matrix), then one thread divides. Deterministic.
    """
    require_cuda()
    z, t, rows, loss = _device(z=z, t=t, rows=rows, loss=loss)
    _check_bce(z, t)
    _check("rows", rows, z.shape, dtype=z.dtype)
    _check("loss", loss, (1,), dtype=z.dtype)
    M = z.size
    _launch(_bce_rows_kernel, _flat_launch(M), _flat(z), _flat(t), _flat(rows))
    total = cuda.device_array(1, dtype=z.dtype)
    col_sum(_flat(rows).reshape(M, 1), total)
    _mean_kernel[1, 1](total, z.dtype.type(M) if M else z.dtype.type(np.nan), loss)


def bce_with_logits_backward(z, t, dz):
    """dz = (sigma(z) - t) / M; z, t, dz one shape and float dtype. One thread per score."""
    require_cuda()
    z, t, dz = _device(z=z, t=t, dz=dz)
    _check_bce(z, t)
    _check("dz", dz, z.shape, dtype=z.dtype)
    _launch(_bce_backward_kernel, _flat_launch(z.size), _flat(z), _flat(t), z.dtype.type(1.0 / max(z.size, 1)),
            _flat(dz))
