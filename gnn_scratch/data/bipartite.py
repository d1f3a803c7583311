"""A generated user-item graph with planted item communities, for PinSage (issue 18).

Generator (``generate_bipartite``), vectorised NumPy, one seed:

1. Items. Each of the I items joins one of C communities uniformly at random and gets a popularity
   weight pi_i ~ LogNormal(0, popularity_sigma) (a few items draw most of a community's traffic).
2. Users. Each of the U users has ``favourites`` communities drawn uniformly (with repetition) and
   preference weights over them ~ Dirichlet(concentration), and an activity n_u ~ Geometric (>= 1)
   with mean ``mean_interactions``.
3. Interactions. Each of the user's n_u draws is, with probability ``noise_rate``, a uniformly random
   item (taste outside the communities), else: a community c from the user's preferences, then an
   item of c with probability pi_i / sum_{j in c} pi_j (inverse CDF over the community's
   cumulative popularity). Repeated (user, item) draws collapse into one interaction.
4. Item features x (I, signal_dim + noise_dim) float32: the community centroid mu_c ~ N(0, I) plus
   N(0, feature_noise^2) noise in the first ``signal_dim`` columns, pure N(0, 1) in the others.
   Features alone therefore find an item's community only approximately; which items of the
   community go together (the popular ones, the ones the same users take) is only in the graph.
5. Held-out pairs. ``num_test_pairs`` users with at least 3 items are drawn; for each, two of their
   items (query q, positive p) are drawn and the interaction (user, p) is removed from training, so
   no training path links q to p through that user (pairs whose positive would lose its last
   interaction are dropped). Evaluation ranks p among all items for query q (``pinsage.evaluate``).

Graph: ``graph`` is square over N = I + U nodes -- items 0 .. I-1, users I .. I+U-1 -- with both
directions of every training interaction (undirected), so ``importance_neighbourhoods(graph,
hops=2, nodes=items)`` walks item -> user -> item. Memory about 40 bytes per interaction while
generating; 10^7 interactions take seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import Graph


@dataclass
class BipartiteInteractions:
    """A generated user-item data set.

    num_items I, num_users U; user, item: (E,) int64 training interactions (sorted by user, then item);
    x: (I, F) float32 item features; community: (I,) int64 planted community of each item;
    test_pairs: (P, 2) int64 held-out (query item, positive item); graph: square ``Graph`` over I + U
    nodes (items first), both directions of each training interaction; item_degree: (I,) int64 training
    interactions per item (the popularity baseline's score).
    """
    num_items: int
    num_users: int
    user: np.ndarray
    item: np.ndarray
    x: np.ndarray
    community: np.ndarray
    test_pairs: np.ndarray
    graph: Graph
    item_degree: np.ndarray

    @property
    def num_interactions(self):
        return int(self.user.size)

    def user_ptr(self):
        """(U + 1,) int64 offsets: user u's training items are item[user_ptr[u]:user_ptr[u + 1]]."""
        ptr = np.zeros(self.num_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.user, minlength=self.num_users), out=ptr[1:])
        return ptr


def _count(name, v, minimum=1):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def _real(name, v, lo, hi=np.inf, lo_open=False):
    f = float(v)
    if not np.isfinite(f) or f < lo or (lo_open and f == lo) or f > hi:
        raise ValueError(f"{name} must be in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}")
    return f


def generate_bipartite(num_items=20000, num_users=50000, num_communities=50, mean_interactions=20.0,
                       favourites=3, concentration=0.5, popularity_sigma=1.0, noise_rate=0.05, signal_dim=16,
                       noise_dim=16, feature_noise=1.5, num_test_pairs=2000, seed=0):
    """Generate a ``BipartiteInteractions`` (module doc for the model). Same arguments and seed -> same arrays.

    Sizes: about U * mean_interactions interactions before repeats collapse (50 000 users x 20 =
    ~1M). Raises ValueError for non-positive sizes, noise_rate outside [0, 1], non-positive
    concentration / sigma, or fewer than 2 items / communities than items.
    """
    I = _count("num_items", num_items, 2)
    U = _count("num_users", num_users)
    C = _count("num_communities", num_communities)
    if C > I:
        raise ValueError(f"num_communities = {C} must not exceed num_items = {I}")
    K = _count("favourites", favourites)
    mean_interactions = _real("mean_interactions", mean_interactions, 1.0)
    concentration = _real("concentration", concentration, 0.0, lo_open=True)
    popularity_sigma = _real("popularity_sigma", popularity_sigma, 0.0)
    noise_rate = _real("noise_rate", noise_rate, 0.0, 1.0)
    feature_noise = _real("feature_noise", feature_noise, 0.0)
    signal_dim = _count("signal_dim", signal_dim)
    noise_dim = _count("noise_dim", noise_dim, 0)
    num_test_pairs = _count("num_test_pairs", num_test_pairs, 0)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB1]))

    # 1. items: community, popularity; items grouped by community for the inverse CDF
    community = rng.integers(0, C, I)
    community[rng.permutation(I)[:C]] = np.arange(C)        # no community is empty
    pop = rng.lognormal(0.0, popularity_sigma, I)
    by_comm = np.argsort(community, kind="stable")
    comm_start = np.searchsorted(community[by_comm], np.arange(C + 1))
    cum = np.cumsum(pop[by_comm])
    base = np.concatenate([[0.0], cum])[comm_start[:-1]]
    mass = cum[comm_start[1:] - 1] - base

    # 2. users: favourite communities, preferences, activity
    fav = rng.integers(0, C, (U, K))
    pref_cum = np.cumsum(rng.dirichlet(np.full(K, concentration), U), axis=1)
    n_u = rng.geometric(1.0 / mean_interactions, U)            # >= 1, mean mean_interactions

    # 3. interactions
    user = np.repeat(np.arange(U, dtype=np.int64), n_u)
    E = user.size
    slot = (rng.random(E)[:, None] > pref_cum[user]).sum(axis=1)
    c = fav[user, np.minimum(slot, K - 1)]
    target = base[c] + rng.random(E) * mass[c]
    pos = np.clip(np.searchsorted(cum, target, side="right"), comm_start[c], comm_start[c + 1] - 1)
    item = by_comm[pos]
    noisy = rng.random(E) < noise_rate
    item[noisy] = rng.integers(0, I, int(noisy.sum()))
    key = np.unique(user * I + item)                         # sorted by user, then item; repeats collapse
    user, item = key // I, key % I

    # 5. held-out pairs: two items of a user with >= 3 items; the (user, positive) interaction removed
    ptr = np.zeros(U + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=U), out=ptr[1:])
    deg_u = np.diff(ptr)
    eligible = np.flatnonzero(deg_u >= 3)
    P = min(num_test_pairs, eligible.size)
    chosen = rng.choice(eligible, P, replace=False) if P else np.empty(0, np.int64)
    d = deg_u[chosen]
    a = (rng.random(P) * d).astype(np.int64)
    b = (rng.random(P) * (d - 1)).astype(np.int64)
    b += b >= a
    q_pos, p_pos = ptr[chosen] + a, ptr[chosen] + b
    query, positive = item[q_pos], item[p_pos]
    keep = np.ones(user.size, dtype=bool)
    keep[p_pos] = False
    item_degree = np.bincount(item[keep], minlength=I)
    ok = item_degree[positive] > 0
    keep[p_pos[~ok]] = True                                  # a dropped pair keeps its interaction
    item_degree = np.bincount(item[keep], minlength=I).astype(np.int64)
    test_pairs = np.stack([query[ok], positive[ok]], axis=1).astype(np.int64)
    user, item = user[keep], item[keep]

    # 4. features
    centroids = rng.standard_normal((C, signal_dim))
    x = np.concatenate([centroids[community] + feature_noise * rng.standard_normal((I, signal_dim)),
                        rng.standard_normal((I, noise_dim))], axis=1).astype(np.float32)

    src = np.concatenate([item, I + user])
    dst = np.concatenate([I + user, item])
    graph = Graph.from_edge_index(np.stack([src, dst]), num_nodes=I + U)
    return BipartiteInteractions(I, U, user, item, x, community.astype(np.int64), test_pairs, graph, item_degree)


def sample_training_pairs(data, num_pairs, seed=0):
    """(num_pairs, 2) int64 (query, positive) item pairs co-engaged by one user in the training interactions.

    An interaction (u, q) is drawn uniformly among those of users with >= 2 items, then another of
    u's items p != q uniformly: the paper's positive pairs (items engaged together). Seeded.
    """
    rng = np.random.default_rng(np.random.SeedSequence([*np.atleast_1d(seed).tolist(), 0xA1]))
    ptr = data.user_ptr()
    deg_u = np.diff(ptr)
    ok_edges = np.flatnonzero(deg_u[data.user] >= 2)
    if ok_edges.size == 0:
        raise ValueError("no user has two training interactions: no positive pair can be drawn")
    e = ok_edges[rng.integers(0, ok_edges.size, num_pairs)]
    u = data.user[e]
    d = deg_u[u]
    a = e - ptr[u]
    b = (rng.random(num_pairs) * (d - 1)).astype(np.int64)
    b += b >= a
    return np.stack([data.item[e], data.item[ptr[u] + b]], axis=1)
