"""SDNE: Structural Deep Network Embedding (Wang, Cui & Zhu, KDD 2016).

A deep autoencoder over the adjacency rows. Node i's input is its row x_i = s_i of the adjacency
S (N, N); the encoder maps it to the embedding y_i (the K-th layer), the decoder mirrors it back
to x̂_i. Every layer is a ``Linear`` followed by a sigmoid, as in the paper and its code:

    y_i^(1) = σ(W^(1) x_i + b^(1)),   y_i^(k) = σ(W^(k) y_i^(k-1) + b^(k)),  y_i = y_i^(K);   x̂_i likewise

The loss of a mini-batch B of nodes (the paper's L_2nd + α L_1st + ν L_reg, restricted to B):

    L = Σ_{i∈B} ||(x̂_i - x_i) ⊙ b_i||²                     second-order proximity (reconstruction)
      + α Σ_{i,j∈B} s_ij ||y_i - y_j||²                      first-order proximity (Laplacian eigenmaps)
      + (ν/2) Σ_k (||W^(k)||²_F + ||Ŵ^(k)||²_F)             L2 on every weight matrix (not the biases)

with b_ij = β if s_ij > 0 else 1 (β > 1 makes the rare observed links cost more to miss than the
many unobserved ones). Backward (derivations/sdne.md), from the loss down:

    dX̂ = 2 (X̂ - X) ⊙ B ⊙ B                                 (B the rows b_i)
    dY  = decoder.backward(dX̂) + 2α [(D_r + D_c) Y - (S_B + S_Bᵀ) Y]
          (S_B = S[B][:, B], D_r / D_c = diagonal of its row / column sums; = 4α L Y for symmetric S_B)
    encoder.backward(dY);   dW += ν W for every weight matrix

The layers are ``gnn_scratch.nn.Linear`` (their own backward) and a sigmoid on ``ops.sigmoid``;
only the two extra terms are written here. Mini-batches follow the authors' code: an epoch visits
the nodes in a fresh random order, ``batch_size`` at a time, and the first-order term sees the
links inside the batch. Choices that are ours, not the paper's: Glorot initialisation (no deep-belief
-network pre-training), Adam (the authors' code uses RMSProp), the hyper-parameter defaults below.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .. import ops
from ..graph import Graph
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.sequential import Sequential
from ..optim import Adam


class Sigmoid(Module):
    """y = σ(x);  dx = g ⊙ y (1 - y)  (``ops.sigmoid`` / ``ops.sigmoid_backward``: the cache is y)."""

    def forward(self, x, graph=None):
        y = ops.sigmoid(x)
        self._cache = y
        return y

    def backward(self, grad_out):
        return ops.sigmoid_backward(grad_out, self._saved())


def _mlp(sizes, seed, part, dtype):
    layers = {}
    for k in range(len(sizes) - 1):
        layers[f"lin{k}"] = Linear(sizes[k], sizes[k + 1], seed=(seed, part, k), dtype=dtype)
        layers[f"act{k}"] = Sigmoid()
    return Sequential(**layers)


def _check_float(name, v, minimum=0.0, strict=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v) \
            or (v <= minimum if strict else v < minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}, got {v!r}")
    return float(v)


class SDNE(Module):
    """The autoencoder: ``encoder`` N -> hidden[0] -> ... -> hidden[-1] (= d), ``decoder`` back to N.

    forward(x): x (B, N) adjacency rows (dense, or scipy.sparse CSR) -> y (B, d), the embedding.
    Parameters ``encoder.lin{k}.W``, ``.b`` and ``decoder.lin{k}.W``, ``.b``; ``loss`` / ``backward_loss``
    compute the SDNE objective and every gradient (the module docstring).
    """

    def __init__(self, num_nodes, hidden=(1000, 100), alpha=1.0, beta=10.0, nu=1e-4, seed=0, dtype=np.float32):
        super().__init__()
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) or num_nodes < 1:
            raise ValueError(f"num_nodes must be a positive int, got {num_nodes!r}")
        hidden = tuple(hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive ints, got {hidden!r}")
        self.num_nodes, self.hidden = int(num_nodes), tuple(int(h) for h in hidden)
        self.alpha = _check_float("alpha", alpha)
        self.beta = _check_float("beta", beta, strict=True)
        self.nu = _check_float("nu", nu)
        sizes = (self.num_nodes,) + self.hidden
        self.encoder = _mlp(sizes, seed, 0, dtype)
        self.decoder = _mlp(sizes[::-1], seed, 1, dtype)
        self.encoder.lin0.needs_input_grad = False      # the adjacency rows are data: no (B, N) input gradient

    @property
    def dim(self):
        return self.hidden[-1]

    def forward(self, x, graph=None):
        return self.encoder.forward(x)

    def backward(self, grad_out):
        return self.encoder.backward(grad_out)

    def weights(self):
        """The weight matrices the ν term regularises: (name, param, grad) of every ``W``."""
        return [(n, p, g) for n, p, g in self.named_parameters() if n.endswith(".W")]

    # ------------------------------------------------------------------ the objective
    def _block(self, X, S_B):
        dtype = self.encoder.lin0.params["W"].dtype
        Xd = np.asarray(X.todense() if sp.issparse(X) else X, dtype=dtype)
        if Xd.ndim != 2 or Xd.shape[1] != self.num_nodes:
            raise ValueError(f"X must have shape (B, {self.num_nodes}) (adjacency rows), got {Xd.shape}")
        if not np.isfinite(Xd).all() or (Xd < 0).any():
            raise ValueError("X must hold finite non-negative adjacency weights")
        S_B = np.asarray(S_B.todense() if sp.issparse(S_B) else S_B, dtype=dtype)
        if S_B.shape != (Xd.shape[0], Xd.shape[0]):
            raise ValueError(f"S_B must have shape {(Xd.shape[0], Xd.shape[0])} (the batch's adjacency block), "
                             f"got {S_B.shape}")
        if not np.isfinite(S_B).all() or (S_B < 0).any():
            raise ValueError("S_B must hold finite non-negative adjacency weights")
        return Xd, S_B

    def loss(self, X, S_B):
        """The SDNE loss of one batch (module docstring); returns (L, L_2nd, L_1st, L_reg) as floats.

        X: (B, N) the batch's adjacency rows (dense or sparse); S_B: (B, B) the adjacency among the
        batch's nodes, S_B[a, b] = s_{i_a i_b}. Caches what ``backward_loss`` needs.
        """
        Xd, S_B = self._block(X, S_B)
        Y = self.encoder.forward(X if sp.issparse(X) else Xd)
        Xh = self.decoder.forward(Y)
        Bw = np.where(Xd > 0, self.beta, 1.0).astype(Xd.dtype)
        R = (Xh - Xd) * Bw
        l2nd = float(np.sum(R * R))
        diff2 = np.sum(Y * Y, axis=1)[:, None] + np.sum(Y * Y, axis=1)[None, :] - 2.0 * (Y @ Y.T)   # ||y_a - y_b||²
        l1st = float(np.sum(S_B * diff2))
        lreg = 0.5 * sum(float(np.sum(p * p)) for _, p, _ in self.weights())
        self._loss_cache = (Xd, S_B, Y, Xh, Bw)
        return l2nd + self.alpha * l1st + self.nu * lreg, l2nd, l1st, lreg

    def backward_loss(self):
        """Add dL/dθ of the last ``loss`` into every gradient (returns nothing: the input is data)."""
        cache = getattr(self, "_loss_cache", None)
        if cache is None:
            raise RuntimeError("SDNE.backward_loss called before loss")
        Xd, S_B, Y, Xh, Bw = cache
        dXh = 2.0 * (Xh - Xd) * Bw * Bw                                          # dX̂ = 2 (X̂ - X) ⊙ B ⊙ B
        dY = self.decoder.backward(dXh.astype(Xh.dtype))
        deg = S_B.sum(axis=1) + S_B.sum(axis=0)                                  # D_r + D_c
        dY = dY + (2.0 * self.alpha) * (deg[:, None] * Y - (S_B + S_B.T) @ Y)    # first-order term
        self.encoder.backward(dY.astype(Y.dtype))
        for _, p, g in self.weights():
            g += self.nu * p                                                     # (ν/2)||W||² -> ν W
        self._loss_cache = None

    def embedding(self, S, batch_size=1024):
        """(N, d) embeddings of every node from its adjacency row (S: (N, N) scipy.sparse or dense)."""
        N = self.num_nodes
        if S.shape != (N, N):
            raise ValueError(f"S must have shape {(N, N)}, got {S.shape}")
        out = np.empty((N, self.dim), dtype=self.encoder.lin0.params["W"].dtype)
        for s in range(0, N, batch_size):
            rows = S[s:s + batch_size]
            out[s:s + batch_size] = self.forward(rows if sp.issparse(rows) else np.asarray(rows, dtype=out.dtype))
        return out


def adjacency_rows(graph, dtype=np.float32):
    """S (N, N) csr: S[i, j] = weight of edge j -> i (``Graph.to_scipy``: row i = i's in-neighbours;
    for the undirected graphs SDNE is meant for, its neighbours)."""
    if not isinstance(graph, Graph) or graph.num_dst != graph.num_src:
        raise ValueError(f"graph must be a square gnn_scratch Graph, got {graph!r}")
    S = graph.to_scipy().astype(dtype)
    S.sum_duplicates()
    S.sort_indices()
    return S


def train_sdne(graph, hidden=(1000, 100), alpha=1.0, beta=10.0, nu=1e-4, epochs=60, batch_size=128, lr=1e-3,
               seed=0, dtype=np.float32, log=None):
    """Train SDNE on ``graph`` by mini-batches of nodes; returns (model, per-epoch mean batch loss list).

    Each epoch: a permutation of the nodes (``default_rng((seed, epoch))``), cut into batches of
    ``batch_size``; per batch X = S[batch] (sparse rows into the encoder, dense in the loss),
    S_B = S[batch][:, batch]; one Adam step (lr) on the full gradient of ``SDNE.loss``.
    Defaults: the paper's BlogCatalog layers 10312-1000-100 (``hidden``), β = 10 (the authors'
    BlogCatalog configuration); α = 1, ν = 1e-4, Adam at 1e-3, 60 epochs of batches of 128 (ours: the
    run reported in the notes, 4860 steps, 28 min on the loaded 2-core machine). The model needs
    thousands of steps before its embedding carries the graph: on BlogCatalog 8 epochs of 256 (328
    steps) left it at a near-constant code (Macro-F1 0.04, the level of random vectors); on Cora the
    authors' ratio α = 0.01 and α = 1 gave 66.6 % and 67.5 % after 100 epochs of 64.
    """
    S = adjacency_rows(graph, dtype)
    N = graph.num_nodes
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    model = SDNE(N, hidden, alpha, beta, nu, seed, dtype)
    opt = Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng((seed, epoch)).permutation(N)
        total = 0.0
        for s in range(0, N, batch_size):
            idx = order[s:s + batch_size]
            rows = S[idx]
            opt.zero_grad()
            L, *_ = model.loss(rows, rows[:, idx])
            model.backward_loss()
            opt.step()
            total += L
        history.append(total / -(-N // batch_size))
        if log:
            log(f"epoch {epoch + 1:3d}  loss {history[-1]:.2f}  ({time.perf_counter() - t0:.1f} s)")
    return model, history
