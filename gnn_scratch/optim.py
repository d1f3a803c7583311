"""Optimisers updating parameters in place: SGD with momentum, Adam (derivations/optimizers.md).

Parameters come as (param, grad) array pairs, or as groups ``{"params": [...], "weight_decay": w,
"lr": ...}`` so that L2 weight decay can differ per group (Kipf & Welling decay only the first
layer). Weight decay is the L2 penalty (w/2)||theta||^2 added to the loss, i.e. g <- g + w theta,
before the update rule -- as in torch.optim.Adam, not AdamW's decoupled decay. The update maths
is written once, as ops (``ops.sgd_update``, ``ops.adam_update``): NumPy / Numba on the host, one
fused kernel per parameter on the GPU, with the state created beside each parameter.
"""
from . import ops


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
                ops.zero_(grad)

    def step(self):
        self.t += 1
        for g in self.groups:
            for p, grad in g["params"]:
                self._update(p, grad, g, self.state.setdefault(id(p), {}))


class SGD(Optimizer):
    """v <- mu v + g;  theta <- theta - lr v  (momentum mu; plain SGD when mu = 0)."""

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _update(self, p, grad, g, s):
        ops.sgd_update(p, grad, s, g["lr"], g["momentum"], g["weight_decay"])


class Adam(Optimizer):
    """Adam (Kingma & Ba): m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    theta <- theta - lr * m_hat / (sqrt(v_hat) + eps) with bias corrections m_hat = m/(1-b1^t), v_hat = v/(1-b2^t).
    """

    def __init__(self, params, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _update(self, p, grad, g, s):
        ops.adam_update(p, grad, s, self.t, g["lr"], g["betas"], g["eps"], g["weight_decay"])
