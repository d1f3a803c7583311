"""GINConv of Xu et al., 2019 ("How Powerful are Graph Neural Networks?") on MessagePassing (derivations/gin_conv.md)."""
import numpy as np

from ... import ops
from ...device import issparse
from ..checks import check_features, check_graph, finite_real, float_dtype
from ..message_passing import MessagePassing
from ..module import Module


class GINConv(MessagePassing):
    """x'_i = nn((1 + eps) x_i + Σ_{e: j→i} x_j)   (PyG's ``GINConv(nn, eps=0.0, train_eps=False)``).

    ``nn`` is any Module mapping (N_dst, F_in) to (N_dst, F_out) -- the paper's MLP, e.g.
    ``Sequential(lin1=Linear(...), bn=BatchNorm1d(...), act=ReLU(), lin2=Linear(...))``. It is
    called as ``nn.forward(h, graph)`` (a ``Sequential`` hands the graph to each of its layers;
    Linear, BatchNorm1d and the activations ignore it) and ``nn.backward(dH)``; its parameters are
    this layer's (named ``nn.<...>``), and ``train()`` / ``eval()`` reach it.
    ``eps`` is a constant buffer (``train_eps=False``, GIN-0 for eps = 0) or a trained parameter
    ``params["eps"]`` of shape (1,) initialised to ``eps`` (``train_eps=True``, GIN-eps).

    Like PyG's, the sum ignores edge weights (every edge counts 1, a repeated edge once per copy);
    a node without in-edges gets (1 + eps) x_i. With H = (1 + eps) x_dst + A x = S x, S = A + (1+eps) I:
        forward   H = S x (one row-owner pass, ``ops.gin_aggregate``);   out = nn(H)
        backward  dH = nn.backward(G);   deps += Σ (dH ⊙ x_dst);   dx = Sᵀ dH (the same pass on the transpose)

    Shapes: x (N_src, F_in) dense float of the layer's dtype; the graph (N_dst, N_src), square (a
    ``GraphBatch`` too) or a block whose destinations are its first N_dst sources; out (N_dst, F_out).
    ``dtype`` defaults to the nn's parameter dtype (float32 for an nn without parameters).
    Errors: TypeError for an nn that is not a Module, a non-bool train_eps, sparse x or x of another
    dtype; ValueError for a non-finite eps, a missing graph or x of the wrong number of rows.
    """

    use_edge_weight = False

    def __init__(self, nn, eps=0.0, train_eps=False, dtype=None):
        super().__init__("add")
        if not isinstance(nn, Module):
            raise TypeError(f"nn must be a gnn_scratch Module (e.g. a Sequential MLP), got {type(nn).__name__}")
        if not isinstance(train_eps, (bool, np.bool_)):
            raise TypeError(f"train_eps must be a bool, got {train_eps!r}")
        self.nn = nn
        # F_in, when nn's first layer states it (a Linear does): a wrong width is then named here, not inside nn
        self.in_channels = next((m.in_channels for _, m in nn.modules() if hasattr(m, "in_channels")), None)
        self.initial_eps = finite_real("eps", eps)
        self.train_eps = bool(train_eps)
        nn_dtype = next((p.dtype for _, p, _ in nn.named_parameters()), None)
        self.dtype = float_dtype(dtype if dtype is not None else (nn_dtype if nn_dtype is not None else np.float32))
        if nn_dtype is not None and np.dtype(nn_dtype) != self.dtype:
            raise TypeError(f"dtype {self.dtype} differs from the dtype of nn's parameters ({np.dtype(nn_dtype)}): "
                            f"build nn in {self.dtype}, or leave dtype out")
        value = np.full(1, self.initial_eps, dtype=self.dtype)
        if self.train_eps:
            self.add_param("eps", value)
        else:
            self.buffers["eps"] = value

    @property
    def eps(self):
        """The (1,) eps array, trained or not, on the layer's device."""
        return self.params["eps"] if self.train_eps else self.buffers["eps"]

    def check_input(self, x, graph):
        check_graph(self, graph)
        if issparse(x):
            raise TypeError("GINConv needs dense x, got a sparse matrix")
        return check_features(x, num_cols=self.in_channels, dtype=self.dtype, graph=graph)   # (N_src, F_in)

    # ------------------------------------------------------------------ aggregate: H = (1 + eps) x_dst + A x
    def aggregate(self, M, ctx):
        return ops.gin_aggregate(ctx.graph, M, self.eps)

    def aggregate_backward(self, dA, ctx):
        if self.train_eps:                                              # deps += Σ_{i,f} dH[i,f] x[i,f], i < N_dst
            x_dst = ctx.x if ctx.x.shape[0] == ctx.graph.num_dst else ctx.x[:ctx.graph.num_dst]
            per_feature = ops.col_sum(ops.mul(dA, x_dst))
            ops.col_sum(per_feature.reshape(per_feature.shape[0], 1), out=self.grads["eps"], accumulate=True)
        if not ctx.want_dx:
            return None
        return ops.gin_aggregate_backward(ctx.graph, self.eps, dA)     # dx = Sᵀ dH

    # ------------------------------------------------------------------ update: out = nn(H)
    def update(self, A, x, ctx):
        return self.nn.forward(A, ctx.graph)

    def update_backward(self, G, ctx):
        return self.nn.backward(G), None                                # dH; the root term rides in Sᵀ
