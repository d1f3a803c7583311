"""Neighbour sampler, induced and k-hop subgraphs: the properties every sampled block must have."""
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from gnn_scratch.data import csbm
from gnn_scratch.graph import Graph
from gnn_scratch.sampling import full_block, khop_nodes, khop_subgraph, sample_blocks, subgraph


def multigraph(seed=0, n=30, e=150):
    """A random directed graph with repeated edges, self-loops and (likely) isolated nodes."""
    rng = np.random.default_rng(seed)
    ei = rng.integers(0, n, (2, e))
    ei = np.concatenate([ei, [[3, 3, 4], [5, 5, 4]]], axis=1)  # 3 -> 5 twice, a loop on 4
    return Graph.from_edge_index(ei, num_nodes=n)


def adjacency(graph):
    """Dense A[i, j] = total weight of the edges j -> i, built from copies of the CSR arrays.

    (Graph.to_scipy shares its arrays with the scipy matrix, and scipy sorts / merges indices in
    place on operations such as ``A > 0``: that would rewrite the graph under the test.)
    """
    w = np.ones(graph.num_edges) if graph.edge_weight is None else graph.edge_weight.copy()
    return sp.csr_matrix((w, graph.indices.copy(), graph.indptr.copy()), shape=graph.shape).toarray()


def row_sources(graph, i):
    return graph.indices[graph.indptr[i]:graph.indptr[i + 1]]


def check_minibatch(graph, mb, fanouts):
    """Every property of a sampled mini-batch, against the graph it came from."""
    L = len(fanouts)
    assert len(mb.blocks) == L
    B = mb.seeds.size
    nodes = mb.input_nodes
    assert np.unique(nodes).size == nodes.size, "a node got two local ids"
    assert np.array_equal(nodes[:B], mb.seeds), "the seeds must come first"
    assert mb.blocks[-1].num_dst == B
    for layer in range(L):
        blk = mb.blocks[layer]
        if layer + 1 < L:
            assert blk.num_dst == mb.blocks[layer + 1].num_src, "block shapes must chain"
        assert blk.num_dst <= blk.num_src and blk.num_src <= nodes.size
        # every layer's node list is a prefix of input_nodes: destinations first among the sources
        dst_global, src_global = nodes[:blk.num_dst], nodes[:blk.num_src]
        fanout = fanouts[L - 1 - layer]        # hop order: fanouts[0] belongs to the last block
        for i in range(blk.num_dst):
            full = row_sources(graph, dst_global[i])
            got = src_global[row_sources(blk, i)]
            k = full.size if fanout == -1 else min(fanout, full.size)
            assert got.size == k, "fan-out not respected"
            # without replacement among the row's edges: a sub-multiset of the row's sources
            have, want = Counter(got.tolist()), Counter(full.tolist())
            assert all(have[s] <= want[s] for s in have), "a sampled edge is not in the graph, or drawn twice"
            if fanout == -1:
                assert np.array_equal(got, full), "fan-out -1 must give the whole row in CSR order"
            # in CSR order: the sampled sources' positions in the row increase (checked when it has no repeats)
            if np.unique(full).size == full.size:
                where = {s: p for p, s in enumerate(full.tolist())}
                assert all(where[a] < where[b] for a, b in zip(got[:-1].tolist(), got[1:].tolist()))
        # every source of a block except the destinations is used by some edge of it
        used = np.zeros(blk.num_src, bool)
        used[blk.indices] = True
        used[:blk.num_dst] = True
        assert used.all()


@pytest.mark.parametrize("fanouts", [[2, 3], [25, 10], [-1, 2], [1], [-1, -1, -1]])
def test_sampled_blocks_have_every_property(fanouts):
    g = multigraph()
    mb = sample_blocks(g, np.array([3, 4, 0, 17, 29]), fanouts, seed=7)
    check_minibatch(g, mb, fanouts)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_seeds=st.integers(1, 12), f1=st.sampled_from([-1, 1, 2, 5]),
       f2=st.sampled_from([-1, 1, 3]))
def test_sampler_properties_hold_on_random_graphs(seed, n_seeds, f1, f2):
    g = multigraph(seed, n=20, e=int(np.random.default_rng(seed).integers(0, 120)))
    seeds = np.random.default_rng(seed).choice(20, n_seeds, replace=False)
    check_minibatch(g, sample_blocks(g, seeds, [f1, f2], seed=seed), [f1, f2])


def test_sampler_is_reproducible_by_seed():
    g = csbm(num_nodes=500, num_val=100, num_test=100, seed=1).graph
    seeds = np.arange(0, 500, 7)
    a, b = sample_blocks(g, seeds, [5, 3], seed=11), sample_blocks(g, seeds, [5, 3], seed=11)
    c = sample_blocks(g, seeds, [5, 3], seed=12)
    assert np.array_equal(a.input_nodes, b.input_nodes)
    for x, y in zip(a.blocks, b.blocks):
        assert np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)
    assert not np.array_equal(a.input_nodes, c.input_nodes)
    # a tuple seed (seed, epoch, batch) works the same way
    assert np.array_equal(sample_blocks(g, seeds, [5], seed=(1, 2, 3)).input_nodes,
                          sample_blocks(g, seeds, [5], seed=(1, 2, 3)).input_nodes)


def test_sampling_is_uniform_without_replacement():
    # node 0 has 10 in-neighbours 1..10; a fan-out of 3 must pick each with probability 3/10
    g = Graph.from_edge_index(np.array([np.arange(1, 11), np.zeros(10, int)]), num_nodes=11)
    counts = np.zeros(11)
    trials = 3000
    for s in range(trials):
        mb = sample_blocks(g, np.array([0]), [3], seed=s)
        picked = mb.input_nodes[mb.blocks[0].indices]
        assert np.unique(picked).size == 3
        counts[picked] += 1
    p = counts[1:] / trials
    # binomial sd of each frequency is sqrt(0.3 * 0.7 / 3000) ~ 0.0084: 5 sd
    np.testing.assert_allclose(p, 0.3, atol=0.042)


def test_full_block_equals_fanout_minus_one_and_the_csr_rows():
    g = multigraph(3)
    t = np.array([5, 1, 9])
    blk, frontier = full_block(g, t)
    ref = sample_blocks(g, t, [-1], seed=0)
    assert np.array_equal(frontier, ref.input_nodes)
    assert np.array_equal(blk.indptr, ref.blocks[0].indptr) and np.array_equal(blk.indices, ref.blocks[0].indices)
    for i, node in enumerate(t):
        assert np.array_equal(frontier[row_sources(blk, i)], row_sources(g, node))


def test_sampler_rejects_bad_input():
    g = multigraph()
    with pytest.raises(ValueError, match="distinct"):
        sample_blocks(g, np.array([1, 1]), [2])
    with pytest.raises(ValueError, match=r"seeds holds node ids"):
        sample_blocks(g, np.array([0, 30]), [2])
    with pytest.raises(ValueError, match="fan-out"):
        sample_blocks(g, np.array([0]), [0])
    with pytest.raises(ValueError, match="fanouts"):
        sample_blocks(g, np.array([0]), [])
    with pytest.raises(ValueError, match="at least one"):
        sample_blocks(g, np.array([], dtype=np.int64), [2])
    bip = Graph.from_csr(np.array([0, 1]), np.array([1]), num_src=2)
    with pytest.raises(ValueError, match="square"):
        sample_blocks(bip, np.array([0]), [1])


def test_subgraph_is_the_induced_adjacency():
    g = multigraph(5)
    w = np.random.default_rng(0).uniform(0.5, 2.0, g.num_edges)
    gw = Graph.from_csr(g.indptr, g.indices, w, num_src=g.num_src)
    nodes = np.array([7, 3, 5, 4, 20, 11])
    sub, keep = subgraph(gw, nodes)
    A = adjacency(gw)
    np.testing.assert_allclose(adjacency(sub), A[np.ix_(nodes, nodes)])
    assert keep.sum() == sub.num_edges
    assert sub.shape == (6, 6)


def test_khop_subgraph_holds_the_khop_neighbourhood():
    g = multigraph(6, n=40, e=60)
    seeds = np.array([2, 9])
    A = sp.csr_matrix(adjacency(g) > 0).astype(int)
    reach = np.zeros(40, bool)
    reach[seeds] = True
    for _ in range(2):
        reach |= A[np.flatnonzero(reach)].sum(axis=0).A1 > 0   # A[i, j] = 1 for an edge j -> i
    sub, nodes = khop_subgraph(g, seeds, 2)
    assert np.array_equal(nodes[:2], seeds)
    assert set(nodes.tolist()) == set(np.flatnonzero(reach).tolist())
    assert sub.num_nodes == nodes.size
    assert np.array_equal(khop_nodes(g, seeds, 0), seeds)
    with pytest.raises(ValueError, match="hops"):
        khop_subgraph(g, seeds, -1)


def test_sampler_handles_a_large_graph_quickly():
    d = csbm(num_nodes=20_000, avg_degree=10, seed=2)
    seeds = np.random.default_rng(0).choice(20_000, 512, replace=False)
    mb = sample_blocks(d.graph, seeds, [25, 10], seed=3)
    assert mb.blocks[-1].shape[0] == 512
    assert mb.input_nodes.size > 512 and mb.num_sampled_edges <= 512 * 25 * 11
