"""PinSage's convolution (Ying et al., "Graph Convolutional Neural Networks for Web-Scale Recommender Systems",
KDD 2018, Algorithm 1) with importance pooling; backward derived in derivations/pinsage.md."""
import numpy as np

from ... import ops
from ..checks import check_features, check_graph, float_dtype, positive_int
from ..init import as_rng, glorot
from ..module import Module

NORM_EPS = 1e-12  # z = y / max(||y||, eps): an all-zero row stays 0 (and gets no gradient, see backward)


class PinSAGEConv(Module):
    """z_u = normalize(ReLU(W [h_u || n_u] + w)),   n_u = sum_v alpha_uv ReLU(Q h_v + q)   (Algorithm 1, CONVOLVE).

    The three pieces (the split layer-wise inference uses; ``forward`` is exactly their composition,
    ``combine(x[:N_dst], aggregate(transform(x), block))``, same ops in the same order, so evaluating
    row chunks gives the same bits as one call):
        transform(h)          m = ReLU(h Q + q)                once per source node, not per edge
        aggregate(m, block)   n = A m,  A[u, v] = alpha_uv     ``ops.spmm`` with the block's edge weights
        combine(h_dst, n)     z = normalize(ReLU(h_dst W_self + n W_neigh + w)),  W = [W_self; W_neigh]
    Importance pooling is the weighted mean of the paper: the block's edge weights are the alpha of
    ``pinsage.importance_neighbourhoods`` (each row sums to 1), so ``aggregate`` is a plain weighted
    sum; an unweighted block aggregates with weight 1 per edge (a sum). A repeated edge counts once
    per copy; an empty row aggregates to n_u = 0.
    normalize (default on, as the paper): z = y / max(||y||, 1e-12); an all-zero y (every
    pre-activation <= 0) stays the zero vector, and its gradient is 0 (ReLU passes nothing there).

    Shapes: x / h: (N_src, F_in) float; block (N_dst, N_src) whose destinations are its first N_dst
    sources (``pinsage.importance_blocks``; or all N nodes: square). m: (N_src, F_hid), n: (N_dst,
    F_hid), output z: (N_dst, F_out). Params: Q (F_in, F_hid), q (F_hid,), W (F_in + F_hid, F_out),
    w (F_out,).
    Backward (derivations/pinsage.md):
        G_y = (G - z (z.G)) / ||y||  (normalize);  G_p = G_y [p > 0];  dw = sum_u G_p;
        dW = [H_dst; N]^T G_p;  dH[:N_dst] += G_p W_self^T;  dN = G_p W_neigh^T;
        dM = A^T dN;  G_r = dM [r > 0];  dQ = H^T G_r;  dq = sum_v G_r;  dH += G_r Q^T
    With ``needs_input_grad = False`` (features that are data) backward skips dH and returns None.
    Raises TypeError / ValueError for non-positive widths, a non-float dtype, a graph whose N_dst
    exceeds N_src, x of the wrong shape / dtype / non-finite values.
    """

    needs_input_grad = True

    def __init__(self, in_channels, hidden_channels, out_channels, normalize=True, seed=0, dtype=np.float32):
        super().__init__()
        F_in = positive_int("in_channels", in_channels)
        F_hid = positive_int("hidden_channels", hidden_channels)
        F_out = positive_int("out_channels", out_channels)
        self.in_channels, self.hidden_channels, self.out_channels = F_in, F_hid, F_out
        self.normalize = bool(normalize)
        dtype = float_dtype(dtype)
        s = [int(q.generate_state(1)[0]) for q in np.random.SeedSequence(seed).spawn(2)]
        self.add_param("Q", glorot(as_rng(s[0]), F_in, F_hid, dtype=dtype))
        self.add_param("q", np.zeros(F_hid, dtype=dtype))
        self.add_param("W", glorot(as_rng(s[1]), F_in + F_hid, F_out, dtype=dtype))
        self.add_param("w", np.zeros(F_out, dtype=dtype))

    # ------------------------------------------------------------------ the three pieces
    def _transform(self, h):
        pre = ops.add_bias(ops.matmul(h, self.params["Q"]), self.params["q"])
        return ops.relu(pre)                                    # (m, [r > 0])

    def _combine(self, h_dst, n):
        F_in = self.in_channels
        W = self.params["W"]
        pre = ops.matmul(h_dst, W[:F_in])
        ops.add_(pre, ops.matmul(n, W[F_in:]))
        ops.add_bias(pre, self.params["w"])
        y, pos = ops.relu(pre)
        z, norm = ops.row_normalize(y, NORM_EPS) if self.normalize else (y, None)
        return z, pos, norm

    def transform(self, h):
        """m = ReLU(h Q + q): h (N, F_in) -> (N, F_hid). Per node, so it can run on any row chunk."""
        return self._transform(h)[0]

    @staticmethod
    def aggregate(m, block):
        """n = A m with A[u, v] = the block's edge weight (alpha_uv; 1 when unweighted): (N_dst, F_hid).

        m: (N_src, F_hid), one row per source of ``block``. An empty row gives n_u = 0.
        """
        return ops.spmm(block, ops.edge_weight_or_ones(block, m.dtype), m)

    def combine(self, h_dst, n):
        """z = normalize(ReLU(h_dst W_self + n W_neigh + w)): h_dst (N_dst, F_in), n (N_dst, F_hid) -> (N_dst, F_out)."""
        return self._combine(h_dst, n)[0]

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x, graph=None):
        check_graph(self, graph)
        H = check_features(x, num_cols=self.in_channels, dtype=self.params["Q"].dtype, graph=graph)
        N_dst = graph.num_dst
        H_dst = H if H.shape[0] == N_dst else H[:N_dst]
        M, pos_m = self._transform(H)
        n = self.aggregate(M, graph)
        z, pos_y, norm = self._combine(H_dst, n)
        self._cache = (graph, H, H_dst, pos_m, n, pos_y, z, norm)
        return z

    def backward(self, grad_out):
        graph, H, H_dst, pos_m, n, pos_y, z, norm = self._saved()
        F_in = self.in_channels
        W, dW = self.params["W"], self.grads["W"]
        G = grad_out
        if self.normalize:                 # z = y / ||y||:  dy = (G - z (z.G)) / ||y||  (G / eps below eps)
            G = ops.row_normalize_backward(G, z, norm, NORM_EPS)
        Gp = ops.relu_backward(G, pos_y)                                           # G_p = G_y [p > 0]
        ops.col_sum(Gp, out=self.grads["w"], accumulate=True)                       # dw += sum_u G_p
        ops.matmul_tn(H_dst, Gp, out=dW[:F_in], accumulate=True)                    # dW_self += H_dst^T G_p
        ops.matmul_tn(n, Gp, out=dW[F_in:], accumulate=True)                        # dW_neigh += N^T G_p
        dN = ops.matmul_nt(Gp, W[F_in:])                                            # dN = G_p W_neigh^T
        dM = ops.spmm_backward_X(graph, ops.edge_weight_or_ones(graph, dN.dtype), dN)   # dM = A^T dN
        Gr = ops.relu_backward(dM, pos_m)                                           # G_r = dM [r > 0]
        ops.matmul_tn(H, Gr, out=self.grads["Q"], accumulate=True)                  # dQ += H^T G_r
        ops.col_sum(Gr, out=self.grads["q"], accumulate=True)                       # dq += sum_v G_r
        if not self.needs_input_grad:
            return None
        dH = ops.matmul_nt(Gr, self.params["Q"])                                    # dH = G_r Q^T
        ops.add_(dH if dH.shape[0] == H_dst.shape[0] else dH[:H_dst.shape[0]],
                 ops.matmul_nt(Gp, W[:F_in]))                                       # dH[:N_dst] += G_p W_self^T
        return dH
