"""Graph operations: allocate the output, dispatch to the registered kernels, return.

Layers compose these; the kernels (``gnn_scratch/kernels``) only loop, and the registry picks the
implementation from where the arrays live. Each forward has its backward right below it, and
both are derived in ``derivations/aggregation.md``.

Shapes: ``graph`` is (N_dst, N_src) with E edges; ``X`` (N_src, F); ``grad_out`` (N_dst, F);
``edge_val`` (E,) in CSR order; per-head edge arrays (E, H).
"""
import numpy as np

from ..device import empty, empty_like, to_host
from ..graph import Graph
from ..kernels.registry import run
from .checks import dense, one_float, same_shape, shape


def _node_rows(op, graph, side, **arrays):
    """Each array 2-D with one row per source (side "src") or destination node of ``graph``."""
    n = graph.num_src if side == "src" else graph.num_dst
    for name, a in arrays.items():
        dense(op, name, a)
        shape(op, name, a, n, "F")


def _edge_values(op, graph, edge_val):
    shape(op, "edge_val", edge_val, graph.num_edges)


def ones_on_edges(graph, dtype):
    """A cached (E,) array of ones, on the graph's device: the weights of an unweighted graph."""
    return graph.derived(("ones", np.dtype(dtype).str), lambda g: np.ones(g.num_edges, dtype=dtype))


def edge_weight_or_ones(graph, dtype):
    """The graph's edge weights cast to ``dtype`` (cached, on the graph's device), or ones when it has none."""
    if graph.edge_weight is None:
        return ones_on_edges(graph, dtype)
    return graph.derived(("edge_weight", np.dtype(dtype).str), lambda g: g.edge_weight.astype(dtype))


# --------------------------------------------------------------------------- weighted sum (SpMM)
def _weighted_sum_inputs(op, graph, edge_val, X, **more):
    """The checks of an A X: X one row per source node, edge_val one value per edge, both (and ``more``) of one
    float dtype."""
    _node_rows(op, graph, "src", X=X)
    _edge_values(op, graph, edge_val)
    one_float(op, X=X, edge_val=edge_val, **more)


def spmm(graph, edge_val, X):
    """Weighted sum aggregation  out = A X,  A[i, j] = sum of edge_val over edges j -> i.  (N_dst, F)."""
    _weighted_sum_inputs("spmm", graph, edge_val, X)
    out = empty((graph.num_dst, X.shape[1]), X.dtype, like=X)
    run("spmm_sum", graph.num_edges * X.shape[1], graph.indptr, graph.indices, edge_val, X, out)
    return out


def spmm_bias(graph, edge_val, X, b, relu=False):
    """out = A X + b, then max(out, 0) with ``relu``: ``spmm`` followed by ``add_bias`` (and ``relu``'s output),
    the same numbers in one op -- on the CPU the bias and the ReLU touch each output row while it is in cache.
    b (F,) of X's dtype. With ``relu`` the mask x > 0 is not kept (``relu`` returns it for a backward):
    this is for a forward that no backward follows, or whose backward rebuilds the mask. (N_dst, F)."""
    _weighted_sum_inputs("spmm_bias", graph, edge_val, X, b=b)
    shape("spmm_bias", "b", b, X.shape[1])
    out = empty((graph.num_dst, X.shape[1]), X.dtype, like=X)
    run("spmm_sum_bias", graph.num_edges * X.shape[1], graph.indptr, graph.indices, edge_val, X, b, bool(relu), out)
    return out


def spmm_bias_matmul(graph, edge_val, X, b, W, relu=False):
    """act(A X + b) W, act the ReLU with ``relu``: ``spmm_bias`` followed by ``matmul(., W)``, the same bits, as one
    op that on the CPU never writes the (N_dst, F) act(A X + b) to memory (``dense_cpu.spmm_sum_bias_matmul``):
    an evaluation-mode GCN layer and the next layer's product. X (N_src, F), b (F,), W (F, C) of X's float
    dtype; returns (N_dst, C). Nothing is kept for a backward. Raises ValueError for a shape that does not fit
    the graph or each other, TypeError for mixed or non-float dtypes or a sparse W."""
    dense("spmm_bias_matmul", "W", W)
    _weighted_sum_inputs("spmm_bias_matmul", graph, edge_val, X, b=b, W=W)
    shape("spmm_bias_matmul", "b", b, X.shape[1])
    shape("spmm_bias_matmul", "W", W, X.shape[1], "C")
    out = empty((graph.num_dst, W.shape[1]), X.dtype, like=X)
    run("spmm_sum_bias_matmul", graph.num_edges * X.shape[1], graph.indptr, graph.indices, edge_val, X, b, bool(relu),
        W, out)
    return out


def spmm_backward_X(graph, edge_val, grad_out):
    """dL/dX = A^T G, as a sum over the cached transpose with the weights permuted: (N_src, F)."""
    _node_rows("spmm_backward_X", graph, "dst", grad_out=grad_out)
    _edge_values("spmm_backward_X", graph, edge_val)
    one_float("spmm_backward_X", grad_out=grad_out, edge_val=edge_val)
    grad_X = empty((graph.num_src, grad_out.shape[1]), grad_out.dtype, like=grad_out)
    run("spmm_sum_perm", graph.num_edges * grad_out.shape[1], graph.t_indptr, graph.t_indices, graph.t_perm,
        edge_val, grad_out, grad_X)
    return grad_X


def spmm_transposed(graph, edge_val, key, grad_out):
    """dL/dX = A^T G for weights that belong to the graph (GCN's normalisation): (N_src, F).

    ``edge_val[t_perm]`` -- the weights in the order of the cached transpose -- is computed once and
    cached on ``graph`` under ``key``, which turns every later A^T G into a plain SpMM over the
    transpose, without the per-edge random read edge_val[t_perm[e]]. The same products summed in
    the same order as ``spmm_backward_X``: the same bits.
    """
    _node_rows("spmm_transposed", graph, "dst", grad_out=grad_out)
    _edge_values("spmm_transposed", graph, edge_val)
    one_float("spmm_transposed", grad_out=grad_out, edge_val=edge_val)
    edge_val_t = graph.derived(("transposed_edge_val", key),
                               lambda g: np.ascontiguousarray(to_host(edge_val)[g.t_perm]))
    grad_X = empty((graph.num_src, grad_out.shape[1]), grad_out.dtype, like=grad_out)
    run("spmm_sum", graph.num_edges * grad_out.shape[1], graph.t_indptr, graph.t_indices, edge_val_t, grad_out,
        grad_X)
    return grad_X


def spmm_backward_edge_val(graph, X, grad_out):
    """dL/d edge_val[e] = <G[i], X[j]> for edge e: j -> i (an SDDMM): (E,)."""
    _node_rows("spmm_backward_edge_val", graph, "src", X=X)
    dense("spmm_backward_edge_val", "grad_out", grad_out)
    shape("spmm_backward_edge_val", "grad_out", grad_out, graph.num_dst, X.shape[1])
    one_float("spmm_backward_edge_val", X=X, grad_out=grad_out)
    out = empty((graph.num_edges, 1), X.dtype, like=X)
    # (N, 1, F) views by reshape: numba's device arrays take no None index
    run("sddmm_dot", graph.num_edges * X.shape[1], graph.indptr, graph.indices,
        grad_out.reshape(grad_out.shape[0], 1, grad_out.shape[1]), X.reshape(X.shape[0], 1, X.shape[1]), out)
    return out.reshape(graph.num_edges)


# --------------------------------------------------------------------------- mean
def mean_aggregate(graph, X):
    """out[i] = mean of X over i's in-neighbours (0 for a node with none): (N_dst, F)."""
    _node_rows("mean_aggregate", graph, "src", X=X)
    one_float("mean_aggregate", X=X)
    out = empty((graph.num_dst, X.shape[1]), X.dtype, like=X)
    run("spmm_mean", graph.num_edges * X.shape[1], graph.indptr, graph.indices, X, out)
    return out


def mean_aggregate_bias(graph, X, b, out=None, relu=False):
    """mean_aggregate(graph, X) + b (+ ``out``, added in place when given), then max(., 0) with ``relu``:
    the steps of an evaluation-mode SAGE layer -- the mean, its bias, its self term H W_self and the ReLU
    after it -- in one op, the same numbers in the same order as the steps apart; on the CPU one pass over
    each output row while it is in cache. b (F,) and out (N_dst, F) of X's dtype. As ``spmm_bias``, with
    ``relu`` no mask x > 0 is kept. Returns out (a new array when none was given): (N_dst, F).
    Raises ValueError for a shape that does not fit the graph, or an ``out`` that shares memory with X or b
    (its rows are written while X's are still gathered); TypeError for mixed or non-float dtypes."""
    _node_rows("mean_aggregate_bias", graph, "src", X=X)
    shape("mean_aggregate_bias", "b", b, X.shape[1])
    accumulate = out is not None
    if accumulate:
        dense("mean_aggregate_bias", "out", out)
        shape("mean_aggregate_bias", "out", out, graph.num_dst, X.shape[1])
        one_float("mean_aggregate_bias", X=X, b=b, out=out)
        if isinstance(out, np.ndarray) and any(isinstance(a, np.ndarray) and np.shares_memory(out, a)
                                               for a in (X, b)):
            raise ValueError("ops.mean_aggregate_bias: out must not share memory with X or b (it is written while "
                             "X's rows are still being gathered); pass a separate array")
    else:
        one_float("mean_aggregate_bias", X=X, b=b)
        out = empty((graph.num_dst, X.shape[1]), X.dtype, like=X)
    run("spmm_mean_bias", graph.num_edges * X.shape[1], graph.indptr, graph.indices, X, b, accumulate,
        bool(relu), out)
    return out


def mean_aggregate_backward(graph, grad_out):
    """dL/dX[j] = sum over edges j -> i of G[i] / deg_i: (N_src, F).

    In two steps, as derivations/aggregation.md writes it: G_s = D^-1 G (one pass), then A^T G_s as
    an unweighted gather over the transpose. That is the reference's arithmetic (the same
    divisions, sums in the same order: the same bits as ``spmm_mean_backward``) and keeps the
    division out of the gather loop, which is latency-bound and loses its memory parallelism to a
    division per element (~25 % slower on a 1M-node graph). It costs one (N_dst, F) temporary.
    """
    _node_rows("mean_aggregate_backward", graph, "dst", grad_out=grad_out)
    one_float("mean_aggregate_backward", grad_out=grad_out)
    work = graph.num_edges * grad_out.shape[1]
    G_s = empty_like(grad_out)
    run("scale_rows_by_inverse_degree", grad_out.size, graph.indptr, grad_out, G_s)
    grad_X = empty((graph.num_src, grad_out.shape[1]), grad_out.dtype, like=grad_out)
    run("spmm_sum", work, graph.t_indptr, graph.t_indices, ones_on_edges(graph, grad_out.dtype), G_s, grad_X)
    return grad_X


# --------------------------------------------------------------------------- max
def max_aggregate(graph, X):
    """out[i, f] = max of X[:, f] over i's in-neighbours (0 if none), and the winning source ids."""
    _node_rows("max_aggregate", graph, "src", X=X)
    one_float("max_aggregate", X=X)
    out = empty((graph.num_dst, X.shape[1]), X.dtype, like=X)
    argmax = empty((graph.num_dst, X.shape[1]), np.int64, like=X)
    run("spmm_max", graph.num_edges * X.shape[1], graph.indptr, graph.indices, X, out, argmax)
    return out, argmax


def max_aggregate_backward(graph, argmax, grad_out):
    """dL/dX[j, f] = sum of G[i, f] over the rows i whose max in feature f came from j: (N_src, F).

    A gather over the cached transpose (each row of dL/dX has one owner), not a scatter.
    """
    _node_rows("max_aggregate_backward", graph, "dst", grad_out=grad_out)
    same_shape("max_aggregate_backward", "grad_out", grad_out, argmax=argmax)
    one_float("max_aggregate_backward", grad_out=grad_out)
    if argmax.dtype != np.int64:
        raise TypeError(f"ops.max_aggregate_backward: argmax must be int64 (from max_aggregate), got {argmax.dtype}")
    grad_X = empty((graph.num_src, grad_out.shape[1]), grad_out.dtype, like=grad_out)
    run("spmm_max_backward", graph.num_edges * grad_out.shape[1], graph.t_indptr, graph.t_indices, argmax,
        grad_out, grad_X)
    return grad_X


# --------------------------------------------------------------------------- edge scores
def sddmm_add(graph, a_dst, a_src):
    """Per-edge logits s[e, h] = a_dst[i, h] + a_src[j, h] for edge e: j -> i: (E, H)."""
    shape("sddmm_add", "a_dst", a_dst, graph.num_dst, "H")
    shape("sddmm_add", "a_src", a_src, graph.num_src, a_dst.shape[1])
    one_float("sddmm_add", a_dst=a_dst, a_src=a_src)
    out = empty((graph.num_edges, a_dst.shape[1]), a_dst.dtype, like=a_dst)
    run("sddmm_add", out.size, graph.indptr, graph.indices, a_dst, a_src, out)
    return out


def sddmm_add_backward(graph, grad_s):
    """(dL/da_dst, dL/da_src): sums of the edge gradients per destination and per source."""
    shape("sddmm_add_backward", "grad_s", grad_s, graph.num_edges, "H")
    one_float("sddmm_add_backward", grad_s=grad_s)
    H = grad_s.shape[1]
    g_dst = empty((graph.num_dst, H), grad_s.dtype, like=grad_s)
    g_src = empty((graph.num_src, H), grad_s.dtype, like=grad_s)
    run("segment_sum", grad_s.size, graph.indptr, grad_s, g_dst)
    run("segment_sum_perm", grad_s.size, graph.t_indptr, graph.t_perm, grad_s, g_src)
    return g_dst, g_src


def sddmm_dot(graph, A, B):
    """Per-edge, per-head dot products s[e, h] = <A[i, h], B[j, h]>: A (N_dst, H, F), B (N_src, H, F) -> (E, H)."""
    shape("sddmm_dot", "A", A, graph.num_dst, "H", "F")
    shape("sddmm_dot", "B", B, graph.num_src, A.shape[1], A.shape[2])
    one_float("sddmm_dot", A=A, B=B)
    out = empty((graph.num_edges, A.shape[1]), A.dtype, like=A)
    run("sddmm_dot", graph.num_edges * A.shape[1] * A.shape[2], graph.indptr, graph.indices, A, B, out)
    return out


# --------------------------------------------------------------------------- edge softmax
def edge_softmax(graph, scores):
    """alpha[e, h] = softmax of scores over the edges entering the same destination: (E, H)."""
    shape("edge_softmax", "scores", scores, graph.num_edges, "H")
    one_float("edge_softmax", scores=scores)
    out = empty_like(scores)
    run("edge_softmax", scores.size, graph.indptr, scores, out)
    return out


def edge_softmax_backward(graph, alpha, grad_alpha):
    """dL/ds[e] = alpha[e] (g[e] - sum_{e' in row i} alpha[e'] g[e']): (E, H)."""
    shape("edge_softmax_backward", "alpha", alpha, graph.num_edges, "H")
    same_shape("edge_softmax_backward", "alpha", alpha, grad_alpha=grad_alpha)
    one_float("edge_softmax_backward", alpha=alpha, grad_alpha=grad_alpha)
    out = empty_like(alpha)
    run("edge_softmax_backward", alpha.size, graph.indptr, alpha, grad_alpha, out)
    return out


# --------------------------------------------------------------------------- GCN normalisation
def _gcn_norm_host(graph, add_self_loops, improved):
    """(graph_hat, edge_val float64) of a host graph: PyG's ``gcn_norm``, computed once per graph."""
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
    if np.any(deg < 0):   # D^-1/2 of a negative degree is not a real number: refuse, naming the node
        i = int(np.flatnonzero(deg < 0)[0])
        loops = " (self-loop included)" if add_self_loops else ""
        raise ValueError(f"gcn_norm: node {i} has weighted in-degree {deg[i]:g}{loops} < 0, so D^-1/2 is "
                         f"undefined; GCN normalisation needs edge weights whose in-degrees are >= 0")
    d_inv_sqrt = np.zeros(g.num_dst)
    pos = deg > 0
    d_inv_sqrt[pos] = 1.0 / np.sqrt(deg[pos])            # a node of degree 0 gets coefficient 0 (as PyG)
    return g, d_inv_sqrt[g.indices] * w * d_inv_sqrt[dst]


def gcn_norm(graph, dtype=np.float32, add_self_loops=True, improved=False):
    """The graph D^-1/2 (A + I) D^-1/2 of Kipf & Welling, with PyG's ``gcn_norm`` semantics.

    Self-loops are added with ``add_remaining_self_loops`` (a node that already has one keeps it,
    once); repeated edges stay and each counts in the degree. deg_i = sum of the weights of the
    edges entering i; a node of degree 0 gets coefficient 0 (PyG's ``masked_fill`` of inf), and a
    negative degree raises ValueError naming the node (D^-1/2 is undefined there; PyG gives NaN).
    The edge weight of j -> i becomes w_ji / sqrt(deg_j deg_i). Returns (graph_hat, edge_val) with edge_val (E_hat,) ``dtype``, on
    the graph's device; both are cached on ``graph``, so the normalisation is computed once per
    graph (on the host) and moved once.
    """
    def build(host):
        g, val = host.cached(("gcn_norm", add_self_loops, improved),
                             lambda: _gcn_norm_host(host, add_self_loops, improved))
        return g, g.cached(("gcn_val", np.dtype(dtype).str), lambda: val.astype(dtype))
    return graph.derived(("gcn_norm", add_self_loops, improved, np.dtype(dtype).str), build)
