"""Random walks for DeepWalk and node2vec (Numba, parallel over walks, bit-identical for a seed).

Direction. A ``Graph`` is destination-major: row i lists the sources j of the edges j -> i. A walk
(``direction="in"``, the default, as ``unsupervised.random_walks``) steps from i to one of the
sources of its row, i.e. it follows edges *backwards* (from target to source); ``direction="out"``
walks the transposed CSR and follows edges forwards (source to target), as node2vec does on a
directed graph. On an undirected graph (both directions of every edge present) the two coincide in
distribution.

First order (DeepWalk; node2vec with p = q = 1): from v, the next node is the source x of an edge
e of v's row with probability w_e / W_v, W_v = the row's weight sum (w_e = 1 unweighted: a uniform
edge of the row, a repeated edge counted once per copy). Unweighted rows need no table (a uniform
index); weighted rows use one alias table per row (``alias.row_alias_tables``: 12 bytes per edge).

Second order (node2vec, Grover & Leskovec 2016, eq. 2): having arrived at v from t, the next edge
e: x of v's row is taken with probability proportional to w_e * alpha(t, x), where

    alpha(t, x) = 1/p  if x = t,      1  if x is a neighbour of t,      1/q  otherwise,

"x is a neighbour of t" meaning that x is in t's walk row (the walk could step t -> x). The first
step of a walk (no t yet) is first order.

How the second order is sampled: rejection (KnightKing, Yang et al. 2019), with the return edge
folded out. Precomputed per-edge alias tables (node2vec's reference code; PecanPy's PreComp) hold,
for every edge t -> v, a table over v's row: sum_v d_v^2 entries. On BlogCatalog (10 312 nodes,
667 966 directed edges, maximum degree 3 992) that is 368 883 274 entries, 4.1 GiB at 12 bytes
(float64 prob + int32 alias), 2.7 GiB at 8 (float32 + int32) -- for a graph whose CSR is 8 MB --
and their construction costs O(sum d_v^2 log d) time. Rejection needs nothing beyond the graph (its
rows sorted, 4 bytes per edge, plus the first-order tables when weighted). A step:

    B = max(1, 1/q)                       (bound of alpha on edges that do not return to t)
    R = W_vt * max(0, 1/p - B)            (W_vt = weight of v's edges back to t: the part of the
    H = B * W_v + R                        return mass above the bound, sampled directly)
    repeat: u ~ U[0, H)
        u < R:  return t
        else:   propose e ~ w_e / W_v (first order), x = source of e, accept with probability
                min(1/p, B)/B if x = t,  1/B if x is a neighbour of t,  (1/q)/B otherwise.

Each round returns t with probability (R + W_vt min(1/p, B)) / H = W_vt / (p H), and any other
edge e with probability w_e alpha(t, x_e) / H: the node2vec distribution, whatever p and q. The
expected number of rounds is H / sum_e w_e alpha(t, x_e), at most the envelope-to-target ratio of
the worst edge, max(1, q, p) * max(1, 1/q): 1 for q = 1 and p <= 1 (every proposal accepted), at
most 4 for p = q = 0.25 (a neighbour of t is accepted with probability 1/4) and for q = 4 (a
non-neighbour is), usually far fewer. "x is a neighbour of t" is a binary search in t's sorted row,
and W_vt one in v's (only when 1/p > B): O(log d) each. Without the folding, a small p (a large 1/p)
would set the bound and make most proposals fail.

Walks are int32 rows of ``walk_length`` nodes (the papers' l counts nodes: walk_length = 80 gives
79 steps). A walk that reaches a node with no edge to follow stops there; the rest of its row is
-1. In particular a walk from an isolated node is that node alone, ``[i, -1, ..., -1]``: it yields
no skip-gram pair, so the node keeps its initial embedding (gensim would drop it instead).

Randomness: walk k (row k of the output) reads the stream (seed, k) (``alias.py``), so every walk
is a pure function of (graph, seed, k): bit-identical for any thread count and batching.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..graph import Graph
from .alias import alias_draw, next_below, next_uniform, row_alias_tables, seed_key, stream_start

_KERNEL = dict(nogil=True, cache=True)
WALK_DTYPE = np.int32
WALK_PURPOSE = 1          # seed_key purpose tag of the walk streams


# ------------------------------------------------------------------ the walk's adjacency
@dataclass(frozen=True)
class WalkCSR:
    """The adjacency a walk reads: row v lists the nodes a walk at v can step to, sorted within the row.

    indptr (N + 1,) int64; indices (E,) int32 (ascending within each row); weight (E,) float64 or
    None (unweighted); row_weight (N,) float64 = W_v; alias_prob (E,) float64 / alias_idx (E,)
    int32: the first-order alias table of each row (empty arrays when unweighted).
    """
    indptr: np.ndarray
    indices: np.ndarray
    weight: np.ndarray | None
    row_weight: np.ndarray
    alias_prob: np.ndarray
    alias_idx: np.ndarray

    @property
    def num_nodes(self):
        return self.indptr.size - 1

    @property
    def nbytes(self):
        return sum(a.nbytes for a in (self.indptr, self.indices, self.row_weight, self.alias_prob, self.alias_idx)
                   if a is not None) + (0 if self.weight is None else self.weight.nbytes)


def _build_walk_csr(graph, direction):
    if direction == "in":
        indptr, indices, rows = graph.indptr, graph.indices, graph.dst_of_edge()
        weight = graph.edge_weight
    else:
        indptr, indices = graph.t_indptr, graph.t_indices
        rows = np.repeat(np.arange(graph.num_src), np.diff(indptr))
        weight = None if graph.edge_weight is None else graph.edge_weight[graph.t_perm]
    order = np.lexsort((indices, rows))          # by row, then by node: rows sorted for binary search
    indices = np.ascontiguousarray(indices[order], dtype=WALK_DTYPE)
    N = indptr.size - 1
    if weight is None:
        row_weight = np.diff(indptr).astype(np.float64)
        prob, alias = np.empty(0, np.float64), np.empty(0, np.int32)
    else:
        weight = np.ascontiguousarray(np.asarray(weight, dtype=np.float64)[order])
        if (weight < 0).any():
            e = int(np.flatnonzero(weight < 0)[0])
            raise ValueError(f"edge_weight must be non-negative for random walks, got {weight[e]}")
        row_weight = np.bincount(np.repeat(np.arange(N), np.diff(indptr)), weights=weight, minlength=N)
        dead = (np.diff(indptr) > 0) & ~(row_weight > 0)
        if dead.any():
            raise ValueError(f"node {int(np.flatnonzero(dead)[0])} has edges whose weights sum to 0: "
                             "a walk cannot leave it")
        prob, alias = row_alias_tables(indptr, weight)
    for a in (indices, weight, row_weight, prob, alias):
        if a is not None:
            a.flags.writeable = False
    return WalkCSR(np.asarray(indptr, dtype=np.int64), indices, weight, row_weight, prob, alias)


def walk_csr(graph, direction="in"):
    """The ``WalkCSR`` of ``graph`` for walks along in-edges ("in") or out-edges ("out"); built once per graph."""
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a gnn_scratch Graph, got {type(graph).__name__}")
    if graph.num_dst != graph.num_src:
        raise ValueError(f"graph must be square (one node set) to walk on, got shape {graph.shape}")
    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' (follow edges target -> source, the CSR rows) or 'out', "
                         f"got {direction!r}")
    return graph.cached(("walk_csr", direction), lambda: _build_walk_csr(graph, direction))


# ------------------------------------------------------------------ kernels
@njit(inline="always")
def _lower_bound(indices, lo, hi, x):
    """First position in the sorted indices[lo:hi] whose value is >= x (hi if none). O(log(hi - lo))."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always")
def _first_order(indptr, weighted, alias_prob, alias_idx, v, state):
    """(an edge position of v's row drawn with probability w_e / W_v, the advanced state); v has edges."""
    lo = indptr[v]
    d = indptr[v + 1] - lo
    if weighted:
        k, state = alias_draw(alias_prob, alias_idx, lo, d, state)
    else:
        k, state = next_below(state, d)
    return lo + k, state


@njit(**_KERNEL)
def _second_order(indptr, indices, weighted, weight, alias_prob, alias_idx, row_weight, t, v, inv_p, inv_q,
                  state):
    """(the next node after t -> v under node2vec's bias, the advanced state): the module doc's folded rejection."""
    B = max(1.0, inv_q)
    lo = indptr[v]
    hi = indptr[v + 1]
    R = 0.0
    if inv_p > B:                                     # only then is the return mass folded out: find W_vt
        a = _lower_bound(indices, lo, hi, t)          # v's edges back to t: the run [a, b) of the sorted row
        b = a
        w_back = 0.0
        while b < hi and indices[b] == t:
            w_back += weight[b] if weighted else 1.0
            b += 1
        R = w_back * (inv_p - B)
    H = B * row_weight[v] + R
    t_lo = indptr[t]
    t_hi = indptr[t + 1]
    while True:
        if R > 0.0:
            u, state = next_uniform(state)
            if u * H < R:
                return np.int64(t), state
        e, state = _first_order(indptr, weighted, alias_prob, alias_idx, v, state)
        x = np.int64(indices[e])
        if x == t:
            acc = min(inv_p, B) / B
        else:
            pos = _lower_bound(indices, t_lo, t_hi, x)
            acc = (1.0 if (pos < t_hi and indices[pos] == x) else inv_q) / B
        if acc >= 1.0:
            return x, state
        c, state = next_uniform(state)
        if c < acc:
            return x, state


@njit(inline="always")
def run_lengths(sorted_ids, ids, counts):
    """The distinct values of the ascending ``sorted_ids`` into ``ids[:m]`` and how often each occurs into
    ``counts[:m]``; returns m (the visit counts of a walk-based neighbourhood: PinSage's, HetGNN's)."""
    m = 0
    for a in range(sorted_ids.size):
        if m > 0 and ids[m - 1] == sorted_ids[a]:
            counts[m - 1] += 1
        else:
            ids[m] = sorted_ids[a]
            counts[m] = 1
            m += 1
    return m


@njit(parallel=True, **_KERNEL)
def walks_kernel(indptr, indices, weighted, weight, alias_prob, alias_idx, row_weight, starts, first_walk,
                 p, q, key, walks):
    """Fill walks (W, L) int32 with one walk per start: walks[k, 0] = starts[k], then L - 1 steps, -1 after a dead end.

    indptr (N + 1,) int64, indices (E,) int32 sorted within rows: the walk's adjacency (``WalkCSR``);
    weighted bool; weight (E,) float64, alias_prob (E,) float64, alias_idx (E,) int32: edge weights
    and per-row alias tables (read only when weighted); row_weight (N,) float64 = W_v.
    starts (W,) int64; first_walk int: walk k reads stream first_walk + k under key (uint64);
    p, q > 0: node2vec's return and in-out parameters (p = q = 1: first order, no rejection).
    walks preallocated, fully overwritten. Parallel over walks, no shared writes: deterministic.
    Cost O(W L) for first order; second order O(W L rounds log d), rounds <= max(q, 1/q) expected.
    """
    W, L = walks.shape
    second = not (p == 1.0 and q == 1.0)
    inv_p = 1.0 / p
    inv_q = 1.0 / q
    for k in prange(W):
        s = stream_start(key, first_walk + k)
        cur = np.int64(starts[k])
        prev = np.int64(-1)
        walks[k, 0] = cur
        for step in range(1, L):
            if cur < 0:
                walks[k, step] = -1
                continue
            if indptr[cur + 1] == indptr[cur]:
                nxt = np.int64(-1)
            elif second and prev >= 0:
                nxt, s = _second_order(indptr, indices, weighted, weight, alias_prob, alias_idx, row_weight,
                                       prev, cur, inv_p, inv_q, s)
            else:
                e, s = _first_order(indptr, weighted, alias_prob, alias_idx, cur, s)
                nxt = np.int64(indices[e])
            walks[k, step] = nxt
            prev = cur
            cur = nxt


# ------------------------------------------------------------------ the public function
def _positive_int(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {v!r}")
    if v < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {v!r}")
    return int(v)


def _positive_real(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number, got {v!r}")
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return float(v)


def _progress(total, desc, enabled):
    """A tqdm bar when asked for and tqdm is importable (never a dependency), else None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False)


def random_walks(graph, walk_length=80, num_walks=10, p=1.0, q=1.0, seed=0, starts=None, direction="in",
                 shuffle=True, progress=False):
    """DeepWalk / node2vec random walks: (num_walks * S, walk_length) int32, -1 after a walk stops.

    graph: square ``Graph`` (weights, if any, >= 0). walk_length: nodes per walk (>= 1; the papers'
    l = 80). num_walks: walks per start node (the papers' r = 10). p, q > 0: node2vec's return and
    in-out parameters (p = q = 1: DeepWalk's uniform first-order walk). starts: (S,) node ids
    (default every node). Walks come in num_walks rounds of S, each round over the starts in an
    order shuffled by the seed (``shuffle``), as DeepWalk and node2vec do; row k is the k-th walk.
    direction: "in" follows the CSR rows (edges target -> source), "out" the edges source -> target.
    The same (graph, arguments, seed) give the same bits for any NUMBA_NUM_THREADS. With
    ``progress`` and tqdm importable, a bar counts the rounds.
    Raises TypeError / ValueError for walk_length or num_walks < 1, p or q <= 0 (or not finite), a
    non-square graph, a graph with no edge, starts out of range, a negative edge weight.
    """
    walk_length = _positive_int("walk_length", walk_length)
    num_walks = _positive_int("num_walks", num_walks)
    p, q = _positive_real("p", p), _positive_real("q", q)
    adj = walk_csr(graph, direction)
    N = adj.num_nodes
    if adj.indices.size == 0:
        raise ValueError("graph has no edges: every walk would stop at its start node")
    if starts is None:
        starts = np.arange(N, dtype=np.int64)
    else:
        starts = np.asarray(starts)
        if starts.ndim != 1 or starts.size == 0 or starts.dtype.kind not in "iu":
            raise ValueError(f"starts must be a non-empty 1-D array of node ids, got {starts.dtype} {starts.shape}")
        if starts.min() < 0 or starts.max() >= N:
            raise ValueError(f"starts holds node ids in [{starts.min()}, {starts.max()}], expected [0, {N})")
        starts = starts.astype(np.int64)
    S = starts.size
    order_rng = np.random.default_rng(np.random.SeedSequence([*np.atleast_1d(seed).tolist(), WALK_PURPOSE]))
    key = seed_key(seed, WALK_PURPOSE)
    walks = np.empty((num_walks * S, walk_length), dtype=WALK_DTYPE)
    weighted = adj.weight is not None
    weight = adj.weight if weighted else np.empty(0, np.float64)
    all_starts = np.concatenate([starts[order_rng.permutation(S)] if shuffle else starts for _ in range(num_walks)])
    bar = _progress(num_walks, "walks", progress)
    # one kernel call, or one per round for a progress bar: the same bits (walk k reads stream k)
    rounds = [(0, num_walks)] if bar is None else [(r, r + 1) for r in range(num_walks)]
    for r0, r1 in rounds:
        walks_kernel(adj.indptr, adj.indices, weighted, weight, adj.alias_prob, adj.alias_idx, adj.row_weight,
                     all_starts[r0 * S:r1 * S], r0 * S, p, q, key, walks[r0 * S:r1 * S])
        if bar is not None:
            bar.update(r1 - r0)
    if bar is not None:
        bar.close()
    return walks


def walk_lengths(walks):
    """(W,) int64: the number of nodes of each walk (the position of its first -1, or the row length)."""
    walks = np.asarray(walks)
    valid = walks >= 0
    return np.where(valid.all(axis=1), walks.shape[1], np.argmin(valid, axis=1)).astype(np.int64)


def transition_probabilities(graph, t, v, p=1.0, q=1.0, direction="in"):
    """The exact node2vec distribution of the node after t -> v: (N,) float64 (t = -1: first order from v).

    P(x) = sum over the edges e: x of v's row of w_e alpha(t, x), normalised: the formula the
    sampler is tested against (and a readable statement of it). O(d_v log d_t).
    """
    adj = walk_csr(graph, direction)
    lo, hi = adj.indptr[v], adj.indptr[v + 1]
    P = np.zeros(adj.num_nodes)
    t_row = set(adj.indices[adj.indptr[t]:adj.indptr[t + 1]].tolist()) if t >= 0 else set()
    for e in range(lo, hi):
        x = int(adj.indices[e])
        w = 1.0 if adj.weight is None else adj.weight[e]
        alpha = 1.0 if t < 0 else (1.0 / p if x == t else 1.0 if x in t_row else 1.0 / q)
        P[x] += w * alpha
    return P / P.sum() if P.sum() > 0 else P
