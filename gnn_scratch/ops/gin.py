"""GIN's aggregation h_i = (1 + eps) x_i + sum_{j -> i} x_j and its backward (derivations/gin_conv.md).

As a matrix, h = S x with S = A + (1 + eps) I: A the (N_dst, N_src) adjacency (repeated edges
counted, edge weights ignored, as PyG's ``GINConv``), I the identity on the first N_dst sources
(a block's destinations are its first sources). So dx = Sᵀ G, the same kernel on the cached
transpose. ``eps`` is a (1,) array of x's dtype on x's device (a parameter when it is trained).
"""
from ..device import empty
from ..kernels.registry import run
from .checks import dense, one_float, shape


def _eps(op, eps, name, a):
    shape(op, "eps", eps, 1)
    one_float(op, **{name: a}, eps=eps)


def gin_aggregate(graph, x, eps):
    """h[i] = (1 + eps) x[i] + sum_{e: j -> i} x[j]: x (N_src, F) -> (N_dst, F)."""
    shape("gin_aggregate", "x", dense("gin_aggregate", "x", x), graph.num_src, "F")
    _eps("gin_aggregate", eps, "x", x)
    out = empty((graph.num_dst, x.shape[1]), x.dtype, like=x)
    run("gin_aggregate", graph.num_edges * x.shape[1], graph.indptr, graph.indices, x, eps, out)
    return out


def gin_aggregate_backward(graph, eps, G):
    """dL/dx = Sᵀ G: dx[j] = sum_{e: j -> i} G[i] + (1 + eps) G[j] (the root term for j < N_dst): (N_src, F)."""
    shape("gin_aggregate_backward", "G", dense("gin_aggregate_backward", "G", G), graph.num_dst, "F")
    _eps("gin_aggregate_backward", eps, "G", G)
    dx = empty((graph.num_src, G.shape[1]), G.dtype, like=G)
    run("gin_aggregate", graph.num_edges * G.shape[1], graph.t_indptr, graph.t_indices, G, eps, dx)
    return dx
