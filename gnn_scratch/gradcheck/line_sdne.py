"""Gradient checks of LINE's negative-sampling loss (derivations/line.md) and of SDNE's objective
(derivations/sdne.md), in float64 with central differences, on the fixture graph (an isolated node,
a self-loop, a repeated edge: the repeated edge is an adjacency weight 2 for SDNE and a sample drawn
twice for LINE)."""
import numpy as np

from ..embed.line import line_loss_and_grads
from ..embed.sdne import SDNE, adjacency_rows
from . import Row, numerical_gradient, random_test_graph, relative_error, roundoff_floor
from .registry import case

F64 = np.float64


def _line_samples(seed, num_negatives=3):
    """Every edge of the fixture graph as a sample (source -> target), plus negatives with repeats and hits
    on the sample's own source / target (the kernel does not avoid them, so neither does the loss)."""
    g = random_test_graph(seed)
    ei = g.edge_index()
    rng = np.random.default_rng(seed)
    neg = rng.integers(0, g.num_nodes, (ei.shape[1], num_negatives))
    neg[0, 0] = ei[0, 0]                 # a negative equal to the source
    neg[1, :2] = ei[1, 1]                # twice the positive target
    return g.num_nodes, ei[0], ei[1], neg


def line_rows():
    rows = []
    for order in (1, 2):
        N, u, v, neg = _line_samples(order)
        rng = np.random.default_rng(10 + order)
        emb = 0.7 * rng.standard_normal((N, 5))
        ctx = 0.7 * rng.standard_normal((N, 5)) if order == 2 else None
        loss = lambda: line_loss_and_grads(emb, ctx, u, v, neg)[0]          # noqa: E731
        L, dE, dC = line_loss_and_grads(emb, ctx, u, v, neg)
        floor = roundoff_floor(L)              # S = |L|: a sum of non-negative -log σ terms
        name = f"LINE order {order} (negative sampling)"
        for pname, p, g in (("emb", emb, dE), ("ctx", ctx, dC)):
            if p is None:
                continue
            err = relative_error(g, numerical_gradient(loss, p), floor)
            rows.append(Row(name, pname, p.shape, err, err < 1e-6))
    return rows


def sdne_rows():
    """Two hidden layers (every encoder and decoder W and b), a batch holding the isolated node, the
    self-loop's node and both ends of the repeated edge; the fixture graph is directed, so S_B is not
    symmetric and the general first-order gradient (D_r + D_c) Y - (S_B + S_Bᵀ) Y is the one checked."""
    g = random_test_graph(3)
    S = adjacency_rows(g, F64).toarray()
    idx = np.array([0, 1, 2, 4, 6, 7])          # 7 is isolated, 0 has the self-loop, 1 -> 2 twice
    X, S_B = S[idx], S[idx][:, idx]
    rows = []
    for tag, kw in (("", dict(alpha=0.3, beta=4.0, nu=0.05)), (" alpha=0 nu=0", dict(alpha=0.0, beta=2.5, nu=0.0))):
        model = SDNE(g.num_nodes, hidden=(5, 3), seed=7, dtype=F64, **kw)
        loss = lambda: model.loss(X, S_B)[0]                                      # noqa: E731
        model.zero_grad()
        L = loss()
        model.backward_loss()
        floor = roundoff_floor(L)                # S = |L|: every term is non-negative
        for pname, p, grad in model.named_parameters():
            err = relative_error(grad, numerical_gradient(loss, p), floor)
            rows.append(Row(f"SDNE{tag}", pname, p.shape, err, err < 1e-6))
    return rows


@case("LINE first and second order")
def line_case():
    return line_rows()


@case("SDNE autoencoder + first-order + L2")
def sdne_case():
    return sdne_rows()
