"""Optimisers updating parameters in place: SGD with momentum, Adam (derivations/optimizers.md).

Parameters come as (param, grad) array pairs, or as groups ``{"params": [...], "weight_decay": w,
"lr": ...}`` so that L2 weight decay can differ per group (Kipf & Welling decay only the first
layer). Weight decay is the L2 penalty (w/2)||theta||^2 added to the loss, i.e. g <- g + w theta,
before the update rule -- as in torch.optim.Adam, not AdamW's decoupled decay.
"""
import numpy as np

from . import dense
from .nn import elementwise as ew


class Optimizer:
    """Shared handling of parameter groups and hyper-parameter defaults."""

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError("the optimiser got no parameters")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.groups = []
        for grp in groups:
            g = dict(defaults)
            g.update(grp)
            g["params"] = list(g["params"])
            for k in ("lr", "weight_decay"):
                if g[k] < 0:
                    raise ValueError(f"{k} must be non-negative, got {g[k]}")
            self.groups.append(g)
        self.state = {}  # id(param) -> per-parameter buffers
        self.t = 0

    def zero_grad(self):
        for g in self.groups:
            for _, grad in g["params"]:
                dense.zero_(grad)

    def step(self):
        self.t += 1
        for g in self.groups:
            for p, grad in g["params"]:
                if dense.is_device(p):   # on the GPU: one fused kernel per parameter, state on the device
                    self._update_device(p, grad, g, self.state.setdefault(id(p), {}))
                    continue
                self._update_host(p, grad, g, self.state.setdefault(id(p), {}))

    def _update_host(self, p, grad, g, s):
        """The update of one host parameter: L2 decay folded into the gradient, then the rule."""
        d = grad + g["weight_decay"] * p if g["weight_decay"] else grad
        self._update(p, d, g, s)


class SGD(Optimizer):
    """v <- mu v + g;  theta <- theta - lr v  (momentum mu; plain SGD when mu = 0)."""

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _update(self, p, d, g, s):
        if g["momentum"]:
            v = s.setdefault("v", np.zeros_like(p))
            v *= g["momentum"]
            v += d
            d = v
        p -= (g["lr"] * d).astype(p.dtype, copy=False)

    def _update_device(self, p, grad, g, s):
        dense.sgd_update(p, grad, s, g["lr"], g["momentum"], g["weight_decay"])


class Adam(Optimizer):
    """Adam (Kingma & Ba): m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    theta <- theta - lr * m_hat / (sqrt(v_hat) + eps) with bias corrections m_hat = m/(1-b1^t), v_hat = v/(1-b2^t).
    """

    def __init__(self, params, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _update(self, p, d, g, s):
        b1, b2 = g["betas"]
        m = s.setdefault("m", np.zeros_like(p))
        v = s.setdefault("v", np.zeros_like(p))
        m *= b1
        m += (1 - b1) * d
        v *= b2
        v += (1 - b2) * d * d
        step = g["lr"] / (1 - b1 ** self.t)
        p -= (step * m / (np.sqrt(v / (1 - b2 ** self.t)) + g["eps"])).astype(p.dtype, copy=False)

    def _update_host(self, p, grad, g, s):
        """One fused pass (nn/elementwise.adam_update) over p, grad, m, v instead of ~12 NumPy passes."""
        if not (p.flags.c_contiguous and grad.flags.c_contiguous and p.dtype == grad.dtype
                and p.dtype in (np.float32, np.float64)):
            return super()._update_host(p, grad, g, s)
        b1, b2 = g["betas"]
        m = s.setdefault("m", np.zeros_like(p))
        v = s.setdefault("v", np.zeros_like(p))
        dt = p.dtype.type
        ew.adam_update(p.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), dt(g["weight_decay"]),
                       dt(b1), dt(b2), dt(g["lr"] / (1 - b1 ** self.t)), dt(1 - b2 ** self.t), dt(g["eps"]))

    def _update_device(self, p, grad, g, s):
        dense.adam_update(p, grad, s, self.t, g["lr"], g["betas"], g["eps"], g["weight_decay"])
