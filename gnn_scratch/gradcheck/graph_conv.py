"""Gradient-check cases of GraphConv (derivations/graph_conv.md): three aggregations x unweighted / weighted x
a square graph and a bipartite block x both product orders, every parameter and the input, in float64."""
import numpy as np

from ..graph import Graph
from ..nn.conv.graph_conv import GraphConv
from . import check_module, random_test_graph
from .registry import case

F64 = np.float64
MARGIN = 1e-3  # distance kept from max ties, far beyond the 1e-6 finite-difference step
DIMS = ((3, 2), (2, 3))  # F_out < F_in: message x W_rel (for add / mean); F_out > F_in: update A W_rel


def with_weights(g, seed):
    """``g`` with edge weights drawn from U(0.5, 2) (positive, away from 0), in CSR order."""
    w = np.random.default_rng(seed).uniform(0.5, 2.0, g.num_edges)
    return Graph.from_csr(g.indptr, g.indices, w, num_src=g.num_src)


def graphs():
    """(label, graph): the fixture (8 nodes: isolated node, self-loop, repeated edge) and a bipartite
    block (6 destinations among 9 sources), each unweighted and weighted."""
    square, block = random_test_graph(0), random_test_graph(1, 6, 14, num_src=9)
    return (("square", square), ("square, weighted", with_weights(square, 5)),
            ("bipartite", block), ("bipartite, weighted", with_weights(block, 6)))


def max_tie_gap(graph, x):
    """Smallest gap, over rows and features, between the largest and the runner-up distinct message e_ji x_j."""
    w = np.ones(graph.num_edges) if graph.edge_weight is None else graph.edge_weight
    gap = np.inf
    for i in range(graph.num_dst):
        e = slice(graph.indptr[i], graph.indptr[i + 1])
        msgs = np.unique(w[e, None] * x[graph.indices[e]], axis=0)  # a repeated unweighted edge is no tie
        if len(msgs) > 1:
            top = np.sort(msgs, axis=0)
            gap = min(gap, float(np.min(top[-1] - top[-2])))
    return gap


def input_away_from_ties(graph, F_in, aggr, seed):
    """A standard-normal x (N_src, F_in); for "max", one whose messages stay MARGIN away from ties."""
    for s in range(seed, seed + 200):
        x = np.random.default_rng(s).standard_normal((graph.num_src, F_in))
        if aggr != "max" or max_tie_gap(graph, x) > MARGIN:
            return x
    raise RuntimeError("no input away from max ties found in 200 draws")


def conv_rows(aggr):
    rows = []
    for label, g in graphs():
        for F_in, F_out in DIMS:
            conv = GraphConv(F_in, F_out, aggr=aggr, seed=11, dtype=F64)
            conv.params["b"][:] = np.random.default_rng(2).uniform(-0.5, 0.5, F_out)
            rows += check_module(f"GraphConv {aggr} {F_in}->{F_out} [{label}]", conv,
                                 input_away_from_ties(g, F_in, aggr, 20), g)
    return rows


@case("GraphConv add")
def graph_conv_add():
    return conv_rows("add")


@case("GraphConv mean")
def graph_conv_mean():
    return conv_rows("mean")


@case("GraphConv max")
def graph_conv_max():
    return conv_rows("max")
