"""Message passing: out = update(aggregate(message(x))), each step beside its backward.

Derived in derivations/graph_conv.md §6.

For an edge e: j -> i with value w_e (the graph's edge weight, or 1), x (N_src, F_in):
    message     M = message(x)                      (N_src, F_msg)   one row per *source node*, not per edge
    aggregate   A[i] = ⊕_{e: j→i} w_e M[j]          (N_dst, F_msg)   ⊕ = sum ("add"), mean or max; 0 if no edge
    update      out = update(A, x)                  (N_dst, F_out)   may read x[:N_dst], the destinations' own rows
Backward with G = dL/dout, the chain rule in the reverse order:
    dA, dx_root = update_backward(G)        dx_root (N_dst, F_in): the gradient through update's read of x[:N_dst]
    dM = aggregate_backward(dA)             add: A_wᵀ dA;  mean: (D⁻¹A_w)ᵀ dA;  max: dA[i, f] to the winning edge
    dx = message_backward(dM);  dx[:N_dst] += dx_root
A message that depends on its edge only through the factor w_e is w_e M[j], so the E x F messages are
never formed: the factor rides in the SpMM. The exception is a weighted max (max_e w_e M[j]): its
per-edge products are formed (E x F_msg floats) by an SpMM on the "edge graph" (one row per edge).

A subclass writes only the steps that differ (``GraphConv``: message and update). The base covers
edge values that are constants of the graph; the convolutions written before it sit beside it:
  * GCNConv is "add" over gcn_norm's values with message x W (or update A W); it keeps its own
    forward/backward for the cached transposed values (A_wᵀ G without a per-edge gather);
  * SAGEConv is mean / sum / max, or an LSTM over ordered neighbours (no ⊕ of this form), with a
    projection and a row normalisation; edge weights ignored. It keeps its own ordered paths;
  * GATConv's w_e are attention coefficients computed from both endpoints (SDDMM + edge softmax),
    so they depend on x and their gradient flows back into x too; its fused kernel never forms them.
A layer may override forward / backward entirely with such a fused path where it pays.
"""
from types import SimpleNamespace

import numpy as np

from .. import ops
from ..device import issparse
from ..graph import Graph
from .checks import check_features, check_graph
from .module import Module

AGGREGATIONS = ("add", "mean", "max")


def _mean_graph(g):
    """g with edge values w_e / d_i (d_i = in-degree of the destination): the weighted mean as an SpMM."""
    w = g.edge_weight / np.repeat(np.diff(g.indptr), np.diff(g.indptr))
    return Graph(g.indptr, g.indices, w, g.num_src, g.edge_id, _validated=True)


def _edge_graph(g):
    """(E, N_src), row e = the one edge e: j -> i with value w_e, so spmm(., w, M)[e] = w_e M[j]."""
    return Graph(np.arange(g.num_edges + 1), g.indices, g.edge_weight, g.num_src, _validated=True)


def _row_graph(g):
    """(N_dst, E), row i = the edges entering i: aggregates per-edge rows back to destinations."""
    return Graph(g.indptr, np.arange(g.num_edges, dtype=np.int32), None, g.num_edges, _validated=True)


class MessagePassing(Module):
    """The base: ``forward(x, graph) = update(aggregate(message(x)))``; ``backward`` runs the hooks in reverse.

    Each step gets ``ctx``, the one forward cache (graph, x, want_dx, and what a step stores for its
    backward). ``use_edge_weight = False`` makes every w_e = 1.
    """

    needs_input_grad = True
    use_edge_weight = True

    def __init__(self, aggr="add"):
        super().__init__()
        if aggr not in AGGREGATIONS:
            raise ValueError(f"aggr must be one of {AGGREGATIONS}, got {aggr!r}")
        self.aggr = aggr

    # ------------------------------------------------------------------ the steps (override what differs)
    def message(self, x, ctx):
        return x                                                      # M = x

    def message_backward(self, dM, ctx):
        return dM if ctx.want_dx else None                            # dx = dM

    def update(self, A, x, ctx):
        return A                                                      # out = A

    def update_backward(self, G, ctx):
        return G, None                                                # dA = G; no direct read of x

    def aggregate(self, M, ctx):
        g = ctx.graph
        weighted = self.use_edge_weight and g.edge_weight is not None and g.num_edges > 0
        if self.aggr == "max" and weighted:                           # M_e = w_e M[j], then the max over i's edges
            ctx.edges = g.derived(("message_passing", "edges"), _edge_graph)
            ctx.rows = g.derived(("message_passing", "rows"), _row_graph)
            M_e = ops.spmm(ctx.edges, ops.edge_weight_or_ones(ctx.edges, M.dtype), M)
            A, ctx.argmax = ops.max_aggregate(ctx.rows, M_e)
        elif self.aggr == "max":
            ctx.rows = g                                              # A[i, f] = max_j M[j, f]
            A, ctx.argmax = ops.max_aggregate(g, M)
        elif self.aggr == "mean" and not weighted:
            A = ops.mean_aggregate(g, M)                              # A = D⁻¹ A M
        else:                                                         # A = A_w M, or (D⁻¹ A_w) M for a weighted mean
            ctx.agg_graph = g.derived(("message_passing", "mean"), _mean_graph) if self.aggr == "mean" else g
            ctx.agg_val = (ops.edge_weight_or_ones(ctx.agg_graph, M.dtype) if weighted
                           else ops.ones_on_edges(g, M.dtype))
            A = ops.spmm(ctx.agg_graph, ctx.agg_val, M)
        return A

    def aggregate_backward(self, dA, ctx):
        if self.aggr == "max":
            dM = ops.max_aggregate_backward(ctx.rows, ctx.argmax, dA)  # each dA[i, f] to its winning source (or edge)
            if ctx.edges is None:
                return dM
            w = ops.edge_weight_or_ones(ctx.edges, dA.dtype)
            return ops.spmm_backward_X(ctx.edges, w, dM)              # per-edge dM_e back to sources: Σ_e w_e dM_e[e]
        if ctx.agg_graph is None:
            return ops.mean_aggregate_backward(ctx.graph, dA)         # dM = (D⁻¹ A)ᵀ dA
        return ops.spmm_backward_X(ctx.agg_graph, ctx.agg_val, dA)    # dM = A_wᵀ dA

    # ------------------------------------------------------------------ the contract
    in_channels = None   # a subclass with weights sets its width: x is then checked to be (N_src, in_channels)

    def check_input(self, x, graph):
        """x checked against the graph (and the layer's in_channels and dtype); a scipy sparse x comes back as CSR.

        The graph must be given, with its N_dst destinations among its N_src sources; x must be
        (N_src, in_channels), finite, of the parameters' float dtype (``nn/checks.py``).
        """
        check_graph(self, graph)
        return check_features(x, num_cols=self.in_channels, dtype=self.param_dtype, graph=graph)

    def forward(self, x, graph=None):
        x = self.check_input(x, graph)
        ctx = SimpleNamespace(graph=graph, x=x, want_dx=self.needs_input_grad and not issparse(x),
                              edges=None, agg_graph=None)
        self._cache = None                                            # a failed forward leaves no stale cache
        out = self.update(self.aggregate(self.message(x, ctx), ctx), x, ctx)
        self._cache = ctx
        return out

    def backward(self, grad_out):
        ctx = self._saved()
        dA, dx_root = self.update_backward(grad_out, ctx)
        dM = None if dA is None else self.aggregate_backward(dA, ctx)
        dx = None if dM is None else self.message_backward(dM, ctx)
        if dx is not None and dx_root is not None:
            ops.add_(dx[:ctx.graph.num_dst], dx_root)                 # the root term read x[:N_dst]
        return dx
