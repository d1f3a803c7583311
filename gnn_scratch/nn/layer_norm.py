"""Layer normalisation (Ba, Kiros & Hinton 2016, "Layer Normalization"), torch's ``nn.LayerNorm`` over the last dimension."""
import numpy as np

from .. import ops
from ..device import issparse
from .checks import check_features, finite_real, float_dtype, positive_int
from .module import Module


class LayerNorm(Module):
    """y = (x - mu) / sqrt(var + eps) * gamma + beta, mu and var over the F features of each row.

    torch's ``nn.LayerNorm(normalized_shape=F, eps=1e-5, elementwise_affine=True, bias=True)``:
    the statistics are each row's own (the variance biased, divided by F), the same in training
    and evaluation (no running statistics), so every node is normalised alone -- unlike
    ``BatchNorm1d``, whose statistics cross the rows. ``gamma`` / ``beta`` are torch's ``weight`` /
    ``bias`` (initialised to 1 / 0). (PyG's ``torch_geometric.nn.LayerNorm`` defaults to a
    per-*graph* mode; this is torch's per-node one, as in the Transformer and in GraphGPS.)

    Backward (derivations/layer_norm.md), with x_hat = (x - mu) rstd, rstd = 1/sqrt(var + eps):
        dbeta  = sum_n G[n]              dgamma = sum_n G[n] * x_hat[n]
        dx     = rstd (g - mean_f g - x_hat mean_f(g x_hat)),   g = G * gamma

    Shapes: x (N, F) dense float of the layer's dtype; out (N, F); gamma, beta (F,).
    The graph argument is ignored (the layer sits in a ``Sequential``).
    Errors: TypeError / ValueError for bad constructor arguments (eps must be > 0); ValueError for
    x of the wrong width or with NaN / Inf; TypeError for x of another dtype or sparse.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError(f"normalized_shape must be one feature width F (rows of (N, F) are normalised), "
                                 f"got {tuple(normalized_shape)}")
            normalized_shape = normalized_shape[0]
        self.normalized_shape = positive_int("normalized_shape", normalized_shape)
        self.eps = finite_real("eps", eps)
        if self.eps <= 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        for name, v in (("elementwise_affine", elementwise_affine), ("bias", bias)):
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {v!r}")
        self.elementwise_affine, self.bias = bool(elementwise_affine), bool(bias and elementwise_affine)
        self.dtype = float_dtype(dtype)
        F = self.normalized_shape
        if self.elementwise_affine:
            self.add_param("gamma", np.ones(F, dtype=self.dtype))
        if self.bias:
            self.add_param("beta", np.zeros(F, dtype=self.dtype))
        # The kernel always applies an affine map; without parameters it is the identity (gamma 1, beta 0),
        # kept as constant buffers so that ``to(device)`` moves them with the layer.
        if not self.elementwise_affine:
            self.buffers["unit_gamma"] = np.ones(F, dtype=self.dtype)
        if not self.bias:
            self.buffers["zero_beta"] = np.zeros(F, dtype=self.dtype)

    def __repr__(self):
        return f"LayerNorm({self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine})"

    def _gamma(self):
        return self.params["gamma"] if self.elementwise_affine else self.buffers["unit_gamma"]

    def _beta(self):
        return self.params["beta"] if self.bias else self.buffers["zero_beta"]

    def forward(self, x, graph=None):
        if issparse(x):
            raise TypeError("LayerNorm needs dense x, got a sparse matrix")
        x = check_features(x, num_cols=self.normalized_shape, dtype=self.dtype)
        y, xhat, rstd = ops.layer_norm(x, self._gamma(), self._beta(), self.eps)
        self._cache = (xhat, rstd)
        return y

    def backward(self, grad_out):
        xhat, rstd = self._saved()
        if self.bias:
            ops.col_sum(grad_out, out=self.grads["beta"], accumulate=True)                     # dbeta += Σ_n G[n]
        if self.elementwise_affine:
            ops.col_sum(ops.mul(grad_out, xhat), out=self.grads["gamma"], accumulate=True)   # dgamma += Σ_n G x_hat
        return ops.layer_norm_backward(grad_out, xhat, rstd, self._gamma())
