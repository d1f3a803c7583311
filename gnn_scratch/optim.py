"""Optimisers updating parameters in place: SGD with momentum, Adam (derivations/optimizers.md).

Parameters come as (param, grad) array pairs, or as groups ``{"params": [...], "weight_decay": w,
"lr": ...}`` so that L2 weight decay can differ per group (Kipf & Welling decay only the first
layer). Weight decay is the L2 penalty (w/2)||theta||^2 added to the loss, i.e. g <- g + w theta,
before the update rule -- as in torch.optim.Adam, not AdamW's decoupled decay. The update maths
is written once, as ops (``ops.sgd_update``, ``ops.adam_update``): NumPy / Numba on the host, one
fused kernel per parameter on the GPU, with the state created beside each parameter.
"""
import numpy as np

from . import ops
from .nn.checks import finite_real
from .nn.flat import flat_span


def _check_hyper(g, where):
    """Check the hyper-parameters of group ``g`` (values kept as given): lr, weight_decay, eps and momentum finite
    and >= 0, betas two finite numbers in [0, 1) (torch.optim's ranges). TypeError / ValueError naming the one
    at fault: a NaN or negative rate would otherwise turn every weight into NaN at the first step, silently."""
    def real(name, v):          # a 0-d array (torch takes a tensor lr) is read as its number
        return finite_real(name, v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v)
    for k in ("lr", "weight_decay", "eps", "momentum"):
        if k in g and real(k + where, g[k]) < 0:
            raise ValueError(f"{k}{where} must be >= 0, got {g[k]!r}")
    if "betas" in g:
        b = g["betas"]
        if isinstance(b, (str, bytes)) or not hasattr(b, "__len__") or len(b) != 2:
            raise TypeError(f"betas{where} must be a pair (beta1, beta2), got {b!r}")
        if not all(0.0 <= real(f"betas[{i}]{where}", v) < 1.0 for i, v in enumerate(b)):
            raise ValueError(f"betas{where} must both be in [0, 1), got {b!r}")


class Optimizer:
    """Shared handling of parameter groups and hyper-parameter defaults.

    Errors: ValueError for no parameters; TypeError / ValueError for a hyper-parameter out of its range
    (``_check_hyper``), naming it and its group."""

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
            _check_hyper(g, f" (parameter group {len(self.groups)})" if len(groups) > 1 else "")
            self.groups.append(g)
        self.state = {}  # id(param) -> per-parameter buffers (a flat group's are in self._flat, one set per group)
        self.t = 0
        # A group whose parameters tile one flat buffer, and whose gradients another
        # (``nn.flat.flatten_parameters``), is updated and zeroed in one call on the two buffers: the
        # updates are element-wise, so the bits are the per-parameter ones. (flat params, flat grads,
        # state) per group, or None.
        self._flat = []
        for g in self.groups:
            pairs = g["params"]
            span = (flat_span([p for p, _ in pairs]), flat_span([gr for _, gr in pairs])) if pairs else (None, None)
            self._flat.append(None if span[0] is None or span[1] is None else (span[0], span[1], {}))

    def zero_grad(self):
        for g, flat in zip(self.groups, self._flat):
            if flat is not None:
                ops.zero_(flat[1])
                continue
            for _, grad in g["params"]:
                ops.zero_(grad)

    def step(self):
        self.t += 1
        for g, flat in zip(self.groups, self._flat):
            if flat is not None:
                self._update(flat[0], flat[1], g, flat[2])
                continue
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


# --------------------------------------------------------------------------- row-sparse optimisers
class SparseSGD(Optimizer):
    """SGD on row-sparse gradients (``nn.embedding.SparseRowGrad``): theta[r] <- theta[r] - lr_t g[r] for the
    touched rows r only, with word2vec's linear learning-rate decay.

    lr_t = lr * max(1 - progress, min_lr_ratio), progress = t / total_steps (t = steps taken before
    this one), or the ``progress`` given to ``step`` (word2vec: words processed / words to process);
    min_lr_ratio = 1e-4 is word2vec.c's floor. total_steps None and no progress: constant lr.
    ``zero_grad`` clears the gradients. Raises ValueError for a negative lr or a total_steps < 1.
    """

    def __init__(self, params, lr=0.025, total_steps=None, min_lr_ratio=1e-4):
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1 or None, got {total_steps}")
        super().__init__(params, dict(lr=lr, weight_decay=0.0))
        self.total_steps, self.min_lr_ratio = total_steps, float(min_lr_ratio)

    def current_lr(self, lr, progress=None):
        if progress is None:
            if self.total_steps is None:
                return lr
            progress = self.t / self.total_steps
        return lr * max(1.0 - progress, self.min_lr_ratio)

    def zero_grad(self):
        for g in self.groups:
            for _, grad in g["params"]:
                grad.clear()

    def step(self, progress=None):
        for g in self.groups:
            lr = self.current_lr(g["lr"], progress)
            for p, grad in g["params"]:
                rows, values = grad.coalesce()
                p[rows] -= lr * values
        self.t += 1


class SparseAdam(Optimizer):
    """PyTorch's ``SparseAdam``: Adam whose moments and parameters change only on the touched rows ("lazy" Adam).

    For each touched row r (g = the coalesced gradient row, t = the step number from 1):
        m[r] <- b1 m[r] + (1 - b1) g;   v[r] <- b2 v[r] + (1 - b2) g^2
        theta[r] <- theta[r] - lr sqrt(1 - b2^t) / (1 - b1^t) * m[r] / (sqrt(v[r]) + eps)
    Rows not touched keep their parameters *and* their moments (no decay of m, v between touches).
    With eps = 0 this is Adam's lr m_hat / sqrt(v_hat) on those rows; torch places eps outside the
    bias correction (m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t))), and so do we. t counts every
    ``step`` (torch counts the steps a parameter had a gradient: the same when each step has one).
    """

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=0.0))

    def zero_grad(self):
        for g in self.groups:
            for _, grad in g["params"]:
                grad.clear()

    def _update(self, p, grad, g, s):
        if "m" not in s:
            s["m"], s["v"] = np.zeros_like(p), np.zeros_like(p)
        rows, values = grad.coalesce()
        b1, b2 = g["betas"]
        m = b1 * s["m"][rows] + (1 - b1) * values
        v = b2 * s["v"][rows] + (1 - b2) * values * values
        s["m"][rows], s["v"][rows] = m, v
        step_size = g["lr"] * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        p[rows] -= step_size * (m / (np.sqrt(v) + g["eps"]))
