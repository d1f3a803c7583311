"""Dense operations in plain NumPy: the readable truth of the ``dense`` op family.

The contract of every op of the family (shared by ``dense_cpu`` and ``dense_cuda``):
* outputs are preallocated by the caller and fully overwritten -- or added to, for the ops that
  take ``accumulate=True`` (gradient accumulation: ``out += ...``);
* all float arrays of a call share one dtype (float32 or float64), and arithmetic stays in it;
* A may be a sparse matrix where it says so (scipy.sparse on the host, ``DeviceCSR`` on the GPU):
  features are often bag-of-words.

Shapes: matrices (M, K) / (K, N); GAT's per-head arrays Z (N, H, F), att (H, F), a (N, H).
"""
import numpy as np

from .reference import spmm_sum_bias


def _put(result, out, accumulate):
    if accumulate:
        out += result
    else:
        out[...] = result


def _product(A, B, out, accumulate):
    """out (+)= A @ B; a dense product is written straight into ``out`` (no temporary: the same BLAS call)."""
    if not accumulate and isinstance(A, np.ndarray) and isinstance(B, np.ndarray):
        np.matmul(A, B, out=out)
    else:
        _put(np.asarray(A @ B), out, accumulate)


def matmul(A, B, out, accumulate=False):
    """out = A @ B (or +=). A (M, K) dense or sparse, B (K, N), out (M, N). O(M N K) (O(nnz N) sparse)."""
    _product(A, B, out, accumulate)


def spmm_sum_bias_matmul(indptr, indices, edge_val, X, b, relu, W, out):
    """out = act(A X + b) @ W, act the ReLU when ``relu`` (else none): an evaluation-mode GCN layer and the
    next layer's product, H = act(A X + b) never returned. A is the CSR (indptr, indices, edge_val) of
    ``reference.spmm_sum``; X (N_src, F), b (F,), W (F, C), out (N_dst, C) overwritten. The two steps apart:
    ``reference.spmm_sum_bias`` into H (N_dst, F), then ``matmul``. O(E F + N_dst F C)."""
    H = np.empty((out.shape[0], X.shape[1]), X.dtype)
    spmm_sum_bias(indptr, indices, edge_val, X, b, relu, H)
    matmul(H, W, out)


def matmul_tn(A, B, out, accumulate=False):
    """out = A^T @ B (or +=): the weight gradient X^T G. A (K, M) dense or sparse, B (K, N), out (M, N)."""
    _product(A.T, B, out, accumulate)


def matmul_nt(A, B, out, accumulate=False):
    """out = A @ B^T (or +=): the input gradient G W^T. A (M, K), B (N, K), out (M, N)."""
    _product(A, B.T, out, accumulate)


def col_sum(G, out, accumulate=False):
    """out[c] = sum_r G[r, c] (or +=): the bias gradient. G (R, C), out (C,); R = 0 gives 0."""
    _put(G.sum(axis=0), out, accumulate)


def fill(a, value):
    """a[...] = value in place (value cast to a's dtype)."""
    a[...] = value


def add(acc, x):
    """acc += x in place (same shape and dtype)."""
    acc += x


def sub(acc, x):
    """acc -= x in place (same shape and dtype)."""
    acc -= x


def add_bias(Y, b):
    """Y[n, :] += b for every row n, in place. Y (N, F), b (F,)."""
    Y += b


def mul(a, b, out):
    """out = a * b element-wise (same shape)."""
    np.multiply(a, b, out=out)


def head_dot(Z, att, out):
    """out[n, h] = <Z[n, h], att[h]> for the first M = out.shape[0] rows of Z (GAT's score halves).

    Z (N, H, F), att (H, F), out (M, H) with M <= N.
    """
    out[...] = np.einsum("nhf,hf->nh", Z[:out.shape[0]], att)


def head_dot_backward_att(da, Z, out, accumulate=False):
    """out[h, f] = sum_n da[n, h] Z[n, h, f] over the M rows of da (or +=): d att of ``head_dot``.

    da (M, H), Z (N, H, F) with M <= N, out (H, F).
    """
    _put(np.einsum("nh,nhf->hf", da, Z[:da.shape[0]]), out, accumulate)


def head_dot_backward_Z(dZ, da, att):
    """dZ[n, h, f] += da[n, h] att[h, f] for n < M, in place: d Z of ``head_dot``. dZ (N, H, F), da (M, H)."""
    dZ[:da.shape[0]] += da[:, :, None] * att


def head_mean(Y, out):
    """out = the mean over heads of Y: Y (N, H, F) -> out (N, F)."""
    out[...] = Y.mean(axis=1)


def head_mean_backward(G, out):
    """out[n, h] = G[n] / H for every head h: the gradient of ``head_mean``. G (N, F), out (N, H, F)."""
    out[...] = (G / G.dtype.type(out.shape[1]))[:, None, :]


def row_normalize(x, eps, y, norm):
    """norm[i] = ||x[i]||,  y[i] = x[i] / max(norm[i], eps)  (SAGEConv's ``normalize``).

    x, y (N, F), norm (N,); eps in x's dtype. A row of norm <= eps is divided by eps instead.
    """
    norm[...] = np.sqrt(np.einsum("ij,ij->i", x, x))
    y[...] = x / np.maximum(norm, eps)[:, None]


def row_normalize_backward(g, y, norm, eps, out):
    """out[i] = (g[i] - y[i] <y[i], g[i]>) / norm[i] where norm[i] > eps, else g[i] / eps.

    The gradient of ``row_normalize`` from its outputs y and norm. g, y, out (N, F), norm (N,).
    """
    n = norm[:, None]
    yg = np.einsum("ij,ij->i", y, g)[:, None]
    out[...] = np.where(n > eps, (g - y * yg) / np.maximum(n, eps), g / g.dtype.type(eps))
