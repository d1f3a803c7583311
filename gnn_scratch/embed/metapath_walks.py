"""Metapath-guided random walks of metapath2vec (Dong, Chawla & Swami, KDD 2017, § 3.2), in Numba.

The graph is the homogeneous view of a heterogeneous one: a square ``Graph`` over all N nodes
(``HeteroGraph.with_inverse().to_homogeneous().graph``, or any graph with both directions of each
edge) and ``node_type`` (N,) int64 in [0, T). A metapath is a sequence of node-type codes
P = (t_0, t_1, .., t_l) with t_l = t_0 (e.g. A-P-A = (0, 1, 0), A-P-C-P-A); the walk repeats it
cyclically, so the node at position i of a walk has type t_{i mod l}. The paper's transition:

    p(v_{i+1} = x | v_i = v) = w_e / W_{v, t}   for an edge e: v -> x with type(x) = t_{(i+1) mod l},
                                                  W_{v, t} = the weight of v's edges to nodes of that type,

i.e. 1 / |N_t(v)| unweighted (uniform over the neighbours of the next type, a repeated edge counted
once per copy), and 0 for a neighbour of any other type. When v has no neighbour of the next type
the walk stops there and the rest of its row is -1, as in ``walks.py`` (the paper does not say;
its reference code drops such a walk; here it is kept, shortened: a start node with no neighbour of
t_1 gives the walk ``[v, -1, ..]``, which yields no skip-gram pair). ``dead_starts`` counts those
start nodes; nothing raises for them.

The step reads a **type-sorted CSR** (``TypedCSR``), built once per (graph, node_type, direction):
each row sorted by (neighbour type, neighbour id), and ``type_ptr`` (N T + 1,) int64 such that the
neighbours of v of type t are ``indices[type_ptr[v T + t] : type_ptr[v T + t + 1]]``. A step is then
one uniform index into a slice (weighted graphs: one alias table per slice, ``alias.row_alias_tables``
on the flattened ``type_ptr``). Memory: 8 (N T + 1) + 4 E bytes (+ 12 E weighted).

Direction: ``direction="out"`` (the default, the paper's: the walk follows edges source -> target,
i.e. it walks the transposed CSR) or ``"in"`` (the CSR rows, edges target -> source, the default of
``walks.random_walks``). On an undirected graph the two coincide in distribution.

Which walks: ``num_walks`` rounds; in each round, for each metapath in the order given, one walk from
every node of that metapath's first type, the start nodes in an order shuffled by the seed. So the
walks of several metapaths are concatenated round by round (rather than metapath after metapath,
which would hand the later metapaths the small learning rates of the end of training). Row k of
the output reads the stream (seed, k) (``alias.py``): every walk is a pure function of (graph,
node_type, metapaths, seed, k), bit-identical for any thread count.
"""
from __future__ import annotations

import hashlib
import numbers
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..graph import Graph
from .alias import alias_draw, next_below, row_alias_tables, seed_key, stream_start
from .walks import WALK_DTYPE, _positive_int

_KERNEL = dict(nogil=True, cache=True)
METAPATH_WALK_PURPOSE = 4      # seed_key purpose tag of the metapath walk streams (walks.py uses 1)


# ------------------------------------------------------------------ node types and metapaths
def check_node_type(node_type, num_nodes, num_types=None):
    """(node_type (N,) int64 read-only copy, T): validated node types; T = num_types or max + 1.

    Raises ValueError for a shape other than (N,), a non-integer dtype, a negative code, a code >= num_types.
    """
    nt = np.asarray(node_type)
    if nt.ndim != 1 or nt.shape[0] != num_nodes or nt.dtype.kind not in "iu":
        raise ValueError(f"node_type must be a (N,) = ({num_nodes},) integer array, got {nt.dtype} {nt.shape}")
    if nt.size and nt.min() < 0:
        raise ValueError(f"node_type must hold codes >= 0, got {nt.min()}")
    T = int(nt.max()) + 1 if num_types is None else _positive_int("num_types", num_types)
    if nt.size and nt.max() >= T:
        raise ValueError(f"node_type holds code {nt.max()}, out of range for num_types = {T}")
    nt = nt.astype(np.int64)                      # a copy: the caller's array may change, the tables may not
    nt.flags.writeable = False
    return nt, T


def resolve_metapath(metapath, type_names):
    """A metapath of type names (['author', 'paper', 'author']) or of letters ('APA') -> a tuple of codes.

    Letters are matched against the first letter of each name in ``type_names`` (case-insensitive),
    which must then be unique. Raises ValueError for an unknown or ambiguous name or letter.
    """
    names = [str(n) for n in type_names]
    if isinstance(metapath, str):
        firsts = [n[:1].upper() for n in names]
        out = []
        for ch in metapath:
            hits = [i for i, f in enumerate(firsts) if f == ch.upper()]
            if len(hits) != 1:
                raise ValueError(f"metapath letter {ch!r} of {metapath!r} matches {len(hits)} of the node types "
                                 f"{names} by first letter (expected exactly one)")
            out.append(hits[0])
        return tuple(out)
    out = []
    for x in metapath:
        if isinstance(x, str):
            if x not in names:
                raise ValueError(f"metapath names node type {x!r}, not one of {names}")
            out.append(names.index(x))
        else:
            out.append(x)
    return tuple(out)


def check_metapath(metapath, type_counts):
    """The metapath as a (l + 1,) int64 array of codes, validated against the node-type counts (T,).

    Raises ValueError for a metapath shorter than 2, a code that is not an int in [0, T), a type
    with no node, or a metapath that does not end with its first type (not cyclic).
    """
    if isinstance(metapath, (str, bytes)) or not hasattr(metapath, "__len__"):
        raise ValueError(f"metapath must be a sequence of node-type codes (ints), got {metapath!r}; "
                         "resolve names with resolve_metapath")
    T = len(type_counts)
    codes = []
    for x in metapath:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Integral, np.integer)):
            raise ValueError(f"metapath {tuple(metapath)!r} holds {x!r}, expected node-type codes (ints)")
        if not 0 <= x < T:
            raise ValueError(f"metapath {tuple(metapath)!r} holds the unknown node-type code {x} "
                             f"(node_type has codes 0 .. {T - 1})")
        codes.append(int(x))
    if len(codes) < 2:
        raise ValueError(f"metapath must have at least 2 node types (e.g. (0, 1, 0)), got {tuple(codes)}")
    if codes[0] != codes[-1]:
        raise ValueError(f"metapath {tuple(codes)} is not cyclic: it must end with its first type "
                         f"({codes[0]}), so that the walk can repeat it")
    empty = [t for t in codes if type_counts[t] == 0]
    if empty:
        raise ValueError(f"metapath {tuple(codes)} uses node type {empty[0]}, which has no node")
    return np.array(codes, dtype=np.int64)


def _metapath_list(metapaths):
    """One metapath (a flat sequence of codes) or a list of them -> a list of sequences."""
    if isinstance(metapaths, (str, bytes)):
        raise ValueError(f"metapath must be a sequence of node-type codes (ints), got {metapaths!r}; "
                         "resolve names or letters with resolve_metapath")
    if not isinstance(metapaths, (list, tuple, np.ndarray)) or len(metapaths) == 0:
        raise ValueError(f"metapaths must be a metapath (a sequence of type codes) or a non-empty list of them, "
                         f"got {metapaths!r}")
    if all(not isinstance(x, (list, tuple, np.ndarray, str)) for x in metapaths):
        return [metapaths]                          # one metapath of scalars (check_metapath validates them)
    return list(metapaths)


# ------------------------------------------------------------------ the type-sorted adjacency
@dataclass(frozen=True)
class TypedCSR:
    """The adjacency a metapath walk reads, rows grouped by neighbour type (module doc).

    type_ptr (N T + 1,) int64; indices (E,) int32 (sorted by (type, id) within each row); weight (E,)
    float64 or None; alias_prob (E,) float64 / alias_idx (E,) int32: one alias table per (row, type)
    slice (empty when unweighted); num_types T.
    """
    type_ptr: np.ndarray
    indices: np.ndarray
    weight: np.ndarray | None
    alias_prob: np.ndarray
    alias_idx: np.ndarray
    num_types: int

    @property
    def num_nodes(self):
        return (self.type_ptr.size - 1) // self.num_types

    def neighbours(self, v, t):
        """The neighbours of node v of type t, (d,) int32 (sorted)."""
        T = self.num_types
        return self.indices[self.type_ptr[v * T + t]:self.type_ptr[v * T + t + 1]]

    def degree(self, t_from, t_to, node_type):
        """(n_from,) int64: for each node of type t_from (ascending id), its number of neighbours of type t_to."""
        T = self.num_types
        v = np.flatnonzero(node_type == t_from)
        return (self.type_ptr[v * T + t_to + 1] - self.type_ptr[v * T + t_to]).astype(np.int64)


def _build_typed_csr(graph, node_type, T, direction):
    if direction == "in":
        indptr, indices, weight = graph.indptr, graph.indices, graph.edge_weight
        rows = graph.dst_of_edge()
    else:
        indptr, indices = graph.t_indptr, graph.t_indices
        rows = np.repeat(np.arange(graph.num_src), np.diff(indptr))
        weight = None if graph.edge_weight is None else graph.edge_weight[graph.t_perm]
    N = graph.num_nodes
    ntype = node_type[indices]
    order = np.lexsort((indices, ntype, rows))           # by row, then neighbour type, then neighbour id
    idx = np.ascontiguousarray(indices[order], dtype=WALK_DTYPE)
    slot = rows[order].astype(np.int64) * T + ntype[order]
    type_ptr = np.zeros(N * T + 1, dtype=np.int64)
    np.cumsum(np.bincount(slot, minlength=N * T), out=type_ptr[1:])
    if weight is None:
        prob, alias = np.empty(0, np.float64), np.empty(0, np.int32)
    else:
        weight = np.ascontiguousarray(np.asarray(weight, dtype=np.float64)[order])
        if (weight < 0).any():
            raise ValueError(f"edge_weight must be non-negative for random walks, got {weight[weight < 0][0]}")
        sums = np.add.reduceat(weight, type_ptr[:-1][np.diff(type_ptr) > 0]) if weight.size else np.zeros(0)
        if (sums <= 0).any():
            raise ValueError("a node has edges to a node type whose weights sum to 0: a walk cannot take them")
        prob, alias = row_alias_tables(type_ptr, weight)
    for a in (type_ptr, idx, weight, prob, alias):
        if a is not None:
            a.flags.writeable = False
    return TypedCSR(type_ptr, idx, weight, prob, alias, T)


def typed_csr(graph, node_type, num_types=None, direction="out"):
    """The ``TypedCSR`` of (graph, node_type); built once and cached on the graph (the key holds node_type's hash).

    graph: square ``Graph`` (N nodes); node_type (N,) int codes; direction "out" or "in" (module doc).
    Raises TypeError / ValueError for a non-Graph, a non-square graph, bad node types or direction,
    a negative edge weight.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a gnn_scratch Graph, got {type(graph).__name__}")
    if graph.num_dst != graph.num_src:
        raise ValueError(f"graph must be square (one node set) to walk on, got shape {graph.shape}")
    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'out' (follow edges source -> target) or 'in', got {direction!r}")
    nt, T = check_node_type(node_type, graph.num_nodes, num_types)
    digest = hashlib.sha1(nt.tobytes()).hexdigest()
    return graph.cached(("typed_csr", direction, T, digest), lambda: _build_typed_csr(graph, nt, T, direction))


# ------------------------------------------------------------------ the kernel
@njit(parallel=True, **_KERNEL)
def metapath_walks_kernel(type_ptr, indices, num_types, weighted, alias_prob, alias_idx, metapath, starts,
                          first_walk, key, walks):
    """Fill walks (W, L) int32: walks[k, 0] = starts[k], then up to L - 1 metapath-guided steps, -1 after a stop.

    type_ptr (N T + 1,) int64, indices (E,) int32: the ``TypedCSR``; num_types T; weighted bool;
    alias_prob (E,) float64, alias_idx (E,) int32: per-slice alias tables (read only when weighted);
    metapath (l + 1,) int64 with metapath[l] = metapath[0]: position i of a walk has type
    metapath[i mod l]; starts (W,) int64 of type metapath[0]; walk k reads stream first_walk + k
    under key (uint64). walks preallocated, fully overwritten. Parallel over walks, no shared
    writes: deterministic for any thread count. O(W L).
    """
    W, L = walks.shape
    period = metapath.size - 1
    for k in prange(W):
        s = stream_start(key, first_walk + k)
        cur = np.int64(starts[k])
        walks[k, 0] = cur
        for step in range(1, L):
            if cur < 0:
                walks[k, step] = -1
                continue
            slot = cur * num_types + metapath[step % period]
            lo = type_ptr[slot]
            d = type_ptr[slot + 1] - lo
            if d == 0:
                nxt = np.int64(-1)                       # no neighbour of the next type: the walk stops
            else:
                if weighted:
                    off, s = alias_draw(alias_prob, alias_idx, lo, d, s)
                else:
                    off, s = next_below(s, d)
                nxt = np.int64(indices[lo + off])
            walks[k, step] = nxt
            cur = nxt


# ------------------------------------------------------------------ the public functions
def _prepared(graph, node_type, metapaths, num_types, direction):
    adj = typed_csr(graph, node_type, num_types, direction)
    nt, T = check_node_type(node_type, graph.num_nodes, num_types)
    counts = np.bincount(nt, minlength=T)
    paths = [check_metapath(m, counts) for m in _metapath_list(metapaths)]
    return adj, nt, paths


def dead_starts(graph, node_type, metapath, num_types=None, direction="out"):
    """The number of nodes of type metapath[0] with no neighbour of type metapath[1]: their walks stop at once.

    Arguments and errors as ``metapath_walks`` (one metapath).
    """
    adj, nt, (path,) = _prepared(graph, node_type, [metapath], num_types, direction)
    return int(np.count_nonzero(adj.degree(path[0], path[1], nt) == 0))


def metapath_walks(graph, node_type, metapaths, walk_length=100, num_walks=10, seed=0, num_types=None,
                   direction="out", shuffle=True):
    """Metapath-guided random walks: (num_walks * sum_m S_m, walk_length) int32, -1 after a walk stops.

    graph: square ``Graph`` over all N nodes (edge weights, if any, >= 0: a step is then drawn in
    proportion to them within the slice of the next type). node_type: (N,) int codes in [0, T),
    T = num_types or node_type.max() + 1. metapaths: one metapath (a sequence of codes, first =
    last, e.g. (0, 1, 0)) or a list of them (``resolve_metapath`` turns names or letters into codes).
    walk_length: nodes per walk (the paper's l = 100); num_walks: walks per start node (the paper's
    w = 1000); S_m = the number of nodes of metapath m's first type. Round r holds, for each
    metapath in turn, one walk from each of its S_m start nodes (order shuffled by the seed when
    ``shuffle``). direction: "out" (edges source -> target) or "in". Same bits for any thread count.
    Raises TypeError / ValueError for walk_length or num_walks < 1, a non-square graph, node_type of
    the wrong shape or with codes out of range, a metapath that is not cyclic, has fewer than 2
    types, holds an unknown code or a type with no node; a graph without edges; negative weights.
    Start nodes with no neighbour of the next type are not an error (``dead_starts`` counts them).
    """
    walk_length = _positive_int("walk_length", walk_length)
    num_walks = _positive_int("num_walks", num_walks)
    adj, nt, paths = _prepared(graph, node_type, metapaths, num_types, direction)
    if adj.indices.size == 0:
        raise ValueError("graph has no edges: every walk would stop at its start node")
    starts = [np.flatnonzero(nt == p[0]).astype(np.int64) for p in paths]
    total = num_walks * sum(s.size for s in starts)
    walks = np.empty((total, walk_length), dtype=WALK_DTYPE)
    key = seed_key(seed, METAPATH_WALK_PURPOSE)
    rngs = [np.random.default_rng(np.random.SeedSequence([*np.atleast_1d(seed).tolist(), METAPATH_WALK_PURPOSE, m]))
            for m in range(len(paths))]
    weighted = adj.weight is not None
    row = 0
    for _ in range(num_walks):
        for m, (path, st) in enumerate(zip(paths, starts)):
            order = st[rngs[m].permutation(st.size)] if shuffle else st
            metapath_walks_kernel(adj.type_ptr, adj.indices, adj.num_types, weighted, adj.alias_prob,
                                  adj.alias_idx, path, order, row, key, walks[row:row + st.size])
            row += st.size
    return walks


def metapath_transition(graph, node_type, v, next_type, num_types=None, direction="out"):
    """The exact distribution of the step from v to a node of type next_type: (N,) float64 (zeros if none).

    P(x) = (sum of the weights of v's edges to x) / W_{v, next_type} for x of that type: the
    formula the sampler is tested against.
    """
    adj = typed_csr(graph, node_type, num_types, direction)
    nbrs = adj.neighbours(v, next_type)
    P = np.zeros(adj.num_nodes)
    if nbrs.size == 0:
        return P
    T = adj.num_types
    lo = adj.type_ptr[v * T + next_type]
    w = np.ones(nbrs.size) if adj.weight is None else adj.weight[lo:lo + nbrs.size]
    np.add.at(P, nbrs, w)
    return P / P.sum()
