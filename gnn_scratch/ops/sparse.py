"""Graph-level sparse operations: allocate the output, pick the kernels, call them.

Layers compose these; the kernels (``gnn_scratch/kernels``) only loop. Each forward has its
backward right below it, and both are derived in ``derivations/aggregation.md``.

Shapes: ``graph`` is (N_dst, N_src) with E edges; ``X`` (N_src, F); ``grad_out`` (N_dst, F);
``edge_val`` (E,) in CSR order; per-head edge arrays (E, H).
"""
import numpy as np

from ..dense import to_device
from ..graph import Graph
from ..kernels import backend_for, is_device_array
from ..threads import call_numba


def _empty(like, shape, dtype=None):
    """Uninitialised output on the same device as ``like``."""
    dtype = like.dtype if dtype is None else dtype
    if is_device_array(like):
        from numba import cuda
        return cuda.device_array(shape, dtype=dtype)
    return np.empty(shape, dtype=dtype)


def _is_numba(K):
    """True for the Numba kernel modules (``kernels.cpu``, ``kernels.gat_cpu``)."""
    return K.__name__.rsplit(".", 1)[-1] in ("cpu", "gat_cpu")


def _call(K, name, work, *args):
    """``K.<name>(*args)``; a small Numba problem runs on one thread (``threads.call_numba``)."""
    kernel = getattr(K, name)
    if _is_numba(K):
        return call_numba(kernel, work, *args)
    return kernel(*args)


def _host_copy_on_device(graph, fn, dtype, *args):
    """``fn(graph, dtype, *args)`` of a device graph: computed on its host graph, cached on it as a device copy."""
    def build():
        r = fn(graph.host, dtype, *args)
        return tuple(to_device(v) for v in r) if isinstance(r, tuple) else to_device(r)
    return graph.cached((fn.__name__, "on", graph.device, np.dtype(dtype).str, *args), build)


def ones_on_edges(graph, dtype):
    """A cached (E,) array of ones: the weights of an unweighted graph."""
    if getattr(graph, "device", "cpu") != "cpu":
        return _host_copy_on_device(graph, ones_on_edges, dtype)
    return graph.cached(("ones", np.dtype(dtype).str), lambda: np.ones(graph.num_edges, dtype=dtype))


def edge_weight_or_ones(graph, dtype):
    """The graph's edge weights cast to ``dtype`` (cached), or ones when it has none."""
    if getattr(graph, "device", "cpu") != "cpu":
        return _host_copy_on_device(graph, edge_weight_or_ones, dtype)
    if graph.edge_weight is None:
        return ones_on_edges(graph, dtype)
    return graph.cached(("edge_weight", np.dtype(dtype).str), lambda: graph.edge_weight.astype(dtype))


call_kernel = _call   # for the layers that pick their own kernel module (GATConv's fused kernels)


# --------------------------------------------------------------------------- weighted sum (SpMM)
def spmm(graph, edge_val, X):
    """Weighted sum aggregation  out = A X,  A[i, j] = sum of edge_val over edges j -> i.  (N_dst, F)."""
    K = backend_for(X)
    out = _empty(X, (graph.num_dst, X.shape[1]))
    _call(K, "spmm_sum", graph.num_edges * X.shape[1], graph.indptr, graph.indices, edge_val, X, out)
    return out


def spmm_backward_X(graph, edge_val, grad_out):
    """dL/dX = A^T G, as a sum over the cached transpose with the weights permuted: (N_src, F)."""
    K = backend_for(grad_out)
    grad_X = _empty(grad_out, (graph.num_src, grad_out.shape[1]))
    _call(K, "spmm_sum_perm", graph.num_edges * grad_out.shape[1], graph.t_indptr, graph.t_indices, graph.t_perm,
          edge_val, grad_out, grad_X)
    return grad_X


def transposed_edge_val(graph, edge_val, key):
    """``edge_val`` in the order of the cached transpose, edge_val[t_perm]: (E,), cached on ``graph`` under ``key``.

    For weights that belong to the graph (GCN's normalisation): computed once, it turns every later
    A^T G into ``spmm_transposed`` -- a plain SpMM on the transpose, without the per-edge random
    read edge_val[t_perm[e]]. Host graphs only (a device graph's t_perm lives on the GPU).
    """
    return graph.cached(("transposed_edge_val", key),
                        lambda: np.ascontiguousarray(np.asarray(edge_val)[graph.t_perm]))


def spmm_transposed(graph, edge_val_t, grad_out):
    """dL/dX = A^T G with the weights already in transpose order (``transposed_edge_val``): (N_src, F).

    The same products summed in the same order as ``spmm_backward_X``, so the same bits.
    """
    K = backend_for(grad_out)
    grad_X = _empty(grad_out, (graph.num_src, grad_out.shape[1]))
    _call(K, "spmm_sum", graph.num_edges * grad_out.shape[1], graph.t_indptr, graph.t_indices, edge_val_t,
          grad_out, grad_X)
    return grad_X


def spmm_backward_edge_val(graph, X, grad_out):
    """dL/d edge_val[e] = <G[i], X[j]> for edge e: j -> i (an SDDMM): (E,)."""
    K = backend_for(X)
    out = _empty(X, (graph.num_edges, 1))
    K.sddmm_dot(graph.indptr, graph.indices, grad_out[:, None, :], X[:, None, :], out)
    return out[:, 0]


# --------------------------------------------------------------------------- mean
def mean_aggregate(graph, X):
    """out[i] = mean of X over i's in-neighbours (0 for a node with none): (N_dst, F)."""
    K = backend_for(X)
    out = _empty(X, (graph.num_dst, X.shape[1]))
    _call(K, "spmm_mean", graph.num_edges * X.shape[1], graph.indptr, graph.indices, X, out)
    return out


def mean_aggregate_backward(graph, grad_out):
    """dL/dX[j] = sum over edges j -> i of G[i] / deg_i: (N_src, F).

    On the CPU in two steps, as derivations/aggregation.md writes it: G_s = D^-1 G (one pass), then
    A^T G_s as an unweighted gather over the transpose. That is the reference's arithmetic (the
    same divisions, sums in the same order: the same bits) and keeps the division out of the
    gather loop, which is latency-bound and loses its memory parallelism to a division per element
    (~25 % slower on a 1M-node graph). It costs one (N_dst, F) temporary; the GPU kernel, where
    the division is cheap, divides in the loop instead.
    """
    K = backend_for(grad_out)
    grad_X = _empty(grad_out, (graph.num_src, grad_out.shape[1]))
    work = graph.num_edges * grad_out.shape[1]
    if _is_numba(K):
        G_s = np.empty_like(grad_out)
        _call(K, "scale_rows_by_inverse_degree", work, graph.indptr, grad_out, G_s)
        _call(K, "spmm_sum", work, graph.t_indptr, graph.t_indices, ones_on_edges(graph, grad_out.dtype), G_s,
              grad_X)
        return grad_X
    _call(K, "spmm_mean_backward", work, graph.t_indptr, graph.t_indices, graph.indptr, grad_out, grad_X)
    return grad_X


# --------------------------------------------------------------------------- max
def max_aggregate(graph, X):
    """out[i, f] = max of X[:, f] over i's in-neighbours (0 if none), and the winning source ids."""
    K = backend_for(X)
    out = _empty(X, (graph.num_dst, X.shape[1]))
    argmax = _empty(X, (graph.num_dst, X.shape[1]), np.int64)
    K.spmm_max(graph.indptr, graph.indices, X, out, argmax)
    return out, argmax


def max_aggregate_backward(graph, argmax, grad_out):
    """dL/dX[j, f] = sum of G[i, f] over the rows i whose max in feature f came from j: (N_src, F).

    A gather over the cached transpose (each row of dL/dX has one owner), not a scatter.
    """
    K = backend_for(grad_out)
    grad_X = _empty(grad_out, (graph.num_src, grad_out.shape[1]))
    K.spmm_max_backward(graph.t_indptr, graph.t_indices, argmax, grad_out, grad_X)
    return grad_X


# --------------------------------------------------------------------------- edge scores
def sddmm_add(graph, a_dst, a_src):
    """Per-edge logits s[e, h] = a_dst[i, h] + a_src[j, h] for edge e: j -> i: (E, H)."""
    K = backend_for(a_dst)
    out = _empty(a_dst, (graph.num_edges, a_dst.shape[1]))
    K.sddmm_add(graph.indptr, graph.indices, a_dst, a_src, out)
    return out


def sddmm_add_backward(graph, grad_s):
    """(dL/da_dst, dL/da_src): sums of the edge gradients per destination and per source."""
    K = backend_for(grad_s)
    H = grad_s.shape[1]
    g_dst = _empty(grad_s, (graph.num_dst, H))
    g_src = _empty(grad_s, (graph.num_src, H))
    K.segment_sum(graph.indptr, grad_s, g_dst)
    K.segment_sum_perm(graph.t_indptr, graph.t_perm, grad_s, g_src)
    return g_dst, g_src


def sddmm_dot(graph, A, B):
    """Per-edge, per-head dot products s[e, h] = <A[i, h], B[j, h]>: A (N_dst, H, F), B (N_src, H, F) -> (E, H)."""
    K = backend_for(A)
    out = _empty(A, (graph.num_edges, A.shape[1]))
    K.sddmm_dot(graph.indptr, graph.indices, A, B, out)
    return out


# --------------------------------------------------------------------------- edge softmax
def edge_softmax(graph, scores):
    """alpha[e, h] = softmax of scores over the edges entering the same destination: (E, H)."""
    K = backend_for(scores)
    out = _empty(scores, scores.shape)
    K.edge_softmax(graph.indptr, scores, out)
    return out


def edge_softmax_backward(graph, alpha, grad_alpha):
    """dL/ds[e] = alpha[e] (g[e] - sum_{e' in row i} alpha[e'] g[e']): (E, H)."""
    K = backend_for(alpha)
    out = _empty(alpha, alpha.shape)
    K.edge_softmax_backward(graph.indptr, alpha, grad_alpha, out)
    return out


# --------------------------------------------------------------------------- GCN normalisation
def gcn_norm(graph, dtype=np.float32, add_self_loops=True, improved=False):
    """The graph D^-1/2 (A + I) D^-1/2 of Kipf & Welling, with PyG's ``gcn_norm`` semantics.

    Self-loops are added with ``add_remaining_self_loops`` (a node that already has one keeps it,
    once); repeated edges stay and each counts in the degree. deg_i = sum of the weights of the
    edges entering i; a node of degree 0 gets coefficient 0. The edge weight of j -> i becomes
    w_ji / sqrt(deg_j deg_i). Returns (graph_hat, edge_val) with edge_val (E_hat,) ``dtype``;
    both are cached on ``graph``, so the normalisation is computed once per graph.
    """
    if getattr(graph, "device", "cpu") != "cpu":   # normalised once on the host graph; the device graph caches a device copy
        return _host_copy_on_device(graph, gcn_norm, dtype, add_self_loops, improved)

    def build():
        if graph.num_src != graph.num_dst:
            raise ValueError(f"gcn_norm needs a square graph, got shape {graph.shape}")
        # An unweighted graph is a graph of weight-1 edges: then an existing self-loop keeps weight 1
        # and only the added loops get the fill value (2 when improved), exactly as PyG does.
        w0 = np.ones(graph.num_edges) if graph.edge_weight is None else graph.edge_weight.astype(np.float64)
        g = Graph(graph.indptr, graph.indices, w0, graph.num_src, graph.edge_id, _validated=True)
        if add_self_loops:
            g = g.with_self_loops(2.0 if improved else 1.0)
        w, dst = g.edge_weight, g.dst_of_edge()
        deg = np.zeros(g.num_dst)
        np.add.at(deg, dst, w)
        with np.errstate(divide="ignore"):
            d_inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(deg), 0.0)
        return g, d_inv_sqrt[g.indices] * w * d_inv_sqrt[dst]
    g, val = graph.cached(("gcn_norm", add_self_loops, improved), build)
    return g, g.cached(("gcn_val", np.dtype(dtype).str), lambda: val.astype(dtype))
