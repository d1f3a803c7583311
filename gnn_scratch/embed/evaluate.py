"""Evaluating node embeddings: multi-label and single-label node classification, link prediction.

Multi-label classification (the protocol of DeepWalk, Perozzi et al. 2014, and node2vec, Grover &
Leskovec 2016, Table 2 -- DeepWalk's ``example_graphs/scoring.py``):

* for each of ``repeats`` seeded shuffles of the nodes and each train fraction f (10 % ... 90 %),
  the first ``int(f N)`` nodes of the shuffle are labelled (train), the rest are the test nodes;
* one-vs-rest L2-regularised logistic regression on the embeddings, one binary problem per label
  (``OneVsRestLogisticRegression``: sklearn's ``LogisticRegression()`` defaults, C = 1, with an
  intercept);
* **prediction: each test node gets its k top-scoring labels, where k is the node's true number of
  labels** (``top_k_predictions``). The number of labels is taken from the ground truth -- that is
  the standard protocol of these papers (DeepWalk's ``TopKRanker``), not a thresholded classifier;
  it makes the scores comparable with the published ones and nothing more;
* Macro-F1 and Micro-F1 over the labels (``f1_scores``), averaged over the repeats.

Two options the papers leave open ("one-vs-rest logistic regression with L2 regularization" is all
node2vec says): ``normalize`` ("l2": each embedding row scaled to unit length; "standardize": each
column to mean 0 / std 1 with the statistics of the training rows) and the regularisation C. Both
default to the plain protocol (no normalisation, C = 1). ``select_and_evaluate`` chooses among
several embeddings (node2vec's p, q grid), normalisations and C values **on validation data only**:
per split, the training part is cut in two (``validation_splits``), every candidate is fitted on one
half and scored by Macro-F1 on the other, and the split's test nodes are scored once, with the
winner refitted on the whole training part.

Single-label classification (Cora): a multinomial logistic regression
(``unsupervised.LogisticRegressionProbe``) with the same C = 1 penalty; accuracy = Micro-F1.

Link prediction (node2vec, section 4.4): a fraction of the edges is held out so that the residual
graph keeps every connected component of the original (a random spanning forest is never removed;
see ``link_prediction_split``), as many non-edges are drawn as negatives, pairs are scored by the
dot product of their embeddings or by a logistic regression on an edge feature (Hadamard product,
average, weighted L1 / L2), and the score is the area under the ROC curve (``roc_auc``: the rank
formula, ties counted one half).

All metrics are written out here, by hand; tests compare them with hand-computed cases and, when it
is importable, scikit-learn.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ..unsupervised import LogisticRegressionProbe

TRAIN_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


# =============================================================================== checks
def _as_bool_matrix(Y, name):
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"{name} must be a (n, C) 0/1 or bool label matrix, got shape {Y.shape}")
    if Y.dtype != np.bool_:
        if not np.isin(Y, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0/1 (or bool) entries")
        Y = Y.astype(bool)
    return Y


def _as_embedding(Z, name="Z"):
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.dtype.kind != "f":
        raise ValueError(f"{name} must be a (N, d) float array of embeddings, got {Z.dtype} {Z.shape}")
    if not np.isfinite(Z).all():
        r, c = np.argwhere(~np.isfinite(Z))[0]
        raise ValueError(f"{name} must be finite, got {Z[r, c]} at row {r}, column {c}")
    return Z.astype(np.float64, copy=False)


def _check_fractions(train_fractions):
    fr = tuple(float(f) for f in np.atleast_1d(train_fractions))
    if not fr or any(not 0.0 < f < 1.0 for f in fr):
        raise ValueError(f"train_fractions must lie strictly between 0 and 1, got {train_fractions}")
    return fr


def _positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


NORMALIZATIONS = (None, "l2", "standardize")


def _check_normalize(normalize):
    """Raise unless ``normalize`` is one of ``NORMALIZATIONS`` (TypeError for a non-str, ValueError otherwise)."""
    if normalize is not None and not isinstance(normalize, str):
        raise TypeError(f"normalize must be None or one of the names {NORMALIZATIONS[1:]}, got "
                        f"{type(normalize).__name__} {normalize!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")


def _fit_row_index(fit_rows, num_rows):
    """``fit_rows`` as an int64 index array: (n,) ints in [0, num_rows) or a (num_rows,) bool mask."""
    rows = np.asarray(fit_rows)
    if rows.dtype == np.bool_:
        if rows.shape != (num_rows,):
            raise ValueError(f"fit_rows as a bool mask must have shape ({num_rows},), got {rows.shape}")
        return np.flatnonzero(rows)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise TypeError(f"fit_rows must be a 1-D array of int row ids or a ({num_rows},) bool mask, got "
                        f"{rows.dtype} {rows.shape}")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= num_rows):
        bad = rows[(rows < 0) | (rows >= num_rows)][0]
        raise ValueError(f"fit_rows must hold row ids in [0, {num_rows}), got {bad}")
    return rows


def normalize_embedding(Z, normalize=None, fit_rows=None):
    """Z (N, d) float -> (N, d) float64 features for the classifier.

    normalize None: Z unchanged (as float64); "l2": row i divided by ||z_i||₂ (a zero row stays zero);
    "standardize": column j mapped to (z_ij - μ_j) / σ_j with μ, σ the mean and standard deviation of
    the rows ``fit_rows`` (the classifier's training rows: (n,) int row ids or an (N,) bool mask; all
    rows when None), so the held-out rows never shape the transform. A column that is constant on
    those rows is only centred (z_ij - μ_j, so it is ~0 there): "constant" means σ_j <= n ε |μ_j|
    with n the number of fit rows and ε the float64 machine epsilon -- the rounding error bound of a
    mean of n values, the bound scikit-learn's StandardScaler uses (``_is_constant_feature``) -- so a
    column of 0.1, whose computed σ is ~1e-17 instead of 0, is not blown up to ±1. "l2" is row-wise
    and needs no statistics. Raises TypeError for a ``normalize`` that is not None or a str and for
    ``fit_rows`` that are not int ids or a bool mask; ValueError for an unknown ``normalize``, an
    empty ``fit_rows``, ids outside [0, N) or a mask of another length.
    """
    _check_normalize(normalize)
    Z = _as_embedding(Z)
    if normalize is None:
        return Z
    if normalize == "l2":
        norm = np.linalg.norm(Z, axis=1, keepdims=True)
        return Z / np.where(norm > 0, norm, 1.0)
    F = Z if fit_rows is None else Z[_fit_row_index(fit_rows, Z.shape[0])]
    if F.shape[0] == 0:
        raise ValueError("fit_rows must select at least one row to standardize with")
    mu, sd = F.mean(axis=0), F.std(axis=0)
    constant = sd <= F.shape[0] * np.finfo(np.float64).eps * np.abs(mu)
    return (Z - mu) / np.where(constant, 1.0, sd)


# =============================================================================== F1
def f1_scores(Y_true, Y_pred, empty="skip"):
    """(Macro-F1, Micro-F1) of a multi-label prediction; Y_true, Y_pred: (n, C) bool (or 0/1).

    Per label c, over the n rows: TP_c = #(true & pred), FP_c = #(~true & pred), FN_c = #(true & ~pred).

        F1_c     = 2 TP_c / (2 TP_c + FP_c + FN_c)          (= the harmonic mean of precision and recall)
        Macro-F1 = mean_c F1_c
        Micro-F1 = 2 Σ_c TP_c / (2 Σ_c TP_c + Σ_c FP_c + Σ_c FN_c)

    The one form 2TP / (2TP + FP + FN) needs no precision or recall, so a label that is true somewhere
    but never predicted (precision 0/0) simply has F1 = 0. Only a label that is neither true nor
    predicted in any row has 0/0: ``empty="skip"`` leaves it out of the macro mean (what DeepWalk's
    scoring gets from sklearn when it passes label *lists*: such a label is not among the classes);
    ``empty="zero"`` counts it as 0 (sklearn's default on indicator matrices, ``zero_division=0``).
    Micro-F1 of a single-label prediction (one true and one predicted label per row) is the accuracy.
    Returns (nan, nan) when no label is true or predicted anywhere.
    """
    T, P = _as_bool_matrix(Y_true, "Y_true"), _as_bool_matrix(Y_pred, "Y_pred")
    if T.shape != P.shape:
        raise ValueError(f"Y_true and Y_pred must have the same shape, got {T.shape} and {P.shape}")
    if empty not in ("skip", "zero"):
        raise ValueError(f"empty must be 'skip' or 'zero', got {empty!r}")
    tp = np.sum(T & P, axis=0).astype(np.float64)
    fp = np.sum(~T & P, axis=0).astype(np.float64)
    fn = np.sum(T & ~P, axis=0).astype(np.float64)
    denom = 2 * tp + fp + fn
    present = denom > 0
    if not present.any():
        return float("nan"), float("nan")
    per = np.zeros_like(denom)
    per[present] = 2 * tp[present] / denom[present]
    macro = float(per[present].mean() if empty == "skip" else per.mean())
    micro = float(2 * tp.sum() / denom.sum())
    return macro, micro


def labels_to_matrix(y, num_classes=None):
    """(n,) int class ids -> (n, C) bool one-hot rows (for ``f1_scores`` on single-label predictions)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        raise ValueError(f"y must be a 1-D array of non-negative int class ids, got {y.dtype} {y.shape}")
    C = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if y.size and y.max() >= C:
        raise ValueError(f"y holds class {y.max()}, out of range for {C} classes")
    M = np.zeros((y.size, C), dtype=bool)
    M[np.arange(y.size), y] = True
    return M


# =============================================================================== top-k prediction
def top_k_predictions(scores, k):
    """(n, C) bool: row i marks its ``k[i]`` highest scores (the multi-label protocol's prediction).

    scores: (n, C) float (any monotone score: decision values or probabilities rank alike);
    k: (n,) int in [0, C], or an int for every row. Ties are broken towards the lower label index
    (a stable sort of -score), so the result is deterministic. -inf / +inf scores (the constant
    predictors of labels with no / only positive training rows) rank last / first.
    """
    S = np.asarray(scores, dtype=np.float64)
    if S.ndim != 2:
        raise ValueError(f"scores must have shape (n, C), got {S.shape}")
    if np.isnan(S).any():
        raise ValueError("scores must not hold NaN")
    n, C = S.shape
    k = np.broadcast_to(np.asarray(k), (n,))
    if k.dtype.kind not in "iu" or (k.size and (k.min() < 0 or k.max() > C)):
        raise ValueError(f"k must be an int or (n,) ints in [0, {C}]")
    order = np.argsort(-S, axis=1, kind="stable")           # rank 0 = the highest score
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(C)[None, :].repeat(n, axis=0), axis=1)
    return rank < k[:, None]


# =============================================================================== logistic regression
def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


class OneVsRestLogisticRegression:
    """One binary L2-regularised logistic regression per label, solved together as one problem.

    For label c with targets t_ic in {-1, +1} (y_ic in {0, 1}) on embeddings z_i (n rows), sklearn's
    ``LogisticRegression(C)`` minimises  C Σ_i log(1 + exp(-t_ic (z_i·w_c + b_c))) + ½ ||w_c||²
    (+ ½ b_c² with ``penalize_intercept``: liblinear, sklearn's default solver until 0.22 and so the
    one of the DeepWalk / node2vec evaluations, regularises the intercept as a feature of value 1).
    Divided by C n, with m = Z W + b (n, L):

        J(W, b)  = (1/n) [ Σ_ic softplus(-t_ic m_ic) + (1/2C) (||W||² + [penalize] ||b||²) ]
        dM       = (σ(M) - Y) / n
        dW       = Zᵀ dM + W / (C n),      db = Σ_i dM_i + [penalize] b / (C n)

    The labels' problems share nothing, so the sum is minimised by each label's own optimum; one
    L-BFGS run (scipy, ``jac=True`` with the gradient above) on all of them uses matrix products.
    A label with no positive (or no negative) training row gets a constant score -inf (+inf), as
    sklearn's ``OneVsRestClassifier`` fits a constant predictor there (the unpenalised intercept
    would run off to infinity). ``converged_`` / ``n_iter_`` report the solver.
    """

    def __init__(self, C=1.0, penalize_intercept=True, max_iter=1000, tol=1e-6):
        if not np.isfinite(C) or C <= 0:
            raise ValueError(f"C must be a positive finite float, got {C!r}")
        self.C, self.penalize_intercept = float(C), bool(penalize_intercept)
        self.max_iter, self.tol = _positive_int("max_iter", max_iter), float(tol)
        self.W = self.b = None

    def loss_and_grads(self, W, b, Z, Y):
        """(J, dW, db) at (W (d, L), b (L,)) on Z (n, d) and 0/1 targets Y (n, L), as in the class docstring."""
        n = Z.shape[0]
        M = Z @ W + b
        T = np.where(Y, 1.0, -1.0)
        reg = float(np.sum(W * W)) + (float(b @ b) if self.penalize_intercept else 0.0)
        J = (float(np.logaddexp(0.0, -T * M).sum()) + reg / (2 * self.C)) / n
        dM = (_sigmoid(M) - Y) / n
        dW = Z.T @ dM + W / (self.C * n)
        db = dM.sum(axis=0) + (b / (self.C * n) if self.penalize_intercept else 0.0)
        return J, dW, db

    def fit(self, Z, Y):
        """Fit on Z (n, d) float and Y (n, L) bool/0-1; returns self."""
        Z = _as_embedding(Z)
        Y = _as_bool_matrix(Y, "Y")
        if Y.shape[0] != Z.shape[0] or Z.shape[0] == 0:
            raise ValueError(f"Z and Y must have the same positive number of rows, got {Z.shape[0]} and {Y.shape[0]}")
        n, d = Z.shape
        L = Y.shape[1]
        pos = Y.sum(axis=0)
        self.constant_ = np.where(pos == 0, -np.inf, np.where(pos == n, np.inf, 0.0))
        fit = np.flatnonzero(self.constant_ == 0)
        Yf = Y[:, fit].astype(np.float64)
        Lf = fit.size
        self.W, self.b = np.zeros((d, L)), np.zeros(L)
        self.converged_, self.n_iter_ = True, 0
        if Lf:
            def fun(theta):
                W, b = theta[:d * Lf].reshape(d, Lf), theta[d * Lf:]
                J, dW, db = self.loss_and_grads(W, b, Z, Yf)
                return J, np.concatenate([dW.ravel(), db])
            res = scipy.optimize.minimize(fun, np.zeros(d * Lf + Lf), jac=True, method="L-BFGS-B",
                                          options=dict(maxiter=self.max_iter, gtol=self.tol, ftol=1e-12))
            self.W[:, fit] = res.x[:d * Lf].reshape(d, Lf)
            self.b[fit] = res.x[d * Lf:]
            self.converged_, self.n_iter_ = bool(res.success), int(res.nit)
        return self

    def decision_function(self, Z):
        """(n, L) scores z·w_c + b_c (monotone in the predicted probability); ±inf for constant labels."""
        if self.W is None:
            raise RuntimeError("OneVsRestLogisticRegression.decision_function called before fit")
        Z = _as_embedding(Z)
        if Z.shape[1] != self.W.shape[0]:
            raise ValueError(f"Z must have {self.W.shape[0]} columns like the training embeddings, got {Z.shape[1]}")
        S = Z @ self.W + self.b
        const = self.constant_ != 0
        S[:, const] = self.constant_[const]
        return S

    def predict_top_k(self, Z, k):
        """(n, L) bool: the k[i] top-scoring labels of each row (``top_k_predictions``)."""
        return top_k_predictions(self.decision_function(Z), k)


# =============================================================================== the protocols
def random_splits(num_nodes, repeats=10, seed=0):
    """``repeats`` permutations of the node ids, the r-th drawn from ``default_rng((seed, r))``: (repeats, N) int64.

    A train fraction f of repeat r labels ``perm[r, :int(f N)]`` and tests on the rest (DeepWalk's
    scoring: one shuffle per repeat, every fraction cut from it).
    """
    repeats = _positive_int("repeats", repeats)
    return np.stack([np.random.default_rng((seed, r)).permutation(num_nodes) for r in range(repeats)])


def _summary(values):
    a = np.asarray(values, dtype=np.float64)
    return dict(mean=float(a.mean()), std=float(a.std()), all=a.tolist())


def evaluate_multilabel(Z, Y, train_fractions=TRAIN_FRACTIONS, repeats=10, seed=0, C=1.0, penalize_intercept=True,
                        max_iter=1000, empty="skip", normalize=None):
    """The node2vec / DeepWalk multi-label protocol (module docstring): {fraction: {"macro_f1": ..., "micro_f1": ...}}.

    Z: (N, d) float embeddings; Y: (N, L) bool labels (a node may have several; rows without any
    label are left out of training and testing -- BlogCatalog has none). normalize: see
    ``normalize_embedding`` ("standardize" takes each split's training rows' statistics). Each metric
    is a dict ``mean``, ``std`` (over the repeats), ``all`` (the per-repeat values). Raises ValueError
    on shapes, non-finite embeddings, fractions outside (0, 1), a split with an empty side, or an
    unknown ``normalize`` name; TypeError when ``normalize`` is neither None nor a str.
    """
    _check_normalize(normalize)
    Z = _as_embedding(Z)
    Y = _as_bool_matrix(Y, "Y")
    if Y.shape[0] != Z.shape[0]:
        raise ValueError(f"Z and Y must have one row per node, got {Z.shape[0]} and {Y.shape[0]}")
    fr = _check_fractions(train_fractions)
    keep = np.flatnonzero(Y.any(axis=1))
    Zk, Yk = Z[keep], Y[keep]
    n = keep.size
    perms = random_splits(n, repeats, seed)
    out = {}
    for f in fr:
        ntr = int(f * n)
        if ntr == 0 or ntr == n:
            raise ValueError(f"train fraction {f} of {n} labelled nodes leaves an empty train or test set")
        macro, micro = [], []
        for perm in perms:
            tr, te = perm[:ntr], perm[ntr:]
            X = normalize_embedding(Zk, normalize, tr)
            clf = OneVsRestLogisticRegression(C, penalize_intercept, max_iter).fit(X[tr], Yk[tr])
            pred = clf.predict_top_k(X[te], Yk[te].sum(axis=1))
            ma, mi = f1_scores(Yk[te], pred, empty=empty)
            macro.append(ma)
            micro.append(mi)
        out[f] = dict(macro_f1=_summary(macro), micro_f1=_summary(micro))
    return out


def validation_splits(num_nodes, train_fraction=0.5, repeats=10, seed=0):
    """Per repeat r: (inner_train, validation, train, test) int64 index arrays over ``num_nodes`` nodes.

    train / test are ``evaluate_multilabel``'s cut of ``random_splits(num_nodes, repeats, seed)[r]`` at
    ``train_fraction``; the train part is permuted by ``default_rng((seed, r, 1))`` and cut in two:
    inner_train = the first ⌊|train| / 2⌋, validation = the rest. Both lie inside train, so a choice
    made on them never sees a test node. Raises TypeError when ``train_fraction`` is not one real
    number (a bool, a str or a sequence), ValueError when it is outside (0, 1) or leaves fewer than
    two training nodes (an empty inner half or validation half).
    """
    num_nodes = _positive_int("num_nodes", num_nodes)
    if isinstance(train_fraction, (bool, np.bool_)) or not isinstance(train_fraction, numbers.Real):
        raise TypeError(f"train_fraction must be one float in (0, 1), got {type(train_fraction).__name__} "
                        f"{train_fraction!r}")
    f = float(train_fraction)
    if not 0.0 < f < 1.0:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction!r}")
    ntr = int(f * num_nodes)
    # no check for an empty test side: f <= 1 - 2**-53 puts the exact f N at least N 2**-53 below N, which
    # rounds to a float below N for every N < 2**53, so int(f N) < N
    if ntr < 2:
        raise ValueError(f"train fraction {f} of {num_nodes} nodes leaves no room for a validation half")
    out = []
    for r, perm in enumerate(random_splits(num_nodes, repeats, seed)):
        train, test = perm[:ntr], perm[ntr:]
        inner = np.random.default_rng((seed, r, 1)).permutation(train)
        half = inner.size // 2
        out.append((inner[:half], inner[half:], train, test))
    return out


def _fit_score(Z, Y, normalize, C, fit_idx, score_idx, penalize_intercept, max_iter, empty):
    X = normalize_embedding(Z, normalize, fit_idx)
    clf = OneVsRestLogisticRegression(C, penalize_intercept, max_iter).fit(X[fit_idx], Y[fit_idx])
    return f1_scores(Y[score_idx], clf.predict_top_k(X[score_idx], Y[score_idx].sum(axis=1)), empty=empty)


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _C_values(C):
    """``select_and_evaluate``'s C as a tuple of floats, repeats dropped (first occurrence kept, order kept)."""
    if isinstance(C, np.ndarray) and C.ndim == 0:
        C = C.item()
    if _is_real(C):
        values = [C]
    elif isinstance(C, (str, bytes, bool, np.bool_)) or not hasattr(C, "__iter__"):
        raise TypeError(f"C must be a positive finite real number or a 1-D sequence of them, got "
                        f"{type(C).__name__} {C!r}")
    else:
        values = list(C)
    if not values:
        raise ValueError("C must hold at least one value, got an empty sequence")
    for c in values:
        if not _is_real(c):
            raise TypeError(f"C must be a positive finite real number or a 1-D sequence of them, got {C!r} "
                            f"(an element of type {type(c).__name__})")
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"C must hold positive finite numbers, got {c!r} in {C!r}")
    return tuple(dict.fromkeys(float(c) for c in values))


def _normalize_values(normalize):
    """``select_and_evaluate``'s normalize as a tuple of ``NORMALIZATIONS``, repeats dropped (order kept)."""
    if normalize is None or isinstance(normalize, str):
        values = [normalize]
    elif isinstance(normalize, bytes) or not hasattr(normalize, "__iter__"):
        raise TypeError(f"normalize must be one of {NORMALIZATIONS} or a sequence of them, got "
                        f"{type(normalize).__name__} {normalize!r}")
    else:
        values = list(normalize)
    if not values:
        raise ValueError(f"normalize must name at least one of {NORMALIZATIONS}, got an empty sequence")
    for v in values:
        if v is not None and not isinstance(v, str):
            raise TypeError(f"normalize must be one of {NORMALIZATIONS} or a sequence of them, got {normalize!r} "
                            f"(an element of type {type(v).__name__})")
        if v not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS} or a sequence of them, got {v!r} in "
                             f"{normalize!r}")
    return tuple(dict.fromkeys(values))


def select_and_evaluate(embeddings, Y, train_fraction=0.5, repeats=10, seed=0, C=1.0, normalize=None,
                        penalize_intercept=True, max_iter=1000, empty="skip", progress=None):
    """Choose (embedding, normalisation, C) on validation data per split, then score the split's test nodes.

    embeddings: {key: (N, d) float} (e.g. node2vec's (p, q) grid; one entry to tune only the
    classifier); Y: (N, L) bool labels, every node labelled; C: a positive finite real number or a
    non-empty 1-D sequence of them; normalize: one of ``NORMALIZATIONS`` or a non-empty sequence of
    them. A value repeated in C or normalize is kept once, at its first position (so each candidate is
    fitted and scored once per repeat and the order of the candidates is that of first appearance).
    For each repeat r of
    ``validation_splits(N, train_fraction, repeats, seed)``: every candidate (key, normalize, C), in
    that nested order, is fitted on inner_train and scored by Macro-F1 on validation; the first
    highest wins; the winner is refitted on the whole train part and scored on the test nodes. No test
    node is seen before that last fit (nor do "standardize"'s statistics come from outside the fitted
    rows). Returns {"macro_f1", "micro_f1": dict mean / std / all over the repeats, "choices": [(key,
    normalize, C)] per repeat, "validation": {(key, normalize, C): [Macro-F1 per repeat]}}.
    progress: None, or a callable ``progress(key, {(key, normalize, C): [Macro-F1 per repeat]})``
    called once per embedding when its validation scores over all repeats are in (the validation
    fits run embedding by embedding; with a single candidate there are none and it is not called).
    It only reports: the results do not depend on it.
    Raises ValueError for no embeddings, shapes that differ, unlabelled nodes, an empty C or
    normalize, a C that is not positive and finite, an unknown normalisation name; TypeError for a C
    that is not a real number or a flat sequence of them (bools and strings included) or a normalize
    that is not None / a str / a sequence of them or a ``progress`` that is not callable; and the
    errors of ``validation_splits`` (``train_fraction``).
    """
    if not embeddings:
        raise ValueError("embeddings must hold at least one (N, d) embedding")
    Y = _as_bool_matrix(Y, "Y")
    Zs = {k: _as_embedding(Z, f"embeddings[{k!r}]") for k, Z in embeddings.items()}
    for k, Z in Zs.items():
        if Z.shape[0] != Y.shape[0]:
            raise ValueError(f"embeddings[{k!r}] must have one row per node ({Y.shape[0]}), got {Z.shape[0]}")
    if not Y.any(axis=1).all():
        raise ValueError("every node must carry at least one label (the splits index all nodes)")
    Cs = _C_values(C)
    norms = _normalize_values(normalize)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable, got {type(progress).__name__}")
    cands = [(k, n, c) for k in Zs for n in norms for c in Cs]
    opts = (penalize_intercept, max_iter, empty)
    splits = validation_splits(Y.shape[0], train_fraction, repeats, seed)
    validation = {}
    if len(cands) > 1:                         # with one candidate there is nothing to choose: no validation fit
        # embedding by embedding, so that ``progress`` can report each one; every fit depends only on its
        # own candidate and split, so the order changes no number
        for key in Zs:
            mine = [cand for cand in cands if cand[0] == key]
            for k, n, c in mine:
                validation[(k, n, c)] = [_fit_score(Zs[k], Y, n, c, inner, val, *opts)[0]
                                         for inner, val, _, _ in splits]
            if progress is not None:
                progress(key, {cand: list(validation[cand]) for cand in mine})
    macro, micro, choices = [], [], []
    for r, (_, _, train, test) in enumerate(splits):
        best = cands[int(np.argmax([validation[cand][r] for cand in cands]))] if validation else cands[0]
        ma, mi = _fit_score(Zs[best[0]], Y, best[1], best[2], train, test, *opts)
        macro.append(ma)
        micro.append(mi)
        choices.append(best)
    return dict(macro_f1=_summary(macro), micro_f1=_summary(micro), choices=choices, validation=validation)


def classify_split(Z, y, train_idx, test_idx, C=1.0, max_iter=500):
    """Single-label classification on one split: {"accuracy", "macro_f1", "micro_f1"} on the test nodes.

    A multinomial logistic regression (``unsupervised.LogisticRegressionProbe``, its own hand-written
    gradient) with the penalty of ``C``: its loss is the mean cross-entropy + (l2/2)||W||², and
    l2 = 1 / (C n_train) makes that sklearn's C Σ CE + ½||W||² divided by C n_train (the intercept
    is not penalised). y: (N,) int labels (-1 = none, not allowed in a split).
    """
    Z = _as_embedding(Z)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != Z.shape[0] or y.dtype.kind not in "iu":
        raise ValueError(f"y must be (N,) int labels with N = {Z.shape[0]}, got {y.dtype} {y.shape}")
    tr, te = (np.asarray(a) for a in (train_idx, test_idx))
    tr, te = (np.flatnonzero(a) if a.dtype == np.bool_ else a.astype(np.int64) for a in (tr, te))
    if tr.size == 0 or te.size == 0:
        raise ValueError("train_idx and test_idx must each select at least one node")
    if (y[tr] < 0).any() or (y[te] < 0).any():
        raise ValueError("train_idx / test_idx select nodes without a label (y = -1)")
    if not np.isfinite(C) or C <= 0:
        raise ValueError(f"C must be a positive finite float, got {C!r}")
    num_classes = int(y[y >= 0].max()) + 1
    probe = LogisticRegressionProbe(num_classes, l2=1.0 / (C * tr.size), max_iter=max_iter).fit(Z[tr], y[tr])
    pred = probe.predict(Z[te])
    macro, micro = f1_scores(labels_to_matrix(y[te], num_classes), labels_to_matrix(pred, num_classes))
    return dict(accuracy=float(np.mean(pred == y[te])), macro_f1=macro, micro_f1=micro)


def evaluate_multiclass(Z, y, train_fractions=TRAIN_FRACTIONS, repeats=10, seed=0, C=1.0):
    """Single-label classification over random splits, as ``evaluate_multilabel`` cuts them (nodes with
    y = -1 left out): {fraction: {"accuracy", "macro_f1", "micro_f1"}} each a dict mean / std / all."""
    Z = _as_embedding(Z)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != Z.shape[0] or y.dtype.kind not in "iu":
        raise ValueError(f"y must be (N,) int labels with N = {Z.shape[0]}, got {y.dtype} {y.shape}")
    fr = _check_fractions(train_fractions)
    keep = np.flatnonzero(y >= 0)
    perms = random_splits(keep.size, repeats, seed)
    out = {}
    for f in fr:
        ntr = int(f * keep.size)
        if ntr == 0 or ntr == keep.size:
            raise ValueError(f"train fraction {f} of {keep.size} labelled nodes leaves an empty train or test set")
        runs = [classify_split(Z, y, keep[p[:ntr]], keep[p[ntr:]], C) for p in perms]
        out[f] = {k: _summary([r[k] for r in runs]) for k in ("accuracy", "macro_f1", "micro_f1")}
    return out


# =============================================================================== AUC
def average_ranks(x):
    """1-based ranks of x (n,), tied values sharing the mean of their ranks (``scipy.stats.rankdata``'s 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    # tie groups: runs of equal sorted values; a group over sorted positions [s, e) gets rank (s + 1 + e) / 2
    starts = np.flatnonzero(np.concatenate([[True], xs[1:] != xs[:-1]]))
    ends = np.append(starts[1:], xs.size)
    group_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc(scores, labels):
    """Area under the ROC curve by the rank formula (Mann-Whitney U), ties counted one half.

        AUC = (Σ_{i positive} R_i - n₊ (n₊ + 1) / 2) / (n₊ n₋)

    with R_i the 1-based rank of score i among all n₊ + n₋ scores, tied scores sharing their mean
    rank. This equals the probability that a random positive scores above a random negative, with
    a tie counting 1/2. scores: (n,) finite floats; labels: (n,) bool / 0-1 with both classes present.
    """
    s = np.asarray(scores, dtype=np.float64)
    lab = np.asarray(labels)
    if s.ndim != 1 or lab.shape != s.shape:
        raise ValueError(f"scores and labels must be 1-D of one length, got {s.shape} and {lab.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if lab.dtype != np.bool_:
        if not np.isin(lab, (0, 1)).all():
            raise ValueError("labels must be bool or 0/1")
        lab = lab.astype(bool)
    n_pos = int(lab.sum())
    n_neg = lab.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc needs positives and negatives, got {n_pos} and {n_neg}")
    R = average_ranks(s)
    return float((R[lab].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# =============================================================================== link prediction
@dataclass
class LinkSplit:
    """Held-out edges for link prediction (U = undirected edges of the input, N nodes).

    train_edge_index: (2, 2 U_train) int64, the residual graph, both directions (train the embedding on it)
    test_pos, test_neg:   (P, 2) int64 node pairs: the held-out edges and as many non-edges
    train_pos, train_neg: (U_train, 2) and (U_train, 2): the residual edges and fresh non-edges, for
                          training an edge classifier (``operator`` other than "dot")
    """

    train_edge_index: np.ndarray
    test_pos: np.ndarray
    test_neg: np.ndarray
    train_pos: np.ndarray
    train_neg: np.ndarray
    num_nodes: int


def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def _spanning_forest(u, v, num_nodes):
    """(U,) bool: edge k is in the spanning forest that Kruskal's union-find builds taking edges in the given order."""
    parent = list(range(num_nodes))
    tree = np.zeros(u.size, dtype=bool)
    for k in range(u.size):
        a, b = _find(parent, int(u[k])), _find(parent, int(v[k]))
        if a != b:
            parent[a] = b
            tree[k] = True
    return tree


def _sample_non_edges(count, num_nodes, forbidden, rng):
    """``count`` distinct unordered pairs (u < v) whose key u N + v is not in ``forbidden`` (a set, updated)."""
    out = []
    if count > num_nodes * (num_nodes - 1) // 2 - len(forbidden):
        raise ValueError(f"the graph has too few non-edges to draw {count} negatives")
    while len(out) < count:
        a = rng.integers(0, num_nodes, 2 * (count - len(out)) + 16)
        b = rng.integers(0, num_nodes, a.size)
        for x, y in zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()):
            key = x * num_nodes + y
            if x != y and key not in forbidden:
                forbidden.add(key)
                out.append((x, y))
                if len(out) == count:
                    break
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def link_prediction_split(edge_index, num_nodes, test_fraction=0.5, seed=0):
    """Hold out ``test_fraction`` of the undirected edges, keeping the residual graph's components.

    The edges are taken as undirected (each pair u ≠ v once; self-loops dropped) and put in a random
    order (``seed``). Kruskal's union-find over that order marks a random spanning forest, which is
    never held out, so every connected component of the graph stays connected and no node loses all
    its edges (node2vec: "the residual network obtained after the edge removals is connected").
    The test positives are the first ``round(test_fraction U)`` of the other edges in that order.
    Negatives are uniform unordered pairs u ≠ v that are no edge of the *whole* graph, no pair drawn
    twice: as many as the test positives (``test_neg``) and, disjoint from them, as many as the
    residual edges (``train_neg``). Raises ValueError when the forest leaves too few edges to remove
    (the largest fraction possible is (U - N + #components) / U).
    """
    ei = np.asarray(edge_index)
    if ei.ndim != 2 or ei.shape[0] != 2 or ei.dtype.kind not in "iu":
        raise ValueError(f"edge_index must be an int array of shape (2, E), got {ei.dtype} {ei.shape}")
    num_nodes = _positive_int("num_nodes", num_nodes)
    if ei.size and (ei.min() < 0 or ei.max() >= num_nodes):
        raise ValueError(f"edge_index holds node ids outside [0, {num_nodes})")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    a, b = np.minimum(ei[0], ei[1]).astype(np.int64), np.maximum(ei[0], ei[1]).astype(np.int64)
    keep = a != b
    keys = np.unique(a[keep] * num_nodes + b[keep])
    U = keys.size
    rng = np.random.default_rng(seed)
    keys = keys[rng.permutation(U)]
    u, v = keys // num_nodes, keys % num_nodes
    tree = _spanning_forest(u, v, num_nodes)
    n_test = int(round(test_fraction * U))
    free = np.flatnonzero(~tree)
    if n_test > free.size or n_test == 0:
        raise ValueError(f"cannot hold out {n_test} of {U} edges without disconnecting a component: at most "
                         f"{free.size} ({free.size / max(U, 1):.3f}) are outside a spanning forest")
    test = np.zeros(U, dtype=bool)
    test[free[:n_test]] = True
    pos_test = np.stack([u[test], v[test]], axis=1)
    pos_train = np.stack([u[~test], v[~test]], axis=1)
    forbidden = set(keys.tolist())
    neg_test = _sample_non_edges(n_test, num_nodes, forbidden, rng)
    neg_train = _sample_non_edges(pos_train.shape[0], num_nodes, forbidden, rng)
    train_ei = np.concatenate([pos_train.T, pos_train[:, ::-1].T], axis=1)
    return LinkSplit(train_ei, pos_test, neg_test, pos_train, neg_train, num_nodes)


EDGE_OPERATORS = ("hadamard", "average", "weighted_l1", "weighted_l2")


def edge_features(Z, pairs, operator="hadamard"):
    """node2vec's Table 1 binary operators on the pairs' embeddings: (P, d) features.

    hadamard: z_u ⊙ z_v;  average: (z_u + z_v)/2;  weighted_l1: |z_u - z_v|;  weighted_l2: (z_u - z_v)².
    """
    Z = _as_embedding(Z)
    p = np.asarray(pairs, dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"pairs must have shape (P, 2), got {p.shape}")
    zu, zv = Z[p[:, 0]], Z[p[:, 1]]
    if operator == "hadamard":
        return zu * zv
    if operator == "average":
        return 0.5 * (zu + zv)
    if operator == "weighted_l1":
        return np.abs(zu - zv)
    if operator == "weighted_l2":
        return (zu - zv) ** 2
    raise ValueError(f"operator must be one of {EDGE_OPERATORS}, got {operator!r}")


def link_prediction_auc(Z, split: LinkSplit, operator="dot", C=1.0):
    """AUC of ranking ``split.test_pos`` above ``split.test_neg``.

    operator "dot": the score of (u, v) is z_u · z_v (= the sum of the Hadamard features), no training.
    Any of ``EDGE_OPERATORS``: a logistic regression (``OneVsRestLogisticRegression`` with one label)
    on the edge features of ``split.train_pos`` (label 1) and ``split.train_neg`` (label 0); the test
    pairs are scored by its decision value.
    """
    Z = _as_embedding(Z)
    if Z.shape[0] != split.num_nodes:
        raise ValueError(f"Z must have one row per node of the split ({split.num_nodes}), got {Z.shape[0]}")
    pairs = np.concatenate([split.test_pos, split.test_neg])
    labels = np.r_[np.ones(len(split.test_pos), bool), np.zeros(len(split.test_neg), bool)]
    if operator == "dot":
        scores = np.einsum("pd,pd->p", Z[pairs[:, 0]], Z[pairs[:, 1]])
    else:
        Xtr = np.concatenate([edge_features(Z, split.train_pos, operator), edge_features(Z, split.train_neg, operator)])
        ytr = np.r_[np.ones(len(split.train_pos), bool), np.zeros(len(split.train_neg), bool)][:, None]
        clf = OneVsRestLogisticRegression(C).fit(Xtr, ytr)
        scores = clf.decision_function(edge_features(Z, pairs, operator))[:, 0]
    return roc_auc(scores, labels)
