"""Node-embedding methods as the embedding task runs them: DeepWalk, node2vec, LINE, SDNE, Deep Graph Infomax.

These are not layers stacked into a network trained end to end on labels: each is a procedure that
turns a graph (and, for DGI, its features) into an embedding matrix Z (N, d), trained without any
label (``gnn_scratch.embed``). The registry entries let ``gnn-scratch train --task embedding --model
NAME`` name them; their hyper-parameters are the task's options (``tasks/embedding.py``), so
``model_defaults`` is empty and ``embed(graph, x, seed, **options)`` is the one entry point.
"""
import numpy as np

from ..embed import DGI, LINE, DeepWalk, Node2Vec, train_sdne
from ..embed.line import ORDERS
from .registry import register


class EmbeddingMethod:
    """Base class of the registry entries: ``embed`` returns (Z (N, d) float32, a dict of what was measured)."""

    embedding = True           # the embedding task takes these; the other tasks refuse them
    devices = ("cpu",)
    model_defaults = {}
    train_defaults = {}
    needs_features = False
    options = ()               # the task options this method reads (the others are refused)

    def __init__(self):
        raise TypeError(f"{type(self).__name__} is a procedure: call {type(self).__name__}.embed(graph, x, seed, ...)")


@register
class DeepWalkMethod(EmbeddingMethod):
    """DeepWalk (Perozzi et al. 2014): uniform random walks, then skip-gram with negative sampling."""

    name = "deepwalk"
    options = ("dim", "walk_length", "num_walks", "window", "negatives", "epochs", "lr", "deterministic")

    @classmethod
    def embed(cls, graph, x, seed, dim, walk_length, num_walks, window, negatives, epochs, lr, deterministic,
              progress=False, **_):
        m = DeepWalk(dim, walk_length, num_walks, window, negatives, epochs, lr, seed=seed,
                     deterministic=deterministic, progress=progress).fit(graph)
        return m.embedding, {}


@register
class Node2VecMethod(EmbeddingMethod):
    """node2vec (Grover & Leskovec 2016): second-order walks biased by p and q, then skip-gram."""

    name = "node2vec"
    options = DeepWalkMethod.options + ("p", "q")

    @classmethod
    def embed(cls, graph, x, seed, dim, walk_length, num_walks, window, negatives, epochs, lr, p, q, deterministic,
              progress=False, **_):
        m = Node2Vec(dim, walk_length, num_walks, window, negatives, epochs, lr, p, q, seed=seed,
                     deterministic=deterministic, progress=progress).fit(graph)
        return m.embedding, {}


@register
class LINEMethod(EmbeddingMethod):
    """LINE (Tang et al. 2015): first- and second-order proximity by edge sampling; 1+2 concatenated."""

    name = "line"
    options = ("dim", "negatives", "lr", "samples", "order")

    @classmethod
    def embed(cls, graph, x, seed, dim, negatives, lr, samples, order, **_):
        order = order if order == "1+2" else int(order)
        if order == "1+2":
            if dim % 2:
                raise ValueError(f"dim (--dim) must be even for LINE(1st+2nd) (dim/2 per order), got {dim}")
            parts = [LINE(graph.num_nodes, dim // 2, o, negatives, seed).fit(graph, samples, lr) for o in ORDERS]
            return np.concatenate([p.embedding() for p in parts], axis=1), {}
        return LINE(graph.num_nodes, dim, order, negatives, seed).fit(graph, samples, lr).embedding(), {}


@register
class SDNEMethod(EmbeddingMethod):
    """SDNE (Wang et al. 2016): a deep autoencoder of adjacency rows with a first-order Laplacian term."""

    name = "sdne"
    options = ("epochs", "lr", "batch_size", "sdne_hidden", "alpha", "beta")

    @classmethod
    def embed(cls, graph, x, seed, epochs, lr, batch_size, sdne_hidden, alpha, beta, **_):
        model, history = train_sdne(graph, hidden=tuple(sdne_hidden), alpha=alpha, beta=beta, epochs=epochs,
                                    batch_size=batch_size, lr=lr, seed=seed)
        return np.asarray(model.embedding(_rows(graph))), dict(final_loss=float(history[-1]))


def _rows(graph):
    from ..embed.sdne import adjacency_rows
    return adjacency_rows(graph)


@register
class DGIMethod(EmbeddingMethod):
    """Deep Graph Infomax (Velickovic et al. 2019): a GCN encoder trained to tell the graph from a corrupted one."""

    name = "dgi"
    needs_features = True
    options = ("dim", "lr", "epochs", "patience")

    @classmethod
    def embed(cls, graph, x, seed, dim, lr, epochs, patience, **_):
        model = DGI(x.shape[1], dim, seed=seed)
        result = model.fit(x, graph, epochs=epochs, patience=patience, lr=lr, seed=seed)
        from ..device import to_host
        return np.asarray(to_host(model.embed(x, graph))), dict(best_epoch=int(result.best_epoch),
                                                                 best_loss=float(result.best_loss))
