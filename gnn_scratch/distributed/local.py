"""Layer-wise inference in row chunks, in memory: the reference that the Dask path equals bit for bit.

PinSage's inference (Ying et al., KDD 2018, §3.4 "Efficient inference with MapReduce") computes every
node's embedding one layer at a time, each node's state once per layer:

    map      m = transform(h)                      once per node (PinSAGEConv: m = ReLU(h Q + q))
    join     gather m_j for j in N(i)             N(i) = the importance neighbourhood of node i
    reduce   h'_i = combine(h_i, aggregate(m, N(i)))   weighted mean by the visit counts, then
                                                       normalize(ReLU([h_i || n_i] W + w))

A layer here is anything with those three methods (``PinSAGEConv`` or a stand-in in the tests):
``transform(h) -> m``, ``aggregate(m, block) -> n`` and ``combine(h_dst, n) -> h'``, with
forward(x, block) == combine(x[:N_dst], aggregate(transform(x), block)).

Bit-equality across the two paths rests on three facts, each checked in tests/test_distributed.py:
* OpenBLAS's bits depend on the number of rows of a product and on its thread count (measured on this
  machine: one product's rows differ from the same rows computed in a smaller product, and 1 thread
  from 2). So both paths cut the nodes into the same row chunks (``chunk_bounds``) for ``transform``
  and ``combine``, and run every chunk's products on one BLAS thread (``threads.blas_threads(1)``);
  Dask's worker processes are started with OPENBLAS_NUM_THREADS=1 anyway.
* ``aggregate`` is an SpMM whose row i sums its edges in CSR order (row-parallel, no atomics), so a
  row's result does not depend on which other rows or columns are in the block: gathering the needed
  rows of m and relabelling the block (``gather_plan``) keeps each row's edges, weights and order.
* The neighbourhood of a node does not depend on the other nodes queried with it
  (``importance_neighbourhoods`` seeds the walks per node), so a chunk's rows equal the rows of the
  all-nodes block.

Nothing here imports Dask: this module is the single-machine path.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..graph import Graph
from ..threads import blas_threads

GENERATION_ROWS = 4096   # features are drawn in fixed blocks of rows: the same bits for any chunk size


# ------------------------------------------------------------------------------------------ chunks
def chunk_bounds(num_nodes, chunk_size):
    """The row chunks [lo, hi) of ``num_nodes`` rows, ``chunk_size`` rows each (the last one shorter).

    Returns starts (C + 1,) int64: chunk c is rows [starts[c], starts[c + 1]). Raises ValueError for a
    chunk_size or num_nodes that is not a positive int.
    """
    for name, v in (("num_nodes", num_nodes), ("chunk_size", chunk_size)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return np.append(np.arange(0, num_nodes, chunk_size, dtype=np.int64), np.int64(num_nodes))


class GeneratedFeatures:
    """Node features drawn from a seed, rows [lo, hi) at a time: ``features(lo, hi) -> (hi - lo, F)``.

    Standard normal float32 (or ``dtype``) values; block b of ``GENERATION_ROWS`` rows is drawn from
    ``default_rng([seed, b])``, so a row's values do not depend on the chunks it is asked in, and a
    Dask worker can make its own chunk without the client ever holding x. Picklable (it holds only
    its four numbers). ``materialize()`` gives all N rows (the in-memory path).
    """

    def __init__(self, num_nodes, num_features, seed=0, dtype=np.float32):
        chunk_bounds(num_nodes, 1)
        chunk_bounds(num_features, 1)
        self.num_nodes, self.num_features, self.seed = int(num_nodes), int(num_features), int(seed)
        self.dtype = np.dtype(dtype)

    @property
    def shape(self):
        return (self.num_nodes, self.num_features)

    def __call__(self, lo, hi):
        if not 0 <= lo <= hi <= self.num_nodes:
            raise ValueError(f"rows [lo, hi) must lie in [0, {self.num_nodes}], got [{lo}, {hi})")
        out = np.empty((hi - lo, self.num_features), dtype=self.dtype)
        for b in range(lo // GENERATION_ROWS, -(-hi // GENERATION_ROWS)):
            b_lo = b * GENERATION_ROWS
            b_hi = min(b_lo + GENERATION_ROWS, self.num_nodes)
            block = np.random.default_rng([self.seed, b]).standard_normal((b_hi - b_lo, self.num_features),
                                                                          dtype=np.float64).astype(self.dtype)
            a, z = max(lo, b_lo), min(hi, b_hi)
            out[a - lo:z - lo] = block[a - b_lo:z - b_lo]
        return out

    def materialize(self):
        return self(0, self.num_nodes)

    def __repr__(self):
        return f"GeneratedFeatures(num_nodes={self.num_nodes}, num_features={self.num_features}, seed={self.seed})"


def num_rows(x):
    """N, the rows of x: an (N, F) array or a ``GeneratedFeatures``; ValueError for anything else."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"x must be an (N, F) array or a GeneratedFeatures, got {type(x).__name__} "
                         f"of shape {shape}")
    return int(shape[0])


def feature_rows(x, lo, hi):
    """Rows [lo, hi) of x: an (N, F) array or a ``GeneratedFeatures``-like callable ``x(lo, hi)``."""
    return np.ascontiguousarray(x(lo, hi) if callable(x) else x[lo:hi])


# Generated user-item graphs by size (directed edges of the square graph = 2 x interactions, about
# 2 x num_users x mean_interactions): the sizes of ``gnn-scratch embed --dataset`` and of the scaling
# benchmark (scripts/bench_dask_inference.py). Inference runs over the items.
BIPARTITE_SIZES = {
    "small": dict(num_items=2_000, num_users=5_000, mean_interactions=10.0),
    "1m": dict(num_items=10_000, num_users=25_000, mean_interactions=20.0),
    "10m": dict(num_items=100_000, num_users=250_000, mean_interactions=20.0),
    "30m": dict(num_items=300_000, num_users=750_000, mean_interactions=20.0),
    "50m": dict(num_items=500_000, num_users=1_250_000, mean_interactions=20.0),
}


class BipartiteGraph:
    """A picklable builder of ``data.bipartite``'s square user-item graph (items first): ``builder() -> Graph``.

    ``BipartiteGraph("10m", seed=0)`` or ``BipartiteGraph(num_items=..., num_users=..., ...)`` (the
    arguments of ``generate_bipartite``). Handed to ``layerwise_inference_dask`` as ``graph``, it runs
    on one worker (the client never holds the graph). ``num_items``: the nodes inference runs over.
    """

    def __init__(self, size=None, seed=0, **kwargs):
        if size is not None:
            if size not in BIPARTITE_SIZES:
                raise ValueError(f"size must be one of {', '.join(BIPARTITE_SIZES)}, got {size!r}")
            kwargs = {**BIPARTITE_SIZES[size], **kwargs}
        self.size, self.seed, self.kwargs = size, int(seed), kwargs

    @property
    def num_items(self):
        return int(self.kwargs.get("num_items", 20000))

    def __call__(self):
        from ..data.bipartite import generate_bipartite
        return generate_bipartite(num_test_pairs=0, seed=self.seed, **self.kwargs).graph

    def __repr__(self):
        return f"BipartiteGraph({self.size!r}, seed={self.seed}, **{self.kwargs!r})"


# ------------------------------------------------------------------------------------ neighbourhoods
def row_slice(block, lo, hi):
    """Rows [lo, hi) of a block ``Graph`` (same sources, same edge order and weights)."""
    a, z = int(block.indptr[lo]), int(block.indptr[hi])
    w = None if block.edge_weight is None else block.edge_weight[a:z]
    return Graph(block.indptr[lo:hi + 1] - a, block.indices[a:z], w, num_src=block.num_src,
                 edge_id=block.edge_id[a:z], _validated=True)


def chunk_neighbourhood(neighbourhood, graph, lo, hi, num_nodes):
    """The block of destinations [lo, hi) of the ``num_nodes`` nodes inference runs over: (hi - lo, num_nodes).

    neighbourhood: a function (graph, nodes (B,) int64) -> block Graph (B, num_nodes) with global
    source ids (e.g. ``ImportanceNeighbourhood``), or an all-nodes block ``Graph`` (num_nodes,
    num_nodes) whose rows are sliced (``graph`` is then unused). Raises ValueError when the block has
    the wrong shape.
    """
    if isinstance(neighbourhood, Graph):
        if neighbourhood.shape != (num_nodes, num_nodes):
            raise ValueError(f"neighbourhood: a precomputed block must be ({num_nodes}, {num_nodes}) (a row per "
                             f"node, global source ids), got {neighbourhood.shape}")
        return row_slice(neighbourhood, lo, hi)
    block = neighbourhood(graph, np.arange(lo, hi, dtype=np.int64))
    if not isinstance(block, Graph) or block.shape != (hi - lo, num_nodes):
        raise ValueError(f"neighbourhood(graph, nodes) must return a block Graph of shape ({hi - lo}, {num_nodes}) "
                         f"(a row per queried node, global source ids < {num_nodes}), got "
                         f"{getattr(block, 'shape', type(block).__name__)!r}")
    return block


class ImportanceNeighbourhood:
    """PinSage's neighbourhood function for layer-wise inference: (graph, nodes) -> (B, num_src) block.

    ``pinsage.importance_neighbourhoods(graph, num_walks, walk_length, k, seed, nodes, hops)`` with
    its sources cut to the first ``num_src`` nodes (``pinsage.restrict_sources``: on a user-item graph
    with hops=2 an item's neighbours are items, so the block over the I items is (B, I)); num_src
    None keeps all N. Picklable, so Dask sends it to the workers; each row depends only on its node.
    """

    def __init__(self, num_walks=50, walk_length=2, k=10, seed=0, hops=1, num_src=None):
        self.kwargs = dict(num_walks=num_walks, walk_length=walk_length, k=k, seed=seed, hops=hops)
        self.num_src = num_src

    @staticmethod
    def prepare(graph):
        """Build (and cache on ``graph``) the walk CSR the walks read: once, before the graph is copied."""
        from ..embed.walks import walk_csr
        walk_csr(graph, "in")

    def __call__(self, graph, nodes):
        from ..pinsage import importance_neighbourhoods, restrict_sources
        block = importance_neighbourhoods(graph, nodes=nodes, **self.kwargs)
        return block if self.num_src is None else restrict_sources(block, self.num_src)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"ImportanceNeighbourhood({args}, num_src={self.num_src!r})"


@dataclass
class GatherPlan:
    """What the join of one destination chunk needs: which rows of which source chunks of m.

    needed: (S,) int64 the source chunks, ascending; rows: S arrays, rows[s] the local row ids (into
    chunk needed[s]) of the sources, ascending; block: the chunk's block relabelled so that source u
    is row u of concatenate([m_chunk[r] for m_chunk, r in zip(chunks, rows)]) -- same edges, weights and
    CSR order as the global block. A chunk with no edge still needs one chunk (its own) and gathers no
    row: the aggregate is then one zero row per destination, as the global SpMM gives an empty row.
    """
    needed: np.ndarray
    rows: list
    block: Graph

    @property
    def num_gathered(self):
        return int(sum(r.size for r in self.rows))


def gather_plan(block, starts, chunk):
    """Plan the join of destination chunk ``chunk`` from its block (global source ids) and the chunk starts."""
    src = np.asarray(block.indices, dtype=np.int64)
    uniq, inverse = np.unique(src, return_inverse=True)
    if uniq.size == 0:
        local = Graph(block.indptr, np.zeros(0, dtype=np.int32), block.edge_weight, num_src=1,
                      edge_id=block.edge_id, _validated=True)
        return GatherPlan(np.array([chunk], dtype=np.int64), [np.zeros(0, dtype=np.int64)], local)
    owner = np.searchsorted(starts, uniq, side="right") - 1           # uniq ascending, so owner ascending
    needed, first = np.unique(owner, return_index=True)
    ends = np.append(first[1:], uniq.size)
    rows = [uniq[a:z] - starts[c] for c, a, z in zip(needed, first, ends)]
    local = Graph(block.indptr, inverse.reshape(-1).astype(np.int32), block.edge_weight, num_src=uniq.size,
                  edge_id=block.edge_id, _validated=True)
    return GatherPlan(needed.astype(np.int64), rows, local)


def plan_chunk(neighbourhood, graph, starts, chunk):
    """``gather_plan`` of chunk ``chunk``'s neighbourhood (a worker's task in the Dask path)."""
    lo, hi = int(starts[chunk]), int(starts[chunk + 1])
    return gather_plan(chunk_neighbourhood(neighbourhood, graph, lo, hi, int(starts[-1])), starts, chunk)


# -------------------------------------------------------------------------------- map, join, reduce
def transform_chunk(layer, h):
    """The map: m = layer.transform(h) for one row chunk, its products on one BLAS thread."""
    with blas_threads(1):
        return layer.transform(h)


def join_reduce(layer, h_dst, plan, *m_chunks):
    """Join + reduce of one destination chunk: gather its sources' m rows, aggregate, combine.

    h_dst: (B, F) the chunk's own states; m_chunks: the chunks of m named by ``plan.needed``, in
    that order. Returns combine(h_dst, aggregate(M, plan.block)) with M the gathered rows (B, F_out).
    """
    if len(m_chunks) != len(plan.rows):
        raise ValueError(f"join_reduce needs {len(plan.rows)} chunks of m (plan.needed), got {len(m_chunks)}")
    return reduce_gathered(layer, h_dst, plan, *[m[r] for m, r in zip(m_chunks, plan.rows)])


def reduce_gathered(layer, h_dst, plan, *parts):
    """``join_reduce`` from the gathered rows themselves: parts[j] = m_chunk(needed[j])[plan.rows[j]].

    The Dask path selects each part where its chunk of m lives (``take_rows``) and moves only those
    rows, not whole chunks, to the chunk's reduce task.
    """
    if len(parts) != len(plan.rows):
        raise ValueError(f"reduce_gathered needs {len(plan.rows)} parts (plan.needed), got {len(parts)}")
    M = np.concatenate(parts, axis=0) if plan.num_gathered else np.zeros((1, parts[0].shape[1]),
                                                                         dtype=parts[0].dtype)
    with blas_threads(1):
        return layer.combine(h_dst, layer.aggregate(np.ascontiguousarray(M), plan.block))


def plan_rows(plan, j):
    """The local row ids the plan reads from its j-th needed chunk (a small array, sent to that chunk)."""
    return plan.rows[j]


def take_rows(m_chunk, rows):
    """m_chunk[rows]: the part of a chunk of m that one destination chunk needs."""
    return m_chunk[rows]


def _check_layers(layers):
    layers = list(layers)
    if not layers:
        raise ValueError("model_layers must hold at least one layer")
    for i, layer in enumerate(layers):
        missing = [m for m in ("transform", "aggregate", "combine") if not callable(getattr(layer, m, None))]
        if missing:
            raise ValueError(f"model_layers[{i}] ({type(layer).__name__}) lacks {', '.join(missing)}: layer-wise "
                             "inference needs transform(h), aggregate(m, block) and combine(h_dst, n)")
    return layers


def per_layer(neighbourhood, num_layers):
    """One neighbourhood per layer: a list of them as given (its length checked), or the one repeated."""
    if isinstance(neighbourhood, (list, tuple)):
        if len(neighbourhood) != num_layers:
            raise ValueError(f"neighbourhood: give one per layer ({num_layers}) or one for all, "
                             f"got {len(neighbourhood)}")
        return list(neighbourhood)
    return [neighbourhood] * num_layers


def layerwise_inference_local(model_layers, x, graph, neighbourhood, chunk_size=65536):
    """Every node's embedding, layer by layer, in memory: (N, F_out). The Dask path's reference.

    model_layers: layers with transform / aggregate / combine (e.g. ``PinSAGEConv``), applied in order.
    x: (N, F_in) array or a ``GeneratedFeatures``: inference runs over its N rows (node ids 0..N-1).
    graph: what ``neighbourhood`` reads (a ``Graph``, possibly larger than N: a user-item graph
    whose first N nodes are the items). neighbourhood: a function (graph, nodes) -> (B, N) block
    (``ImportanceNeighbourhood``), an all-nodes (N, N) block Graph, or a list of one of those per
    layer. Each layer's all-nodes block is built once (one call with every node), then per layer:
    m = transform over the row chunks of ``chunk_size``, n = aggregate(m, block) over all rows at
    once, h' = combine over the same row chunks.
    Raises ValueError for layers without the three pieces, an x that is not 2-D, a mis-shaped block.
    """
    layers = _check_layers(model_layers)
    N = num_rows(x)
    starts = chunk_bounds(N, chunk_size)
    spans = list(zip(starts[:-1].tolist(), starts[1:].tolist()))
    blocks, built = [], {}
    for nb in per_layer(neighbourhood, len(layers)):
        if id(nb) not in built:
            built[id(nb)] = chunk_neighbourhood(nb, graph, 0, N, N)
        blocks.append(built[id(nb)])
    h = feature_rows(x, 0, N)
    for layer, block in zip(layers, blocks):
        m = np.concatenate([transform_chunk(layer, h[lo:hi]) for lo, hi in spans], axis=0)
        with blas_threads(1):
            n = layer.aggregate(m, block)
            h = np.concatenate([layer.combine(np.ascontiguousarray(h[lo:hi]), np.ascontiguousarray(n[lo:hi]))
                                for lo, hi in spans], axis=0)
    return h


# ------------------------------------------------------------------------- results written per chunk
def load_embeddings(folder, mmap_mode=None):
    """The (N, F) embeddings written by ``layerwise_inference_dask(..., out=folder)``, concatenated.

    With ``mmap_mode`` ('r'), one chunk at a time is mapped: iterate over ``iter_chunks`` instead
    for a graph that does not fit in memory. Raises OSError when the folder has no manifest.
    """
    return np.concatenate([a for _, a in iter_chunks(folder, mmap_mode)], axis=0)


def iter_chunks(folder, mmap_mode=None):
    """Yield (lo, chunk (hi - lo, F)) from a folder written by ``layerwise_inference_dask``."""
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    for lo, name in zip(manifest["chunk_starts"], manifest["files"]):
        yield lo, np.load(os.path.join(folder, name), mmap_mode=mmap_mode)
