"""Graph attention of Velickovic et al. (2018), multi-head, with a hand-derived backward (derivations/gat.md)."""
import importlib

import numpy as np
import scipy.sparse as sp

from ... import dense, ops
from ...kernels import get_cpu_backend, is_device_array
from ..init import as_rng, glorot
from ..module import Module

# Rows of the (E, H) dropout mask drawn per call of the generator: bounds the float32 temporary.
_MASK_CHUNK = 1 << 20


def gat_kernels(*arrays):
    """The fused-kernel module for ``arrays``: ``gat_cuda`` on the GPU, else ``gat_<cpu backend>``.

    Mirrors ``kernels.backend_for``: "cpu" -> ``gat_cpu`` (Numba), "reference" -> ``gat_reference``.
    """
    name = "cuda" if any(is_device_array(a) for a in arrays) else get_cpu_backend()
    try:
        return importlib.import_module(f"gnn_scratch.kernels.gat_{name}")
    except ImportError as e:
        raise RuntimeError(f"the fused GAT kernels for the {name!r} backend are not available ({e}); "
                           f"use GATConv(..., fused=False)") from e


def self_loop_graph(graph):
    """``graph.with_self_loops()``, computed once per graph (PyG's remove-then-add-one-loop rule).

    A device graph gets the device copy of its host graph's looped graph: the loops are built on
    the host, once, like every other structural change of a graph.
    """
    if getattr(graph, "device", "cpu") != "cpu":
        return graph.cached("with_self_loops", lambda: self_loop_graph(graph.host).to(graph.device))
    return graph.cached("with_self_loops", graph.with_self_loops)


def leaky_relu(pre, negative_slope):
    """LeakyReLU(pre) = pre if pre > 0 else negative_slope * pre, in pre's dtype."""
    return np.where(pre > 0, pre, pre * pre.dtype.type(negative_slope))


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
    Attention dropout draws an (E, H) uint8 keep mask from ``self.rng`` at every training forward
    (the same mask for both paths); ``dropout`` is PyG's: on alpha, after normalisation.

    Backward with G = dL/dout (derivations/gat.md): db = sum_n G[n]; G per head (split, or G/H
    broadcast for the mean); the aggregation gives dZ (messages), da_dst, da_src; then
        dZ[j, h] += da_src[j, h] att_src[h] (+ da_dst[j, h] att_dst[h] for j < N_dst)
        datt_src[h] = sum_j da_src[j, h] Z[j, h],   datt_dst[h] = sum_i da_dst[i, h] Z[i, h]
        dW = X^T dZ,   dX = dZ W^T  (None for a sparse X, or with ``needs_input_grad = False``,
        which the trainer sets on a first layer: its input is data).

    On the device (the layer moved with ``.to("cuda")``, X a device array or a ``dense.DeviceCSR``)
    the fused path runs entirely there: X W by ``dense.matmul``, the score halves and their
    backward by ``dense.head_dot*``, ``gat_cuda``'s kernels, the head mean by ``dense.head_mean``.
    Its attention-dropout mask is drawn on the device by the counter hash of feature dropout, keyed
    from ``self.rng`` (``dense.attention_keep_mask``), or, under ``dense.set_dropout_masks("host")``,
    drawn by ``self.rng`` exactly as on the CPU and copied over. ``fused=False`` is CPU only (ValueError).
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, heads=1, concat=True, negative_slope=0.2, dropout=0.0,
                 add_self_loops=True, bias=True, seed=0, dtype=np.float32, fused=True):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("heads", heads)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not np.isfinite(negative_slope):
            raise ValueError(f"negative_slope must be finite, got {negative_slope}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.in_channels, self.out_channels, self.heads = int(in_channels), int(out_channels), int(heads)
        self.concat, self.negative_slope, self.dropout = bool(concat), float(negative_slope), float(dropout)
        self.add_self_loops, self.fused = bool(add_self_loops), bool(fused)
        H, F = self.heads, self.out_channels
        # One generator: the weights first (PyG's glorot, att as (1, H, F): fan H + F), then the masks.
        self.rng = as_rng(seed)
        self.add_param("W", glorot(self.rng, in_channels, H * F, dtype=dtype))
        self.add_param("att_src", glorot(self.rng, H, F, dtype=dtype))
        self.add_param("att_dst", glorot(self.rng, H, F, dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(H * F if concat else F, dtype=dtype))

    def __repr__(self):
        return (f"GATConv({self.in_channels}, {self.out_channels}, heads={self.heads}, concat={self.concat}, "
                f"dropout={self.dropout}, fused={self.fused})")

    # ------------------------------------------------------------------ pieces shared by both paths
    def message_graph(self, graph):
        """The graph the messages travel on: with one self-loop per node (cached) or as given."""
        return self_loop_graph(graph) if self.add_self_loops else graph

    def _check_input(self, X, graph):
        if graph is None:
            raise ValueError("GATConv.forward needs the graph: forward(X, graph)")
        if not hasattr(X, "shape") or X.ndim != 2 or X.shape != (graph.num_src, self.in_channels):
            raise ValueError(f"GATConv expects X of shape ({graph.num_src}, {self.in_channels}), "
                             f"got {getattr(X, 'shape', type(X).__name__)}")
        if X.dtype != self.params["W"].dtype:
            raise TypeError(f"X must have the layer's dtype {self.params['W'].dtype}, got {X.dtype}")
        if self.add_self_loops and graph.num_dst != graph.num_src:
            raise ValueError(f"add_self_loops needs a square graph, got shape {graph.shape}; "
                             f"use add_self_loops=False for a bipartite block")

    def _transform(self, X, n_dst):
        """Z = X W as (N_src, H, F) and the two halves of the logits a_src (N_src, H), a_dst (N_dst, H)."""
        W = self.params["W"]
        Z = np.ascontiguousarray(np.asarray(X @ W)).reshape(X.shape[0], self.heads, self.out_channels)
        a_src = np.einsum("nhf,hf->nh", Z, self.params["att_src"])
        a_dst = np.einsum("nhf,hf->nh", Z[:n_dst], self.params["att_dst"])
        return Z, a_src, a_dst

    def _keep_mask(self, E):
        """(E, H) uint8 attention-dropout keep mask from self.rng, or a (0, H) array when there is no dropout."""
        H = self.heads
        if not (self.training and self.dropout > 0.0):
            return np.zeros((0, H), dtype=np.uint8)
        q = np.float32(1.0 - self.dropout)
        if E <= _MASK_CHUNK:
            return (self.rng.random((E, H), dtype=np.float32) < q).view(np.uint8)
        keep = np.empty((E, H), dtype=np.uint8)
        for start in range(0, E, _MASK_CHUNK):
            stop = min(E, start + _MASK_CHUNK)
            np.less(self.rng.random((stop - start, H), dtype=np.float32), q, out=keep[start:stop].view(bool))
        return keep

    def _keep_scale(self, dtype):
        return dtype.type(1.0 / (1.0 - self.dropout))

    def attention(self, X, graph):
        """Attention coefficients alpha (E, H) in CSR order of ``message_graph(graph)`` (no dropout, no cache).

        Row i of the returned edges sums to 1 per head; edge e goes from ``g.indices[e]`` to the
        destination ``g.dst_of_edge()[e]`` with g = ``self.message_graph(graph)``.
        A device X gives a device alpha.
        """
        self._check_input(X, graph)
        g = self.message_graph(graph)
        if dense.is_device(X):
            _, a_src, a_dst = self._transform_device(X, g.num_dst)
            scores, _ = dense.leaky_relu_forward(ops.sddmm_add(g, a_dst, a_src), self.negative_slope)
            return ops.edge_softmax(g, scores)
        _, a_src, a_dst = self._transform(X, g.num_dst)
        return ops.edge_softmax(g, leaky_relu(ops.sddmm_add(g, a_dst, a_src), self.negative_slope))

    # ------------------------------------------------------------------ forward
    def forward(self, X, graph=None):
        """out: (N_dst, H * F_out) if concat else (N_dst, F_out)."""
        self._check_input(X, graph)
        if dense.is_device(X):
            return self._forward_device(X, graph)
        g = self.message_graph(graph)
        Z, a_src, a_dst = self._transform(X, g.num_dst)
        keep = self._keep_mask(g.num_edges)
        if self.fused:
            out, saved = self._aggregate_fused(g, Z, a_src, a_dst, keep)
        else:
            out, saved = self._aggregate_unfused(g, Z, a_src, a_dst, keep)
        out = out.reshape(g.num_dst, -1) if self.concat else out.mean(axis=1)
        if "b" in self.params:
            out += self.params["b"]
        self._cache = (g, X, Z, a_src, a_dst, keep, saved)
        return out

    def _aggregate_fused(self, g, Z, a_src, a_dst, keep):
        """out (N_dst, H, F) by the fused kernel; saves (row_max, row_sum), each (N_dst, H)."""
        dt = Z.dtype
        K = gat_kernels(Z)
        out = np.empty((g.num_dst, self.heads, self.out_channels), dtype=dt)
        row_max = np.empty((g.num_dst, self.heads), dtype=dt)
        row_sum = np.empty((g.num_dst, self.heads), dtype=dt)
        ops.call_kernel(K, "gat_forward", Z.size * g.num_edges // max(g.num_src, 1),
                        g.indptr, g.indices, a_dst, a_src, Z, dt.type(self.negative_slope), keep,
                        self._keep_scale(dt), out, row_max, row_sum)
        return out, (row_max, row_sum)

    def _dropout_factor(self, keep, dtype):
        """d = keep * 1/(1-p) as (E, H) floats, or None without dropout."""
        return None if keep.shape[0] == 0 else keep.astype(dtype) * self._keep_scale(dtype)

    def _aggregate_unfused(self, g, Z, a_src, a_dst, keep):
        """out (N_dst, H, F) by the foundation ops; saves (pre, alpha), each (E, H)."""
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
        if isinstance(self._saved(), _DeviceCache):
            return self._backward_device(grad_out)
        g, X, Z, a_src, a_dst, keep, saved = self._saved()
        H, F = self.heads, self.out_channels
        N_dst = g.num_dst
        expected = (N_dst, H * F) if self.concat else (N_dst, F)
        if grad_out.shape != expected:
            raise ValueError(f"grad_out must have shape {expected}, got {grad_out.shape}")
        if "b" in self.params:
            self.grads["b"] += grad_out.sum(axis=0)
        if self.concat:
            G = np.ascontiguousarray(grad_out).reshape(N_dst, H, F)
        else:  # out = mean_h out_h: each head receives G / H
            G = np.ascontiguousarray(np.broadcast_to((grad_out / Z.dtype.type(H))[:, None, :], (N_dst, H, F)))
        G = G.astype(Z.dtype, copy=False)
        if self.fused:
            dZ, da_src, da_dst = self._backward_fused(g, Z, a_src, a_dst, keep, saved, G)
        else:
            dZ, da_src, da_dst = self._backward_unfused(g, Z, keep, saved, G)
        # score path: a_src = <Z, att_src>, a_dst = <Z[:N_dst], att_dst>  (Z fans out three ways)
        att_src, att_dst = self.params["att_src"], self.params["att_dst"]
        self.grads["att_src"] += np.einsum("nh,nhf->hf", da_src, Z)
        self.grads["att_dst"] += np.einsum("nh,nhf->hf", da_dst, Z[:N_dst])
        dZ += da_src[:, :, None] * att_src
        dZ[:N_dst] += da_dst[:, :, None] * att_dst
        dZ = dZ.reshape(Z.shape[0], H * F)
        self.grads["W"] += np.asarray(X.T @ dZ)
        if sp.issparse(X) or not self.needs_input_grad:
            return None  # features are data: no gradient to pass on
        return dZ @ self.params["W"].T

    def _backward_fused(self, g, Z, a_src, a_dst, keep, saved, G):
        """(dZ message path (N_src, H, F), da_src (N_src, H), da_dst (N_dst, H)) by the fused kernel."""
        row_max, row_sum = saved
        dt = Z.dtype
        K = gat_kernels(Z)
        dZ = np.empty_like(Z)
        da_src = np.empty_like(a_src)
        da_dst = np.empty_like(a_dst)
        # two E x H workspaces, freed on return: never E x H x F
        grad_pre = np.empty((g.num_edges, self.heads), dtype=dt)
        alpha_d = np.empty((g.num_edges, self.heads), dtype=dt)
        ops.call_kernel(K, "gat_backward", Z.size * g.num_edges // max(g.num_src, 1),
                        g.indptr, g.indices, g.t_indptr, g.t_indices, g.t_perm, a_dst, a_src, Z,
                        dt.type(self.negative_slope), keep, self._keep_scale(dt), row_max, row_sum, G, grad_pre,
                        alpha_d, dZ, da_dst, da_src)
        return dZ, da_src, da_dst

    def _backward_unfused(self, g, Z, keep, saved, G):
        """The same three gradients by the foundation ops' backwards, from the stored alpha."""
        pre, alpha = saved
        d = self._dropout_factor(keep, Z.dtype)
        alpha_d = alpha if d is None else alpha * d
        dZ = np.empty_like(Z)
        for h in range(self.heads):  # out_h = A_h Z_h  =>  dZ_h = A_h^T G_h
            dZ[:, h] = ops.spmm_backward_X(g, np.ascontiguousarray(alpha_d[:, h]), np.ascontiguousarray(G[:, h]))
        grad_alpha = ops.sddmm_dot(g, G, Z)          # dL/dalpha_d[e, h] = <G[i, h], Z[j, h]>
        if d is not None:
            grad_alpha *= d
        grad_pre = ops.edge_softmax_backward(g, alpha, grad_alpha)    # dL/de, then dL/dpre in place:
        grad_pre *= np.where(pre > 0, Z.dtype.type(1), Z.dtype.type(self.negative_slope))  # LeakyReLU's slope
        da_dst, da_src = ops.sddmm_add_backward(g, grad_pre)
        return dZ, da_src, da_dst

    # ------------------------------------------------------------------ the device (fused only)
    def check_device_support(self):
        """Raise ValueError (one line) for what the device path lacks: the unfused composition."""
        if not self.fused:
            raise ValueError("GATConv(fused=False) cannot run on the GPU; on the device use fused=True "
                             "(the same numbers, from gat_cuda's fused kernels)")

    def to(self, device):
        if dense.check_device(device) != "cpu":
            self.check_device_support()
        return super().to(device)

    def _transform_device(self, X, n_dst):
        """``_transform`` on the device: Z (N_src, H, F) a free reshape of X W, a_src (N_src, H), a_dst (N_dst, H)."""
        ZW = dense.matmul(X, self.params["W"])          # dense tiled kernel, or SpMM for a DeviceCSR X
        Z = ZW.reshape(X.shape[0], self.heads, self.out_channels)
        return Z, dense.head_dot(Z, self.params["att_src"]), dense.head_dot(Z, self.params["att_dst"], n_dst)

    def _keep_mask_device(self, E, like):
        """(E, H) uint8 device keep mask (or (0, H) without dropout); see the class docstring for its source."""
        H = self.heads
        if not (self.training and self.dropout > 0.0):
            return dense.empty((0, H), np.uint8, like=like)
        if dense.get_dropout_masks() == "host":          # self.rng's own mask, as on the CPU: for comparisons
            return dense.to_device(self._keep_mask(E))
        return dense.attention_keep_mask(self, (E, H), np.float32(1.0 - self.dropout))

    def _forward_device(self, X, graph):
        self.check_device_support()
        g = self.message_graph(graph)
        if getattr(g, "device", "cpu") == "cpu":
            raise ValueError("GATConv: X is on the device but the graph is not; move it with graph.to('cuda')")
        Z, a_src, a_dst = self._transform_device(X, g.num_dst)
        keep = self._keep_mask_device(g.num_edges, Z)
        dt = Z.dtype
        H, F = self.heads, self.out_channels
        out = dense.empty((g.num_dst, H, F), dt, like=Z)
        row_max = dense.empty((g.num_dst, H), dt, like=Z)
        row_sum = dense.empty((g.num_dst, H), dt, like=Z)
        gat_kernels(Z).gat_forward(g.indptr, g.indices, a_dst, a_src, Z, dt.type(self.negative_slope), keep,
                                   self._keep_scale(dt), out, row_max, row_sum)
        out = out.reshape(g.num_dst, H * F) if self.concat else dense.head_mean(out)
        if "b" in self.params:
            dense.add_bias(out, self.params["b"])
        self._cache = _DeviceCache(g, X, Z, a_src, a_dst, keep, row_max, row_sum)
        return out

    def _backward_device(self, grad_out):
        c = self._saved()
        g, Z = c.graph, c.Z
        H, F = self.heads, self.out_channels
        N_dst, dt = g.num_dst, Z.dtype
        expected = (N_dst, H * F) if self.concat else (N_dst, F)
        if grad_out.shape != expected:
            raise ValueError(f"grad_out must have shape {expected}, got {grad_out.shape}")
        if not dense.is_device(grad_out) or grad_out.dtype != dt:
            raise TypeError(f"grad_out must be a {dt} device array like the forward's, got "
                            f"{type(grad_out).__name__} of {grad_out.dtype}")
        if "b" in self.params:
            dense.col_sum(grad_out, out=self.grads["b"], accumulate=True)
        if self.concat:   # a free view of the contiguous gradient, one head per slab
            G = grad_out.reshape(N_dst, H, F)
        else:
            G = dense.head_mean_backward(grad_out, H)
        # gat_backward overwrites every output: no zeroing needed; two E x H workspaces, never E x H x F
        dZ = dense.empty_like(Z)
        da_src, da_dst = dense.empty_like(c.a_src), dense.empty_like(c.a_dst)
        grad_pre = dense.empty((g.num_edges, H), dt, like=Z)
        alpha_d = dense.empty((g.num_edges, H), dt, like=Z)
        gat_kernels(Z).gat_backward(g.indptr, g.indices, g.t_indptr, g.t_indices, g.t_perm, c.a_dst, c.a_src, Z,
                                    dt.type(self.negative_slope), c.keep, self._keep_scale(dt), c.row_max,
                                    c.row_sum, G, grad_pre, alpha_d, dZ, da_dst, da_src)
        # score path: a_src = <Z, att_src>, a_dst = <Z[:N_dst], att_dst>  (Z fans out three ways)
        dense.head_dot_backward_att(da_src, Z, out=self.grads["att_src"], accumulate=True)
        dense.head_dot_backward_att(da_dst, Z, out=self.grads["att_dst"], accumulate=True)
        dense.head_dot_backward_Z_(dZ, da_src, self.params["att_src"])
        dense.head_dot_backward_Z_(dZ, da_dst, self.params["att_dst"])
        dZ = dZ.reshape(Z.shape[0], H * F)
        dense.matmul_tn(c.X, dZ, out=self.grads["W"], accumulate=True)
        if dense.issparse(c.X) or not self.needs_input_grad:
            return None  # features are data: no gradient to pass on
        return dense.matmul_nt(dZ, self.params["W"])


class _DeviceCache:
    """What the device backward reads: the message graph, X, Z (N_src, H, F), a_src, a_dst, the keep
    mask and the forward's row max and sum (N_dst, H) -- no E x H array is kept between the passes."""

    __slots__ = ("graph", "X", "Z", "a_src", "a_dst", "keep", "row_max", "row_sum")

    def __init__(self, graph, X, Z, a_src, a_dst, keep, row_max, row_sum):
        self.graph, self.X, self.Z, self.a_src, self.a_dst = graph, X, Z, a_src, a_dst
        self.keep, self.row_max, self.row_sum = keep, row_max, row_sum
