"""A heterogeneous graph: typed nodes, typed relations, each relation a destination-major CSR ``Graph``.

Conventions are PyG's ``HeteroData`` ones, so a dict of ``edge_index`` arrays moves between the two
without translation:

* node types are strings, kept in insertion order (``num_nodes``' order); node ids are 0-based
  *within* their type;
* an edge type (a relation) is a triple ``(src_type, name, dst_type)``; its ``edge_index`` (2, E)
  holds source ids (of ``src_type``) in row 0 and target ids (of ``dst_type``) in row 1;
* ``with_inverse()`` adds ``(dst_type, "rev_" + name, src_type)`` for every relation, with the
  edges flipped in the same column order (PyG's ``ToUndirected`` naming);
* ``to_homogeneous()`` numbers nodes type after type and concatenates the relations in edge-type
  order, exactly as ``HeteroData.to_homogeneous()`` does.

Each relation is stored as a ``Graph`` (rows = the ``dst_type`` nodes, ``num_src`` = the
``src_type`` count), so a relation-wise layer (RGCN, HAN's node-level attention) aggregates into
its target type with the same row-parallel kernels as a homogeneous one.

Shapes (N_t = number of nodes of type t, E_r = number of edges of relation r):
    num_nodes[t]:        int >= 1
    edge_index_dict[r]:  (2, E_r) int64     row 0 = source id in [0, N_src), row 1 = target id in [0, N_dst)
    edge_weight_dict[r]: (E_r,) float       optional, in edge_index column order
    x_dict[t]:           (N_t, F_t) float32 / float64, dense or scipy.sparse CSR; None for a featureless type

A ``HeteroGraph`` is immutable: every array is copied on the way in and made read-only, and the
mappings it hands out are read-only views. That is what lets it cache the metapath graphs and the
homogeneous view: what they derive from cannot change under them. To change a graph, build a new one.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp

from .csr import INDPTR_DTYPE, Graph, GraphError, _as_index_array, _check_weight, check_feature_array

# a count of metapath instances is stored as a float32 weight only while float32 holds it exactly
_FLOAT32_EXACT = 2 ** 24


def _freeze(a):
    """``a`` (an ndarray or a scipy CSR matrix, already a private copy) made read-only; returned."""
    if sp.issparse(a):
        for arr in (a.data, a.indices, a.indptr):
            arr.flags.writeable = False
    elif a is not None:
        a.flags.writeable = False
    return a


def _edge_type_str(et):
    return f"({', '.join(repr(s) for s in et)})"


@dataclass(frozen=True, eq=False)
class Homogeneous:
    """One graph over all nodes of a ``HeteroGraph`` (``HeteroGraph.to_homogeneous``), in PyG's order.

    graph:       Graph over all N = sum_t N_t nodes; node i of type t is ``node_offset[t] + i``
    edge_index:  (2, E) int64, the relations' edges concatenated in edge-type order, ids offset
    edge_type:   (E,) int64, index into ``edge_types`` of each ``edge_index`` column; the CSR order of
                 ``graph`` is ``edge_type[graph.edge_id]``
    node_type:   (N,) int64, index into ``node_types`` of each node
    node_offset: dict node type -> first global id of that type
    edge_offset: dict edge type -> first ``edge_index`` column of that relation
    node_types, edge_types: the type lists the codes index
    """

    graph: Graph
    edge_index: np.ndarray
    edge_type: np.ndarray
    node_type: np.ndarray
    node_offset: dict
    edge_offset: dict
    node_types: list
    edge_types: list

    @property
    def num_nodes(self) -> int:
        return int(self.node_type.size)

    @property
    def num_edges(self) -> int:
        return int(self.edge_type.size)


class HeteroGraph:
    """Typed nodes and relations; each relation a destination-major CSR ``Graph``. Immutable.

    HeteroGraph(num_nodes, edge_index_dict, x_dict=None, edge_weight_dict=None)

    num_nodes: dict node type (str) -> count (int >= 1); its order is the node-type order.
    edge_index_dict: dict (src_type, name, dst_type) -> (2, E) integer array, PyG's convention (row 0 =
        source id within src_type, row 1 = target id within dst_type). Repeated edges are kept (each is
        its own message, as in PyG); its order is the edge-type order.
    x_dict: dict node type -> (N_t, F_t) float32/float64 features, dense ndarray or scipy.sparse (kept
        sparse, as CSR); a type left out (or given None) has no features (``x_dict[t] is None``).
    edge_weight_dict: dict edge type -> (E,) float weights in edge_index column order (optional per relation).

    Raises GraphError (a ValueError) for: a num_nodes that is not a dict of str -> int, an empty node
    type (count 0), an edge type that is not a triple of strings, a relation naming a node type not in
    num_nodes, an edge_index of the wrong shape or dtype, ids out of range for their type (naming the
    relation, the side and the column), a weight array of the wrong shape or dtype or non-finite, and
    an x_dict or edge_weight_dict key that is not a known type. Features are checked by
    ``check_feature_array``: TypeError for a non-float dtype or a non-array, ValueError for a row count
    other than N_t, a non-2-D array, or a NaN / Inf (named by row and column).
    """

    def __init__(self, num_nodes, edge_index_dict, x_dict=None, edge_weight_dict=None):
        if not isinstance(num_nodes, dict) or not num_nodes:
            raise GraphError(f"num_nodes must be a non-empty dict node type -> count, got {num_nodes!r}")
        counts = {}
        for t, n in num_nodes.items():
            if not isinstance(t, str) or not t:
                raise GraphError(f"node types must be non-empty strings, got {t!r} in num_nodes")
            if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
                raise GraphError(f"num_nodes[{t!r}] must be an int >= 1, got {n!r}")
            if n < 1:
                raise GraphError(f"node type {t!r} is empty: num_nodes[{t!r}] must be >= 1, got {int(n)}")
            counts[t] = int(n)
        self._num_nodes = counts

        if not isinstance(edge_index_dict, dict):
            raise GraphError(f"edge_index_dict must be a dict (src_type, name, dst_type) -> (2, E) array, "
                             f"got {type(edge_index_dict).__name__}")
        edge_weight_dict = {} if edge_weight_dict is None else edge_weight_dict
        if not isinstance(edge_weight_dict, dict):
            raise GraphError(f"edge_weight_dict must be a dict edge type -> (E,) float array, "
                             f"got {type(edge_weight_dict).__name__}")
        for et in edge_weight_dict:
            if et not in edge_index_dict:
                raise GraphError(f"edge_weight_dict has the key {et!r}, which is not an edge type of edge_index_dict")
        self._edge_index, self._edge_weight = {}, {}
        for et, ei in edge_index_dict.items():
            et = self._check_edge_type(et)
            ei = self._check_edge_index(et, ei)
            w = edge_weight_dict.get(et)
            if w is not None:
                w = _freeze(np.array(_check_weight(w, ei.shape[1], f"edge_weight_dict[{_edge_type_str(et)}]")))
            self._edge_index[et] = ei
            self._edge_weight[et] = w

        x_dict = {} if x_dict is None else x_dict
        if not isinstance(x_dict, dict):
            raise GraphError(f"x_dict must be a dict node type -> (N_t, F_t) array, got {type(x_dict).__name__}")
        for t in x_dict:
            if t not in counts:
                raise GraphError(f"x_dict has the key {t!r}, which is not a node type "
                                 f"(node types: {', '.join(map(repr, counts))})")
        self._x = {}
        for t, n in counts.items():
            X = x_dict.get(t)
            if X is not None:
                X = check_feature_array(X, f"x_dict[{t!r}]", n, context=f"node type {t!r} with {n} nodes")
                if sp.issparse(X):
                    X = X.copy()
                    X.sum_duplicates()       # canonical before freezing: later sort/merge calls are no-ops
                    X.sort_indices()
                else:
                    X = np.array(X, copy=True)
                X = _freeze(X)
            self._x[t] = X

        self._graphs = {et: self._build_relation(et) for et in self._edge_index}
        self._cache = {}

    # ------------------------------------------------------------------ validation
    def _check_edge_type(self, et):
        if not (isinstance(et, tuple) and len(et) == 3 and all(isinstance(s, str) and s for s in et)):
            raise GraphError(f"edge types must be triples (src_type, name, dst_type) of non-empty strings, got {et!r}")
        for side, t in (("source", et[0]), ("destination", et[2])):
            if t not in self._num_nodes:
                raise GraphError(f"relation {_edge_type_str(et)} has the {side} type {t!r}, which is not a node "
                                 f"type (node types: {', '.join(map(repr, self._num_nodes))})")
        return et

    def _check_edge_index(self, et, ei):
        name = f"edge_index_dict[{_edge_type_str(et)}]"
        ei = _as_index_array(ei, name)
        if ei.ndim != 2 or ei.shape[0] != 2:
            raise GraphError(f"{name} must have shape (2, E), got {ei.shape}")
        for row, side, t in ((0, "source", et[0]), (1, "target", et[2])):
            ids = ei[row]
            if not ids.size:
                continue
            n = self._num_nodes[t]
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= n:
                col = int(np.argmin(ids)) if lo < 0 else int(np.argmax(ids))
                raise GraphError(f"{name} has {side} id {int(ids[col])} at column {col}, out of range for "
                                 f"the {n} nodes of type {t!r}")
        return _freeze(np.array(ei, dtype=np.int64, copy=True))

    def _build_relation(self, et):
        """The relation as a CSR Graph: rows = dst_type nodes, num_src = src_type count, edge_id = column."""
        ei, w = self._edge_index[et], self._edge_weight[et]
        n_dst = self._num_nodes[et[2]]
        order = np.argsort(ei[1], kind="stable")   # within a row, edges keep their column order
        indptr = np.zeros(n_dst + 1, dtype=INDPTR_DTYPE)
        np.cumsum(np.bincount(ei[1], minlength=n_dst), out=indptr[1:])
        return Graph(indptr, ei[0][order], None if w is None else w[order], num_src=self._num_nodes[et[0]],
                     edge_id=order)

    # ------------------------------------------------------------------ basic facts
    @property
    def node_types(self) -> list:
        return list(self._num_nodes)

    @property
    def edge_types(self) -> list:
        return list(self._edge_index)

    @property
    def num_nodes(self):
        """Read-only dict node type -> count."""
        return MappingProxyType(self._num_nodes)

    @property
    def num_edges(self):
        """Read-only dict edge type -> number of edges (repeated edges counted)."""
        return MappingProxyType({et: int(ei.shape[1]) for et, ei in self._edge_index.items()})

    @property
    def x_dict(self):
        """Read-only dict node type -> features (read-only ndarray or CSR matrix), or None for a featureless type."""
        return MappingProxyType(self._x)

    @property
    def graphs(self):
        """Read-only dict edge type -> ``Graph`` (rows = dst_type nodes, num_src = count of src_type)."""
        return MappingProxyType(self._graphs)

    @property
    def edge_weight_dict(self):
        """Read-only dict edge type -> (E,) weights in edge_index column order, for the weighted relations only."""
        return MappingProxyType({et: w for et, w in self._edge_weight.items() if w is not None})

    def to_edge_index_dict(self) -> dict:
        """dict edge type -> (2, E) int64 ``edge_index`` (a fresh writable copy, in the order it was given).

        With ``num_nodes`` (and ``x_dict``, ``edge_weight_dict``) it rebuilds this graph, and it is what
        PyG's ``HeteroData`` holds per relation (``data[et].edge_index = torch.from_numpy(...)``).
        """
        return {et: ei.copy() for et, ei in self._edge_index.items()}

    def relation(self, key) -> Graph:
        """The ``Graph`` of one relation, by its edge type, its name (when no other relation has it), or a
        (src_type, dst_type) pair (when exactly one relation joins them, in that direction).

        Raises KeyError naming the key and the edge types when none or several relations match.
        """
        return self._graphs[self._resolve(key)]

    def _resolve(self, key):
        if isinstance(key, tuple) and len(key) == 3:
            if key in self._graphs:
                return key
            matches = []
        elif isinstance(key, str):
            matches = [et for et in self._edge_index if et[1] == key]
        elif isinstance(key, tuple) and len(key) == 2:
            matches = [et for et in self._edge_index if (et[0], et[2]) == key]
        else:
            raise KeyError(f"a relation is named by an edge type (src_type, name, dst_type), a name or a "
                           f"(src_type, dst_type) pair, got {key!r}")
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(map(_edge_type_str, self._edge_index)) or "none"
        what = "several relations" if matches else "no relation"
        raise KeyError(f"{what} match {key!r} (edge types: {known})")

    def __repr__(self):
        nodes = ", ".join(f"{t}={n}" for t, n in self._num_nodes.items())
        return (f"HeteroGraph(nodes: {nodes}; {len(self._edge_index)} relations, "
                f"{sum(ei.shape[1] for ei in self._edge_index.values())} edges)")

    def summary(self) -> str:
        """A multi-line table: each node type with its count and features, each relation with its edges."""
        lines = ["node types:"]
        w = max(len(t) for t in self._num_nodes)
        for t, n in self._num_nodes.items():
            X = self._x[t]
            feat = "no features" if X is None else (
                f"x {X.shape[0]} x {X.shape[1]} {X.dtype}" + (f" sparse ({X.nnz} nonzeros)" if sp.issparse(X) else ""))
            lines.append(f"  {t:<{w}}  {n:>8}  {feat}")
        lines.append("relations:")
        names = {et: _edge_type_str(et) for et in self._edge_index}
        w = max((len(s) for s in names.values()), default=0)
        for et, s in names.items():
            weighted = ", weighted" if self._edge_weight[et] is not None else ""
            lines.append(f"  {s:<{w}}  {self._edge_index[et].shape[1]:>8} edges{weighted}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ derived graphs
    def with_inverse(self) -> "HeteroGraph":
        """This graph plus ``(dst_type, "rev_" + name, src_type)`` for every relation (PyG's ``ToUndirected``
        naming), its edge_index the flipped original in the same column order, with the same weights.

        Applied to every relation, including one whose two ends have the same type (where PyG's
        ``ToUndirected`` would instead merge both directions into the relation itself). A relation that
        already has its inverse, or is the inverse (``rev_`` name) of one present, gets none, so
        ``g.with_inverse().with_inverse()`` equals ``g.with_inverse()``. The inverse relations come after
        the original ones in edge-type order. Raises GraphError when ``rev_<name>`` exists but is not
        the flip of the relation.
        """
        eis = dict(self._edge_index)
        ws = {et: w for et, w in self._edge_weight.items() if w is not None}
        for (s, n, d), ei in self._edge_index.items():
            inv = (d, "rev_" + n, s)
            if n.startswith("rev_") and (d, n[4:], s) in self._edge_index:
                continue
            if inv in self._edge_index:
                if not _same_edges(self._edge_index[inv], ei[::-1]):
                    raise GraphError(f"relation {_edge_type_str(inv)} exists but is not the inverse of "
                                     f"{_edge_type_str((s, n, d))}")
                continue
            eis[inv] = ei[::-1]
            if (s, n, d) in ws:
                ws[inv] = ws[(s, n, d)]
        return HeteroGraph(self._num_nodes, eis, self._x, ws)

    def resolve_metapath(self, metapath) -> tuple:
        """A metapath as a tuple of edge types, each one's dst_type the next one's src_type.

        metapath: a sequence of relations (edge types, names, or (src_type, dst_type) pairs; see
            ``relation``), or a string of node-type initials such as "PAP": each letter is the one node type
            starting with it (case-insensitive), each consecutive pair the one relation between them.
        Raises KeyError when a letter or a pair is ambiguous or unknown, ValueError for a metapath of fewer
        than one relation or a chain whose types do not meet.
        """
        if isinstance(metapath, str):
            if len(metapath) < 2:
                raise ValueError(f"a metapath string names at least two node types, got {metapath!r}")
            types = []
            for c in metapath:
                hits = [t for t in self._num_nodes if t[:1].lower() == c.lower()]
                if len(hits) != 1:
                    what = "several node types" if hits else "no node type"
                    raise KeyError(f"metapath {metapath!r}: {what} start with {c!r} "
                                   f"(node types: {', '.join(map(repr, self._num_nodes))})")
                types.append(hits[0])
            path = tuple(self._resolve((a, b)) for a, b in zip(types, types[1:]))
        else:
            try:
                path = tuple(self._resolve(k) for k in metapath)
            except TypeError:
                raise ValueError(f"a metapath is a sequence of relations or a string such as 'PAP', "
                                 f"got {metapath!r}") from None
        if not path:
            raise ValueError("a metapath needs at least one relation, got none")
        for a, b in zip(path, path[1:]):
            if a[2] != b[0]:
                raise ValueError(f"metapath {[_edge_type_str(e) for e in path]} breaks: {_edge_type_str(a)} "
                                 f"ends at {a[2]!r} but {_edge_type_str(b)} starts at {b[0]!r}")
        return path

    def metapath_adjacency(self, metapath):
        """(N_end, N_start) scipy CSR int64: entry [j, i] = number of metapath instances from i to j.

        The product A_k @ ... @ A_1 of the relations' 0/1 adjacencies (rows = destinations), each
        repeated edge counted once per copy; relation edge weights are not used. Sorted indices.
        """
        path = self.resolve_metapath(metapath)

        def build():
            A = None
            for et in path:
                g = self._graphs[et]
                R = sp.csr_matrix((np.ones(g.num_edges, dtype=np.int64), g.indices, g.indptr), shape=g.shape)
                A = R if A is None else R @ A
            A = sp.csr_matrix(A)
            A.sum_duplicates()      # a product has none, a single relation may have repeats
            A.sort_indices()
            return _freeze(A)
        return self.cached(("adjacency", path), build)

    def metapath_graph(self, metapath, keep_multiplicity=False) -> Graph:
        """The graph joining the two ends of every metapath instance (HAN's metapath-based neighbours).

        metapath: see ``resolve_metapath`` (edge types, names, or a node-type string such as "PAP").
        keep_multiplicity: False -> an unweighted graph with one edge i -> j when at least one instance
            joins them; True -> the same edges, weighted by the number of instances (float32, or float64
            once a count exceeds 2**24, where float32 stops being exact).

        Returns a Graph with rows = nodes of the end type and num_src = nodes of the start type (square
        for the symmetric metapaths such as PAP), no repeated edge, each row's sources ascending. Its
        edge from i to j exists iff (A_k ... A_1)[j, i] > 0 with A_r the relation's adjacency (rows =
        destinations; repeated relation edges count as separate instances, relation weights are not
        used). Self-loops are kept: a paper reaches itself through each of its own authors, so every
        node with at least one neighbour along the path has a loop, as in HeCo's pap.npz / psp.npz /
        apa.npz / apcpa.npz and in PyG's ``AddMetaPaths``. Built once per metapath and cached (the
        graph is immutable, so the cache cannot go stale).
        """
        path = self.resolve_metapath(metapath)
        keep = bool(keep_multiplicity)

        def build():
            A = self.metapath_adjacency(path)
            if not keep:
                return Graph(A.indptr, A.indices, None, num_src=A.shape[1])
            dtype = np.float32 if (A.nnz == 0 or A.data.max() < _FLOAT32_EXACT) else np.float64
            return Graph(A.indptr, A.indices, A.data.astype(dtype), num_src=A.shape[1])
        return self.cached(("metapath", path, keep), build)

    def to_homogeneous(self) -> Homogeneous:
        """All nodes and relations as one graph, in the order of PyG's ``HeteroData.to_homogeneous()``.

        Node i of type t becomes ``node_offset[t] + i``, the offsets running over the node types in order;
        the relations' edges are concatenated in edge-type order (each in its own column order) with
        both ends offset. Edge weights: when any relation is weighted, the unweighted ones get 1.0 and
        the graph is weighted (float64 if any given weight is, else float32); otherwise it is
        unweighted. Features are not merged (their widths differ by type). Cached.
        """
        def build():
            offsets, start = {}, 0
            for t, n in self._num_nodes.items():
                offsets[t] = start
                start += n
            N = start
            node_type = np.repeat(np.arange(len(self._num_nodes), dtype=np.int64),
                                  list(self._num_nodes.values()))
            cols, codes, eoff, ws = [], [], {}, []
            weighted = [w for w in self._edge_weight.values() if w is not None]
            wdtype = np.result_type(*weighted) if weighted else None
            e0 = 0
            for k, (et, ei) in enumerate(self._edge_index.items()):
                eoff[et] = e0
                e0 += ei.shape[1]
                cols.append(ei + np.array([[offsets[et[0]]], [offsets[et[2]]]], dtype=np.int64))
                codes.append(np.full(ei.shape[1], k, dtype=np.int64))
                if weighted:
                    w = self._edge_weight[et]
                    ws.append(np.ones(ei.shape[1], dtype=wdtype) if w is None else w.astype(wdtype))
            edge_index = np.concatenate(cols, axis=1) if cols else np.zeros((2, 0), dtype=np.int64)
            edge_type = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
            w = np.concatenate(ws) if weighted else None
            graph = Graph.from_edge_index(edge_index, num_nodes=N, edge_weight=w)
            return Homogeneous(graph=graph, edge_index=_freeze(edge_index), edge_type=_freeze(edge_type),
                               node_type=_freeze(node_type), node_offset=MappingProxyType(offsets),
                               edge_offset=MappingProxyType(eoff), node_types=self.node_types,
                               edge_types=self.edge_types)
        return self.cached(("homogeneous",), build)

    def cached(self, key, build):
        """``build()`` computed once per key and kept on this graph (it is immutable, so a result never goes
        stale): for what is derived from the graph alone, as metapath graphs or a model's fixed inputs."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]



def _same_edges(a, b) -> bool:
    """Whether two (2, E) edge_index arrays hold the same multiset of edges."""
    if a.shape != b.shape:
        return False
    return np.array_equal(np.unique(a, axis=1, return_counts=True)[1], np.unique(b, axis=1, return_counts=True)[1]) \
        and np.array_equal(np.unique(a, axis=1), np.unique(b, axis=1))
