"""Skip-gram with negative sampling (Mikolov et al. 2013) over random walks (derivations/skipgram.md).

Two tables: input vectors Z = W_in (N, D) (word2vec's syn0, the embeddings returned) and output
vectors Z' = W_out (N, D) (syn1neg). For a centre node u, a context node v and negatives
n_1 .. n_K drawn from the noise distribution P_n (``alias.negative_table``):

    L(u, v, n) = -log sigma(z_u . z'_v) - sum_{k: n_k != v} log sigma(-z_u . z'_{n_k})

(a negative equal to the context is skipped, as word2vec.c and gensim do). With s_k = z_u . z'_{c_k}
over the targets c = (v, n_1, .., n_K), labels y = (1, 0, .., 0) and m_k = [k = 0 or n_k != v]:

    c_k = m_k (sigma(s_k) - y_k)            (dL/ds_k)
    dz_u = sum_k c_k z'_{c_k}               dz'_r = sum_{k: c_k = r} c_k z_u

and one SGD step on the pair updates W_in[u] and the rows W_out[c_k] with these gradients, all
computed at the values before the step (word2vec.c interleaves: when a negative repeats within a
pair its second update sees the first; here the step is the exact gradient's).

Pairs, as word2vec.c's skip-gram makes them from a walk (w_0 .. w_{n-1}, -1 padding excluded): for
each centre position i in order, a reduced window b ~ U{1..window} is drawn (word2vec's
``window - next_random % window``), and every position j in [i - b, i + b], j != i, inside the walk,
gives the pair (u = w_i, v = w_j) in increasing j; each pair draws its K negatives. With
``context_input=True`` the roles are word2vec.c's and gensim's: the *context* is the input,
(u = w_j, v = w_i), so a centre's output vector meets its 2b contexts' input vectors in a row. The
windows being symmetric, the same set of pairs arises either way, but the order of the updates
differs, and after one epoch the embeddings do too (BlogCatalog, node2vec p = q = 0.25: about +0.005
Macro-F1 for word2vec's roles; README, "Learning without labels"). No subsampling of frequent nodes
(gensim's ``sample``) is done.

Initial input vectors: U[-r/D, r/D) with r = ``init_range``: 0.5 is word2vec.c's (and gensim's up to
3.x), 1.0 gensim 4's (``prep_vectors``). The output vectors start at 0, so the first gradients are
proportional to the initial input vectors: in a single epoch the larger start learns measurably
faster (about +0.005 Macro-F1 on the same BlogCatalog walks). ``Node2Vec`` / ``DeepWalk`` use word2vec's
roles and r = 1 (gensim 4, the skip-gram the node2vec reference code and PecanPy call); ``train_sgns``'s
own defaults (centre input, r = 0.5) are kept for metapath2vec++, which is plain ``train_sgns`` bit for
bit with one node type.

Learning rate: the token at global position c of E passes over T tokens gets
lr_c = lr * max(1 - c / (E T), 1e-4): word2vec.c's linear decay with its floor, computed per token
from the walks' offsets rather than from a shared counter.

Randomness: centre positions of walk w in epoch e read the stream (seed, e * W + w) in order: a
window draw per centre, then two draws per negative (``alias.alias_draw``).

Three trainers, the same pairs, negatives and learning rates:
* ``train_sgns_reference``: NumPy, one pair at a time through ``nn.Embedding``, ``SkipGramLoss``
  and ``optim.SparseSGD``: the readable truth (slow; for tests).
* ``train_sgns(..., deterministic=True)``: Numba, one thread, walks in order: equal to the
  reference up to rounding (~1e-15 in float64; the dot products are vectorised).
* ``train_sgns(...)``: Numba, Hogwild (Recht et al. 2011) as word2vec: T chunks (T = the Numba
  thread count), chunk c takes walks c, c + T, ...; threads update the shared tables without locks.
  The result is NOT deterministic across runs with more than one thread (races on shared rows
  and the interleaving of updates); the windows and negatives drawn are still those of the seed.
  Progress in a chunk is estimated as T x the tokens it has done.
"""
from __future__ import annotations

import numbers

import numpy as np
from numba import get_num_threads, njit, prange

from ..nn.embedding import Embedding
from ..optim import SparseSGD
from .alias import AliasTable, Stream, alias_draw, next_below, seed_key, stream_start
from .walks import _progress, walk_lengths

_KERNEL = dict(nogil=True, cache=True)
SGNS_PURPOSE = 2          # seed_key purpose tag of the skip-gram streams
INIT_PURPOSE = 3          # of the initial input vectors
MIN_LR_RATIO = 1e-4       # word2vec.c: alpha never falls below starting_alpha * 0.0001


def _log_sigmoid(s):
    return -np.logaddexp(0.0, -s)


def _sigmoid(s):
    """sigma(s) = 1 / (1 + e^-s), written so that neither branch overflows."""
    s = np.asarray(s, dtype=np.float64)
    e = np.exp(-np.abs(s))
    return np.where(s >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class SkipGramLoss:
    """L = sum_b [ -log sigma(z_u[b] . z'[b, 0]) - sum_{k>=1} mask[b, k] log sigma(-z_u[b] . z'[b, k]) ].

    z_u: (B, D) input vectors of the centres; z_ctx: (B, K + 1, D) output vectors of the targets,
    context first, then the K negatives; mask: (B, K + 1) bool, False for a skipped negative (None:
    all True; mask[:, 0] is ignored: the context always counts). A sum over pairs (SGD takes one
    pair at a time). ``backward()`` -> (dz_u (B, D), dz_ctx (B, K + 1, D)):
        c[b, k] = mask[b, k] (sigma(s[b, k]) - y_k), y = (1, 0, .., 0)
        dz_u[b] = sum_k c[b, k] z'[b, k];   dz_ctx[b, k] = c[b, k] z_u[b]
    (``skipgram`` row of derivations/README.md; gradcheck case "skip-gram negative sampling").
    Raises ValueError for mismatched shapes.
    """

    def forward(self, z_u, z_ctx, mask=None):
        if z_u.ndim != 2 or z_ctx.ndim != 3 or z_ctx.shape[0] != z_u.shape[0] or z_ctx.shape[2] != z_u.shape[1]:
            raise ValueError(f"z_u must be (B, D) and z_ctx (B, K + 1, D), got {z_u.shape} and {z_ctx.shape}")
        if mask is None:
            mask = np.ones(z_ctx.shape[:2], dtype=bool)
        mask = np.asarray(mask, dtype=bool).copy()
        if mask.shape != z_ctx.shape[:2]:
            raise ValueError(f"mask must have shape {z_ctx.shape[:2]}, got {mask.shape}")
        mask[:, 0] = True
        s = np.einsum("bd,bkd->bk", z_u, z_ctx)
        sign = np.full(s.shape[1], -1.0)
        sign[0] = 1.0                                           # log sigma(s) for the context, (-s) for negatives
        self._cache = (z_u, z_ctx, mask, s)
        return float(-np.sum(mask * _log_sigmoid(sign * s)))

    def backward(self):
        z_u, z_ctx, mask, s = self._cache
        y = np.zeros(s.shape[1])
        y[0] = 1.0
        c = (mask * (_sigmoid(s) - y)).astype(z_u.dtype)        # dL/ds, (B, K + 1)
        dz_u = np.zeros_like(z_u)
        for k in range(s.shape[1]):                             # in target order, as the Numba kernel sums
            dz_u += c[:, k, None] * z_ctx[:, k]
        dz_ctx = c[:, :, None] * z_u[:, None, :]
        return dz_u, dz_ctx


# ------------------------------------------------------------------ arguments
def _int(name, v, minimum):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def _check_walks(walks, num_nodes):
    walks = np.asarray(walks)
    if walks.ndim != 2 or walks.shape[0] == 0 or walks.shape[1] == 0 or walks.dtype.kind not in "iu":
        raise ValueError(f"walks must be a non-empty (W, L) integer array, got {walks.dtype} {walks.shape}")
    lengths = walk_lengths(walks)
    valid = np.arange(walks.shape[1])[None, :] < lengths[:, None]
    if (walks[valid] >= num_nodes).any() or (walks[~valid] >= 0).any():
        raise ValueError(f"walks must hold node ids in [0, {num_nodes}) followed only by -1 padding")
    return np.ascontiguousarray(walks, dtype=np.int32), lengths


def _prepare(walks, num_nodes, dim, window, negatives, lr, epochs, noise):
    num_nodes = _int("num_nodes", num_nodes, 1)
    _int("dim", dim, 1)
    window = _int("window", window, 1)
    negatives = _int("negatives", negatives, 0)
    epochs = _int("epochs", epochs, 1)
    if not (isinstance(lr, numbers.Real) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    walks, lengths = _check_walks(walks, num_nodes)
    if noise is None:
        noise = AliasTable(np.bincount(walks[walks >= 0], minlength=num_nodes) ** 0.75, name="walk counts")
    if not isinstance(noise, AliasTable) or len(noise) != num_nodes:
        raise ValueError(f"noise must be an AliasTable over the {num_nodes} nodes (alias.negative_table)")
    offsets = np.zeros(walks.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return walks, lengths, offsets, window, negatives, epochs, float(lr), noise


def check_options(context_input, init_range):
    """(context_input, init_range) checked: a bool, and a finite real number > 0. Raises TypeError / ValueError."""
    if not isinstance(context_input, (bool, np.bool_)):
        raise TypeError(f"context_input must be True or False, got {context_input!r}")
    if isinstance(init_range, (bool, np.bool_)) or not isinstance(init_range, numbers.Real) \
            or not np.isfinite(init_range) or init_range <= 0:
        raise ValueError(f"init_range must be a finite number > 0, got {init_range!r}")
    return bool(context_input), float(init_range)


def init_tables(num_nodes, dim, seed=0, dtype=np.float32, init_range=0.5):
    """(W_in, W_out): W_in ~ U[-r/D, r/D) with r = ``init_range`` (seeded; 0.5: word2vec.c's start, 1.0:
    gensim 4's), W_out = 0; (N, D) each. Raises ValueError for a non-positive or non-finite r, or one so
    large that the vectors overflow ``dtype``."""
    check_options(False, init_range)
    seed_seq = [*np.atleast_1d(seed).tolist(), INIT_PURPOSE]
    W_in = Embedding(num_nodes, dim, init="uniform", seed=seed_seq, dtype=dtype).params["weight"]
    if init_range != 0.5:                       # Embedding's "uniform" is U[-0.5/D, 0.5/D): same draws, scaled
        with np.errstate(over="ignore"):
            W_in = (W_in * (2.0 * init_range)).astype(W_in.dtype)
        if not np.isfinite(W_in).all():
            raise ValueError(f"init_range {init_range!r} overflows {np.dtype(dtype).name} initial vectors")
    return W_in, np.zeros((num_nodes, dim), dtype=dtype)


# ------------------------------------------------------------------ the NumPy reference
def train_sgns_reference(walks, num_nodes, dim=128, window=10, negatives=5, lr=0.025, epochs=1, seed=0,
                         noise=None, dtype=np.float64, tables=None, context_input=False, init_range=0.5):
    """SGNS over ``walks`` one pair at a time with ``Embedding`` + ``SkipGramLoss`` + ``SparseSGD``: (W_in, W_out).

    The readable truth the Numba trainer is tested against (pure Python loops: small inputs only).
    Arguments as ``train_sgns``; ``tables`` = (W_in, W_out) to start from (copied).
    """
    context_input, init_range = check_options(context_input, init_range)
    walks, lengths, offsets, window, K, epochs, lr, noise = _prepare(walks, num_nodes, dim, window, negatives, lr,
                                                                     epochs, noise)
    emb_in = Embedding(num_nodes, dim, init="zeros", dtype=dtype)
    emb_out = Embedding(num_nodes, dim, init="zeros", dtype=dtype)
    W_in, W_out = init_tables(num_nodes, dim, seed, dtype, init_range) if tables is None else tables
    emb_in.params["weight"][:] = W_in
    emb_out.params["weight"][:] = W_out
    loss_fn = SkipGramLoss()
    opt = SparseSGD(emb_in.parameters() + emb_out.parameters(), lr=lr, min_lr_ratio=MIN_LR_RATIO)
    key = seed_key(seed, SGNS_PURPOSE)
    W, T = walks.shape[0], int(offsets[-1])
    for epoch in range(epochs):
        for w in range(W):
            stream = Stream(key, epoch * W + w)
            walk = walks[w, :lengths[w]]
            for i, u in enumerate(walk):
                progress = (epoch * T + offsets[w] + i) / (epochs * T)
                b = window - stream.below(window)                 # the reduced window, in [1, window]
                for j in range(max(0, i - b), min(walk.size, i + b + 1)):
                    if j == i:
                        continue
                    a, v = (walk[j], u) if context_input else (u, walk[j])     # (input, positive target)
                    targets = np.array([v] + [stream.alias(noise) for _ in range(K)], dtype=np.int64)
                    mask = targets != v
                    opt.zero_grad()
                    loss_fn.forward(emb_in.forward(np.array([a])), emb_out.forward(targets[None, :]), mask[None, :])
                    dz_u, dz_ctx = loss_fn.backward()
                    emb_in.backward(dz_u)
                    emb_out.backward(dz_ctx)
                    opt.step(progress=progress)
    return emb_in.params["weight"], emb_out.params["weight"]


# ------------------------------------------------------------------ the Numba trainer
@njit(fastmath={"reassoc"}, **_KERNEL)
def _dot(A, i, B, j):
    """A[i] . B[j] with the sum reassociated (vectorised): the order is fixed at compile time, not by threads."""
    acc = A[i, 0] * B[j, 0]
    for d in range(1, A.shape[1]):
        acc += A[i, d] * B[j, d]
    return acc


@njit(inline="always")
def _sigmoid_scalar(s):
    if s >= 0.0:
        return 1.0 / (1.0 + np.exp(-s))
    e = np.exp(s)
    return e / (1.0 + e)


@njit(parallel=True, **_KERNEL)
def sgns_kernel(walks, lengths, offsets, walk_lo, walk_hi, W_in, W_out, noise_prob, noise_alias, window,
                negatives, lr0, min_lr_ratio, token_base, total_tokens, key, stream_base, n_chunks,
                context_input=False):
    """One SGNS pass over walks[walk_lo:walk_hi], updating W_in and W_out in place (Hogwild when n_chunks > 1).

    walks (W, L) int32 with -1 padding, lengths (W,) int64, offsets (W + 1,) int64 token offsets in
    the epoch; W_in, W_out (N, D) float32/64; noise_prob (N,) float64, noise_alias (N,) int32: the
    noise alias table; window >= 1, negatives >= 0; lr0: the starting lr; the token at epoch
    position c has global position token_base + c of total_tokens. key uint64; walk w reads stream
    stream_base + w. Chunk c (of n_chunks, one per prange iteration) takes walks walk_lo + c,
    walk_lo + c + n_chunks, ... in order; with n_chunks = 1 the pass is sequential and deterministic.
    context_input: the context is the input row and the centre the positive target (word2vec.c, gensim).
    Work O(tokens x 2 window x (negatives + 1) x D); no allocation beyond O(D + K) per chunk.
    """
    D = W_in.shape[1]
    K = negatives
    N = W_in.shape[0]
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
                for j in range(max(0, i - b), min(n, i + b + 1)):
                    if j == i:
                        continue
                    if context_input:
                        u = walks[w, j]
                        v = walks[w, i]
                    else:
                        u = walks[w, i]
                        v = walks[w, j]
                    ids[0] = v
                    for k in range(1, K + 1):
                        x, s = alias_draw(noise_prob, noise_alias, 0, N, s)
                        ids[k] = x
                    for d in range(D):
                        neu[d] = 0.0
                    for k in range(K + 1):                 # gradients at the values before the step
                        if k > 0 and ids[k] == v:
                            coef[k] = 0.0
                            continue
                        f = _dot(W_in, u, W_out, ids[k])
                        coef[k] = _sigmoid_scalar(f) - (1.0 if k == 0 else 0.0)
                        ck = coef[k]
                        t = ids[k]
                        for d in range(D):
                            neu[d] += ck * W_out[t, d]
                    for k in range(K + 1):
                        if coef[k] == 0.0:
                            continue
                        ck = coef[k]
                        t = ids[k]
                        for d in range(D):
                            W_out[t, d] -= lr * (ck * W_in[u, d])
                    for d in range(D):
                        W_in[u, d] -= lr * neu[d]


def train_sgns(walks, num_nodes, dim=128, window=10, negatives=5, lr=0.025, epochs=1, seed=0, noise=None,
               dtype=np.float32, deterministic=False, tables=None, progress=False, num_batches=20,
               context_input=False, init_range=0.5):
    """Train SGNS on ``walks`` with the Numba kernel: (W_in (N, D), W_out (N, D)), W_in being the embeddings.

    walks: (W, L) int node ids, -1 padding after a walk's end (``random_walks``); num_nodes: N.
    dim: D; window: the maximal window (a reduced one is drawn per centre); negatives: K per pair;
    lr: starting learning rate, decayed linearly per token to 1e-4 lr; epochs: passes over the walks;
    seed: int or tuple (windows, negatives and the initial W_in); noise: ``AliasTable`` over the N
    nodes (default: the walks' node counts ^ 0.75, word2vec's unigram^0.75); dtype float32/64;
    deterministic: one thread, walks in order (equal to ``train_sgns_reference``), else Hogwild over
    the Numba threads (nondeterministic with > 1 thread); tables: (W_in, W_out) to start from (updated
    in place); progress: a tqdm bar over ``num_batches`` batches per epoch when tqdm is importable;
    context_input: word2vec.c's / gensim's roles (the context is the input row, the centre the target);
    init_range: W_in ~ U[-r/D, r/D) (0.5 word2vec.c, 1.0 gensim 4; ignored with ``tables``).
    Raises TypeError / ValueError for bad sizes, lr <= 0, a context_input that is not a bool, an init_range
    that is not a finite number > 0 (checked even with ``tables``), walks with ids outside [0, N) or values
    after a -1, a noise table of the wrong size.
    """
    context_input, init_range = check_options(context_input, init_range)
    walks, lengths, offsets, window, K, epochs, lr, noise = _prepare(walks, num_nodes, dim, window, negatives, lr,
                                                                     epochs, noise)
    if tables is None:
        W_in, W_out = init_tables(num_nodes, dim, seed, dtype, init_range)
    else:
        W_in, W_out = tables
        for name, a in (("W_in", W_in), ("W_out", W_out)):
            if a.shape != (num_nodes, dim) or a.dtype not in (np.float32, np.float64) or not a.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous float (N, D) = ({num_nodes}, {dim}) array, "
                                 f"got {a.dtype} {a.shape}")
    key = seed_key(seed, SGNS_PURPOSE)
    W, T = walks.shape[0], int(offsets[-1])
    n_chunks = 1 if deterministic else get_num_threads()
    bounds = np.linspace(0, W, min(num_batches, W) + 1).astype(np.int64)
    bar = _progress(epochs * (bounds.size - 1), "skip-gram", progress)
    for epoch in range(epochs):
        for a, b in zip(bounds[:-1], bounds[1:]):
            sgns_kernel(walks, lengths, offsets, a, b, W_in, W_out, noise.prob, noise.alias, window, K, lr,
                        MIN_LR_RATIO, epoch * T, epochs * T, key, epoch * W, n_chunks, context_input)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return W_in, W_out
