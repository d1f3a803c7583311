"""Gradient-check cases of RGCNConv (derivations/rgcn.md): three aggregations x {no decomposition, basis, blocks}
x a square graph and a bipartite block x both product orders, every parameter and the input, in float64; and the
featureless input (x = None, "mean" / "add"), every parameter."""
import numpy as np

from ..nn.conv.rgcn_conv import RGCNConv, _relation_graphs
from ..nn.module import Module
from . import check_module, random_test_graph
from .graph_conv import input_away_from_ties
from .registry import case

F64 = np.float64
R = 3
DIMS = ((4, 2), (2, 4))   # F_out < F_in: transform first (mean / add); F_out > F_in: aggregate first
DECOMPOSITIONS = (("none", {}), ("basis", {"num_bases": 2}), ("blocks", {"num_blocks": 2}))


class WithRelations(Module):
    """An RGCNConv with its edge_type bound, so the generic ``check_module(x, graph)`` drives it."""

    def __init__(self, conv, edge_type):
        super().__init__()
        self.conv, self.edge_type = conv, edge_type

    def forward(self, x, graph=None):
        return self.conv.forward(x, graph, self.edge_type)

    def backward(self, grad_out):
        return self.conv.backward(grad_out)


def relation_types(graph, seed):
    """Random relation ids in edge_index order, with both copies of the repeated edge 1 -> 2 in relation 1
    (so that relation's mean over N_2^1 counts the edge twice) and every relation present."""
    et = np.random.default_rng(seed).integers(0, R, graph.num_edges)
    et[:R] = np.arange(R)
    csr_types = et[graph.edge_id]
    row2 = slice(graph.indptr[2], graph.indptr[3])
    repeated = graph.edge_id[row2][graph.indices[row2] == 1]
    et[repeated] = 1
    assert len(repeated) >= 2 and np.all(csr_types >= 0)
    return et


def graphs():
    """(label, graph, edge_type): the fixture (8 nodes: isolated node, self-loop, repeated edge) and a bipartite
    block (6 destinations among 9 sources), each with 3 relations."""
    square, block = random_test_graph(0), random_test_graph(1, 6, 14, num_src=9)
    return (("square", square, relation_types(square, 3)), ("bipartite", block, relation_types(block, 4)))


def conv(F_in, F_out, aggr, decomposition, seed=11):
    c = RGCNConv(F_in, F_out, R, aggr=aggr, seed=seed, dtype=F64, **decomposition)
    c.params["bias"][:] = np.random.default_rng(2).uniform(-0.5, 0.5, F_out)
    return c


def conv_rows(aggr):
    rows = []
    for label, g, et in graphs():
        for name, dec in DECOMPOSITIONS:
            for F_in, F_out in DIMS:
                # "max" is per relation: ties are kept away within each N_i^r (the rows of by_relation)
                x = input_away_from_ties(_relation_graphs(g, et, R)[0], F_in, aggr, 20)
                rows += check_module(f"RGCNConv {aggr} {name} {F_in}->{F_out} [{label}]",
                                     WithRelations(conv(F_in, F_out, aggr, dec), et), x, g)
    return rows


def featureless_rows():
    rows = []
    _, g, et = graphs()[0]
    for aggr in ("mean", "add"):
        for name, dec in DECOMPOSITIONS:
            rows += check_module(f"RGCNConv featureless {aggr} {name} {g.num_nodes}->4",
                                 WithRelations(conv(g.num_nodes, 4, aggr, dec), et), None, g, check_input=False)
    return rows


@case("RGCNConv mean")
def rgcn_mean():
    return conv_rows("mean")


@case("RGCNConv add")
def rgcn_add():
    return conv_rows("add")


@case("RGCNConv max")
def rgcn_max():
    return conv_rows("max")


@case("RGCNConv featureless")
def rgcn_featureless():
    return featureless_rows()
