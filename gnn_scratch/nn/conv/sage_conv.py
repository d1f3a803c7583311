"""GraphSAGE convolution (Hamilton, Ying & Leskovec, 2017) with four aggregators (derivations/sage.md)."""
import numpy as np

from ... import ops
from ...device import issparse
from ...threads import layer_blas_pool
from ..checks import check_features, check_graph, float_dtype, positive_int
from ..init import as_rng, glorot
from ..lstm import LSTM, pack_neighbours
from ..module import Module

AGGREGATORS = ("mean", "sum", "max", "lstm")
DEVICE_AGGREGATORS = ("mean", "sum", "max")   # the LSTM walks packed sequences on the host
NORM_EPS = 1e-12  # PyG's F.normalize: y = x / max(||x||, eps)


class SAGEConv(Module):
    """h'_i = W_self h_i + W_neigh agg_{j in N(i)} m_j + b, optionally L2-normalised per row.

    Messages m_j = h_j, or m_j = ReLU(W_proj h_j + b_proj) with ``project`` (PyG's ``project=True``;
    the default for aggr="max", which makes it the paper's pooling aggregator, and off for the
    others). Messages are computed once per source node, not per edge. Aggregators over N(i):
        "mean"  (1/|N(i)|) sum_j m_j            "sum"  sum_j m_j
        "max"   element-wise max_j m_j (tie: the first edge in CSR order wins)
        "lstm"  final hidden state of an LSTM over m_j in a random order of N(i)
    An empty neighbourhood aggregates to 0 (all four). Edge weights are ignored, as in PyG.

    Self term:  root_weight=True    W_self h_i + W_neigh agg_i + b   (PyG: lin_r, lin_l)
                concat=True         W [h_i || agg_i] + b             (the paper; W = [W_self; W_neigh])
                root_weight=False   W_neigh agg_i + b
    normalize:  y_i = h'_i / max(||h'_i||, 1e-12)  (a zero row stays 0).

    Shapes: H: (N_src, F_in) dense or scipy.sparse (the sparse input gets no gradient); the graph
    is (N_dst, N_src), square or a bipartite block whose destinations are the first N_dst sources,
    so the self term reads H[:N_dst]. Output (N_dst, F_out). Messages and aggregate have width
    F_agg = ``agg_channels`` (default F_in, as PyG) with ``project`` or "lstm", F_in otherwise.
    Params: W_self (F_in, F_out), W_neigh (F_agg, F_out) -- or W (F_in + F_agg, F_out) with concat --
    b (F_out,); W_proj (F_in, F_agg), b_proj (F_agg,) with project; lstm.W_x, lstm.W_h, lstm.b.

    The LSTM permutation is drawn from ``self.rng`` on every training forward (the gradient check
    restores it before each evaluation, so the permutation replays); in evaluation mode the LSTM
    reads neighbours in CSR order, so inference is deterministic and the same in row blocks.
    With ``needs_input_grad = False`` (features that are data) backward skips dL/dH and returns None.

    ``forward(x, graph, relu=True)`` returns max(output, 0): a ``ReLU`` after this layer, run by it (the SAGE
    model's hidden layers, ``Sequential``); the same bits as the layer and then the ReLU module.

    Backward (derivations/sage.md §7), S = the aggregation matrix of mean / sum:
        G <- G * [P > 0]  (relu, first; P = the output before the ReLU, its mask rebuilt from the output when fused)
        G <- (G - y (y.G)) / ||x||  (normalize);  db = sum_i G_i;  dW_self = H_dst^T G;  dH[:N_dst] += G W_self^T
        mean / sum:  dW_neigh = M^T S^T G (or Agg^T G);  dM = S^T G W_neigh^T   (SpMM at the narrower width)
        max:  dM[j, f] = sum_i (G W_neigh^T)[i, f] [argmax_if = j];   lstm: dM = LSTM.backward(G W_neigh^T)
        project:  dP = dM * [P > 0];  dW_proj = H^T dP;  db_proj = sum dP;  dH += dP W_proj^T;  else dH += dM

    One code path for the host and the GPU: every step is an op, which runs where H lives. The
    LSTM aggregator walks packed neighbour sequences on the host and has no device path
    (``check_device_support`` raises ValueError); on the device, sparse features need a square
    graph (the self term reads their first N_dst rows).
    """

    needs_input_grad = True
    fuses_relu = True    # forward(x, graph, relu=True): a ReLU after this layer, run by it

    def __init__(self, in_channels, out_channels, aggr="mean", root_weight=True, concat=False, normalize=False,
                 bias=True, project=None, agg_channels=None, seed=0, dtype=np.float32):
        super().__init__()
        F_in, F_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        if aggr not in AGGREGATORS:
            raise ValueError(f"aggr must be one of {AGGREGATORS}, got {aggr!r}")
        if concat and not root_weight:
            raise ValueError("concat=True concatenates the self term h_i with the aggregate: it needs root_weight=True")
        project = (aggr == "max") if project is None else bool(project)
        if agg_channels is not None and not (project or aggr == "lstm"):
            raise ValueError(f"agg_channels sets the width of a projection or an LSTM; aggr={aggr!r} with "
                             f"project=False has neither (the aggregate has the input's width {F_in})")
        F_agg = F_in if agg_channels is None else positive_int("agg_channels", agg_channels)
        self.in_channels, self.out_channels, self.aggr = F_in, F_out, aggr
        self.root_weight, self.concat, self.normalize, self.project = bool(root_weight), bool(concat), \
            bool(normalize), project
        self.agg_channels = F_agg if (project or aggr == "lstm") else F_in
        F_msg = self.agg_channels if project else F_in        # width of the messages m_j
        dtype = float_dtype(dtype)
        s = [int(q.generate_state(1)[0]) for q in np.random.SeedSequence(seed).spawn(5)]
        if concat:
            self.add_param("W", glorot(as_rng(s[0]), F_in + self.agg_channels, F_out, dtype=dtype))
        else:
            self.add_param("W_neigh", glorot(as_rng(s[0]), self.agg_channels, F_out, dtype=dtype))
            if root_weight:
                self.add_param("W_self", glorot(as_rng(s[1]), F_in, F_out, dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(F_out, dtype=dtype))
        if project:
            self.add_param("W_proj", glorot(as_rng(s[2]), F_in, F_msg, dtype=dtype))
            self.add_param("b_proj", np.zeros(F_msg, dtype=dtype))
        if aggr == "lstm":
            self.lstm = LSTM(F_msg, self.agg_channels, seed=s[3], dtype=dtype)
        self.rng = as_rng(s[4])

    # ------------------------------------------------------------------ weights
    def _weights(self):
        """(W_self or None, W_neigh, dW_self or None, dW_neigh): views into W when concatenating."""
        if self.concat:
            F_in = self.in_channels
            W, dW = self.params["W"], self.grads["W"]
            return W[:F_in], W[F_in:], dW[:F_in], dW[F_in:]
        if self.root_weight:
            return self.params["W_self"], self.params["W_neigh"], self.grads["W_self"], self.grads["W_neigh"]
        return None, self.params["W_neigh"], None, self.grads["W_neigh"]

    # ------------------------------------------------------------------ linear aggregators
    def _linear_aggregate(self, graph, M):
        """mean: ops.mean_aggregate; sum: A M with A the 0/1 adjacency (ones on the edges). (N_dst, F)."""
        if self.aggr == "mean":
            return ops.mean_aggregate(graph, M)
        return ops.spmm(graph, ops.ones_on_edges(graph, M.dtype), M)

    def _linear_aggregate_backward(self, graph, G):
        """The transposed aggregation A^T G over the cached transpose: (N_src, F)."""
        if self.aggr == "mean":
            return ops.mean_aggregate_backward(graph, G)
        return ops.spmm_backward_X(graph, ops.ones_on_edges(graph, G.dtype), G)

    # ------------------------------------------------------------------ forward / backward
    def _check_input(self, x, graph):
        """x checked against the graph and this layer (a scipy sparse x comes back as CSR)."""
        check_graph(self, graph)
        return check_features(x, num_cols=self.in_channels, dtype=self._weights()[1].dtype, graph=graph)

    @staticmethod
    def _rows(A, n):
        """The first n rows of A (a view), A itself when it has n rows."""
        return A if A.shape[0] == n else A[:n]

    @layer_blas_pool
    def forward(self, x, graph=None, relu=False):
        """The layer's output, or max(output, 0) with ``relu`` (a ``ReLU`` after this layer, fused). In
        evaluation mode the mean aggregator at the narrower width (transform first) with a bias and no
        normalisation runs the self term first, into the output, and then one pass adds the mean, the bias and
        the self term and applies the ReLU (``ops.mean_aggregate_bias``): the same bits as the steps apart, with or
        without ``relu``. A fused ReLU's backward reads its mask from the returned array: do not change that array
        in place before ``backward``."""
        H = self._check_input(x, graph)
        W_self, W_neigh, _, _ = self._weights()
        N_dst = graph.num_dst
        # messages m_j, one per source node (not per edge)
        pos = None
        if self.project:
            pre = ops.add_bias(ops.matmul(H, self.params["W_proj"]), self.params["b_proj"])
            M, pos = ops.relu(pre)
        else:
            M = H
        # aggregate and the neighbour weight
        agg, argmax, transform_first, fused = None, None, False, False
        if self.aggr in ("mean", "sum"):
            # the aggregation is linear, so agg(M) W = agg(M W): run the SpMM at the narrower width
            transform_first = issparse(M) or W_neigh.shape[1] <= W_neigh.shape[0]
            fused = (transform_first and not self.training and self.aggr == "mean" and "b" in self.params
                     and not self.normalize)
            if fused:
                Z = ops.matmul(M, W_neigh)
                out = None if W_self is None else ops.matmul(self._rows(H, N_dst), W_self)    # H_dst W_self
                out = ops.mean_aggregate_bias(graph, Z, self.params["b"], out, relu)
            elif transform_first:
                out = self._linear_aggregate(graph, ops.matmul(M, W_neigh))
            else:
                agg = self._linear_aggregate(graph, M)
                out = ops.matmul(agg, W_neigh)
        elif self.aggr == "max":
            if issparse(M):   # a max over stored and implicit zeros alike: the dense rows
                if not hasattr(M, "toarray"):
                    raise ValueError("SAGEConv(aggr='max', project=False) takes dense features on the GPU, "
                                     "not sparse ones (a DeviceCSR has no dense rows there); pass x dense or use project=True")
                M = np.ascontiguousarray(M.toarray())
            agg, argmax = ops.max_aggregate(graph, M)
            out = ops.matmul(agg, W_neigh)
        else:
            seqs = pack_neighbours(graph, self.rng if self.training else None)
            agg = self.lstm.forward(M, seqs)
            out = ops.matmul(agg, W_neigh)
        if not fused:
            if "b" in self.params:
                ops.add_bias(out, self.params["b"])
            if W_self is not None:
                ops.matmul(self._rows(H, N_dst), W_self, out=out, accumulate=True)     # out += H_dst W_self
        norm = y = None
        if self.normalize:
            y, norm = ops.row_normalize(out, NORM_EPS)
            out = y
        relu_pos = None
        if relu and not fused:
            out, relu_pos = ops.relu(out)
        # with the ReLU fused no mask was made: backward rebuilds it from the output, positive exactly where
        # the ReLU's input was
        self._cache = (graph, H, pos, M, agg, argmax, transform_first, norm, y, relu, relu_pos,
                       out if relu and fused else None)
        return out

    def backward(self, grad_out):
        graph, H, pos, M, agg, argmax, transform_first, norm, y, relu, relu_pos, relu_out = self._saved()
        W_self, W_neigh, dW_self, dW_neigh = self._weights()
        N_dst = graph.num_dst
        G = grad_out
        if relu:
            if relu_pos is None:
                _, relu_pos = ops.relu(relu_out)                                    # [y > 0] = [pre > 0]
            G = ops.relu_backward(G, relu_pos)                                     # G <- G * [pre > 0]
        if self.normalize:   # y = x / ||x||:  dx = (g - y (y . g)) / ||x||;  below eps y = x / eps, so dx = g / eps
            G = ops.row_normalize_backward(G, y, norm, NORM_EPS)
        if "b" in self.params:
            ops.col_sum(G, out=self.grads["b"], accumulate=True)                   # db += sum_i G_i
        want_dH = not issparse(H) and self.needs_input_grad
        # back through W_neigh and the aggregator to the messages: dM (N_src, F_msg), needed by W_proj or dH
        want_dM = self.project or want_dH
        if transform_first:
            dZ = self._linear_aggregate_backward(graph, G)                         # dZ = S^T G
            ops.matmul_tn(M, dZ, out=dW_neigh, accumulate=True)                    # dW_neigh += M^T dZ
            dM = ops.matmul_nt(dZ, W_neigh) if want_dM and not issparse(M) else None
        else:
            ops.matmul_tn(agg, G, out=dW_neigh, accumulate=True)                   # dW_neigh += Agg^T G
            dM = None
            if self.aggr == "lstm":
                # the LSTM's own weights need the backward through time; its dx only when dM is wanted
                self.lstm.needs_input_grad = want_dM
                dM = self.lstm.backward(ops.matmul_nt(G, W_neigh))
            elif want_dM:
                d_agg = ops.matmul_nt(G, W_neigh)
                if self.aggr == "max":
                    dM = ops.max_aggregate_backward(graph, argmax, d_agg)
                else:
                    dM = self._linear_aggregate_backward(graph, d_agg)
        dH = None
        if self.project:
            d_pre = ops.relu_backward(dM, pos)                                     # dP = dM [P > 0]
            ops.matmul_tn(H, d_pre, out=self.grads["W_proj"], accumulate=True)
            ops.col_sum(d_pre, out=self.grads["b_proj"], accumulate=True)
            if want_dH:
                dH = ops.matmul_nt(d_pre, self.params["W_proj"])
        elif want_dH:
            dH = dM            # a fresh array: the self term below is added into it in place
        if W_self is not None:
            ops.matmul_tn(self._rows(H, N_dst), G, out=dW_self, accumulate=True)    # dW_self += H_dst^T G
            if dH is not None:
                ops.add_(self._rows(dH, N_dst), ops.matmul_nt(G, W_self))          # dH[:N_dst] += G W_self^T
        return dH

    # ------------------------------------------------------------------ the device
    def check_device_support(self):
        """Raise ValueError, naming the option, when this layer cannot run on the device."""
        if self.aggr not in DEVICE_AGGREGATORS:
            raise ValueError(f"SAGEConv(aggr={self.aggr!r}) cannot run on the GPU yet; the device supports "
                             f"aggr {', '.join(map(repr, DEVICE_AGGREGATORS))} (use device='cpu' for {self.aggr!r})")

