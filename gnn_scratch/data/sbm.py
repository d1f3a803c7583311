"""PATTERN and CLUSTER: the stochastic-block-model node-classification sets of benchmarking-gnns, regenerated.

Dwivedi, Joshi, Laurent, Bengio & Bresson, "Benchmarking Graph Neural Networks" (2020, JMLR 2023),
section "Node classification with SBM graphs" and their generators
graphdeeplearning/benchmarking-gnns ``data/SBMs/generate_SBM_PATTERN.ipynb`` and
``generate_SBM_CLUSTER.ipynb``. We cannot reproduce their files bit for bit (they used NumPy's legacy
global RNG, unseeded); we draw from the same distributions, seeded, so the same arguments give the
same dataset, bit for bit, on any machine.

PATTERN -- find the nodes of a planted pattern (2 classes: 1 = pattern node, 0 = the rest)
  1. 5 communities, sizes s_r ~ Uniform{5, ..., 34}; every pair i < j of these nodes is an edge with
     probability p = 0.5 within a community, q = 0.35 across (undirected, no self-loops).
  2. node tags (features) ~ Uniform{0, 1, 2}.
  3. a pattern P: n_P nodes with its own edges (each pair with p_P = 0.5) and tags (Uniform{0, 1, 2}),
     drawn ONCE per pattern instance; 100 instances, each planted in 100 train / 20 val / 20 test graphs.
     Every (pattern node, community node) pair is an edge with probability q_P = 0.5.
  4. the nodes are shuffled; label = 1 for the pattern's nodes.
CLUSTER -- semi-supervised clustering (6 classes = the community of each node)
  1. 6 communities, sizes ~ Uniform{5, ..., 34}; edges with p = 0.55 within, q = 0.25 across.
  2. nodes shuffled; in each community ONE node chosen uniformly gets tag r + 1 (its community r,
     1..6); every other node has tag 0 = "unknown". label = community r in 0..5.

Parameters and their sources ([G] = the generator notebooks above, [P] = the paper's appendix text,
as quoted by DGL's PATTERNDataset / CLUSTERDataset docs, [S] = the released data's statistics, PyG's
GNNBenchmarkDataset table: PATTERN 14,000 graphs, ~118.9 nodes, ~6,098.9 directed edges per graph;
CLUSTER 12,000 graphs, ~117.2 nodes, ~4,303.9 edges):

=================  ================  ===========  ==========================================================
parameter          PATTERN           CLUSTER      source / note
=================  ================  ===========  ==========================================================
num_communities    5                 6            [G] ``nb_clusters``, [P]
community_size     [5, 35)           [5, 35)      [G] ``np.random.randint(5, 35)`` (35 excluded); [P] "[5, 35]"
p (within)         0.5               0.55         [G], [P]
q (across)         0.35              0.25         PATTERN: [P] q = 0.35 and [S] (the notebook's last cell
                                                  says 0.45, "v4": 0.45 gives ~7,060 edges per graph,
                                                  0.35 gives ~6,090, the released ~6,099); CLUSTER: [G], [P]
vocab_size         3 (tags 0..2)     7 (0..6)     [G] ``vocab_size = 3``; CLUSTER: 0 unknown + 6 labels [G]
num_patterns       100               --           [G] ``nb_pattern_instances = 100``, [P] "100 patterns"
pattern_size       [5, 35) per       --           [G] ``size_subgraph_min/max = 5/35`` "v2", one draw per
                   pattern instance               pattern instance; [P] says 20 nodes ("v1"), but 20 gives
                                                  117.5 nodes and ~5,890 edges per graph where the released
                                                  data has 118.9 and 6,099, which [5, 35) matches (mean
                                                  21.4 over its 100 drawn sizes). ``pattern_size=20`` gives [P].
p_pattern          0.5               --           [P]; [G] draws the pattern with ``p`` (also 0.5)
q_pattern          0.5               --           [P] "q_P = 0.5" and [S] ([G]'s last cell: 0.55, see q)
graphs train/val/  10000/2000/2000   10000/1000/  [G], [P]; PATTERN = 100 patterns x 100/20/20
test ("full")                        1000
"small"            200/40/40         200/20/20    ours: the full split ratios, for tests and CI
=================  ================  ===========  ==========================================================

Graph sizes: PATTERN 5 x [5, 34] + [5, 34] = 30..204 nodes possible ([P] reports 44-188 seen), mean
~117-119; CLUSTER 6 x [5, 34] = 30..204 possible ([P] 40-190 seen), mean 117.

Features: one-hot tags, ``x`` (n, 3) for PATTERN and (n, 7) for CLUSTER (benchmarking-gnns feeds the
integer tag to an ``nn.Embedding`` of that many rows, PyG stores the one-hot rows: the same model).

Seeds: graph i of split s is drawn from ``default_rng([seed, dataset id, s, i])`` and pattern instance j
(graph i uses instance i mod 100) from ``default_rng([seed, 1, 3, j])``, so a graph does not depend
on how many others are made: the "small" set is the first graphs of the "full" one.

Disk cache: ``cache_root() / "sbm" / <name>-<key>.npz``, key = sha256 of (generator version, name,
every parameter, split sizes, seed), so changing any of them, or this generator (bump
``GENERATOR_VERSION``), names another file: a cache never goes stale. Each graph's edges are stored
as its upper-triangle adjacency bits (``np.packbits``; ~0.9 kB per graph, ~13 MB for full PATTERN).

Metric: ``weighted_accuracy``, benchmarking-gnns' ``accuracy_SBM``.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import paths

GENERATOR_VERSION = 1
SBM_DATASETS = ("pattern", "cluster")
_DATASET_ID = {"pattern": 1, "cluster": 2}
SPLITS = ("train", "val", "test")

PATTERN_PARAMS = dict(num_communities=5, community_size=(5, 35), p=0.5, q=0.35, vocab_size=3,
                      num_patterns=100, pattern_size=(5, 35), p_pattern=0.5, q_pattern=0.5)
CLUSTER_PARAMS = dict(num_communities=6, community_size=(5, 35), p=0.55, q=0.25)
DEFAULTS = {"pattern": PATTERN_PARAMS, "cluster": CLUSTER_PARAMS}
SIZES = {"pattern": {"full": (10000, 2000, 2000), "small": (200, 40, 40)},
         "cluster": {"full": (10000, 1000, 1000), "small": (200, 20, 20)}}
NUM_CLASSES = {"pattern": 2, "cluster": 6}


# ================================================================================== checks
def _int(name, v, minimum):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def _prob(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not 0.0 <= float(v) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
    return float(v)


def _range(name, v):
    """(low, high): sizes drawn from Uniform{low, ..., high - 1} (NumPy's randint); an int n means (n, n + 1)."""
    if isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_)):
        v = (int(v), int(v) + 1)
    if not (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(a, (numbers.Integral, np.integer)) and not isinstance(a, bool) for a in v)
            and 1 <= v[0] < v[1]):
        raise ValueError(f"{name} must be an int >= 1 or a pair (low, high) with 1 <= low < high "
                         f"(sizes low .. high - 1), got {v!r}")
    return [int(v[0]), int(v[1])]


def sbm_params(name, **overrides):
    """The full, checked parameter dict of ``name`` ("pattern" | "cluster"): the defaults with ``overrides``.

    Raises ValueError for an unknown name, an unknown parameter, or a value out of range.
    """
    name = _check_name(name)
    params = dict(DEFAULTS[name])
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(f"unknown {name} parameter(s) {sorted(unknown)}; the parameters are {sorted(params)}")
    params.update(overrides)
    params["num_communities"] = _int("num_communities", params["num_communities"], 1)
    params["community_size"] = _range("community_size", params["community_size"])
    for key in ("p", "q", "p_pattern", "q_pattern"):
        if key in params:
            params[key] = _prob(key, params[key])
    if name == "pattern":
        params["vocab_size"] = _int("vocab_size", params["vocab_size"], 1)
        params["num_patterns"] = _int("num_patterns", params["num_patterns"], 1)
        params["pattern_size"] = _range("pattern_size", params["pattern_size"])
    return params


def _check_name(name):
    key = name.lower() if isinstance(name, str) else name
    if key not in SBM_DATASETS:
        raise ValueError(f"name must be one of {SBM_DATASETS}, got {name!r}")
    return key


def split_sizes(name, size):
    """(train, val, test) graph counts: size "full", "small", or an int number of training graphs
    (validation and test then keep the full set's ratio to it, at least one graph each)."""
    name = _check_name(name)
    if isinstance(size, str) and size in SIZES[name]:
        return SIZES[name][size]
    if isinstance(size, (numbers.Integral, np.integer)) and not isinstance(size, (bool, np.bool_)) and size >= 1:
        full = SIZES[name]["full"]
        return (int(size),) + tuple(max(1, int(size) * f // full[0]) for f in full[1:])
    raise ValueError(f"size must be 'full', 'small' or an int >= 1 (training graphs), got {size!r}")


# ================================================================================== generation
_TRIU = {}


def _triu(n):
    """np.triu_indices(n, 1) as int64, cached per n (the SBMs here have at most a few hundred nodes)."""
    if n not in _TRIU:
        _TRIU[n] = tuple(a.astype(np.int64) for a in np.triu_indices(n, 1))
    return _TRIU[n]


def _community_sizes(rng, params):
    lo, hi = params["community_size"]
    return rng.integers(lo, hi, size=params["num_communities"])


def _pattern(seed, j, params):
    """Pattern instance j: (its upper-triangle adjacency bits (m(m-1)/2,) bool, its tags (m,)), drawn once."""
    rng = np.random.default_rng([seed, _DATASET_ID["pattern"], 3, j])
    lo, hi = params["pattern_size"]
    m = int(rng.integers(lo, hi))
    bits = rng.random(m * (m - 1) // 2) < params["p_pattern"]
    tags = rng.integers(0, params["vocab_size"], size=m)
    return bits, tags


def _pattern_graph(rng, params, pattern):
    """One PATTERN graph: (n, upper-triangle bits over the final node order, tags (n,), labels (n,))."""
    K = params["num_communities"]
    sizes = _community_sizes(rng, params)
    n_sbm = int(sizes.sum())
    c = np.repeat(np.arange(K), sizes)
    u = rng.integers(0, params["vocab_size"], size=n_sbm)
    bits0, u0 = pattern
    m = u0.size
    n = n_sbm + m
    comm = np.concatenate([c, np.full(m, K)])               # community K = the pattern
    P = np.full((K + 1, K + 1), params["q"])
    np.fill_diagonal(P, params["p"])
    P[K, :] = P[:, K] = params["q_pattern"]
    iu, ju = _triu(n)
    prob = P[comm[iu], comm[ju]]
    adj = rng.random(iu.size) < prob
    inside = iu >= n_sbm                                     # pattern-pattern pairs: the pattern's own edges
    adj[inside] = bits0                                      # triu order of the pattern block = its own triu order
    perm = rng.permutation(n)                                # new node a = old node perm[a] (their ``schuffle``)
    tags = np.concatenate([u, u0])[perm]
    y = (comm[perm] == K).astype(np.int64)
    return n, _relabel_bits(n, adj, perm), tags, y


def _cluster_graph(rng, params):
    """One CLUSTER graph: (n, upper-triangle bits, tags (n,) in 0..K, labels (n,) in 0..K-1)."""
    K = params["num_communities"]
    sizes = _community_sizes(rng, params)
    n = int(sizes.sum())
    c = np.repeat(np.arange(K), sizes)
    iu, ju = _triu(n)
    adj = rng.random(iu.size) < np.where(c[iu] == c[ju], params["p"], params["q"])
    perm = rng.permutation(n)
    tags_old = np.zeros(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    tags_old[starts + (rng.random(K) * sizes).astype(np.int64)] = np.arange(1, K + 1)   # one labelled node each
    return n, _relabel_bits(n, adj, perm), tags_old[perm], c[perm].astype(np.int64)


def _relabel_bits(n, adj, perm):
    """The upper-triangle bits of the graph with node perm[a] renamed a."""
    pos = np.empty(n, dtype=np.int64)
    pos[perm] = np.arange(n)
    iu, ju = _triu(n)
    a, b = pos[iu[adj]], pos[ju[adj]]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    out = np.zeros(iu.size, dtype=bool)
    out[lo * (2 * n - lo - 1) // 2 + (hi - lo - 1)] = True   # index of pair (lo, hi) in triu order
    return out


def _generate(name, params, sizes, seed):
    """{split: (num_nodes (B,), packed bits, tags (N,), y (N,))}: the raw dataset."""
    did = _DATASET_ID[name]
    patterns = {}
    out = {}
    for s, (split, count) in enumerate(zip(SPLITS, sizes)):
        ns, bits, tags, ys = [], [], [], []
        for i in range(count):
            rng = np.random.default_rng([seed, did, s, i])
            if name == "pattern":
                j = i % params["num_patterns"]
                if j not in patterns:
                    patterns[j] = _pattern(seed, j, params)
                n, adj, t, y = _pattern_graph(rng, params, patterns[j])
            else:
                n, adj, t, y = _cluster_graph(rng, params)
            ns.append(n)
            bits.append(adj)
            tags.append(t)
            ys.append(y)
        out[split] = (np.array(ns, dtype=np.int64), np.packbits(np.concatenate(bits)) if bits else
                      np.zeros(0, np.uint8), np.concatenate(tags).astype(np.int8), np.concatenate(ys).astype(np.int8))
    return out


# ================================================================================== containers
@dataclass(eq=False)
class SBMGraph:
    """One graph of PATTERN / CLUSTER: ``graph`` (a ``Graph``, each undirected edge both ways, no self-loops),
    ``tags`` (n,) int64 node tags, ``y`` (n,) int64 node labels, ``num_tags`` (the width of ``x``).

    ``x`` is the one-hot tags, (n, num_tags) float32, made on each access (not stored)."""

    graph: object
    tags: np.ndarray
    y: np.ndarray
    num_tags: int

    @property
    def num_nodes(self) -> int:
        return int(self.tags.size)

    @property
    def x(self) -> np.ndarray:
        return _one_hot(self.tags, self.num_tags, np.float32)


def _one_hot(tags, width, dtype):
    x = np.zeros((tags.size, width), dtype=dtype)
    x[np.arange(tags.size), tags] = 1
    return x


class SBMBatch(NamedTuple):
    """A mini-batch of SBM graphs: ``graph`` (``GraphBatch``), ``x`` (N, F), ``y`` (N,) int64,
    ``lap_pe`` (N, k) or None, ``rw_pe`` (N, walk_length) or None -- rows in member order."""

    graph: object
    x: np.ndarray
    y: np.ndarray
    lap_pe: np.ndarray | None
    rw_pe: np.ndarray | None


def make_batch(members, lap_pe=None, rw_pe=None, rng=None, dtype=np.float32, trivial="components"):
    """One ``SBMBatch`` of ``members`` (a list of ``SBMGraph``), in order.

    lap_pe: k, to add the Laplacian PE (``graph.positional.laplacian_pe``; per member graph, cached on
    it, so an epoch after the first costs a concatenation); rw_pe: walk length, to add the RWPE.
    rng: a ``numpy.random.Generator`` (or int seed): flip the Laplacian PE's signs at random, fresh
    signs per graph (training; None = no flip, for evaluation). dtype: of x and the PEs. trivial: see
    ``laplacian_eigen``. Raises ValueError for an empty list, TypeError for a member that is not an ``SBMGraph``.
    """
    from gnn_scratch.graph import GraphBatch                      # loading data never needs the graph package
    from gnn_scratch.graph.positional import laplacian_pe, random_sign_flip, random_walk_pe

    members = list(members)
    if not members:
        raise ValueError("make_batch needs at least one graph, got an empty list")
    for k, m in enumerate(members):
        if not isinstance(m, SBMGraph):
            raise TypeError(f"members[{k}] must be an SBMGraph, got {type(m).__name__}")
    widths = {m.num_tags for m in members}
    if len(widths) != 1:
        raise ValueError(f"members must come from one dataset (one feature width), got widths {sorted(widths)}")
    g = GraphBatch.from_graphs([m.graph for m in members])
    x = _one_hot(np.concatenate([m.tags for m in members]), widths.pop(), dtype)
    y = np.concatenate([m.y for m in members])
    lap = rw = None
    if lap_pe is not None:
        lap = np.concatenate([laplacian_pe(m.graph, lap_pe, trivial=trivial, dtype=dtype) for m in members])
        if rng is not None:
            lap = random_sign_flip(lap, rng, g.graph_ptr)
    if rw_pe is not None:
        rw = np.concatenate([random_walk_pe(m.graph, rw_pe, dtype=dtype) for m in members])
    return SBMBatch(g, x, y, lap, rw)


@dataclass(eq=False)
class SBMDataset:
    """PATTERN or CLUSTER: ``train`` / ``val`` / ``test`` lists of ``SBMGraph``, and how they were made.

    num_classes: 2 (PATTERN) / 6 (CLUSTER); num_features: 3 / 7 (one-hot tags); params: every generator
    parameter; sizes: (train, val, test) graph counts; seed; key: the disk-cache key;
    meta: {"generated_s" or "loaded_s": seconds, "path": the cache file or None}.
    """

    name: str
    train: list
    val: list
    test: list
    num_classes: int
    num_features: int
    params: dict
    sizes: tuple
    seed: int
    key: str
    meta: dict = field(default_factory=dict, repr=False)

    def split(self, name):
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    def batch(self, split, ids=None, lap_pe=None, rw_pe=None, rng=None, dtype=np.float32):
        """``make_batch`` of the graphs ``ids`` (all by default) of ``split``."""
        graphs = self.split(split)
        ids = np.arange(len(graphs)) if ids is None else np.asarray(ids)
        return make_batch([graphs[int(i)] for i in ids], lap_pe=lap_pe, rw_pe=rw_pe, rng=rng, dtype=dtype)

    def __repr__(self):
        n = sum(m.num_nodes for m in self.train)
        return (f"SBMDataset({self.name!r}, train/val/test={len(self.train)}/{len(self.val)}/{len(self.test)} graphs, "
                f"{n / max(len(self.train), 1):.1f} nodes per training graph, num_features={self.num_features}, "
                f"num_classes={self.num_classes}, seed={self.seed})")


# ================================================================================== cache
def cache_key(name, params, sizes, seed):
    """The hex key that names a generated dataset on disk: sha256 of everything that determines it.

    (generator version, name, the full parameter dict, split sizes, seed) as canonical JSON; the first
    20 hex digits. Any change -- a parameter, a size, the seed, ``GENERATOR_VERSION`` -- changes it.
    """
    blob = _key_blob(name, params, sizes, seed)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _key_blob(name, params, sizes, seed):
    return json.dumps(dict(generator="gnn_scratch.data.sbm", version=GENERATOR_VERSION, name=name,
                           params=params, sizes=list(sizes), seed=int(seed)), sort_keys=True)


def _save(path, raw, blob):
    arrays = {"key_blob": np.array(blob)}
    for split, (ns, bits, tags, ys) in raw.items():
        arrays.update({f"{split}_num_nodes": ns, f"{split}_bits": bits, f"{split}_tags": tags, f"{split}_y": ys})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)              # atomic: a reader never sees half a file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load(path, blob):
    """The raw dataset stored at ``path``, or None if absent, unreadable, or made from other parameters."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key_blob"]) != blob:
                return None
            return {s: (f[f"{s}_num_nodes"], f[f"{s}_bits"], f[f"{s}_tags"], f[f"{s}_y"]) for s in SPLITS}
    except (OSError, KeyError, ValueError, EOFError):
        return None


def _members(raw_split, num_tags):
    from gnn_scratch.graph import Graph                         # loading data never needs the kernels

    ns, packed, tags, ys = raw_split
    total_bits = int(sum(n * (n - 1) // 2 for n in ns))
    bits = np.unpackbits(packed, count=total_bits).astype(bool) if total_bits else np.zeros(0, bool)
    out, b0, v0 = [], 0, 0
    for n in ns.tolist():
        iu, ju = _triu(n)
        adj = bits[b0:b0 + iu.size]
        src, dst = iu[adj], ju[adj]
        g = Graph.from_edge_index(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]), num_nodes=n)
        out.append(SBMGraph(g, tags[v0:v0 + n].astype(np.int64), ys[v0:v0 + n].astype(np.int64), num_tags))
        b0 += iu.size
        v0 += n
    return out


def load_sbm(name, size="full", seed=0, root=None, cache=True, **params):
    """PATTERN or CLUSTER (module docstring), generated once and cached on disk: an ``SBMDataset``.

    name: "pattern" | "cluster". size: "full" (10000/2000/2000 resp. 10000/1000/1000 graphs),
    "small" (200/40/40 resp. 200/20/20) or an int number of training graphs. seed: int >= 0.
    root: cache folder (default ``cache_root() / "sbm"``). cache: False generates without reading or
    writing a file. params: generator parameters overriding the defaults (``PATTERN_PARAMS`` /
    ``CLUSTER_PARAMS``); they are part of the cache key.
    Cost (the project's shared 2-core machine at load ~8): "small" 0.2-0.3 s; "full" PATTERN 7 s to
    draw + 9 s to build the 14,000 ``Graph`` s (8.8 s from the cache file, 15 MB), CLUSTER 4 + 6 s
    (4.4 s from the cache, 14 MB). Positional encodings are computed later, per graph, on demand:
    ~5 ms (Laplacian, k = 8) and ~3 ms (RWPE, 16 steps) per graph.
    Raises ValueError for an unknown name, size, parameter or a negative seed.
    """
    name = _check_name(name)
    params = sbm_params(name, **params)
    sizes = split_sizes(name, size)
    seed = _int("seed", seed, 0)
    key = cache_key(name, params, sizes, seed)
    blob = _key_blob(name, params, sizes, seed)
    path = (Path(root).expanduser() if root is not None else paths.cache_root() / "sbm") / f"{name}-{key}.npz"
    t0 = time.perf_counter()
    raw = _load(path, blob) if cache else None
    meta = {"path": str(path) if cache else None}
    if raw is None:
        raw = _generate(name, params, sizes, seed)
        meta["generated_s"] = time.perf_counter() - t0
        if cache:
            _save(path, raw, blob)
    else:
        meta["loaded_s"] = time.perf_counter() - t0
    num_tags = params["vocab_size"] if name == "pattern" else params["num_communities"] + 1
    splits = {s: _members(raw[s], num_tags) for s in SPLITS}
    meta["total_s"] = time.perf_counter() - t0
    return SBMDataset(name, splits["train"], splits["val"], splits["test"], NUM_CLASSES[name] if name == "pattern"
                      else params["num_communities"], num_tags, params, sizes, seed, key, meta)


# ================================================================================== metric
def weighted_accuracy(pred, y, num_classes=None):
    """benchmarking-gnns' ``accuracy_SBM`` (train/metrics.py), as a fraction in [0, 1] (theirs is x 100).

    pred: (N,) predicted classes, or (N, C) scores (arg-max per row, first index on ties -- theirs takes
    the arg-max of the softmax). y: (N,) int labels. Their definition, transcribed exactly:

        labels = the sorted distinct values of y and pred together   (sklearn's confusion_matrix rows)
        L      = len(labels);  CM = confusion_matrix(y, pred) over ``labels``
        acc    = (1 / L) * sum_{r = 0}^{L-1} ( CM[r, r] / #{y == r}  if #{y == r} > 0  else 0 )

    When the labels in play are 0 .. L-1 (every class occurs in y or pred) this is the mean over
    classes of the per-class accuracy (recall) -- balanced accuracy -- with a class absent from y
    scoring 0. Otherwise it is theirs, quirks kept: a class that occurs in neither is not counted in
    L, and CM's rows are indexed by position, so with labels {0, 2} row 1 is label 2's but is divided
    by #{y == 1}. Their epoch figure is the mean of this over mini-batches (not one value over all
    nodes); that choice is the caller's.
    num_classes: if given, every label and prediction must lie in [0, num_classes) (ValueError otherwise).
    Raises ValueError for mismatched lengths, an empty y, or a negative or non-integer label.
    """
    pred = np.asarray(pred)
    y = np.asarray(y)
    if pred.ndim == 2:
        pred = np.argmax(pred, axis=1)
    if y.ndim != 1 or pred.shape != y.shape:
        raise ValueError(f"pred must have shape ({y.size},) or ({y.size}, C) to match y {y.shape}, got {pred.shape}")
    if y.size == 0:
        raise ValueError("weighted_accuracy needs at least one node, got an empty y")
    for nm, a in (("y", y), ("pred", pred)):
        if a.dtype.kind not in "iu":
            raise ValueError(f"{nm} must hold integer classes, got dtype {a.dtype}")
        if a.min() < 0 or (num_classes is not None and a.max() >= num_classes):
            hi = "inf" if num_classes is None else num_classes
            raise ValueError(f"{nm} must lie in [0, {hi}), got range [{a.min()}, {a.max()}]")
    labels = np.unique(np.concatenate([y, pred]))
    L = labels.size
    pos_y, pos_p = np.searchsorted(labels, y), np.searchsorted(labels, pred)
    cm_diag = np.bincount(pos_y[pos_y == pos_p], minlength=L)          # CM[r, r] over the sorted labels
    count = np.bincount(y, minlength=L)[:L]                             # #{y == r}, r = 0 .. L-1 (values, not positions)
    per = np.divide(cm_diag, count, out=np.zeros(L), where=count > 0)
    return float(per.sum() / L)
