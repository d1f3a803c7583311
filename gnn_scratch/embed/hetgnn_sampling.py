"""HetGNN's samplers (Zhang et al., KDD 2019, section 4.1 and eq. 9): typed neighbours by random walk
with restart, and the (centre, context, negative) triples of its graph-context loss.

Neighbours (``rwr_neighbours``; the paper's "random walk with restart", RWR). From every node v a
walk of ``walk_length`` moves is run: at each move, with probability ``restart`` the walk jumps
back to v, otherwise it steps to a uniform edge of the current node's row (the ``Graph``'s rows, as
``walks.py``'s direction "in"; a node with no edge sends the walk back to v). Every node a move
lands on, other than v itself, is a visit. For each node type t, the k_t nodes of type t visited
most often are v's type-t neighbours, ties broken by the smaller node id. Differences from the
paper's code, stated: (a) the paper's code walks until it has collected 100 neighbours with a cap
per type; here the walk has a fixed number of moves (simpler, and the same for every node); (b)
**padding**: a node that visited c_t distinct type-t nodes with 0 < c_t < k_t fills the remaining
slots by repeating its top ones cyclically (slot j takes the (j mod c_t)-th most frequent; the
paper's code re-draws at random among them), so every sequence of type t has length k_t; (c) with
c_t = 0 (an isolated node, or a type the walk never reached) the row is all -1: v has no type-t
neighbour and the model leaves f2^t(v) out of its attention (the empty-neighbourhood rule).

Randomness: the walk from v reads the SplitMix64 stream (seed, v) (``alias.py``), so the result is
a pure function of (graph, node types, arguments, seed): bit-identical for any NUMBA_NUM_THREADS.

Triples (``context_triples``). Uniform random walks (``walks.random_walks``) over the homogeneous
graph give skip-gram pairs (v, c) for |i - j| <= window; each pair gets one negative c' drawn
uniformly among the nodes of c's type (the paper's P_t; its code draws uniformly within the
type), so the loss contrasts nodes of one type. ``max_triples`` keeps a seeded uniform subset.
"""
from __future__ import annotations

import numbers

import numpy as np
from numba import njit, prange

from ..graph import Graph
from .alias import next_below, next_uniform, seed_key, stream_start
from .walks import random_walks, run_lengths

_KERNEL = dict(nogil=True, cache=True)
RWR_PURPOSE = 11          # seed_key purpose tag of the RWR streams
TRIPLE_PURPOSE = 12       # of the negatives and the subset of triples


@njit(parallel=True, **_KERNEL)
def rwr_kernel(indptr, indices, node_type, k_per_type, col_offset, restart, walk_length, key, out):
    """out (N, sum k_t) int64: row v, columns col_offset[t] : col_offset[t] + k_t = v's type-t neighbours.

    indptr (N + 1,) int64, indices (E,) int: the rows a walk steps along; node_type (N,) int64 in
    [0, T); k_per_type (T,) int64 >= 0; col_offset (T + 1,) int64 = cumsum of k; restart in [0, 1);
    walk_length int >= 0 moves; key uint64. out preallocated, fully overwritten (-1 = none).
    Parallel over start nodes, each reading its own stream: deterministic. O(N L log L).
    """
    N = indptr.size - 1
    T = k_per_type.size
    for v in prange(N):
        for c in range(out.shape[1]):
            out[v, c] = -1
        if indptr[v + 1] == indptr[v]:
            continue
        s = stream_start(key, v)
        visits = np.empty(walk_length, dtype=np.int64)
        nv = 0
        cur = np.int64(v)
        for _ in range(walk_length):
            u, s = next_uniform(s)
            d = indptr[cur + 1] - indptr[cur]
            if u < restart or d == 0:
                cur = np.int64(v)
                continue
            e, s = next_below(s, d)
            cur = np.int64(indices[indptr[cur] + e])
            if cur != v:
                visits[nv] = cur
                nv += 1
        if nv == 0:
            continue
        seen = np.sort(visits[:nv])
        # distinct visited nodes and their counts
        uniq = np.empty(nv, dtype=np.int64)
        cnt = np.empty(nv, dtype=np.int64)
        m = run_lengths(seen, uniq, cnt)
        # per type: most visited first, ties by smaller id -> key (L - count) * N + id ascending
        for t in range(T):
            k = k_per_type[t]
            if k == 0:
                continue
            nt = 0
            for i in range(m):
                if node_type[uniq[i]] == t:
                    nt += 1
            if nt == 0:
                continue
            keys = np.empty(nt, dtype=np.int64)
            j = 0
            for i in range(m):
                if node_type[uniq[i]] == t:
                    keys[j] = (walk_length - cnt[i]) * N + uniq[i]
                    j += 1
            keys = np.sort(keys)
            top = min(k, nt)
            base = col_offset[t]
            for q in range(k):
                out[v, base + q] = keys[q % top] % N   # q >= top: cyclic repetition of the top ones
    return out


def _nonneg_int(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)) or v < 0:
        raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    return int(v)


def check_node_type(node_type, num_nodes, name="node_type"):
    """node_type as a (N,) int64 array of ids in [0, T); returns (node_type, T). Raises ValueError otherwise."""
    nt = np.asarray(node_type)
    if nt.ndim != 1 or nt.shape[0] != num_nodes or nt.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a ({num_nodes},) int array of node types, got {nt.dtype} {nt.shape}")
    if nt.size and nt.min() < 0:
        raise ValueError(f"{name} must hold type ids >= 0, got {nt.min()}")
    return np.ascontiguousarray(nt, dtype=np.int64), int(nt.max()) + 1 if nt.size else 0


def rwr_neighbours(graph, node_type, num_neighbours, restart=0.5, walk_length=100, seed=0):
    """HetGNN's typed neighbours by random walk with restart: a list of T arrays, entry t of shape (N, k_t) int64.

    graph: square ``Graph`` over all N nodes (undirected: both directions of every edge); node_type:
    (N,) int ids in [0, T); num_neighbours: an int k (every type) or a sequence of T ints k_t;
    restart: probability in [0, 1) of jumping back to the start at each move; walk_length: moves per
    start node. Row v of entry t: v's k_t most visited type-t nodes (module doc: ties, padding, -1
    rows). Raises ValueError / TypeError for a non-square graph, bad node types, a negative k, a
    restart outside [0, 1).
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a gnn_scratch Graph, got {type(graph).__name__}")
    if graph.num_dst != graph.num_src:
        raise ValueError(f"graph must be square (one node set), got shape {graph.shape}")
    node_type, T = check_node_type(node_type, graph.num_nodes)
    if isinstance(num_neighbours, (numbers.Integral, np.integer)):
        k = np.full(T, _nonneg_int("num_neighbours", num_neighbours), dtype=np.int64)
    else:
        k = np.array([_nonneg_int("num_neighbours[t]", v) for v in num_neighbours], dtype=np.int64)
        if k.size != T:
            raise ValueError(f"num_neighbours must give one count per node type ({T}), got {k.size}")
    if not (isinstance(restart, numbers.Real) and 0.0 <= restart < 1.0):
        raise ValueError(f"restart must be a probability in [0, 1), got {restart!r}")
    walk_length = _nonneg_int("walk_length", walk_length)
    col = np.zeros(T + 1, dtype=np.int64)
    np.cumsum(k, out=col[1:])
    out = np.empty((graph.num_nodes, int(col[-1])), dtype=np.int64)
    rwr_kernel(graph.indptr, graph.indices, node_type, k, col, float(restart), walk_length,
               seed_key(seed, RWR_PURPOSE), out)
    return [np.ascontiguousarray(out[:, col[t]:col[t + 1]]) for t in range(T)]


def context_triples(graph, node_type, num_walks=1, walk_length=20, window=2, max_triples=None, seed=0):
    """(M, 3) int64 rows (v, c, c'): skip-gram pairs of uniform walks, each with a negative c' of c's type.

    Walks: ``walks.random_walks(graph, walk_length, num_walks, seed=seed)`` from every node (an
    isolated node yields none). Pairs: positions i != j of a walk with |i - j| <= window, in walk,
    then offset, then position order. c' ~ uniform over the nodes of type node_type[c] (it may equal
    c or v, as in the paper's code). max_triples: keep a seeded uniform subset of that size (in
    order). Raises ValueError for a graph without edges, bad node types, window < 1.
    """
    node_type, T = check_node_type(node_type, graph.num_nodes)
    if isinstance(window, bool) or not isinstance(window, (numbers.Integral, np.integer)) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    walks = random_walks(graph, walk_length, num_walks, seed=seed).astype(np.int64)
    centres, contexts = [], []
    L = walks.shape[1]
    for off in range(1, min(window, L - 1) + 1):
        a, b = walks[:, :-off], walks[:, off:]
        ok = (a >= 0) & (b >= 0)
        centres += [a[ok], b[ok]]
        contexts += [b[ok], a[ok]]
    v = np.concatenate(centres) if centres else np.empty(0, np.int64)
    c = np.concatenate(contexts) if contexts else np.empty(0, np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([*np.atleast_1d(seed).tolist(), TRIPLE_PURPOSE]))
    if max_triples is not None and v.size > max_triples:
        keep = np.sort(rng.choice(v.size, size=int(max_triples), replace=False))
        v, c = v[keep], c[keep]
    # negatives: uniform within c's type, from the nodes of that type in id order
    by_type = np.argsort(node_type, kind="stable")
    counts = np.bincount(node_type, minlength=T)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tc = node_type[c]
    draw = (rng.random(c.size) * counts[tc]).astype(np.int64)
    neg = by_type[start[tc] + np.minimum(draw, counts[tc] - 1)]
    return np.stack([v, c, neg], axis=1)
