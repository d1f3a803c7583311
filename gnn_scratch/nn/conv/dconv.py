"""Diffusion convolution (Li et al., 2018, "Diffusion Convolutional Recurrent Neural Network: Data-Driven Traffic
Forecasting"), the graph operator of DCRNN.

Derived in derivations/dcrnn.md (§§ 1-4). The filter is a polynomial of two random-walk operators, the walk
along the edges and the walk against them, evaluated with ChebConv's three-term recurrence and Clenshaw
sum (``cheb_conv.chebyshev_terms`` / ``clenshaw`` take any operator with ``graph``, ``val``, ``val2``,
``key``); SpMMs only (``ops.spmm`` and ``ops.spmm_transposed``), nothing N x N is formed.
"""
from typing import NamedTuple

import numpy as np

from ... import ops
from ...device import issparse
from ...graph import Graph
from ...threads import single_blas_pool
from ..checks import check_features, check_graph, float_dtype, positive_int
from ..init import as_rng, glorot
from ..module import Module
from .cheb_conv import _check_square, chebyshev_terms, clenshaw


# ------------------------------------------------------------------------------------ the two walks
class DiffusionWalk(NamedTuple):
    """One random-walk operator M on ``graph``: ``val`` per edge (M's entries), ``val2`` = 2 ``val``.

    ``transposed`` False: M X = ``ops.spmm(graph, val, X)`` (the walk along the edges); True:
    M X = ``ops.spmm_transposed(graph, val, key, X)`` (against them). Mᵀ is the other product.
    """
    graph: Graph
    val: object          # (E,) in the layer's dtype, on the graph's device
    val2: object         # 2 val: the recurrence's 2 M T_{k-1} in one SpMM
    key: tuple           # names val (and val2) in spmm_transposed's cache on ``graph``
    transposed: bool


def _walks_host(host):
    """(a, b) float64 per edge e: j -> i of a host graph: a_e = w_e / d_out(j), b_e = w_e / d_in(i).

    d_out(j) = Σ of the weights of the edges leaving j, d_in(i) = Σ of those entering i (repeated edges
    and self-loops counted, unit weights when the graph has none). A zero degree gives the coefficient 0
    (never NaN / inf): with positive weights no edge ever needs it (an edge's source has d_out >= w_e > 0),
    so it only decides what an edge of weight 0, or weights that cancel, carry -- nothing.
    """
    N = host.num_dst
    w = np.ones(host.num_edges) if host.edge_weight is None else host.edge_weight.astype(np.float64)
    src, dst = host.indices, host.dst_of_edge()
    d_out = np.bincount(src, weights=w, minlength=N)
    d_in = np.bincount(dst, weights=w, minlength=N)
    inv_out = np.divide(1.0, d_out, out=np.zeros(N), where=d_out != 0)
    inv_in = np.divide(1.0, d_in, out=np.zeros(N), where=d_in != 0)
    return w * inv_out[src], w * inv_in[dst]


def diffusion_walks(graph, dtype=np.float32):
    """(forward walk, backward walk) of DCRNN on ``graph``, each a ``DiffusionWalk``, cached on the graph.

    With W[j, i] = the summed weight of the edges j -> i (the paper's W, row = source):
        forward walk   M_O = (D_O^-1 W)ᵀ:   (M_O X)[i] = Σ_{e: j->i} w_e / d_out(j) · X[j]
        backward walk  M_I = (D_I^-1 Wᵀ)ᵀ:  (M_I X)[j] = Σ_{e: j->i} w_e / d_in(i) · X[i]
    the transposes of the paper's transition matrices, as the authors' code applies them (its
    ``calculate_random_walk_matrix(adj).T``): along the edges every node splits its value among its
    out-edges (column sums of M_O are 1), against them among its in-edges. A zero degree gives
    coefficient 0 (``_walks_host``). Both walks live on the graph's own edges: M_O is an SpMM, M_I the
    SpMM over the cached transpose. Computed once per graph on the host, cast once per dtype and moved
    once to the graph's device (``Graph.derived``). Raises ValueError for a non-square graph.
    """
    _check_square("DConv", graph)
    dt = float_dtype(dtype)

    def build(host):
        a, b = host.cached(("dconv_walks",), lambda: _walks_host(host))
        return a.astype(dt), (2.0 * a).astype(dt), b.astype(dt), (2.0 * b).astype(dt)
    a, a2, b, b2 = graph.derived(("dconv_walks", dt.str), build)
    return (DiffusionWalk(graph, a, a2, ("dconv", "forward", dt.str), False),
            DiffusionWalk(graph, b, b2, ("dconv", "backward", dt.str), True))


def diffusion_terms(walk, Z, K, adjoint=False):
    """[T_0 Z, ..., T_{K-1} Z] with T_0 = I, T_1 = M, T_k = 2 M T_{k-1} - T_{k-2}: M = walk (Mᵀ when ``adjoint``)."""
    if K == 1:
        return [Z]
    return chebyshev_terms(walk, Z, K, transposed=walk.transposed != adjoint)


def diffusion_sum(walk, Y, adjoint=False):
    """Σ_k T_k Y_k (Clenshaw, the ``Y`` overwritten) with the terms of ``diffusion_terms``."""
    if len(Y) == 1:
        return Y[0]
    return clenshaw(walk, Y, transposed=walk.transposed != adjoint)


# ------------------------------------------------------------------------------------ DConv
class DConv(Module):
    """X' = Σ_{k<K} ( T_k(M_O) X Θ_{0,k} + T_k(M_I) X Θ_{1,k} ) + b: PyG Temporal's ``DConv``, corrected.

    M_O, M_I are the forward and backward random walks of the graph (``diffusion_walks``: the authors'
    transposed transition matrices (D_O^-1 W)ᵀ and (D_I^-1 Wᵀ)ᵀ, edge weights in both the entries and
    the degrees), and T_k the diffusion steps of the authors' code, per direction:
        T_0 = X,   T_1 = M X,   T_k = 2 M T_{k-1} - T_{k-2}
    (Chebyshev's recurrence on the walk: the paper writes the powers M^k, which span the same
    polynomials of degree K - 1; the code, PyG Temporal and this layer use T_k). Both directions have
    their own T_0 = X, so X meets Θ_{0,0} + Θ_{1,0} (PyG Temporal's two weights on the same term,
    kept for a 1:1 parameter map; their gradients are equal). K terms reach K - 1 hops each way.

    Where PyG Temporal 0.56.2's ``DConv`` computes something else (derivations/dcrnn.md § 2 pins each
    down against its code, and tests/test_recurrent_lstm_dcrnn.py tests a dense model of it):
    (a) its backward walk takes 1 / d_in of the *original* edge list's sources (``deg_in_inv[row]``)
        but applies them to ``reverse_edge_index``, a re-sorted, de-duplicated transposed list: the
        e-th coefficient lands on an unrelated edge. Here edge j -> i carries 1 / d_in(i) against
        the edge. Equal when the graph is symmetric and its edge_index sorted by (source, target).
    (b) its messages carry no edge weight in either walk (``norm * x_j``; the reverse list's weights
        ``vv`` are discarded): weights enter only the degrees. Here w_e / d. Equal for unit weights.
    (c) its recurrence starts ``Tx_0 = Tx_1 = X`` and updates ``Tx_0 = Tx_1``, which is never
        reassigned, so every step is T_k = 2 M T_{k-1} - X. Equal for K <= 3.
    (d) a repeated edge is summed by ``to_dense_adj`` into the degrees, but the reverse list is
        de-duplicated and so shorter than ``norm_in``: PyG Temporal raises RuntimeError. Here every
        copy counts, in both walks and both degrees (W is the summed weight).
    (e) a zero degree is ``torch.reciprocal(0) = inf``, which (a) can apply to a live edge (NaN
        outputs, e.g. on a directed path whose first node has no in-edge). Here 1 / 0 := 0.
    (f) without weights its adjacency (``to_dense_adj``) and its degree sums (``torch.ones``) take
        torch's default dtype: under float32 the coefficients 1 / d are rounded to float32 even for a
        float64 input, and float64 weights fail in ``matmul``. Here they are float64, cast once.
    Self-loops are edges in both (a loop j -> j counts in both of j's degrees).

    Shapes: x (N, F_in) float, dense or scipy-sparse, or a tuple of column blocks (X_1, ..., X_m) of
    widths summing to F_in, meaning [X_1 ‖ ... ‖ X_m] without forming it (DCRNN's [X ‖ H]); the graph
    square, any edge weights. W (2, K, F_in, F_out) with W[0] the forward walk's Θ_{0,k} and W[1] the
    backward walk's (= PyG Temporal's ``weight``); b (F_out,) (= ``bias``); out (N, F_out).
    The order is ChebConv's rule: transform first (Clenshaw on Y_k = X Θ_{d,k}, SpMMs at width F_out)
    when F_out <= F_in or a block is sparse, else propagate first (the terms at the inputs' width).
    Initialisation as PyG Temporal's: ``xavier_uniform_`` of the 4-D weight (fan_in = K F_in F_out,
    fan_out = 2 F_in F_out), zero bias.

    Backward with G = dL/dout (derivations/dcrnn.md § 3), per direction d with M = M_d:
        db = Σ_n G[n]
        transform first:  R_k = T_k(Mᵀ) G (the recurrence on Mᵀ);  dΘ_{d,k} = Xᵀ R_k;  dX += Σ_k R_k Θ_{d,k}ᵀ
        propagate first:  dΘ_{d,k} = T_kᵀ G;  dX += Σ_k T_k(Mᵀ) G Θ_{d,k}ᵀ (Clenshaw on Mᵀ)
    block by block (row block b of Θ for the block X_b). ``needs_input_grad`` is a bool, or one bool per
    block: a block that needs none (or is sparse) gets None. backward returns dX, or the tuple of the
    blocks' gradients when forward had a tuple.

    Raises ValueError / TypeError naming the argument for a non-square graph, blocks of the wrong
    widths, rows, dtype, or NaN / Inf in a user's input.
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, K, bias=True, seed=0, dtype=np.float32):
        super().__init__()
        F_in, F_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        self.K = positive_int("K", K)
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels = F_in, F_out
        self.add_param("W", glorot(as_rng(seed), self.K * F_in * F_out, 2 * F_in * F_out,
                                   shape=(2, self.K, F_in, F_out), dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(F_out, dtype=dtype))

    def __repr__(self):
        return f"DConv({self.in_channels}, {self.out_channels}, K={self.K})"

    def _blocks(self, x, graph, dtype):
        """The input as a list of checked column blocks and their row ranges in W."""
        if not isinstance(x, (tuple, list)):
            return [check_features(x, num_cols=self.in_channels, dtype=dtype, graph=graph)], [(0, self.in_channels)]
        if not x:
            raise ValueError("x must be an array or a non-empty tuple of column blocks, got an empty tuple")
        blocks = [check_features(b, dtype=dtype, name=f"x[{i}]", graph=graph) for i, b in enumerate(x)]
        widths = [b.shape[1] for b in blocks]
        if sum(widths) != self.in_channels:
            raise ValueError(f"x's column blocks must have in_channels={self.in_channels} columns in all, "
                             f"got widths {tuple(widths)}")
        ends = np.cumsum([0] + widths)
        return blocks, [(int(lo), int(hi)) for lo, hi in zip(ends[:-1], ends[1:])]

    def _wants_grad(self, i, block):
        need = self.needs_input_grad
        need = need[i] if isinstance(need, (tuple, list)) else need
        return bool(need) and not issparse(block)

    @single_blas_pool
    def forward(self, x, graph=None):
        check_graph(self, graph)
        _check_square("DConv", graph)
        W = self.params["W"]
        blocks, rows = self._blocks(x, graph, W.dtype)
        walks = diffusion_walks(graph, W.dtype) if self.K > 1 else (None, None)
        transform_first = self.out_channels <= self.in_channels or any(issparse(b) for b in blocks)
        out = None
        if transform_first:
            for d, walk in enumerate(walks):
                Y = []
                for k in range(self.K):                                          # Y_k = Σ_b X_b Θ_{d,k}[rows_b]
                    y = ops.matmul(blocks[0], W[d, k, rows[0][0]:rows[0][1]])
                    for X_b, (lo, hi) in zip(blocks[1:], rows[1:]):
                        ops.add_(y, ops.matmul(X_b, W[d, k, lo:hi]))
                    Y.append(y)
                part = diffusion_sum(walk, Y)                                    # Σ_k T_k(M_d) Y_k
                out = part if out is None else ops.add_(out, part)
            saved = blocks
        else:
            saved = [[diffusion_terms(walk, X_b, self.K) for X_b in blocks] for walk in walks]  # [d][b][k]
            for d in range(2):
                for terms, (lo, hi) in zip(saved[d], rows):
                    for k in range(self.K):
                        p = ops.matmul(terms[k], W[d, k, lo:hi])                 # T_k(M_d) X_b Θ_{d,k}[rows_b]
                        out = p if out is None else ops.add_(out, p)
        if "b" in self.params:
            ops.add_bias(out, self.params["b"])
        self._cache = (walks, saved, rows, transform_first, isinstance(x, (tuple, list)))
        return out

    @single_blas_pool
    def backward(self, grad_out):
        walks, saved, rows, transform_first, as_blocks = self._saved()
        W, dW = self.params["W"], self.grads["W"]
        if "b" in self.params:
            ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)          # db += Σ_n G[n]
        dX = [None] * len(rows)
        if transform_first:
            blocks = saved
            for d, walk in enumerate(walks):
                R = diffusion_terms(walk, grad_out, self.K, adjoint=True)        # R_k = T_k(M_dᵀ) G
                for i, (X_b, (lo, hi)) in enumerate(zip(blocks, rows)):
                    for k in range(self.K):
                        ops.matmul_tn(X_b, R[k], out=dW[d, k, lo:hi], accumulate=True)   # dΘ_{d,k} += X_bᵀ R_k
                    if self._wants_grad(i, X_b):
                        for k in range(self.K):
                            p = ops.matmul_nt(R[k], W[d, k, lo:hi])              # dX_b += R_k Θ_{d,k}[rows_b]ᵀ
                            dX[i] = p if dX[i] is None else ops.add_(dX[i], p)
        else:
            terms = saved
            for d, walk in enumerate(walks):
                for i, (T, (lo, hi)) in enumerate(zip(terms[d], rows)):
                    for k in range(self.K):
                        ops.matmul_tn(T[k], grad_out, out=dW[d, k, lo:hi], accumulate=True)  # dΘ_{d,k} += T_kᵀ G
                    if self._wants_grad(i, T[0]):
                        p = diffusion_sum(walk, [ops.matmul_nt(grad_out, W[d, k, lo:hi]) for k in range(self.K)],
                                          adjoint=True)                          # Σ_k T_k(M_dᵀ) G Θ_{d,k}ᵀ
                        dX[i] = p if dX[i] is None else ops.add_(dX[i], p)
        return tuple(dX) if as_blocks else dX[0]
