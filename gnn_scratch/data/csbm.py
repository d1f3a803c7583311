"""A contextual stochastic block model (CSBM): a synthetic graph whose difficulty you dial in.

Two knobs set how much each source of evidence says about a node's class:
    homophily       the probability that an edge joins two nodes of the same class (the graph);
    feature_signal  the norm of each class's feature mean against unit Gaussian noise (the features).
With homophily = 1/num_classes the edges carry no class information; with feature_signal = 0 the
features carry none. Used for tests and experiments that need no download.
"""
from __future__ import annotations

import numbers

import numpy as np

from .dataset import Dataset, index_to_mask, undirected_edge_index


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_real(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or value < lo or (hi is not None and value > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be a finite number {rng}, got {value!r}")
    return float(value)


def csbm(num_nodes=2000, num_classes=4, num_features=64, avg_degree=8, homophily=0.8,
         feature_signal=1.0, train_per_class=20, num_val=500, num_test=1000, seed=0) -> Dataset:
    """Sample a CSBM graph with a Planetoid-style split. Same arguments and seed -> identical dataset.

    Classes: balanced (sizes differ by at most one), assigned to nodes in a random order.
    Edges: round(num_nodes * avg_degree / 2) undirected edges are drawn; each picks a uniform
        endpoint u, then with probability ``homophily`` a different node v of u's class, otherwise
        a node v of a uniformly chosen other class. Repeats are then removed, so the final mean
        degree is slightly below ``avg_degree``; there are no self-loops.
    Features: x = mu[y] + noise, noise ~ N(0, 1) per entry; the class means mu (C, F) are drawn
        once as N(0, I / F) scaled by ``feature_signal``, so ||mu_c|| ~= feature_signal.
    Split: a seeded permutation of the nodes; train = the first ``train_per_class`` nodes of each
        class in that order, val = the next ``num_val`` of the rest, test = the next ``num_test``.

    Returns a Dataset with x (N, F) float32 dense, y (N,) int64, edge_index (2, E) int64, and
    ``meta["class_means"]`` = mu (C, F) float64.
    Cost: O(N F + E log E); 100k nodes and 1M edges take well under a second.
    """
    N = _check_int("num_nodes", num_nodes, 2)
    C = _check_int("num_classes", num_classes, 2)
    F = _check_int("num_features", num_features, 1)
    avg_degree = _check_real("avg_degree", avg_degree, 0.0)
    if avg_degree <= 0:
        raise ValueError(f"avg_degree must be > 0, got {avg_degree!r}")
    h = _check_real("homophily", homophily, 0.0, 1.0)
    signal = _check_real("feature_signal", feature_signal, 0.0)
    tpc = _check_int("train_per_class", train_per_class, 1)
    n_val = _check_int("num_val", num_val, 0)
    n_test = _check_int("num_test", num_test, 1)
    if N < 2 * C:
        raise ValueError(f"num_nodes={N} must be at least 2 * num_classes={2 * C} so every class has two nodes")
    if tpc > N // C:
        raise ValueError(f"train_per_class={tpc} exceeds the smallest class size {N // C} "
                         f"(num_nodes={N} / num_classes={C})")
    if C * tpc + n_val + n_test > N:
        raise ValueError(f"split does not fit: num_classes * train_per_class + num_val + num_test = "
                         f"{C * tpc} + {n_val} + {n_test} > num_nodes={N}")
    rng = np.random.default_rng(seed)

    # Classes: node i gets class (i mod C) before a random relabelling of the nodes.
    y = rng.permutation(np.arange(N, dtype=np.int64) % C)
    # Members of each class, contiguous: members[start[c] : start[c] + size[c]]
    members = np.argsort(y, kind="stable")
    size = np.bincount(y, minlength=C)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    pos = np.empty(N, dtype=np.int64)  # position of each node inside its class block
    pos[members] = np.arange(N) - np.repeat(start, size)

    M = int(round(N * avg_degree / 2))
    u = rng.integers(0, N, size=M)
    cu = y[u]
    intra = rng.random(M) < h
    # other class, uniform over the C - 1 others: shift by 1 .. C-1
    cv = np.where(intra, cu, (cu + rng.integers(1, C, size=M)) % C)
    # intra: a uniform member of the class other than u itself (draw from size-1 slots, skip u's)
    slots = size[cv] - intra
    j = np.floor(rng.random(M) * slots).astype(np.int64)
    j += intra & (j >= pos[u])
    v = members[start[cv] + j]
    edge_index = undirected_edge_index(u, v, N)

    mu = rng.standard_normal((C, F)) * (signal / np.sqrt(F))
    x = rng.standard_normal((N, F), dtype=np.float32)
    x += mu.astype(np.float32)[y]

    # Planetoid-style split from one seeded permutation.
    order = rng.permutation(N)
    cls_in_order = y[order]
    rank = np.empty(N, dtype=np.int64)  # rank of each position among same-class nodes in `order`
    for c in range(C):
        at = np.flatnonzero(cls_in_order == c)
        rank[at] = np.arange(at.size)
    is_train = rank < tpc
    train_idx = order[is_train]
    rest = order[~is_train]
    val_idx, test_idx = rest[:n_val], rest[n_val:n_val + n_test]
    return Dataset(
        name="csbm", x=x, y=y, edge_index=edge_index,
        train_mask=index_to_mask(train_idx, N), val_mask=index_to_mask(val_idx, N),
        test_mask=index_to_mask(test_idx, N), num_classes=C,
        meta=dict(homophily=h, avg_degree=avg_degree, feature_signal=signal, seed=seed, class_means=mu),
    )
