"""Recommendation metrics of PinSage's offline evaluation (Ying et al., KDD 2018, section 4.3) and two baselines.

For each held-out (query q, positive i) pair every item but q is a candidate, scored by s(q, c)
(the dot product of embeddings for PinSage; the item's training degree for popularity; the cosine
of the features for features-only). The rank of i is

    R = 1 + #{c != q: s(q, c) > s(q, i)} + #{c != q, i: s(q, c) = s(q, i)} / 2

(ties at their mean rank: what a random tie-break gives in expectation, and what keeps the
popularity baseline -- thousands of items share a degree -- from looking better or worse by
the order ids happen to have). Metrics over the P pairs:

    hit_rate@K  = (1/P) sum [R <= K]
    MRR         = (1/P) sum 1 / R                       (plain; the one printed first)
    scaled MRR  = (1/P) sum 1 / ceil(R / 100)           (the paper's eq. 4, for its 2-billion candidates)

With a few thousand candidates the paper's scale of 100 puts every rank <= 100 at 1, so the
tables print both, plain first.
"""
from __future__ import annotations

import numpy as np


def ranks_from_scores(score_rows, pairs, num_items, chunk=1024):
    """(P,) float64 ranks of the positives: ``score_rows(queries (c,)) -> (c, num_items)`` scores of every item.

    pairs: (P, 2) int (query, positive) item ids. The query itself is never a candidate. Chunks of
    ``chunk`` queries bound the memory to chunk x num_items scores.
    """
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must be (P, 2) (query, positive) item ids, got shape {pairs.shape}")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= num_items):
        raise ValueError(f"pairs holds item ids in [{pairs.min()}, {pairs.max()}], expected [0, {num_items})")
    ranks = np.empty(pairs.shape[0])
    for s in range(0, pairs.shape[0], chunk):
        q, p = pairs[s:s + chunk, 0], pairs[s:s + chunk, 1]
        S = np.asarray(score_rows(q), dtype=np.float64)
        rows = np.arange(q.size)
        s_pos = S[rows, p]
        S[rows, q] = -np.inf                                  # the query is no candidate
        greater = (S > s_pos[:, None]).sum(axis=1)
        equal = (S == s_pos[:, None]).sum(axis=1) - 1         # minus the positive itself
        ranks[s:s + chunk] = 1.0 + greater + equal / 2.0
    return ranks


def hit_rate(ranks, k):
    """Share of pairs whose positive ranks in the top k."""
    return float(np.mean(np.asarray(ranks) <= k))


def mrr(ranks, scale=1):
    """Mean reciprocal rank; with ``scale`` the paper's scaled MRR, mean of 1 / ceil(R / scale)."""
    r = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(1.0 / np.ceil(r / scale)))


def metrics(ranks, ks=(10, 50)):
    """dict: hit rates at ks, plain MRR, the paper's scaled MRR (scale 100), the median rank."""
    out = {f"HR@{k}": hit_rate(ranks, k) for k in ks}
    out.update(MRR=mrr(ranks), MRR_scaled=mrr(ranks, 100), median_rank=float(np.median(ranks)))
    return out


def embedding_ranks(Z, pairs, chunk=1024):
    """Ranks of the positives by dot products of the item embeddings Z (I, d)."""
    Z = np.asarray(Z)
    return ranks_from_scores(lambda q: Z[q] @ Z.T, pairs, Z.shape[0], chunk)


def popularity_ranks(item_degree, pairs):
    """Ranks by the popularity baseline: every query gets the items by training degree."""
    deg = np.asarray(item_degree, dtype=np.float64)
    return ranks_from_scores(lambda q: np.broadcast_to(deg, (q.size, deg.size)).copy(), pairs, deg.size)


def feature_ranks(x, pairs):
    """Ranks by the features-only baseline: cosine similarity of the standardised item features."""
    x = np.asarray(x, dtype=np.float64)
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return embedding_ranks(x, pairs)
