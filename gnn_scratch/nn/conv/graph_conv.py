"""GraphConv of Morris et al., 2019 ("Weisfeiler and Leman Go Neural") on MessagePassing (derivations/graph_conv.md)."""
import numpy as np

from ... import ops
from ...device import issparse
from ..checks import float_dtype, positive_int
from ..init import as_rng, glorot
from ..message_passing import MessagePassing


def _rows(A, n):
    """The first n rows of A (a view), A itself when it has n rows (a DeviceCSR cannot be sliced)."""
    return A if A.shape[0] == n else A[:n]


class GraphConv(MessagePassing):
    """out_i = W_rootᵀ x_i + W_relᵀ ⊕_{e: j→i} e_ji x_j + b   (PyG's ``GraphConv``, same arguments and meaning).

    ⊕ is ``aggr``: "add" (the paper's sum), "mean" (divided by the in-degree, edges counted) or "max"
    (element-wise; a tie goes to the first edge in CSR order); a node without in-edges aggregates to 0.
    e_ji is the graph's ``edge_weight`` (1 when it has none), applied to every message before ⊕
    as PyG does, for all three aggregations. PyG's ``lin_rel`` (with the bias) is (W_rel, b) and its
    ``lin_root`` (no bias) is W_root; PyG stores the transposes (``lin_rel.weight = W_relᵀ``).

    Shapes: x (N_src, F_in) float, dense (or scipy-sparse for "add" / "mean": no input gradient);
    the graph is (N_dst, N_src), square or a bipartite block whose destinations are its first N_dst
    sources, so the root term reads x[:N_dst]. W_rel, W_root (F_in, F_out), b (F_out,); out (N_dst, F_out).

    "add" and "mean" are linear, so (⊕ x) W_rel = ⊕ (x W_rel): the aggregation runs at the narrower
    width, message x W_rel when F_out <= F_in (or x is sparse), update A W_rel otherwise; "max" always
    aggregates x. Backward (derivations/graph_conv.md §4), S = the aggregation as a matrix:
        db = Σ_i G_i;  dW_root = x_dstᵀ G;  dx[:N_dst] += G W_rootᵀ
        message x W_rel:  dZ = Sᵀ G;  dW_rel = xᵀ dZ;  dx = dZ W_relᵀ
        update A W_rel:   dW_rel = Aᵀ G;  dx = Sᵀ (G W_relᵀ)   (max: each entry to its winning edge, times e_ji)
    """

    def __init__(self, in_channels, out_channels, aggr="add", bias=True, seed=0, dtype=np.float32):
        F_in, F_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        super().__init__(aggr)                                   # checks aggr in ("add", "mean", "max")
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels = F_in, F_out
        s = [int(q.generate_state(1)[0]) for q in np.random.SeedSequence(seed).spawn(2)]
        self.add_param("W_rel", glorot(as_rng(s[0]), F_in, F_out, dtype=dtype))
        self.add_param("W_root", glorot(as_rng(s[1]), F_in, F_out, dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(F_out, dtype=dtype))

    def check_input(self, x, graph):
        x = super().check_input(x, graph)                        # (N_src, in_channels), the layer's dtype, finite
        if self.aggr == "max" and issparse(x):
            raise ValueError("GraphConv(aggr='max') needs dense x: the max of sparse rows is not computed")
        return x

    # ------------------------------------------------------------------ message: x W_rel, or x itself
    def message(self, x, ctx):
        ctx.transform_first = self.aggr != "max" and (issparse(x) or self.out_channels <= self.in_channels)
        return ops.matmul(x, self.params["W_rel"]) if ctx.transform_first else x      # Z = x W_rel

    def message_backward(self, dM, ctx):
        if not ctx.transform_first:
            return dM if ctx.want_dx else None                                          # dx = dA_x
        ops.matmul_tn(ctx.x, dM, out=self.grads["W_rel"], accumulate=True)              # dW_rel += xᵀ dZ
        return ops.matmul_nt(dM, self.params["W_rel"]) if ctx.want_dx else None         # dx = dZ W_relᵀ

    # ------------------------------------------------------------------ update: (A or A W_rel) + b + x_dst W_root
    def update(self, A, x, ctx):
        if ctx.transform_first:
            out = A                                      # already A W_rel; not needed by the backward
        else:
            ctx.A = A                                    # dW_rel = Aᵀ G
            out = ops.matmul(A, self.params["W_rel"])
        if "b" in self.params:
            ops.add_bias(out, self.params["b"])
        return ops.add_(out, ops.matmul(_rows(x, ctx.graph.num_dst), self.params["W_root"]))

    def update_backward(self, G, ctx):
        if "b" in self.params:
            ops.col_sum(G, out=self.grads["b"], accumulate=True)                        # db += Σ_i G_i
        x_dst = _rows(ctx.x, ctx.graph.num_dst)
        ops.matmul_tn(x_dst, G, out=self.grads["W_root"], accumulate=True)              # dW_root += x_dstᵀ G
        dx_root = ops.matmul_nt(G, self.params["W_root"]) if ctx.want_dx else None      # dx_dst = G W_rootᵀ
        if ctx.transform_first:
            return G, dx_root                                                           # dA = G
        ops.matmul_tn(ctx.A, G, out=self.grads["W_rel"], accumulate=True)               # dW_rel += Aᵀ G
        dA = ops.matmul_nt(G, self.params["W_rel"]) if ctx.want_dx else None            # dA = G W_relᵀ
        return dA, dx_root
