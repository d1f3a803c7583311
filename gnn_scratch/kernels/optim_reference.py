"""SGD and Adam updates in plain NumPy, in place (derivations/optimizers.md): the readable truth.

Contract of the family (shared by ``optim_cpu`` and ``optim_cuda``): p, grad and the state arrays
(v; m, v) have one shape and one float dtype; the update is in place. Weight decay is the L2
penalty (w/2)||p||^2 folded into the gradient, d = g + w p, as torch.optim does (not AdamW).
"""
import numpy as np


def sgd_update(p, grad, v, lr, momentum=0.0, weight_decay=0.0):
    """d = g + w p;  v <- mu v + d, d = v (when mu != 0);  p <- p - lr d.  v unused (may be p) when mu = 0."""
    d = grad + weight_decay * p if weight_decay else grad
    if momentum:
        v *= momentum
        v += d
        d = v
    p -= (lr * d).astype(p.dtype, copy=False)


def adam_update(p, grad, m, v, t, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Adam (Kingma & Ba), step t >= 1: m <- b1 m + (1-b1) d;  v <- b2 v + (1-b2) d^2;
    p <- p - [lr / (1 - b1^t)] m / (sqrt(v / (1 - b2^t)) + eps)."""
    if t < 1:
        raise ValueError(f"the step number t counts from 1, got {t}")
    d = grad + weight_decay * p if weight_decay else grad
    b1, b2 = betas
    m *= b1
    m += (1 - b1) * d
    v *= b2
    v += (1 - b2) * d * d
    step = lr / (1 - b1 ** t)
    p -= (step * m / (np.sqrt(v / (1 - b2 ** t)) + eps)).astype(p.dtype, copy=False)
