"""Batch normalisation over the rows of a node array (Ioffe & Szegedy, 2015), PyG's ``BatchNorm`` (derivations/batch_norm.md)."""
import numpy as np

from .. import ops
from ..device import copy_, issparse
from .checks import check_features, finite_real, float_dtype, positive_int
from .module import Module


class BatchNorm1d(Module):
    """y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta, per feature over the N rows of the batch.

    PyG's ``BatchNorm`` (a ``torch.nn.BatchNorm1d`` over all nodes of a mini-batch), same arguments
    and meaning; ``gamma`` / ``beta`` are torch's ``weight`` / ``bias`` (initialised to 1 / 0).
      * Training mode: E[x] and Var[x] are the batch's own (the variance biased, divided by N); the
        running statistics (buffers ``running_mean`` = 0, ``running_var`` = 1 at first) move towards
        them, ``running <- (1 - momentum) running + momentum batch`` with the *unbiased* variance
        (x N / (N - 1)), as torch does. ``momentum=None``: a cumulative average (momentum = 1 / t
        at the t-th training batch). The gradient flows through the batch statistics:
            dX = gamma / (N sigma) (N G - Σ_n G[n] - x_hat Σ_n G[n] x_hat[n]),   sigma = sqrt(Var + eps)
      * Eval mode: the running statistics, constants: dX = gamma G / sigma.
      * ``track_running_stats=False``: no running statistics; batch statistics in both modes.
      * ``allow_single_element=True``: a training batch of one row is normalised as in eval mode
        (PyG's option); otherwise it raises ValueError (one row has no variance to estimate).
    Both modes: dgamma = Σ_n G[n] x_hat[n], dbeta = Σ_n G[n]. What the forward did decides the
    backward, not the mode at backward time.

    ``num_batches_tracked`` (torch's buffer) is a Python int here; it matters only for
    ``momentum=None`` and is not part of ``state_dict``.

    Shapes: x (N, in_channels) float of the layer's dtype, dense and finite; out (N, in_channels);
    gamma, beta, running_mean, running_var (in_channels,). The graph argument is ignored (so the
    layer sits in a ``Sequential`` or inside ``GINConv``'s nn).
    Errors: TypeError / ValueError for bad constructor arguments; ValueError for x of the wrong
    shape or with NaN / Inf, or a training batch of one row; TypeError for x of another dtype or sparse.
    """

    fuses_relu = True    # forward(x, graph, relu=True): a ReLU after this layer, in the same pass (``Sequential``)

    def __init__(self, in_channels, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 allow_single_element=False, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.eps = finite_real("eps", eps)
        if self.eps <= 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        if momentum is not None:
            momentum = finite_real("momentum", momentum)
            if not 0.0 <= momentum <= 1.0:
                raise ValueError(f"momentum must be in [0, 1] or None (a cumulative average), got {momentum!r}")
        self.momentum = momentum
        for name, v in (("affine", affine), ("track_running_stats", track_running_stats),
                        ("allow_single_element", allow_single_element)):
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {v!r}")
        if allow_single_element and not track_running_stats:
            raise ValueError("allow_single_element requires track_running_stats=True (a single row is "
                             "normalised with the running statistics)")
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.allow_single_element = bool(allow_single_element)
        self.dtype = float_dtype(dtype)
        F = self.in_channels
        if self.affine:
            self.add_param("gamma", np.ones(F, dtype=self.dtype))
            self.add_param("beta", np.zeros(F, dtype=self.dtype))
        if self.track_running_stats:
            self.buffers["running_mean"] = np.zeros(F, dtype=self.dtype)
            self.buffers["running_var"] = np.ones(F, dtype=self.dtype)
        self.num_batches_tracked = 0

    def reset_running_stats(self):
        """running_mean = 0, running_var = 1 (in place, where they live), num_batches_tracked = 0."""
        if self.track_running_stats:
            copy_(self.buffers["running_mean"], np.zeros(self.in_channels, dtype=self.dtype))
            copy_(self.buffers["running_var"], np.ones(self.in_channels, dtype=self.dtype))
        self.num_batches_tracked = 0

    def forward(self, x, graph=None, relu=False):
        """y = BN(x), or max(BN(x), 0) with ``relu=True`` -- a ``ReLU`` after this layer, fused into one pass
        (``ops.batch_norm_relu``, the same bits; ``Sequential`` and the GIN model ask for it). The backward
        then takes the gradient of the ReLU's output."""
        x = check_features(x, num_cols=self.in_channels, dtype=self.dtype)
        if issparse(x):
            raise TypeError("BatchNorm1d needs dense x, got a sparse matrix")
        self._cache = None
        N = x.shape[0]
        use_batch = self.training or not self.track_running_stats
        if use_batch and N <= 1 and self.allow_single_element:
            use_batch = False                                   # PyG: a single row goes through as in eval mode
        if use_batch and N <= 1:
            raise ValueError(f"BatchNorm1d with batch statistics needs more than 1 row per feature, got x of shape "
                             f"{tuple(x.shape)} (allow_single_element=True, or eval mode with running statistics)")
        if use_batch:
            update = self.training and self.track_running_stats
            if update:
                self.num_batches_tracked += 1
                factor = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
                mean, var = ops.batch_norm_stats(x, factor, self.buffers["running_mean"], self.buffers["running_var"])
            else:
                mean, var = ops.batch_norm_stats(x)
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        gamma, beta = (self.params["gamma"], self.params["beta"]) if self.affine else (None, None)
        if relu:
            out, pos = ops.batch_norm_relu(x, mean, var, self.eps, gamma, beta)
            self._cache = (x, mean, var, use_batch, pos)
            return out
        self._cache = (x, mean, var, use_batch, None)
        return ops.batch_norm(x, mean, var, self.eps, gamma, beta)

    def backward(self, grad_out):
        x, mean, var, batch_stats, pos = self._saved()
        gamma = self.params["gamma"] if self.affine else None
        if pos is not None:     # the forward was fused with a ReLU: grad_out is the gradient of its output
            dX, dbeta, dgamma = ops.batch_norm_relu_backward(grad_out, pos, x, mean, var, self.eps, gamma, batch_stats)
        else:
            dX, dbeta, dgamma = ops.batch_norm_backward(grad_out, x, mean, var, self.eps, gamma, batch_stats)
        if self.affine:
            ops.add_(self.grads["gamma"], dgamma)               # dgamma += Σ_n G[n] x_hat[n]
            ops.add_(self.grads["beta"], dbeta)                 # dbeta  += Σ_n G[n]
        return dX


BatchNorm = BatchNorm1d     # PyG's name
