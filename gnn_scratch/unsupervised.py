"""GraphSAGE's unsupervised objective and a logistic-regression probe (derivations/sage.md, section 7).

Positive pairs (u, v): v is visited by a short random walk from u (nearby nodes should embed
close); negatives n are drawn from P_n(n) proportional to deg(n)^0.75 (word2vec's smoothed unigram
distribution: frequent nodes are negatives more often, but less than in proportion). The loss on
embeddings z (Hamilton et al., 2017, eq. 1), averaged over the P positive pairs:

    L = (1/P) sum_p [ -log sigma(z_u . z_v) - sum_{q=1..Q} log sigma(-z_u . z_{n_pq}) ]

Embeddings are evaluated by a multinomial logistic-regression probe trained on the labelled
training nodes (``LogisticRegressionProbe``), with its own hand-written gradient and scipy's
L-BFGS as the solver.
"""
from __future__ import annotations

import numpy as np
import scipy.optimize
from numba import njit

from .graph import Graph
from .sampling import _next_u64, _seed_state, sample_blocks


# --------------------------------------------------------------------------- random walks
@njit(nogil=True, cache=True)
def random_walks_kernel(indptr, indices, starts, length, state, walks):
    """Uniform random walks along in-edges: walks[w, t+1] = a uniform in-neighbour of walks[w, t].

    walks[w, 0] = starts[w]; indptr (N + 1,) int64, indices (E,) int32, starts (W,) int64, length int, state (1,) uint64,
    walks (W, length + 1) int64 preallocated, fully overwritten. A walk that reaches a node with no
    in-edge stops there: the rest of its row is -1. O(W * length).
    """
    for w in range(starts.size):
        cur = starts[w]
        walks[w, 0] = cur
        for t in range(1, length + 1):
            if cur < 0:
                walks[w, t] = -1
                continue
            d = indptr[cur + 1] - indptr[cur]
            if d == 0:
                cur = -1
            else:
                cur = np.int64(indices[indptr[cur] + np.int64(_next_u64(state) % np.uint64(d))])
            walks[w, t] = cur


def random_walks(graph, starts, length, seed=0):
    """Random walks of ``length`` steps from each of ``starts``: (W, length + 1) int64, -1 after a dead end."""
    if not isinstance(graph, Graph) or graph.num_dst != graph.num_src:
        raise ValueError(f"graph must be a square gnn_scratch Graph, got {graph!r}")
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 1 or (starts.size and (starts.min() < 0 or starts.max() >= graph.num_nodes)):
        raise ValueError(f"starts must be a 1-D array of node ids in [0, {graph.num_nodes})")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    walks = np.empty((starts.size, int(length) + 1), dtype=np.int64)
    random_walks_kernel(graph.indptr, graph.indices, starts, int(length), _seed_state(seed), walks)
    return walks


def positive_pairs(walks):
    """(u, v) pairs from walks: u = the walk's start, v = every later node on it other than u. Two (P,) arrays."""
    u = np.repeat(walks[:, :1], walks.shape[1] - 1, axis=1).ravel()
    v = walks[:, 1:].ravel()
    keep = (v >= 0) & (v != u)
    return u[keep], v[keep]


def negative_distribution(graph, power=0.75):
    """P_n(n) proportional to in-degree(n)^power: (N,) float64 summing to 1 (uniform if there is no edge)."""
    w = graph.in_degree().astype(np.float64) ** power
    return w / w.sum() if w.sum() > 0 else np.full(graph.num_nodes, 1.0 / graph.num_nodes)


def sample_negatives(probs, shape, rng):
    """Node ids drawn i.i.d. from ``probs`` (N,), by inverse CDF: an int64 array of ``shape``."""
    cdf = np.cumsum(probs)
    return np.minimum(np.searchsorted(cdf, rng.random(shape) * cdf[-1], side="right"), probs.size - 1)


# --------------------------------------------------------------------------- the loss
def _log_sigmoid(s):
    """log sigma(s) = -log(1 + e^-s), without overflow."""
    return -np.logaddexp(0.0, -s)


def _sigmoid(s):
    return 0.5 * (np.tanh(0.5 * s) + 1.0)


class UnsupervisedLoss:
    """L = (1/P) sum_p [-log sigma(z_u . z_v) - sum_q log sigma(-z_u . z_n)] over pairs (u_p, v_p) and negatives n_pq.

    Z: (N, D) embeddings; u, v: (P,) row ids of Z; neg: (P, Q) row ids (a shared set of Q negatives
    is ``np.broadcast_to(n, (P, Q))``). Backward, with s_p = z_u . z_v and r_pq = z_u . z_npq:
        ds_p = (sigma(s_p) - 1) / P,   dr_pq = sigma(r_pq) / P
        dZ[u_p] += ds_p z_v + sum_q dr_pq z_npq;   dZ[v_p] += ds_p z_u;   dZ[n_pq] += dr_pq z_u
    (``unsupervised_loss`` row of derivations/sage.md; checked by gradcheck case "unsupervised loss").
    """

    def forward(self, Z, u, v, neg):
        u, v, neg = (np.asarray(a, dtype=np.int64) for a in (u, v, neg))
        if Z.ndim != 2:
            raise ValueError(f"Z must have shape (N, D), got {Z.shape}")
        if u.ndim != 1 or u.shape != v.shape or u.size == 0:
            raise ValueError(f"u and v must be non-empty 1-D arrays of equal length, got {u.shape} and {v.shape}")
        if neg.ndim != 2 or neg.shape[0] != u.size:
            raise ValueError(f"neg must have shape ({u.size}, Q), got {neg.shape}")
        for name, a in (("u", u), ("v", v), ("neg", neg)):
            if a.size and (a.min() < 0 or a.max() >= Z.shape[0]):
                raise ValueError(f"{name} holds row ids outside [0, {Z.shape[0]})")
        zu, zv, zn = Z[u], Z[v], Z[neg]                       # (P, D), (P, D), (P, Q, D)
        s = np.einsum("pd,pd->p", zu, zv)
        r = np.einsum("pd,pqd->pq", zu, zn)
        P = u.size
        self._cache = (Z.shape, Z.dtype, u, v, neg, zu, zv, zn, s, r)
        return float(-(_log_sigmoid(s).sum() + _log_sigmoid(-r).sum()) / P)

    def backward(self):
        shape, dtype, u, v, neg, zu, zv, zn, s, r = self._cache
        P = u.size
        ds = (_sigmoid(s) - 1.0) / P                          # (P,)
        dr = _sigmoid(r) / P                                  # (P, Q)
        dZ = np.zeros(shape, dtype=dtype)
        np.add.at(dZ, u, ds[:, None] * zv + np.einsum("pq,pqd->pd", dr, zn))
        np.add.at(dZ, v, ds[:, None] * zu)
        np.add.at(dZ, neg.ravel(), (dr[:, :, None] * zu[:, None, :]).reshape(-1, shape[1]))
        return dZ


# --------------------------------------------------------------------------- the probe
class LogisticRegressionProbe:
    """Multinomial logistic regression on frozen embeddings, fitted by L-BFGS with the gradient below.

    Loss on Z (n, D), labels y (n,) in [0, C):
        J(W, b) = (1/n) sum_k -log softmax(Z_k W + b)[y_k] + (lam / 2) ||W||^2
    Gradient (``probe_loss`` row of derivations/sage.md; gradcheck case "logistic-regression probe"):
        dLogits = (softmax(Z W + b) - onehot(y)) / n;  dW = Z^T dLogits + lam W;  db = sum_k dLogits_k;
        dZ = dLogits W^T
    """

    def __init__(self, num_classes, l2=1e-3, max_iter=500):
        if l2 < 0:
            raise ValueError(f"l2 must be non-negative, got {l2}")
        self.num_classes, self.l2, self.max_iter = int(num_classes), float(l2), int(max_iter)
        self.W = self.b = None

    def loss_and_grads(self, W, b, Z, y):
        """(J, dW, db, dZ) at (W, b) for embeddings Z (n, D) and labels y (n,)."""
        n = Z.shape[0]
        logits = Z @ W + b
        m = logits.max(axis=1, keepdims=True)
        e = np.exp(logits - m)
        ssum = e.sum(axis=1, keepdims=True)
        logp = logits - m - np.log(ssum)
        J = -logp[np.arange(n), y].mean() + 0.5 * self.l2 * float(np.sum(W * W))
        d = e / ssum
        d[np.arange(n), y] -= 1.0
        d /= n
        return J, Z.T @ d + self.l2 * W, d.sum(axis=0), d @ W.T

    def fit(self, Z, y):
        """Fit W (D, C), b (C,) on Z (n, D), y (n,) int; returns self."""
        Z = np.asarray(Z, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if Z.ndim != 2 or y.shape != (Z.shape[0],):
            raise ValueError(f"Z must be (n, D) and y (n,), got {Z.shape} and {y.shape}")
        if y.size == 0 or y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(f"y must hold labels in [0, {self.num_classes})")
        D, C = Z.shape[1], self.num_classes

        def fun(theta):
            W, b = theta[:D * C].reshape(D, C), theta[D * C:]
            J, dW, db, _ = self.loss_and_grads(W, b, Z, y)
            return J, np.concatenate([dW.ravel(), db])
        res = scipy.optimize.minimize(fun, np.zeros(D * C + C), jac=True, method="L-BFGS-B",
                                      options=dict(maxiter=self.max_iter))
        self.W, self.b = res.x[:D * C].reshape(D, C), res.x[D * C:]
        return self

    def predict(self, Z):
        if self.W is None:
            raise RuntimeError("LogisticRegressionProbe.predict called before fit")
        return np.argmax(np.asarray(Z, dtype=np.float64) @ self.W + self.b, axis=1)

    def score(self, Z, y):
        """Accuracy of the predictions on Z against y."""
        return float(np.mean(self.predict(Z) == np.asarray(y)))


# --------------------------------------------------------------------------- training
def train_unsupervised(model, graph, x, optimizer, steps=200, batch_size=512, walk_length=5, num_negatives=20,
                       fanouts=None, seed=0, log=None):
    """Train ``model`` (embeddings, (N, D) out) on the unsupervised loss; returns the loss per step.

    Each step: ``batch_size`` start nodes, one walk of ``walk_length`` steps from each, the pairs
    (start, visited node), ``num_negatives`` negatives shared by the batch (GraphSAGE's choice).
    With ``fanouts`` the embeddings of the batch's nodes come from sampled blocks around them
    (``sampling.sample_blocks``); with None from a full-graph forward.
    """
    rng = np.random.default_rng(seed)
    probs = negative_distribution(graph)
    losses, loss_fn = [], UnsupervisedLoss()
    model.train()
    for step in range(steps):
        starts = rng.integers(0, graph.num_nodes, batch_size)
        u, v = positive_pairs(random_walks(graph, starts, walk_length, seed=(seed, step)))
        if u.size == 0:
            continue
        neg = np.broadcast_to(sample_negatives(probs, num_negatives, rng), (u.size, num_negatives))
        optimizer.zero_grad()
        if fanouts is None:
            Z = model.forward(x, graph)
            loss = loss_fn.forward(Z, u, v, neg)
        else:
            nodes, inv = np.unique(np.concatenate([u, v, neg[0]]), return_inverse=True)
            mb = sample_blocks(graph, nodes, fanouts, seed=(seed, step))
            Z = model.forward(x[mb.input_nodes], mb.blocks)
            P = u.size
            loss = loss_fn.forward(Z, inv[:P], inv[P:2 * P], np.broadcast_to(inv[2 * P:], (P, num_negatives)))
        model.backward(loss_fn.backward())
        optimizer.step()
        losses.append(loss)
        if log and (step + 1) % 20 == 0:
            log(f"step {step + 1:4d}  loss {np.mean(losses[-20:]):.4f}")
    return losses
