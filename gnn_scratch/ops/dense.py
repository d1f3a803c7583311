"""Dense operations over node arrays: products, sums, GAT's per-head pieces, row normalisation.

Each allocates its output on the device of its inputs (``device.empty(..., like=...)``) and runs
the registered op (``kernels.registry``), which picks NumPy/BLAS on the host and the numba.cuda
kernels on the GPU. The ``out=`` / ``accumulate=`` arguments write a gradient in place
(``grads["W"] += X^T G``), as the layer contract wants.

Shapes follow the layers: X (N, F_in) dense or sparse, W (F_in, F_out), b (F_out,), G (N, F_out);
GAT's Z (N, H, F), att (H, F), scores a (N, H).
"""
from ..device import empty, empty_like
from ..kernels.registry import run
from .checks import dense, one_float, same_shape, shape


def _product_output(op, A, B, out, accumulate, rows, cols):
    """(out, accumulate) of a product into ``out`` -- checked: (rows, cols), A's and B's float dtype -- or into a
    new uninitialised (rows, cols) array, which nothing is added to."""
    if out is None:
        one_float(op, A=A, B=B)
        return empty((rows, cols), B.dtype, like=B), False
    shape(op, "out", out, rows, cols)
    one_float(op, A=A, B=B, out=out)
    return out, accumulate


def matmul(A, B, out=None, accumulate=False):
    """A @ B: A (N, K) dense or sparse, B (K, F) -> (N, F); into ``out`` (added to with ``accumulate``: a
    self term ``out += H W`` without a temporary the size of ``out`` and a pass over it)."""
    shape("matmul", "A", A, "N", "K")
    shape("matmul", "B", dense("matmul", "B", B), A.shape[1], "F")
    out, accumulate = _product_output("matmul", A, B, out, accumulate, A.shape[0], B.shape[1])
    run("matmul", out.size, A, B, out, accumulate)
    return out


def matmul_tn(A, B, out=None, accumulate=False):
    """A^T @ B: A (K, M) dense or sparse, B (K, N) -> (M, N); into ``out`` (added to with ``accumulate``)."""
    shape("matmul_tn", "A", A, "K", "M")
    shape("matmul_tn", "B", dense("matmul_tn", "B", B), A.shape[0], "N")
    out, accumulate = _product_output("matmul_tn", A, B, out, accumulate, A.shape[1], B.shape[1])
    run("matmul_tn", out.size, A, B, out, accumulate)
    return out


def matmul_nt(A, B):
    """A @ B^T: A (M, K), B (N, K) -> (M, N)."""
    shape("matmul_nt", "A", dense("matmul_nt", "A", A), "M", "K")
    shape("matmul_nt", "B", dense("matmul_nt", "B", B), "N", A.shape[1])
    one_float("matmul_nt", A=A, B=B)
    out = empty((A.shape[0], B.shape[0]), A.dtype, like=A)
    run("matmul_nt", out.size, A, B, out)
    return out


def col_sum(G, out=None, accumulate=False):
    """sum_n G[n]: (N, F) -> (F,); into ``out`` (added to with ``accumulate``)."""
    shape("col_sum", "G", dense("col_sum", "G", G), "N", "F")
    if out is not None:
        shape("col_sum", "out", out, G.shape[1])
    if out is None:
        out, accumulate = empty((G.shape[1],), G.dtype, like=G), False
    run("col_sum", G.size, G, out, accumulate)
    return out


def add_bias(Y, b):
    """Y += b on every row, in place; returns Y."""
    shape("add_bias", "Y", dense("add_bias", "Y", Y), "N", "F")
    shape("add_bias", "b", b, Y.shape[1])
    run("add_bias", Y.size, Y, b)
    return Y


def add_(acc, x):
    """acc += x in place; returns acc."""
    same_shape("add_", "acc", dense("add_", "acc", acc), x=dense("add_", "x", x))
    run("add", acc.size, acc, x)
    return acc


def sub_(acc, x):
    """acc -= x in place; returns acc."""
    same_shape("sub_", "acc", dense("sub_", "acc", acc), x=dense("sub_", "x", x))
    run("sub", acc.size, acc, x)
    return acc


def zero_(a):
    """a[...] = 0 in place (a gradient); returns a."""
    run("fill", a.size, a, 0)
    return a


def mul(a, b):
    """a * b element-wise (same shape)."""
    same_shape("mul", "a", dense("mul", "a", a), b=dense("mul", "b", b))
    out = empty_like(a)
    run("mul", a.size, a, b, out)
    return out


def _leading_rows(op, da, Z):
    """da (n, H) for the first n <= N rows of Z (N, H, F)."""
    shape(op, "da", da, "n", Z.shape[1])
    if da.shape[0] > Z.shape[0]:
        raise ValueError(f"ops.{op}: da must have at most {Z.shape[0]} rows (those of Z), got {da.shape[0]}")


# GAT's per-head pieces. Z is (N, H, F): H heads of F features (a contiguous (N, H F) array reshaped).
def head_dot(Z, att, n_rows=None):
    """a[n, h] = <Z[n, h], att[h]> for the first ``n_rows`` rows (all by default): (n_rows, H).

    GAT's score halves: a_src over all sources, a_dst over the N_dst destinations.
    """
    shape("head_dot", "Z", Z, "N", "H", "F")
    shape("head_dot", "att", att, Z.shape[1], Z.shape[2])
    n = Z.shape[0] if n_rows is None else n_rows
    if not 0 <= n <= Z.shape[0]:
        raise ValueError(f"ops.head_dot: n_rows must be in [0, {Z.shape[0]}] (the rows of Z), got {n}")
    out = empty((n, Z.shape[1]), Z.dtype, like=Z)
    run("head_dot", n * Z.shape[1] * Z.shape[2], Z, att, out)
    return out


def head_dot_backward_att(da, Z, out=None, accumulate=False):
    """datt[h, f] = sum_n da[n, h] Z[n, h, f] over the rows of da: (H, F); into ``out`` (or added)."""
    shape("head_dot_backward_att", "Z", Z, "N", "H", "F")
    _leading_rows("head_dot_backward_att", da, Z)
    if out is not None:
        shape("head_dot_backward_att", "out", out, Z.shape[1], Z.shape[2])
    if out is None:
        out, accumulate = empty(Z.shape[1:], Z.dtype, like=Z), False
    run("head_dot_backward_att", da.shape[0] * Z.shape[1] * Z.shape[2], da, Z, out, accumulate)
    return out


def head_dot_backward_Z_(dZ, da, att):
    """dZ[n, h, f] += da[n, h] att[h, f] for the rows of da, in place; returns dZ."""
    shape("head_dot_backward_Z_", "dZ", dZ, "N", "H", "F")
    _leading_rows("head_dot_backward_Z_", da, dZ)
    shape("head_dot_backward_Z_", "att", att, dZ.shape[1], dZ.shape[2])
    run("head_dot_backward_Z", da.shape[0] * dZ.shape[1] * dZ.shape[2], dZ, da, att)
    return dZ


def head_mean(Y):
    """The mean over heads: (N, H, F) -> (N, F)."""
    shape("head_mean", "Y", Y, "N", "H", "F")
    out = empty((Y.shape[0], Y.shape[2]), Y.dtype, like=Y)
    run("head_mean", Y.size, Y, out)
    return out


def head_mean_backward(G, heads):
    """The gradient of ``head_mean``: each head receives G / H, (N, F) -> (N, H, F) (contiguous)."""
    shape("head_mean_backward", "G", G, "N", "F")
    out = empty((G.shape[0], heads, G.shape[1]), G.dtype, like=G)
    run("head_mean_backward", out.size, G, out)
    return out


# SAGEConv's ``normalize``: y = x / max(||x||, eps) per row.
def row_normalize(x, eps):
    """(y, norm): y[i] = x[i] / max(||x[i]||, eps), norm (N,) the row norms."""
    shape("row_normalize", "x", dense("row_normalize", "x", x), "N", "F")
    y, norm = empty_like(x), empty((x.shape[0],), x.dtype, like=x)
    run("row_normalize", x.size, x, x.dtype.type(eps), y, norm)
    return y, norm


def row_normalize_backward(G, y, norm, eps):
    """dx = (G - y (y.G)) / ||x|| per row, or G / eps where ||x|| <= eps."""
    shape("row_normalize_backward", "G", dense("row_normalize_backward", "G", G), "N", "F")
    same_shape("row_normalize_backward", "G", G, y=y)
    shape("row_normalize_backward", "norm", norm, G.shape[0])
    out = empty_like(G)
    run("row_normalize_backward", G.size, G, y, norm, G.dtype.type(eps), out)
    return out
