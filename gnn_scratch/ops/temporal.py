"""Attention over time: a row softmax with its backward, and the transposes of an input window.

A3T-GCN's attention (derivations/tgcn.md, section A3TGCN) is p = softmax(a) over the P periods of a
window; a (P,) vector is handled as one row, a.reshape(1, P). Its input window comes in PyG
Temporal's layout X (N, F, P); ``periods_first`` makes each period a contiguous (N, F) block.
Each op allocates on its inputs' device; the registry picks the implementation.
"""
from ..device import empty, empty_like
from ..kernels.registry import run
from .checks import dense, one_float, same_shape, shape


def row_softmax(x):
    """p[r] = softmax(x[r]) = exp(x[r] - max x[r]) / sum exp(x[r] - max x[r]): x (R, C) float -> p (R, C)."""
    shape("row_softmax", "x", dense("row_softmax", "x", x), "R", "C")
    one_float("row_softmax", x=x)
    out = empty_like(x)
    run("row_softmax", x.size, x, out)
    return out


def row_softmax_backward(grad_out, p):
    """dL/dx[r, c] = p[r, c] (g[r, c] - sum_c' p[r, c'] g[r, c']) with g = grad_out = dL/dp, p the forward's output."""
    shape("row_softmax_backward", "grad_out", dense("row_softmax_backward", "grad_out", grad_out), "R", "C")
    same_shape("row_softmax_backward", "grad_out", grad_out, p=dense("row_softmax_backward", "p", p))
    one_float("row_softmax_backward", grad_out=grad_out, p=p)
    out = empty_like(grad_out)
    run("row_softmax_backward", p.size, p, grad_out, out)
    return out


def periods_first(X):
    """Xs[p] = X[:, :, p]: a window X (N, F, P) (PyG Temporal's layout) -> Xs (P, N, F), each period contiguous."""
    shape("periods_first", "X", dense("periods_first", "X", X), "N", "F", "P")
    one_float("periods_first", X=X)
    N, F, P = X.shape
    out = empty((P, N, F), X.dtype, like=X)
    run("periods_first", X.size, X, out)
    return out


def periods_last(Xs):
    """X[:, :, p] = Xs[p]: (P, N, F) -> (N, F, P), the inverse of ``periods_first`` (and its backward)."""
    shape("periods_last", "Xs", dense("periods_last", "Xs", Xs), "P", "N", "F")
    one_float("periods_last", Xs=Xs)
    P, N, F = Xs.shape
    out = empty((N, F, P), Xs.dtype, like=Xs)
    run("periods_last", Xs.size, Xs, out)
    return out
