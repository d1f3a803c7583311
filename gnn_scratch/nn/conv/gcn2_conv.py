"""GCNII's convolution: initial residual and identity mapping (Chen, Wei, Huang, Ding & Li, ICML 2020).

derivations/gcn2_conv.md derives the backward.
"""
import math
import numbers

import numpy as np

from ... import ops
from ...device import to_host
from ...threads import single_blas_pool
from ..checks import check_features, check_graph, finite_real, float_dtype, positive_int
from ..init import as_rng, glorot
from ..module import Module


class GCN2Conv(Module):
    """out = ((1 - alpha) A_hat x + alpha x_0) ((1 - beta) I + beta W), PyG's ``GCN2Conv``.

    ``GCN2Conv(channels, alpha, theta=None, layer=None, shared_weights=True, cached=False,
    add_self_loops=True, normalize=True)``: A_hat = D^-1/2 (A + I) D^-1/2 (``ops.gcn_norm``, as
    GCNConv; without ``normalize`` the graph's own edge weights, or ones, and no self-loops),
    beta = log(theta / layer + 1) (1 when theta and layer are both None). The initial residual
    alpha x_0 keeps a share of the first layer's state in every layer; the identity mapping keeps
    the weight matrix close to I (beta -> 0 with depth), the two remedies of the paper against
    over-smoothing. With ``shared_weights=False`` the two terms get their own matrices:

        S1 = (1 - alpha) A_hat x,  S2 = alpha x_0,
        out = S1 ((1 - beta) I + beta W1) + S2 ((1 - beta) I + beta W2).

    Shapes: x, x_0 (N, C) float (dense), W1 (and W2) (C, C), out (N, C); no bias (as PyG).
    Backward with G = dL/d out (derivations/gcn2_conv.md), shared weights, S = S1 + S2:
        dW1 += beta S^T G;   dS = (1 - beta) G + beta G W1^T;   dx = (1 - alpha) A_hat^T dS;   dx_0 = alpha dS
    and with separate weights dW1 += beta S1^T G, dW2 += beta S2^T G, dS1 = (1 - beta) G + beta G W1^T,
    dS2 = (1 - beta) G + beta G W2^T, dx = (1 - alpha) A_hat^T dS1, dx_0 = alpha dS2.

    ``forward(x, x_0, graph)`` takes two inputs, so ``backward`` returns two gradients (dx, dx_0).
    The normalisation is always cached on the graph (``cached`` is accepted for PyG's signature and
    changes nothing). Host-only for now: the scalar blends have no device op (``check_device_support``).
    Raises ValueError for alpha outside [0, 1], a theta <= 0 or a layer < 1, or only one of theta and
    layer given; the feature checks' errors for x or x_0 of the wrong shape, dtype or with NaN/Inf.
    """

    def __init__(self, channels, alpha, theta=None, layer=None, shared_weights=True, cached=False,
                 add_self_loops=True, normalize=True, seed=0, dtype=np.float32):
        super().__init__()
        self.channels = positive_int("channels", channels)
        self.alpha = finite_real("alpha", alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        if (theta is None) != (layer is None):
            raise ValueError("theta and layer go together: give both (beta = log(theta / layer + 1)) "
                             "or neither (beta = 1)")
        self.beta = 1.0
        if theta is not None:
            theta = finite_real("theta", theta)
            if theta <= 0:
                raise ValueError(f"theta must be > 0, got {theta!r}")
            if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or layer < 1:
                raise ValueError(f"layer must be an int >= 1 (the depth of this layer), got {layer!r}")
            self.beta = math.log(theta / layer + 1.0)
        self.theta, self.layer = theta, layer
        self.shared_weights, self.cached = bool(shared_weights), bool(cached)
        self.add_self_loops, self.normalize = bool(add_self_loops), bool(normalize)
        dtype = float_dtype(dtype)
        rng = as_rng(seed)
        self.add_param("W1", glorot(rng, channels, channels, dtype=dtype))
        if not self.shared_weights:
            self.add_param("W2", glorot(rng, channels, channels, dtype=dtype))

    def check_device_support(self):
        raise ValueError("GCN2Conv has no device path yet (no scalar-blend op on the GPU): train it on the cpu")

    def propagation(self, graph, dtype):
        """(graph_hat, edge_val): the graph the messages travel on and its weights, cached on ``graph``."""
        if self.normalize:
            return ops.gcn_norm(graph, dtype, self.add_self_loops, False)
        return graph, ops.edge_weight_or_ones(graph, dtype)

    def __call__(self, x, x_0, graph=None):
        return self.forward(x, x_0, graph)

    @single_blas_pool
    def forward(self, x, x_0, graph=None):
        check_graph(self, graph)
        if graph.num_dst != graph.num_src:
            raise ValueError(f"GCN2Conv needs a square graph (x and x_0 on the same nodes), got shape {graph.shape}")
        W1 = self.params["W1"]
        x = check_features(x, num_cols=self.channels, dtype=W1.dtype, name="x", graph=graph)
        x_0 = check_features(x_0, num_cols=self.channels, dtype=W1.dtype, name="x_0", graph=graph)
        if not (isinstance(x, np.ndarray) and isinstance(x_0, np.ndarray)):
            raise TypeError("GCN2Conv takes dense host arrays x and x_0 (N, C)")
        g, a = self.propagation(graph, W1.dtype)
        t = W1.dtype.type
        S1 = t(1.0 - self.alpha) * ops.spmm(g, a, x)          # (1 - alpha) A_hat x
        S2 = t(self.alpha) * x_0                                # alpha x_0
        if self.shared_weights:
            S = S1 + S2
            out = t(1.0 - self.beta) * S + t(self.beta) * ops.matmul(S, W1)
            self._cache = (g, a, S, None)
        else:
            W2 = self.params["W2"]
            out = (t(1.0 - self.beta) * (S1 + S2) + t(self.beta) * ops.matmul(S1, W1)
                   + t(self.beta) * ops.matmul(S2, W2))
            self._cache = (g, a, S1, S2)
        return out

    @single_blas_pool
    def backward(self, grad_out):
        g, a, S_or_S1, S2 = self._saved()
        G = np.asarray(to_host(grad_out))
        t = G.dtype.type
        Gb = t(self.beta) * G                                                # beta G
        ops.matmul_tn(S_or_S1, Gb, out=self.grads["W1"], accumulate=True)   # dW1 += beta S^T G  (S1 unshared)
        dS1 = t(1.0 - self.beta) * G + ops.matmul_nt(Gb, self.params["W1"])  # (1 - beta) G + beta G W1^T
        if self.shared_weights:
            dS2 = dS1                                                        # S = S1 + S2: one gradient
        else:
            ops.matmul_tn(S2, Gb, out=self.grads["W2"], accumulate=True)     # dW2 += beta S2^T G
            dS2 = t(1.0 - self.beta) * G + ops.matmul_nt(Gb, self.params["W2"])
        key = ("gcn2", self.normalize, self.add_self_loops, a.dtype.str)
        dx = ops.spmm_transposed(g, a, key, np.ascontiguousarray(t(1.0 - self.alpha) * dS1))  # (1-alpha) A_hat^T dS1
        dx_0 = t(self.alpha) * dS2
        return dx, dx_0
