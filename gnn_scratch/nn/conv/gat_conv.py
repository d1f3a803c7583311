"""Graph attention of Velickovic et al. (2018), multi-head, with a hand-derived backward (derivations/gat.md)."""
import numpy as np
import scipy.sparse as sp

from ... import ops
from ...device import empty, empty_like, issparse
from ...kernels.registry import run
from ...threads import layer_blas_pool
from ..checks import check_features, check_graph, finite_real, float_dtype, positive_int, probability
from ..init import as_rng, glorot
from ..module import Module


def self_loop_graph(graph):
    """``graph.with_self_loops()``, computed once per graph on the host (PyG's remove-then-add-one-loop rule)."""
    return graph.derived("with_self_loops", lambda host: host.with_self_loops())


def leaky_relu(pre, negative_slope):
    """LeakyReLU(pre) = pre if pre > 0 else negative_slope * pre, in pre's dtype."""
    return ops.leaky_relu(pre, negative_slope)[0]


class GATConv(Module):
    """Multi-head graph attention: out_i = (concat or mean over heads h) sum_j alpha_ij^h Z_j^h + b.

    Per head h, for the edges j -> i of the graph (with one self-loop per node if add_self_loops):
        Z = X W  reshaped (N, H, F_out)
        a_src[j, h] = <Z[j, h], att_src[h]>,   a_dst[i, h] = <Z[i, h], att_dst[h]>
        e_ij^h      = LeakyReLU(a_dst[i, h] + a_src[j, h])       (= a^T [W x_i || W x_j] of the paper)
        alpha_ij^h  = softmax over j in N(i) of e_ij^h               (max-shifted)
        out[i, h]   = sum_j alpha_ij^h d_ij^h Z[j, h]                (d: attention dropout, training only)
    then heads are concatenated, (N, H * F_out), or averaged, (N, F_out), and b is added.

    Shapes: X (N_src, F_in) float (dense, or scipy.sparse for a first layer), W (F_in, H*F_out),
    att_src and att_dst (H, F_out), b (H*F_out,) if concat else (F_out,); output (N_dst, H*F_out)
    or (N_dst, F_out). A bipartite block (N_dst < N_src, destinations first) works with
    add_self_loops=False. A node with no incoming edge gets out = b.

    ``fused=True`` runs ``gat_forward`` / ``gat_backward`` of ``kernels/gat_cpu.py``: one pass per
    destination row with an online softmax, saving only (N, H) row max and sum, recomputing alpha
    in the backward. ``fused=False`` composes ops.sddmm_add, LeakyReLU, ops.edge_softmax, the
    dropout and one ops.spmm per head, and stores alpha (E, H). Both give the same numbers.
    Attention dropout draws an (E, H) uint8 keep mask at every training forward (the same mask for
    both paths); ``dropout`` is PyG's: on alpha, after normalisation.

    Backward with G = dL/dout (derivations/gat.md): db = sum_n G[n]; G per head (split, or G/H
    broadcast for the mean); the aggregation gives dZ (messages), da_dst, da_src; then
        dZ[j, h] += da_src[j, h] att_src[h] (+ da_dst[j, h] att_dst[h] for j < N_dst)
        datt_src[h] = sum_j da_src[j, h] Z[j, h],   datt_dst[h] = sum_i da_dst[i, h] Z[i, h]
        dW = X^T dZ,   dX = dZ W^T  (None for a sparse X, or with ``needs_input_grad = False``,
        which the trainer sets on a first layer: its input is data).

    One code path for the host and the GPU (the layer moved with ``.to("cuda")``, X a device array
    or a ``DeviceCSR``): every step is an op (``ops.matmul``, ``ops.head_dot*``, the fused kernels
    ``gat_forward`` / ``gat_backward``, ``ops.head_mean``), which runs where X lives. The attention
    dropout mask is the counter hash of ``kernels/rng.py`` under a 64-bit key drawn from ``self.rng``
    per training forward, so the host and the GPU draw the same mask. ``fused=False`` composes
    host-side per-head slices and is CPU only (``check_device_support`` raises ValueError).
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, heads=1, concat=True, negative_slope=0.2, dropout=0.0,
                 add_self_loops=True, bias=True, seed=0, dtype=np.float32, fused=True):
        super().__init__()
        in_channels, out_channels = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        heads = positive_int("heads", heads)
        dropout, negative_slope = probability("dropout", dropout), finite_real("negative_slope", negative_slope)
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels, self.heads = int(in_channels), int(out_channels), int(heads)
        self.concat, self.negative_slope, self.dropout = bool(concat), float(negative_slope), float(dropout)
        self.add_self_loops, self.fused = bool(add_self_loops), bool(fused)
        H, F = self.heads, self.out_channels
        # One generator: the weights first (PyG's glorot, att as (1, H, F): fan H + F), then the mask keys.
        self.rng = as_rng(seed)
        self.add_param("W", glorot(self.rng, in_channels, H * F, dtype=dtype))
        self.add_param("att_src", glorot(self.rng, H, F, dtype=dtype))
        self.add_param("att_dst", glorot(self.rng, H, F, dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(H * F if concat else F, dtype=dtype))

    def __repr__(self):
        return (f"GATConv({self.in_channels}, {self.out_channels}, heads={self.heads}, concat={self.concat}, "
                f"dropout={self.dropout}, fused={self.fused})")

    def check_device_support(self):
        """Raise ValueError (one line) for what the GPU lacks: the unfused composition's host-side slices."""
        if not self.fused:
            raise ValueError("GATConv(fused=False) cannot run on the GPU; on the device use fused=True "
                             "(the same numbers, from the fused kernels)")


    # ------------------------------------------------------------------ pieces shared by both paths
    def message_graph(self, graph):
        """The graph the messages travel on: with one self-loop per node (cached) or as given."""
        return self_loop_graph(graph) if self.add_self_loops else graph

    def _check_input(self, x, graph):
        """x checked against the graph and this layer (a scipy sparse x comes back as CSR)."""
        check_graph(self, graph)
        X = check_features(x, num_cols=self.in_channels, dtype=self.params["W"].dtype, graph=graph)
        if self.add_self_loops and graph.num_dst != graph.num_src:
            raise ValueError(f"add_self_loops needs a square graph, got shape {graph.shape}; "
                             f"use add_self_loops=False for a bipartite block")
        return X

    def _transform(self, X, n_dst):
        """Z = X W as (N_src, H, F) (a free reshape) and the logit halves a_src (N_src, H), a_dst (N_dst, H)."""
        Z = ops.matmul(X, self.params["W"]).reshape(X.shape[0], self.heads, self.out_channels)
        return Z, ops.head_dot(Z, self.params["att_src"]), ops.head_dot(Z, self.params["att_dst"], n_dst)

    def _keep_mask(self, E, like):
        """(E, H) uint8 attention-dropout keep mask (a fresh key from self.rng), or (0, H) without dropout."""
        if not (self.training and self.dropout > 0.0):
            return empty((0, self.heads), np.uint8, like=like)
        key = self.rng.integers(0, 1 << 64, dtype=np.uint64)
        return ops.keep_mask((E, self.heads), key, 1.0 - self.dropout, like=like)

    def _keep_scale(self, dtype):
        return dtype.type(1.0 / (1.0 - self.dropout))

    def attention(self, x, graph):
        """Attention coefficients alpha (E, H) in CSR order of ``message_graph(graph)`` (no dropout, no cache).

        Row i of the returned edges sums to 1 per head; edge e goes from ``g.indices[e]`` to the
        destination ``g.dst_of_edge()[e]`` with g = ``self.message_graph(graph)``. Lives where X lives.
        """
        X = self._check_input(x, graph)
        g = self.message_graph(graph)
        _, a_src, a_dst = self._transform(X, g.num_dst)
        return ops.edge_softmax(g, leaky_relu(ops.sddmm_add(g, a_dst, a_src), self.negative_slope))

    # ------------------------------------------------------------------ forward
    @layer_blas_pool
    def forward(self, x, graph=None):
        """out: (N_dst, H * F_out) if concat else (N_dst, F_out)."""
        X = self._check_input(x, graph)
        if not self.fused and not (isinstance(X, np.ndarray) or sp.issparse(X)):
            raise ValueError("GATConv(fused=False) composes host-side per-head slices and takes NumPy or scipy "
                             "arrays only; on the GPU use fused=True (the same numbers, from the fused kernels)")
        g = self.message_graph(graph)
        Z, a_src, a_dst = self._transform(X, g.num_dst)
        keep = self._keep_mask(g.num_edges, Z)
        if self.fused:
            out, saved = self._aggregate_fused(g, Z, a_src, a_dst, keep)
        else:
            out, saved = self._aggregate_unfused(g, Z, a_src, a_dst, keep)
        out = out.reshape(g.num_dst, self.heads * self.out_channels) if self.concat else ops.head_mean(out)
        if "b" in self.params:
            ops.add_bias(out, self.params["b"])
        self._cache = (g, X, Z, a_src, a_dst, keep, saved)
        return out

    def _aggregate_fused(self, g, Z, a_src, a_dst, keep):
        """out (N_dst, H, F) by the fused kernel; saves (row_max, row_sum), each (N_dst, H): never E x H x F."""
        dt = Z.dtype
        out = empty((g.num_dst, self.heads, self.out_channels), dt, like=Z)
        row_max = empty((g.num_dst, self.heads), dt, like=Z)
        row_sum = empty((g.num_dst, self.heads), dt, like=Z)
        run("gat_forward", Z.size * g.num_edges // max(g.num_src, 1), g.indptr, g.indices, a_dst, a_src, Z,
            dt.type(self.negative_slope), keep, self._keep_scale(dt), out, row_max, row_sum)
        return out, (row_max, row_sum)

    def _dropout_factor(self, keep, dtype):
        """d = keep * 1/(1-p) as (E, H) floats, or None without dropout (host: the unfused composition)."""
        return None if keep.shape[0] == 0 else keep.astype(dtype) * self._keep_scale(dtype)

    def _aggregate_unfused(self, g, Z, a_src, a_dst, keep):
        """out (N_dst, H, F) by the foundation ops, one SpMM per head; saves (pre, alpha), each (E, H)."""
        pre = ops.sddmm_add(g, a_dst, a_src)
        alpha = ops.edge_softmax(g, leaky_relu(pre, self.negative_slope))
        d = self._dropout_factor(keep, Z.dtype)
        alpha_d = alpha if d is None else alpha * d
        out = np.empty((g.num_dst, self.heads, self.out_channels), dtype=Z.dtype)
        for h in range(self.heads):
            out[:, h] = ops.spmm(g, np.ascontiguousarray(alpha_d[:, h]), np.ascontiguousarray(Z[:, h]))
        return out, (pre, alpha)

    # ------------------------------------------------------------------ backward
    def backward(self, grad_out):
        """dL/dX (N_src, F_in), or None for a sparse X; adds into grads W, att_src, att_dst, b."""
        g, X, Z, a_src, a_dst, keep, saved = self._saved()
        H, F = self.heads, self.out_channels
        N_dst = g.num_dst
        if "b" in self.params:
            ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)             # db += sum_n G[n]
        # G per head: a free view of the gradient (concat), or G / H to every head (mean)
        G = grad_out.reshape(N_dst, H, F) if self.concat else ops.head_mean_backward(grad_out, H)
        if self.fused:
            dZ, da_src, da_dst = self._backward_fused(g, Z, a_src, a_dst, keep, saved, G)
        else:
            dZ, da_src, da_dst = self._backward_unfused(g, Z, keep, saved, G)
        # score path: a_src = <Z, att_src>, a_dst = <Z[:N_dst], att_dst>  (Z fans out three ways)
        ops.head_dot_backward_att(da_src, Z, out=self.grads["att_src"], accumulate=True)
        ops.head_dot_backward_att(da_dst, Z, out=self.grads["att_dst"], accumulate=True)
        ops.head_dot_backward_Z_(dZ, da_src, self.params["att_src"])               # dZ += da_src att_src
        ops.head_dot_backward_Z_(dZ, da_dst, self.params["att_dst"])               # dZ[:N_dst] += da_dst att_dst
        dZ = dZ.reshape(Z.shape[0], H * F)
        ops.matmul_tn(X, dZ, out=self.grads["W"], accumulate=True)                 # dW += X^T dZ
        if issparse(X) or not self.needs_input_grad:
            return None  # features are data: no gradient to pass on
        return ops.matmul_nt(dZ, self.params["W"])                                 # dX = dZ W^T

    def _backward_fused(self, g, Z, a_src, a_dst, keep, saved, G):
        """(dZ message path (N_src, H, F), da_src (N_src, H), da_dst (N_dst, H)) by the fused kernel."""
        row_max, row_sum = saved
        dt = Z.dtype
        dZ, da_src, da_dst = empty_like(Z), empty_like(a_src), empty_like(a_dst)
        # two E x H workspaces, freed on return: never E x H x F
        grad_pre = empty((g.num_edges, self.heads), dt, like=Z)
        alpha_d = empty((g.num_edges, self.heads), dt, like=Z)
        run("gat_backward", Z.size * g.num_edges // max(g.num_src, 1), g.indptr, g.indices, g.t_indptr,
            g.t_indices, g.t_perm, a_dst, a_src, Z, dt.type(self.negative_slope), keep, self._keep_scale(dt),
            row_max, row_sum, G, grad_pre, alpha_d, dZ, da_dst, da_src)
        return dZ, da_src, da_dst

    def _backward_unfused(self, g, Z, keep, saved, G):
        """The same three gradients by the foundation ops' backwards, from the stored alpha."""
        pre, alpha = saved
        d = self._dropout_factor(keep, Z.dtype)
        alpha_d = alpha if d is None else alpha * d
        G = np.ascontiguousarray(G)
        dZ = np.empty_like(Z)
        for h in range(self.heads):  # out_h = A_h Z_h  =>  dZ_h = A_h^T G_h
            dZ[:, h] = ops.spmm_backward_X(g, np.ascontiguousarray(alpha_d[:, h]), np.ascontiguousarray(G[:, h]))
        grad_alpha = ops.sddmm_dot(g, G, Z)          # dL/dalpha_d[e, h] = <G[i, h], Z[j, h]>
        if d is not None:
            grad_alpha *= d
        grad_pre = ops.edge_softmax_backward(g, alpha, grad_alpha)    # dL/de, then dL/dpre:
        grad_pre = ops.leaky_relu_backward(grad_pre, pre > 0, self.negative_slope)  # LeakyReLU's slope
        da_dst, da_src = ops.sddmm_add_backward(g, grad_pre)
        return dZ, da_src, da_dst
