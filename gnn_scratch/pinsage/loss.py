"""PinSage's max-margin ranking loss (Ying et al., KDD 2018, eq. 1), forward and backward by hand.

For each (query q, positive i) pair b of a mini-batch and each of its negatives n in S_b (the R
random negatives shared by the whole batch, plus the query's own hard negatives):

    J = (1/B) sum_b (1/|S_b|) sum_{n in S_b} max(0, z_q . z_n - z_q . z_i + Delta)

(the expectation over negatives E_{n_k} of the paper, estimated by the mean over S_b) -- the default,
``hard_weight=None``. With ``hard_weight = lambda`` the random and the hard negatives are two samples
of two expectations, averaged separately and added:

    J = (1/B) sum_b [ (1/R) sum_{n in R} max(0, h_bn) + lambda (1/h) sum_{n in H_b} max(0, h_bn) ]

(the hard term is left out while h = 0), i.e. P_n(q) is the mixture "uniform item" / "PageRank-band
item" with weights 1 : lambda, so a handful of hard negatives is not diluted by hundreds of random
ones. Per-term coefficients: c_bn = 1/(B R) for random, lambda/(B h) for hard negatives. Embeddings
are rows of Z (M, d) -- usually unit vectors (PinSAGEConv normalises), so a dot product is a
cosine. Backward (derivations/pinsage.md, "the loss"): with a_bn = [z_q.z_n - z_q.z_i + Delta > 0]
and c_bn = 1 / (B |S_b|) (pooled; or the separate coefficients above),

    dz_q += sum_n c_bn a_bn (z_n - z_i),   dz_i -= (sum_n c_bn a_bn) z_q,   dz_n += c_bn a_bn z_q,

each added into the row of Z the index names (a node appearing in several roles or pairs gets the
sum). At the hinge's kink (argument exactly 0) the subgradient 0 is taken.
"""
from __future__ import annotations

import numpy as np


def _index(name, a, M, ndim):
    a = np.asarray(a)
    if a.ndim != ndim or (a.size and a.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a {ndim}-D array of integer row ids of Z, got {a.dtype} of shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= M):
        raise ValueError(f"{name} holds row ids in [{a.min()}, {a.max()}], expected [0, {M})")
    return a.astype(np.int64)


class MaxMarginLoss:
    """J = mean over pairs of the mean over their negatives of max(0, z_q.z_n - z_q.z_i + margin).

    hard_weight: None (default) pools random and hard negatives into one mean; a number lambda >= 0
    averages them separately: mean over random + lambda * mean over hard (module doc).

    forward(Z, query, positive, negatives, hard_negatives=None) -> float; backward() -> dZ (M, d).
    Z: (M, d) float embeddings; query, positive: (B,) row ids of Z; negatives: (R,) row ids shared by
    every pair (R may be 0 when each pair has hard negatives); hard_negatives: (B, h) row ids, h >= 0.
    Every pair needs at least one negative. Also kept after forward: ``hit_fraction`` (share of
    (pair, negative) terms with a positive hinge, a training diagnostic).
    Raises ValueError for a margin < 0, a hard_weight < 0, ids out of range, mismatched shapes, a pair
    with no negative.
    """

    def __init__(self, margin=0.1, hard_weight=None):
        margin = float(margin)
        if not (np.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
        if hard_weight is not None:
            hard_weight = float(hard_weight)
            if not (np.isfinite(hard_weight) and hard_weight >= 0):
                raise ValueError(f"hard_weight must be None or a finite number >= 0, got {hard_weight!r}")
        self.margin = margin
        self.hard_weight = hard_weight
        self._cache = None

    def forward(self, Z, query, positive, negatives, hard_negatives=None):
        Z = np.asarray(Z)
        if Z.ndim != 2 or Z.dtype.kind != "f":
            raise ValueError(f"Z must be a 2-D float array of embeddings, got {Z.dtype} of shape {Z.shape}")
        M = Z.shape[0]
        q = _index("query", query, M, 1)
        p = _index("positive", positive, M, 1)
        if p.shape != q.shape:
            raise ValueError(f"positive must have the shape of query {q.shape}, got {p.shape}")
        neg = _index("negatives", negatives, M, 1)
        B = q.size
        hard = (np.empty((B, 0), np.int64) if hard_negatives is None
                else _index("hard_negatives", hard_negatives, M, 2))
        if hard.shape[0] != B:
            raise ValueError(f"hard_negatives must have one row per pair, shape ({B}, h), got {hard.shape}")
        count = neg.size + hard.shape[1]
        if count == 0:
            raise ValueError("every pair needs at least one negative: negatives and hard_negatives are both empty")
        Zq, Zp = Z[q], Z[p]
        s_pos = np.einsum("bd,bd->b", Zq, Zp)                        # z_q . z_i
        S_shared = Zq @ Z[neg].T                                      # (B, R)  z_q . z_n
        S_hard = np.einsum("bd,bhd->bh", Zq, Z[hard])                 # (B, h)
        H_shared = S_shared - s_pos[:, None] + self.margin
        H_hard = S_hard - s_pos[:, None] + self.margin
        h = hard.shape[1]
        if self.hard_weight is None:
            c_shared = c_hard = 1.0 / (B * count)
        else:
            if neg.size == 0:
                raise ValueError("hard_weight needs shared random negatives (negatives is empty)")
            c_shared = 1.0 / (B * neg.size)
            c_hard = self.hard_weight / (B * h) if h else 0.0
        loss = c_shared * np.maximum(H_shared, 0).sum() + c_hard * np.maximum(H_hard, 0).sum()
        A_shared, A_hard = H_shared > 0, H_hard > 0
        self.hit_fraction = float((A_shared.sum() + A_hard.sum()) / (B * count))
        self.hard_hit_fraction = float(A_hard.mean()) if h else float("nan")
        self._cache = (Z, q, p, neg, hard, A_shared, A_hard, c_shared, c_hard)
        return float(loss)

    def backward(self):
        """dZ = dJ/dZ (M, d), the module doc's formulas (a fresh array)."""
        if self._cache is None:
            raise RuntimeError("MaxMarginLoss.backward called before forward")
        Z, q, p, neg, hard, A_shared, A_hard, c_shared, c_hard = self._cache
        As = A_shared.astype(Z.dtype) * Z.dtype.type(c_shared)
        Ah = A_hard.astype(Z.dtype) * Z.dtype.type(c_hard)
        Zq, Zp = Z[q], Z[p]
        k = As.sum(axis=1) + Ah.sum(axis=1)                          # sum_n c_bn a_bn
        dZq = As @ Z[neg] + np.einsum("bh,bhd->bd", Ah, Z[hard]) - k[:, None] * Zp
        dZ = np.zeros_like(Z)
        np.add.at(dZ, q, dZq)                                         # dz_q += c sum_n a (z_n - z_i)
        np.add.at(dZ, p, -k[:, None] * Zq)                            # dz_i -= c (sum_n a) z_q
        np.add.at(dZ, neg, As.T @ Zq)                                 # dz_n += c a z_q (shared)
        np.add.at(dZ, hard.ravel(), (Ah[:, :, None] * Zq[:, None, :]).reshape(-1, Z.shape[1]))   # (hard)
        return dZ
