"""Check hand-written gradients against central finite differences in float64.

For a scalar loss L(theta) and each entry k of a parameter or input theta,

    g_fd[k] = (L(theta + eps e_k) - L(theta - eps e_k)) / (2 eps),

and the check reports the relative error  max_k |g[k] - g_fd[k]| / max(max_k (|g[k]| + |g_fd[k]|), floor / tol),
which passes below ``tol``. ``floor`` is the absolute resolution of the central difference, set by
rounding in L: ``roundoff_floor(S, eps) = FLOOR_FACTOR * u * S / eps`` with u the float64 machine
epsilon and S the magnitude of L's terms (sum |G * out| for a layer, |L| for a loss). A gradient far
below that resolution (a correct zero, seen as +-1e-17 against a difference of exactly 0) is judged by
its absolute error; any gradient the differences can resolve is judged relatively, as before
(derivations/README.md, "How every rule is checked").
A layer is checked through L = sum(G * layer(x)) with a *random* upstream gradient G (an all-ones G
hides transposition mistakes); a model through its real loss. Dropout masks are replayed: every
module's random generator is restored before each evaluation, so L is a deterministic function.

``python -m gnn_scratch gradcheck`` (``gnn-scratch gradcheck``) runs the registered cases of
``gnn_scratch.gradcheck.cases`` and prints a table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import Graph

TINY = 1e-30
DEFAULT_EPS = 1e-6
DEFAULT_TOL = 1e-6
EPS_MACH = float(np.finfo(np.float64).eps)   # u = 2.2e-16: the spacing of float64 numbers near 1
FLOOR_FACTOR = 10.0   # head-room over u * S / eps for the rounding inside the forward (derivations/README.md)


@dataclass
class Row:
    """One line of the table: which case, which tensor, its shape, the error, and the verdict."""
    case: str
    parameter: str
    shape: tuple
    error: float
    passed: bool


def roundoff_floor(scale, eps=DEFAULT_EPS):
    """The absolute resolution of a central difference with step ``eps`` of a loss whose terms sum to ``scale``.

    Each evaluation of L carries a rounding error of about u * scale (u = float64 epsilon), so
    (L(+) - L(-)) / (2 eps) carries about u * scale / eps: differences below that are noise.
    Returns FLOOR_FACTOR * u * scale / eps (derivations/README.md).
    """
    return FLOOR_FACTOR * EPS_MACH * abs(float(scale)) / eps


def relative_error(g, g_fd, floor=0.0, tol=DEFAULT_TOL):
    """max |g - g_fd| / max(max(|g| + |g_fd|), floor / tol, tiny): 0 for a perfect match, ~1 for unrelated arrays.

    With ``floor`` (``roundoff_floor``), the error is below ``tol`` exactly when the absolute error is
    below ``floor`` or the relative error is below ``tol``: a gradient too small for central
    differences to resolve is judged by its absolute error.
    """
    g, g_fd = np.asarray(g, dtype=np.float64), np.asarray(g_fd, dtype=np.float64)
    if g.shape != g_fd.shape:
        raise ValueError(f"gradient shapes differ: analytic {g.shape}, numerical {g_fd.shape}")
    if g.size == 0:
        return 0.0
    return float(np.max(np.abs(g - g_fd)) / max(float(np.max(np.abs(g) + np.abs(g_fd))), floor / tol, TINY))


def numerical_gradient(loss, theta, eps=DEFAULT_EPS):
    """Central differences of ``loss()`` w.r.t. every entry of ``theta``, perturbed in place and restored."""
    if theta.dtype != np.float64:
        raise TypeError(f"finite differences need float64 to be meaningful, got {theta.dtype}")
    grad = np.zeros_like(theta)
    flat, gflat = theta.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        up = loss()
        flat[k] = old - eps
        down = loss()
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return grad


def _rng_states(module):
    return [(m, m.rng.bit_generator.state) for _, m in module.modules() if isinstance(getattr(m, "rng", None),
                                                                                     np.random.Generator)]


def _replaying(module, fn):
    """``fn`` wrapped so that every random generator in ``module`` restarts from its current state."""
    states = _rng_states(module)

    def run():
        for m, s in states:
            m.rng.bit_generator.state = s
        return fn()
    return run


def compare_rows(name, loss, model, grad_x, x, floor, eps=DEFAULT_EPS, tol=DEFAULT_TOL, check_input=True):
    """One row per parameter of ``model`` (and, with ``check_input``, for x): the analytic gradients
    already in ``model.grads`` / ``grad_x`` against central differences of ``loss()``."""
    rows = []
    for pname, p, g in model.named_parameters():
        err = relative_error(g, numerical_gradient(loss, p, eps), floor, tol)
        rows.append(Row(name, pname, p.shape, err, err < tol))
    if check_input:
        err = relative_error(grad_x, numerical_gradient(loss, x, eps), floor, tol)
        rows.append(Row(name, "input", x.shape, err, err < tol))
    return rows


def check_module(name, module, x, graph=None, seed=0, eps=DEFAULT_EPS, tol=DEFAULT_TOL, check_input=True):
    """Rows for every parameter of ``module`` (and its input) through L = sum(G * module(x, graph))."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal(module.forward(x, graph).shape)
    output = _replaying(module, lambda: module.forward(x, graph))
    loss = lambda: float(np.sum(G * output()))                                  # noqa: E731
    floor = roundoff_floor(np.sum(np.abs(G * output())), eps)                  # S = sum |G * out|
    module.zero_grad()
    grad_x = module.backward(G)
    return compare_rows(name, loss, module, grad_x, x, floor, eps, tol, check_input)


def check_model_loss(name, model, loss_fn, x, graph, y, mask, eps=DEFAULT_EPS, tol=DEFAULT_TOL):
    """Rows for every parameter of ``model`` and its input through the real loss L = loss_fn(model(x), y, mask)."""
    loss = _replaying(model, lambda: loss_fn.forward(model.forward(x, graph), y, mask))
    floor = roundoff_floor(loss(), eps)            # S = |L|: a mean of non-negative cross-entropies
    model.zero_grad()
    grad_x = model.backward(loss_fn.backward())
    return compare_rows(name, loss, model, grad_x, x, floor, eps, tol)


def check_function(name, forward, backward, inputs, seed=0, eps=DEFAULT_EPS, tol=DEFAULT_TOL):
    """Rows for a pure function: ``forward(**inputs) -> out``, ``backward(G, **inputs) -> {input name: grad}``.

    Only the inputs named in the dict ``backward`` returns are checked.
    """
    rng = np.random.default_rng(seed)
    G = rng.standard_normal(np.shape(forward(**inputs)))
    floor = roundoff_floor(np.sum(np.abs(G * forward(**inputs))), eps)   # S = sum |G * out|
    grads = backward(G, **inputs)
    rows = []
    for key, g in grads.items():
        err = relative_error(g, numerical_gradient(lambda: float(np.sum(G * forward(**inputs))), inputs[key], eps),
                             floor, tol)
        rows.append(Row(name, key, inputs[key].shape, err, err < tol))
    return rows


def random_test_graph(seed=0, num_nodes=8, num_edges=20, num_src=None):
    """A small random graph with an isolated node, a self-loop and a repeated edge -- the fixture of every check.

    Node ``num_nodes - 1`` has no edges at all; edge 0 -> 0 is a self-loop; edge 1 -> 2 appears twice.
    With ``num_src`` the graph is bipartite (N_dst = num_nodes destinations, num_src sources).
    """
    rng = np.random.default_rng(seed)
    n_src = num_nodes if num_src is None else num_src
    src = rng.integers(0, n_src - 1, num_edges)
    dst = rng.integers(0, num_nodes - 1, num_edges)
    src = np.concatenate([src, [0, 1, 1]])
    dst = np.concatenate([dst, [0, 2, 2]])
    if num_src is None:
        return Graph.from_edge_index(np.stack([src, dst]), num_nodes=num_nodes)
    order = np.argsort(dst, kind="stable")
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst, minlength=num_nodes), out=indptr[1:])
    return Graph.from_csr(indptr, src[order], num_src=n_src)


def format_table(rows):
    """The rows as an aligned text table with a PASS/FAIL column."""
    head = ("case", "parameter", "shape", "max rel err", "result")
    body = [(r.case, r.parameter, "x".join(map(str, r.shape)), f"{r.error:.2e}", "pass" if r.passed else "FAIL")
            for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])
