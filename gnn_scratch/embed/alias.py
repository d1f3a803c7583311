"""The alias method (Walker 1977; Vose 1991) and the per-walk random streams of the embedding samplers.

An alias table turns n non-negative weights w into two arrays, ``prob`` (n,) float64 and ``alias``
(n,) int32, such that drawing a column k uniformly and keeping k with probability prob[k] (else
taking alias[k]) yields i with probability w_i / sum(w), exactly up to float64 rounding:

    P(i) = (prob[i] + sum_{k: alias[k] = i} (1 - prob[k])) / n = w_i / W.

Building costs O(n) (Vose's two stacks); a draw costs O(1): two 64-bit random numbers, two reads.
It serves three samplers of gnn_scratch.embed:

* the first-order step of a weighted random walk: one table per CSR row, stored flat beside the
  row's edges (``row_alias_tables``: 12 bytes per edge);
* edge sampling by weight (LINE): one table over the E edges (``edge_sampler``);
* negative sampling: one table over the N nodes with w_n = degree(n)^0.75 (``negative_table``),
  word2vec's unigram^0.75 noise distribution. An alias table rather than word2vec's 10^8-entry
  unigram table (400 MB, and a distribution quantised to 1e-8) or a cumulative table with binary
  search (O(log N) a draw): exact, O(1), 12 bytes per node.

Randomness. Every stream is SplitMix64 (``kernels/rng.py``), started at ``hash64(key, stream_id)``
and read in order (state += GOLDEN; draw = mix64(state)). A walk's stream id is its walk id, a
skip-gram pass's the (epoch, walk) pair, so what a sampler draws depends on (seed, id) only, never
on which thread runs it or when: results are bit-identical for any NUMBA_NUM_THREADS. A uniform
integer in [0, n) is draw mod n (bias < n / 2^64, stated as in sampling.py); a uniform real in
[0, 1) is the draw's top 53 bits times 2^-53. Two streams started at different ids overlap only if
their starting states fall within the length of a stream of each other, a chance of about
(streams x draws) / 2^64 < 1e-6 for any graph that fits in memory.

``Stream`` is the same generator in plain Python (the readable reference the NumPy trainer uses).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..kernels.rng import GOLDEN, hash64_cpu, mix64_cpu

_KERNEL = dict(nogil=True, cache=True)
_U53 = 1.0 / 9007199254740992.0            # 2^-53
_MASK64 = (1 << 64) - 1


# ------------------------------------------------------------------ the stream, compiled (inlined into kernels)
@njit(inline="always")
def stream_start(key, stream_id):
    """The state of stream ``stream_id`` under ``key`` before its first draw: hash64(key, stream_id)."""
    return hash64_cpu(key, np.uint64(stream_id))


@njit(inline="always")
def next_u64(state):
    """(64 random bits, the advanced state): SplitMix64 read in order."""
    state = state + GOLDEN
    return mix64_cpu(state), state


@njit(inline="always")
def next_below(state, n):
    """(a uniform int64 in [0, n), the advanced state); n >= 1."""
    r, state = next_u64(state)
    return np.int64(r % np.uint64(n)), state


@njit(inline="always")
def next_uniform(state):
    """(a uniform float64 in [0, 1) with 53 random bits, the advanced state)."""
    r, state = next_u64(state)
    return np.float64(r >> np.uint64(11)) * _U53, state


@njit(inline="always")
def alias_draw(prob, alias, lo, n, state):
    """(an offset in [0, n) drawn from the alias table prob[lo:lo+n], alias[lo:lo+n], the advanced state).

    Two draws: the column k, then the coin that keeps k with probability prob[lo + k].
    """
    k, state = next_below(state, n)
    u, state = next_uniform(state)
    if u < prob[lo + k]:
        return k, state
    return np.int64(alias[lo + k]), state


# ------------------------------------------------------------------ building tables
@njit(**_KERNEL)
def _vose(w, lo, n, prob, alias, small, large):
    """Vose's alias table of the weights w[lo:lo+n] into prob[lo:lo+n], alias[lo:lo+n] (offsets in [0, n)).

    small, large: (>= n,) int64 scratch stacks. The weights must be >= 0 with a positive sum.
    Entries left on a stack at the end (rounding makes their scaled weight 1 - tiny) keep prob 1.
    O(n).
    """
    total = 0.0
    for i in range(n):
        total += w[lo + i]
    ns = 0
    nl = 0
    for i in range(n):
        pi = w[lo + i] * n / total
        prob[lo + i] = pi
        alias[lo + i] = i
        if pi < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        alias[lo + s] = g                                    # column s: keep s w.p. prob[s], else g
        prob[lo + g] = (prob[lo + g] + prob[lo + s]) - 1.0   # g gave 1 - prob[s] of its mass to column s
        if prob[lo + g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    for t in range(nl):
        prob[lo + large[t]] = 1.0
    for t in range(ns):
        prob[lo + small[t]] = 1.0


@njit(parallel=True, **_KERNEL)
def row_alias_kernel(indptr, weight, prob, alias):
    """One alias table per CSR row, stored flat beside the row's edges.

    indptr (N + 1,) int64; weight (E,) float64 >= 0, every non-empty row with a positive sum;
    prob (E,) float64 and alias (E,) int32 preallocated, fully overwritten (alias[e] is an offset
    within e's row). Parallel over rows (each row is written by one thread: deterministic).
    O(E + N).
    """
    N = indptr.size - 1
    for r in prange(N):
        lo = indptr[r]
        n = indptr[r + 1] - lo
        if n > 0:
            small = np.empty(n, dtype=np.int64)
            large = np.empty(n, dtype=np.int64)
            _vose(weight, lo, n, prob, alias, small, large)


def _check_weights(weights, name):
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of weights, got shape {w.shape}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite and non-negative, got {w[k]} at index {k}")
    if not w.sum() > 0:
        raise ValueError(f"{name} must have a positive sum, got all zeros")
    return np.ascontiguousarray(w)


def row_alias_tables(indptr, weight):
    """(prob (E,) float64, alias (E,) int32): an alias table per row of a CSR (see ``row_alias_kernel``)."""
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    prob = np.empty(weight.size, dtype=np.float64)
    alias = np.empty(weight.size, dtype=np.int32)
    row_alias_kernel(indptr, weight, prob, alias)
    return prob, alias


@njit(parallel=True, **_KERNEL)
def alias_sample_kernel(prob, alias, key, first_stream, per_stream, out):
    """out[k] = a draw from the alias table (prob, alias) of n = prob.size entries, for k < out.size.

    Draw k is the (k mod per_stream)-th draw pair of stream first_stream + k // per_stream, so the
    result does not depend on the thread count. Parallel over streams. O(out.size).
    """
    n = prob.size
    m = out.size
    n_streams = (m + per_stream - 1) // per_stream
    for st in prange(n_streams):
        s = stream_start(key, first_stream + st)
        for k in range(st * per_stream, min(m, (st + 1) * per_stream)):
            j, s = alias_draw(prob, alias, 0, n, s)
            out[k] = j


class AliasTable:
    """Walker's alias table over n outcomes with weights w (n,) >= 0 (positive sum): O(1) draws of i ~ w_i / W.

    Attributes: prob (n,) float64, alias (n,) int32 (Vose's construction, O(n)); ``probabilities``
    (n,) float64 = w / W, the distribution it samples. ``sample(size, seed)`` -> (size,) int64.
    Raises ValueError for an empty, non-finite or negative weight, or an all-zero one.
    """

    def __init__(self, weights, name="weights"):
        w = _check_weights(weights, name)
        self.probabilities = w / w.sum()
        self.prob = np.empty(w.size, dtype=np.float64)
        self.alias = np.empty(w.size, dtype=np.int32)
        _vose(w, 0, w.size, self.prob, self.alias, np.empty(w.size, np.int64), np.empty(w.size, np.int64))

    def __len__(self):
        return self.prob.size

    def sample(self, size, seed=0, first_stream=0, per_stream=4096):
        """``size`` i.i.d. draws, (size,) int64; a pure function of (table, size, seed, first_stream, per_stream)."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"size must be a non-negative int, got {size!r}")
        out = np.empty(int(size), dtype=np.int64)
        if size:
            alias_sample_kernel(self.prob, self.alias, seed_key(seed), int(first_stream), int(per_stream), out)
        return out


def negative_table(graph=None, counts=None, power=0.75):
    """word2vec's noise distribution P_n(n) proportional to count(n)^power as an ``AliasTable`` over the N nodes.

    ``counts`` (N,) >= 0 (occurrences of each node in the walks: word2vec's unigram counts) or, by
    default, the weighted in-degree of ``graph`` (the row sums of its CSR; the edge count for an
    unweighted graph), to which a walk's visit counts are proportional on an undirected graph.
    A node with count 0 (isolated) is never drawn. Raises ValueError when every count is 0.
    """
    if counts is None:
        if graph is None:
            raise ValueError("negative_table needs a graph or counts")
        w = np.ones(graph.num_edges) if graph.edge_weight is None else np.asarray(graph.edge_weight, np.float64)
        counts = np.bincount(graph.dst_of_edge(), weights=w, minlength=graph.num_dst)
    counts = _check_weights(counts, "counts")
    return AliasTable(counts ** power, name="counts ** power")


def edge_sampler(graph):
    """An ``AliasTable`` over the E edges of ``graph`` (CSR order) with P(e) = w_e / sum(w): LINE's edge sampling.

    Unweighted edges weigh 1. Map a draw e to its ends with ``graph.indices[e]`` (source) and
    ``graph.dst_of_edge()[e]`` (destination). Raises ValueError for a graph without edges.
    """
    if graph.num_edges == 0:
        raise ValueError("graph has no edges to sample")
    w = np.ones(graph.num_edges) if graph.edge_weight is None else graph.edge_weight
    return AliasTable(w, name="edge_weight")


def seed_key(seed, purpose=0):
    """The uint64 key of a sampler from an int seed (or tuple of ints) and a purpose tag, via SeedSequence."""
    entropy = list(seed) if isinstance(seed, (tuple, list)) else [seed]
    return np.random.SeedSequence(entropy + [int(purpose)]).generate_state(1, dtype=np.uint64)[0]


# ------------------------------------------------------------------ the same stream in plain Python (reference)
_G, _M1, _M2 = int(GOLDEN), 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix64(z):
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


class Stream:
    """SplitMix64 stream ``stream_id`` under ``key``, in plain Python ints: the reference of the compiled stream."""

    def __init__(self, key, stream_id):
        self.state = _mix64((int(key) + int(stream_id) * _G) & _MASK64)

    def next_u64(self):
        self.state = (self.state + _G) & _MASK64
        return _mix64(self.state)

    def below(self, n):
        return self.next_u64() % n

    def uniform(self):
        return (self.next_u64() >> 11) * _U53

    def alias(self, table):
        """A draw from ``AliasTable`` table, as ``alias_draw`` makes it."""
        k = self.below(len(table))
        return k if self.uniform() < table.prob[k] else int(table.alias[k])
