"""PinSage's importance-based neighbourhoods (Ying et al., KDD 2018, section 3.1): top-k visit counts of short walks.

From every queried node u, ``num_walks`` (T) random walks of ``walk_length`` (L) steps are run; a
step is ``hops`` moves along the graph's edges (a move from v goes to a uniformly drawn in-edge
source of v's CSR row -- or with probability w_e / W_v when the graph is weighted -- the rule of
``embed.walks``). Only the node reached at the end of each step is counted, never u itself. The k
nodes with the most visits are u's neighbours, and their visit counts, divided by the sum of the k
counts, the edge weights ("importance pooling" weights alpha_uv, sum_v alpha_uv = 1):

    c_u(v) = #{(t, s): walk t from u is at v after step s},      v != u,  t < T,  1 <= s <= L
    N(u)   = the k nodes with the largest c_u(v)   (tie: the smaller node id first)
    alpha_uv = c_u(v) / sum_{v' in N(u)} c_u(v')

Bipartite user-item graphs (the paper's pins and boards; ``data.bipartite``): the square graph
holds items 0 .. I-1 and users I .. I+U-1 with both directions of every interaction. With
``hops=2`` a step is item -> user -> item, so every counted node of a walk started at an item is an
item: an item's neighbours are the items most often co-engaged, by the same users, with it or with
its co-engaged items (the paper's setting, where a pin's neighbours are pins). The user visited
mid-step is not counted.

A walk that reaches a node with no edge stops (its remaining steps count nothing); a node whose
walks count nothing -- isolated, or only ever returning to itself -- gets an empty row.

Output: a bipartite block ``Graph`` with one row per queried node (all nodes by default), in the
order of ``nodes``, ``num_src = N`` (the sources are *global* node ids), ``edge_weight`` = alpha
(float64, each non-empty row sums to 1 up to rounding); within a row the neighbours come by
decreasing count, ties by increasing id. ``PinSAGEConv.aggregate`` consumes such a block.

Randomness: walk t of node u reads the SplitMix64 stream (key(seed), u * T + t) (``embed.alias``),
so row u is a pure function of (graph, u, T, L, k, hops, seed): the same bits for any thread count,
and the same row whether u is queried alone, in a chunk or among all nodes (layer-wise inference
over chunks relies on it). Cost O(|nodes| T L hops + |nodes| T L log(T L)) time (the counts are
found by sorting each node's visits), O(T L) scratch per thread.
"""
from __future__ import annotations

import numbers

import numpy as np
from numba import njit, prange

from ..embed.alias import alias_draw, next_below, seed_key, stream_start
from ..embed.walks import run_lengths, walk_csr
from ..graph import Graph

_KERNEL = dict(nogil=True, cache=True)
NEIGHBOURHOOD_PURPOSE = 18      # seed_key purpose tag of the importance walks (issue 18)


@njit(**_KERNEL, parallel=True)
def importance_kernel(indptr, indices, weighted, alias_prob, alias_idx, nodes, num_walks, walk_length, hops, k,
                      key, out_idx, out_cnt, out_len):
    """Walk, count and keep the top k for every queried node, rows in parallel.

    indptr (N + 1,) int64, indices (E,) int32: the walk adjacency (``embed.walks.WalkCSR``), row v =
    the nodes a move from v can reach; weighted bool with alias_prob (E,) float64, alias_idx (E,)
    int32 the per-row alias tables (read only when weighted). nodes (B,) int64 the start nodes.
    num_walks T, walk_length L (steps), hops (moves per step), k >= 1; key uint64.
    out_idx (B, k) int32, out_cnt (B, k) int64, out_len (B,) int64: preallocated; row r's first
    out_len[r] entries are its neighbours by decreasing count (tie: smaller id), the rest untouched.
    Parallel over rows, each row's walks read their own streams: deterministic for any thread count.
    O(B T L hops + B T L log(T L)).
    """
    B = nodes.size
    for r in prange(B):
        u = nodes[r]
        visits = np.empty(num_walks * walk_length, dtype=np.int64)
        nv = 0
        for t in range(num_walks):
            s = stream_start(key, np.uint64(u) * np.uint64(num_walks) + np.uint64(t))
            cur = u
            for step in range(walk_length):
                for h in range(hops):
                    lo = indptr[cur]
                    d = indptr[cur + 1] - lo
                    if d == 0:
                        cur = -1
                        break
                    if weighted:
                        off, s = alias_draw(alias_prob, alias_idx, lo, d, s)
                    else:
                        off, s = next_below(s, d)
                    cur = np.int64(indices[lo + off])
                if cur < 0:
                    break
                if cur != u:
                    visits[nv] = cur
                    nv += 1
        if nv == 0:
            out_len[r] = 0
            continue
        v = np.sort(visits[:nv])
        # run-length counts of the sorted visits: distinct ids ascending, so a stable sort by -count
        # below leaves equal counts in increasing id order (the tie rule)
        ids = np.empty(nv, dtype=np.int64)
        cnt = np.empty(nv, dtype=np.int64)
        nd = run_lengths(v, ids, cnt)
        order = np.argsort(-cnt[:nd], kind="mergesort")
        m = min(k, nd)
        for a in range(m):
            out_idx[r, a] = ids[order[a]]
            out_cnt[r, a] = cnt[order[a]]
        out_len[r] = m


def _positive_int(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {v!r}")
    if v < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {v!r}")
    return int(v)


def importance_neighbourhoods(graph, num_walks=50, walk_length=2, k=10, seed=0, nodes=None, hops=1,
                              return_counts=False):
    """PinSage's importance neighbourhoods of ``nodes``: a (B, N) block ``Graph`` with the alpha weights.

    graph: square ``Graph`` (N nodes; weights, if any, >= 0: walks step with probability w_e / W_v).
    num_walks: walks per node (T); walk_length: steps per walk (L); hops: moves per step (2 on a
    user-item graph: item -> user -> item, see the module doc); k: neighbours kept per node (top-k
    visit counts). seed: int or tuple of ints. nodes: (B,) int node ids (default all N, in order).
    Returns ``Graph`` with B rows in the order of ``nodes``, num_src = N, indices = global ids,
    edge_weight (E,) float64 = visit counts / their row sum (empty rows: no walk counted anything);
    with ``return_counts`` also the (E,) int64 raw counts in the same order.
    The same row for a node whatever else is queried, and for any NUMBA_NUM_THREADS.
    Raises TypeError / ValueError: graph not a square ``Graph``, num_walks / walk_length / k / hops
    not positive ints, nodes not 1-D integer ids in [0, N), a negative edge weight.
    """
    T = _positive_int("num_walks", num_walks)
    L = _positive_int("walk_length", walk_length)
    k = _positive_int("k", k)
    hops = _positive_int("hops", hops)
    adj = walk_csr(graph, "in")            # TypeError / ValueError for a non-Graph, a non-square graph
    N = adj.num_nodes
    if nodes is None:
        nodes = np.arange(N, dtype=np.int64)
    else:
        a = np.asarray(nodes)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise ValueError(f"nodes must be a 1-D array of integer node ids, got {a.dtype} of shape {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= N):
            raise ValueError(f"nodes holds node ids in [{a.min()}, {a.max()}], expected [0, {N})")
        if a.size == 0:
            raise ValueError("nodes must hold at least one node id")
        nodes = np.ascontiguousarray(a, dtype=np.int64)
    B = nodes.size
    weighted = adj.weight is not None
    out_idx = np.empty((B, k), dtype=np.int32)
    out_cnt = np.empty((B, k), dtype=np.int64)
    out_len = np.empty(B, dtype=np.int64)
    importance_kernel(adj.indptr, adj.indices, weighted, adj.alias_prob, adj.alias_idx, nodes, T, L, hops, k,
                      seed_key(seed, NEIGHBOURHOOD_PURPOSE), out_idx, out_cnt, out_len)
    indptr = np.zeros(B + 1, dtype=np.int64)
    np.cumsum(out_len, out=indptr[1:])
    keep = np.arange(k)[None, :] < out_len[:, None]
    indices = out_idx[keep]
    counts = out_cnt[keep]
    row_sum = np.repeat(np.add.reduceat(counts, indptr[:-1][out_len > 0]) if counts.size else counts,
                        out_len[out_len > 0])
    weight = counts / row_sum
    block = Graph(indptr, indices, edge_weight=weight, num_src=N)
    return (block, counts) if return_counts else block


def restrict_sources(block, num_src):
    """The same block with only the first ``num_src`` nodes as sources (every index must be < num_src).

    On a user-item graph with ``hops=2`` every neighbour of an item is an item, so the (I, I + U)
    block of the items is an (I, I) item graph: square, ready for ``importance_blocks``.
    """
    if block.indices.size and int(block.indices.max()) >= num_src:
        raise ValueError(f"block has a source id {int(block.indices.max())} >= num_src = {num_src}")
    return Graph(block.indptr, block.indices, edge_weight=block.edge_weight, num_src=num_src)


def importance_blocks(neighbourhoods, seeds, num_layers):
    """The blocks of an L-layer PinSage mini-batch around ``seeds``, from a square neighbourhood graph.

    neighbourhoods: square (N, N) ``Graph`` whose row u lists u's importance neighbours with their
    weights (``importance_neighbourhoods(..., nodes=None)``, or ``restrict_sources`` of the items').
    seeds: (B,) distinct node ids. Returns (blocks, input_nodes): blocks[l] is consumed by layer l
    (input layer first), a bipartite block whose destinations are its first N_dst sources (the
    GraphSAGE sampler's relabelling, ``sampling.sample_layer_kernel`` with every edge kept), its
    edge weights the alpha of those edges; input_nodes the global ids of blocks[0]'s sources.
    """
    from ..sampling import _check_nodes, _check_square, sample_layer_kernel, _seed_state
    _check_square(neighbourhoods, "neighbourhoods")
    if neighbourhoods.edge_weight is None:
        raise ValueError("neighbourhoods must carry the importance weights as edge_weight")
    targets = _check_nodes(seeds, neighbourhoods.num_nodes, "seeds")
    num_layers = _positive_int("num_layers", num_layers)
    local_of = np.full(neighbourhoods.num_nodes, -1, dtype=np.int64)
    state = _seed_state(0)                               # unused: fan-out -1 draws nothing
    ip, w = neighbourhoods.indptr, neighbourhoods.edge_weight
    blocks = []
    for _ in range(num_layers):
        indptr, indices, frontier = sample_layer_kernel(ip, neighbourhoods.indices, targets, -1, local_of, state)
        # fan-out -1 keeps every edge of each target's row in CSR order: the weights are those rows'
        lengths = np.diff(indptr)
        pos = np.repeat(ip[targets] - indptr[:-1], lengths) + np.arange(indptr[-1])
        blocks.append(Graph(indptr, indices, edge_weight=np.ascontiguousarray(w[pos]), num_src=frontier.size,
                            _validated=True))
        targets = frontier
    blocks.reverse()
    return blocks, targets
