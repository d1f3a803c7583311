"""Chebyshev spectral convolution (Defferrard et al., 2016) and Kipf & Welling's first-order truncations of it.

Derived in derivations/cheb_conv.md. Both layers apply a polynomial of a sparse graph operator with
SpMMs only (``ops.spmm`` forward, ``ops.spmm_transposed`` backward); nothing N x N is formed.
"""
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from ... import ops
from ...device import issparse
from ...graph import Graph
from ...threads import single_blas_pool
from ..checks import check_features, check_graph, finite_real, float_dtype, positive_int
from ..init import as_rng, glorot
from ..module import Module

NORMALIZATIONS = ("sym", "rw", None)


def _check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return normalization


def _check_square(layer_or_op, graph):
    if graph.num_dst != graph.num_src:
        raise ValueError(f"{layer_or_op} needs a square graph (a Laplacian is N x N), got shape {graph.shape}")


# ------------------------------------------------------------------------------------ the Laplacian
def _laplacian_host(graph, normalization):
    """(graph_L, L values float64) of a host graph: PyG's ``get_laplacian``, computed once per graph.

    The self-loops are removed, then one loop per node is added, last in its row (``edge_id`` -1):
    ``Graph.with_self_loops``. deg_j = Σ of the weights of the edges *leaving* j (PyG scatters over
    ``edge_index[0]``, the source), repeated edges counted, loops not.
        "sym":  L_e = -w_e / sqrt(deg_j deg_i) for e: j -> i;   L_ii = 1 for every node
        "rw":   L_e = -w_e / deg_j;                             L_ii = 1 for every node
        None:   L_e = -w_e;                                     L_ii = deg_i
    deg = 0 gives the factor 0 (PyG's ``masked_fill`` of inf), so an isolated node keeps L_ii = 1 under
    "sym" and "rw". A negative degree under "sym" raises ValueError (its square root is not real; PyG
    gives NaN).
    """
    N = graph.num_dst
    w0 = np.ones(graph.num_edges) if graph.edge_weight is None else graph.edge_weight.astype(np.float64)
    g = Graph(graph.indptr, graph.indices, w0, graph.num_src, graph.edge_id, _validated=True).with_self_loops(0.0)
    loop = g.edge_id == -1                                  # the one loop per node, added by with_self_loops
    w = np.where(loop, 0.0, g.edge_weight)                  # an old loop's weight must not enter the degree
    src, dst = g.indices, g.dst_of_edge()
    deg = np.bincount(src, weights=w, minlength=N)          # out-degree, as PyG's scatter(edge_weight, row)
    if normalization == "sym":
        if np.any(deg < 0):
            j = int(np.flatnonzero(deg < 0)[0])
            raise ValueError(f"ChebConv(normalization='sym'): node {j} has weighted out-degree {deg[j]:g} < 0, so "
                             f"D^-1/2 is undefined; use non-negative edge weights or normalization='rw' / None")
        d = np.zeros(N)
        d[deg > 0] = 1.0 / np.sqrt(deg[deg > 0])
        off, diag = -(d[src] * w * d[dst]), np.ones(N)
    elif normalization == "rw":
        d = np.zeros(N)
        d[deg != 0] = 1.0 / deg[deg != 0]
        off, diag = -(d[src] * w), np.ones(N)
    else:
        off, diag = -w, deg
    return g, np.where(loop, diag[dst], off)


def laplacian(graph, normalization="sym"):
    """(graph_L, values): the graph Laplacian L as PyG's ``get_laplacian`` builds it (see ``_laplacian_host``).

    float64 values on the host, cached on the host graph; ``graph_L.to_scipy(values)`` is L with
    L[i, j] = the value of the edge j -> i (row = destination, the repository's convention).
    """
    _check_square("laplacian", graph)
    _check_normalization(normalization)
    host = graph.host
    return host.cached(("laplacian", normalization), lambda: _laplacian_host(host, normalization))


def default_lambda_max(graph, normalization="sym"):
    """PyG 2.8's ChebConv default: 2 max_e L_e over L's stored values, loops included.

    That is 2.0 for "sym" and "rw" with non-negative weights (the diagonal 1 is the largest entry) and
    2 max_i deg_i for None (Gershgorin's bound on D - A of an undirected graph).
    """
    return float(2.0 * np.max(laplacian(graph, normalization)[1]))


def estimate_lambda_max(graph, normalization="sym", seed=0):
    """The largest eigenvalue of L, as PyG's ``LaplacianLambdaMax`` transform computes it (the library way).

    scipy ARPACK for one eigenvalue of largest magnitude: ``eigsh`` when L is symmetric (an undirected
    graph, "sym" or None), ``eigs`` otherwise ("rw", a directed graph); its real part. Below 64 nodes
    the dense ``scipy.linalg.eigvals`` (ARPACK needs k < N - 1). ``seed`` fixes ARPACK's start vector,
    so the estimate is repeatable. Pass the result as ``ChebConv.forward(..., lambda_max=)``.
    """
    g, val = laplacian(graph, normalization)
    L = g.to_scipy(val).astype(np.float64)
    N = graph.num_dst
    if N < 64:
        ev = scipy.linalg.eigvals(L.toarray())
        return float(ev[np.argmax(np.abs(ev))].real)
    v0 = np.random.default_rng(seed).uniform(0.5, 1.5, N)
    asym = abs(L - L.T).max() if L.nnz else 0.0
    if normalization != "rw" and asym <= 1e-12 * max(abs(L).max(), 1.0):
        ev = scipy.sparse.linalg.eigsh(L, k=1, which="LM", return_eigenvectors=False, v0=v0)
    else:
        ev = scipy.sparse.linalg.eigs(L, k=1, which="LM", return_eigenvectors=False, v0=v0)
    return float(ev[0].real)


def _lambda_key(lambda_max):
    """lambda_max as a float > 0 (a number or a one-element array), None for the default."""
    if lambda_max is None:
        return None
    if np.ndim(lambda_max) > 0 and np.size(lambda_max) == 1:
        lambda_max = np.reshape(lambda_max, ())
    if isinstance(lambda_max, np.ndarray):
        lambda_max = lambda_max.item()
    lam = finite_real("lambda_max", lambda_max)
    if lam <= 0:
        raise ValueError(f"lambda_max must be a finite number > 0, got {lambda_max!r}")
    return lam


class ScaledLaplacian(NamedTuple):
    """L~ = 2 L / lambda_max - I on the graph ``graph`` (one value per edge), and 2 L~ beside it."""
    graph: Graph
    val: object          # L~ per edge of ``graph``, (E_L,) in the layer's dtype, on the graph's device
    val2: object         # 2 L~ (exactly twice ``val``): T_k = (2 L~) T_{k-1} - T_{k-2} in one SpMM
    lambda_max: float
    key: tuple           # (normalisation, lambda_max as given, dtype): names the values in caches on ``graph``


def _scaled_host(host, normalization, lam):
    g, L = laplacian(host, normalization)
    if lam is None:
        lam = float(2.0 * np.max(L))
        if not lam > 0:
            raise ValueError(f"ChebConv: the default lambda_max = 2 max L[i, j] is {lam:g} <= 0 (a graph without "
                             f"edges under normalization={normalization!r}): pass lambda_max")
    val = 2.0 * L / lam
    val[g.edge_id == -1] -= 1.0                              # L~ = 2 L / lambda_max - I, on the loop of each node
    return g, val, lam


def _scaled(host, normalization, lam):
    """(graph_L, L~ float64, the lambda_max used), cached on the host graph."""
    return host.cached(("cheb_scaled", normalization, lam), lambda: _scaled_host(host, normalization, lam))


def scaled_laplacian(graph, normalization="sym", lambda_max=None, dtype=np.float32):
    """L~ = 2 L / lambda_max - I exactly as PyG 2.8's ChebConv builds it, cached: a ``ScaledLaplacian``.

    L is ``laplacian(graph, normalization)``; ``lambda_max=None`` takes PyG's default
    (``default_lambda_max``: 2.0 for "sym" / "rw" with non-negative weights). The sparse structure is
    L's: the graph's edges without its self-loops, plus one loop per node. Built once per graph,
    normalisation, lambda_max and dtype on the host (``Graph.derived``) and moved once to the graph's
    device. Raises ValueError for a non-square graph, an unknown normalisation, lambda_max <= 0.
    """
    _check_square("ChebConv", graph)
    _check_normalization(normalization)
    lam = _lambda_key(lambda_max)
    dt = float_dtype(dtype)

    def build(host):
        g, val, _ = _scaled(host, normalization, lam)
        # L's graph is shared by every lambda_max: the values' keys must name it (and the normalisation)
        return (g, g.cached(("cheb_val", normalization, lam, dt.str), lambda: val.astype(dt)),
                g.cached(("cheb_val2", normalization, lam, dt.str), lambda: (2.0 * val).astype(dt)))
    g, val, val2 = graph.derived(("cheb_scaled", normalization, lam, dt.str), build)
    return ScaledLaplacian(g, val, val2, _scaled(graph.host, normalization, lam)[2], (normalization, lam, dt.str))


# ------------------------------------------------------------------------------------ the two recurrences
def _product(lap, Z, twice, transposed):
    """L~ Z (2 L~ Z when ``twice``), or with L~^T when ``transposed`` (the backward's operator)."""
    v = lap.val2 if twice else lap.val
    if transposed:
        return ops.spmm_transposed(lap.graph, v, ("cheb", twice, lap.key), Z)
    return ops.spmm(lap.graph, v, Z)


def chebyshev_terms(lap, Z, K, transposed=False):
    """[T_0(M) Z, ..., T_{K-1}(M) Z] with M = L~ (L~^T when ``transposed``): K - 1 SpMMs at Z's width.

    T_0 = Z,  T_1 = M Z,  T_k = 2 M T_{k-1} - T_{k-2}.
    """
    T = [Z]
    if K > 1:
        T.append(_product(lap, Z, False, transposed))
    for k in range(2, K):
        T.append(ops.sub_(_product(lap, T[k - 1], True, transposed), T[k - 2]))
    return T


def clenshaw(lap, Y, transposed=False):
    """Σ_k T_k(M) Y_k for the K arrays ``Y`` (each (N, F), overwritten), M = L~ or L~^T: K - 1 SpMMs.

    Clenshaw's recurrence, from the highest term down: b_k = Y_k + 2 M b_{k+1} - b_{k+2} (b_K = b_{K+1}
    = 0), then the sum is Y_0 + M b_1 - b_2 (derivations/cheb_conv.md §3).
    """
    b1 = b2 = None                                                       # b_{k+1}, b_{k+2}
    for k in range(len(Y) - 1, 0, -1):
        b = Y[k]
        if b1 is not None:
            ops.add_(b, _product(lap, b1, True, transposed))             # + 2 M b_{k+1}
        if b2 is not None:
            ops.sub_(b, b2)                                              # - b_{k+2}
        b1, b2 = b, b1
    out = Y[0]
    if b1 is not None:
        ops.add_(out, _product(lap, b1, False, transposed))              # + M b_1
    if b2 is not None:
        ops.sub_(out, b2)                                                # - b_2
    return out


# ------------------------------------------------------------------------------------ ChebConv
class ChebConv(Module):
    """X' = Σ_{k<K} T_k(L~) X W_k + b, L~ = 2 L / lambda_max - I (PyG's ``ChebConv``, same arguments and meaning).

    T_0 = X, T_1 = L~ X, T_k = 2 L~ T_{k-1} - T_{k-2}: a polynomial of degree K - 1 in L, so the
    filter reaches K - 1 hops (Defferrard et al.'s K is the number of terms; Kipf & Welling's K is the
    degree: their "K = 3" is ``ChebConv(K=4)``). L is PyG's ``get_laplacian`` of the graph
    (``laplacian``): self-loops removed, degrees summed over the edges *leaving* each node, repeated
    edges and edge weights counted; normalization "sym" (I - D^-1/2 A D^-1/2), "rw" (I - D^-1 A) or
    None (D - A). ``forward(x, graph, lambda_max=None)``: None takes PyG 2.8's default 2 max_ij L[i, j]
    (= 2.0 for "sym" and "rw", 2 max degree for None); ``estimate_lambda_max`` gives the exact value.
    One lambda_max serves the whole graph, a ``GraphBatch`` included (PyG's per-graph tensor with
    ``batch`` is not taken); L~ is cached on the graph per lambda_max value.

    Shapes: x (N, F_in) float, dense or scipy-sparse (then no input gradient); the graph square;
    W (K, F_in, F_out) with W[k] = PyG's ``lins[k].weight.T``; b (F_out,); out (N, F_out).
    The order is GCN's rule: "transform first" (Clenshaw's sum over Y_k = X W_k, SpMMs at width F_out)
    when F_out <= F_in or x is sparse, else "propagate first" (the terms T_k at width F_in).

    Backward with G = dL/dout (derivations/cheb_conv.md), the same recurrences on L~^T:
        db = Σ_n G[n]
        transform first:  R_k = T_k(L~^T) G (the terms on G);  dW_k = X^T R_k;  dX = Σ_k R_k W_k^T
        propagate first:  dW_k = T_k^T G;  dX = Σ_k T_k(L~^T) (G W_k^T)  (Clenshaw on L~^T)
    L~^T = L~ only for a symmetric L~ (an undirected graph under "sym" or None); the backward always
    runs on the cached transpose (``ops.spmm_transposed``), so directed graphs are right.
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, K, normalization="sym", bias=True, seed=0, dtype=np.float32):
        super().__init__()
        F_in, F_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        self.K = positive_int("K", K)
        self.normalization = _check_normalization(normalization)
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels = F_in, F_out
        seeds = [int(q.generate_state(1)[0]) for q in np.random.SeedSequence(seed).spawn(self.K)]
        self.add_param("W", np.stack([glorot(as_rng(s), F_in, F_out, dtype=dtype) for s in seeds]))
        if bias:
            self.add_param("b", np.zeros(F_out, dtype=dtype))

    def __repr__(self):
        return f"ChebConv({self.in_channels}, {self.out_channels}, K={self.K}, normalization={self.normalization})"

    @single_blas_pool
    def forward(self, x, graph=None, lambda_max=None):
        check_graph(self, graph)
        _check_square("ChebConv", graph)
        W = self.params["W"]
        X = check_features(x, num_cols=self.in_channels, dtype=W.dtype, graph=graph)
        lam = _lambda_key(lambda_max)              # checked even when K = 1 never reads it
        lap = scaled_laplacian(graph, self.normalization, lam, W.dtype) if self.K > 1 else None
        transform_first = self.out_channels <= self.in_channels or issparse(X)
        if transform_first:
            out = clenshaw(lap, [ops.matmul(X, W[k]) for k in range(self.K)])   # Σ_k T_k(L~) (X W_k)
            saved = X
        else:
            T = chebyshev_terms(lap, X, self.K)                                  # T_k = T_k(L~) X
            out = ops.matmul(T[0], W[0])
            for k in range(1, self.K):
                ops.add_(out, ops.matmul(T[k], W[k]))                            # Σ_k T_k W_k
            saved = T
        if "b" in self.params:
            ops.add_bias(out, self.params["b"])
        self._cache = (lap, saved, transform_first)
        return out

    @single_blas_pool
    def backward(self, grad_out):
        lap, saved, transform_first = self._saved()
        W, dW = self.params["W"], self.grads["W"]
        if "b" in self.params:
            ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)          # db += Σ_n G[n]
        if transform_first:
            X = saved
            R = chebyshev_terms(lap, grad_out, self.K, transposed=True)          # R_k = T_k(L~^T) G = dY_k
            for k in range(self.K):
                ops.matmul_tn(X, R[k], out=dW[k], accumulate=True)               # dW_k += X^T R_k
            if issparse(X) or not self.needs_input_grad:
                return None
            dX = ops.matmul_nt(R[0], W[0])
            for k in range(1, self.K):
                ops.add_(dX, ops.matmul_nt(R[k], W[k]))                          # dX = Σ_k R_k W_k^T
            return dX
        T = saved
        for k in range(self.K):
            ops.matmul_tn(T[k], grad_out, out=dW[k], accumulate=True)            # dW_k += T_k^T G
        if not self.needs_input_grad:
            return None
        return clenshaw(lap, [ops.matmul_nt(grad_out, W[k]) for k in range(self.K)],
                        transposed=True)                                         # dX = Σ_k T_k(L~^T) G W_k^T


# ------------------------------------------------------------------------------------ first-order truncations
FIRST_ORDER_VARIANTS = ("first_order", "single_param", "first_order_term")


class FirstOrderConv(Module):
    """Kipf & Welling's first-order propagation models (their Table 3), with Â = D^-1/2 A D^-1/2 (no loops added).

        "first_order":       X' = X W_0 + Â X W_1 + b       (ChebConv K=2 at lambda_max = 2: L~ = -Â)
        "single_param":      X' = (I + Â) X W + b           (W_0 = -W_1 = W: one matrix)
        "first_order_term":  X' = Â X W + b                 (= GCNConv(add_self_loops=False))
    Â is ``ops.gcn_norm(graph, add_self_loops=False)``: Â[i, j] = w_ji / sqrt(d_i d_j) with in-degrees, the
    graph's own self-loops and repeated edges kept, a node of degree 0 gets 0 -- GCNConv's rules without
    the renormalisation trick's loops. On an undirected graph without self-loops (Cora, CiteSeer) this
    is exactly -L~ of ``ChebConv(normalization="sym")`` at lambda_max = 2.

    Shapes: x (N, F_in) dense or scipy-sparse, W_0, W_1, W (F_in, F_out), b (F_out,), out (N, F_out).
    The product is taken as Â (X W) (SpMM at width F_out: these are Table 3's first layers on sparse
    bag-of-words features). Backward, with dZ = Âᵀ G (``ops.spmm_transposed``):
        first_order:       dW_0 = Xᵀ G;  dW_1 = Xᵀ dZ;  dX = G W_0ᵀ + dZ W_1ᵀ
        single_param:      dZ' = G + dZ;  dW = Xᵀ dZ';  dX = dZ' Wᵀ
        first_order_term:  dW = Xᵀ dZ;  dX = dZ Wᵀ
    and db = Σ_n G[n] (derivations/cheb_conv.md §6).
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, variant="first_order", bias=True, seed=0, dtype=np.float32):
        super().__init__()
        if variant not in FIRST_ORDER_VARIANTS:
            raise ValueError(f"variant must be one of {FIRST_ORDER_VARIANTS}, got {variant!r}")
        F_in, F_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels, self.variant = F_in, F_out, variant
        s = [int(q.generate_state(1)[0]) for q in np.random.SeedSequence(seed).spawn(2)]
        if variant == "first_order":
            self.add_param("W_0", glorot(as_rng(s[0]), F_in, F_out, dtype=dtype))
            self.add_param("W_1", glorot(as_rng(s[1]), F_in, F_out, dtype=dtype))
        else:
            self.add_param("W", glorot(as_rng(s[0]), F_in, F_out, dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(F_out, dtype=dtype))

    def __repr__(self):
        return f"FirstOrderConv({self.in_channels}, {self.out_channels}, variant={self.variant!r})"

    @single_blas_pool
    def forward(self, x, graph=None):
        check_graph(self, graph)
        _check_square("FirstOrderConv", graph)
        dtype = self.param_dtype
        X = check_features(x, num_cols=self.in_channels, dtype=dtype, graph=graph)
        g, a = ops.gcn_norm(graph, dtype, add_self_loops=False)                  # Â = D^-1/2 A D^-1/2
        if self.variant == "first_order":
            out = ops.matmul(X, self.params["W_0"])                               # X W_0
            ops.add_(out, ops.spmm(g, a, ops.matmul(X, self.params["W_1"])))      # + Â (X W_1)
        else:
            Z = ops.matmul(X, self.params["W"])                                   # Z = X W
            out = ops.spmm(g, a, Z)                                               # Â Z
            if self.variant == "single_param":
                ops.add_(out, Z)                                                  # + Z
        if "b" in self.params:
            ops.add_bias(out, self.params["b"])
        self._cache = (g, a, X)
        return out

    @single_blas_pool
    def backward(self, grad_out):
        g, a, X = self._saved()
        if "b" in self.params:
            ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)          # db += Σ_n G[n]
        # GCNConv's key for the same (Â, dtype): the transposed values are cached once for both layers
        dZ = ops.spmm_transposed(g, a, ("gcn", True, False, False, a.dtype.str), grad_out)   # dZ = Âᵀ G
        want_dx = self.needs_input_grad and not issparse(X)
        if self.variant == "first_order":
            W_0, W_1 = self.params["W_0"], self.params["W_1"]
            ops.matmul_tn(X, grad_out, out=self.grads["W_0"], accumulate=True)   # dW_0 += Xᵀ G
            ops.matmul_tn(X, dZ, out=self.grads["W_1"], accumulate=True)         # dW_1 += Xᵀ dZ
            if not want_dx:
                return None
            return ops.add_(ops.matmul_nt(grad_out, W_0), ops.matmul_nt(dZ, W_1))   # dX = G W_0ᵀ + dZ W_1ᵀ
        if self.variant == "single_param":
            ops.add_(dZ, grad_out)                                               # dZ' = G + Âᵀ G
        ops.matmul_tn(X, dZ, out=self.grads["W"], accumulate=True)               # dW += Xᵀ dZ
        return ops.matmul_nt(dZ, self.params["W"]) if want_dx else None          # dX = dZ Wᵀ
