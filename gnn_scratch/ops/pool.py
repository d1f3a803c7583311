"""Graph readouts over a ``GraphBatch``: one (F,) row per graph from its nodes' rows, each beside its backward.

Derived in derivations/pooling.md. A batch's node rows are contiguous per graph (``graph_ptr``),
so a readout is a reduction over row segments: graph k owns rows graph_ptr[k] : graph_ptr[k+1],
and every graph has at least one node (``GraphBatch`` refuses an empty one).

    global_add_pool(x, batch)      out[k] = sum_{n in k} x[n]                 dX[n] = G[k]
    global_mean_pool(x, batch)     out[k] = (1/n_k) sum_{n in k} x[n]         dX[n] = G[k] / n_k
    global_max_pool(x, batch)      out[k, f] = max_{n in k} x[n, f]           dX[n, f] = G[k, f] if n won (k, f)

Max tie rule: the first node of the graph (lowest index) that attains the maximum wins and alone
receives the gradient (PyG 2.8's scatter-max splits a tie's gradient evenly between the tied nodes).

Shapes: x (N, F) float, batch a ``GraphBatch`` of B graphs over N nodes, out and G (B, F), dX (N, F).
``graph_ptr`` is a host array of the batch; the kernels read a copy on the features' device
(``Graph.derived``), made once per batch.
"""
import numpy as np

from ..device import empty
from ..kernels.registry import run
from .checks import dense, one_float, same_shape, shape


def _graph_ptr(op, batch):
    """The batch's graph_ptr on the batch's device; TypeError for anything but a ``GraphBatch``."""
    if not hasattr(batch, "graph_ptr") or not hasattr(batch, "derived"):
        raise TypeError(f"ops.{op}: batch must be a gnn_scratch GraphBatch (graph_ptr marks each graph's nodes), "
                        f"got {type(batch).__name__}")
    return batch.derived(("pool", "graph_ptr"), lambda g: g.graph_ptr)


def _nodes(op, batch, name, x):
    """x (N, F) dense float with one row per node of the batch."""
    shape(op, name, dense(op, name, x), batch.num_nodes, "F")
    one_float(op, **{name: x})


def _graphs(op, batch, G):
    """G (B, F) dense float with one row per graph of the batch."""
    shape(op, "G", dense(op, "G", G), batch.num_graphs, "F")
    one_float(op, G=G)


def global_add_pool(x, batch):
    """out[k] = sum of x over the nodes of graph k: (N, F) -> (B, F)  (PyG's ``global_add_pool``)."""
    ptr = _graph_ptr("global_add_pool", batch)
    _nodes("global_add_pool", batch, "x", x)
    out = empty((batch.num_graphs, x.shape[1]), x.dtype, like=x)
    run("segment_sum", x.size, ptr, x, out)       # the sparse family's sum of row segments, graph_ptr as indptr
    return out


def global_add_pool_backward(batch, G):
    """dL/dx of ``global_add_pool``: dX[n] = G[k] for each node n of graph k, (B, F) -> (N, F)."""
    ptr = _graph_ptr("global_add_pool_backward", batch)
    _graphs("global_add_pool_backward", batch, G)
    dX = empty((batch.num_nodes, G.shape[1]), G.dtype, like=G)
    run("pool_sum_backward", dX.size, ptr, G, dX)
    return dX


def global_mean_pool(x, batch):
    """out[k] = mean of x over the n_k nodes of graph k: (N, F) -> (B, F)  (PyG's ``global_mean_pool``)."""
    ptr = _graph_ptr("global_mean_pool", batch)
    _nodes("global_mean_pool", batch, "x", x)
    out = empty((batch.num_graphs, x.shape[1]), x.dtype, like=x)
    run("pool_mean", x.size, ptr, x, out)
    return out


def global_mean_pool_backward(batch, G):
    """dL/dx of ``global_mean_pool``: dX[n] = G[k] / n_k for each node n of graph k, (B, F) -> (N, F)."""
    ptr = _graph_ptr("global_mean_pool_backward", batch)
    _graphs("global_mean_pool_backward", batch, G)
    dX = empty((batch.num_nodes, G.shape[1]), G.dtype, like=G)
    run("pool_mean_backward", dX.size, ptr, G, dX)
    return dX


def global_max_pool(x, batch, return_argmax=False):
    """out[k, f] = max of x[:, f] over the nodes of graph k: (N, F) -> (B, F)  (PyG's ``global_max_pool``).

    With ``return_argmax``, (out, argmax): argmax (B, F) int64 holds the winning node (its index in
    the batch), the first of the graph on a tie; ``global_max_pool_backward`` needs it.
    """
    ptr = _graph_ptr("global_max_pool", batch)
    _nodes("global_max_pool", batch, "x", x)
    out = empty((batch.num_graphs, x.shape[1]), x.dtype, like=x)
    argmax = empty((batch.num_graphs, x.shape[1]), np.int64, like=x)
    run("pool_max", x.size, ptr, x, out, argmax)
    return (out, argmax) if return_argmax else out


def global_max_pool_backward(batch, argmax, G):
    """dL/dx of ``global_max_pool``: dX[n, f] = G[k, f] where n = argmax[k, f], else 0, (B, F) -> (N, F)."""
    ptr = _graph_ptr("global_max_pool_backward", batch)
    _graphs("global_max_pool_backward", batch, G)
    same_shape("global_max_pool_backward", "G", G, argmax=argmax)
    if argmax.dtype != np.int64:
        raise TypeError(f"ops.global_max_pool_backward: argmax must be int64 (from global_max_pool), "
                        f"got {argmax.dtype}")
    if type(argmax) is np.ndarray:     # a winner outside its graph would be a write outside dX's rows of it
        gp = batch.graph_ptr
        outside = (argmax < gp[:-1, None]) | (argmax >= gp[1:, None])
        if outside.any():
            k, f = (int(i) for i in np.argwhere(outside)[0])
            raise ValueError(f"ops.global_max_pool_backward: argmax[{k}, {f}] = {argmax[k, f]} is not a node of graph "
                             f"{k} (nodes {gp[k]} .. {gp[k + 1] - 1}); pass the argmax that global_max_pool returned")
    dX = empty((batch.num_nodes, G.shape[1]), G.dtype, like=G)
    run("pool_max_backward", dX.size, ptr, argmax, G, dX)
    return dX
