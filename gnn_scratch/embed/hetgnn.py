"""HetGNN (Zhang, Song, Huang, Swami & Chawla, "Heterogeneous Graph Neural Network", KDD 2019), backward by hand.

Input: the homogeneous view of a heterogeneous graph -- a ``Graph`` over all N nodes (undirected),
``node_type`` (N,) int64 in [0, T) -- and each type's content as a list of *pieces*: pieces[t][i]
is an (N_t, F_{t,i}) float array, row r for the r-th node of type t (in node-id order). In the
paper a piece is a pre-embedded attribute (a text embedding, an image embedding, a DeepWalk vector).

Model (derivations/hetgnn.md; the paper's equations in brackets):

    content   [eq. 2]   x_{v,i} = FC_{t,i}(piece_i(v))                        (F_{t,i} -> C), t = type(v)
                        f1(v)   = mean_i [LSTM->(x_{v,.}) || LSTM<-(x_{v,.})]   (d = 2 * d/2)   BiLSTM_t
    neighbours [eq. 4]  f2^t(v) = mean over v's k_t sampled type-t neighbours v' of the Bi-LSTM of f1(v')
                                                                                 BiLSTM'_t (one per neighbour type)
    attention [eqs. 5-7] F(v) = {f1(v)} U {f2^t(v) : v has type-t neighbours}
                        s_j = LeakyReLU(u_{type(v)} . [F_j || f1(v)]),   alpha = softmax_j(s),   E_v = sum_j alpha_j F_j
    loss      [eqs. 8-10] over triples (v, c, c'), c' a negative of c's type:
                        L = (1/B) sum_b [ -log sigma(E_c . E_v) - log sigma(-E_c' . E_v) ]

Neighbours come from ``hetgnn_sampling.rwr_neighbours`` (random walk with restart, the top-k most
visited per type), triples from ``hetgnn_sampling.context_triples`` (uniform walks, window pairs,
negatives uniform within the context's type).

Simplifications and choices, all stated (see also derivations/hetgnn.md section 6):
* FC_{t,i} is a ``Linear`` per (type, piece) without activation (the paper's "feature transformer",
  a fully connected layer; its code uses a linear map); it also lets pieces of different widths
  enter one sequence.
* The Bi-LSTM of a type is shared by all nodes of that type (the paper's code: one content encoder
  per type, one neighbour encoder per neighbour type, shared by every centre type); its hidden
  width is d / 2, so both directions concatenated give d.
* A node without type-t neighbours (isolated, or a type its walks never reach) leaves f2^t out of
  its attention softmax; the paper's sampler never produces that case (its graphs are connected).
* u is one (2d,) vector per centre type (the paper's code: ``a_neigh_att`` etc.); LeakyReLU slope
  0.01 (torch's default, the paper's code).
* The loss is the mean over the mini-batch (the paper's code), E_c of the context and negative are
  the same model outputs as E_v (the code's ``aggregate_all``).

Shapes: ``HetGNN.forward(nodes, data)``: nodes (M,) int64 node ids, data a ``HetGNNInput``;
returns E (M, d). ``backward(G (M, d))`` adds into grads and returns the piece gradients (a list
per type of (N_t, F_{t,i}) arrays) when ``needs_input_grad`` else None.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..graph import Graph
from ..nn.bilstm import BiLSTM, equal_length_sequences
from ..nn.init import as_rng
from ..nn.linear import Linear
from ..nn.module import Module
from ..optim import Adam
from ..threads import single_blas_pool
from .hetgnn_sampling import check_node_type, context_triples, rwr_neighbours


# =============================================================================== input
@dataclass
class HetGNNInput:
    """Everything HetGNN reads about the graph, validated once (``hetgnn_input``).

    node_type (N,) int64; local (N,) int64: index of each node among the nodes of its type;
    type_nodes: list of T arrays (N_t,) int64, the node ids of each type in id order;
    pieces: list of T lists of (N_t, F_{t,i}) float arrays; neighbours: list of T (N, k_t) int64
    arrays (-1 rows: no neighbour of that type).
    """
    node_type: np.ndarray
    local: np.ndarray
    type_nodes: list
    pieces: list
    neighbours: list

    @property
    def num_nodes(self):
        return self.node_type.size

    @property
    def num_types(self):
        return len(self.type_nodes)


def hetgnn_input(node_type, pieces, neighbours):
    """Validate and bundle HetGNN's input (see ``HetGNNInput``). Raises ValueError naming the argument."""
    node_type = np.asarray(node_type)
    node_type, T = check_node_type(node_type, node_type.shape[0] if node_type.ndim == 1 else -1)
    N = node_type.size
    if len(pieces) != T:
        raise ValueError(f"pieces must hold one list of feature pieces per node type ({T}), got {len(pieces)}")
    if len(neighbours) != T:
        raise ValueError(f"neighbours must hold one (N, k_t) array per node type ({T}), got {len(neighbours)}")
    type_nodes = [np.flatnonzero(node_type == t) for t in range(T)]
    local = np.empty(N, dtype=np.int64)
    for t, ids in enumerate(type_nodes):
        local[ids] = np.arange(ids.size)
    checked = []
    for t, plist in enumerate(pieces):
        if len(plist) == 0:
            raise ValueError(f"pieces[{t}] must hold at least one feature piece")
        row = []
        for i, p in enumerate(plist):
            p = np.asarray(p)
            if p.ndim != 2 or p.shape[0] != type_nodes[t].size or p.dtype.kind != "f":
                raise ValueError(f"pieces[{t}][{i}] must be a ({type_nodes[t].size}, F) float array (one row per "
                                 f"node of type {t}), got {p.dtype} {p.shape}")
            if not np.isfinite(p).all():
                r, c = np.argwhere(~np.isfinite(p))[0]
                raise ValueError(f"pieces[{t}][{i}] must be finite, got {p[r, c]} at row {r}, column {c}")
            row.append(p)
        checked.append(row)
    nbrs = []
    for t, nb in enumerate(neighbours):
        nb = np.asarray(nb)
        if nb.ndim != 2 or nb.shape[0] != N or nb.dtype.kind not in "iu":
            raise ValueError(f"neighbours[{t}] must be an ({N}, k) int array, got {nb.dtype} {nb.shape}")
        nb = nb.astype(np.int64)
        if nb.size and (nb.max() >= N or nb.min() < -1):
            raise ValueError(f"neighbours[{t}] must hold node ids in [0, {N}) or -1, got [{nb.min()}, {nb.max()}]")
        filled = nb >= 0
        if nb.shape[1] and not np.all(filled.all(axis=1) | ~filled.any(axis=1)):
            raise ValueError(f"neighbours[{t}]: every row must be all node ids or all -1")
        if filled.any() and np.any(node_type[nb[filled]] != t):
            raise ValueError(f"neighbours[{t}] must list nodes of type {t} only")
        nbrs.append(nb)
    return HetGNNInput(node_type, local, type_nodes, checked, nbrs)


# =============================================================================== the model
def _leaky(s, slope):
    return np.where(s > 0, s, slope * s)


class HetGNN(Module):
    """HetGNN's encoder: E (M, d) for the nodes asked for (module doc for the maths, derivations/hetgnn.md).

    piece_dims: list per node type of the widths F_{t,i} of its pieces; dim d (even): the
    embedding width; piece_channels C: the width after FC (default d); negative_slope: LeakyReLU's.
    Children: ``fc_<t>_<i>`` Linear(F_{t,i}, C); ``content_<t>`` BiLSTM(C, d/2);
    ``neigh_<t>`` BiLSTM(d, d/2). Params: ``u`` (T, 2d), row t the attention vector of centre type t
    ([:d] scores the candidate, [d:] the centre's f1).
    Raises ValueError for an odd dim or a node id out of range.
    """

    needs_input_grad = False      # pieces are data; the gradient check switches it on

    def __init__(self, piece_dims, dim=64, piece_channels=None, negative_slope=0.01, seed=0, dtype=np.float32):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even int >= 2 (two LSTM directions of dim / 2), got {dim!r}")
        self.dim = int(dim)
        self.piece_channels = int(piece_channels or dim)
        self.negative_slope = float(negative_slope)
        self.piece_dims = [list(map(int, d)) for d in piece_dims]
        self.num_types = T = len(self.piece_dims)
        rng = as_rng(seed)
        seeds = iter(rng.integers(0, 2**31, 10 * T + sum(map(len, self.piece_dims))).tolist())
        for t, dims in enumerate(self.piece_dims):
            for i, F in enumerate(dims):
                setattr(self, f"fc_{t}_{i}", Linear(F, self.piece_channels, seed=next(seeds), dtype=dtype))
        for t in range(T):
            setattr(self, f"content_{t}", BiLSTM(self.piece_channels, dim // 2, seed=next(seeds), dtype=dtype))
        for t in range(T):
            setattr(self, f"neigh_{t}", BiLSTM(dim, dim // 2, seed=next(seeds), dtype=dtype))
        k = 1.0 / np.sqrt(2 * dim)
        self.add_param("u", rng.uniform(-k, k, (T, 2 * dim)).astype(dtype))

    def fc(self, t, i):
        return getattr(self, f"fc_{t}_{i}")

    # ------------------------------------------------------------------ forward
    @single_blas_pool
    def forward(self, nodes, data=None):
        if not isinstance(data, HetGNNInput):
            raise TypeError(f"HetGNN.forward needs forward(nodes, data) with data a HetGNNInput, "
                            f"got {type(data).__name__}")
        if data.num_types != self.num_types:
            raise ValueError(f"data has {data.num_types} node types, the model was built for {self.num_types}")
        nodes = np.asarray(nodes, dtype=np.int64)
        if nodes.ndim != 1 or (nodes.size and (nodes.min() < 0 or nodes.max() >= data.num_nodes)):
            raise ValueError(f"nodes must be a 1-D array of node ids in [0, {data.num_nodes})")
        dtype, d, T = self.params["u"].dtype, self.dim, self.num_types
        # every node whose f1 is read: the centres and their sampled neighbours
        nb_rows = [data.neighbours[t][nodes] for t in range(T)]
        needed = np.unique(np.concatenate([nodes] + [nb[nb >= 0] for nb in nb_rows]))
        F1 = np.zeros((needed.size, d), dtype=dtype)
        content = []                                            # (t, positions in needed, local rows)
        for t in range(T):
            sel = np.flatnonzero(data.node_type[needed] == t)
            if sel.size == 0:
                continue
            loc = data.local[needed[sel]]
            n, P = sel.size, len(self.piece_dims[t])
            X = np.concatenate([self.fc(t, i).forward(np.ascontiguousarray(data.pieces[t][i][loc], dtype=dtype))
                                for i in range(P)])             # (P n, C): piece i of node r at row i n + r
            seqs = equal_length_sequences(np.arange(P * n).reshape(P, n).T, P * n)
            F1[sel] = getattr(self, f"content_{t}").forward(X, seqs)
            content.append((t, sel, loc))
        centre = np.searchsorted(needed, nodes)                 # (M,) rows of F1
        M = nodes.size
        cand = np.zeros((M, T + 1, d), dtype=dtype)             # candidate 0: f1(v); 1 + t: f2^t(v)
        mask = np.zeros((M, T + 1), dtype=bool)
        cand[:, 0] = F1[centre]
        mask[:, 0] = True
        neigh = []                                              # (t, centre rows that have type-t neighbours)
        for t in range(T):
            nb = nb_rows[t]
            if nb.shape[1] == 0:
                continue
            rows = np.flatnonzero(nb[:, 0] >= 0)
            if rows.size == 0:
                continue
            seqs = equal_length_sequences(np.searchsorted(needed, nb[rows]), needed.size)
            cand[rows, t + 1] = getattr(self, f"neigh_{t}").forward(F1, seqs)
            mask[rows, t + 1] = True
            neigh.append((t, rows))
        # type attention: s_j = LeakyReLU(u_top . F_j + u_bot . f1(v)), softmax over the present candidates
        ctype = data.node_type[nodes]
        u = self.params["u"][ctype]                              # (M, 2d)
        s = np.einsum("mjd,md->mj", cand, u[:, :d]) + np.sum(cand[:, 0] * u[:, d:], axis=1)[:, None]
        e = _leaky(s, self.negative_slope)
        e = np.where(mask, e, -np.inf)
        e -= e.max(axis=1, keepdims=True)                       # max-shift: no gradient flows through it
        alpha = np.exp(e)
        alpha /= alpha.sum(axis=1, keepdims=True)
        out = np.einsum("mj,mjd->md", alpha, cand)
        self._cache = (needed, centre, ctype, content, neigh, cand, s, alpha, data)
        return out

    # ------------------------------------------------------------------ backward
    @single_blas_pool
    def backward(self, grad_out):
        needed, centre, ctype, content, neigh, cand, s, alpha, data = self._saved()
        d = self.dim
        u = self.params["u"][ctype]
        G = grad_out
        # E = sum_j alpha_j F_j
        dalpha = np.einsum("md,mjd->mj", G, cand)
        dcand = alpha[:, :, None] * G[:, None, :]
        # softmax (absent candidates have alpha = 0, hence ds = 0), then LeakyReLU
        ds = alpha * (dalpha - np.sum(alpha * dalpha, axis=1, keepdims=True))
        ds *= np.where(s > 0, 1.0, self.negative_slope)
        # s_j = u_top . F_j + u_bot . F_0
        sum_ds = ds.sum(axis=1)
        du = np.concatenate([np.einsum("mj,mjd->md", ds, cand), sum_ds[:, None] * cand[:, 0]], axis=1)
        for t in np.unique(ctype):
            self.grads["u"][t] += du[ctype == t].sum(axis=0)
        dcand += ds[:, :, None] * u[:, None, :d]
        dcand[:, 0] += sum_ds[:, None] * u[:, d:]
        # back to f1 of every needed node: the centre path (candidate 0) and the neighbour Bi-LSTMs
        dF1 = np.zeros((needed.size, d), dtype=G.dtype)
        np.add.at(dF1, centre, dcand[:, 0])                      # a node asked for twice gets both rows
        for t, rows in neigh:
            dF1 += getattr(self, f"neigh_{t}").backward(np.ascontiguousarray(dcand[rows, t + 1]))
        # content encoders, then the FC of every piece
        dpieces = [[np.zeros_like(p) for p in plist] for plist in data.pieces] if self.needs_input_grad else None
        for t, sel, loc in content:
            n = sel.size
            dX = getattr(self, f"content_{t}").backward(np.ascontiguousarray(dF1[sel]))
            for i in range(len(self.piece_dims[t])):
                fc = self.fc(t, i)
                fc.needs_input_grad = self.needs_input_grad
                dx = fc.backward(np.ascontiguousarray(dX[i * n:(i + 1) * n]))
                if dpieces is not None:
                    dpieces[t][i][loc] += dx                     # loc: distinct rows (needed is unique)
        return dpieces

    def embed(self, data, nodes=None, batch_size=2048):
        """E for ``nodes`` (default all N), (M, d), computed in chunks of ``batch_size`` (no gradient kept)."""
        nodes = np.arange(data.num_nodes) if nodes is None else np.asarray(nodes, dtype=np.int64)
        return np.concatenate([self.forward(nodes[a:a + batch_size], data)
                               for a in range(0, max(nodes.size, 1), batch_size)])[:nodes.size]


# =============================================================================== the loss
def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class GraphContextLoss:
    """HetGNN's loss [eq. 10]: L = (1/B) sum_b [ -log sigma(E_c . E_v) - log sigma(-E_c' . E_v) ].

    forward(E_v, E_c, E_n): three (B, d) arrays -> float. backward() -> (dE_v, dE_c, dE_n):
        p = sigma(E_c . E_v) - 1,  q = sigma(E_n . E_v)       (dL/d of each score, times B)
        dE_v = (p E_c + q E_n) / B,   dE_c = p E_v / B,   dE_n = q E_v / B
    Raises ValueError for mismatched or empty shapes.
    """

    def forward(self, E_v, E_c, E_n):
        if not (E_v.shape == E_c.shape == E_n.shape) or E_v.ndim != 2 or E_v.shape[0] == 0:
            raise ValueError(f"E_v, E_c, E_n must be three (B, d) arrays of one shape with B >= 1, got "
                             f"{E_v.shape}, {E_c.shape}, {E_n.shape}")
        pos = np.sum(E_c * E_v, axis=1)
        neg = np.sum(E_n * E_v, axis=1)
        self._cache = (E_v, E_c, E_n, pos, neg)
        return float(-np.mean(_log_sigmoid(pos) + _log_sigmoid(-neg)))

    def backward(self):
        E_v, E_c, E_n, pos, neg = self._cache
        B = E_v.shape[0]
        p = ((_sigmoid(pos) - 1.0) / B).astype(E_v.dtype)[:, None]
        q = (_sigmoid(neg) / B).astype(E_v.dtype)[:, None]
        return p * E_c + q * E_n, p * E_v, q * E_v


def triple_loss_and_backward(model, data, triples, loss_fn=None):
    """One mini-batch: E of the distinct nodes of ``triples`` (B, 3), the loss, and model.backward.

    Returns (L, what model.backward returns: the pieces' gradients or None)."""
    loss_fn = loss_fn or GraphContextLoss()
    uniq, inv = np.unique(triples, return_inverse=True)
    inv = inv.reshape(triples.shape)
    E = model.forward(uniq, data)
    L = loss_fn.forward(E[inv[:, 0]], E[inv[:, 1]], E[inv[:, 2]])
    dv, dc, dn = loss_fn.backward()
    dE = np.zeros_like(E)
    for col, g in ((0, dv), (1, dc), (2, dn)):
        np.add.at(dE, inv[:, col], g)                          # a node in several roles / triples: the sum
    return L, model.backward(dE)


# =============================================================================== training
@dataclass
class HetGNNResult:
    """What ``train_hetgnn`` returns: the embeddings (N, d), the model, its input, per-epoch mean losses, seconds."""
    embedding: np.ndarray
    model: HetGNN
    data: HetGNNInput
    losses: list
    timings: dict


def train_hetgnn(graph, node_type, pieces, dim=64, num_neighbours=10, restart=0.5, rwr_length=100,
                 num_walks=1, walk_length=20, window=2, triples_per_epoch=50_000, epochs=3, batch_size=256,
                 lr=1e-3, weight_decay=0.0, seed=0, dtype=np.float32, log=None):
    """Sample, train HetGNN with Adam on its graph-context loss, and embed every node: a ``HetGNNResult``.

    graph: square undirected ``Graph`` over all N nodes; node_type (N,) int; pieces: list per type
    of (N_t, F_{t,i}) float arrays. num_neighbours: int or one per type (k_t); restart, rwr_length:
    the RWR sampler's; num_walks, walk_length, window: the context walks'; each epoch draws
    ``triples_per_epoch`` triples afresh (seed + epoch) and takes mini-batches of ``batch_size``.
    log: a callable receiving one line per epoch (None: silent). Same seed -> same bits.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a gnn_scratch Graph, got {type(graph).__name__}")
    timings = {}
    t0 = time.perf_counter()
    neighbours = rwr_neighbours(graph, node_type, num_neighbours, restart, rwr_length, seed=seed)
    data = hetgnn_input(node_type, pieces, neighbours)
    timings["rwr_neighbours_s"] = time.perf_counter() - t0
    model = HetGNN([[p.shape[1] for p in plist] for plist in data.pieces], dim=dim, seed=seed, dtype=dtype)
    opt = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = GraphContextLoss()
    losses = []
    timings["triples_s"] = timings["train_s"] = 0.0
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        triples = context_triples(graph, data.node_type, num_walks, walk_length, window, triples_per_epoch,
                                  seed=(seed, epoch))
        triples = triples[rng.permutation(len(triples))]
        t1 = time.perf_counter()
        timings["triples_s"] += t1 - t0
        total = 0.0
        for a in range(0, len(triples), batch_size):
            opt.zero_grad()
            batch = triples[a:a + batch_size]
            total += triple_loss_and_backward(model, data, batch, loss_fn)[0] * len(batch)
            opt.step()
        losses.append(total / max(len(triples), 1))
        timings["train_s"] += time.perf_counter() - t1
        if log is not None:
            log(f"epoch {epoch}: loss {losses[-1]:.4f} ({time.perf_counter() - t0:.1f} s, {len(triples)} triples)")
    t0 = time.perf_counter()
    Z = model.embed(data)
    timings["embed_s"] = time.perf_counter() - t0
    return HetGNNResult(Z, model, data, losses, timings)


def content_pieces(graph, node_type, features, piece_dim=64, seed=0):
    """HetGNN's content pieces of every node type, computed once and fixed (the paper's are pre-trained too).

    Per type t (the paper embeds text and images with pre-trained encoders; here):
      * its attribute matrix, if any: a sparse one reduced to ``piece_dim`` columns by truncated SVD
        (scipy ``svds``, X V_k = U_k S_k, singular values in decreasing order), a dense one as it is;
      * a DeepWalk embedding (``embed.deepwalk``: 5 walks of 40 per node, window 5, deterministic) of
        every node of the homogeneous graph, ``piece_dim`` wide;
    each piece divided by its global standard deviation, so the pieces have comparable scales.

    graph: square undirected ``Graph`` over all N nodes; node_type (N,) int; features: list per type
    of an (N_t, F_t) array (dense or scipy.sparse) or None. Returns a list per type of float32 pieces,
    the ``pieces`` argument of ``train_hetgnn``.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    from .deepwalk import deepwalk

    node_type = np.asarray(node_type)
    dw = deepwalk(graph, dim=piece_dim, walk_length=40, num_walks=5, window=5, seed=seed, deterministic=True)
    pieces = []
    for t, X in enumerate(features):
        plist = []
        if X is not None:
            if sp.issparse(X):
                X = sp.csr_matrix(X, dtype=np.float64)
                k = min(piece_dim, min(X.shape) - 1)
                U, S, _ = spla.svds(X, k=k, v0=np.random.default_rng(seed).standard_normal(min(X.shape)))
                order = np.argsort(-S)
                plist.append(U[:, order] * S[order])
            else:
                plist.append(np.asarray(X, dtype=np.float64))
        plist.append(dw[node_type == t].astype(np.float64))
        pieces.append([(p / (p.std() or 1.0)).astype(np.float32) for p in plist])
    return pieces
