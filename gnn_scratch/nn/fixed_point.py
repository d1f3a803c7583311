"""The original graph neural network: a state fixed point, trained by Almeida–Pineda (derivations/fixed_point_gnn.md).

Scarselli, Gori, Tsoi, Hagenbuchner & Monfardini, "The Graph Neural Network Model", IEEE Transactions
on Neural Networks 20(1), 61-80, 2009. Every node n has a label l_n (its features) and a state x_n;
the states are the unique solution of

    x_n = F_w(x, l)_n = Σ_{e: u→n} h_w(l_n, l_u, x_u)          (the paper's "nonpositional" form)

found by the Jacobi iteration x(t+1) = F_w(x(t), l) from x(0) = 0, and the output is
o_n = g_w(x_n, l_n). Banach's theorem makes the solution unique and the iteration converge when F_w
is a contraction in x. Two transitions h_w, as in the paper's §III:

* ``NonlinearTransition``: h = tanh(l_n W_dst + l_u W_src + x_u W_x + b_1) W_2 + b_2 (a three-layer
  FNN), summed over the in-edges (``aggr="sum"``, the paper) or averaged (``"mean"``). Nothing in
  the form makes F a contraction: the paper's penalty on the Jacobian ∂F/∂x pushes it there;
* ``LinearTransition``: h = A_{n,u} x_u + b_n with A_{n,u} = μ/(s·d) · resize(φ(l_n, l_u)), φ an
  FNN ending in tanh, and b_n = l_n R + r (the forcing network). The scaling bounds ‖∂F/∂x‖ below
  μ < 1 whatever the weights: a contraction by construction.

The gradient is not back-propagated through the iterations (Almeida–Pineda, the paper's §III-B):
with c = ∂e/∂x (through g, plus the penalty's ∂p/∂x), the adjoint z solves z = z·∂F/∂x + c, found
by the same Jacobi iteration, and then ∂e/∂w = z·∂F/∂w + ∂e/∂o·∂G/∂w. Both iterations stop when
‖x(t+1) − x(t)‖_∞ ≤ tol (the adjoint: ≤ tol·‖c‖_∞) and raise ``FixedPointNotConverged`` after
``max_iter`` iterations rather than return an unconverged state. ``unroll_steps=T`` replaces the
fixed point with exactly T Jacobi steps from 0 and back-propagates through them (BPTT), the
reference the Almeida–Pineda gradient is compared with.

Edge sums run through ops on two graphs derived once per graph (as ``MessagePassing`` does): the
"edge graph" (E, N) gathers a source row to each edge, the "row graph" (N, E) sums edge rows into
their destination; their transposes gather destination rows and sum into sources. tanh and the
s×s per-edge products have no op yet: the layer runs on the host (``devices=("cpu",)``).
Edge weights are ignored (the paper's edge labels l_(n,u) are not used).
"""
from types import SimpleNamespace

import numpy as np

from .. import ops
from ..device import issparse
from .checks import check_features, check_graph, finite_real, float_dtype, positive_int
from .dropout import Dropout
from .init import as_rng, glorot
from .message_passing import _edge_graph, _row_graph
from .module import Module

TRANSITIONS = ("nonlinear", "linear")
AGGREGATIONS = ("sum", "mean")
NORMS = ("inf", "1")
DEFAULT_TOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-5}
STATE_INIT_SCALE = 0.1   # W_x starts at 0.1 x Glorot, so F starts well inside the contraction region


class FixedPointNotConverged(RuntimeError):
    """A Jacobi iteration (the state, or the Almeida–Pineda adjoint) did not reach its tolerance.

    Attributes: ``what`` ("state" or "adjoint"), ``iterations`` (how many ran), ``residual`` (the
    last ‖x(t+1) − x(t)‖_∞, possibly inf / nan) and ``tol`` (the threshold it had to reach).
    """

    def __init__(self, what, iterations, residual, tol, reason="did not converge"):
        self.what, self.iterations, self.residual, self.tol = what, int(iterations), float(residual), float(tol)
        super().__init__(
            f"the {what} fixed point {reason}: after {self.iterations} Jacobi iterations "
            f"‖x(t+1) − x(t)‖_∞ = {self.residual:.3e} > tol = {self.tol:.1e}. The transition is not a "
            f"contraction here: lower mu, raise penalty_weight (nonlinear), or raise max_iter")


def jacobi(step, x0, tol, max_iter, what="state"):
    """Iterate x(t+1) = step(x(t)) from x0 until ‖x(t+1) − x(t)‖_∞ ≤ tol; returns (x, iterations, residual).

    Raises ``FixedPointNotConverged`` after ``max_iter`` steps, or at once when the residual stops
    being finite (the iteration diverged). x0 is not modified.
    """
    x = x0
    residual = np.inf
    for t in range(1, max_iter + 1):
        x_new = step(x)
        residual = float(np.max(np.abs(x_new - x))) if x.size else 0.0
        if not np.isfinite(residual):
            raise FixedPointNotConverged(what, t, residual, tol, "diverged (the state is no longer finite)")
        if residual <= tol:
            return x_new, t, residual
        x = x_new
    raise FixedPointNotConverged(what, max_iter, residual, tol)


# ------------------------------------------------------------------------------------------ edge sums
class EdgeOps:
    """The four edge sums of one graph, through ops, built once per graph (``Graph.derived``).

    gather_src(X)[e] = X[u],  gather_dst(Y)[e] = w_e Y[n],  sum_dst(M, w)[n] = Σ_{e→n} w_e M[e],
    sum_src(M)[u] = Σ_{e: u→} M[e], for edges e: u → n; X, Y (N, F), M (E, F). ``w`` (E,) or None (ones).
    """

    def __init__(self, graph, dtype):
        self.graph = graph
        self.edges = graph.derived(("message_passing", "edges"), _edge_graph)      # (E, N): row e = edge e's source
        self.rows = graph.derived(("message_passing", "rows"), _row_graph)         # (N, E): row n = n's in-edges
        self.ones = ops.ones_on_edges(graph, dtype)
        self.num_edges = graph.num_edges

    def gather_src(self, X):
        return ops.spmm(self.edges, self.ones, X)

    def gather_dst(self, Y, w=None):
        return ops.spmm_backward_X(self.rows, self.ones if w is None else w, Y)

    def sum_dst(self, M, w=None):
        return ops.spmm(self.rows, self.ones if w is None else w, M)

    def sum_src(self, M):
        return ops.spmm_backward_X(self.edges, self.ones, M)


def _edge_coefficients(graph, dtype, key, build):
    """A per-graph (E,) or (N,) array of ``dtype`` computed once from the host graph's degrees."""
    return graph.derived(("fixed_point", key, np.dtype(dtype).str), lambda g: build(g).astype(dtype))


def _tanh(a):
    return np.tanh(a)


def _child_seeds(seed, n):
    return [int(q.generate_state(1)[0]) for q in np.random.SeedSequence(seed).spawn(n)]


# ------------------------------------------------------------------------------------------ transitions
class NonlinearTransition(Module):
    """F(x)_n = Σ_{e: u→n} c_e (tanh(P_e) W_2 + b_2),  P_e = l_n W_dst + l_u W_src + x_u W_x + b_1.

    c_e = 1 (``aggr="sum"``, the paper's nonpositional form) or 1/d_n (``"mean"``, d_n the in-degree).
    Shapes: labels L (N, F_l), states X (N, s), W_dst and W_src (F_l, q), W_x (s, q), b_1 (q,),
    W_2 (q, s), b_2 (s,); per-edge P, H = tanh(P) (E, q). A node without in-edges has state 0.
    The Jacobian block of an edge e: u → n is ∂F_n/∂x_u = c_e W_x diag(1 − H_e²) W_2 (s × s, row j =
    input coordinate, column k = output coordinate): ``jacobian_blocks``. Used by ``FixedPointGNN``;
    its methods take the forward context ``ctx`` (``prepare``) and a linearisation ``lin`` (``step``).
    """

    kind = "nonlinear"

    def __init__(self, label_dim, state_dim, hidden, aggr="sum", seed=0, dtype=np.float32):
        super().__init__()
        if aggr not in AGGREGATIONS:
            raise ValueError(f"aggr must be one of {AGGREGATIONS}, got {aggr!r}")
        self.aggr = aggr
        F, s, q = label_dim, state_dim, hidden
        r = [as_rng(k) for k in _child_seeds(seed, 4)]
        self.add_param("W_dst", glorot(r[0], F, q, dtype=dtype))
        self.add_param("W_src", glorot(r[1], F, q, dtype=dtype))
        self.add_param("W_x", (STATE_INIT_SCALE * glorot(r[2], s, q, dtype=np.float64)).astype(dtype))
        self.add_param("b_1", np.zeros(q, dtype=dtype))
        self.add_param("W_2", glorot(r[3], q, s, dtype=dtype))
        self.add_param("b_2", np.zeros(s, dtype=dtype))

    def coefficients(self, graph, dtype):
        """(c (E,), c_deg (N,)): the edge factors c_e and their sums per destination Σ_{e→n} c_e."""
        if self.aggr == "sum":
            c = ops.ones_on_edges(graph, dtype)
            cdeg = _edge_coefficients(graph, dtype, "in_degree", lambda g: g.in_degree().astype(np.float64))
        else:
            c = _edge_coefficients(graph, dtype, "inverse_in_degree",
                                   lambda g: 1.0 / np.repeat(g.in_degree(), g.in_degree()).astype(np.float64))
            cdeg = _edge_coefficients(graph, dtype, "has_in_edge", lambda g: (g.in_degree() > 0).astype(np.float64))
        return c, cdeg

    def prepare(self, L, graph):
        """The label-only parts, computed once per forward: a_dst = L W_dst + b_1, a_lab = L W_src (N, q)."""
        p = self.params
        a_dst = ops.add_bias(ops.matmul(L, p["W_dst"]), p["b_1"])
        c, cdeg = self.coefficients(graph, p["W_2"].dtype)
        return SimpleNamespace(graph=graph, L=L, a_dst=a_dst, a_lab=ops.matmul(L, p["W_src"]), c=c, cdeg=cdeg,
                               edges=EdgeOps(graph, p["W_2"].dtype))

    def step(self, ctx, X):
        """(F(X), lin): one Jacobi step and the linearisation at X (X, H, S = Σ_{e→n} c_e H_e)."""
        p = self.params
        a_src = ops.add_(ops.matmul(X, p["W_x"]), ctx.a_lab)                # l_u W_src + x_u W_x    (N, q)
        H = _tanh(ops.sddmm_add(ctx.graph, ctx.a_dst, a_src))               # H_e = tanh(P_e)        (E, q)
        S = ctx.edges.sum_dst(H, ctx.c)                                     # S_n = Σ_{e→n} c_e H_e  (N, q)
        out = ops.matmul(S, p["W_2"])
        out += ctx.cdeg[:, None] * p["b_2"]                                 # + (Σ_{e→n} c_e) b_2
        return out, SimpleNamespace(X=X, H=H, S=S)

    @staticmethod
    def _cD(ctx, lin):
        """c_e (1 − H_e²) (E, q): tanh's derivative times the edge factor, built once per linearisation."""
        if not hasattr(lin, "cD"):
            lin.cD = ctx.c[:, None] * (1 - lin.H * lin.H)
        return lin.cD

    def vjp_state(self, ctx, lin, Z):
        """Z ∂F/∂x at lin: (Z J)_u = Σ_{e: u→n} ((Z_n W_2ᵀ) ⊙ c_e (1 − H_e²)) W_xᵀ   (N, s)."""
        dP = ctx.edges.gather_dst(ops.matmul_nt(Z, self.params["W_2"])) * self._cD(ctx, lin)
        return ops.matmul_nt(ctx.edges.sum_src(dP), self.params["W_x"])

    def vjp(self, ctx, lin, Z, want_labels):
        """Add Z ∂F/∂w into ``grads``; returns (Z ∂F/∂x (N, s), Z ∂F/∂l (N, F_l) or None)."""
        p, g = self.params, self.grads
        ops.col_sum(ctx.cdeg[:, None] * Z, out=g["b_2"], accumulate=True)        # db_2 += Σ_n c_deg,n Z_n
        ops.matmul_tn(lin.S, Z, out=g["W_2"], accumulate=True)                    # dW_2 += Sᵀ Z
        dP = ctx.edges.gather_dst(ops.matmul_nt(Z, p["W_2"])) * self._cD(ctx, lin)   # c_e (Z_n W_2ᵀ) ⊙ (1 − H_e²)
        return self._through_preactivation(ctx, lin.X, dP, want_labels)

    def _through_preactivation(self, ctx, X, dP, want_labels):
        """Back through P_e = a_dst[n] + a_src[u]: parameter gradients added; returns (dX, dL or None)."""
        p, g = self.params, self.grads
        g_dst, g_src = ctx.edges.sum_dst(dP), ctx.edges.sum_src(dP)               # Σ_{e→n} dP_e, Σ_{e: u→} dP_e
        ops.matmul_tn(ctx.L, g_dst, out=g["W_dst"], accumulate=True)             # dW_dst += Lᵀ g_dst
        ops.col_sum(g_dst, out=g["b_1"], accumulate=True)                        # db_1 += Σ_n g_dst
        ops.matmul_tn(ctx.L, g_src, out=g["W_src"], accumulate=True)             # dW_src += Lᵀ g_src
        ops.matmul_tn(X, g_src, out=g["W_x"], accumulate=True)                   # dW_x += Xᵀ g_src
        dX = ops.matmul_nt(g_src, p["W_x"])                                      # dX = g_src W_xᵀ
        dL = None
        if want_labels:
            dL = ops.add_(ops.matmul_nt(g_dst, p["W_dst"]), ops.matmul_nt(g_src, p["W_src"]))
        return dX, dL

    # -------------------------------------------------------------- the contraction penalty (paper eq. (10))
    def jacobian_blocks(self, ctx, lin):
        """K (E, s, s): K_e[j, k] = ∂F(x)_{n,k} / ∂x_{u,j} through edge e: u → n, = c_e Σ_q W_x[j,q] D_e[q] W_2[q,k]."""
        p = self.params
        return np.matmul(self._cD(ctx, lin)[:, None, :] * p["W_x"][None], p["W_2"])

    def penalty(self, ctx, lin, weight, mu, norm):
        """(value, cache): weight/N Σ_{rows or columns i of ∂F/∂x} max(0, ‖(∂F/∂x)_i‖_1 − mu)².

        norm "inf": the rows (n, k) of ∂F/∂x, whose largest 1-norm is ‖∂F/∂x‖_∞; norm "1": the
        columns (u, j), the paper's choice (‖∂F/∂x‖_1). Row / column 1-norms are summed edge by edge,
        exact for repeated edges (their blocks are equal). Returns a Python float and the cache of
        ``penalty_vjp``.
        """
        K = self.jacobian_blocks(ctx, lin)
        absK = np.abs(K)
        if norm == "inf":
            r = ctx.edges.sum_dst(np.ascontiguousarray(absK.sum(axis=1)))      # r[n, k] = Σ_{e→n} Σ_j |K_e[j,k]|
        else:
            r = ctx.edges.sum_src(np.ascontiguousarray(absK.sum(axis=2)))      # r[u, j] = Σ_{e: u→} Σ_k |K_e[j,k]|
        excess = np.maximum(r - mu, 0)
        N = max(r.shape[0], 1)
        return float(weight * np.sum(excess * excess) / N), SimpleNamespace(K=K, gamma=2 * weight * excess / N)

    def penalty_vjp(self, ctx, lin, cache, norm, want_labels):
        """Add ∂p/∂w into ``grads``; returns (∂p/∂x (N, s), ∂p/∂l or None). derivations/fixed_point_gnn.md §6."""
        p, g = self.params, self.grads
        W_x, W_2, H = p["W_x"], p["W_2"], lin.H
        sign = np.sign(cache.K)
        if norm == "inf":                                                        # Γ_e[j,k] = γ[n,k] sign K_e[j,k]
            Gamma = sign * ctx.edges.gather_dst(cache.gamma)[:, None, :]
        else:                                                                    # Γ_e[j,k] = γ[u,j] sign K_e[j,k]
            Gamma = sign * ctx.edges.gather_src(cache.gamma)[:, :, None]
        cD = self._cD(ctx, lin)
        T = np.matmul(W_x.T[None], Gamma)                                        # T_e = W_xᵀ Γ_e   (E, q, s)
        g["W_x"] += np.einsum("ejq,eq->jq", np.matmul(Gamma, W_2.T[None]), cD)   # Σ_e cD_e[q] (Γ_e W_2ᵀ)[j,q]
        g["W_2"] += np.einsum("eqk,eq->qk", T, cD)                               # dW_2[q,k] += Σ_e cD_e[q] T_e[q,k]
        dD = ctx.c[:, None] * np.sum(T * W_2[None], axis=2)                      # c_e Σ_k T_e[q,k] W_2[q,k]
        dP = np.ascontiguousarray(dD * (-2 * H * (1 - H * H)))                   # D = 1 − tanh²(P): D' = −2 H (1 − H²)
        return self._through_preactivation(ctx, lin.X, dP, want_labels)


class LinearTransition(Module):
    """F(x)_n = Σ_{e: u→n} A_e x_u + b_n: the paper's linear (nonpositional) GNN.

    A_e = κ_e · resize(Ξ_e), Ξ_e = tanh(tanh(l_n V_dst + l_u V_src + c_1) V_2 + c_2) ∈ (−1, 1)^{s·s}
    (resize: row-major to s × s, A_e[k, j] multiplies x_u[j] into F_n[k]); b_n = l_n R + r.
    κ_e = μ / (s d_n) (``norm="inf"``: every row of ∂F/∂x has 1-norm < μ, so ‖∂F/∂x‖_∞ < μ), or
    μ / (s d⁺_u) (``norm="1"``, the paper's |ne[u]|: columns, ‖∂F/∂x‖_1 < μ); d_n the in-degree,
    d⁺_u the out-degree. Either way F is a contraction with factor < μ < 1 for any weights.
    Shapes: V_dst, V_src (F_l, q), c_1 (q,), V_2 (q, s·s), c_2 (s·s,), R (F_l, s), r (s,).
    """

    kind = "linear"

    def __init__(self, label_dim, state_dim, hidden, mu=0.9, norm="inf", seed=0, dtype=np.float32):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"contraction_norm must be one of {NORMS}, got {norm!r}")
        self.mu, self.norm, self.state_dim = mu, norm, state_dim
        F, s, q = label_dim, state_dim, hidden
        r = [as_rng(k) for k in _child_seeds(seed, 4)]
        self.add_param("V_dst", glorot(r[0], F, q, dtype=dtype))
        self.add_param("V_src", glorot(r[1], F, q, dtype=dtype))
        self.add_param("c_1", np.zeros(q, dtype=dtype))
        self.add_param("V_2", glorot(r[2], q, s * s, dtype=dtype))
        self.add_param("c_2", np.zeros(s * s, dtype=dtype))
        self.add_param("R", glorot(r[3], F, s, dtype=dtype))
        self.add_param("r", np.zeros(s, dtype=dtype))

    def scale(self, graph, dtype):
        """κ (E,): μ / (s d_n) or μ / (s d⁺_u) per edge e: u → n (computed once per graph and dtype)."""
        s, mu = self.state_dim, self.mu
        if self.norm == "inf":
            build = lambda g: mu / (s * np.repeat(g.in_degree(), g.in_degree()).astype(np.float64))  # noqa: E731
        else:
            build = lambda g: mu / (s * g.out_degree()[g.indices].astype(np.float64))              # noqa: E731
        return _edge_coefficients(graph, dtype, ("linear_scale", self.norm, float(mu), s), build)

    def prepare(self, L, graph):
        """A (E, s, s) and b (N, s), which depend on the labels only: computed once per forward."""
        p, s = self.params, self.state_dim
        a_dst = ops.add_bias(ops.matmul(L, p["V_dst"]), p["c_1"])
        Hphi = _tanh(ops.sddmm_add(graph, a_dst, ops.matmul(L, p["V_src"])))        # (E, q)
        Xi = _tanh(ops.add_bias(ops.matmul(Hphi, p["V_2"]), p["c_2"]))              # (E, s·s)
        kappa = self.scale(graph, p["R"].dtype)
        A = kappa[:, None, None] * Xi.reshape(-1, s, s)
        b = ops.add_bias(ops.matmul(L, p["R"]), p["r"])
        return SimpleNamespace(graph=graph, L=L, Hphi=Hphi, Xi=Xi, kappa=kappa, A=A, b=b,
                               edges=EdgeOps(graph, p["R"].dtype))

    def step(self, ctx, X):
        """(F(X), lin): F(X)_n = Σ_{e→n} A_e X_u + b_n; the linearisation is X itself (F is affine in x)."""
        msg = np.matmul(ctx.A, ctx.edges.gather_src(X)[:, :, None])[:, :, 0]       # A_e x_u   (E, s)
        return ops.add_(ctx.edges.sum_dst(msg), ctx.b), SimpleNamespace(X=X)

    def vjp_state(self, ctx, lin, Z):
        """(Z J)_u = Σ_{e: u→n} A_eᵀ Z_n   (N, s)."""
        Zd = ctx.edges.gather_dst(Z)
        return ctx.edges.sum_src(np.matmul(Zd[:, None, :], ctx.A)[:, 0, :])

    def vjp(self, ctx, lin, Z, want_labels):
        """Add Z ∂F/∂w into ``grads``; returns (Z ∂F/∂x, Z ∂F/∂l or None). derivations/fixed_point_gnn.md §5."""
        p, g, s = self.params, self.grads, self.state_dim
        Zd = ctx.edges.gather_dst(Z)                                               # Z_n per edge     (E, s)
        dX = ctx.edges.sum_src(np.matmul(Zd[:, None, :], ctx.A)[:, 0, :])          # Σ_{e: u→} A_eᵀ Z_n
        Xs = ctx.edges.gather_src(lin.X)                                           # x_u per edge     (E, s)
        dXi = (ctx.kappa[:, None, None] * Zd[:, :, None] * Xs[:, None, :]).reshape(-1, s * s)   # dA_e = Z_n x_uᵀ
        dT = np.ascontiguousarray(dXi * (1 - ctx.Xi * ctx.Xi))                     # through the outer tanh
        ops.matmul_tn(ctx.Hphi, dT, out=g["V_2"], accumulate=True)                 # dV_2 += Hφᵀ dT
        ops.col_sum(dT, out=g["c_2"], accumulate=True)
        dP = ops.matmul_nt(dT, p["V_2"]) * (1 - ctx.Hphi * ctx.Hphi)               # through the inner tanh
        g_dst, g_src = ctx.edges.sum_dst(dP), ctx.edges.sum_src(dP)
        ops.matmul_tn(ctx.L, g_dst, out=g["V_dst"], accumulate=True)
        ops.col_sum(g_dst, out=g["c_1"], accumulate=True)
        ops.matmul_tn(ctx.L, g_src, out=g["V_src"], accumulate=True)
        ops.matmul_tn(ctx.L, Z, out=g["R"], accumulate=True)                       # b = L R + r
        ops.col_sum(Z, out=g["r"], accumulate=True)
        dL = None
        if want_labels:
            dL = ops.add_(ops.add_(ops.matmul_nt(g_dst, p["V_dst"]), ops.matmul_nt(g_src, p["V_src"])),
                          ops.matmul_nt(Z, p["R"]))
        return dX, dL


class OutputNetwork(Module):
    """o_n = g_w(x_n, l_n) = tanh(x_n U_x + l_n U_l + c) V + d: (N, C) logits.

    U_x (s, r), U_l (F_l, r), c (r,), V (r, C), d (C,). Backward: dV = Hgᵀ G, dd = Σ G,
    dA = (G Vᵀ) ⊙ (1 − Hg²), dU_x = Xᵀ dA, dU_l = Lᵀ dA, dc = Σ dA, dX = dA U_xᵀ, dL = dA U_lᵀ.
    """

    def __init__(self, state_dim, label_dim, hidden, out_channels, seed=0, dtype=np.float32):
        super().__init__()
        r = [as_rng(k) for k in _child_seeds(seed, 3)]
        self.add_param("U_x", glorot(r[0], state_dim, hidden, dtype=dtype))
        self.add_param("U_l", glorot(r[1], label_dim, hidden, dtype=dtype))
        self.add_param("c", np.zeros(hidden, dtype=dtype))
        self.add_param("V", glorot(r[2], hidden, out_channels, dtype=dtype))
        self.add_param("d", np.zeros(out_channels, dtype=dtype))

    def apply(self, X, L):
        """(O (N, C), cache)."""
        p = self.params
        Hg = _tanh(ops.add_bias(ops.add_(ops.matmul(X, p["U_x"]), ops.matmul(L, p["U_l"])), p["c"]))
        return ops.add_bias(ops.matmul(Hg, p["V"]), p["d"]), (X, L, Hg)

    def vjp(self, G, cache, want_labels):
        """Add the parameter gradients; returns (dX (N, s), dL (N, F_l) or None)."""
        X, L, Hg = cache
        p, g = self.params, self.grads
        ops.matmul_tn(Hg, G, out=g["V"], accumulate=True)                        # dV += Hgᵀ G
        ops.col_sum(G, out=g["d"], accumulate=True)
        dA = ops.matmul_nt(G, p["V"]) * (1 - Hg * Hg)                             # through tanh
        ops.matmul_tn(X, dA, out=g["U_x"], accumulate=True)
        ops.matmul_tn(L, dA, out=g["U_l"], accumulate=True)
        ops.col_sum(dA, out=g["c"], accumulate=True)
        return ops.matmul_nt(dA, p["U_x"]), (ops.matmul_nt(dA, p["U_l"]) if want_labels else None)


# ------------------------------------------------------------------------------------------ the model
class FixedPointGNN(Module):
    """The GNN of Scarselli et al. (2009): states at the fixed point x = F_w(x, l), outputs o_n = g_w(x_n, l_n).

    forward(x, graph): x (N, F_l) node labels (dense, or scipy-sparse: then no input gradient),
    graph square (N, N) -- one graph or a ``GraphBatch`` of many; returns logits (N, C). Raises
    ``FixedPointNotConverged`` when the state iteration does not reach ``tol`` in ``max_iter`` steps
    (or diverges), and ``backward`` the same for the adjoint. ``last_solve`` records the iterations
    and final residuals of the last forward / backward.

    Arguments: state_dim s, hidden_channels q (the transition's hidden layer), output_hidden r
    (g's hidden layer); transition "nonlinear" (aggr "sum" | "mean") or "linear"; mu ∈ (0, 1): the
    linear form's bound on ‖∂F/∂x‖, and the nonlinear form's penalty threshold; contraction_norm
    "inf" (rows of ∂F/∂x, the norm the stopping rule measures) or "1" (columns, the paper's);
    penalty_weight β ≥ 0 (nonlinear only): in training mode the objective gains
    β/N Σ_i max(0, ‖(∂F/∂x)_i‖_1 − mu)² at the fixed point (``last_penalty``), its gradient added by
    ``backward``; tol (default 1e-6 float64, 1e-5 float32) and max_iter for both iterations;
    unroll_steps T: exactly T Jacobi steps from 0 and BPTT instead of the fixed point and Almeida–Pineda;
    dropout p: inverted dropout on the labels in training (the same dropped labels feed F and g).
    """

    needs_input_grad = True

    def __init__(self, in_channels, out_channels, state_dim=5, hidden_channels=16, output_hidden=16,
                 transition="nonlinear", aggr="sum", mu=0.9, contraction_norm="inf", penalty_weight=0.0,
                 tol=None, max_iter=500, unroll_steps=None, dropout=0.0, seed=0, dtype=np.float32):
        super().__init__()
        F, C = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        s, q, r = (positive_int("state_dim", state_dim), positive_int("hidden_channels", hidden_channels),
                   positive_int("output_hidden", output_hidden))
        dtype = float_dtype(dtype)
        if transition not in TRANSITIONS:
            raise ValueError(f"transition must be one of {TRANSITIONS}, got {transition!r}")
        if contraction_norm not in NORMS:
            raise ValueError(f"contraction_norm must be one of {NORMS}, got {contraction_norm!r}")
        mu = finite_real("mu", mu)
        if not 0.0 < mu < 1.0:
            raise ValueError(f"mu must be in (0, 1) (a contraction factor), got {mu!r}")
        penalty_weight = finite_real("penalty_weight", penalty_weight)
        if penalty_weight < 0:
            raise ValueError(f"penalty_weight must be >= 0, got {penalty_weight!r}")
        if penalty_weight > 0 and transition == "linear":
            raise ValueError("penalty_weight applies to the nonlinear transition: the linear one is a "
                             "contraction by construction (its ‖∂F/∂x‖ < mu always)")
        tol = DEFAULT_TOL[dtype] if tol is None else finite_real("tol", tol)
        if tol <= 0:
            raise ValueError(f"tol must be > 0, got {tol!r}")
        self.in_channels, self.out_channels, self.state_dim, self.dtype = F, C, s, dtype
        self.mu, self.contraction_norm, self.penalty_weight = mu, contraction_norm, penalty_weight
        self.tol, self.max_iter = tol, positive_int("max_iter", max_iter)
        self.unroll_steps = None if unroll_steps is None else positive_int("unroll_steps", unroll_steps)
        seeds = _child_seeds(seed, 3)
        self.drop = Dropout(dropout, seed=seeds[2])             # on the labels, in training (0: none)
        if transition == "nonlinear":
            self.transition = NonlinearTransition(F, s, q, aggr=aggr, seed=seeds[0], dtype=dtype)
        else:
            self.transition = LinearTransition(F, s, q, mu=mu, norm=contraction_norm, seed=seeds[0], dtype=dtype)
        self.output = OutputNetwork(s, F, r, C, seed=seeds[1], dtype=dtype)
        self.last_solve = {}
        self.last_penalty = 0.0

    def input_layer(self):
        """The trainer's ``input_is_data`` switches off this model's label gradient (the labels are data)."""
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, x, graph=None):
        check_graph(self, graph)
        if graph.num_src != graph.num_dst:
            raise ValueError(f"FixedPointGNN needs a square graph (states flow along its edges), "
                             f"got shape {graph.shape}")
        L = self.drop.forward(check_features(x, num_cols=self.in_channels, dtype=self.dtype, graph=graph))
        T = self.transition
        ctx = T.prepare(L, graph)
        x0 = np.zeros((graph.num_nodes, self.state_dim), dtype=self.dtype)
        lins = None
        if self.unroll_steps is None:                              # the fixed point, Jacobi from x = 0
            X, its, res = jacobi(lambda X: T.step(ctx, X)[0], x0, self.tol, self.max_iter, "state")
            self.last_solve = dict(forward_iterations=its, forward_residual=res)
        else:                                                      # exactly T steps, every linearisation kept
            X, lins = x0, []
            for _ in range(self.unroll_steps):
                X, lin = T.step(ctx, X)
                lins.append(lin)
            self.last_solve = dict(forward_iterations=self.unroll_steps)
        O, out_cache = self.output.apply(X, L)
        lin_star, pen = None, None
        self.last_penalty = 0.0
        if self.training and self.penalty_weight > 0:
            lin_star = T.step(ctx, X)[1]                           # ∂F/∂x at the returned state
            self.last_penalty, pen = T.penalty(ctx, lin_star, self.penalty_weight, self.mu, self.contraction_norm)
        self._cache = SimpleNamespace(ctx=ctx, X=X, out_cache=out_cache, lins=lins, lin_star=lin_star, pen=pen,
                                      want_labels=self.needs_input_grad and not issparse(L))
        return O

    # ------------------------------------------------------------------ backward
    def backward(self, grad_out):
        cache = self._saved()
        T, ctx, want = self.transition, cache.ctx, cache.want_labels
        c, dL = self.output.vjp(grad_out, cache.out_cache, want)              # c = ∂e/∂o ∂G/∂x
        if cache.pen is not None:                                             # + β ∂p/∂x, and ∂p/∂w, ∂p/∂l
            dX_pen, dL_pen = T.penalty_vjp(ctx, cache.lin_star, cache.pen, self.contraction_norm, want)
            c = ops.add_(c, dX_pen)
            dL = _add_or_none(dL, dL_pen)
        if cache.lins is None:
            dL_F = self._almeida_pineda(cache, c, want)
        else:
            dL_F = self._backprop_through_time(cache, c, want)
        dL = _add_or_none(dL, dL_F)
        return self.drop.backward(dL) if want else None

    def _almeida_pineda(self, cache, c, want):
        """Solve z = z ∂F/∂x + c by Jacobi from 0, then add z ∂F/∂w; returns z ∂F/∂l."""
        T, ctx = self.transition, cache.ctx
        lin = cache.lin_star if cache.lin_star is not None else T.step(ctx, cache.X)[1]
        scale = float(np.max(np.abs(c))) if c.size else 0.0
        if scale == 0.0:                                                      # no gradient reaches the state
            z, its, res = np.zeros_like(c), 0, 0.0
        else:
            z, its, res = jacobi(lambda z: ops.add_(T.vjp_state(ctx, lin, z), c), np.zeros_like(c),
                                 self.tol * scale, self.max_iter, "adjoint")
        self.last_solve.update(adjoint_iterations=its, adjoint_residual=res)
        return T.vjp(ctx, lin, z, want)[1]

    def _backprop_through_time(self, cache, c, want):
        """Back through the T unrolled steps x(t) = F(x(t-1)), x(0) = 0; returns Σ_t z(t) ∂F/∂l."""
        T, ctx = self.transition, cache.ctx
        z, dL = c, None
        for lin in reversed(cache.lins):
            z, dL_t = T.vjp(ctx, lin, z, want)
            dL = _add_or_none(dL, dL_t)
        return dL


def _add_or_none(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return ops.add_(a, b)
