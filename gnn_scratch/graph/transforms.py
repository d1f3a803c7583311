"""Transforms that make a new ``Graph`` from a graph: random edge subsets (DropEdge).

DropEdge (Rong, Huang, Xu & Huang, ICLR 2020) trains on a random subgraph, a fresh one per step,
and evaluates on the whole graph. The layers need nothing new: they see another ``Graph``, and
whatever they derive from it (GCN's D^-1/2 (A + I) D^-1/2, the mean's degrees, GAT's self-loops)
is computed on the subgraph, which is what DropEdge means.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..kernels.rng import keep_mask_host, keep_threshold
from .csr import INDPTR_DTYPE, Graph


def dropout_edge(graph, p=0.5, key=0, training=True):
    """(subgraph, edge_mask): every edge of ``graph`` dropped independently with probability ``p``.

    PyG's ``torch_geometric.utils.dropout_edge(edge_index, p, force_undirected=False, training)``:
    each *directed* edge is a coin of its own (both directions of an undirected edge are dropped
    independently); repeated edges and self-loops are edges like the others. Edge k of the CSR
    order is kept when ``hash64(key, k) >> 32 < round((1 - p) 2^32)`` (``kernels/rng.py``), so the
    subset is a pure function of (key, graph): the same key gives the same subgraph, bit for bit.
    ``training=False`` or ``p == 0`` returns ``graph`` itself and an all-True mask (PyG's
    behaviour at evaluation).

    graph: a host ``Graph`` (square or a block) with E edges. Returns the subgraph (same nodes, the
    kept edges in their CSR order, their weights, ``edge_id`` pointing at the original
    ``edge_index`` columns) and edge_mask (E,) bool in the CSR order of ``graph``. Raises ValueError
    unless 0 <= p < 1, TypeError for a key that is not a non-negative integer below 2^64 or a
    graph that is not a ``Graph``.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a gnn_scratch Graph, got {type(graph).__name__}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout_edge: p must be a probability in [0, 1), got {p!r}")
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, (numbers.Integral, np.unsignedinteger)) \
            or not 0 <= int(key) < 2 ** 64:
        raise TypeError(f"dropout_edge: key must be an integer in [0, 2^64), got {key!r}")
    graph = graph.host
    E = graph.num_edges
    if not training or p == 0.0:
        return graph, np.ones(E, dtype=bool)
    mask = keep_mask_host(np.uint64(key), keep_threshold(1.0 - float(p)), E)
    kept_per_row = np.bincount(graph.dst_of_edge()[mask], minlength=graph.num_dst)
    indptr = np.zeros(graph.num_dst + 1, dtype=INDPTR_DTYPE)
    np.cumsum(kept_per_row, out=indptr[1:])
    weight = None if graph.edge_weight is None else graph.edge_weight[mask]
    sub = Graph(indptr, graph.indices[mask], weight, graph.num_src, edge_id=graph.edge_id[mask], _validated=True)
    return sub, mask
