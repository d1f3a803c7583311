"""A C-SVM on a precomputed kernel, solved in the dual by coordinate descent (no sklearn).

Binary problem, labels s_i in {-1, +1}, kernel matrix K (n, n) symmetric PSD, the textbook C-SVC dual
(Cortes & Vapnik 1995), the one LIBSVM solves and the WL-kernel papers used:

    min_alpha  1/2 alpha^T Q alpha - 1^T alpha,   0 <= alpha_i <= C,   sum_i s_i alpha_i = 0,
    Q_ij = s_i s_j K_ij,      f(x) = sum_i alpha_i s_i k(x_i, x) - rho,   predict sign f (f = 0 -> +1)

Solver ``"smo"`` (the default): coordinate descent on *pairs* of dual variables -- the equality
constraint lets no single alpha_i move alone -- i.e. SMO (Platt 1998) with LIBSVM's second-order
working-set selection (Fan, Chen & Lin 2005, JMLR 6, "WSS 2"), the same analytic two-variable update
and clipping, and LIBSVM's rho (the mean of s_i g_i over free alphas). No shrinking, no caching: Q is
held whole (fine for n of a few thousand). Stops when the maximal KKT violation m(alpha) - M(alpha) < tol
(LIBSVM's eps, 1e-3 by default) or after ``max_iter`` pair updates. Deterministic: ties in the selection
go to the last index, as in LIBSVM.

Solver ``"dcd"``: single-coordinate dual coordinate descent (Hsieh et al. 2008, ICML), with the bias
folded into the kernel (K + 1, a regularised constant feature, which removes the equality constraint):
alpha_i <- clip(alpha_i - g_i / Q_ii, 0, C), sweeping 0..n-1 then n-1..0 alternately. Kept because it is
the simplest correct solver, but on the WL kernels of IMDB-BINARY / PROTEINS with C >= 0.1 it was
measured to stall (after 10^4 sweeps the dual objective was at a quarter of the optimum that L-BFGS-B
reaches, and predictions were at chance): near-duplicate rows make the problem very ill-conditioned.

Both loops are compiled with Numba (plain host solvers, not registered GNN kernels). More than two
classes: one-vs-rest, argmax of f.
"""
from __future__ import annotations

import numba
import numpy as np

TAU = 1e-12   # LIBSVM's floor for a non-positive curvature along the chosen pair


@numba.njit(cache=True)
def _smo(K, s, C, tol, max_iter):
    n = K.shape[0]
    alpha = np.zeros(n)
    G = -np.ones(n)                       # gradient of 1/2 a'Qa - 1'a at alpha = 0
    it = 0
    gap = np.inf
    while it < max_iter:
        # i: the maximal violator in I_up
        gmax, i = -np.inf, -1
        for t in range(n):
            if s[t] > 0:
                if alpha[t] < C and -G[t] >= gmax:
                    gmax, i = -G[t], t
            else:
                if alpha[t] > 0 and G[t] >= gmax:
                    gmax, i = G[t], t
        # j: second-order choice in I_low (Fan, Chen & Lin 2005, WSS 2)
        gmax2, j, best = -np.inf, -1, np.inf
        for t in range(n):
            if s[t] > 0:
                if alpha[t] > 0:
                    if G[t] >= gmax2:
                        gmax2 = G[t]
                    diff = gmax + G[t]
                    if diff > 0 and i >= 0:
                        quad = K[i, i] + K[t, t] - 2.0 * K[i, t]
                        obj = -(diff * diff) / (quad if quad > 0 else TAU)
                        if obj <= best:
                            best, j = obj, t
            else:
                if alpha[t] < C:
                    if -G[t] >= gmax2:
                        gmax2 = -G[t]
                    diff = gmax - G[t]
                    if diff > 0 and i >= 0:
                        quad = K[i, i] + K[t, t] - 2.0 * K[i, t]
                        obj = -(diff * diff) / (quad if quad > 0 else TAU)
                        if obj <= best:
                            best, j = obj, t
        gap = gmax + gmax2
        if gap < tol or j == -1:
            break
        it += 1
        Qij = s[i] * s[j] * K[i, j]
        ai, aj = alpha[i], alpha[j]
        if s[i] != s[j]:
            quad = K[i, i] + K[j, j] + 2.0 * Qij
            if quad <= 0:
                quad = TAU
            delta = (-G[i] - G[j]) / quad
            diff = alpha[i] - alpha[j]
            alpha[i] += delta
            alpha[j] += delta
            if diff > 0:
                if alpha[j] < 0:
                    alpha[j] = 0.0
                    alpha[i] = diff
            else:
                if alpha[i] < 0:
                    alpha[i] = 0.0
                    alpha[j] = -diff
            if diff > 0:
                if alpha[i] > C:
                    alpha[i] = C
                    alpha[j] = C - diff
            else:
                if alpha[j] > C:
                    alpha[j] = C
                    alpha[i] = C + diff
        else:
            quad = K[i, i] + K[j, j] - 2.0 * Qij
            if quad <= 0:
                quad = TAU
            delta = (G[i] - G[j]) / quad
            total = alpha[i] + alpha[j]
            alpha[i] -= delta
            alpha[j] += delta
            if total > C:
                if alpha[i] > C:
                    alpha[i] = C
                    alpha[j] = total - C
                if alpha[j] > C:
                    alpha[j] = C
                    alpha[i] = total - C
            else:
                if alpha[j] < 0:
                    alpha[j] = 0.0
                    alpha[i] = total
                if alpha[i] < 0:
                    alpha[i] = 0.0
                    alpha[j] = total
        di, dj = alpha[i] - ai, alpha[j] - aj
        for t in range(n):
            G[t] += s[t] * (s[i] * K[t, i] * di + s[j] * K[t, j] * dj)
    # rho: mean of s_t G_t over free alphas, else the middle of the feasible interval (LIBSVM)
    ub, lb, total, nfree = np.inf, -np.inf, 0.0, 0
    for t in range(n):
        yG = s[t] * G[t]
        if alpha[t] >= C:
            if s[t] < 0:
                ub = min(ub, yG)
            else:
                lb = max(lb, yG)
        elif alpha[t] <= 0:
            if s[t] > 0:
                ub = min(ub, yG)
            else:
                lb = max(lb, yG)
        else:
            nfree += 1
            total += yG
    rho = total / nfree if nfree > 0 else (ub + lb) / 2
    return alpha, rho, it, gap


def smo(K, s, C, tol=1e-3, max_iter=10_000_000):
    """Solve the C-SVC dual above for labels s (n,) in {-1, +1}: (alpha (n,), rho, pair updates, final KKT gap)."""
    K = np.ascontiguousarray(K, dtype=np.float64)
    return _smo(K, np.asarray(s, dtype=np.float64), float(C), float(tol), int(max_iter))


@numba.njit(cache=True)
def _dual_cd(Q, C, tol, max_epochs, alpha):
    n = Q.shape[0]
    g = Q @ alpha - 1.0
    spread = np.inf
    epoch = 0
    for epoch in range(max_epochs):
        pg_max, pg_min = -np.inf, np.inf
        for step in range(n):
            i = step if epoch % 2 == 0 else n - 1 - step
            G = g[i]
            if alpha[i] <= 0.0:
                PG = min(G, 0.0)
            elif alpha[i] >= C:
                PG = max(G, 0.0)
            else:
                PG = G
            pg_max, pg_min = max(pg_max, PG), min(pg_min, PG)
            if PG != 0.0 and Q[i, i] > 0.0:
                new = min(max(alpha[i] - G / Q[i, i], 0.0), C)
                d = new - alpha[i]
                if d != 0.0:
                    alpha[i] = new
                    for j in range(n):
                        g[j] += d * Q[j, i]
        spread = pg_max - pg_min
        if spread < tol:
            return alpha, epoch + 1, spread
    return alpha, epoch + 1, spread


def dual_coordinate_descent(K, s, C, tol=1e-4, max_epochs=10000):
    """Solve the bias-free box-constrained dual (solver "dcd") for labels s (n,) in {-1, +1}: (alpha (n,), sweeps, final spread)."""
    Q = (np.asarray(K, dtype=np.float64) + 1.0) * np.outer(s, s)
    return _dual_cd(np.ascontiguousarray(Q), float(C), float(tol), int(max_epochs), np.zeros(len(s)))




class KernelSVC:
    """C-SVM on a precomputed kernel (module docstring): ``fit(K_train, y)``, ``predict(K_test_train)``.

    C > 0: the box bound; solver: "smo" (default, with a bias) or "dcd" (bias folded into K + 1);
    tol: stopping tolerance (KKT gap for smo, projected-gradient spread for dcd); max_iter: pair
    updates (smo) or sweeps (dcd). After ``fit``: classes_, alpha_ (C_bin, n) one row per binary
    problem (one when two classes), rho_ (C_bin,), n_iter_, converged_. Raises ValueError for a
    non-square or non-finite kernel, labels of the wrong length, C <= 0, or fewer than two classes.
    """

    def __init__(self, C=1.0, solver="smo", tol=None, max_iter=None):
        if isinstance(C, bool) or not (isinstance(C, (int, float, np.floating)) and np.isfinite(C) and C > 0):
            raise ValueError(f"C must be a finite number > 0, got {C!r}")
        if solver not in ("smo", "dcd"):
            raise ValueError(f"solver must be 'smo' or 'dcd', got {solver!r}")
        self.C, self.solver = float(C), solver
        self.tol = float(tol) if tol is not None else (1e-3 if solver == "smo" else 1e-4)
        self.max_iter = int(max_iter) if max_iter is not None else (10_000_000 if solver == "smo" else 10_000)

    def fit(self, K, y):
        K = np.asarray(K, dtype=np.float64)
        y = np.asarray(y)
        if K.ndim != 2 or K.shape[0] != K.shape[1]:
            raise ValueError(f"K must be a square (n, n) kernel matrix, got shape {K.shape}")
        if y.shape != (K.shape[0],):
            raise ValueError(f"y must have shape ({K.shape[0]},), got {y.shape}")
        if not np.isfinite(K).all():
            raise ValueError("K holds NaN or Inf")
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ValueError(f"y must hold at least two classes, got {self.classes_.tolist()}")
        positives = self.classes_[1:] if self.classes_.size == 2 else self.classes_
        alphas, rhos, signs, self.n_iter_ = [], [], [], []
        self.converged_ = True
        for c in positives:
            s = np.where(y == c, 1.0, -1.0)
            if self.solver == "smo":
                alpha, rho, n_iter, gap = smo(K, s, self.C, self.tol, self.max_iter)
            else:
                alpha, n_iter, gap = dual_coordinate_descent(K, s, self.C, self.tol, self.max_iter)
                rho = -float(alpha @ s)             # the bias of K + 1: f = sum a_i s_i (k + 1)
            alphas.append(alpha)
            rhos.append(rho)
            signs.append(s)
            self.n_iter_.append(int(n_iter))
            self.converged_ &= bool(gap < self.tol)
        self.alpha_, self.rho_, self.signs_ = np.array(alphas), np.array(rhos), np.array(signs)
        return self

    def decision_function(self, K_test):
        """f for each test point: (m,) for two classes, (m, C_cls) otherwise. K_test: (m, n_train) k(x_test, x_i)."""
        K_test = np.asarray(K_test, dtype=np.float64)
        if K_test.ndim != 2 or K_test.shape[1] != self.alpha_.shape[1]:
            raise ValueError(f"K_test must have shape (m, {self.alpha_.shape[1]}), got {K_test.shape}")
        f = K_test @ (self.alpha_ * self.signs_).T - self.rho_
        return f[:, 0] if self.classes_.size == 2 else f

    def predict(self, K_test):
        f = self.decision_function(K_test)
        if self.classes_.size == 2:
            return np.where(f >= 0, self.classes_[1], self.classes_[0])
        return self.classes_[np.argmax(f, axis=1)]
