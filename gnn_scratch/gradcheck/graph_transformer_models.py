"""Gradient-check cases of the inductive task's pieces (issue 17), float64, central differences: the class-weighted
cross-entropy (derivations/weighted_cross_entropy.md) and the three SBM node classifiers (``gt``, ``gps``,
``sbm_gcn``) through that loss, every parameter and the input [features | PE], in training mode (BatchNorm on
batch statistics, dropout replayed), on a GraphBatch of fixture graphs (isolated node, self-loop, repeated edge)."""
import numpy as np

from ..graph import GraphBatch
from ..models.transformer import GPS, SBMGCN, GraphTransformer
from ..nn.loss import WeightedSoftmaxCrossEntropy
from . import check_function, check_model_loss, random_test_graph
from .registry import case
from .transformer import _randomise_biases

F64 = np.float64


def _x(seed, n, f):
    return np.random.default_rng(seed).standard_normal((n, f))


def _labels(seed, n, C):
    """Labels with every class present and unequal counts (so "balanced" weights differ between classes)."""
    y = np.random.default_rng(seed).integers(0, C, n)
    y[:C] = np.arange(C)
    y[C:C + 3] = 0
    return y


def fixture_batch(seed=0):
    """Three fixture graphs (6, 4 and 8 nodes; isolated node, self-loop, repeated edge each) as one GraphBatch."""
    return GraphBatch.from_graphs([random_test_graph(seed + i, num_nodes=n) for i, n in enumerate((6, 4, 8))])


@case("WeightedSoftmaxCrossEntropy")
def weighted_cross_entropy():
    rows = []
    N, C = 12, 3
    Z, y = _x(1, N, C), _labels(2, N, C)
    mask = np.random.default_rng(3).random(N) < 0.7
    mask[:C] = True
    settings = [("balanced", None), ("balanced", mask), (np.array([0.2, 0.0, 1.3]), mask)]
    for weight, m in settings:
        def forward(Z, weight=weight, m=m):
            return WeightedSoftmaxCrossEntropy(weight).forward(Z, y, m)

        def backward(G, Z, weight=weight, m=m):
            L = WeightedSoftmaxCrossEntropy(weight)
            L.forward(Z, y, m)
            return {"Z": G * L.backward()}
        w = weight if isinstance(weight, str) else "[" + ", ".join(f"{v:g}" for v in weight) + "]"
        rows += check_function(f"WeightedSoftmaxCrossEntropy weight={w}{' masked' if m is not None else ''}",
                               forward, backward, {"Z": Z.copy()})
    return rows


def _model_rows(label, model, F, C, seed):
    gb = fixture_batch(seed)
    model.train()
    _randomise_biases(model, seed)
    x = _x(seed + 1, gb.num_nodes, F + model.pe_dim)
    return check_model_loss(label, model, WeightedSoftmaxCrossEntropy("balanced"), x, gb, _labels(seed + 2,
                                                                                                  gb.num_nodes, C),
                            None)


@case("GraphTransformer + weighted loss")
def graph_transformer_model():
    rows = []
    for k, (norm, pe, dropout) in enumerate([("batch_norm", "laplacian", 0.0), ("layer_norm", "rw", 0.2)]):
        m = GraphTransformer(3, 2, hidden_channels=8, num_layers=2, heads=2, dropout=dropout, norm=norm, pe=pe,
                             pe_dim=2, seed=10 + k, dtype="float64")
        rows += _model_rows(f"GraphTransformer norm={norm} pe={pe} dropout={dropout}", m, 3, 2, 20 + k)
    return rows


@case("GPS + weighted loss")
def gps_model():
    rows = []
    for k, (conv, attn_dropout, dropout) in enumerate([("gin", 0.0, 0.0), ("gcn", 0.3, 0.1), ("none", 0.0, 0.0)]):
        m = GPS(4, 3, hidden_channels=8, num_layers=2, heads=2, dropout=dropout, attn_dropout=attn_dropout,
                conv=conv, pe="laplacian", pe_dim=3, seed=30 + k, dtype="float64")
        rows += _model_rows(f"GPS conv={conv} attn_dropout={attn_dropout} dropout={dropout}", m, 4, 3, 40 + k)
    return rows


@case("SBMGCN + weighted loss")
def sbm_gcn_model():
    rows = []
    for k, (conv, pe, dropout) in enumerate([("mean", "none", 0.0), ("gcn", "laplacian", 0.2)]):
        m = SBMGCN(3, 2, hidden_channels=8, num_layers=3, dropout=dropout, conv=conv, pe=pe,
                   pe_dim=2 if pe != "none" else None, seed=50 + k, dtype="float64")
        rows += _model_rows(f"SBMGCN conv={conv} pe={pe} dropout={dropout}", m, 3, 2, 60 + k)
    return rows
