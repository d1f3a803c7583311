"""Many graphs as one: a block-diagonal destination-major CSR ``Graph`` plus where each graph starts.

Graph-level tasks (readouts, GIN, graph transformers) train on mini-batches of small graphs. Their
union is a single graph whose adjacency is block-diagonal, so every layer that takes a ``Graph``
takes a ``GraphBatch`` unchanged: messages never cross from one graph to another, and each block of
rows of the output is what the layer gives on that graph alone. The batch also records which
graph each node belongs to, for pooling per graph.

Shapes (B graphs, graph k with n_k nodes and E_k edges, N = sum n_k, E = sum E_k):
    indptr:      (N + 1,) int64    row pointers of the block-diagonal CSR (rows = destinations)
    indices:     (E,) int32        source node of each edge, numbered in the batch (graph k's node v is
                                   graph_ptr[k] + v)
    edge_weight: (E,) float or None
    edge_id:     (E,) int64        the column of the batch's edge_index each CSR edge came from
                                   (``from_graphs``: the members' edge_index columns, concatenated)
    graph_ptr:   (B + 1,) int64    graph k owns nodes graph_ptr[k] : graph_ptr[k+1]  (PyG's ``ptr``)
    batch:       (N,) int64        graph id of each node, non-decreasing                (PyG's ``batch``)

Graph k's edges are CSR positions indptr[graph_ptr[k]] : indptr[graph_ptr[k+1]] (rows stay in node
order). ``graph_ptr`` and ``batch`` are host arrays: like ``edge_id`` they describe the batch, and
``to(device)`` carries them over unchanged (``Graph.to`` copies the object, so they survive).
A batch is always square; bipartite blocks (GraphSAGE sampling) are not batched.
"""
from __future__ import annotations

import numpy as np

from .csr import INDEX_DTYPE, INDPTR_DTYPE, Graph, GraphError


class GraphBatch(Graph):
    """B square graphs as one block-diagonal ``Graph``, with ``graph_ptr`` (B+1,) and ``batch`` (N,).

    Build with ``from_graphs([g0, g1, ...])``, ``from_edge_indices([ei0, ...], [n0, ...])`` or, from
    PyG's description, ``from_pyg(edge_index, batch)``. Every constructor of ``Graph`` also works and
    gives a batch of one graph. ``unbatch(X)`` splits an (N, F) array into its B row blocks;
    ``graph(k)`` rebuilds graph k as a plain ``Graph``.
    """

    def __init__(self, indptr, indices, edge_weight=None, num_src=None, edge_id=None, _validated=False,
                 graph_ptr=None):
        super().__init__(indptr, indices, edge_weight, num_src, edge_id, _validated)
        N = self.num_dst
        if self.num_src != N:
            raise GraphError(f"a GraphBatch must be square, got shape {self.shape}")
        if graph_ptr is None:
            graph_ptr = np.array([0, N])            # one graph: the whole thing
        gp = np.ascontiguousarray(graph_ptr)
        if gp.dtype.kind not in "iu":
            raise GraphError(f"graph_ptr must have an integer dtype, got {gp.dtype}")
        gp = gp.astype(np.int64)
        if gp.ndim != 1 or gp.size < 2:
            raise GraphError(f"graph_ptr must be a 1-D array of length B + 1 >= 2, got shape {gp.shape}")
        if gp[0] != 0 or gp[-1] != N:
            raise GraphError(f"graph_ptr must start at 0 and end at the number of nodes {N}, "
                             f"got {gp[0]} and {gp[-1]}")
        if np.any(np.diff(gp) <= 0):
            k = int(np.flatnonzero(np.diff(gp) <= 0)[0])
            raise GraphError(f"graph_ptr must be strictly increasing (every graph has a node), "
                             f"got graph_ptr[{k}] = {gp[k]} >= graph_ptr[{k + 1}] = {gp[k + 1]}")
        batch = np.repeat(np.arange(gp.size - 1, dtype=np.int64), np.diff(gp))
        if not _validated and self.num_edges:
            src_graph, dst_graph = batch[self.indices], batch[self.dst_of_edge()]
            bad = src_graph != dst_graph
            if bad.any():
                e = int(np.flatnonzero(bad)[0])
                raise GraphError(f"edge {self.indices[e]} -> {self.dst_of_edge()[e]} joins graph {src_graph[e]} to "
                                 f"graph {dst_graph[e]}: a batch is block-diagonal (no edge between graphs)")
        self.graph_ptr = gp
        self.batch = batch

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_graphs(cls, graphs):
        """The batch of a list of square ``Graph`` s, in order; edge weights are kept if all have them.

        Raises GraphError for an empty list, a non-square member (a bipartite block), or a mix of
        weighted and unweighted graphs; TypeError for a member that is not a ``Graph``.
        """
        graphs = list(graphs)
        if not graphs:
            raise GraphError("GraphBatch.from_graphs needs at least one graph, got an empty list")
        for k, g in enumerate(graphs):
            if not isinstance(g, Graph):
                raise TypeError(f"graphs[{k}] must be a Graph, got {type(g).__name__}")
            if g.num_dst != g.num_src:
                raise GraphError(f"graphs[{k}] is not square (shape {g.shape}): a batch holds whole graphs, "
                                 "not bipartite blocks")
        graphs = [g.to("cpu") for g in graphs]          # a device graph's host twin holds its host arrays
        weighted = [g.edge_weight is not None for g in graphs]
        if any(weighted) and not all(weighted):
            k = weighted.index(not weighted[0])
            raise GraphError(f"either every graph has edge weights or none has: graphs[0] is "
                             f"{'' if weighted[0] else 'un'}weighted but graphs[{k}] is "
                             f"{'' if weighted[k] else 'un'}weighted")
        n = np.array([g.num_nodes for g in graphs], dtype=np.int64)
        m = np.array([g.num_edges for g in graphs], dtype=np.int64)
        node_off = np.concatenate([[0], np.cumsum(n)])
        edge_off = np.concatenate([[0], np.cumsum(m)])
        indptr = np.concatenate([[0]] + [g.indptr[1:] + edge_off[k] for k, g in enumerate(graphs)])
        indices = np.concatenate([g.indices.astype(np.int64) + node_off[k] for k, g in enumerate(graphs)])
        edge_id = np.concatenate([np.where(g.edge_id >= 0, g.edge_id + edge_off[k], -1)    # -1: an added self-loop
                                  for k, g in enumerate(graphs)])
        weight = None
        if all(weighted):
            dtype = np.result_type(*[g.edge_weight.dtype for g in graphs])
            weight = np.concatenate([g.edge_weight.astype(dtype, copy=False) for g in graphs])
        return cls(indptr.astype(INDPTR_DTYPE), indices.astype(INDEX_DTYPE), weight, int(node_off[-1]), edge_id,
                   _validated=True, graph_ptr=node_off)

    @classmethod
    def from_edge_indices(cls, edge_index_list, num_nodes_list, edge_weight_list=None):
        """The batch of graphs given as PyG ``edge_index`` arrays (2, E_k) with n_k nodes each (local ids)."""
        edge_index_list, num_nodes_list = list(edge_index_list), list(num_nodes_list)
        if len(edge_index_list) != len(num_nodes_list):
            raise GraphError(f"edge_index_list and num_nodes_list must have the same length, got "
                             f"{len(edge_index_list)} and {len(num_nodes_list)}")
        if edge_weight_list is None:
            edge_weight_list = [None] * len(edge_index_list)
        elif len(edge_weight_list) != len(edge_index_list):
            raise GraphError(f"edge_weight_list must have one entry per graph ({len(edge_index_list)}), "
                             f"got {len(edge_weight_list)}")
        return cls.from_graphs([Graph.from_edge_index(ei, n, w)
                                for ei, n, w in zip(edge_index_list, num_nodes_list, edge_weight_list)])

    @classmethod
    def from_pyg(cls, edge_index, batch, edge_weight=None):
        """The batch PyG describes by a global ``edge_index`` (2, E) and the graph id of each node ``batch`` (N,).

        ``batch`` must be non-decreasing and use every id 0 .. B-1 (PyG's ``Batch`` does); every edge
        must join two nodes of the same graph. ``edge_id`` records the columns of ``edge_index``.
        """
        b = np.asarray(batch)
        if b.ndim != 1 or b.size == 0 or b.dtype.kind not in "iu":
            raise GraphError(f"batch must be a non-empty 1-D integer array, got shape {b.shape} and dtype {b.dtype}")
        if b[0] != 0 or np.any(np.diff(b) < 0) or np.any(np.diff(b) > 1):
            raise GraphError("batch must be non-decreasing, start at 0 and use every graph id 0 .. B-1 "
                             "(nodes grouped by graph, as in PyG)")
        counts = np.bincount(b.astype(np.int64))
        graph_ptr = np.concatenate([[0], np.cumsum(counts)])
        g = Graph.from_edge_index(edge_index, num_nodes=b.size, edge_weight=edge_weight)
        return cls(g.indptr, g.indices, g.edge_weight, g.num_src, g.edge_id, graph_ptr=graph_ptr)

    # ------------------------------------------------------------------ the members
    @property
    def num_graphs(self):
        return int(self.graph_ptr.size - 1)

    def __repr__(self):
        w = "weighted" if self.edge_weight is not None else "unweighted"
        return f"GraphBatch(num_graphs={self.num_graphs}, num_nodes={self.num_nodes}, num_edges={self.num_edges}, {w})"

    def unbatch(self, X):
        """The row blocks of X (N, ...), one per graph: a list of B views X[graph_ptr[k] : graph_ptr[k+1]]."""
        if X.shape[0] != self.num_nodes:
            raise ValueError(f"X must have one row per node of the batch ({self.num_nodes}), got shape {X.shape}")
        return [X[int(a):int(b)] for a, b in zip(self.graph_ptr[:-1], self.graph_ptr[1:])]

    def select(self, ids):
        """(sub-batch, nodes): the graphs ``ids`` (in that order, repeats allowed) as a new host ``GraphBatch``.

        ``nodes`` (N_sub,) int64 lists the batch's node of each sub-batch node, so ``X[nodes]`` are
        the sub-batch's features. Edges keep their CSR order within each graph and their weights;
        ``edge_id`` numbers the sub-batch's edges 0 .. E_sub-1 in that order. A mini-batch of graphs
        is cut this way from the batch of a whole dataset, with no Python loop over graphs.
        Raises IndexError for an id outside [-B, B), ValueError for an empty or non-integer ``ids``.
        """
        ids = np.asarray(ids)
        B = self.num_graphs
        if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
            raise ValueError(f"ids must be a non-empty 1-D integer array of graph ids, got shape {ids.shape} "
                             f"and dtype {ids.dtype}")
        if ids.min() < -B or ids.max() >= B:
            bad = ids[(ids < -B) | (ids >= B)][0]
            raise IndexError(f"graph id {bad} out of range for a batch of {B} graphs")
        ids = ids.astype(np.int64) % B
        host = self.to("cpu")
        n = self.graph_ptr[ids + 1] - self.graph_ptr[ids]
        node_ptr = np.concatenate([[0], np.cumsum(n)])
        nodes = _ranges(self.graph_ptr[ids], n)                            # old node of each new node
        indptr64 = host.indptr.astype(np.int64, copy=False)                # the whole batch's: no copy
        deg = indptr64[nodes + 1] - indptr64[nodes]
        edges = _ranges(indptr64[nodes], deg)                              # old CSR position of each new edge
        shift = np.repeat(node_ptr[:-1] - self.graph_ptr[ids], n)          # new id = old id + shift, per graph
        edge_shift = np.repeat(shift, deg)
        indptr = np.concatenate([[0], np.cumsum(deg)])
        indices = host.indices[edges].astype(np.int64) + edge_shift
        w = None if host.edge_weight is None else host.edge_weight[edges]
        sub = GraphBatch(indptr.astype(INDPTR_DTYPE, copy=False), indices.astype(INDEX_DTYPE), w, int(node_ptr[-1]),
                         np.arange(edges.size, dtype=np.int64), _validated=True, graph_ptr=node_ptr)
        # The transpose (a backward's Aᵀ) cut the same way from the batch's own, cached once: the
        # graphs are diagonal blocks, so graph k's block of Aᵀ is the batch's, ids shifted -- the
        # arrays ``Graph._transposed`` would build by a stable argsort, without sorting per batch.
        t_indptr, t_indices, t_perm = host._transposed()
        t_indptr64 = t_indptr.astype(np.int64, copy=False)
        t_deg = t_indptr64[nodes + 1] - t_indptr64[nodes]
        t_edges = _ranges(t_indptr64[nodes], t_deg)                        # old transposed position of each edge
        edge_ptr = indptr64[self.graph_ptr[ids]]                           # old CSR start of each chosen graph
        new_edge_ptr = np.concatenate([[0], np.cumsum(indptr64[self.graph_ptr[ids + 1]] - edge_ptr)])
        csr_shift = np.repeat(np.repeat(new_edge_ptr[:-1] - edge_ptr, n), t_deg)   # new CSR position = old + shift
        sub._transpose = (np.concatenate([[0], np.cumsum(t_deg)]).astype(INDPTR_DTYPE, copy=False),
                          (t_indices[t_edges].astype(np.int64) + np.repeat(shift, t_deg)).astype(INDEX_DTYPE),
                          t_perm[t_edges] + csr_shift)
        return sub, nodes

    def graph(self, k):
        """Graph k as a plain host ``Graph`` (local node ids, its edges in CSR order, edge_id local too)."""
        B = self.num_graphs
        if not -B <= k < B:
            raise IndexError(f"graph index {k} out of range for a batch of {B} graphs")
        k %= B
        host = self.to("cpu")
        lo, hi = int(self.graph_ptr[k]), int(self.graph_ptr[k + 1])
        e0, e1 = int(host.indptr[lo]), int(host.indptr[hi])
        ids = host.edge_id[e0:e1]
        local_id = np.empty_like(ids)
        local_id[np.argsort(ids, kind="stable")] = np.arange(ids.size)   # rank among graph k's edge_index columns
        w = None if host.edge_weight is None else host.edge_weight[e0:e1].copy()
        return Graph(host.indptr[lo:hi + 1] - e0, host.indices[e0:e1] - lo, w, hi - lo, local_id, _validated=True)


def _ranges(starts, lengths):
    """concatenate(arange(s, s + n) for s, n in zip(starts, lengths)), without a Python loop: (sum(lengths),) int64."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    keep = lengths > 0
    starts, lengths = np.asarray(starts, dtype=np.int64)[keep], lengths[keep]
    step = np.ones(total, dtype=np.int64)
    heads = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    step[0] = starts[0]
    step[heads[1:]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)    # jump from one range's end to the next start
    return np.cumsum(step)
