"""Graph convolution of Kipf & Welling: H' = A_hat H W + b (derivations/gcn.md)."""
import numpy as np

from ... import ops
from ...device import issparse
from ...threads import layer_blas_pool, single_blas_pool
from ..checks import check_features, check_graph, float_dtype, positive_int
from ..init import as_rng, glorot
from ..module import Module


class GCNConv(Module):
    """H' = A_hat H W + b with A_hat = D^-1/2 (A + I) D^-1/2 (PyG's ``GCNConv`` defaults).

    H: (N, F_in) float (dense, or scipy.sparse for a first layer), W: (F_in, F_out), b: (F_out,),
    H': (N, F_out). The product is taken in the cheaper order: A_hat (H W) when F_out <= F_in (the
    sparse product then runs at the narrower width), (A_hat H) W otherwise.

    Backward with G = dL/dH' (derivations/gcn.md):
        with relu:  G <- G * [A_hat H W + b > 0]  first (the ReLU's backward, derivations/activations.md)
        db = sum_n G[n]
        order A_hat (H W):  Z = H W;   dZ = A_hat^T G;  dW = H^T dZ;  dH = dZ W^T
        order (A_hat H) W:  S = A_hat H;  dW = S^T G;  dS = G W^T;  dH = A_hat^T dS

    ``needs_input_grad = False`` (set by the trainer on a first layer, whose input is data) makes
    ``backward`` return None without computing dH. A_hat^T G runs on the cached transpose with the
    weights permuted once per graph (``ops.spmm_transposed``).
    """

    needs_input_grad = True
    fuses_relu = True    # forward(x, graph, relu=True): a ReLU after this layer, run by it (``Sequential``)

    def __init__(self, in_channels, out_channels, bias=True, add_self_loops=True, normalize=True,
                 improved=False, seed=0, dtype=np.float32):
        super().__init__()
        if add_self_loops and not normalize:
            # PyG adds the loops inside its normalisation; without it the flag would silently do nothing there
            raise ValueError("GCNConv: add_self_loops=True requires normalize=True (as in PyG)")
        in_channels, out_channels = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.add_self_loops, self.normalize, self.improved = add_self_loops, normalize, improved
        self.add_param("W", glorot(as_rng(seed), in_channels, out_channels, dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(out_channels, dtype=dtype))

    def propagation(self, graph, dtype):
        """(graph_hat, edge_val): the graph the messages travel on and its edge weights, cached."""
        if self.normalize:
            return ops.gcn_norm(graph, dtype, self.add_self_loops, self.improved)
        return graph, ops.edge_weight_or_ones(graph, dtype)

    @layer_blas_pool
    def forward(self, x, graph=None, relu=False):
        """H' = A_hat H W + b, or max(A_hat H W + b, 0) with ``relu`` (a ``ReLU`` after this layer, fused:
        ``Sequential`` asks for it). In evaluation mode, order A_hat (H W), the bias and the ReLU are applied in
        the SpMM's pass over each output row (``ops.spmm_bias``), not in two passes of their own; the same bits."""
        check_graph(self, graph)
        W = self.params["W"]
        b = self.params.get("b")
        H = check_features(x, num_cols=self.in_channels, dtype=W.dtype, graph=graph)   # H: x, sparse as CSR
        g, a = self.propagation(graph, W.dtype)
        transform_first = self.transform_first(H)
        relu_in_spmm = relu and not self.training and transform_first and b is not None
        if transform_first:
            Z = ops.matmul(H, W)
            out = ops.spmm(g, a, Z) if b is None else ops.spmm_bias(g, a, Z, b, relu_in_spmm)
        else:
            S = ops.spmm(g, a, H)
            out = ops.matmul(S, W)
            H = S  # backward needs S, not H, for dW
            if b is not None:
                ops.add_bias(out, b)
        pos = None
        if relu and not relu_in_spmm:
            out, pos = ops.relu(out)
        # with the ReLU in the SpMM no mask was made: backward rebuilds it from the output, positive exactly
        # where the ReLU's input was
        self._cache = (g, a, H, transform_first, relu, pos, out if relu_in_spmm else None)
        return out

    def transform_first(self, x):
        """Whether ``forward`` takes the order A_hat (H W) on input x: F_out <= F_in, or a sparse x."""
        return self.out_channels <= self.in_channels or issparse(x)

    def fuses_next_product(self, x):
        """Whether ``forward_product`` runs on input x: evaluation mode, a bias, and the order A_hat (H W)."""
        return not self.training and "b" in self.params and self.transform_first(x)

    @layer_blas_pool
    def forward_product(self, x, graph, W_next, relu=True):
        """max(A_hat H W + b, 0) W_next (without the max when ``relu`` is False): this layer's output, with the ReLU
        after it, times the next layer's weight W_next (F_out, C), as one op (``ops.spmm_bias_matmul``: on the
        CPU the (N, F_out) output is never written to memory). The bits of ``forward`` followed by the next
        layer's evaluation-mode product ``ops.matmul(out, W_next)``. Only where ``fuses_next_product(x)``, else
        ValueError; W_next must have F_out rows (ValueError). Keeps nothing for a backward (the cache is
        cleared). Not a ``forward``: x is not scanned for NaN / Inf here and no output is recorded -- it is the
        step of a model's forward (``models.GCN``), which does both. Returns (N, C); raises as ``forward``."""
        if not self.fuses_next_product(x):
            raise ValueError("GCNConv.forward_product needs evaluation mode, a bias and F_out <= F_in (or a sparse x)")
        if getattr(W_next, "ndim", 0) != 2 or W_next.shape[0] != self.out_channels:
            raise ValueError(f"GCNConv.forward_product: W_next must have shape ({self.out_channels}, C) for "
                             f"out_channels={self.out_channels}, got {getattr(W_next, 'shape', type(W_next).__name__)}")
        check_graph(self, graph)
        W, b = self.params["W"], self.params["b"]
        H = check_features(x, num_cols=self.in_channels, dtype=W.dtype, graph=graph)
        g, a = self.propagation(graph, W.dtype)
        self._cache = None
        return ops.spmm_bias_matmul(g, a, ops.matmul(H, W), b, W_next, relu)

    @layer_blas_pool
    def forward_transformed(self, Z, graph):
        """A_hat Z + b for Z = H W already taken (by ``forward_product`` of the layer before): the rest of
        ``forward`` in the order A_hat (H W), the same bits. Z: (N, F_out) (a shape error names it "Z" against
        the layer's out_channels, reported as ``in_channels`` of this step). Keeps nothing for a backward; like
        ``forward_product``, not a ``forward`` (no scan, nothing recorded)."""
        check_graph(self, graph)
        W, b = self.params["W"], self.params.get("b")
        Z = check_features(Z, num_cols=self.out_channels, dtype=W.dtype, graph=graph, name="Z")
        g, a = self.propagation(graph, W.dtype)
        self._cache = None
        return ops.spmm(g, a, Z) if b is None else ops.spmm_bias(g, a, Z, b)

    @single_blas_pool
    def backward(self, grad_out):
        g, a, H_or_S, transform_first, relu, pos, relu_out = self._saved()
        W = self.params["W"]
        if relu:
            if pos is None:
                _, pos = ops.relu(relu_out)                                   # [y > 0] = [pre > 0]
            grad_out = ops.relu_backward(grad_out, pos)                      # G <- G * [pre > 0]
        if "b" in self.params:
            ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)      # db += sum_n G[n]
        if transform_first:
            H = H_or_S
            dZ = self._transposed_product(g, a, grad_out)                      # dZ = A_hat^T G
            ops.matmul_tn(H, dZ, out=self.grads["W"], accumulate=True)       # dW += H^T dZ
            if issparse(H) or not self.needs_input_grad:
                return None
            return ops.matmul_nt(dZ, W)                                      # dH = dZ W^T
        S = H_or_S
        ops.matmul_tn(S, grad_out, out=self.grads["W"], accumulate=True)     # dW += S^T G
        if not self.needs_input_grad:
            return None
        dS = ops.matmul_nt(grad_out, W)                                      # dS = G W^T
        return self._transposed_product(g, a, dS)

    def _transposed_product(self, g, a, G):
        """A_hat^T G with the weights in transpose order, cached on ``g`` (no per-edge gather)."""
        key = ("gcn", self.normalize, self.add_self_loops, self.improved, a.dtype.str)
        return ops.spmm_transposed(g, a, key, G)
