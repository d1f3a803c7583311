"""Optimiser updates in place: one call per parameter, dispatched like every other op (derivations/optimizers.md)."""
from ..device import zeros_like
from ..kernels.registry import run


def sgd_update(p, grad, state, lr, momentum=0.0, weight_decay=0.0):
    """One SGD step on ``p`` in place; ``state`` holds the velocity "v", created beside p on first use."""
    if momentum and "v" not in state:
        state["v"] = zeros_like(p)
    run("sgd_update", p.size, p, grad, state.get("v", p), lr, momentum, weight_decay)
    return p


def adam_update(p, grad, state, t, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One Adam step on ``p`` in place (t = step number from 1); ``state`` holds "m" and "v", created on first use."""
    if "m" not in state:
        state["m"], state["v"] = zeros_like(p), zeros_like(p)
    run("adam_update", p.size, p, grad, state["m"], state["v"], t, lr, betas, eps, weight_decay)
    return p
