"""metapath2vec and metapath2vec++ (Dong, Chawla & Swami, KDD 2017), derivations/metapath2vec.md.

Both embed every node of a heterogeneous graph from metapath-guided walks (``metapath_walks.py``)
with a skip-gram over two tables, input vectors Z = W_in (N, D) (the embeddings returned) and
output vectors Z' = W_out (N, D). For a centre u and a context c of type t = type(c) in its window:

* metapath2vec (§ 3.1, the heterogeneous skip-gram): p(c | u) = exp(z_u . z'_c) / sum_{x in V} exp(z_u . z'_x),
  the softmax over **all** nodes, trained by negative sampling with negatives from every type,
  n_k ~ P(n) over V: plain SGNS (``skipgram.train_sgns``) on the metapath walks.
* metapath2vec++ (§ 3.3): the softmax is normalised **within the context's type**,

      p(c | u) = exp(z_u . z'_c) / sum_{x in V_t} exp(z_u . z'_x),        V_t = the nodes of type t,

  and its negative-sampling objective draws the K negatives of the pair from that type only,
  n_k ~ P_t(n) = P(n) [type(n) = t] / P(V_t) (heterogeneous negative sampling):

      L(u, c, n) = -log sigma(z_u . z'_c) - sum_{k: n_k != c} log sigma(-z_u . z'_{n_k}),   type(n_k) = type(c).

  The gradients have SGNS's form (derivations/metapath2vec.md):
      g_k = m_k (sigma(z_u . z'_{c_k}) - y_k),  dz_u = sum_k g_k z'_{c_k},  dz'_{c_k} = g_k z_u.
  ``TypeSoftmaxLoss`` is the exact (un-sampled) type-normalised softmax loss, with its gradient.

Noise distribution P: degree^0.75 (``noise="degree"``, the degree in the homogeneous view) over the
nodes of the metapaths' types (a node of a type no walk visits is never a negative, as it would not
be with word2vec's corpus counts), or the walks' node counts^0.75 (``noise="walks"``, the paper's
word2vec corpus counts). metapath2vec++ restricts P to each type (``TypedNoise``).

One output table for all types, as the authors' code: "one set of multinomial distributions per
type in the output layer" is the normalisation above, not separate parameters.

Trainers of metapath2vec++ (the same pairs, negatives and learning rates, as ``skipgram.py``'s):
* ``train_metapath2vecpp_reference``: NumPy, one pair at a time through ``Embedding``,
  ``HeteroSkipGramLoss`` and ``SparseSGD`` (the readable truth; small inputs only);
* ``train_metapath2vecpp(..., deterministic=True)``: Numba, one thread, walks in order: equal to the
  reference to rounding (~1e-15 in float64);
* ``train_metapath2vecpp(...)``: Numba Hogwild over the threads (nondeterministic with > 1 thread).
The streams are those of ``train_sgns`` (the same key, one window draw per centre, two draws per
negative): with a single node type metapath2vec++ is ``train_sgns`` bit for bit.
"""
from __future__ import annotations

import numbers

import numpy as np
from numba import get_num_threads, njit, prange

from ..nn.embedding import Embedding
from ..optim import SparseSGD
from .alias import AliasTable, Stream, alias_draw, next_below, row_alias_tables, seed_key, stream_start
from .metapath_walks import check_node_type, dead_starts, metapath_walks, resolve_metapath
from .skipgram import (MIN_LR_RATIO, SGNS_PURPOSE, SkipGramLoss, _check_walks, _dot, _int, _sigmoid_scalar,
                       init_tables, train_sgns)
from .walks import _progress

_KERNEL = dict(nogil=True, cache=True)


# ------------------------------------------------------------------ the per-type noise distribution
class TypedNoise:
    """P_t(n) proportional to w_n over the nodes n of type t: one alias table per type, stored flat.

    weights (N,) >= 0 (e.g. degree^0.75); node_type (N,) int codes in [0, T). Attributes:
    type_ptr (T + 1,) int64 and nodes (N,) int32: the nodes of type t are nodes[type_ptr[t]:type_ptr[t + 1]]
    (ascending ids); prob (N,) float64 / alias (N,) int32: the alias table of each type's slice
    (offsets within the slice; ``row_alias_tables``); mass (T,) float64 = sum of w over each type;
    ``probabilities`` (N,) float64 = P_{type(n)}(n) (each type with mass sums to 1).
    A type with mass 0 has no table (prob 1, alias = itself: never to be drawn from; the trainers
    refuse walks holding such a type). Raises ValueError for bad weights or node types.
    """

    def __init__(self, weights, node_type, num_types=None):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"weights must be a 1-D array of finite non-negative numbers, got shape {w.shape}")
        nt, T = check_node_type(node_type, w.size, num_types)
        self.node_type, self.num_types = nt, T
        self.nodes = np.argsort(nt, kind="stable").astype(np.int32)
        self.type_ptr = np.zeros(T + 1, dtype=np.int64)
        np.cumsum(np.bincount(nt, minlength=T), out=self.type_ptr[1:])
        ws = np.ascontiguousarray(w[self.nodes])
        self.mass = np.array([ws[a:b].sum() for a, b in zip(self.type_ptr[:-1], self.type_ptr[1:])])
        # a type without mass gets weight 1 per node only so that Vose's construction is defined; never drawn
        safe = ws.copy()
        for t in np.flatnonzero(self.mass == 0):
            safe[self.type_ptr[t]:self.type_ptr[t + 1]] = 1.0
        self.prob, self.alias = row_alias_tables(self.type_ptr, safe)
        self.probabilities = np.zeros(w.size)
        self.probabilities[self.nodes] = ws / np.where(self.mass > 0, self.mass, 1.0)[nt[self.nodes]]

    def draw(self, stream, t):
        """One negative of type t from a ``alias.Stream`` (the Python reference of the kernel's draw)."""
        lo, n = int(self.type_ptr[t]), int(self.type_ptr[t + 1] - self.type_ptr[t])
        k = stream.below(n)
        k = k if stream.uniform() < self.prob[lo + k] else int(self.alias[lo + k])
        return int(self.nodes[lo + k])

    def sample(self, t, size, seed=0):
        """``size`` i.i.d. draws of type t, (size,) int64 (a pure function of the arguments)."""
        s = Stream(seed_key(seed, 99), int(t))
        return np.array([self.draw(s, t) for _ in range(int(size))], dtype=np.int64)


def noise_weights(graph, node_type, walks=None, types=None, power=0.75, source="degree"):
    """(N,) float64 noise weights: count^power, count = the degree in the homogeneous view ("degree",
    the row lengths / weight sums of the CSR) or the occurrences in ``walks`` ("walks"); nodes whose type
    is not in ``types`` (when given) get 0."""
    N = node_type.shape[0]
    if source == "degree":
        w = np.ones(graph.num_edges) if graph.edge_weight is None else np.asarray(graph.edge_weight, np.float64)
        counts = np.bincount(graph.dst_of_edge(), weights=w, minlength=N)
    elif source == "walks":
        if walks is None:
            raise ValueError("noise source 'walks' needs the walks")
        counts = np.bincount(walks[walks >= 0], minlength=N).astype(np.float64)
    else:
        raise ValueError(f"noise must be 'degree' or 'walks', got {source!r}")
    counts = counts ** power
    if types is not None:
        counts[~np.isin(node_type, np.asarray(list(types)))] = 0.0
    return counts


# ------------------------------------------------------------------ losses
class HeteroSkipGramLoss(SkipGramLoss):
    """metapath2vec++'s negative-sampling loss: ``SkipGramLoss`` whose negatives share their context's type.

    forward(z_u (B, D), z_ctx (B, K + 1, D), mask (B, K + 1) bool or None, target_type (B, K + 1) int)
    -> L (a sum over pairs); target_type[b, k] = the type of target k of pair b (k = 0: the
    context). ``backward()`` -> (dz_u (B, D), dz_ctx (B, K + 1, D)), SGNS's formulas (the paper's
    gradients of its heterogeneous objective). Raises ValueError when a negative's type differs from
    its context's (that would be metapath2vec's homogeneous sampling), or for mismatched shapes.
    """

    def forward(self, z_u, z_ctx, mask=None, target_type=None):
        if target_type is None:
            raise ValueError("target_type (B, K + 1) is required: metapath2vec++ negatives must share the "
                             "context's type")
        tt = np.asarray(target_type)
        if tt.shape != z_ctx.shape[:2]:
            raise ValueError(f"target_type must have shape {z_ctx.shape[:2]}, got {tt.shape}")
        bad = tt[:, 1:] != tt[:, :1]
        if bad.any():
            b, k = map(int, np.argwhere(bad)[0])
            raise ValueError(f"negative {k + 1} of pair {b} has type {tt[b, k + 1]}, its context type {tt[b, 0]}: "
                             "metapath2vec++ draws negatives from the context's type")
        return super().forward(z_u, z_ctx, mask)


class TypeSoftmaxLoss:
    """The exact skip-gram loss of metapath2vec++ (type-normalised softmax) or metapath2vec (over all nodes).

    L = sum_b -log p(c_b | u_b),  p(c | u) = exp(z_u . z'_c) / sum_{x in S(c)} exp(z_u . z'_x),
    S(c) = V_{type(c)} (typed=True, metapath2vec++) or V (typed=False, metapath2vec).
    forward(z_u (B, D), W_out (N, D), contexts (B,) int, node_type (N,) int) -> L; the log-sum-exp
    is max-shifted. backward() -> (dz_u (B, D), dW_out (N, D)) with, per pair,
        q_x = p(x | u) - [x = c] for x in S(c), 0 elsewhere;  dz_u = sum_x q_x z'_x;  dW_out[x] += q_x z_u.
    O(B N D): for checks and small graphs (training uses negative sampling). Raises ValueError for
    mismatched shapes or a context id out of range.
    """

    def __init__(self, typed=True):
        self.typed = bool(typed)

    def forward(self, z_u, W_out, contexts, node_type):
        contexts = np.asarray(contexts, dtype=np.int64)
        node_type = np.asarray(node_type)
        N, D = W_out.shape
        if z_u.ndim != 2 or z_u.shape[1] != D or contexts.shape != (z_u.shape[0],) or node_type.shape != (N,):
            raise ValueError(f"z_u must be (B, D), W_out (N, D), contexts (B,), node_type (N,); got {z_u.shape}, "
                             f"{W_out.shape}, {contexts.shape}, {node_type.shape}")
        if contexts.size and (contexts.min() < 0 or contexts.max() >= N):
            raise ValueError(f"contexts must be node ids in [0, {N})")
        s = z_u @ W_out.T                                            # (B, N) scores
        member = (node_type[None, :] == node_type[contexts][:, None]) if self.typed else np.ones(s.shape, bool)
        shifted = np.where(member, s, -np.inf)
        m = shifted.max(axis=1, keepdims=True)                       # shift: no gradient flows through it
        e = np.exp(shifted - m)                                      # 0 outside S(c)
        Z = e.sum(axis=1, keepdims=True)
        p = e / Z
        rows = np.arange(contexts.size)
        self._cache = (z_u, W_out, contexts, p)
        return float(np.sum(np.log(Z[:, 0]) + m[:, 0] - s[rows, contexts]))

    def backward(self):
        z_u, W_out, contexts, p = self._cache
        q = p.copy()
        q[np.arange(contexts.size), contexts] -= 1.0                # dL/ds_x = p_x - [x = c]; 0 outside S(c)
        return q @ W_out, q.T @ z_u


# ------------------------------------------------------------------ arguments
def _prepare(walks, node_type, dim, window, negatives, lr, epochs, noise):
    nt = np.asarray(node_type)
    N = nt.shape[0] if nt.ndim == 1 else -1
    _int("dim", dim, 1)
    window = _int("window", window, 1)
    negatives = _int("negatives", negatives, 0)
    epochs = _int("epochs", epochs, 1)
    if isinstance(lr, bool) or not (isinstance(lr, numbers.Real) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    nt, T = check_node_type(nt, N)
    walks, lengths = _check_walks(walks, N)
    if noise is None:
        noise = TypedNoise(noise_weights(None, nt, walks, source="walks"), nt, T)
    if not isinstance(noise, TypedNoise) or noise.nodes.size != N or not np.array_equal(noise.node_type, nt):
        raise ValueError(f"noise must be a TypedNoise over the same {N} nodes and node types")
    seen = np.unique(nt[walks[walks >= 0]])
    empty = [int(t) for t in seen if noise.mass[t] == 0]
    if empty and negatives > 0:
        raise ValueError(f"node type {empty[0]} occurs in the walks but has no noise mass: its contexts could "
                         "draw no negative")
    offsets = np.zeros(walks.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return walks, lengths, offsets, nt, window, negatives, epochs, float(lr), noise


# ------------------------------------------------------------------ the NumPy reference
def train_metapath2vecpp_reference(walks, node_type, dim=128, window=7, negatives=5, lr=0.025, epochs=1, seed=0,
                                   noise=None, dtype=np.float64, tables=None):
    """metapath2vec++ one pair at a time with ``Embedding`` + ``HeteroSkipGramLoss`` + ``SparseSGD``: (W_in, W_out).

    The readable truth the Numba trainer is tested against (pure Python loops: small inputs only).
    Arguments as ``train_metapath2vecpp``; ``tables`` = (W_in, W_out) to start from (copied).
    """
    walks, lengths, offsets, nt, window, K, epochs, lr, noise = _prepare(walks, node_type, dim, window, negatives,
                                                                         lr, epochs, noise)
    N = nt.size
    emb_in = Embedding(N, dim, init="zeros", dtype=dtype)
    emb_out = Embedding(N, dim, init="zeros", dtype=dtype)
    W_in, W_out = init_tables(N, dim, seed, dtype) if tables is None else tables
    emb_in.params["weight"][:] = W_in
    emb_out.params["weight"][:] = W_out
    loss_fn = HeteroSkipGramLoss()
    opt = SparseSGD(emb_in.parameters() + emb_out.parameters(), lr=lr, min_lr_ratio=MIN_LR_RATIO)
    key = seed_key(seed, SGNS_PURPOSE)
    W, T = walks.shape[0], int(offsets[-1])
    for epoch in range(epochs):
        for w in range(W):
            stream = Stream(key, epoch * W + w)
            walk = walks[w, :lengths[w]]
            for i, u in enumerate(walk):
                progress = (epoch * T + offsets[w] + i) / (epochs * T)
                b = window - stream.below(window)
                for j in range(max(0, i - b), min(walk.size, i + b + 1)):
                    if j == i:
                        continue
                    v = int(walk[j])
                    targets = np.array([v] + [noise.draw(stream, nt[v]) for _ in range(K)], dtype=np.int64)
                    mask = targets != v
                    opt.zero_grad()
                    loss_fn.forward(emb_in.forward(np.array([u])), emb_out.forward(targets[None, :]), mask[None, :],
                                    nt[targets][None, :])
                    dz_u, dz_ctx = loss_fn.backward()
                    emb_in.backward(dz_u)
                    emb_out.backward(dz_ctx)
                    opt.step(progress=progress)
    return emb_in.params["weight"], emb_out.params["weight"]


# ------------------------------------------------------------------ the Numba trainer
@njit(parallel=True, **_KERNEL)
def sgns_typed_kernel(walks, lengths, offsets, walk_lo, walk_hi, W_in, W_out, node_type, type_ptr, type_nodes,
                      noise_prob, noise_alias, window, negatives, lr0, min_lr_ratio, token_base, total_tokens, key,
                      stream_base, n_chunks):
    """One metapath2vec++ pass over walks[walk_lo:walk_hi], updating W_in and W_out in place (Hogwild if n_chunks > 1).

    ``skipgram.sgns_kernel`` with heterogeneous negatives: the K negatives of a pair with context v
    are drawn from the alias table of v's type t = node_type[v]: the slice
    [type_ptr[t], type_ptr[t + 1]) of noise_prob / noise_alias (offsets within the slice), mapped to
    node ids by type_nodes. walks (W, L) int32 with -1 padding, lengths (W,) int64, offsets (W + 1,)
    int64; W_in, W_out (N, D) float32/64; node_type (N,) int64; type_ptr (T + 1,) int64; type_nodes,
    noise_alias (N,) int32; noise_prob (N,) float64; other arguments as ``sgns_kernel``. With
    n_chunks = 1 the pass is sequential and deterministic. O(tokens x 2 window x (K + 1) x D).
    """
    D = W_in.shape[1]
    K = negatives
    for c in prange(n_chunks):
        neu = np.zeros(D, dtype=W_in.dtype)
        coef = np.zeros(K + 1, dtype=W_in.dtype)
        ids = np.zeros(K + 1, dtype=np.int64)
        lr_t = np.zeros(1, dtype=W_in.dtype)
        done = 0
        for w in range(walk_lo + c, walk_hi, n_chunks):
            s = stream_start(key, stream_base + w)
            n = lengths[w]
            for i in range(n):
                count = token_base + offsets[walk_lo] + n_chunks * done
                lr_t[0] = lr0 * max(1.0 - count / total_tokens, min_lr_ratio)
                lr = lr_t[0]
                done += 1
                r, s = next_below(s, window)
                b = window - r
                u = walks[w, i]
                for j in range(max(0, i - b), min(n, i + b + 1)):
                    if j == i:
                        continue
                    v = walks[w, j]
                    ids[0] = v
                    t = node_type[v]
                    lo = type_ptr[t]
                    nt = type_ptr[t + 1] - lo
                    for k in range(1, K + 1):
                        x, s = alias_draw(noise_prob, noise_alias, lo, nt, s)
                        ids[k] = type_nodes[lo + x]
                    for d in range(D):
                        neu[d] = 0.0
                    for k in range(K + 1):                 # gradients at the values before the step
                        if k > 0 and ids[k] == v:
                            coef[k] = 0.0
                            continue
                        f = _dot(W_in, u, W_out, ids[k])
                        coef[k] = _sigmoid_scalar(f) - (1.0 if k == 0 else 0.0)
                        ck = coef[k]
                        tk = ids[k]
                        for d in range(D):
                            neu[d] += ck * W_out[tk, d]
                    for k in range(K + 1):
                        if coef[k] == 0.0:
                            continue
                        ck = coef[k]
                        tk = ids[k]
                        for d in range(D):
                            W_out[tk, d] -= lr * (ck * W_in[u, d])
                    for d in range(D):
                        W_in[u, d] -= lr * neu[d]


def train_metapath2vecpp(walks, node_type, dim=128, window=7, negatives=5, lr=0.025, epochs=1, seed=0, noise=None,
                         dtype=np.float32, deterministic=False, tables=None, progress=False, num_batches=20):
    """Train metapath2vec++ (heterogeneous negative sampling) on ``walks``: (W_in (N, D), W_out (N, D)).

    walks: (W, L) int node ids with -1 padding (``metapath_walks``); node_type (N,) int codes.
    dim D; window: the maximal window (a reduced one drawn per centre, word2vec's); negatives: K per
    pair, drawn from the context's type; lr: decayed linearly per token to 1e-4 lr; epochs; seed:
    int or tuple (windows, negatives, initial W_in: the streams of ``train_sgns``); noise:
    ``TypedNoise`` (default: the walks' node counts^0.75 within each type); dtype float32/64;
    deterministic: one thread, walks in order (equal to ``train_metapath2vecpp_reference``), else
    Hogwild over the Numba threads; tables: (W_in, W_out) to start from (updated in place).
    Raises TypeError / ValueError for bad sizes, lr <= 0, walks with ids outside [0, N) or values
    after a -1, node_type of the wrong shape, a noise table over other nodes or types, a type in the
    walks with no noise mass.
    """
    walks, lengths, offsets, nt, window, K, epochs, lr, noise = _prepare(walks, node_type, dim, window, negatives,
                                                                         lr, epochs, noise)
    N = nt.size
    if tables is None:
        W_in, W_out = init_tables(N, dim, seed, dtype)
    else:
        W_in, W_out = tables
        for name, a in (("W_in", W_in), ("W_out", W_out)):
            if a.shape != (N, dim) or a.dtype not in (np.float32, np.float64) or not a.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous float (N, D) = ({N}, {dim}) array, "
                                 f"got {a.dtype} {a.shape}")
    key = seed_key(seed, SGNS_PURPOSE)
    W, T = walks.shape[0], int(offsets[-1])
    n_chunks = 1 if deterministic else get_num_threads()
    bounds = np.linspace(0, W, min(num_batches, W) + 1).astype(np.int64)
    bar = _progress(epochs * (bounds.size - 1), "metapath2vec++", progress)
    for epoch in range(epochs):
        for a, b in zip(bounds[:-1], bounds[1:]):
            sgns_typed_kernel(walks, lengths, offsets, a, b, W_in, W_out, nt, noise.type_ptr, noise.nodes,
                              noise.prob, noise.alias, window, K, lr, MIN_LR_RATIO, epoch * T, epochs * T, key,
                              epoch * W, n_chunks)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return W_in, W_out


# ------------------------------------------------------------------ the model
class MetaPath2Vec:
    """metapath2vec / metapath2vec++ (Dong et al. 2017): metapath walks, then SGNS (plus_plus: typed negatives).

    metapaths: one metapath or a list (codes, or names / letters resolved through ``type_names``,
    e.g. "APCPA" with type_names = ["author", "paper", "conference", ...]; a metapath of full names
    goes inside a list: [["author", "paper", "author"]]). The paper's settings are
    d = 128, walks per node w = 1000, walk length l = 100, window k = 7, K = 5 negatives; the default
    num_walks is 10 (w = 1000 is ~100x the cost). ``fit(graph, node_type)`` -> self, with
    ``embedding`` (N, dim) float32 (the input vectors of every node, of every type), ``dead_starts``
    {metapath tuple: number of start nodes with no neighbour of the next type} and ``walks`` (with
    keep_walks). noise "degree" (degree^0.75 over the metapaths' types) or "walks" (walk counts^0.75);
    plus_plus restricts it to the context's type. deterministic: one thread (bit-identical for a
    seed); else Hogwild. Raises as ``metapath_walks`` and the trainers do.
    """

    def __init__(self, metapaths, dim=128, walk_length=100, num_walks=10, window=7, negatives=5, epochs=1,
                 lr=0.025, plus_plus=False, seed=0, noise="degree", deterministic=False, direction="out",
                 type_names=None, num_types=None, keep_walks=False, progress=False):
        if noise not in ("degree", "walks"):
            raise ValueError(f"noise must be 'degree' or 'walks', got {noise!r}")
        seq = (list, tuple, np.ndarray, str)
        if isinstance(metapaths, str) or not any(isinstance(m, seq) for m in metapaths):
            mps = [metapaths]                        # one metapath: letters, or a flat sequence of codes / names
        else:
            mps = list(metapaths)
        if type_names is not None:
            mps = [resolve_metapath(m, type_names) for m in mps]
        self.metapaths = [tuple(int(x) if isinstance(x, (int, np.integer)) else x for x in m) for m in mps]
        self.dim, self.walk_length, self.num_walks, self.window = dim, walk_length, num_walks, window
        self.negatives, self.epochs, self.lr, self.plus_plus, self.seed = negatives, epochs, lr, plus_plus, seed
        self.noise, self.deterministic, self.direction, self.num_types = noise, deterministic, direction, num_types
        self.keep_walks, self.progress = keep_walks, progress
        self.embedding = self.walks = self.dead_starts = None

    def fit(self, graph, node_type):
        walks = metapath_walks(graph, node_type, self.metapaths, self.walk_length, self.num_walks, seed=self.seed,
                               num_types=self.num_types, direction=self.direction)
        self.dead_starts = {m: dead_starts(graph, node_type, m, self.num_types, self.direction)
                            for m in self.metapaths}
        nt, T = check_node_type(node_type, graph.num_nodes, self.num_types)
        types = {t for m in self.metapaths for t in m}
        w = noise_weights(graph, nt, walks, types, source=self.noise)
        common = dict(seed=self.seed, dtype=np.float32, deterministic=self.deterministic, progress=self.progress)
        if self.plus_plus:
            W_in, _ = train_metapath2vecpp(walks, nt, self.dim, self.window, self.negatives, self.lr, self.epochs,
                                           noise=TypedNoise(w, nt, T), **common)
        else:
            W_in, _ = train_sgns(walks, graph.num_nodes, self.dim, self.window, self.negatives, self.lr, self.epochs,
                                 noise=AliasTable(w, name="noise weights"), **common)
        self.embedding = W_in
        self.walks = walks if self.keep_walks else None
        return self


def metapath2vec(graph, node_type, metapaths, plus_plus=False, **kwargs):
    """metapath2vec (plus_plus=False) or metapath2vec++ embeddings of every node: (N, dim) float32.

    Arguments and errors as ``MetaPath2Vec``.
    """
    return MetaPath2Vec(metapaths, plus_plus=plus_plus, **kwargs).fit(graph, node_type).embedding
