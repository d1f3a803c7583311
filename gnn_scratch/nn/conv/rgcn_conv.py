"""RGCNConv of Schlichtkrull et al., 2018 ("Modeling Relational Data with Graph Convolutional Networks")
with its basis and block-diagonal decompositions (derivations/rgcn.md)."""
import hashlib

import numpy as np

from ... import ops
from ...device import issparse
from ...graph import Graph
from ..checks import check_features, check_graph, float_dtype, positive_int
from ..init import as_rng, glorot
from ..module import Module

AGGREGATORS = ("mean", "add", "max")


# ------------------------------------------------------------------------------------ cached structure
def edge_type_fingerprint(edge_type):
    """A 128-bit digest of the relation ids: the cache key that keeps a graph's relation structure from
    going stale when another ``edge_type`` array (or the same array, changed in place) comes with it."""
    return hashlib.blake2b(np.ascontiguousarray(edge_type, dtype=np.int64).tobytes(), digest_size=16).hexdigest()


def check_edge_type(edge_type, graph, num_relations):
    """``edge_type`` as a host (E,) int64 array of ids in [0, num_relations), in ``edge_index`` column order;
    TypeError / ValueError naming the argument and what was expected."""
    if not (hasattr(edge_type, "shape") and hasattr(edge_type, "dtype")):
        raise TypeError(f"edge_type must be an integer array of shape ({graph.num_edges},) (one relation id "
                        f"per edge), got {type(edge_type).__name__}")
    if not isinstance(edge_type, np.ndarray) or edge_type.dtype.kind not in "iu":
        raise TypeError(f"edge_type must be a NumPy integer array of shape ({graph.num_edges},), "
                        f"got {type(edge_type).__name__} of dtype {edge_type.dtype}")
    if edge_type.shape != (graph.num_edges,):
        raise ValueError(f"edge_type must have shape ({graph.num_edges},), one relation id per edge of the graph, "
                         f"got {edge_type.shape}")
    if edge_type.size:
        lo, hi = int(edge_type.min()), int(edge_type.max())
        if lo < 0 or hi >= num_relations:
            col = int(np.argmin(edge_type)) if lo < 0 else int(np.argmax(edge_type))
            raise ValueError(f"edge_type must hold relation ids in [0, {num_relations}) for num_relations="
                             f"{num_relations}, got {int(edge_type[col])} at column {col}")
    return np.ascontiguousarray(edge_type, dtype=np.int64)


def _relation_graphs(g, edge_type, R):
    """(by_relation, by_source, mean_coef) of a host graph, with t_e = edge_type[edge_id[e]] the relation of CSR edge e:

    by_relation  (N_dst·R, N_src): edge e: j → i goes to row i·R + t_e, so row (i, r) lists N_i^r (in
                 edge_index order) and its in-degree is |N_i^r|: every aggregation of x, per relation, in one call;
    by_source    (N_dst, N_src·R): the same rows as the graph, edge e reads source j·R + t_e of a
                 transformed Z with Z[j·R + r] = (x W_r)[j]: all relations' messages summed in one call;
    mean_coef    (E,) float64: 1 / |N_i^{t_e}| for edge e of by_source (never 1/0: the edge is in that set).
    """
    if g.num_edges and int(g.edge_id.min()) < 0:
        raise ValueError("graph has edges that came from no edge_index column (edge_id -1, as added by "
                         "with_self_loops): edge_type cannot give their relation; build the graph with "
                         "Graph.from_edge_index")
    t = edge_type[g.edge_id]
    row = g.dst_of_edge().astype(np.int64) * R + t
    order = np.argsort(row, kind="stable")            # keeps CSR (= edge_index) order within each (i, r)
    count = np.bincount(row, minlength=g.num_dst * R)
    indptr = np.zeros(g.num_dst * R + 1, dtype=np.int64)
    np.cumsum(count, out=indptr[1:])
    by_relation = Graph(indptr, g.indices[order], None, g.num_src, edge_id=g.edge_id[order], _validated=True)
    by_source = Graph(g.indptr, g.indices.astype(np.int64) * R + t, None, g.num_src * R, edge_id=g.edge_id,
                      _validated=True)
    return by_relation, by_source, 1.0 / count[row]


def _relayout_graph(g, R, F_in):
    """P (F_in·R, R·F_in): row c·R + r reads source r·F_in + c, so P · W.reshape(R·F_in, F) is W laid out
    (F_in, R, F): the weights of every relation side by side, ready for one product x [W_0 | W_1 | ...]."""
    c, r = np.divmod(np.arange(F_in * R, dtype=np.int64), R)
    return Graph(np.arange(F_in * R + 1, dtype=np.int64), r * F_in + c, None, R * F_in, _validated=True)


def _block_graph(g, R, F_in, num_blocks):
    """S (R·F_in·nb, R·F_in): row q·nb + b' reads source q (q = r·F_in + c) when b' is the block of input
    column c (b' = c // d_in), else nothing. S · weight.reshape(R·F_in, d_out), viewed (R, F_in, F_out),
    is each W_r = blockdiag(weight[r, 0], ..., weight[r, nb-1]); Sᵀ picks the diagonal blocks back."""
    d_in = F_in // num_blocks
    q = np.arange(R * F_in, dtype=np.int64)
    rows = q * num_blocks + (q % F_in) // d_in
    count = np.zeros(R * F_in * num_blocks, dtype=np.int64)
    count[rows] = 1
    indptr = np.zeros(count.size + 1, dtype=np.int64)
    np.cumsum(count, out=indptr[1:])
    return Graph(indptr, q, None, R * F_in, _validated=True)


# ------------------------------------------------------------------------------------ the layer
class RGCNConv(Module):
    """out_i = x_i Θ_root + Σ_r ⊕_{j ∈ N_i^r} x_j W_r + b   (PyG's ``RGCNConv``, same arguments and meaning).

    Schlichtkrull et al. 2018, eq. 2 with c_{i,r} = |N_i^r| (``aggr="mean"``, the default: the mean over
    the in-neighbours of i by relation r, a repeated edge counted once per copy; 0 when i has none),
    ``"add"`` (c_{i,r} = 1) or ``"max"`` (element-wise max of x_j over N_i^r, then times W_r; a tie goes
    to the first edge in edge_index order). The relation weights W_r (F_in, F_out) are
        no decomposition    W_r = weight[r]                         weight (R, F_in, F_out)
        basis (eq. 3)       W_r = Σ_b comp[r, b] V_b                weight = V (B, F_in, F_out), comp (R, B)
        blocks (eq. 4)      W_r = blockdiag(weight[r, 0..nb-1])     weight (R, nb, F_in/nb, F_out/nb)
    root (F_in, F_out) is PyG's Θ_root (``root_weight``), bias (F_out,) PyG's bias. Initialised as PyG
    (Glorot on weight, comp and root over their last two axes; zero bias) from ``seed``.

    ``forward(x, graph, edge_type)``: graph a ``Graph`` (N_dst, N_src) -- square, or a block whose
    destinations are its first N_dst sources, so the root term reads x[:N_dst]; edge weights are ignored,
    as in PyG -- and edge_type (E,) int, the relation of each edge **in edge_index column order** (the
    CSR edge e has relation ``edge_type[graph.edge_id[e]]``). x (N_src, F_in) float (dense, or scipy-sparse
    for "mean" / "add", which then gets no input gradient), or None: featureless nodes, x = I with
    F_in = N (PyG's ``x=None``: W_r's rows are the nodes' embeddings), "mean" / "add" only. Returns
    (N_dst, F_out).

    The relation structure (rows (i, r), sources (j, r), 1/|N_i^r|) is built once per graph and
    edge_type, cached on the graph under a digest of edge_type's values. "mean" and "add" are linear,
    so the SpMM runs at the narrower width: transform first (Z = x [W_0 | ... | W_{R-1}], then one SpMM
    over all relations) when F_out <= F_in, x is sparse or featureless; else aggregate first (A = one SpMM
    into N_dst·R rows, then one product A (N_dst, R·F_in) · W (R·F_in, F_out)); "max" always aggregates x.
    Backward (derivations/rgcn.md): dW_r from the product, then
        basis:  dcomp[r, b] = <dW_r, V_b>,  dV_b = Σ_r comp[r, b] dW_r
        blocks: dweight[r, b] = the diagonal block b of dW_r
        droot = x_dstᵀ G;  dbias = Σ_i G_i;  dx = Σ_r Sᵣᵀ G W_rᵀ + G rootᵀ (on x[:N_dst])

    Errors: ValueError for num_bases and num_blocks both set, F_in or F_out not divisible by num_blocks,
    an unknown aggr, edge_type of the wrong shape or with ids outside [0, num_relations), x of the wrong
    shape, NaN / Inf in x, x=None with "max" or with a graph whose node count is not in_channels;
    TypeError for a non-integer edge_type, an x of another dtype than the layer's.
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, num_relations, num_bases=None, num_blocks=None, aggr="mean",
                 root_weight=True, bias=True, seed=0, dtype=np.float32):
        super().__init__()
        F_in, F_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        R = positive_int("num_relations", num_relations)
        if num_bases is not None and num_blocks is not None:
            raise ValueError(f"num_bases={num_bases!r} and num_blocks={num_blocks!r}: set one of them (basis or "
                             f"block-diagonal decomposition), not both")
        if aggr not in AGGREGATORS:
            raise ValueError(f"aggr must be one of {AGGREGATORS}, got {aggr!r}")
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels, self.num_relations, self.aggr = F_in, F_out, R, aggr
        self.num_bases = None if num_bases is None else positive_int("num_bases", num_bases)
        self.num_blocks = None if num_blocks is None else positive_int("num_blocks", num_blocks)
        if self.num_blocks is not None and (F_in % self.num_blocks or F_out % self.num_blocks):
            raise ValueError(f"num_blocks={self.num_blocks} must divide in_channels={F_in} and out_channels={F_out}")
        s = [as_rng(int(q.generate_state(1)[0])) for q in np.random.SeedSequence(seed).spawn(3)]
        if self.num_bases is not None:
            B = self.num_bases
            self.add_param("weight", glorot(s[0], F_in, F_out, shape=(B, F_in, F_out), dtype=dtype))
            self.add_param("comp", glorot(s[1], R, B, dtype=dtype))
        elif self.num_blocks is not None:
            nb = self.num_blocks
            d_in, d_out = F_in // nb, F_out // nb
            self.add_param("weight", glorot(s[0], d_in, d_out, shape=(R, nb, d_in, d_out), dtype=dtype))
        else:
            self.add_param("weight", glorot(s[0], F_in, F_out, shape=(R, F_in, F_out), dtype=dtype))
        if root_weight:
            self.add_param("root", glorot(s[2], F_in, F_out, dtype=dtype))
        if bias:
            self.add_param("bias", np.zeros(F_out, dtype=dtype))

    def __call__(self, x, graph=None, edge_type=None):
        return self.forward(x, graph, edge_type)

    # ------------------------------------------------------------------ the relation weights W_r
    def relation_weights(self, graph):
        """W (R, F_in, F_out): every W_r, composed from the decomposition (a view of ``weight`` without one)."""
        R, F_in, F_out = self.num_relations, self.in_channels, self.out_channels
        V = self.params["weight"]
        if self.num_bases is not None:          # W_r = Σ_b comp[r, b] V_b:  W = comp · V  as (R, F_in·F_out)
            W = ops.matmul(self.params["comp"], V.reshape(self.num_bases, F_in * F_out))
            return W.reshape(R, F_in, F_out)
        if self.num_blocks is not None:         # W_r = blockdiag(weight[r]):  W = S · weight  (rows of d_out)
            S = self._blocks(graph)
            d_out = F_out // self.num_blocks
            W = ops.spmm(S, ops.ones_on_edges(S, V.dtype), V.reshape(R * F_in, d_out))
            return W.reshape(R, F_in, F_out)
        return V

    def _relation_weights_backward(self, graph, dW):
        """Add the gradient dW (R, F_in, F_out) of every W_r into the decomposition's parameters."""
        R, F_in, F_out = self.num_relations, self.in_channels, self.out_channels
        dV = self.grads["weight"]
        if self.num_bases is not None:
            B = self.num_bases
            dW2 = dW.reshape(R, F_in * F_out)
            ops.add_(self.grads["comp"], ops.matmul_nt(dW2, self.params["weight"].reshape(B, F_in * F_out)))
            ops.matmul_tn(self.params["comp"], dW2, out=dV.reshape(B, F_in * F_out), accumulate=True)
        elif self.num_blocks is not None:                  # dweight[r, b] = the diagonal block b of dW_r:  Sᵀ dW
            S = self._blocks(graph)
            d_out = F_out // self.num_blocks
            dW_rows = dW.reshape(R * F_in * self.num_blocks, d_out)
            dblk = ops.spmm_backward_X(S, ops.ones_on_edges(S, dW.dtype), dW_rows)
            ops.add_(dV, dblk.reshape(dV.shape))
        else:
            ops.add_(dV, dW)

    def _blocks(self, graph):
        # it depends on the layer's sizes only, but cached on the graph it lands on the graph's device
        key = ("rgcn_blocks", self.num_relations, self.in_channels, self.num_blocks)
        return graph.derived(key, lambda g: _block_graph(g, self.num_relations, self.in_channels, self.num_blocks))

    def _relayout(self, graph):
        key = ("rgcn_relayout", self.num_relations, self.in_channels)
        return graph.derived(key, lambda g: _relayout_graph(g, self.num_relations, self.in_channels))

    # ------------------------------------------------------------------ checks and structure
    def _check_input(self, x, graph, edge_type):
        check_graph(self, graph)
        edge_type = check_edge_type(edge_type, graph.host, self.num_relations)
        dtype = self.params["weight"].dtype
        if x is None:
            if self.aggr == "max":
                raise ValueError("x=None (featureless nodes) needs aggr 'mean' or 'add': the max over rows of W_r "
                                 "is not computed")
            if graph.num_dst != graph.num_src or graph.num_src != self.in_channels:
                raise ValueError(f"x=None (featureless nodes, x = I) needs a square graph with in_channels = "
                                 f"{self.in_channels} nodes, got a graph of shape {graph.shape}")
            return None, edge_type
        x = check_features(x, num_cols=self.in_channels, dtype=dtype, graph=graph)
        if self.aggr == "max" and issparse(x):
            raise ValueError("RGCNConv(aggr='max') needs dense x: the max of sparse rows is not computed")
        return x, edge_type

    def _structure(self, graph, edge_type, dtype):
        """(by_relation, by_source, edge values of by_source) for this graph and edge_type, cached on the graph."""
        R, fp = self.num_relations, edge_type_fingerprint(edge_type)
        key = ("rgcn_relations", R, fp)
        by_relation, by_source, _ = graph.derived(key, lambda g: _relation_graphs(g, edge_type, R))
        if self.aggr == "mean":
            host_coef = lambda g: g.derived(key, lambda h: _relation_graphs(h, edge_type, R))[2]   # noqa: E731
            coef = graph.derived(key + ("mean_coef", np.dtype(dtype).str), lambda g: host_coef(g).astype(dtype))
        else:
            coef = ops.ones_on_edges(by_source, dtype)
        return by_relation, by_source, coef, key + (self.aggr, np.dtype(dtype).str)

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x, graph=None, edge_type=None):
        x, edge_type = self._check_input(x, graph, edge_type)
        dtype = self.params["weight"].dtype
        R, F_in, F_out = self.num_relations, self.in_channels, self.out_channels
        N_dst, N_src = graph.num_dst, graph.num_src
        by_relation, by_source, coef, key = self._structure(graph, edge_type, dtype)
        W = self.relation_weights(graph)                                        # (R, F_in, F_out)
        transform_first = x is None or (self.aggr != "max" and (issparse(x) or F_out <= F_in))
        A = argmax = W_side = None
        if transform_first:
            P = self._relayout(graph)
            W_side = ops.spmm(P, ops.ones_on_edges(P, dtype), W.reshape(R * F_in, F_out))   # (F_in·R, F_out)
            # Z[j·R + r] = (x W_r)[j]; featureless x = I: Z = W side by side itself
            Z = W_side if x is None else ops.matmul(x, W_side.reshape(F_in, R * F_out)).reshape(N_src * R, F_out)
            out = ops.spmm(by_source, coef, Z)                                  # Σ_r c_ir Σ_{j ∈ N_i^r} Z[j·R + r]
        else:
            if self.aggr == "mean":
                A = ops.mean_aggregate(by_relation, x)                          # row (i, r): mean over N_i^r
            elif self.aggr == "add":
                A = ops.spmm(by_relation, ops.ones_on_edges(by_relation, dtype), x)
            else:
                A, argmax = ops.max_aggregate(by_relation, x)
            out = ops.matmul(A.reshape(N_dst, R * F_in), W.reshape(R * F_in, F_out))   # Σ_r A_r W_r
        if "root" in self.params:
            if x is None:
                ops.add_(out, self.params["root"])                              # x_i = e_i: row i of root
            else:
                ops.add_(out, ops.matmul(x if N_dst == N_src else x[:N_dst], self.params["root"]))
        if "bias" in self.params:
            ops.add_bias(out, self.params["bias"])
        self._cache = (graph, x, by_relation, by_source, coef, key, W, W_side, A, argmax, transform_first)
        return out

    def backward(self, grad_out):
        graph, x, by_relation, by_source, coef, key, W, W_side, A, argmax, transform_first = self._saved()
        G = grad_out
        R, F_in, F_out = self.num_relations, self.in_channels, self.out_channels
        N_dst, N_src = graph.num_dst, graph.num_src
        want_dx = x is not None and self.needs_input_grad and not issparse(x)
        if "bias" in self.params:
            ops.col_sum(G, out=self.grads["bias"], accumulate=True)             # dbias += Σ_i G_i
        dx = None
        if transform_first:
            dZ = ops.spmm_transposed(by_source, coef, key, G)                   # dZ = Sᵀ G   (N_src·R, F_out)
            if x is None:
                dW_side = dZ                                                    # Z = W side by side
            else:
                dZ2 = dZ.reshape(N_src, R * F_out)
                dW_side = ops.matmul_tn(x, dZ2).reshape(F_in * R, F_out)        # d[W_0|...] = xᵀ dZ
                if want_dx:
                    dx = ops.matmul_nt(dZ2, W_side.reshape(F_in, R * F_out))    # dx = dZ [W_0|...]ᵀ
            P = self._relayout(graph)
            dW = ops.spmm_backward_X(P, ops.ones_on_edges(P, G.dtype), dW_side).reshape(R, F_in, F_out)  # Pᵀ
        else:
            A2 = A.reshape(N_dst, R * F_in)
            dW = ops.matmul_tn(A2, G).reshape(R, F_in, F_out)                   # dW_r = A_rᵀ G
            if want_dx:
                dA = ops.matmul_nt(G, W.reshape(R * F_in, F_out)).reshape(N_dst * R, F_in)   # dA_r = G W_rᵀ
                if self.aggr == "mean":
                    dx = ops.mean_aggregate_backward(by_relation, dA)
                elif self.aggr == "add":
                    dx = ops.spmm_backward_X(by_relation, ops.ones_on_edges(by_relation, G.dtype), dA)
                else:
                    dx = ops.max_aggregate_backward(by_relation, argmax, dA)
        self._relation_weights_backward(graph, dW)
        if "root" in self.params:
            if x is None:
                ops.add_(self.grads["root"], G)                                 # droot += G   (x = I)
            else:
                x_dst = x if N_dst == N_src else x[:N_dst]
                ops.matmul_tn(x_dst, G, out=self.grads["root"], accumulate=True)   # droot += x_dstᵀ G
                if want_dx:
                    dx_root = ops.matmul_nt(G, self.params["root"])
                    ops.add_(dx if N_dst == N_src else dx[:N_dst], dx_root)     # dx[:N_dst] += G rootᵀ
        return dx
