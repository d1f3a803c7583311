"""Gradient-check cases of Deep Graph Infomax (derivations/dgi.md): PReLU, the bilinear discriminator, binary
cross-entropy with logits, and the whole DGI loss w.r.t. every parameter and the input, in float64."""
import numpy as np

from ..embed.dgi import DGI
from ..nn.activations import PReLU
from ..nn.bce import BCEWithLogitsLoss
from ..nn.bilinear import Bilinear
from . import Row, check_function, check_module, compare_rows, numerical_gradient, random_test_graph, \
    relative_error, roundoff_floor
from .registry import case

F64 = np.float64


def _x(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


@case("PReLU")
def prelu():
    rows = []
    for C, label in ((1, "one shared slope"), (4, "one slope per channel")):
        layer = PReLU(C, dtype=F64)
        layer.params["a"][:] = np.random.default_rng(C).uniform(-0.5, 0.9, C)   # a negative slope too
        rows += check_module(f"PReLU ({label})", layer, _x(1, 7, 4))
    return rows


def bilinear_rows(name, layer, x1, x2, seed=0):
    """Rows for W, b, x1 and x2 of a two-input layer through L = sum(G * layer(x1, x2))."""
    G = np.random.default_rng(seed).standard_normal(layer.forward(x1, x2).shape)
    loss = lambda: float(np.sum(G * layer.forward(x1, x2)))                       # noqa: E731
    floor = roundoff_floor(np.sum(np.abs(G * layer.forward(x1, x2))))
    layer.zero_grad()
    dx1, dx2 = layer.backward(G)
    rows = compare_rows(name, loss, layer, dx1, x1, floor)
    rows[-1].parameter = "x1"
    err = relative_error(dx2, numerical_gradient(loss, x2), floor)
    return rows + [Row(name, "x2", x2.shape, err, err < 1e-6)]


@case("Bilinear")
def bilinear():
    rows = []
    for O in (1, 3):
        layer = Bilinear(5, 4, O, seed=O, dtype=F64)
        layer.params["b"][:] = _x(2, O)
        rows += bilinear_rows(f"Bilinear 5x4->{O} (one summary vector)", layer, _x(3, 6, 5), _x(4, 4))
        rows += bilinear_rows(f"Bilinear 5x4->{O} (one x2 row per x1 row)", layer, _x(5, 6, 5), _x(6, 6, 4))
    return rows


@case("BCEWithLogitsLoss")
def bce_with_logits():
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((10, 1)) * 4
    Z[:3, 0] = [25.0, -30.0, 0.0]                      # far in the tails (the stable form) and at the kink of |z|
    Y = np.concatenate([np.ones((4, 1)), np.zeros((4, 1)), rng.random((2, 1))])   # labels and two probabilities

    def backward(G, Z):
        L = BCEWithLogitsLoss()
        L.forward(Z, Y)
        return {"Z": G * L.backward()}
    return check_function("BCEWithLogitsLoss", lambda Z: BCEWithLogitsLoss().forward(Z, Y), backward, {"Z": Z})


def dgi_loss_rows(name, model, x, graph, perm):
    """Rows for every parameter of a DGI model and its input, through the DGI loss itself."""
    loss = lambda: float(model.forward(x, graph, perm))                           # noqa: E731
    floor = roundoff_floor(loss())                   # S = |L|: a mean of non-negative cross-entropies
    model.zero_grad()
    model.forward(x, graph, perm)
    dx = model.backward()
    return compare_rows(name, loss, model, dx, x, floor)


def random_dgi(seed, in_channels=5, hidden=6):
    """A float64 DGI with every parameter away from its initial value (nonzero biases, a slope of its own)."""
    model = DGI(in_channels, hidden, seed=seed, dtype=F64)
    rng = np.random.default_rng(seed + 100)
    model.encoder.params["b"][:] = rng.uniform(-0.3, 0.3, hidden)
    model.act.params["a"][:] = 0.4
    model.discriminator.params["W"] *= 3                  # scores of order 1: sigma away from 1/2
    model.discriminator.params["b"][:] = 0.2
    return model


@case("DGI loss")
def dgi_loss():
    g = random_test_graph(4)                              # isolated node, self-loop, repeated edge
    perm = np.random.default_rng(5).permutation(g.num_nodes)
    rows = dgi_loss_rows("DGI loss", random_dgi(6), _x(8, g.num_nodes, 5), g, perm)
    weighted = type(g).from_edge_index(g.edge_index(), g.num_nodes,
                                       np.random.default_rng(9).uniform(0.5, 2.0, g.num_edges))
    rows += dgi_loss_rows("DGI loss [weighted graph]", random_dgi(7), _x(10, g.num_nodes, 5), weighted, perm)
    return rows
