"""Gradient-check cases of the fixed-point GNN (derivations/fixed_point_gnn.md), in float64.

The map checked is the *converged* one: labels and weights -> the state fixed point x* -> the outputs,
solved to tol = 1e-12 so that the finite differences see the fixed point and not the stopping rule.
The Almeida–Pineda gradient (the adjoint solved to the same tolerance) must match central differences
of L = Σ G ⊙ o for every parameter and the input labels; with the contraction penalty, of
L = Σ G ⊙ o + β p(x*, w) in training mode; and the BPTT gradient of the T-step unrolled model must
match the differences of that T-step map.
"""
import numpy as np

from ..nn.fixed_point import FixedPointGNN
from . import check_module, compare_rows, random_test_graph, roundoff_floor
from .registry import case

F64 = np.float64
TOL = 1e-12   # the fixed-point tolerance of every check: far below the 1e-6 finite-difference step

# (label, constructor arguments): both transitions, both aggregations, both norms of the linear form
VARIANTS = (
    ("nonlinear sum", dict(transition="nonlinear", aggr="sum")),
    ("nonlinear mean", dict(transition="nonlinear", aggr="mean")),
    ("linear inf-norm", dict(transition="linear", contraction_norm="inf", mu=0.8)),
    ("linear 1-norm", dict(transition="linear", contraction_norm="1", mu=0.8)),
)


def make_model(seed=3, state_dim=3, label_dim=3, out_channels=2, bias_seed=7, **kwargs):
    """A small float64 FixedPointGNN (s = 3, q = r = 4) with its biases drawn from U(-0.5, 0.5) (not 0)."""
    model = FixedPointGNN(label_dim, out_channels, state_dim=state_dim, hidden_channels=4, output_hidden=4,
                          tol=kwargs.pop("tol", TOL), seed=seed, dtype=F64, **kwargs)
    rng = np.random.default_rng(bias_seed)
    for _, p, _ in model.named_parameters():
        if p.ndim == 1:
            p[:] = rng.uniform(-0.5, 0.5, p.shape)
    return model


def fixture(seed=0):
    """The fixture graph (8 nodes: an isolated node, a self-loop, a repeated edge) and standard-normal labels (8, 3)."""
    g = random_test_graph(seed)
    return g, np.random.default_rng(seed + 1).standard_normal((g.num_nodes, 3))


def with_penalty(model, mu=0.3, weight=0.7, state_gain=2.0):
    """The model with a low penalty threshold and W_x scaled by ``state_gain``: some rows (or columns) of
    ∂F/∂x exceed mu, so the penalty and its gradient are not zero, while F stays a contraction."""
    model.mu, model.penalty_weight = mu, weight
    model.transition.params["W_x"] *= state_gain
    return model


def check_with_penalty(name, model, x, graph, seed=0, eps=1e-6, tol=1e-6):
    """Rows for every parameter and the labels through L = Σ G ⊙ model(x) + β p(x*, w) (training mode)."""
    model.train()
    G = np.random.default_rng(seed).standard_normal(model.forward(x, graph).shape)

    def loss():
        out = model.forward(x, graph)
        return float(np.sum(G * out)) + model.last_penalty
    out = model.forward(x, graph)
    if model.last_penalty <= 0:
        raise RuntimeError(f"{name}: the penalty is zero here, so its gradient would go unchecked")
    floor = roundoff_floor(np.sum(np.abs(G * out)) + model.last_penalty, eps)
    model.zero_grad()
    grad_x = model.backward(G)
    return compare_rows(name, loss, model, grad_x, x, floor, eps, tol)


@case("FixedPointGNN Almeida-Pineda")
def almeida_pineda():
    g, x = fixture()
    rows = [row for label, kw in VARIANTS
            for row in check_module(f"FixedPointGNN AP [{label}]", make_model(**kw), x, g)]
    # dropout on the labels (its mask replayed): the same dropped labels feed F and g
    return rows + check_module("FixedPointGNN AP [nonlinear sum, label dropout 0.3]",
                               make_model(transition="nonlinear", dropout=0.3), x, g)


@case("FixedPointGNN penalty")
def penalty():
    g, x = fixture()
    rows = []
    for aggr, norm in (("sum", "inf"), ("mean", "1")):
        model = with_penalty(make_model(transition="nonlinear", aggr=aggr, contraction_norm=norm))
        rows += check_with_penalty(f"FixedPointGNN penalty [{aggr}, {norm}-norm]", model, x, g)
    return rows


@case("FixedPointGNN BPTT")
def backprop_through_time():
    g, x = fixture()
    return [row for label, kw in VARIANTS[::2]
            for row in check_module(f"FixedPointGNN BPTT T=6 [{label}]", make_model(unroll_steps=6, **kw), x, g)]
