"""PinSage training: two PinSAGEConv layers, the max-margin loss, shared random negatives, hard negatives by
personalised PageRank on a curriculum, and a producer thread that samples the next mini-batch.

One mini-batch (``PinSageBatches``; the paper's section 3.2-3.3):
  1. B positive pairs (q, i): two items co-engaged by one user (``data.bipartite.sample_training_pairs``),
     fresh each epoch;
  2. R random negatives, uniform over the items, shared by every pair of the batch (the paper's 500);
  3. h_e hard negatives per query, h_e = e - 1 in epoch e = 1, 2, ... (the paper's curriculum), drawn
     uniformly among the items ranked ``band`` = [lo, hi) by personalised PageRank from q;
     the loss averages the hard hinge terms apart from the R random ones and adds them with weight
     ``hard_weight`` (1; ``MaxMarginLoss``) -- pooled into one mean, h <= 7 hard terms among R = 256
     random ones had no measurable effect on MRR (scripts/pinsage_generated.py);
  4. the importance neighbourhoods of the batch's items, layer by layer (top-k of T walks of L
     item -> user -> item steps; ``importance_neighbourhoods`` with hops=2), relabelled into one
     block per layer (the batch's nodes first).
A producer thread (``minibatch.BackgroundProducer``) does 1-4 for the next batch while the model trains
on the current one; the Numba walks release the GIL, scipy's sparse products mostly do not.
``wait_share`` = the time the trainer spent blocked on the queue / the training time.

Personalised PageRank (hard negatives): over the item graph P (I x I) of the items' importance
neighbourhoods (row u: alpha_uv, computed once with ``ppr_k`` neighbours), from every query q of the
batch at once by power iteration, R columns of the (I, B) matrix:

    r <- restart * e_q + (1 - restart) P^T r,     ``ppr_iters`` times from r = e_q

-- a walk on the 2-hop item -> user -> item transitions, sparsified to each item's top neighbours,
restarting at q. ``band`` default: ranks [I/100, I/25) (the paper's 2000-5000 among ~2 billion pins is
"related, but not the closest"; at I = 5 000 the band is 50 .. 200). Positives falling in the band are
replaced by the next-ranked item outside the pair.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..data.bipartite import sample_training_pairs
from ..minibatch import BackgroundProducer
from ..nn.conv.pinsage_conv import PinSAGEConv
from ..nn.module import Module
from ..optim import Adam
from ..graph import Graph
from .loss import MaxMarginLoss
from .neighbourhoods import importance_neighbourhoods, restrict_sources
from .evaluate import embedding_ranks, metrics


class PinSAGE(Module):
    """Two PinSAGEConv layers: x (N_0, F_in) -> z (N_2, out_channels), unit rows; forward(x, [block0, block1]).

    The first layer's input is data (no input gradient); backward(G) returns None.
    """

    def __init__(self, in_channels, hidden_channels=64, out_channels=32, seed=0, dtype=np.float32):
        super().__init__()
        s = np.random.SeedSequence(seed).spawn(2)
        self.conv1 = PinSAGEConv(in_channels, hidden_channels, hidden_channels, seed=int(s[0].generate_state(1)[0]),
                                 dtype=dtype)
        self.conv2 = PinSAGEConv(hidden_channels, hidden_channels, out_channels,
                                 seed=int(s[1].generate_state(1)[0]), dtype=dtype)
        self.conv1.needs_input_grad = False

    def forward(self, x, blocks=None):
        if not isinstance(blocks, (list, tuple)) or len(blocks) != 2:
            raise ValueError("PinSAGE.forward needs two blocks, forward(x, [block0, block1])")
        return self.conv2.forward(self.conv1.forward(x, blocks[0]), blocks[1])

    def backward(self, grad_out):
        return self.conv1.backward(self.conv2.backward(grad_out))


def item_graph(data, k=10, num_walks=50, walk_length=2, seed=0):
    """The (I, I) importance-neighbourhood graph of every item (weights alpha): full-graph inference, PageRank."""
    nb = importance_neighbourhoods(data.graph, num_walks=num_walks, walk_length=walk_length, k=k, seed=seed,
                                   nodes=np.arange(data.num_items), hops=2)
    return restrict_sources(nb, data.num_items)


def sample_neighbourhood_blocks(graph, num_items, seeds, num_layers, k, num_walks, walk_length, seed):
    """Blocks of a mini-batch computed on the fly: the importance neighbourhoods of each layer's targets only.

    Equal to ``importance_blocks(item_graph(...), seeds, num_layers)`` with the same walk arguments and
    seed (a node's row does not depend on what else is queried) -- tested -- at the cost of the
    batch's nodes instead of every item.
    """
    targets = np.asarray(seeds, dtype=np.int64)
    local_of = np.full(num_items, -1, dtype=np.int64)
    blocks = []
    for _ in range(num_layers):
        nb = importance_neighbourhoods(graph, num_walks=num_walks, walk_length=walk_length, k=k, seed=seed,
                                       nodes=targets, hops=2)
        local_of[targets] = np.arange(targets.size)
        ids = nb.indices.astype(np.int64)
        new = ids[local_of[ids] < 0]
        uniq, first = np.unique(new, return_index=True)
        new = uniq[np.argsort(first, kind="stable")]                     # order of first appearance
        frontier = np.concatenate([targets, new])
        local_of[new] = np.arange(targets.size, frontier.size)
        blocks.append(Graph(nb.indptr, local_of[ids].astype(np.int32), edge_weight=nb.edge_weight,
                            num_src=frontier.size, _validated=True))
        local_of[frontier] = -1
        targets = frontier
    blocks.reverse()
    return blocks, targets


def ppr_band(P_T, queries, band, restart=0.3, iters=8, exclude=None):
    """(B, hi - lo) int64: the items ranked lo .. hi-1 by personalised PageRank from each query.

    P_T: (I, I) scipy CSR, the transpose of the row-stochastic item transition matrix. Ranks count
    from 0 = the highest score (the query itself, normally). ``exclude`` (B,) ids (the positives)
    are skipped: the band then takes the next item.
    """
    lo, hi = band
    I = P_T.shape[0]
    B = queries.size
    E = np.zeros((I, B), dtype=np.float32)
    E[queries, np.arange(B)] = 1.0
    R = E.copy()
    for _ in range(iters):
        R = restart * E + (1.0 - restart) * (P_T @ R)
    top = min(hi + 1, I)
    idx = np.argpartition(-R, top - 1, axis=0)[:top].T                  # (B, top) unordered
    score = np.take_along_axis(R.T, idx, axis=1)
    order = np.lexsort((idx, -score), axis=1)
    ranked = np.take_along_axis(idx, order, axis=1)                      # by score, ties by id
    if exclude is not None:
        drop = ranked == np.asarray(exclude)[:, None]
        ranked = np.where(drop.any(axis=1, keepdims=True),
                          np.take_along_axis(ranked, np.argsort(drop, axis=1, kind="stable"), axis=1), ranked)
    return ranked[:, lo:hi]


@dataclass
class PinSageConfig:
    """Hyper-parameters (defaults sized for the generated graphs of scripts/pinsage_generated.py)."""
    epochs: int = 4
    pairs_per_epoch: int = 4096
    batch_size: int = 256
    num_random_negatives: int = 256
    curriculum: bool = True           # epoch e adds e - 1 hard negatives per query
    band: tuple | None = None         # PageRank ranks of the hard negatives; None: [I/100, I/25)
    margin: float = 0.1
    hard_weight: float | None = 1.0   # mean(random) + lambda mean(hard); None: one pooled mean (dilutes hard ones)
    lr: float = 0.01
    hidden_channels: int = 64
    out_channels: int = 32
    k: int = 10                       # importance neighbours per node
    num_walks: int = 50
    walk_length: int = 2              # steps of item -> user -> item
    ppr_k: int = 20
    ppr_restart: float = 0.3
    ppr_iters: int = 8
    use_thread: bool = True
    prefetch: int = 2
    seed: int = 0


@dataclass
class PinSageBatch:
    nodes: np.ndarray                 # (M,) item ids whose embeddings the loss reads (the seeds of the blocks)
    blocks: list
    input_nodes: np.ndarray
    query: np.ndarray                 # (B,) rows of nodes
    positive: np.ndarray
    negatives: np.ndarray             # (R,)
    hard: np.ndarray                  # (B, h)
    sample_s: float = 0.0


def _batches(data, cfg, epoch, P_T):
    """Generator of the mini-batches of ``epoch`` (1-based); everything drawn from (seed, epoch, batch)."""
    I = data.num_items
    band = cfg.band or (max(10, I // 100), max(20, I // 25))
    h = epoch - 1 if cfg.curriculum else 0
    pairs = sample_training_pairs(data, cfg.pairs_per_epoch, seed=(cfg.seed, epoch))
    for b, s in enumerate(range(0, pairs.shape[0], cfg.batch_size)):
        t0 = time.perf_counter()
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, epoch, b, 0x18]))
        q, p = pairs[s:s + cfg.batch_size, 0], pairs[s:s + cfg.batch_size, 1]
        neg = rng.integers(0, I, cfg.num_random_negatives)
        if h > 0:
            cand = ppr_band(P_T, q, band, cfg.ppr_restart, cfg.ppr_iters, exclude=p)
            hard = np.take_along_axis(cand, rng.integers(0, cand.shape[1], (q.size, h)), axis=1)
        else:
            hard = np.empty((q.size, 0), dtype=np.int64)
        nodes, inv = np.unique(np.concatenate([q, p, neg, hard.ravel()]), return_inverse=True)
        B, R = q.size, neg.size
        blocks, input_nodes = sample_neighbourhood_blocks(data.graph, I, nodes, 2, cfg.k, cfg.num_walks,
                                                          cfg.walk_length, (cfg.seed, epoch))
        yield PinSageBatch(nodes, blocks, input_nodes, inv[:B], inv[B:2 * B], inv[2 * B:2 * B + R],
                           inv[2 * B + R:].reshape(B, h), time.perf_counter() - t0)


@dataclass
class TrainResult:
    model: PinSAGE
    losses: list = field(default_factory=list)
    hard_hits: list = field(default_factory=list)   # per epoch: share of hard-negative hinges > 0 (nan: none)
    train_s: float = 0.0
    wait_s: float = 0.0
    sample_s: float = 0.0

    @property
    def wait_share(self):
        return self.wait_s / self.train_s if self.train_s > 0 else 0.0


def _stream(it, use_thread, prefetch):
    if use_thread:
        return BackgroundProducer(it, maxsize=prefetch)
    from ..minibatch import _Unthreaded
    return _Unthreaded(it)


def train_pinsage(data, cfg=None, P=None, log=None):
    """Train PinSAGE on ``data`` (``data.bipartite.BipartiteInteractions``); returns a ``TrainResult``.

    P: the (I, I) item graph for PageRank (``item_graph(data, k=cfg.ppr_k)``), built when None.
    Same data, config and seed -> same model bits, threaded or not.
    """
    cfg = cfg or PinSageConfig()
    model = PinSAGE(data.x.shape[1], cfg.hidden_channels, cfg.out_channels, seed=cfg.seed)
    opt = Adam(model.parameters(), lr=cfg.lr)
    loss_fn = MaxMarginLoss(cfg.margin, cfg.hard_weight)
    P_T = None
    if cfg.curriculum and cfg.epochs > 1:
        P = P if P is not None else item_graph(data, k=cfg.ppr_k, num_walks=cfg.num_walks,
                                               walk_length=cfg.walk_length, seed=cfg.seed)
        P_T = P.to_scipy().T.tocsr().astype(np.float32)
    res = TrainResult(model)
    x = data.x
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        total, n, hits = 0.0, 0, []
        with _stream(_batches(data, cfg, epoch, P_T), cfg.use_thread, cfg.prefetch) as stream:
            for batch in stream:
                res.sample_s += batch.sample_s
                model.zero_grad()
                Z = model.forward(x[batch.input_nodes], batch.blocks)
                total += loss_fn.forward(Z, batch.query, batch.positive, batch.negatives, batch.hard)
                hits.append(loss_fn.hard_hit_fraction)
                model.backward(loss_fn.backward().astype(Z.dtype))
                opt.step()
                n += 1
            res.wait_s += getattr(stream, "wait_s", 0.0)
        res.losses.append(total / max(n, 1))
        res.hard_hits.append(float(np.mean(hits)) if hits and not np.isnan(hits[0]) else float("nan"))
        if log:
            log(f"epoch {epoch}: loss {res.losses[-1]:.4f}")
    res.train_s = time.perf_counter() - t_start
    return res


def embed_items(model, data, graph=None, cfg=None):
    """Every item's embedding (I, out_channels): both layers on the full (I, I) item graph (computed when None)."""
    cfg = cfg or PinSageConfig()
    g = graph if graph is not None else item_graph(data, cfg.k, cfg.num_walks, cfg.walk_length, seed=cfg.seed)
    model.eval()
    Z = model.forward(data.x, [g, g])
    model.train()
    return Z


def evaluate_pinsage(model, data, graph=None, cfg=None):
    """metrics(...) of the held-out pairs ranked by PinSAGE's item embeddings."""
    return metrics(embedding_ranks(embed_items(model, data, graph, cfg), data.test_pairs))
