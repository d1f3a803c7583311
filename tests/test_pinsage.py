"""PinSage (issue 18): importance neighbourhoods, PinSAGEConv, the max-margin loss, hard negatives, metrics, training."""
import numba
import numpy as np
import pytest

from gnn_scratch.data.bipartite import generate_bipartite
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.gradcheck.registry import all_cases
from gnn_scratch.graph import Graph
from gnn_scratch.nn import PinSAGEConv
from gnn_scratch.pinsage import importance_blocks, importance_neighbourhoods, restrict_sources
from gnn_scratch.pinsage.evaluate import embedding_ranks, hit_rate, metrics, mrr, popularity_ranks, ranks_from_scores
from gnn_scratch.pinsage.loss import MaxMarginLoss
from gnn_scratch.pinsage.train import (PinSageConfig, _batches, item_graph, ppr_band, sample_neighbourhood_blocks,
                                       train_pinsage)


def _rows(g):
    return [(g.indices[g.indptr[i]:g.indptr[i + 1]].tolist(),
             None if g.edge_weight is None else g.edge_weight[g.indptr[i]:g.indptr[i + 1]].tolist())
            for i in range(g.num_dst)]


# ------------------------------------------------------------------ neighbourhoods
def test_directed_cycle_gives_the_last_L_nodes_with_equal_weights_ties_by_id():
    n, L = 9, 3
    # edges u -> u+1: row u+1 holds u, so a walk (along CSR rows) from u goes u-1, u-2, ... deterministically
    g = Graph.from_edge_index(np.stack([np.arange(n), (np.arange(n) + 1) % n]), num_nodes=n)
    nb, counts = importance_neighbourhoods(g, num_walks=7, walk_length=L, k=5, return_counts=True)
    for u in range(n):
        idx, w = _rows(nb)[u]
        assert idx == sorted(((u - s) % n) for s in range(1, L + 1))   # equal counts: increasing id
        np.testing.assert_allclose(w, 1.0 / L)
    assert (counts == 7).all()
    assert nb.shape == (n, n)


def test_visit_counts_follow_the_walk_distribution():
    g = random_test_graph(3, 7, 25)
    T, L = 40000, 2
    nb, counts = importance_neighbourhoods(g, num_walks=T, walk_length=L, k=7, return_counts=True, seed=5)
    A = g.to_scipy().toarray()
    P = A / np.maximum(A.sum(1, keepdims=True), 1)          # row v -> its CSR sources, uniform over edges
    expected = T * (P + P @ P)                              # expected visits after steps 1 and 2
    for u in range(g.num_dst):
        idx = nb.indices[nb.indptr[u]:nb.indptr[u + 1]]
        c = counts[nb.indptr[u]:nb.indptr[u + 1]]
        e = expected[u].copy()
        e[u] = 0.0                                          # the start node is never counted
        got = np.zeros(g.num_src)
        got[idx] = c
        assert np.all(np.abs(got - e) <= 5 * np.sqrt(e * L) + 1e-9), (u, got, e)
        if idx.size:
            assert np.all(np.diff(c) <= 0)                  # by decreasing count
            np.testing.assert_allclose(nb.edge_weight[nb.indptr[u]:nb.indptr[u + 1]].sum(), 1.0)


def test_isolated_node_gets_an_empty_row_and_subsets_give_the_same_rows():
    g = random_test_graph(0, 12, 40)                         # node 11 is isolated
    full = importance_neighbourhoods(g, num_walks=10, walk_length=3, k=4, seed=(1, 2))
    assert full.indptr[12] == full.indptr[11]
    part = importance_neighbourhoods(g, num_walks=10, walk_length=3, k=4, seed=(1, 2), nodes=[5, 11, 0])
    assert part.shape == (3, 12)
    assert _rows(part) == [_rows(full)[5], _rows(full)[11], _rows(full)[0]]


def test_same_bits_for_any_thread_count():
    g = random_test_graph(2, 200, 1500)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = importance_neighbourhoods(g, num_walks=20, walk_length=4, k=6, seed=9)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = importance_neighbourhoods(g, num_walks=20, walk_length=4, k=6, seed=9)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.edge_weight, b.edge_weight)
    c = importance_neighbourhoods(g, num_walks=20, walk_length=4, k=6, seed=10)
    assert not np.array_equal(a.indices, c.indices)


def test_bipartite_two_hop_steps_reach_items_only():
    d = generate_bipartite(num_items=300, num_users=600, num_communities=5, num_test_pairs=10, seed=1)
    items = np.arange(d.num_items)
    nb = importance_neighbourhoods(d.graph, num_walks=20, walk_length=2, k=8, hops=2, nodes=items)
    assert nb.indices.max() < d.num_items
    assert not np.any(nb.indices == np.repeat(items, np.diff(nb.indptr)))   # never itself
    sq = restrict_sources(nb, d.num_items)
    assert sq.shape == (d.num_items, d.num_items)
    one_hop = importance_neighbourhoods(d.graph, num_walks=20, walk_length=1, k=8, hops=1, nodes=items)
    assert one_hop.indices.min() >= d.num_items                             # an item's 1-hop visits are users
    with pytest.raises(ValueError, match="num_src"):
        restrict_sources(one_hop, d.num_items)


@pytest.mark.parametrize("kwargs, match", [(dict(k=0), "k must be"), (dict(num_walks=1.5), "num_walks"),
                                           (dict(nodes=[0, 99]), r"nodes holds node ids"),
                                           (dict(hops=0), "hops")])
def test_neighbourhood_errors(kwargs, match):
    g = random_test_graph(0)
    with pytest.raises((TypeError, ValueError), match=match):
        importance_neighbourhoods(g, **kwargs)
    with pytest.raises(ValueError, match="square"):
        importance_neighbourhoods(random_test_graph(1, 6, 14, num_src=9))


def test_on_the_fly_blocks_equal_blocks_of_the_precomputed_item_graph():
    d = generate_bipartite(num_items=400, num_users=800, num_communities=6, num_test_pairs=10, seed=2)
    seeds = np.array([3, 17, 250, 399])
    G = item_graph(d, k=5, num_walks=10, walk_length=2, seed=(4, 1))
    pre, inp_pre = importance_blocks(G, seeds, 2)
    fly, inp_fly = sample_neighbourhood_blocks(d.graph, d.num_items, seeds, 2, 5, 10, 2, (4, 1))
    assert np.array_equal(inp_pre, inp_fly)
    for a, b in zip(pre, fly):
        assert a.shape == b.shape and _rows(a) == _rows(b)
    assert np.array_equal(inp_pre[:4], seeds) and pre[1].num_dst == 4


# ------------------------------------------------------------------ the convolution
def _dense_reference(conv, x, g):
    P = {k: v.astype(np.float64) for k, v in conv.params.items()}
    x = x.astype(np.float64)
    m = np.maximum(x @ P["Q"] + P["q"], 0)
    A = g.to_scipy().toarray()
    n = A @ m
    y = np.maximum(np.concatenate([x[:g.num_dst], n], 1) @ P["W"] + P["w"], 0)
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def test_forward_is_transform_aggregate_combine_bit_for_bit_and_matches_the_dense_reference():
    g = random_test_graph(4, 40, 150)
    nb = importance_neighbourhoods(g, num_walks=15, walk_length=3, k=5, seed=1)
    x = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    conv = PinSAGEConv(6, 8, 4, seed=3)
    conv.params["w"][:] = 0.1
    z = conv.forward(x, nb)
    assert z.dtype == np.float32 and z.shape == (40, 4)
    assert np.array_equal(z, conv.combine(x, conv.aggregate(conv.transform(x), nb)))
    np.testing.assert_allclose(z, _dense_reference(conv, x, nb), rtol=1e-5, atol=1e-6)
    # row chunks (layer-wise inference): rows of the chunk's own neighbourhood block give the same bits
    m = conv.transform(x)
    chunk = np.arange(10, 25)
    nb_c = importance_neighbourhoods(g, num_walks=15, walk_length=3, k=5, seed=1, nodes=chunk)
    assert np.array_equal(conv.combine(x[chunk], conv.aggregate(m, nb_c)), z[chunk])


def test_zero_vector_stays_zero_with_zero_gradient():
    g = random_test_graph(0)
    x = np.random.default_rng(1).standard_normal((8, 3))
    conv = PinSAGEConv(3, 4, 5, seed=2, dtype=np.float64)
    conv.params["w"][:] = -100.0                              # every pre-activation < 0: y = 0 in every row
    z = conv.forward(x, g)
    assert np.array_equal(z, np.zeros_like(z))
    conv.zero_grad()
    dx = conv.backward(np.random.default_rng(3).standard_normal(z.shape))
    assert np.all(np.isfinite(dx)) and not np.any(dx)
    assert all(not np.any(gr) for gr in conv.grads.values())


def test_empty_row_aggregates_to_zero_and_errors_name_the_argument():
    g = random_test_graph(0)                                  # node 7 has no in-edge
    m = np.random.default_rng(0).standard_normal((8, 4))
    n = PinSAGEConv.aggregate(m, g)
    assert not np.any(n[7]) and np.any(n[:7])
    with pytest.raises(ValueError, match="hidden_channels"):
        PinSAGEConv(3, 0, 4)
    with pytest.raises(ValueError, match="x"):
        PinSAGEConv(3, 4, 4).forward(np.zeros((8, 5), np.float32), g)


@pytest.mark.parametrize("name", ["PinSAGEConv", "PinSAGE model (importance blocks)", "max-margin ranking loss"])
def test_gradient_checks_pass(name):
    rows = all_cases()[name]()
    assert rows and all(r.passed for r in rows), [r for r in rows if not r.passed]


# ------------------------------------------------------------------ loss
def test_max_margin_loss_matches_its_definition():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((10, 3))
    q, p, neg, hard = np.array([0, 1, 2]), np.array([4, 5, 6]), np.array([7, 8]), rng.integers(0, 10, (3, 2))
    L = MaxMarginLoss(0.3)
    got = L.forward(Z, q, p, neg, hard)
    want = np.mean([np.mean([max(0.0, Z[q[b]] @ Z[n] - Z[q[b]] @ Z[p[b]] + 0.3) for n in [*neg, *hard[b]]])
                    for b in range(3)])
    assert got == pytest.approx(want, rel=1e-12)
    # hard_weight: random and hard negatives averaged separately, the hard mean weighted
    L3 = MaxMarginLoss(0.3, hard_weight=2.5)
    hinge = lambda b, n: max(0.0, Z[q[b]] @ Z[n] - Z[q[b]] @ Z[p[b]] + 0.3)
    want = np.mean([np.mean([hinge(b, n) for n in neg]) + 2.5 * np.mean([hinge(b, n) for n in hard[b]])
                    for b in range(3)])
    assert L3.forward(Z, q, p, neg, hard) == pytest.approx(want, rel=1e-12)
    assert L3.forward(Z, q, p, neg, hard[:, :0]) == pytest.approx(
        np.mean([np.mean([hinge(b, n) for n in neg]) for b in range(3)]), rel=1e-12)
    with pytest.raises(ValueError, match="hard_weight"):
        MaxMarginLoss(0.3, hard_weight=-1)
    with pytest.raises(ValueError, match="shared random negatives"):
        L3.forward(Z, q, p, [], hard)
    # far apart: every hinge is off, the loss and its gradient are 0
    Zs = np.zeros((4, 2)); Zs[0] = Zs[1] = [1, 0]; Zs[2] = [-1, 0]
    L2 = MaxMarginLoss(0.5)
    assert L2.forward(Zs, [0], [1], [2]) == 0.0 and not np.any(L2.backward())
    with pytest.raises(ValueError, match="at least one negative"):
        L2.forward(Zs, [0], [1], [])
    with pytest.raises(ValueError, match="positive"):
        L2.forward(Zs, [0], [1, 2], [2])
    with pytest.raises(ValueError, match="margin"):
        MaxMarginLoss(-1)


# ------------------------------------------------------------------ hard negatives, metrics
def test_ppr_band_ranks_like_the_exact_personalised_pagerank():
    g = random_test_graph(6, 30, 160)
    w = np.random.default_rng(1).random(g.num_edges)
    rs = np.bincount(g.dst_of_edge(), weights=w, minlength=30)
    P = Graph(g.indptr, g.indices, edge_weight=w / rs[g.dst_of_edge()]).to_scipy()
    q = np.array([0, 5, 12])
    band = ppr_band(P.T.tocsr(), q, (2, 8), restart=0.3, iters=200)
    A = np.eye(30) - 0.7 * P.toarray().T
    for b, u in enumerate(q):
        e = np.zeros(30); e[u] = 1
        r = np.linalg.solve(A, 0.3 * e)
        order = np.lexsort((np.arange(30), -np.round(r, 6)))
        assert band[b].tolist() == order[2:8].tolist()
    ex = ppr_band(P.T.tocsr(), q, (2, 8), restart=0.3, iters=200, exclude=band[:, 0])
    assert not np.any(ex == band[:, :1]) and np.array_equal(ex[:, :5], band[:, 1:6])


def test_metrics_ranks_ties_and_scaled_mrr():
    scores = np.array([[9.0, 1.0, 5.0, 5.0, 5.0, 0.0]])
    r = ranks_from_scores(lambda q: scores[np.zeros(q.size, int)], np.array([[0, 2], [1, 5]]), 6)
    assert r.tolist() == [2.0, 5.0]     # query 0 excluded, two ties at 5 -> 1 + 0 + 2/2; query 1: 5 above 0
    ranks = np.array([1.0, 2.0, 150.0])
    assert mrr(ranks) == pytest.approx((1 + 0.5 + 1 / 150) / 3)
    assert mrr(ranks, 100) == pytest.approx((1 + 1 + 0.5) / 3)
    assert hit_rate(ranks, 2) == pytest.approx(2 / 3)
    deg = np.array([5, 1, 3, 3])
    assert popularity_ranks(deg, np.array([[1, 2]])).tolist() == [2.5]
    Z = np.eye(4)
    assert embedding_ranks(Z, np.array([[0, 1]])).tolist() == [2.0]   # 3 candidates all at 0: mean rank 2
    assert set(metrics(ranks)) >= {"HR@10", "MRR", "MRR_scaled"}


# ------------------------------------------------------------------ training
def test_batches_curriculum_and_threaded_training_is_bit_identical():
    d = generate_bipartite(num_items=300, num_users=700, num_communities=5, num_test_pairs=50, seed=3)
    cfg = PinSageConfig(epochs=2, pairs_per_epoch=128, batch_size=64, num_random_negatives=32, k=4, num_walks=8,
                        hidden_channels=8, out_channels=4, seed=1)
    P = item_graph(d, k=6, num_walks=8)
    P_T = P.to_scipy().T.tocsr().astype(np.float32)
    for epoch in (1, 3):
        b = next(_batches(d, cfg, epoch, P_T))
        assert b.hard.shape == (64, epoch - 1)
        assert np.array_equal(b.input_nodes[:b.nodes.size], b.nodes)
    a = train_pinsage(d, cfg, P=P)
    c = train_pinsage(d, PinSageConfig(**{**cfg.__dict__, "use_thread": False}), P=P)
    for (n, p, _), (_, p2, _) in zip(a.model.named_parameters(), c.model.named_parameters()):
        assert np.array_equal(p, p2), n
    assert len(a.losses) == 2 and all(np.isfinite(a.losses)) and 0 <= a.wait_share <= 1
