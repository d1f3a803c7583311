"""Gradient-check cases of heterogeneous graph attention (HANConv): every parameter and every node type's input.

The fixtures are random heterogeneous graphs (``random_hetero_graphs``): four node types, five
relations, two and three of them into the same destination type, a same-type relation with
self-loops and a repeated edge, repeated edges across types, a destination with no in-edge in any
relation, and node types that no relation enters (their output is None, their features still feed
others); and a metapath-style variant (square graphs over one type, as HAN is used on ACM / DBLP).
"""
import numpy as np

from ..graph import Graph
from ..nn.conv.han_conv import HANConv
from . import Row, _replaying, numerical_gradient, relative_error, roundoff_floor
from .registry import case

F64 = np.float64


def relation_graph(src, dst, num_src, num_dst):
    """The destination-major ``Graph`` of the edges src -> dst (rows = the num_dst destinations)."""
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    order = np.argsort(dst, kind="stable")
    indptr = np.zeros(num_dst + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst, minlength=num_dst), out=indptr[1:])
    return Graph.from_csr(indptr, src[order], num_src=num_src)


def random_hetero_graphs(seed=0, metapaths=False, num_edges=14):
    """(num_nodes dict, {edge type: Graph}, {edge type: (2, E) edge_index}) of a small random heterogeneous graph.

    Typed: paper (9), author (7), subject (4), term (3). Relations author->paper, subject->paper,
    paper->paper (self-loops 0->0 and 3->3, the edge 1->2 twice) into paper; paper->author and
    term->author into author; nothing into subject or term (outputs None; term feeds author; subject
    feeds paper). The last paper and the last author have no in-edge at all; author->paper repeats 2->1.
    ``metapaths=True``: one type, paper (9), with two square metapath-like relations PAP and PSP
    (self-loops on every node that has an in-edge, repeated edges, the last paper isolated).
    """
    rng = np.random.default_rng(seed)
    if metapaths:
        n = {"paper": 9}
        spec = [("paper", "PAP", "paper"), ("paper", "PSP", "paper")]
    else:
        n = {"paper": 9, "author": 7, "subject": 4, "term": 3}
        spec = [("author", "writes", "paper"), ("subject", "about", "paper"), ("paper", "cites", "paper"),
                ("paper", "written_by", "author"), ("term", "tags", "author")]
    graphs, edge_index = {}, {}
    for k, et in enumerate(spec):
        s, _, d = et
        src = rng.integers(0, n[s], num_edges)
        dst = rng.integers(0, n[d] - 1, num_edges)          # the last node of each type: no in-edge
        if s == d:                                          # self-loops and a repeated edge
            extra_src, extra_dst = [0, 3, 1, 1], [0, 3, 2, 2]
            if metapaths:                                   # a metapath graph holds i -> i for every i reached
                reached = np.unique(dst)
                extra_src, extra_dst = list(reached) + [1], list(reached) + [2]
        else:
            extra_src, extra_dst = [min(2, n[s] - 1)] * 2, [1, 1]
        src = np.concatenate([src, extra_src])
        dst = np.concatenate([dst, extra_dst])
        graphs[et] = relation_graph(src, dst, n[s], n[d])
        edge_index[et] = np.stack([src, dst])
    return n, graphs, edge_index


def metadata_of(num_nodes, graphs, extra_node_types=()):
    """(node_types, edge_types) of the fixture, as HANConv and PyG take them."""
    return list(num_nodes) + list(extra_node_types), list(graphs)


def random_features(num_nodes, in_channels, seed):
    rng = np.random.default_rng(seed)
    return {nt: rng.standard_normal((n, in_channels[nt])) for nt, n in num_nodes.items()}


def check_hetero(name, conv, x_dict, graphs, seed=0):
    """Rows for every parameter of ``conv`` and every x of ``x_dict`` through L = sum_v sum(G_v * out_v)."""
    rng = np.random.default_rng(seed)
    first = conv.forward(x_dict, graphs)
    G = {nt: rng.standard_normal(o.shape) for nt, o in first.items() if o is not None}
    output = _replaying(conv, lambda: conv.forward(x_dict, graphs))   # the same dropout masks every time

    def loss():
        return float(sum(np.sum(G[nt] * o) for nt, o in output().items() if o is not None))

    floor = roundoff_floor(sum(np.sum(np.abs(G[nt] * o)) for nt, o in output().items() if o is not None))
    conv.zero_grad()
    dx = conv.backward(G)                     # after the replayed forward: the masks the differences see
    rows = []
    for pname, p, g in conv.named_parameters():
        err = relative_error(g, numerical_gradient(loss, p), floor)
        rows.append(Row(name, pname, p.shape, err, err < 1e-6))
    for nt, x in x_dict.items():
        err = relative_error(dx[nt], numerical_gradient(loss, x), floor)
        rows.append(Row(name, f"input x[{nt}]", x.shape, err, err < 1e-6))
    return rows


def han_rows(heads, dropout, metapaths, seed):
    num_nodes, graphs, _ = random_hetero_graphs(seed, metapaths=metapaths)
    in_channels = {nt: 3 + k % 3 for k, nt in enumerate(num_nodes)}
    conv = HANConv(in_channels, 4, metadata_of(num_nodes, graphs), heads=heads, dropout=dropout,
                   seed=seed + 1, dtype=F64).train()
    label = f"HANConv heads={heads} attn dropout={dropout}" + (" metapaths" if metapaths else " typed")
    return check_hetero(label, conv, random_features(num_nodes, in_channels, seed + 2), graphs, seed=seed + 3)


@case("HANConv")
def han_conv():
    return (han_rows(1, 0.0, False, 40) + han_rows(2, 0.0, False, 41) + han_rows(2, 0.4, False, 42)
            + han_rows(2, 0.0, True, 43))
