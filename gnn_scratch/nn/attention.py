"""Full multi-head self-attention within each graph of a batch (Vaswani et al. 2017), torch's ``nn.MultiheadAttention``.

Every node attends to every node of its own graph (a ``GraphBatch``'s block-diagonal structure is
the only mask), as the global branch of GraphGPS does with PyG's ``to_dense_batch`` and a
key-padding mask -- without padding anything. The attention itself is the fused op
``ops.flash_attention`` / ``ops.flash_attention_backward`` (derivations/flash_attention.md);
this module adds the projections (derivations/graph_transformer.md, section 2).
"""
import math

import numpy as np

from .. import ops
from ..device import issparse, to_host
from .checks import check_features, float_dtype, positive_int, probability
from .init import as_rng, glorot
from .module import Module


def graph_ptr_of(graph, num_nodes):
    """(B+1,) int64 node offsets of the graphs: a ``GraphBatch``'s ``graph_ptr``, [0, N] for one ``Graph`` or None.

    Raises ValueError for a non-square graph (attention among the nodes of one graph needs one node set).
    """
    if graph is None:
        return np.array([0, num_nodes], dtype=np.int64)
    if graph.num_dst != graph.num_src:
        raise ValueError(f"MultiheadAttention needs a square graph (nodes attend within their own graph), "
                         f"got shape {graph.shape}")
    if graph.num_dst != num_nodes:
        raise ValueError(f"x must have one row per node of the graph ({graph.num_dst}), got {num_nodes}")
    ptr = getattr(graph, "graph_ptr", None)
    return np.array([0, num_nodes], dtype=np.int64) if ptr is None else ptr


# ------------------------------------------------------------------------------------------------------------
# Dense per-graph attention with the signature of ops.flash_attention: the fallback until the fused op is
# there, and the path of attention dropout (the fused op has no dropout: it never forms the probabilities).
def dense_attention(Q, K, V, graph_ptr, scale=None, keep_mask=None, keep=1.0):
    """(O, L): O[i, h] = sum_j P[i, j, h] V[j, h], P the softmax over j in i's graph of scale <Q[i, h], K[j, h]>.

    Q, K, V, O (N, H, d) host float arrays; graph_ptr (B+1,); L (N, H) the row log-sum-exp
    (m + log sum exp(S - m)), as ops.flash_attention saves it. With ``keep_mask`` (a flat uint8
    array of sum_k H n_k^2 entries, graph by graph, each (H, n_k, n_k) in C order) the
    probabilities are dropped and scaled by 1/keep before they weigh V. O(sum_k H n_k^2 d).
    """
    Q, K, V = (np.asarray(to_host(a)) for a in (Q, K, V))
    N, H, d = Q.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    O, L = np.empty_like(Q), np.empty((N, H), dtype=Q.dtype)
    off = 0
    for a, b in zip(graph_ptr[:-1], graph_ptr[1:]):
        q, k, v = (np.ascontiguousarray(t[a:b].transpose(1, 0, 2)) for t in (Q, K, V))   # (H, n, d)
        S = scale * (q @ k.transpose(0, 2, 1))                                        # (H, n, n)
        m = S.max(axis=2, keepdims=True)
        P = np.exp(S - m)
        s = P.sum(axis=2, keepdims=True)
        P /= s
        L[a:b] = (m + np.log(s))[:, :, 0].T
        if keep_mask is not None:
            n = b - a
            P = P * keep_mask[off:off + H * n * n].reshape(H, n, n) / keep
            off += H * n * n
        O[a:b] = (P @ v).transpose(1, 0, 2)
    return O, L


def dense_attention_backward(dO, Q, K, V, O, L, graph_ptr, scale=None, keep_mask=None, keep=1.0):
    """(dQ, dK, dV) of ``dense_attention``, P recomputed from the saved L (derivations/flash_attention.md):

    dV = P_d^T dO,  dP_d = dO V^T,  dP = dP_d * mask / keep,  dS = P (dP - rowsum(P dP)),
    dQ = scale dS K,  dK = scale dS^T Q   (per graph and head; P_d = P without dropout).
    """
    dO, Q, K, V = (np.asarray(to_host(a)) for a in (dO, Q, K, V))
    L = np.asarray(to_host(L))
    N, H, d = Q.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    dQ, dK, dV = np.empty_like(Q), np.empty_like(K), np.empty_like(V)
    off = 0
    for a, b in zip(graph_ptr[:-1], graph_ptr[1:]):
        q, k, v, g = (np.ascontiguousarray(t[a:b].transpose(1, 0, 2)) for t in (Q, K, V, dO))
        P = np.exp(scale * (q @ k.transpose(0, 2, 1)) - L[a:b].T[:, :, None])
        Pd, mask = P, None
        if keep_mask is not None:
            n = b - a
            mask = keep_mask[off:off + H * n * n].reshape(H, n, n) / keep
            off += H * n * n
            Pd = P * mask
        dV[a:b] = (Pd.transpose(0, 2, 1) @ g).transpose(1, 0, 2)
        dP = g @ v.transpose(0, 2, 1)
        if mask is not None:
            dP = dP * mask
        dS = P * (dP - (P * dP).sum(axis=2, keepdims=True))
        dQ[a:b] = (scale * (dS @ k)).transpose(1, 0, 2)
        dK[a:b] = (scale * (dS.transpose(0, 2, 1) @ q)).transpose(1, 0, 2)
    return dQ, dK, dV


def _attention_ops():
    """(forward, backward): the fused ops when gnn_scratch.ops has them, else the dense fallback."""
    fwd, bwd = getattr(ops, "flash_attention", None), getattr(ops, "flash_attention_backward", None)
    if fwd is not None and bwd is not None:
        return fwd, bwd
    return dense_attention, dense_attention_backward


class MultiheadAttention(Module):
    """Self-attention of every node over the nodes of its own graph: torch's ``nn.MultiheadAttention``.

    ``MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True)``; forward(x, graph) with x
    (N, E) and graph a ``GraphBatch`` (B graphs; ``graph_ptr``) or a ``Graph`` (one graph; its edges
    are not used), equal per graph k to torch's ``mha(x_k, x_k, x_k, need_weights=False)`` with
    ``batch_first=True``. Per head h (d = E / H columns h*d : (h+1)*d):
        Q = x W_q^T + b_q,  K = x W_k^T + b_k,  V = x W_v^T + b_v       (in_proj: W (3E, E), b (3E,))
        O_i^h = sum_{j in graph(i)} softmax_j(<Q_i^h, K_j^h> / sqrt(d)) V_j^h
        y = concat_h(O^h) W_o^T + b_o                                    (out_proj)
    Parameters in torch's layout and names: ``in_proj_weight`` (3E, E), ``in_proj_bias`` (3E,),
    ``out_proj_weight`` (E, E), ``out_proj_bias`` (E,) (biases only with ``bias``).

    The attention runs in ``ops.flash_attention`` (O(N d) memory: nothing of size n_k^2 is kept;
    its backward recomputes the probabilities from the saved log-sum-exp). With ``dropout`` > 0 in
    training mode the probabilities themselves are dropped (torch's semantics), which the fused op
    cannot do: that forward runs the dense per-graph path (``dense_attention``, host NumPy, O(n_k^2)
    per graph), with the keep mask (``ops.keep_mask``, a fresh key from ``self.rng``) replayed in
    backward.

    Backward (derivations/graph_transformer.md, section 2): db_o = sum_n G; dW_o = G^T O;
    dO = G W_o; (dQ, dK, dV) = attention backward; dW_{q,k,v} = d{Q,K,V}^T x, db = column sums;
    dx = dQ W_q + dK W_k + dV W_v.
    Errors: TypeError / ValueError for bad constructor arguments (embed_dim divisible by
    num_heads); ValueError for x of the wrong shape or with NaN / Inf, a non-square graph.
    """

    needs_input_grad = True

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, seed=0, dtype=np.float32):
        super().__init__()
        E, H = positive_int("embed_dim", embed_dim), positive_int("num_heads", num_heads)
        if E % H:
            raise ValueError(f"embed_dim ({E}) must be divisible by num_heads ({H})")
        self.embed_dim, self.num_heads, self.head_dim = E, H, E // H
        self.dropout = probability("dropout", dropout)
        if self.dropout >= 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        self.bias = bool(bias)
        dtype = float_dtype(dtype)
        self.rng = as_rng(seed)
        # torch: xavier_uniform_ on in_proj_weight (fan_in E, fan_out 3E), zero biases
        self.add_param("in_proj_weight", np.ascontiguousarray(glorot(self.rng, E, 3 * E, dtype=dtype).T))
        self.add_param("out_proj_weight", glorot(self.rng, E, E, dtype=dtype))
        if self.bias:
            self.add_param("in_proj_bias", np.zeros(3 * E, dtype=dtype))
            self.add_param("out_proj_bias", np.zeros(E, dtype=dtype))

    def __repr__(self):
        return f"MultiheadAttention({self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout})"

    def _project(self, x, part):
        """x W_part^T + b_part for part 0 (q), 1 (k), 2 (v): (N, E), from a row block of in_proj (a view)."""
        E = self.embed_dim
        y = ops.matmul_nt(x, self.params["in_proj_weight"][part * E:(part + 1) * E])
        if self.bias:
            ops.add_bias(y, self.params["in_proj_bias"][part * E:(part + 1) * E])
        return y

    def forward(self, x, graph=None):
        """y (N, E): each node's attention over its own graph, projected."""
        if issparse(x):
            raise TypeError("MultiheadAttention needs dense x, got a sparse matrix")
        x = check_features(x, num_cols=self.embed_dim, dtype=self.params["in_proj_weight"].dtype)
        N, H, d = x.shape[0], self.num_heads, self.head_dim
        ptr = graph_ptr_of(graph, N)
        Q, K, V = (self._project(x, p).reshape(N, H, d) for p in range(3))
        scale = 1.0 / math.sqrt(d)
        keep_mask = None
        if self.training and self.dropout > 0.0:
            sizes = np.diff(ptr)
            key = int(self.rng.integers(0, 1 << 63))
            keep_mask = to_host(ops.keep_mask((int(H * np.sum(sizes * sizes)),), key, 1.0 - self.dropout, like=x))
            O, L = dense_attention(Q, K, V, ptr, scale, keep_mask, 1.0 - self.dropout)
        else:
            O, L = _attention_ops()[0](Q, K, V, ptr, scale)
        O2 = O.reshape(N, H * d)
        y = ops.matmul_nt(O2, self.params["out_proj_weight"])
        if self.bias:
            ops.add_bias(y, self.params["out_proj_bias"])
        self._cache = (x, ptr, Q, K, V, O, L, scale, keep_mask)
        return y

    def backward(self, grad_out):
        x, ptr, Q, K, V, O, L, scale, keep_mask = self._saved()
        N, H, d, E = x.shape[0], self.num_heads, self.head_dim, self.embed_dim
        O2 = O.reshape(N, E)
        if self.bias:
            ops.col_sum(grad_out, out=self.grads["out_proj_bias"], accumulate=True)        # db_o += Σ_n G[n]
        ops.matmul_tn(grad_out, O2, out=self.grads["out_proj_weight"], accumulate=True)  # dW_o += G^T O
        dO = ops.matmul(grad_out, self.params["out_proj_weight"]).reshape(N, H, d)       # dO = G W_o
        if keep_mask is not None:
            dQ, dK, dV = dense_attention_backward(dO, Q, K, V, O, L, ptr, scale, keep_mask, 1.0 - self.dropout)
        else:
            dQ, dK, dV = _attention_ops()[1](dO, Q, K, V, O, L, ptr, scale)
        W, gW = self.params["in_proj_weight"], self.grads["in_proj_weight"]
        dx = None
        for p, dP in enumerate((dQ, dK, dV)):
            dP = dP.reshape(N, E)
            rows = slice(p * E, (p + 1) * E)
            ops.matmul_tn(dP, x, out=gW[rows], accumulate=True)                           # dW_p += dP^T x
            if self.bias:
                ops.col_sum(dP, out=self.grads["in_proj_bias"][rows], accumulate=True)    # db_p += Σ_n dP[n]
            if self.needs_input_grad:
                t = ops.matmul(dP, W[rows])                                                # dx += dP W_p
                dx = t if dx is None else ops.add_(dx, t)
        return dx
