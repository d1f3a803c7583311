"""Neighbour sampling for GraphSAGE mini-batches, and induced / k-hop subgraphs (Numba).

``sample_blocks(graph, seeds, fanouts, seed)`` draws, hop by hop from the seed nodes, up to
``fanouts[h]`` in-neighbours of every node of the current frontier, uniformly *without
replacement* among its in-edges (the sources of its CSR row; the full row when the fan-out is -1 or
at least the degree). Sampling and relabelling happen in one pass per hop in a Numba kernel that
emits the block's CSR directly: a bipartite ``Graph`` whose N_dst destinations are the first N_dst
of its N_src sources, which is what ``SAGEConv`` consumes (its self term reads H[:N_dst]).

    seeds (B)  <-- block L-1 --  frontier 1  <-- ... --  frontier L = input_nodes
    blocks[0] is consumed by the first layer, blocks[-1] outputs the B seeds in order.

Randomness: a SplitMix64 stream seeded per call, so a batch is a pure function of (graph, seeds,
fanouts, seed), independent of which thread samples it and when -- what makes the background
producer of ``minibatch.py`` give bit-identical training to the unthreaded loop. Integers in
[0, n) are taken as ``x mod n`` of a 64-bit draw: the bias, below n / 2^64 < 1e-12 for any graph
that fits in memory, is stated rather than removed.

The kernels are ``@njit(nogil=True, cache=True)``: they release the GIL, so a sampler thread runs
alongside the model's NumPy / Numba work.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .graph import Graph
from .kernels.rng import GOLDEN, mix64_cpu

_KERNEL = dict(nogil=True, cache=True)

@njit(**_KERNEL)
def _next_u64(state):
    """Advance the SplitMix64 stream state (1,) uint64 in place; return the next 64-bit draw (``kernels/rng.py``)."""
    z = state[0] + GOLDEN
    state[0] = z
    return mix64_cpu(z)


@njit(**_KERNEL)
def _randint(state, n):
    """A uniform integer in [0, n), n >= 1 (modulo bias < n / 2^64)."""
    return np.int64(_next_u64(state) % np.uint64(n))


@njit(**_KERNEL)
def sample_layer_kernel(indptr, indices, targets, fanout, local_of, state):
    """Sample up to ``fanout`` in-edges of each target without replacement and relabel, in one pass.

    indptr (N + 1,) int64, indices (E,) int32: the graph, rows = destinations.
    targets (B,) int64 distinct node ids; fanout int (-1 = every in-edge).
    local_of (N,) int64 workspace, all -1 on entry and restored to all -1 on exit.
    state (1,) uint64 random state, advanced in place.
    Returns (block_indptr (B + 1,) int64, block_indices (E_b,) int32 local source ids,
             frontier (N_src,) int64 global ids with frontier[:B] = targets).
    Within a row the sampled edges keep their CSR order (so the max tie rule and fan-out -1 give
    the same block as the full row). Floyd's algorithm draws the k positions: O(k^2) per row with
    no scratch array of the row's size. Cost O(sum_i min(deg_i, k)^2 + B), with k = fanout.
    """
    B = targets.size
    block_indptr = np.empty(B + 1, dtype=np.int64)
    block_indptr[0] = 0
    kmax = 1
    for r in range(B):
        t = targets[r]
        d = indptr[t + 1] - indptr[t]
        k = d if (fanout < 0 or d <= fanout) else fanout
        block_indptr[r + 1] = block_indptr[r] + k
        if k > kmax:
            kmax = k
    E_b = block_indptr[B]
    block_indices = np.empty(E_b, dtype=np.int32)
    frontier = np.empty(B + E_b, dtype=np.int64)
    for r in range(B):                                        # the destinations come first
        local_of[targets[r]] = r
        frontier[r] = targets[r]
    n_src = B
    chosen = np.empty(kmax, dtype=np.int64)
    for r in range(B):
        t = targets[r]
        lo = indptr[t]
        d = indptr[t + 1] - lo
        out = block_indptr[r]
        k = block_indptr[r + 1] - out
        if k == d:                                            # the whole row
            for p in range(d):
                chosen[p] = p
        else:
            # Floyd: for j = d-k .. d-1 draw q in [0, j]; take q unless already taken, else take j
            n_ch = 0
            for j in range(d - k, d):
                q = _randint(state, j + 1)
                taken = False
                for s in range(n_ch):
                    if chosen[s] == q:
                        taken = True
                        break
                chosen[n_ch] = j if taken else q
                n_ch += 1
            for a in range(1, k):                             # insertion sort: back to CSR order
                v = chosen[a]
                b = a - 1
                while b >= 0 and chosen[b] > v:
                    chosen[b + 1] = chosen[b]
                    b -= 1
                chosen[b + 1] = v
        for s in range(k):
            src = indices[lo + chosen[s]]
            loc = local_of[src]
            if loc < 0:                                       # first sighting: next local id
                loc = n_src
                local_of[src] = loc
                frontier[n_src] = src
                n_src += 1
            block_indices[out + s] = loc
    for q in range(n_src):
        local_of[frontier[q]] = -1
    return block_indptr, block_indices, frontier[:n_src]


@dataclass
class MiniBatch:
    """What one sampled mini-batch feeds the model.

    seeds:       (B,) int64  the output nodes, global ids (rows of the last block's output, in order)
    input_nodes: (N_0,) int64 global ids of blocks[0]'s sources: the rows of x to gather
    blocks:      list of L bipartite ``Graph``; blocks[l] is (N_{l+1}, N_l), consumed by layer l
    """
    seeds: np.ndarray
    input_nodes: np.ndarray
    blocks: list

    @property
    def num_sampled_edges(self):
        return sum(b.num_edges for b in self.blocks)


def _check_square(graph, name="graph"):
    if not isinstance(graph, Graph):
        raise TypeError(f"{name} must be a gnn_scratch Graph, got {type(graph).__name__}")
    if graph.num_dst != graph.num_src:
        raise ValueError(f"{name} must be square (one node set), got shape {graph.shape}")


def _check_nodes(nodes, num_nodes, name, distinct=True):
    a = np.asarray(nodes)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D array of integer node ids, got {a.dtype} of shape {a.shape}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= num_nodes):
        raise ValueError(f"{name} holds node ids in [{a.min()}, {a.max()}], expected [0, {num_nodes})")
    if distinct and np.unique(a).size != a.size:
        raise ValueError(f"{name} must hold distinct node ids")
    return a


def _check_fanouts(fanouts):
    fo = list(fanouts) if not isinstance(fanouts, (int, np.integer)) else [fanouts]
    if not fo:
        raise ValueError("fanouts must list one fan-out per layer, got an empty list")
    for f in fo:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or (f < 1 and f != -1):
            raise ValueError(f"every fan-out must be a positive int or -1 (all neighbours), got {f!r} in {fanouts}")
    return [int(f) for f in fo]


def _seed_state(seed):
    """A (1,) uint64 SplitMix64 state from an int or a tuple of ints (via numpy's SeedSequence)."""
    entropy = list(seed) if isinstance(seed, (tuple, list)) else seed
    return np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)


def sample_blocks(graph, seeds, fanouts, seed=0):
    """Sample a mini-batch around ``seeds``: one bipartite block per layer.

    graph: square ``Graph`` (rows = destinations; a node's neighbours are the sources of its row).
    seeds: (B,) distinct node ids. fanouts: one int per layer, hop order as PyG's ``num_neighbors``:
    fanouts[0] in-neighbours of each seed, fanouts[1] of each of those, ...; -1 = all of them.
    seed: int or tuple of ints; the same (graph, seeds, fanouts, seed) give the same batch.
    Returns a ``MiniBatch`` whose blocks are ordered input layer first.
    """
    _check_square(graph)
    targets = _check_nodes(seeds, graph.num_nodes, "seeds")
    if targets.size == 0:
        raise ValueError("seeds must hold at least one node id")
    fanouts = _check_fanouts(fanouts)
    state = _seed_state(seed)
    local_of = np.full(graph.num_nodes, -1, dtype=np.int64)
    blocks = []
    for fanout in fanouts:
        indptr, indices, frontier = sample_layer_kernel(graph.indptr, graph.indices, targets, fanout, local_of,
                                                        state)
        # valid by construction: indptr is a running sum from 0, every local id is < len(frontier)
        blocks.append(Graph(indptr, indices, num_src=frontier.size, _validated=True))
        targets = frontier
    blocks.reverse()
    return MiniBatch(seeds=np.asarray(seeds, dtype=np.int64), input_nodes=targets, blocks=blocks)


def full_block(graph, targets):
    """The block of every in-edge of ``targets``: (B, N_src) with the targets first among the sources.

    Equal to ``sample_blocks(graph, targets, [-1]).blocks[0]``; used by layer-wise inference.
    Returns (block, frontier) with frontier (N_src,) the global ids of the block's sources.
    """
    _check_square(graph)
    t = _check_nodes(targets, graph.num_nodes, "targets")
    local_of = np.full(graph.num_nodes, -1, dtype=np.int64)
    indptr, indices, frontier = sample_layer_kernel(graph.indptr, graph.indices, t, -1, local_of,
                                                    _seed_state(0))
    return Graph(indptr, indices, num_src=frontier.size, _validated=True), frontier


def subgraph(graph, nodes):
    """The subgraph induced by ``nodes``, relabelled so that nodes[k] becomes node k.

    graph: square ``Graph``; nodes: (K,) distinct ids. Keeps every edge whose two ends are in
    ``nodes``, in CSR order within each row, with its weight. Returns (sub (K, K) Graph, edge_mask
    (E,) bool over the parent's CSR edges -- which ones were kept, for edge features).
    O(E_rows(nodes) + N).
    """
    _check_square(graph)
    nodes = _check_nodes(nodes, graph.num_nodes, "nodes")
    if nodes.size == 0:
        raise ValueError("nodes must hold at least one node id")
    local_of = np.full(graph.num_nodes, -1, dtype=np.int64)
    local_of[nodes] = np.arange(nodes.size)
    keep = local_of[graph.indices] >= 0
    keep &= local_of[graph.dst_of_edge()] >= 0
    # rows in the order of `nodes`: gather each selected row's kept edges
    starts, ends = graph.indptr[nodes], graph.indptr[nodes + 1]
    lengths = ends - starts
    edge_pos = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
    edge_pos = edge_pos[keep[edge_pos]]
    row_of = local_of[graph.dst_of_edge()[edge_pos]]
    indptr = np.zeros(nodes.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of, minlength=nodes.size), out=indptr[1:])
    w = None if graph.edge_weight is None else graph.edge_weight[edge_pos]
    return Graph.from_csr(indptr, local_of[graph.indices[edge_pos]], w, num_src=nodes.size), keep


def khop_nodes(graph, seeds, hops):
    """The nodes within ``hops`` hops of ``seeds`` along in-edges, seeds first, then by hop of discovery."""
    _check_square(graph)
    nodes = _check_nodes(seeds, graph.num_nodes, "seeds")
    if isinstance(hops, bool) or not isinstance(hops, (int, np.integer)) or hops < 0:
        raise ValueError(f"hops must be a non-negative int, got {hops!r}")
    for _ in range(int(hops)):
        _, frontier = full_block(graph, nodes)
        if frontier.size == nodes.size:
            break
        nodes = frontier
    return nodes


def khop_subgraph(graph, seeds, hops):
    """The subgraph induced by the ``hops``-hop in-neighbourhood of ``seeds``, seeds first.

    An L-layer GNN's output at the seeds depends only on this subgraph, so running the model on it
    reproduces the full-graph output at the seeds (rows 0 .. B-1): inference on unseen nodes
    without the whole graph. Returns (sub Graph, nodes (K,) global ids with nodes[:B] = seeds).
    """
    nodes = khop_nodes(graph, seeds, hops)
    sub, _ = subgraph(graph, nodes)
    return sub, nodes
