"""GraphBatch: many graphs as one block-diagonal CSR -- structure, constructors, unbatch, layers, errors."""
import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph import Graph, GraphBatch, GraphError
from gnn_scratch.nn import GCNConv


def members(weighted=False):
    """Three graphs of 8, 5 and 6 nodes, each with an isolated node, a self-loop 0 -> 0 and the edge 1 -> 2 twice."""
    gs = [random_test_graph(0), random_test_graph(1, 5, 7), random_test_graph(2, 6, 9)]
    if not weighted:
        return gs
    rng = np.random.default_rng(3)
    return [Graph.from_edge_index(g.edge_index(), g.num_nodes, rng.uniform(0.5, 2.0, g.num_edges)) for g in gs]


@pytest.mark.parametrize("weighted", [False, True])
def test_block_diagonal_structure_equals_scipy_block_diag(weighted):
    gs = members(weighted)
    b = GraphBatch.from_graphs(gs)
    want = sp.block_diag([g.to_scipy() for g in gs], format="csr")
    assert b.shape == want.shape == (19, 19) and b.num_edges == sum(g.num_edges for g in gs)
    assert (b.to_scipy() != want).nnz == 0
    assert b.num_graphs == 3 and b.graph_ptr.tolist() == [0, 8, 13, 19]
    assert b.batch.tolist() == [0] * 8 + [1] * 5 + [2] * 6
    assert b.graph_ptr.dtype == b.batch.dtype == np.int64
    assert (b.edge_weight is not None) == weighted
    # edge_id: the column of the concatenated edge_index each CSR edge came from
    ei = np.concatenate([g.edge_index()[:, np.argsort(g.edge_id)] + off for g, off in zip(gs, [0, 8, 13])], axis=1)
    np.testing.assert_array_equal(ei[:, b.edge_id], b.edge_index())


def test_a_batch_keeps_isolated_nodes_self_loops_and_repeated_edges():
    gs = members()
    b = GraphBatch.from_graphs(gs)
    deg = np.concatenate([g.in_degree() for g in gs])
    np.testing.assert_array_equal(b.in_degree(), deg)
    for k, off in enumerate(b.graph_ptr[:-1]):
        n = gs[k].num_nodes
        assert b.in_degree()[off + n - 1] == 0 and b.out_degree()[off + n - 1] == 0      # isolated
        A = b.to_scipy()
        assert A[off, off] >= 1 and A[off + 2, off + 1] >= 2                                 # loop, repeated edge


def test_every_constructor_gives_the_same_batch():
    gs = members(weighted=True)
    b = GraphBatch.from_graphs(gs)
    eis = [g.edge_index()[:, np.argsort(g.edge_id)] for g in gs]          # each graph's edge_index, original order
    ws = [g.edge_weight[np.argsort(g.edge_id)] for g in gs]
    b2 = GraphBatch.from_edge_indices(eis, [g.num_nodes for g in gs], ws)
    offsets = b.graph_ptr[:-1]
    b3 = GraphBatch.from_pyg(np.concatenate([ei + o for ei, o in zip(eis, offsets)], axis=1), b.batch,
                             np.concatenate(ws))
    for other in (b2, b3):
        for name in ("indptr", "indices", "edge_weight", "edge_id", "graph_ptr", "batch"):
            np.testing.assert_array_equal(getattr(other, name), getattr(b, name), err_msg=name)
    # Graph's own constructors give a batch of one graph
    one = GraphBatch.from_edge_index(eis[0], gs[0].num_nodes)
    assert isinstance(one, GraphBatch) and one.num_graphs == 1 and one.graph_ptr.tolist() == [0, 8]


def test_unbatch_and_graph_round_trip():
    gs = members(weighted=True)
    b = GraphBatch.from_graphs(gs)
    X = np.random.default_rng(0).standard_normal((b.num_nodes, 3))
    parts = b.unbatch(X)
    assert [p.shape for p in parts] == [(8, 3), (5, 3), (6, 3)]
    np.testing.assert_array_equal(np.concatenate(parts), X)
    assert all(np.shares_memory(p, X) for p in parts)                      # views, no copy
    for k, g in enumerate(gs):
        r = b.graph(k)
        assert type(r) is Graph and r.shape == g.shape
        for name in ("indptr", "indices", "edge_weight", "edge_id"):
            np.testing.assert_array_equal(getattr(r, name), getattr(g, name), err_msg=f"graph {k} {name}")
    np.testing.assert_array_equal(b.graph(-1).indices, gs[-1].indices)
    with pytest.raises(IndexError, match="graph index 3 out of range for a batch of 3 graphs"):
        b.graph(3)
    with pytest.raises(ValueError, match=r"X must have one row per node of the batch \(19\), got shape \(18, 3\)"):
        b.unbatch(X[:-1])


@pytest.mark.parametrize("fin, fout", [(4, 3), (3, 5)])        # both product orders of GCNConv
def test_gcnconv_on_the_batch_equals_gcnconv_on_each_graph(fin, fout):
    gs = members(weighted=True)
    b = GraphBatch.from_graphs(gs)
    rng = np.random.default_rng(1)
    X, G = rng.standard_normal((b.num_nodes, fin)), rng.standard_normal((b.num_nodes, fout))
    conv = GCNConv(fin, fout, seed=2, dtype=np.float64)
    conv.params["b"][:] = rng.standard_normal(fout)
    out = conv(X, b)
    conv.zero_grad()
    dX = conv.backward(G)
    dW = conv.grads["W"].copy()
    outs, dXs, dW_sum = [], [], np.zeros_like(dW)
    for g, Xk, Gk in zip(gs, b.unbatch(X), b.unbatch(G)):
        outs.append(conv(Xk, g))
        conv.zero_grad()
        dXs.append(conv.backward(Gk))
        dW_sum += conv.grads["W"]
    np.testing.assert_allclose(out, np.concatenate(outs), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dX, np.concatenate(dXs), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dW, dW_sum, rtol=1e-12, atol=1e-13)


def test_errors_name_what_is_wrong():
    g = random_test_graph(0)
    with pytest.raises(GraphError, match="^GraphBatch.from_graphs needs at least one graph, got an empty list$"):
        GraphBatch.from_graphs([])
    block = random_test_graph(1, 6, 14, num_src=9)
    with pytest.raises(GraphError, match=r"^graphs\[1\] is not square \(shape \(6, 9\)\): a batch holds whole graphs"):
        GraphBatch.from_graphs([g, block])
    with pytest.raises(TypeError, match=r"^graphs\[0\] must be a Graph, got ndarray$"):
        GraphBatch.from_graphs([np.eye(2)])
    weighted = Graph.from_edge_index(g.edge_index(), 8, np.ones(g.num_edges))
    with pytest.raises(GraphError, match=r"^either every graph has edge weights or none has: graphs\[0\] is "
                                         r"unweighted but graphs\[2\] is weighted$"):
        GraphBatch.from_graphs([g, g, weighted])
    with pytest.raises(GraphError, match=r"^graph_ptr must start at 0 and end at the number of nodes 8, got 0 and 7$"):
        GraphBatch(g.indptr, g.indices, graph_ptr=[0, 3, 7])
    with pytest.raises(GraphError, match=r"^graph_ptr must be strictly increasing \(every graph has a node\), "
                                         r"got graph_ptr\[1\] = 3 >= graph_ptr\[2\] = 3$"):
        GraphBatch(g.indptr, g.indices, graph_ptr=[0, 3, 3, 8])
    with pytest.raises(GraphError, match=r"^graph_ptr must be a 1-D array of length B \+ 1 >= 2, got shape \(1,\)$"):
        GraphBatch(g.indptr, g.indices, graph_ptr=[0])
    with pytest.raises(GraphError, match="^graph_ptr must have an integer dtype, got float64$"):
        GraphBatch(g.indptr, g.indices, graph_ptr=[0.0, 8.0])
    # graph_ptr inconsistent with the edges: an edge would cross from one graph to another
    with pytest.raises(GraphError, match=r"joins graph \d to graph \d: a batch is block-diagonal"):
        GraphBatch(g.indptr, g.indices, graph_ptr=[0, 4, 8])
    with pytest.raises(GraphError, match=r"^a GraphBatch must be square, got shape \(6, 9\)$"):
        GraphBatch(block.indptr, block.indices, num_src=9)
    with pytest.raises(GraphError, match="^batch must be non-decreasing, start at 0 and use every graph id"):
        GraphBatch.from_pyg(g.edge_index(), [0, 0, 0, 2, 2, 2, 2, 2])
    with pytest.raises(GraphError, match=r"^edge_index_list and num_nodes_list must have the same length, got 2 and 1"):
        GraphBatch.from_edge_indices([g.edge_index(), g.edge_index()], [8])


def test_to_device_carries_graph_ptr_and_batch():
    b = GraphBatch.from_graphs(members())
    assert b.to("cpu") is b
    pytest.importorskip("numba.cuda")
    from gnn_scratch.kernels.cuda import require_cuda
    try:
        require_cuda()
    except RuntimeError as e:
        pytest.skip(f"no GPU and no simulator: {e}")
    d = b.to("cuda")
    assert isinstance(d, GraphBatch) and d.device == "cuda" and d.host is b and d.to("cpu") is b
    np.testing.assert_array_equal(d.graph_ptr, b.graph_ptr)
    np.testing.assert_array_equal(d.batch, b.batch)
    assert d.num_graphs == 3
    np.testing.assert_array_equal(d.graph(1).indices, b.graph(1).indices)   # rebuilt from the host twin


@pytest.mark.parametrize("weighted", [False, True])
def test_select_equals_batching_the_chosen_graphs(weighted):
    """select(ids) cuts the same batch as building one from the chosen members, repeats and order kept."""
    graphs = members(weighted)
    whole = GraphBatch.from_graphs(graphs)
    x = np.random.default_rng(0).standard_normal((whole.num_nodes, 3))
    for ids in ([2, 0], [1, 1, 2], [2], list(range(len(graphs)))[::-1], [-1, 0]):
        sub, nodes = whole.select(np.array(ids))
        ref = GraphBatch.from_graphs([graphs[i] for i in ids])
        assert np.array_equal(sub.indptr, ref.indptr) and np.array_equal(sub.indices, ref.indices)
        assert np.array_equal(sub.graph_ptr, ref.graph_ptr) and np.array_equal(sub.batch, ref.batch)
        if weighted:
            assert np.array_equal(sub.edge_weight, ref.edge_weight)
        assert np.array_equal(x[nodes], np.concatenate([whole.unbatch(x)[i] for i in ids]))


def test_select_refuses_bad_ids():
    whole = GraphBatch.from_graphs(members())
    B = whole.num_graphs
    with pytest.raises(IndexError, match=f"graph id {B} out of range for a batch of {B} graphs"):
        whole.select(np.array([0, B]))
    with pytest.raises(ValueError, match="non-empty 1-D integer array"):
        whole.select(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="non-empty 1-D integer array"):
        whole.select(np.array([0.5]))
