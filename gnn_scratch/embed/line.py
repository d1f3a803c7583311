"""LINE: Large-scale Information Network Embedding (Tang, Qu, Wang, Zhang, Yan & Mei, WWW 2015).

Two shallow models of a (weighted, directed) graph with edges (i, j) of weight w_ij, each trained by
asynchronous SGD on edges drawn with probability proportional to their weight (the paper's *edge
sampling*, its 'optimization via edge sampling': the weight never multiplies a gradient, so a heavy edge cannot blow up the
step size) and K negatives drawn from P_n(v) ∝ d_v^{3/4} (d_v = the weighted out-degree):

* **first-order proximity**, LINE(1st): one vector u_i per node, for undirected graphs;
  per sampled edge (i, j):  ℓ = -log σ(u_j·u_i) - Σ_{k=1..K} log σ(-u_{n_k}·u_i)
* **second-order proximity**, LINE(2nd): a vertex vector u_i and a *context* vector u'_j per node;
  per sampled edge (i, j):  ℓ = -log σ(u'_j·u_i) - Σ_{k=1..K} log σ(-u'_{n_k}·u_i)

Gradients (derivations/line.md), with x = u_i·c_j, y_k = u_i·c_{n_k} and c = u (1st) or u' (2nd):

    ∂ℓ/∂u_i = (σ(x) - 1) c_j + Σ_k σ(y_k) c_{n_k},   ∂ℓ/∂c_j += (σ(x) - 1) u_i,   ∂ℓ/∂c_{n_k} += σ(y_k) u_i

(with c = u in the first order the three land in the one matrix and add). One SGD step per sampled
edge with ρ_t = ρ_0 (1 - t/T), ρ_0 = 0.025, floored at 1e-4 ρ_0 (the reference code, line.cpp).
``line_loss_and_grads`` is that loss and gradient in NumPy (the gradient check's subject);
``_line_update`` is the SGD step the kernel takes, in line.cpp's order: the targets' vectors are
updated one after the other with the old u_i, and u_i moves once at the end by the summed error.

The paper's defaults and ours: d = 128 (LINE(1st+2nd): 64 + 64, each model's rows L2-normalised,
then concatenated, as the paper and its scripts do), K = 5, ρ_0 = 0.025, T = 10 billion samples on
its million-node graphs. On BlogCatalog (667,966 directed edges) we take T = 100 million samples
per model (``BLOGCATALOG_SAMPLES``; about 150 draws per edge): about 0.9 µs a sample (d = 64, K = 5)
on one idle core, so 1.5 min per model (3-3.5 min each on the project's loaded 2-core machine).
Not reproduced: the reference code's table-lookup sigmoid (we compute σ exactly) and the paper's
remedy for low-degree vertices (its ``reconstruct`` tool, adding second-order neighbours as edges).

Parallelism: ``num_workers`` independent sample streams run the SGD kernel lock-free over shared
embeddings (Hogwild, as line.cpp's threads): with more than one worker on more than one Numba thread
the result is *nondeterministic* (the order of racing updates). ``num_workers=1`` (the default) is
deterministic: same seed, same bits.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..graph import Graph
from .alias import alias_draw, edge_sampler, negative_table, seed_key, stream_start


ORDERS = (1, 2)
BLOGCATALOG_SAMPLES = 100_000_000
_LR_FLOOR = 1e-4


# =============================================================================== the loss, in NumPy
def _log_sigmoid(s):
    return -np.logaddexp(0.0, -s)


def _sigmoid(s):
    return 0.5 * (np.tanh(0.5 * s) + 1.0)


def _check_ids(name, a, n):
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer node ids, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"{name} holds node ids outside [0, {n})")
    return a.astype(np.int64)


def line_loss_and_grads(emb, ctx, u, v, neg):
    """LINE's negative-sampling loss summed over S sampled edges, and its gradients.

    emb: (N, d) vertex vectors u; ctx: (N, d) context vectors u' (second order) or None (first
    order: the context of a node is its own vertex vector); u, v: (S,) the sampled edges' source
    and target; neg: (S, K) negatives.
        L = Σ_s [ -log σ(u_{u_s}·c_{v_s}) - Σ_k log σ(-u_{u_s}·c_{n_sk}) ],   c = ctx or emb
    Returns (L, dE (N, d), dC (N, d) or None); for the first order dE holds every term.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"emb must have shape (N, d), got {emb.shape}")
    N, d = emb.shape
    if ctx is not None and np.shape(ctx) != (N, d):
        raise ValueError(f"ctx must have emb's shape {(N, d)}, got {np.shape(ctx)}")
    u, v, neg = (_check_ids(n, a, N) for n, a in (("u", u), ("v", v), ("neg", neg)))
    if u.ndim != 1 or v.shape != u.shape or neg.ndim != 2 or neg.shape[0] != u.size:
        raise ValueError(f"u, v must be (S,) and neg (S, K), got {u.shape}, {v.shape}, {neg.shape}")
    C = emb if ctx is None else ctx
    eu, cv, cn = emb[u], C[v], C[neg]                      # (S, d), (S, d), (S, K, d)
    x = np.einsum("sd,sd->s", eu, cv)
    y = np.einsum("sd,skd->sk", eu, cn)
    L = float(-(_log_sigmoid(x).sum() + _log_sigmoid(-y).sum()))
    gx = _sigmoid(x) - 1.0                                 # ∂L/∂x_s
    gy = _sigmoid(y)                                       # ∂L/∂y_sk
    dE = np.zeros_like(emb)
    dC = dE if ctx is None else np.zeros_like(ctx)
    np.add.at(dE, u, gx[:, None] * cv + np.einsum("sk,skd->sd", gy, cn))
    np.add.at(dC, v, gx[:, None] * eu)
    np.add.at(dC, neg.ravel(), (gy[:, :, None] * eu[:, None, :]).reshape(-1, d))
    return L, dE, (None if ctx is None else dC)


# =============================================================================== the SGD kernel
@njit(nogil=True, cache=True)
def _line_update(emb, ctx, u, targets, lr, err):
    """One SGD step on one sample: targets[0] is the positive target (label 1), targets[1:] the negatives.

    For each target t in order: x = u_u·c_t, g = (label - σ(x)) lr (= -lr ∂ℓ/∂x), err += g c_t,
    c_t += g u_u; then u_u += err. ``ctx`` is ``emb`` itself for the first order. err: (d,) float64 scratch.
    """
    d = emb.shape[1]
    for c in range(d):
        err[c] = 0.0
    for q in range(targets.size):
        t = targets[q]
        x = 0.0
        for c in range(d):
            x += np.float64(emb[u, c]) * np.float64(ctx[t, c])
        label = 1.0 if q == 0 else 0.0
        g = (label - 1.0 / (1.0 + np.exp(-x))) * lr
        for c in range(d):
            err[c] += g * ctx[t, c]
        for c in range(d):
            ctx[t, c] += g * emb[u, c]
    for c in range(d):
        emb[u, c] += err[c]


@njit(nogil=True, cache=True)
def _draw_sample(src, dst, edge_prob, edge_alias, neg_prob, neg_alias, state, targets):
    """Draw an edge by weight and ``targets.size - 1`` negatives by d^0.75 (``alias.alias_draw``, two
    64-bit draws each): writes targets, returns (the edge's source, the advanced stream state)."""
    e, state = alias_draw(edge_prob, edge_alias, 0, edge_prob.size, state)
    targets[0] = dst[e]
    for q in range(1, targets.size):
        t, state = alias_draw(neg_prob, neg_alias, 0, neg_prob.size, state)
        targets[q] = t
    return src[e], state


@njit(nogil=True, cache=True)
def _line_worker(emb, ctx, src, dst, edge_prob, edge_alias, neg_prob, neg_alias, num_negatives, lr0, count, state):
    d = emb.shape[1]
    err = np.empty(d, dtype=np.float64)
    targets = np.empty(num_negatives + 1, dtype=np.int64)
    for k in range(count):
        lr = lr0 * (1.0 - k / (count + 1.0))
        if lr < lr0 * _LR_FLOOR:
            lr = lr0 * _LR_FLOOR
        u, state = _draw_sample(src, dst, edge_prob, edge_alias, neg_prob, neg_alias, state, targets)
        _line_update(emb, ctx, u, targets, lr, err)


@njit(parallel=True, nogil=True, cache=True)
def line_sgd_kernel(emb, ctx, src, dst, edge_prob, edge_alias, neg_prob, neg_alias, num_negatives, lr0,
                    num_samples, num_workers, key):
    """LINE's asynchronous SGD: ``num_samples`` edge samples split over ``num_workers`` workers.

    emb (N, d) float, ctx (N, d) float (``emb`` itself for the first order), updated in place;
    src, dst (E,) int: edge e goes src[e] -> dst[e]; edge_prob, edge_alias (E,): the alias table of
    the edge weights; neg_prob, neg_alias (N,): of d_v^0.75; worker w reads the SplitMix64 stream
    ``stream_start(key, w)`` (``alias.py``) and takes ⌈or⌊ num_samples / num_workers ⌉ samples with
    its own linear decay of the rate from lr0. Workers write the shared rows without locks (Hogwild):
    more than one worker on more than one thread is nondeterministic. O(num_samples (K + 1) d).
    """
    W = num_workers
    for w in prange(W):
        count = num_samples // W + (1 if w < num_samples % W else 0)
        _line_worker(emb, ctx, src, dst, edge_prob, edge_alias, neg_prob, neg_alias, num_negatives, lr0, count,
                     stream_start(key, w))


@njit(nogil=True, cache=True)
def _draws_kernel(src, dst, edge_prob, edge_alias, neg_prob, neg_alias, state, sources, targets):
    for s in range(sources.size):
        u, state = _draw_sample(src, dst, edge_prob, edge_alias, neg_prob, neg_alias, state, targets[s])
        sources[s] = u


# =============================================================================== the model
def _positive_int(name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def line_edges(graph):
    """(src (E,) int64, dst (E,) int64, weight (E,) float64) of a square Graph; edge e: src[e] -> dst[e]."""
    if not isinstance(graph, Graph) or graph.num_dst != graph.num_src:
        raise ValueError(f"graph must be a square gnn_scratch Graph, got {graph!r}")
    if graph.num_edges == 0:
        raise ValueError("graph has no edge: LINE samples edges")
    w = np.ones(graph.num_edges) if graph.edge_weight is None else np.asarray(graph.edge_weight, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("graph's edge weights must be non-negative with a positive sum (edges are drawn by weight)")
    return graph.indices.astype(np.int64), graph.dst_of_edge().astype(np.int64), w


def negative_weights(graph, power=0.75):
    """d_v^power with d_v the weighted out-degree (line.cpp: the degree of an edge's source): (N,) float64."""
    src, _, w = line_edges(graph)
    return np.bincount(src, weights=w, minlength=graph.num_nodes) ** power


class LINE:
    """One LINE model (first or second order) of a graph's nodes: ``emb`` (N, dim) and, for order 2, ``ctx``.

    Initialised as line.cpp: emb uniform in [-0.5/dim, 0.5/dim), ctx zero. ``fit`` runs the SGD
    kernel; ``embedding()`` returns emb (rows L2-normalised by default, as the paper's pipeline does
    before classification). Errors: ValueError on a non-square or edgeless graph, negative weights,
    an order other than 1 or 2, non-positive sizes or rates.
    """

    def __init__(self, num_nodes, dim=128, order=2, num_negatives=5, seed=0, dtype=np.float32):
        self.num_nodes = _positive_int("num_nodes", num_nodes)
        self.dim = _positive_int("dim", dim)
        if order not in ORDERS:
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        self.order = int(order)
        self.num_negatives = _positive_int("num_negatives", num_negatives, minimum=0)
        self.seed = seed
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise ValueError(f"dtype must be a float dtype, got {dtype}")
        rng = np.random.default_rng((seed, self.order) if isinstance(seed, (int, np.integer)) else seed)
        self.emb = ((rng.random((self.num_nodes, self.dim)) - 0.5) / self.dim).astype(dtype)
        self.ctx = np.zeros_like(self.emb) if self.order == 2 else None
        self.samples_seen = 0

    def _tables(self, graph):
        """Edge ends and the two alias tables (``alias.edge_sampler``, ``alias.negative_table`` over the
        weighted out-degree, line.cpp's degree of an edge's source)."""
        src, dst, _ = line_edges(graph)
        if graph.num_nodes != self.num_nodes:
            raise ValueError(f"graph has {graph.num_nodes} nodes, the model {self.num_nodes}")
        edges = edge_sampler(graph)
        neg = negative_table(counts=negative_weights(graph, power=1.0), power=0.75)
        return src, dst, edges.prob, edges.alias, neg.prob, neg.alias

    def fit(self, graph, num_samples, lr=0.025, num_workers=1, seed=None):
        """``num_samples`` SGD steps on edges of ``graph`` drawn by weight; returns self.

        lr: ρ_0, decayed linearly to 1e-4 ρ_0 over the samples. seed: the sampling streams
        (default: the model's seed); worker w reads stream w under ``alias.seed_key(seed, order)``.
        """
        num_samples = _positive_int("num_samples", num_samples)
        num_workers = _positive_int("num_workers", num_workers)
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive finite float, got {lr!r}")
        src, dst, ep, ea, np_, na = self._tables(graph)
        key = seed_key(self.seed if seed is None else seed, purpose=self.order)
        ctx = self.emb if self.order == 1 else self.ctx
        line_sgd_kernel(self.emb, ctx, src, dst, ep, ea, np_, na, self.num_negatives, float(lr), num_samples,
                        num_workers, key)
        self.samples_seen += num_samples
        return self

    def draws(self, graph, count, seed=0):
        """The first ``count`` samples worker 0 of ``fit(..., seed=seed)`` draws: (sources (count,), targets (count, K + 1)).

        targets[:, 0] is the sampled edge's target, targets[:, 1:] the negatives: the very draws the
        training kernel makes (one shared function), exposed to test their frequencies.
        """
        count = _positive_int("count", count)
        src, dst, ep, ea, np_, na = self._tables(graph)
        sources = np.empty(count, dtype=np.int64)
        targets = np.empty((count, self.num_negatives + 1), dtype=np.int64)
        _draws_kernel(src, dst, ep, ea, np_, na, stream_start(seed_key(seed, self.order), 0), sources, targets)
        return sources, targets

    def embedding(self, normalize=True):
        """(N, dim) copy of the vertex vectors; with ``normalize`` each non-zero row scaled to unit L2 norm."""
        Z = self.emb.copy()
        if normalize:
            n = np.linalg.norm(Z, axis=1, keepdims=True)
            Z /= np.where(n > 0, n, 1)
        return Z


def line_embedding(graph, dim=128, order="1+2", num_samples=BLOGCATALOG_SAMPLES, num_negatives=5, lr=0.025,
                   num_workers=1, seed=0, dtype=np.float32):
    """LINE embeddings of ``graph``'s nodes: (N, dim).

    order: 1, 2, or "1+2" -- LINE(1st+2nd): a first-order model of dim/2 and a second-order model of
    dim/2 (dim must be even), each trained for ``num_samples`` samples and L2-normalised row by row,
    concatenated [1st | 2nd]. For 1 or 2 alone: that model's normalised vectors.
    """
    if order == "1+2":
        if _positive_int("dim", dim) % 2:
            raise ValueError(f"dim must be even for LINE(1st+2nd) (dim/2 per order), got {dim}")
        parts = [LINE(graph.num_nodes, dim // 2, o, num_negatives, seed, dtype).fit(graph, num_samples, lr, num_workers)
                 for o in ORDERS]
        return np.concatenate([p.embedding() for p in parts], axis=1)
    if order not in ORDERS:
        raise ValueError(f"order must be 1, 2 or '1+2', got {order!r}")
    return LINE(graph.num_nodes, dim, order, num_negatives, seed, dtype).fit(graph, num_samples, lr,
                                                                           num_workers).embedding()
