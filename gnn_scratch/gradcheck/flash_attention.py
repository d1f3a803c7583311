"""Gradient-check cases of the fused attention (derivations/flash_attention.md): dQ, dK, dV of
``ops.flash_attention``'s output through L = sum(G * O), in float64, by central differences.

Full attention ignores edges: what matters is how the batch cuts the nodes into graphs. The
batches hold the usual fixture graphs (``random_test_graph``: their isolated node, self-loop and
repeated edge change nothing here, which is the point of full attention), a one-node graph (it
attends only to itself: O = V there, and its dQ, dK are exactly 0), an empty graph in a raw
``graph_ptr``, and a 70-node graph, which crosses the kernels' 64-row and 64-key tiles.
"""
import numpy as np

from .. import ops
from ..graph import Graph, GraphBatch
from . import check_function, random_test_graph
from .registry import case


def _inputs(seed, N, H, d, dv, spread=1.0):
    rng = np.random.default_rng(seed)
    return dict(Q=spread * rng.standard_normal((N, H, d)), K=spread * rng.standard_normal((N, H, d)),
                V=rng.standard_normal((N, H, dv)))


def attention_rows(name, graph_ptr, inputs, scale=None, seed=0):
    """Rows for Q, K and V of ``ops.flash_attention`` over ``graph_ptr`` (an array or a GraphBatch)."""
    def forward(Q, K, V):
        return ops.flash_attention(Q, K, V, graph_ptr, scale)[0]

    def backward(G, Q, K, V):
        O, L = ops.flash_attention(Q, K, V, graph_ptr, scale)
        dQ, dK, dV = ops.flash_attention_backward(G, Q, K, V, O, L, graph_ptr, scale)
        return {"Q": dQ, "K": dK, "V": dV}

    return check_function(name, forward, backward, inputs, seed=seed)


@case("flash attention")
def flash_attention():
    single = Graph.from_edge_index(np.zeros((2, 0), np.int64), num_nodes=1)
    batch = GraphBatch.from_graphs([random_test_graph(0), single, random_test_graph(1, 5, 8)])
    rows = attention_rows("flash attention, GraphBatch 8 + 1 + 5 nodes, H = 2, d = 3, dv = 2", batch,
                          _inputs(1, batch.num_nodes, 2, 3, 2))
    ptr = np.array([0, 4, 4, 11, 12])             # graph 1 empty, graph 3 a single node
    rows += attention_rows("flash attention, graph_ptr with an empty graph, scale 0.9, scores ~ 10", ptr,
                           _inputs(2, 12, 3, 2, 3, spread=2.5), scale=0.9, seed=1)
    rows += attention_rows("flash attention, one graph of 70 nodes (two tiles), H = 1, d = dv = 2",
                           np.array([0, 70]), _inputs(3, 70, 1, 2, 2), seed=2)
    return rows
