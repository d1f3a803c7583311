"""The graph transformer operator of Shi et al. (2021), PyG's ``TransformerConv``, with a hand-derived backward.

Derivation: derivations/transformer_conv.md. Attention is dot-product attention restricted to the
graph's edges, composed of the three sparse primitives (SDDMM-dot, edge softmax, SpMM) on a
*head-expanded* copy of the graph (see ``head_graph``), so every head runs in one call of each op.
"""
import math

import numpy as np

from ... import ops
from ...device import issparse, zeros
from ...graph import Graph
from ..checks import check_features, check_graph, float_dtype, positive_int, probability
from ..init import as_rng
from ..linear import Linear
from ..module import Module


def head_graph(graph, heads):
    """The graph of H independent heads: row i*H + h holds i's edges, from sources j*H + h (cached, on graph's device).

    Per-head node arrays Z (N, H, C) are, as a free reshape, (N*H, C) arrays whose row n*H + h is
    (n, h); on this graph one SpMM / SDDMM / edge softmax does all heads at once, and an edge array
    of it, (E*H,), holds (edge e, head h) at position ``head_positions(graph, H)[e, h]``: rows in node
    order, heads within a row, edges of a row in the graph's CSR order.
    """
    def build(host):
        indices = _expand(host, heads, host.indices)
        return Graph(_expanded_indptr(host, heads), indices, None, host.num_src * heads, _validated=True)
    return graph.derived(("transformer_head_graph", heads), build)


def edge_feature_graph(graph, heads):
    """``head_graph``'s structure, but edge (e, h) comes from *source row* edge_id[e]*H + h of a per-edge array.

    Edge features of PyG, (E, H*C) in ``edge_index`` column order, reshaped (E*H, C), are then the
    source nodes of this graph: SpMM over it sums alpha_e * edge_attr_e into the destination, and
    SDDMM-dot pairs each destination's query with its edges' features -- in the same edge order as
    ``head_graph``, so the two graphs' edge arrays add position by position. Raises ValueError when
    an edge of the graph has no ``edge_index`` column (a self-loop added by ``with_self_loops``).
    """
    def build(host):
        E = host.num_edges
        eid = host.edge_id
        if np.any(eid < 0) or (E and eid.max() >= E):
            raise ValueError("edge_attr needs every edge of the graph to be a column of its edge_index (edge_id in "
                             "[0, E)); this graph has edges without one (self-loops added by with_self_loops?)")
        return Graph(_expanded_indptr(host, heads), _expand(host, heads, eid), None, E * heads, _validated=True)
    return graph.derived(("transformer_edge_feature_graph", heads), build)


def _expanded_indptr(host, H):
    deg = np.diff(host.indptr)
    indptr = np.zeros(host.num_dst * H + 1, dtype=np.int64)
    np.cumsum(np.repeat(deg, H), out=indptr[1:])
    return indptr


def head_positions(host, H):
    """(E, H) int64: the position of (edge e in CSR order, head h) in ``head_graph``'s edge arrays."""
    dst = host.dst_of_edge()
    start, deg = host.indptr[:-1][dst], np.diff(host.indptr)[dst]
    local = np.arange(host.num_edges) - start
    return H * start[:, None] + np.arange(H)[None, :] * deg[:, None] + local[:, None]


def _expand(host, H, source_ids):
    out = np.empty(host.num_edges * H, dtype=np.int64)
    out[head_positions(host, H)] = source_ids.astype(np.int64)[:, None] * H + np.arange(H)[None, :]
    return out


class TransformerConv(Module):
    """Multi-head dot-product attention over the edges j -> i (Shi et al. 2021, "Masked Label Prediction").

    PyG's ``TransformerConv(in_channels, out_channels, heads=1, concat=True, beta=False, dropout=0.,
    edge_dim=None, bias=True, root_weight=True)``, same arguments and meaning. Per head h (C = out_channels):
        q_i = W_q x_i + b_q,  k_j = W_k x_j + b_k,  v_j = W_v x_j + b_v,  e_ji = W_e edge_attr_ji   (each (C,))
        alpha_ji = softmax over the edges entering i of  <q_i, k_j + e_ji> / sqrt(C)
        m_i = sum_{e: j->i} alpha_ji d_ji (v_j + e_ji)      (d: attention dropout, training only)
    then heads are concatenated (N, H*C) or averaged (N, C); with ``root_weight`` the skip
    r_i = W_s x_i + b_s is added: out = m + r, or with ``beta`` gated,
        b_i = sigmoid([m_i, r_i, m_i - r_i] . w_beta),   out_i = b_i r_i + (1 - b_i) m_i.
    No self-loops are added (as PyG); a node with no in-edge gets m_i = 0. Repeated edges each count.

    Parameters are held by child ``Linear`` layers named like PyG's: ``lin_query``, ``lin_key``,
    ``lin_value`` (F_in -> H*C, bias ``bias``), ``lin_edge`` (edge_dim -> H*C, no bias; only with
    ``edge_dim``), ``lin_skip`` (F_in -> H*C or C, bias ``bias``; only with ``root_weight``),
    ``lin_beta`` (3*(H*C or C) -> 1, no bias; only with ``beta`` and ``root_weight``). Our ``W`` is
    PyG's ``weight`` transposed.

    Shapes: x (N_src, F_in) dense float of the layer's dtype; the graph (N_dst, N_src): square (a
    ``GraphBatch`` too) or a block whose destinations are its first N_dst sources; edge_attr
    (E, edge_dim) in the graph's ``edge_index`` column order (``graph.edge_id`` maps CSR positions
    to columns), required iff ``edge_dim``; out (N_dst, H*C) if concat else (N_dst, C).
    ``backward(G)`` returns dL/dx (None with ``needs_input_grad = False``) and leaves dL/d edge_attr
    in ``self.grad_edge_attr`` (E, edge_dim), in edge_index column order.

    Attention dropout (``dropout`` > 0, training mode) is PyG's: on alpha after the softmax, a fresh
    keep mask per forward from a key drawn from ``self.rng`` (``ops.dropout``), replayed in backward.
    Errors: TypeError / ValueError for bad constructor arguments; ValueError for a missing graph, x
    or edge_attr of the wrong shape or with NaN / Inf, edge_attr given without ``edge_dim`` or
    missing with it, or a graph whose edges lack edge_index columns; TypeError for sparse x or
    x / edge_attr of another dtype.
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, heads=1, concat=True, beta=False, dropout=0.0, edge_dim=None,
                 bias=True, root_weight=True, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.heads = positive_int("heads", heads)
        for name, v in (("concat", concat), ("beta", beta), ("bias", bias), ("root_weight", root_weight)):
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {v!r}")
        self.edge_dim = None if edge_dim is None else positive_int("edge_dim", edge_dim)
        self.dropout = probability("dropout", dropout)
        if self.dropout >= 1.0:
            raise ValueError(f"dropout must be in [0, 1) (1 would drop every attention weight), got {dropout!r}")
        self.concat, self.root_weight = bool(concat), bool(root_weight)
        self.beta = bool(beta) and self.root_weight          # PyG: beta needs the skip it gates
        dtype = float_dtype(dtype)
        H, C = self.heads, self.out_channels
        D = H * C if self.concat else C
        self.rng = as_rng(seed)                 # the weights' seeds first, then the dropout keys
        seeds = [int(s) for s in self.rng.integers(0, 2**31 - 1, size=6)]
        self.lin_key = Linear(self.in_channels, H * C, bias=bias, seed=seeds[0], dtype=dtype)
        self.lin_query = Linear(self.in_channels, H * C, bias=bias, seed=seeds[1], dtype=dtype)
        self.lin_value = Linear(self.in_channels, H * C, bias=bias, seed=seeds[2], dtype=dtype)
        if self.edge_dim is not None:
            self.lin_edge = Linear(self.edge_dim, H * C, bias=False, seed=seeds[3], dtype=dtype)
        if self.root_weight:
            self.lin_skip = Linear(self.in_channels, D, bias=bias, seed=seeds[4], dtype=dtype)
        if self.beta:
            self.lin_beta = Linear(3 * D, 1, bias=False, seed=seeds[5], dtype=dtype)
        self.grad_edge_attr = None

    def __repr__(self):
        return (f"TransformerConv({self.in_channels}, {self.out_channels}, heads={self.heads}, concat={self.concat}, "
                f"beta={self.beta}, root_weight={self.root_weight}, edge_dim={self.edge_dim})")

    @property
    def dtype(self):
        return self.lin_query.params["W"].dtype

    # ------------------------------------------------------------------ forward
    def _check_input(self, x, graph, edge_attr):
        check_graph(self, graph)
        if issparse(x):
            raise TypeError("TransformerConv needs dense x, got a sparse matrix")
        X = check_features(x, num_cols=self.in_channels, dtype=self.dtype, graph=graph)
        if self.edge_dim is None and edge_attr is not None:
            raise ValueError("edge_attr was given but the layer has no edge_dim: build TransformerConv(..., edge_dim=F_e)")
        if self.edge_dim is not None:
            if edge_attr is None:
                raise ValueError(f"TransformerConv(edge_dim={self.edge_dim}) needs edge_attr of shape "
                                 f"({graph.num_edges}, {self.edge_dim}): forward(x, graph, edge_attr)")
            edge_attr = check_features(edge_attr, num_rows=graph.num_edges, num_cols=self.edge_dim, dtype=self.dtype,
                                       name="edge_attr")
        return X, edge_attr

    def forward(self, x, graph=None, edge_attr=None):
        """out: (N_dst, H*C) if concat else (N_dst, C)."""
        X, edge_attr = self._check_input(x, graph, edge_attr)
        H, C = self.heads, self.out_channels
        n_dst, n_src, E = graph.num_dst, graph.num_src, graph.num_edges
        X_dst = X if n_dst == n_src else X[:n_dst]
        gH = head_graph(graph, H)
        Q = self.lin_query.forward(X_dst, graph).reshape(n_dst * H, C)   # row i*H + h: (node i, head h)
        K = self.lin_key.forward(X, graph).reshape(n_src * H, C)
        V = self.lin_value.forward(X, graph).reshape(n_src * H, C)
        Ee, gE = None, None
        if self.edge_dim is not None:
            Ee = self.lin_edge.forward(edge_attr, graph).reshape(E * H, C)   # row e*H + h, e an edge_index column
            gE = edge_feature_graph(graph, H) if E else None
        # scores s = <q_i, k_j + e_ji> / sqrt(C), one per (edge, head): (E*H, 1)
        s = ops.sddmm_dot(gH, _rows3(Q), _rows3(K))
        if gE is not None:
            ops.add_(s, ops.sddmm_dot(gE, _rows3(Q), _rows3(Ee)))
        s = ops.scale(s, 1.0 / math.sqrt(C))
        alpha = ops.edge_softmax(gH, s).reshape(E * H)
        key = None
        if self.training and self.dropout > 0.0:
            key = int(self.rng.integers(0, 1 << 63))
            alpha_d = ops.dropout(alpha, key, 1.0 - self.dropout)
        else:
            alpha_d = alpha
        # m_i = sum_e alpha_e (v_j + e_ji): (N_dst*H, C)
        M = ops.spmm(gH, alpha_d, V)
        if gE is not None:
            ops.add_(M, ops.spmm(gE, alpha_d, Ee))
        out = M.reshape(n_dst, H * C) if self.concat else ops.head_mean(M.reshape(n_dst, H, C))
        xr = b = None
        if self.root_weight:
            xr = self.lin_skip.forward(X_dst, graph)
            if self.beta:
                y, b = ops.beta_gate(out, xr, self.lin_beta.params["W"].reshape(-1))
            else:
                y = ops.add_(out, xr)                  # in place: without the gate, backward needs neither
        else:
            y = out
        self._cache = (graph, gH, gE, X.shape, Q, K, V, Ee, alpha, alpha_d, key, out, xr, b)
        return y

    # ------------------------------------------------------------------ backward
    def backward(self, grad_out):
        """dL/dx (N_src, F_in); adds into every Linear's grads; dL/d edge_attr goes to ``self.grad_edge_attr``."""
        graph, gH, gE, x_shape, Q, K, V, Ee, alpha, alpha_d, key, out, xr, b = self._saved()
        H, C = self.heads, self.out_channels
        n_dst, n_src, E = graph.num_dst, graph.num_src, graph.num_edges
        dX_dst = None
        if self.root_weight:
            if self.beta:
                w = self.lin_beta.params["W"].reshape(-1)
                d_out, d_xr, dz = ops.beta_gate_backward(grad_out, out, xr, b, w)
                self._beta_weight_grad(out, xr, dz)
            else:
                d_out, d_xr = grad_out, grad_out                     # out = m + r: the gradient reaches both
            dX_dst = self.lin_skip.backward(d_xr)
        else:
            d_out = grad_out
        # per (node, head) rows: the concatenation is a free view; the mean sends G/H to every head
        Gm = d_out.reshape(n_dst * H, C) if self.concat else ops.head_mean_backward(d_out, H).reshape(n_dst * H, C)
        dV = ops.spmm_backward_X(gH, alpha_d, Gm)                    # dv_j = sum_e alpha_e G_i
        g_alpha = ops.sddmm_dot(gH, _rows3(Gm), _rows3(V))           # dL/dalpha_e = <G_i, v_j (+ e_ji)>
        dEe = None
        if gE is not None:
            dEe = ops.spmm_backward_X(gE, alpha_d, Gm)
            ops.add_(g_alpha, ops.sddmm_dot(gE, _rows3(Gm), _rows3(Ee)))
        g_alpha = g_alpha.reshape(E * H)
        if key is not None:
            g_alpha = ops.dropout(g_alpha, key, 1.0 - self.dropout)   # the same mask and 1/(1-p)
        ds = ops.edge_softmax_backward(gH, alpha.reshape(E * H, 1), g_alpha.reshape(E * H, 1))
        ds = ops.scale(ds, 1.0 / math.sqrt(C)).reshape(E * H)
        dQ = ops.spmm(gH, ds, K)                                     # dq_i = sum_e ds_e (k_j + e_ji)
        dK = ops.spmm_backward_X(gH, ds, Q)                          # dk_j = sum_e ds_e q_i
        if gE is not None:
            ops.add_(dQ, ops.spmm(gE, ds, Ee))
            ops.add_(dEe, ops.spmm_backward_X(gE, ds, Q))            # de_ji = alpha_e G_i + ds_e q_i
        if self.edge_dim is not None:
            if dEe is None:                                          # no edges: nothing reaches edge_attr
                dEe = zeros((0, H * C), Q.dtype, like=Q)
            self.grad_edge_attr = self.lin_edge.backward(dEe.reshape(E, H * C))
        dX = self.lin_key.backward(dK.reshape(n_src, H * C))
        ops.add_(dX, self.lin_value.backward(dV.reshape(n_src, H * C)))
        dq_x = self.lin_query.backward(dQ.reshape(n_dst, H * C))
        if dX_dst is not None:
            ops.add_(dq_x, dX_dst)
        ops.add_(dX if n_dst == n_src else dX[:n_dst], dq_x)          # x_dst is x's first N_dst rows
        if not self.needs_input_grad:
            return None
        return dX

    def _beta_weight_grad(self, out, xr, dz):
        """lin_beta's W (3D, 1) += [out, xr, out - xr]^T dz, the last block as the difference of the first two."""
        D = out.shape[1]
        dz = dz.reshape(-1, 1)
        t_out, t_xr = ops.matmul_tn(out, dz), ops.matmul_tn(xr, dz)
        gW = self.lin_beta.grads["W"]
        ops.add_(gW[:D], t_out)
        ops.add_(gW[D:2 * D], t_xr)
        ops.add_(gW[2 * D:], t_out)
        ops.sub_(gW[2 * D:], t_xr)


def _rows3(A):
    """(R, C) -> (R, 1, C): one 'head' per row, the layout ``ops.sddmm_dot`` reads (a free reshape)."""
    return A.reshape(A.shape[0], 1, A.shape[1])
