"""The CSR graph: construction from each input form, transpose, self-loops, GCN normalisation, bad input."""
import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch import ops
from gnn_scratch.graph import Graph, GraphError


def dense_adjacency(edge_index, N, w=None):
    """A[i, j] = total weight of edges j -> i, built edge by edge (so repeats add up)."""
    A = np.zeros((N, N))
    w = np.ones(edge_index.shape[1]) if w is None else w
    for (j, i), wk in zip(edge_index.T, w):
        A[i, j] += wk
    return A


EI = np.array([[0, 1, 2, 2, 3, 1, 1],
               [1, 0, 2, 1, 1, 0, 0]])  # self-loop 2->2, repeated edge 1->0, node 4 isolated


def test_csr_rows_are_destinations_and_keep_repeats():
    g = Graph.from_edge_index(EI, num_nodes=5)
    assert g.shape == (5, 5) and g.num_edges == 7
    np.testing.assert_array_equal(g.to_scipy().toarray(), dense_adjacency(EI, 5))
    np.testing.assert_array_equal(g.in_degree(), [3, 3, 1, 0, 0])
    np.testing.assert_array_equal(g.out_degree(), [1, 3, 2, 1, 0])
    # edge_id maps every CSR edge back to its column of edge_index
    np.testing.assert_array_equal(EI[0, g.edge_id], g.indices)
    np.testing.assert_array_equal(EI[1, g.edge_id], g.dst_of_edge())


def test_transpose_and_permutation():
    w = np.arange(1.0, 8.0)
    g = Graph.from_edge_index(EI, num_nodes=5, edge_weight=w)
    At = sp.csr_matrix((g.edge_weight[g.t_perm], g.t_indices, g.t_indptr), shape=(5, 5)).toarray()
    np.testing.assert_array_equal(At, dense_adjacency(EI, 5, w).T)
    assert g.t_indptr is g.t_indptr  # built once and cached


def test_from_scipy_and_from_csr_agree():
    A = sp.random(6, 6, density=0.4, random_state=0, format="csr")
    g1, g2 = Graph.from_scipy(A), Graph.from_csr(A.indptr, A.indices, A.data)
    np.testing.assert_array_equal(g1.to_scipy().toarray(), A.toarray())
    np.testing.assert_array_equal(g2.to_scipy().toarray(), A.toarray())


def test_with_self_loops_follows_pyg_add_remaining_self_loops():
    w = np.array([1., 2., 3., 4., 5., 6., 7.])
    g = Graph.from_edge_index(EI, num_nodes=5, edge_weight=w).with_self_loops(fill_value=0.5)
    A = g.to_scipy().toarray()
    # every node has exactly one loop; node 2 keeps its own loop weight 3, the others get 0.5
    np.testing.assert_array_equal(np.diag(A), [0.5, 0.5, 3.0, 0.5, 0.5])
    assert np.sum(g.indices == g.dst_of_edge()) == 5
    off = A - np.diag(np.diag(A))
    np.testing.assert_array_equal(off, dense_adjacency(EI, 5, w) - np.diag(np.diag(dense_adjacency(EI, 5, w))))


def test_with_self_loops_of_an_unweighted_graph_keeps_its_meaning():
    """Unweighted = weight-1 edges: a fill of 1 leaves it unweighted, another fill weights the new loops only
    (a fill was silently dropped before); a fill that is not a finite real is refused."""
    g = Graph.from_edge_index(EI, num_nodes=5)
    assert g.with_self_loops().edge_weight is None
    A = g.with_self_loops(fill_value=2.0).to_scipy().toarray()
    expected = dense_adjacency(EI, 5)
    np.fill_diagonal(expected, 2.0)
    expected[2, 2] = 1.0                                   # node 2's own loop keeps weight 1
    np.testing.assert_array_equal(A, expected)
    for bad, error in ((float("nan"), ValueError), (np.inf, ValueError), ("a", TypeError), (True, TypeError)):
        with pytest.raises(error, match="fill_value must be a finite real number"):
            g.with_self_loops(fill_value=bad)


def test_gcn_norm_matches_dense_formula():
    g = Graph.from_edge_index(EI, num_nodes=5)
    gh, val = ops.gcn_norm(g, np.float64)
    A = dense_adjacency(EI, 5)
    np.fill_diagonal(A, 1.0)  # existing loop replaced by one loop of weight 1, as PyG does
    d = A.sum(axis=1)
    expected = A / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    np.testing.assert_allclose(gh.to_scipy(val).toarray(), expected, rtol=1e-12)
    assert ops.gcn_norm(g, np.float64)[1] is val  # cached on the graph


@pytest.mark.parametrize("edge_index, kwargs, message", [
    (np.array([[0, -1], [1, 0]]), {}, "negative node id"),
    (np.array([[0, 5], [1, 0]]), {"num_nodes": 3}, "out of range"),
    (np.array([[0, 1, 2]]), {}, "shape \\(2, E\\)"),
    (np.array([[0.5, 1.0], [1.0, 0.0]]), {}, "integer"),
    (np.array([[0, 1], [1, 0]]), {"edge_weight": np.array([1.0, np.nan])}, "finite"),
    (np.array([[0, 1], [1, 0]]), {"edge_weight": np.array([1.0])}, "shape \\(2,\\)"),
    (np.array([[0, 1], [1, 0]]), {"edge_weight": np.array([1, 2])}, "float"),
    (np.zeros((2, 0), dtype=np.int64), {}, "empty"),
])
def test_bad_edge_index_is_refused_with_a_clear_message(edge_index, kwargs, message):
    with pytest.raises(GraphError, match=message):
        Graph.from_edge_index(edge_index, **kwargs)


def test_bad_csr_is_refused():
    with pytest.raises(GraphError, match="non-decreasing"):
        Graph.from_csr([0, 2, 1], [0, 1])
    with pytest.raises(GraphError, match="indptr\\[-1\\]"):
        Graph.from_csr([0, 1, 3], [0, 1])
    with pytest.raises(GraphError, match="out of range"):
        Graph.from_csr([0, 1, 2], [0, 7])
    with pytest.raises(GraphError, match="scipy.sparse"):
        Graph.from_scipy(np.eye(3))


def test_isolated_nodes_only_is_a_valid_graph():
    g = Graph.from_edge_index(np.zeros((2, 0), dtype=np.int64), num_nodes=3)
    assert g.num_edges == 0 and g.with_self_loops().num_edges == 3


@pytest.mark.parametrize("X, message", [
    (np.zeros((4, 2), np.float32), "shape \\(5, F\\)"),
    (np.zeros((5, 2), np.int64), "float32 or float64"),
    (np.full((5, 2), np.inf, np.float32), "finite"),
])
def test_bad_features_are_refused(X, message):
    g = Graph.from_edge_index(EI, num_nodes=5)
    with pytest.raises((ValueError, TypeError), match=message):
        g.check_features(X)


def test_a_graph_owns_read_only_arrays_so_its_caches_cannot_go_stale():
    """The caller's arrays are copied and the graph's are frozen: a cached normalisation stays true."""
    import scipy.sparse as sp
    indptr, indices, w = np.array([0, 1, 2]), np.array([1, 0]), np.array([2.0, 3.0])
    g = Graph.from_csr(indptr, indices, w)
    before = ops.gcn_norm(g, np.float64)[1].copy()
    w[:] = 100.0                                   # the caller changes its own array: not the graph's
    np.testing.assert_array_equal(ops.gcn_norm(g, np.float64)[1], before)
    for a in (g.indptr, g.indices, g.edge_weight, g.edge_id):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = a[0]
    A = sp.csr_matrix((np.array([1.0, 2.0]), np.array([1, 0]), np.array([0, 1, 2])), shape=(2, 2))
    A.has_sorted_indices = False
    Graph.from_scipy(A)
    assert A.indices.flags.writeable and A.indices.tolist() == [1, 0]      # the caller's matrix untouched
