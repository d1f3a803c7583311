"""DeepWalk (Perozzi et al. 2014) and node2vec (Grover & Leskovec 2016): random walks -> skip-gram -> embeddings.

    walks = random_walks(graph, walk_length, num_walks, p, q, seed)       (walks.py)
    Z, _  = train_sgns(walks, N, dim, window, negatives, lr, epochs, ...)  (skipgram.py)

Defaults are the node2vec paper's settings, which it applies to DeepWalk too: d = 128, r = 10 walks
per node, l = 80 nodes per walk, window k = 10, K = 5 negatives, one epoch, lr 0.025 decayed
linearly (word2vec's defaults). DeepWalk's paper trained with hierarchical softmax; here both
use negative sampling, as the issue asks and as node2vec's code does. node2vec with p = q = 1 is
DeepWalk. The skip-gram is word2vec's as gensim 4 runs it (what the node2vec reference code and PecanPy
call): the context in the input role, input vectors started in U[-1/D, 1/D) (``train_sgns``'s
``context_input=True, init_range=1.0``; on BlogCatalog these two bring our node2vec embeddings to
gensim's Macro-F1 on the same walks: README, "Learning without labels"). The noise distribution is
degree^0.75 (``alias.negative_table``; ``noise="walks"`` takes the walks' node counts^0.75, gensim's
choice). Nodes a walk never leaves (isolated) keep their small
random initial vector.
"""
from __future__ import annotations

import numpy as np

from .alias import negative_table
from .skipgram import check_options, train_sgns
from .walks import random_walks


def walk_degree(graph, direction="in"):
    """(N,) float64: the weighted number of edges a walk can take out of each node (in-degree for "in")."""
    w = np.ones(graph.num_edges) if graph.edge_weight is None else np.asarray(graph.edge_weight, np.float64)
    nodes = graph.dst_of_edge() if direction == "in" else graph.indices
    return np.bincount(nodes, weights=w, minlength=graph.num_nodes)


class Node2Vec:
    """node2vec: second-order walks with return parameter p and in-out parameter q, then SGNS.

    ``fit(graph)`` -> self, with ``embedding`` (N, dim) float32 (the input vectors) and ``walks``
    (num_walks N, walk_length) int32. p = q = 1 is DeepWalk. deterministic=True trains on one
    thread in walk order (bit-identical for a seed); otherwise Hogwild on the Numba threads
    (walks are bit-identical for a seed either way). progress: tqdm bars when tqdm is importable.
    direction: "in" (the CSR rows, the library's convention) or "out" (see walks.py).
    context_input, init_range: ``train_sgns``'s (defaults: word2vec's roles, gensim 4's U[-1/D, 1/D) start).
    Raises as ``random_walks`` and ``train_sgns`` do (p, q <= 0, walk_length < 1, a graph without edges, ...).
    """

    def __init__(self, dim=128, walk_length=80, num_walks=10, window=10, negatives=5, epochs=1, lr=0.025,
                 p=1.0, q=1.0, seed=0, noise="degree", deterministic=False, direction="in", progress=False,
                 keep_walks=False, context_input=True, init_range=1.0):
        if noise not in ("degree", "walks"):
            raise ValueError(f"noise must be 'degree' or 'walks', got {noise!r}")
        self.dim, self.walk_length, self.num_walks, self.window = dim, walk_length, num_walks, window
        self.negatives, self.epochs, self.lr, self.p, self.q, self.seed = negatives, epochs, lr, p, q, seed
        self.noise, self.deterministic, self.direction, self.progress = noise, deterministic, direction, progress
        self.keep_walks = keep_walks
        self.context_input, self.init_range = check_options(context_input, init_range)   # before the walks
        self.embedding = self.walks = None

    def fit(self, graph):
        walks = random_walks(graph, self.walk_length, self.num_walks, self.p, self.q, seed=self.seed,
                             direction=self.direction, progress=self.progress)
        noise = negative_table(counts=walk_degree(graph, self.direction)) if self.noise == "degree" else None
        W_in, _ = train_sgns(walks, graph.num_nodes, self.dim, self.window, self.negatives, self.lr, self.epochs,
                             seed=self.seed, noise=noise, dtype=np.float32, deterministic=self.deterministic,
                             progress=self.progress, context_input=self.context_input, init_range=self.init_range)
        self.embedding = W_in
        self.walks = walks if self.keep_walks else None
        return self


class DeepWalk(Node2Vec):
    """DeepWalk: uniform first-order walks, then SGNS (node2vec with p = q = 1); see ``Node2Vec``."""

    def __init__(self, dim=128, walk_length=80, num_walks=10, window=10, negatives=5, epochs=1, lr=0.025, seed=0,
                 noise="degree", deterministic=False, direction="in", progress=False, keep_walks=False,
                 context_input=True, init_range=1.0):
        super().__init__(dim, walk_length, num_walks, window, negatives, epochs, lr, 1.0, 1.0, seed, noise,
                         deterministic, direction, progress, keep_walks, context_input, init_range)


def node2vec(graph, p=1.0, q=1.0, dim=128, walk_length=80, num_walks=10, window=10, negatives=5, epochs=1,
             lr=0.025, seed=0, **kwargs):
    """node2vec embeddings of ``graph``: (N, dim) float32. Arguments and errors as ``Node2Vec``."""
    model = Node2Vec(dim, walk_length, num_walks, window, negatives, epochs, lr, p, q, seed, **kwargs)
    return model.fit(graph).embedding


def deepwalk(graph, dim=128, walk_length=80, num_walks=10, window=10, negatives=5, epochs=1, lr=0.025, seed=0,
             **kwargs):
    """DeepWalk embeddings of ``graph``: (N, dim) float32. Arguments and errors as ``Node2Vec`` (p = q = 1)."""
    return DeepWalk(dim, walk_length, num_walks, window, negatives, epochs, lr, seed, **kwargs).fit(graph).embedding
