"""Gradient-check cases of the over-smoothing remedies (derivations/pair_norm.md, derivations/gcn2_conv.md):
PairNorm (both scalings), GCN2Conv (shared / separate weights, beta from theta and layer or 1, normalised or
weighted-raw propagation; both inputs x and x_0), and the deep models end to end through the loss with every
remedy switched on (residual, PairNorm, DropEdge, dropout replayed), in float64."""
import numpy as np

from ..graph import Graph
from ..models.deep import GCNII, DeepGAT, DeepGCN, DeepSAGE
from ..nn import SoftmaxCrossEntropy
from ..nn.conv.gcn2_conv import GCN2Conv
from ..nn.pair_norm import PairNorm
from . import (DEFAULT_EPS, DEFAULT_TOL, Row, check_model_loss, check_module, compare_rows, numerical_gradient,
               random_test_graph, relative_error, roundoff_floor)
from .registry import case

F64 = np.float64


def _x(seed, n, f):
    return np.random.default_rng(seed).standard_normal((n, f))


def weighted(g, seed):
    """``g`` with edge weights from U(0.5, 2), in CSR order."""
    w = np.random.default_rng(seed).uniform(0.5, 2.0, g.num_edges)
    return Graph.from_csr(g.indptr, g.indices, w, num_src=g.num_src)


def check_two_inputs(name, conv, x, x_0, graph, seed=0, eps=DEFAULT_EPS, tol=DEFAULT_TOL):
    """Rows for every parameter of ``conv`` and both inputs through L = sum(G * conv(x, x_0, graph))."""
    G = np.random.default_rng(seed).standard_normal(conv.forward(x, x_0, graph).shape)
    loss = lambda: float(np.sum(G * conv.forward(x, x_0, graph)))           # noqa: E731
    floor = roundoff_floor(np.sum(np.abs(G * conv.forward(x, x_0, graph))), eps)
    conv.zero_grad()
    conv.forward(x, x_0, graph)
    dx, dx_0 = conv.backward(G)
    rows = compare_rows(name, loss, conv, dx, x, floor, eps, tol)
    err = relative_error(dx_0, numerical_gradient(loss, x_0, eps), floor, tol)
    return rows + [Row(name, "input x_0", x_0.shape, err, err < tol)]


@case("PairNorm")
def pair_norm():
    g = random_test_graph(0)
    rows = []
    for si in (False, True):
        for scale in (1.0, 1.7):
            rows += check_module(f"PairNorm scale={scale} scale_individually={si}",
                                 PairNorm(scale=scale, scale_individually=si), _x(1, g.num_nodes, 3), g)
    return rows


@case("GCN2Conv")
def gcn2_conv():
    g = random_test_graph(2)
    rows = []
    for shared in (True, False):
        for theta, layer in ((None, None), (0.5, 3)):
            for label, graph, normalize in (("normalised", g, True), ("raw weighted", weighted(g, 3), False)):
                conv = GCN2Conv(4, alpha=0.2, theta=theta, layer=layer, shared_weights=shared, normalize=normalize,
                                seed=5, dtype=F64)
                rows += check_two_inputs(f"GCN2Conv shared={shared} theta={theta} layer={layer} [{label}]", conv,
                                         _x(6, 8, 4), _x(7, 8, 4), graph)
    return rows


def _labels(g, seed):
    rng = np.random.default_rng(seed)
    y, mask = rng.integers(0, 3, g.num_nodes), rng.random(g.num_nodes) < 0.7
    mask[0] = True
    return y, mask


@case("Deep models + remedies + loss")
def deep_models():
    g = random_test_graph(4)
    y, mask = _labels(g, 5)
    x = _x(6, g.num_nodes, 5)
    flags = dict(residual=True, pairnorm=True, dropedge=0.3, dropout=0.2, num_layers=3, seed=7, dtype="float64")
    models = (("deep_gcn residual+pairnorm+dropedge", DeepGCN(5, 3, hidden_channels=4, **flags)),
              ("deep_sage residual+pairnorm+dropedge", DeepSAGE(5, 3, hidden_channels=4, **flags)),
              ("deep_gat residual+pairnorm+dropedge", DeepGAT(5, 3, hidden_channels=2, heads=2, **flags)),
              ("gcnii shared, dropedge", GCNII(5, 3, hidden_channels=4, num_layers=3, dropout=0.2, dropedge=0.3,
                                               seed=8, dtype="float64")),
              ("gcnii separate weights", GCNII(5, 3, hidden_channels=4, num_layers=2, dropout=0.2,
                                               shared_weights=False, seed=9, dtype="float64")))
    rows = []
    for name, model in models:
        rows += check_model_loss(f"{name} + loss (train mode)", model.train(), SoftmaxCrossEntropy(), x, g, y, mask)
    return rows
