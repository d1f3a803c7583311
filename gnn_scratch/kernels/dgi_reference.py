"""Deep Graph Infomax's pieces in plain NumPy (the readable truth): PReLU with learned slopes, bilinear row
scores, binary cross-entropy with logits (derivations/dgi.md). Any model may use them; DGI brought them.

Contract of the family (shared by ``dgi_cpu`` and ``dgi_cuda``): one float dtype per call, C-contiguous
arrays, outputs (and workspaces) preallocated and overwritten.

    prelu(x, a, y)                           x, y (N, F); a (C,) with C = 1 (one slope shared by every
                                             channel, torch's default) or C = F (one per channel)
        y[n, f] = x[n, f] if x[n, f] > 0 else a[c(f)] x[n, f],   c(f) = f if C == F else 0
    prelu_backward(G, x, a, dx, part, da)    G, x, dx (N, F); part (ceil(N / CHUNK_ROWS), F) workspace; da (C,)
        dx[n, f]   = G[n, f] if x[n, f] > 0 else a[c(f)] G[n, f]
        part[k, f] = sum over the rows n of chunk k (CHUNK_ROWS rows each, in order) of [x[n, f] <= 0] G[n, f] x[n, f]
        da         = sum_k part[k] (C = F), or [sum_f sum_k part[k, f]] (C = 1)
    bilinear_rows(x1, T, y)                  x1 (N, I), T (N, O, I), y (N, O)
        y[n, o] = sum_i x1[n, i] T[n, o, i]
    bilinear_rows_backward(G, x1, T, dx1, dT)   G (N, O); dx1 (N, I); dT (N, O, I)
        dx1[n, i] = sum_o G[n, o] T[n, o, i],   dT[n, o, i] = G[n, o] x1[n, i]
    bce_with_logits(z, t, rows, loss)        z, t, rows (M,) (any shape, read flat); loss (1,)
        rows[m] = max(z, 0) - z t + log(1 + e^-|z|)      (= -t log s(z) - (1 - t) log(1 - s(z)), no overflow)
        loss[0] = sum_m rows[m] / M                       (NaN for M = 0)
    bce_with_logits_backward(z, t, dz)       dz = (s(z) - t) / M,   s(z) = 1/(1 + e^-|z|) or e^-|z|/(1 + e^-|z|)

The slope gradient is a sum over rows: it is cut into chunks of ``CHUNK_ROWS`` rows (a constant, not the
thread count), each chunk's partial sums are taken row by row, then the partials are added in chunk order
(and, for a shared slope, the channels in order): the same bits for any thread count.
"""
import numpy as np

CHUNK_ROWS = 256    # rows per partial sum of the slope gradient (fixed: the sums' order never depends on threads)


def _slopes(a, F):
    """a as a row broadcast over the F channels: (1, F)."""
    return np.broadcast_to(a.reshape(1, -1), (1, F)) if a.shape[0] == 1 else a.reshape(1, F)


def prelu(x, a, y):
    """y = x where x > 0, a x elsewhere (a per channel, or one shared slope)."""
    y[...] = np.where(x > 0, x, _slopes(a, x.shape[1]) * x)


def chunks(num_rows):
    """Number of row chunks of ``prelu_backward``'s workspace: ceil(num_rows / CHUNK_ROWS)."""
    return (num_rows + CHUNK_ROWS - 1) // CHUNK_ROWS


def prelu_backward(G, x, a, dx, part, da):
    """dx = G where x > 0, a G elsewhere; part[k] = sum over chunk k of [x <= 0] G x;
    da = sum_k part[k] (or, for one shared slope, the sum of that)."""
    pos = x > 0
    dx[...] = np.where(pos, G, _slopes(a, x.shape[1]) * G)
    terms = np.where(pos, 0, G * x)
    for k in range(part.shape[0]):
        part[k] = terms[k * CHUNK_ROWS:(k + 1) * CHUNK_ROWS].sum(axis=0)
    cols = part.sum(axis=0)
    da[...] = cols if da.shape[0] == cols.shape[0] else np.sum(cols, keepdims=True)


def bilinear_rows(x1, T, y):
    """y[n, o] = <x1[n], T[n, o]>: one bilinear score per row and output, T[n] = W x2[n] precomputed."""
    y[...] = np.einsum("ni,noi->no", x1, T)


def bilinear_rows_backward(G, x1, T, dx1, dT):
    """dx1[n] = sum_o G[n, o] T[n, o];  dT[n, o] = G[n, o] x1[n]."""
    dx1[...] = np.einsum("no,noi->ni", G, T)
    dT[...] = G[:, :, None] * x1[:, None, :]


def _sigmoid(z):
    """sigma(z) from e = e^-|z| <= 1: 1 / (1 + e) for z >= 0, e / (1 + e) below -- accurate to the last bits
    in both tails (1/2 (tanh(z/2) + 1) cancels for z << 0, where the gradient is sigma(z) itself)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


def bce_with_logits(z, t, rows, loss):
    """rows = max(z, 0) - z t + log1p(e^-|z|); loss[0] = mean(rows) (NaN when empty)."""
    rows[...] = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    loss[0] = rows.sum(dtype=np.float64) / rows.size if rows.size else np.nan


def bce_with_logits_backward(z, t, dz):
    """dz = (sigma(z) - t) / M."""
    dz[...] = (_sigmoid(z) - t) / z.dtype.type(max(z.size, 1))
