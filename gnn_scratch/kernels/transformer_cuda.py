"""Pieces of the graph transformers on the GPU (numba.cuda): the names and semantics of ``transformer_reference``.

``scale`` uses one thread per element (grid-stride); the row kernels one thread per row (the passes
of the Numba kernels, in column order: the same sums). Arithmetic in the arrays' dtype, no atomics.
"""
import math

from .cuda import _check, _check_float, _device, _jit, _launch, cuda, require_cuda
from .dense_cuda import _contiguous, _flat, _flat_launch


@_jit
def _scale_kernel(x, a, out):
    for k in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[k] = a * x[k]


@_jit
def _layer_norm_kernel(x, gamma, beta, eps, out, xhat, rstd):
    F = x.shape[1]
    for n in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        mu = x.dtype.type(0)
        for f in range(F):
            mu += x[n, f]
        mu /= F
        var = x.dtype.type(0)
        for f in range(F):
            d = x[n, f] - mu
            var += d * d
        var /= F
        r = 1 / math.sqrt(var + eps)
        rstd[n] = r
        for f in range(F):
            xh = (x[n, f] - mu) * r
            xhat[n, f] = xh
            out[n, f] = xh * gamma[f] + beta[f]


@_jit
def _layer_norm_backward_kernel(G, xhat, rstd, gamma, dx):
    F = G.shape[1]
    for n in range(cuda.grid(1), G.shape[0], cuda.gridsize(1)):
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


@_jit
def _beta_gate_kernel(out, xr, w, y, b):
    D = out.shape[1]
    for n in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        s = out.dtype.type(0)
        for f in range(D):
            s += out[n, f] * w[f] + xr[n, f] * w[D + f] + (out[n, f] - xr[n, f]) * w[2 * D + f]
        if s >= 0:
            bn = 1 / (1 + math.exp(-s))
        else:
            e = math.exp(s)
            bn = e / (1 + e)
        b[n] = bn
        for f in range(D):
            y[n, f] = bn * xr[n, f] + (1 - bn) * out[n, f]


@_jit
def _beta_gate_backward_kernel(G, out, xr, b, w, d_out, d_xr, dz):
    D = out.shape[1]
    for n in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
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
    """out = a * x element-wise. x, out one shape; O(size). One thread per element."""
    require_cuda()
    x, out = _device(x=x, out=out)
    _check("out", out, x.shape)
    _check_float(("x", x), ("out", out))
    _contiguous(x=x, out=out)
    _launch(_scale_kernel, _flat_launch(x.size), _flat(x), x.dtype.type(a), _flat(out))


def _row_checked(N_F, vectors, rows, matrices):
    """Shape / dtype / contiguity checks: ``matrices`` (N, F), ``rows`` (N,), ``vectors`` {name: (length,)}."""
    N, F = N_F
    for name, a in matrices.items():
        _check(name, a, (N, F))
    for name, a in rows.items():
        _check(name, a, (N,))
    for name, (a, length) in vectors.items():
        _check(name, a, (length,))
    named = list(matrices.items()) + list(rows.items()) + [(k, v[0]) for k, v in vectors.items()]
    _check_float(*named)
    _contiguous(**dict(named))


def layer_norm(x, gamma, beta, eps, out, xhat, rstd):
    """Row-wise LayerNorm (see the reference). x, out, xhat (N, F); gamma, beta (F,); rstd (N,). One thread per row."""
    require_cuda()
    x, gamma, beta, out, xhat, rstd = _device(x=x, gamma=gamma, beta=beta, out=out, xhat=xhat, rstd=rstd)
    _check("x", x, (None, None))
    F = x.shape[1]
    _row_checked(x.shape, dict(gamma=(gamma, F), beta=(beta, F)), dict(rstd=rstd), dict(x=x, out=out, xhat=xhat))
    _launch(_layer_norm_kernel, _flat_launch(x.shape[0]), x, gamma, beta, x.dtype.type(eps), out, xhat, rstd)


def layer_norm_backward(G, xhat, rstd, gamma, dx):
    """dx = rstd (g - mean g - xhat mean(g xhat)), g = G gamma. G, xhat, dx (N, F); rstd (N,). One thread per row."""
    require_cuda()
    G, xhat, rstd, gamma, dx = _device(G=G, xhat=xhat, rstd=rstd, gamma=gamma, dx=dx)
    _check("G", G, (None, None))
    _row_checked(G.shape, dict(gamma=(gamma, G.shape[1])), dict(rstd=rstd), dict(G=G, xhat=xhat, dx=dx))
    _launch(_layer_norm_backward_kernel, _flat_launch(G.shape[0]), G, xhat, rstd, gamma, dx)


def beta_gate(out, xr, w, y, b):
    """TransformerConv's gate (see the reference). out, xr, y (N, D); w (3D,); b (N,). One thread per row."""
    require_cuda()
    out, xr, w, y, b = _device(out=out, xr=xr, w=w, y=y, b=b)
    _check("out", out, (None, None))
    _row_checked(out.shape, dict(w=(w, 3 * out.shape[1])), dict(b=b), dict(out=out, xr=xr, y=y))
    _launch(_beta_gate_kernel, _flat_launch(out.shape[0]), out, xr, w, y, b)


def beta_gate_backward(G, out, xr, b, w, d_out, d_xr, dz):
    """The gate's backward (see the reference). G, out, xr, d_out, d_xr (N, D); b, dz (N,); w (3D,)."""
    require_cuda()
    G, out, xr, b, w, d_out, d_xr, dz = _device(G=G, out=out, xr=xr, b=b, w=w, d_out=d_out, d_xr=d_xr, dz=dz)
    _check("G", G, (None, None))
    _row_checked(G.shape, dict(w=(w, 3 * G.shape[1])), dict(b=b, dz=dz),
                 dict(G=G, out=out, xr=xr, d_out=d_out, d_xr=d_xr))
    _launch(_beta_gate_backward_kernel, _flat_launch(G.shape[0]), G, out, xr, b, w, d_out, d_xr, dz)
