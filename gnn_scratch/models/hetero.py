"""Models for heterogeneous graphs (issue 14): HAN over metapath graphs, RGCN over the typed relations.

Both classify the nodes of one target type of a ``data.hetero.HeteroDataset`` (ACM: papers, DBLP:
authors). A hetero model says what it reads from the dataset with ``inputs(data)`` -> (x, graph),
the pair its ``forward`` takes, and returns logits for the target nodes only: (N_target, C).
The constructor arguments describing the data (``in_channels``, ``num_nodes``, ``metadata``,
``target``) come from ``data_arguments(data)``, so a saved model's config rebuilds it.
"""
from __future__ import annotations

import numpy as np

from ..nn import Dropout, Linear, ReLU
from ..nn.conv.han_conv import HANConv
from ..nn.conv.rgcn_conv import RGCNConv
from ..nn.hetero_input import HeteroInput
from ..nn.module import Module
from ..nn.checks import positive_int
from .common import child_seeds
from .registry import register


def _edge_types(metadata):
    """Edge types as tuples (a saved config holds them as lists)."""
    return [tuple(e) for e in metadata[1]]


@register
class HAN(Module):
    """HAN (Wang et al. 2019): node-level attention on each metapath graph, semantic attention, a linear classifier.

        Z = HANConv(x_target, {Φ: metapath graph})        (N_target, hidden): GAT per metapath, β over them
        logits = Z W + b                                   (N_target, C)

    The paper's setting (hidden 8 per head x 8 heads, attention dropout 0.6, Adam lr 0.005, weight
    decay 0.001, patience 100) on the target type's features and its metapath graphs (ACM: PAP, PSP;
    DBLP: APA, APCPA, APTPA), as PyG's ``HANConv`` example builds it. After training,
    ``semantic_attention()`` gives β per metapath: which metapath the model trusts.
    """

    name = "han"
    hetero = True
    devices = ("cpu",)
    model_defaults = dict(hidden_channels=64, heads=8, dropout=0.6)
    train_defaults = dict(lr=0.005, weight_decay=0.001, epochs=200, patience=100)

    def __init__(self, in_channels, out_channels, metadata, target, hidden_channels=64, heads=8, dropout=0.6,
                 seed=0, dtype="float32"):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        s = child_seeds(seed, 2)
        dtype = np.dtype(dtype)
        self.target = target
        self.metadata = (list(metadata[0]), _edge_types(metadata))
        self.conv = HANConv(in_channels, hidden_channels, self.metadata, heads=heads, dropout=dropout, seed=s[0],
                            dtype=dtype)
        self.lin = Linear(hidden_channels, out_channels, seed=s[1], dtype=dtype)
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels,
                           metadata=[self.metadata[0], [list(e) for e in self.metadata[1]]], target=target,
                           hidden_channels=hidden_channels, heads=heads, dropout=dropout, seed=seed, dtype=dtype.name)

    @staticmethod
    def data_arguments(data):
        """The constructor arguments that describe ``data``: in_channels, metadata, target."""
        t = data.target
        x = data.graph.x_dict[t]
        edge_types = [(t, name, t) for name in data.metapaths]
        return dict(in_channels={t: int(x.shape[1])}, metadata=([t], edge_types), target=t)

    @staticmethod
    def inputs(data, dtype="float32"):
        """({target: features}, {(t, Φ, t): metapath Graph}): what ``forward`` reads."""
        t = data.target
        graphs = data.metapath_graphs()
        return {t: _features(data.graph.x_dict[t], dtype)}, {(t, name, t): graphs[name] for name in data.metapaths}

    def forward(self, x_dict, graphs):
        Z = self.conv.forward(x_dict, graphs)[self.target]
        return self.lin.forward(Z)

    def backward(self, grad_out):
        dZ = self.lin.backward(grad_out)
        self.conv.backward({self.target: dZ})
        return None

    def semantic_attention(self):
        """{metapath name: β} of the target type after the last forward (HANConv's semantic attention)."""
        beta = self.conv.semantic_attention[self.target]
        names = [e[1] for e in self.conv.semantic_edge_types[self.target]]
        return {n: float(b) for n, b in zip(names, np.asarray(beta))}


@register
class RGCN(Module):
    """RGCN (Schlichtkrull et al. 2018) over every typed relation, for the target type's nodes.

        H0 = HeteroInput(x_dict)                  (N, hidden): a Linear per featured type, a table per featureless one
        H1 = dropout(ReLU(RGCNConv(H0)))          per-relation mean over 1/|N_i^r|, basis W_r = Σ_b a_rb V_b
        logits = RGCNConv(H1)[target rows]        (N_target, C)

    Relations are the dataset's, inverse ones included (every message type both ways), with each
    node's own state through the root weight. ``num_bases`` None: one full matrix per relation (the
    datasets here have 4-6 relations, where bases save little); ``num_blocks``: the block-diagonal form
    in the hidden layer (the output layer keeps full matrices: the class count need not divide).
    """

    name = "rgcn"
    hetero = True
    devices = ("cpu",)
    model_defaults = dict(hidden_channels=64, num_bases=None, num_blocks=None, dropout=0.5)
    train_defaults = dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=50)

    def __init__(self, in_channels, out_channels, num_nodes, metadata, target, hidden_channels=64, num_bases=None,
                 num_blocks=None, dropout=0.5, seed=0, dtype="float32"):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        s = child_seeds(seed, 4)
        dtype = np.dtype(dtype)
        self.target = target
        self.metadata = (list(metadata[0]), _edge_types(metadata))
        R = len(self.metadata[1])
        self.input = HeteroInput(in_channels, num_nodes, hidden_channels, seed=s[0], dtype=dtype)
        self.conv1 = RGCNConv(hidden_channels, hidden_channels, R, num_bases=num_bases, num_blocks=num_blocks,
                              seed=s[1], dtype=dtype)
        self.act1 = ReLU()
        self.drop1 = Dropout(dropout, seed=s[2])
        # blocks split the hidden width only: the class count need not be divisible by num_blocks
        self.conv2 = RGCNConv(hidden_channels, out_channels, R, num_bases=num_bases, seed=s[3], dtype=dtype)
        self.rows = self.input.offset[target]
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels, num_nodes=num_nodes,
                           metadata=[self.metadata[0], [list(e) for e in self.metadata[1]]], target=target,
                           hidden_channels=hidden_channels, num_bases=num_bases, num_blocks=num_blocks,
                           dropout=dropout, seed=seed, dtype=dtype.name)

    @staticmethod
    def data_arguments(data):
        g = data.graph
        in_channels = {t: (None if g.x_dict.get(t) is None else int(g.x_dict[t].shape[1])) for t in g.node_types}
        return dict(in_channels=in_channels, num_nodes=dict(g.num_nodes), metadata=(list(g.node_types),
                    list(g.edge_types)), target=data.target)

    @staticmethod
    def inputs(data, dtype="float32"):
        """(x_dict, (Graph over all nodes, edge_type)): what ``forward`` reads."""
        g = data.graph
        h = g.to_homogeneous()
        x = {t: _features(v, dtype) for t, v in g.x_dict.items() if v is not None}
        return x, (h.graph, h.edge_type)

    def forward(self, x_dict, graph):
        graph, edge_type = graph
        H = self.input.forward(x_dict)
        H = self.drop1.forward(self.act1.forward(self.conv1.forward(H, graph, edge_type)))
        out = self.conv2.forward(H, graph, edge_type)
        self._cache = out.shape
        lo, hi = self.rows
        return np.ascontiguousarray(out[lo:hi])

    def backward(self, grad_out):
        shape = self._saved()
        lo, hi = self.rows
        G = np.zeros(shape, dtype=grad_out.dtype)
        G[lo:hi] = grad_out
        G = self.act1.backward(self.drop1.backward(self.conv2.backward(G)))
        self.input.backward(self.conv1.backward(G))
        return None


def _features(x, dtype):
    """Features in ``dtype``: a scipy.sparse matrix stays sparse (CSR), a dense one becomes a C-contiguous array."""
    import scipy.sparse as sp
    if sp.issparse(x):
        return sp.csr_matrix(x, dtype=dtype)
    return np.ascontiguousarray(x, dtype=dtype)


class HeteroEmbeddingMethod:
    """Base of the hetero task's methods that learn without labels: ``embed(data, seed, **options)`` returns
    (Z (N_target, d) float32 for the target type's nodes, a dict of what was measured). The task probes Z."""

    hetero = True
    unsupervised = True
    devices = ("cpu",)
    train_defaults = {}

    def __init__(self, **options):
        raise TypeError(f"{type(self).__name__} is a procedure: call {type(self).__name__}.embed(data, seed, ...)")


def metapath_type_codes(graph, edge_types):
    """A metapath given as a chain of edge types -> its node-type codes in ``graph.to_homogeneous()`` numbering."""
    order = list(graph.node_types)
    return [order.index(edge_types[0][0])] + [order.index(et[2]) for et in edge_types]


@register
class MetaPath2VecMethod(HeteroEmbeddingMethod):
    """metapath2vec (Dong et al. 2017): walks that follow the dataset's metapaths, then skip-gram (++: typed negatives).

    Walks from every node of the target type along each of the dataset's metapaths in turn (ACM: PAP,
    PSP; DBLP: APA, APCPA, APTPA), repeated cyclically to length 100, 10 per node per metapath; then
    skip-gram with 5 negatives, window 7, d = 128, one epoch (``embed.metapath2vec.MetaPath2Vec``; the
    paper's 1000 walks per node cost 100x). ``plus_plus``: negatives drawn within the context node's
    type (metapath2vec++). The skip-gram runs on one thread in walk order: the same seed gives the same bits.
    """

    name = "metapath2vec"
    model_defaults = dict(plus_plus=False)
    WALKS = dict(dim=128, walk_length=100, num_walks=10, window=7, negatives=5, epochs=1, lr=0.025)

    def __init__(self, plus_plus=False):
        super().__init__()

    @classmethod
    def embed(cls, data, seed=0, plus_plus=False):
        from ..embed.metapath2vec import MetaPath2Vec
        g = data.graph
        h = g.to_homogeneous()
        paths = [metapath_type_codes(g, p) for p in data.metapaths.values()]
        m = MetaPath2Vec(paths, plus_plus=plus_plus, seed=seed, deterministic=True, num_types=len(g.node_types),
                         **cls.WALKS).fit(h.graph, h.node_type)
        lo = h.node_offset[data.target]
        Z = np.ascontiguousarray(m.embedding[lo:lo + g.num_nodes[data.target]], dtype=np.float32)
        return Z, dict(dead_starts=int(sum(m.dead_starts.values())))


@register
class HetGNNMethod(HeteroEmbeddingMethod):
    """HetGNN (Zhang et al. 2019): RWR neighbours per type, Bi-LSTM content and neighbour encoders, type attention.

    Content pieces (``embed.hetgnn.content_pieces``, computed once per graph with seed 0 and kept on
    it): each type's features reduced to 64 columns by truncated SVD (DBLP's dense term vectors as
    they are) and a 64-d DeepWalk vector of every node. Then, per seed, ``embed.hetgnn.train_hetgnn``:
    10 neighbours per type from random walks with restart (p = 0.5, 100 moves), d = 64, 2 epochs of
    40,000 graph-context triples (walks of 20, window 2), mini-batches of 256, Adam lr 0.002. Same
    seed, same bits. The simplifications against the paper are listed in ``embed/hetgnn.py``.
    """

    name = "hetgnn"
    model_defaults = {}
    SETTINGS = dict(dim=64, num_neighbours=10, restart=0.5, rwr_length=100, num_walks=1, walk_length=20, window=2,
                    triples_per_epoch=40_000, epochs=2, batch_size=256, lr=2e-3)

    def __init__(self):
        super().__init__()

    @classmethod
    def embed(cls, data, seed=0):
        from ..embed.hetgnn import content_pieces, train_hetgnn
        g = data.graph
        h = g.to_homogeneous()
        pieces = g.cached(("hetgnn content pieces", 64, 0), lambda: content_pieces(
            h.graph, h.node_type, [g.x_dict.get(t) for t in g.node_types], piece_dim=64, seed=0))
        res = train_hetgnn(h.graph, h.node_type, pieces, seed=seed, **cls.SETTINGS)
        lo = h.node_offset[data.target]
        Z = np.ascontiguousarray(res.embedding[lo:lo + g.num_nodes[data.target]], dtype=np.float32)
        return Z, dict(final_loss=float(res.losses[-1]))
