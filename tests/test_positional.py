"""Positional encodings (graph/positional.py): Laplacian eigenvectors against closed-form spectra, only
invariant quantities where eigenvalues repeat; RWPE against dense matrix powers and PyG."""
import numpy as np
import pytest

from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph import Graph, GraphBatch
from gnn_scratch.graph.positional import (laplacian_eigen, laplacian_pe, normalized_laplacian, num_trivial,
                                          random_sign_flip, random_walk_pe)


def undirected(pairs, n):
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return Graph.from_edge_index(np.concatenate([pairs.T, pairs.T[::-1]], axis=1), num_nodes=n)


def path(n):
    return undirected([(i, i + 1) for i in range(n - 1)], n)


def cycle(n):
    return undirected([(i, (i + 1) % n) for i in range(n)], n)


def complete(n):
    return undirected([(i, j) for i in range(n) for j in range(i + 1, n)], n)


def projector(V):
    return V @ V.T


# ------------------------------------------------------------------------------------------ Laplacian PE
@pytest.mark.parametrize("dense_threshold", [1000, 0])          # dense eigh, and scipy eigsh (shift-invert)
def test_path_spectrum_and_vectors_closed_form(dense_threshold):
    # Path P_n: eigenvalues of L_sym are 1 - cos(pi j / (n-1)), j = 0..n-1, all simple; the eigenvector of j
    # is D^1/2 cos(pi j i / (n-1)) (the random walk's eigenvector scaled by D^1/2), up to sign.
    n, k = 12, 5
    g = path(n)
    w, V = laplacian_eigen(g, k, dense_threshold=dense_threshold)
    j = np.arange(1, k + 1)
    np.testing.assert_allclose(w, 1 - np.cos(np.pi * j / (n - 1)), atol=1e-10)
    d = np.r_[1, np.full(n - 2, 2), 1].astype(float)
    for col, jj in enumerate(j):
        u = np.sqrt(d) * np.cos(np.pi * jj * np.arange(n) / (n - 1))
        u /= np.linalg.norm(u)
        assert abs(abs(u @ V[:, col]) - 1) < 1e-9                 # the same line; the sign is a convention
    np.testing.assert_allclose(V.T @ V, np.eye(k), atol=1e-10)


@pytest.mark.parametrize("dense_threshold", [1000, 0])
def test_cycle_pairs_only_the_eigenspace_projector_is_defined(dense_threshold):
    # Cycle C_n: eigenvalues 1 - cos(2 pi j / n) with j and n - j equal: multiplicity 2. k = 4 takes two whole
    # eigenspaces; the columns are any orthonormal basis of each, so compare projectors onto each eigenspace.
    n, k = 10, 4
    g = cycle(n)
    w, V = laplacian_eigen(g, k, dense_threshold=dense_threshold)
    np.testing.assert_allclose(w, 1 - np.cos(2 * np.pi * np.array([1, 1, 2, 2]) / n), atol=1e-10)
    x = np.arange(n)
    for pair, jj in ((slice(0, 2), 1), (slice(2, 4), 2)):
        B = np.stack([np.cos(2 * np.pi * jj * x / n), np.sin(2 * np.pi * jj * x / n)], axis=1)
        B /= np.linalg.norm(B, axis=0)
        np.testing.assert_allclose(projector(V[:, pair]), projector(B), atol=1e-9)


def test_complete_graph_repeated_eigenvalue_projector():
    # K_n: L_sym = (n I - 1 1^T) / (n-1): eigenvalue n/(n-1) with multiplicity n-1, eigenspace = 1-perp.
    n = 7
    w, V = laplacian_eigen(complete(n), n - 1)
    np.testing.assert_allclose(w, np.full(n - 1, n / (n - 1)), atol=1e-12)
    np.testing.assert_allclose(projector(V), np.eye(n) - np.ones((n, n)) / n, atol=1e-12)


def test_disconnected_graph_trivial_vectors_one_per_component():
    # two paths (4 and 5 nodes) and an isolated node: two components with edges -> null space of dim 2;
    # the isolated node has eigenvalue 1 (its row of L is the unit row), not 0.
    g = undirected([(0, 1), (1, 2), (2, 3), (4, 5), (5, 6), (6, 7), (7, 8)], 10)
    assert num_trivial(g) == 2
    L = normalized_laplacian(g).toarray()
    assert L[9, 9] == 1.0 and not L[9, :9].any()
    full = np.sort(np.linalg.eigvalsh(L))
    assert np.sum(np.abs(full) < 1e-10) == 2
    k = 5
    w, V = laplacian_eigen(g, k)                                   # "components": both null vectors dropped
    np.testing.assert_allclose(w, full[2:2 + k], atol=1e-10)
    assert np.all(w > 1e-6)
    w1, V1 = laplacian_eigen(g, k, trivial="first")                 # benchmarking-gnns: only the first dropped
    np.testing.assert_allclose(w1, full[1:1 + k], atol=1e-10)
    assert abs(w1[0]) < 1e-10 and np.linalg.norm(L @ V1[:, 0]) < 1e-10   # still a null vector
    # every eigenvector lives on one component here (distinct eigenvalues across the two paths)
    for col in range(k):
        on = np.abs(V[:, col]) > 1e-9
        assert on[:4].any() + on[4:9].any() + on[9:].any() == 1


def test_small_graph_padded_with_zeros():
    g = path(3)                                     # 3 nodes, 1 trivial -> only 2 vectors exist
    w, V = laplacian_eigen(g, 5)
    assert V.shape == (3, 5)
    np.testing.assert_allclose(w[:2], [1.0, 2.0], atol=1e-12)   # 1 - cos(pi/2), 1 - cos(pi)
    assert np.isnan(w[2:]).all() and not V[:, 2:].any()
    pe = laplacian_pe(g, 5)
    assert pe.dtype == np.float32 and pe.shape == (3, 5) and not pe[:, 2:].any()


def test_sign_convention_cache_and_read_only():
    g = random_test_graph(seed=3, num_nodes=9, num_edges=25)
    V = laplacian_eigen(g, 3)[1]
    first = np.argmax(np.abs(V) >= np.abs(V).max(axis=0) * (1 - 1e-8), axis=0)
    assert np.all(V[first, np.arange(3)] > 0)
    assert laplacian_eigen(g, 3)[1] is V                            # cached on the graph
    with pytest.raises(ValueError):
        V[0, 0] = 1.0                                              # read-only: a caller cannot spoil the cache
    # a directed graph is read as its undirected view (A + A^T) / 2
    ei = g.edge_index()
    both = Graph.from_edge_index(np.concatenate([ei, ei[::-1]], axis=1), num_nodes=g.num_nodes)
    np.testing.assert_allclose(projector(laplacian_eigen(both, 3)[1]), projector(V), atol=1e-9)


def test_laplacian_pe_of_a_batch_is_per_member():
    graphs = [path(6), cycle(8), complete(4)]
    batch = GraphBatch.from_graphs(graphs)
    pe = laplacian_pe(batch, 3, dtype=np.float64)
    for g, block in zip(graphs, batch.unbatch(pe)):
        np.testing.assert_array_equal(block, laplacian_pe(g, 3, dtype=np.float64))
    w = laplacian_eigen(batch, 3)[0]
    assert w.shape == (3, 3)
    rw = random_walk_pe(batch, 4)
    for g, block in zip(graphs, batch.unbatch(rw)):
        np.testing.assert_allclose(block, random_walk_pe(g, 4))


@pytest.mark.oracle
def test_laplacian_pe_spans_pygs():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Data
    from torch_geometric.transforms import AddLaplacianEigenvectorPE
    g = undirected([(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2), (3, 5), (5, 6)], 7)
    d = AddLaplacianEigenvectorPE(3, is_undirected=True)(Data(edge_index=torch.as_tensor(g.edge_index()),
                                                              num_nodes=7))
    theirs = d.laplacian_eigenvector_pe.double().numpy()
    ours = laplacian_eigen(g, 3, trivial="first")[1]
    for c in range(3):               # simple eigenvalues: each column up to sign; PyG's L is float32
        assert abs(abs(theirs[:, c] @ ours[:, c]) - 1) < 1e-6


# ------------------------------------------------------------------------------------------------- RWPE
def test_random_walk_pe_equals_dense_powers():
    g = random_test_graph(seed=1, num_nodes=9, num_edges=30)       # isolated node, self-loop, repeated edge
    A = np.zeros((9, 9))
    np.add.at(A, (g.dst_of_edge(), g.indices), 1.0)                # A[i, j] = edges j -> i
    out = A.sum(axis=0)
    RW = A / np.where(out > 0, out, 1)                             # A D^-1, zero column where no out-edge
    pe = random_walk_pe(g, 6, dtype=np.float64)
    for t in range(1, 7):
        np.testing.assert_allclose(pe[:, t - 1], np.diagonal(np.linalg.matrix_power(RW, t)), atol=1e-14)
    assert not pe[8].any()                                         # the isolated node never returns
    assert pe[0, 0] > 0                                            # node 0's self-loop: back in one step


def test_random_walk_pe_sparse_path_equals_dense(monkeypatch):
    import gnn_scratch.graph.positional as P
    g = random_test_graph(seed=2, num_nodes=12, num_edges=40)
    dense = P._rw_one(g, 5, False)
    monkeypatch.setattr(P, "RW_DENSE_THRESHOLD", 0)
    np.testing.assert_allclose(P._rw_one(g, 5, False), dense, atol=1e-14)


def test_random_walk_pe_closed_forms():
    # a cycle is bipartite for even n: odd returns are impossible; 2 steps: back with probability 1/2
    pe = random_walk_pe(cycle(8), 4, dtype=np.float64)
    np.testing.assert_allclose(pe, np.tile([0, 0.5, 0, 0.375], (8, 1)), atol=1e-15)


@pytest.mark.oracle
def test_random_walk_pe_equals_pygs():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Data
    from torch_geometric.transforms import AddRandomWalkPE
    rng = np.random.default_rng(5)
    ei = np.unique(rng.integers(0, 15, size=(2, 60)), axis=1)      # PyG's dense path assigns: no repeated edges
    g = Graph.from_edge_index(ei, num_nodes=16)
    d = AddRandomWalkPE(7)(Data(edge_index=torch.as_tensor(ei), num_nodes=16))
    np.testing.assert_allclose(random_walk_pe(g, 7, dtype=np.float64), d.random_walk_pe.double().numpy(), atol=1e-6)


# ------------------------------------------------------------------------------------------ sign flips
def test_random_sign_flip_per_graph_seeded():
    pe = np.arange(1, 25, dtype=np.float32).reshape(8, 3)
    gp = np.array([0, 3, 8])
    a = random_sign_flip(pe, np.random.default_rng(7), gp)
    b = random_sign_flip(pe, 7, gp)
    np.testing.assert_array_equal(a, b)                            # same seed, same signs
    s = a / pe
    assert set(np.unique(s)) <= {-1.0, 1.0}
    assert np.all(s[:3] == s[0]) and np.all(s[3:] == s[3])         # one sign per column per graph
    draws = np.stack([random_sign_flip(pe, r, gp)[[0, 3]] / pe[[0, 3]] for r in range(200)])
    assert 0.35 < np.mean(draws > 0) < 0.65                        # both signs occur, about evenly
    assert np.mean(draws[:, 0] != draws[:, 1]) > 0.3               # the graphs draw independently
    np.testing.assert_array_equal(pe, np.arange(1, 25, dtype=np.float32).reshape(8, 3))   # input untouched


def test_bad_input():
    g = path(5)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        laplacian_pe(g, 0)
    with pytest.raises(ValueError, match="trivial must be one of"):
        laplacian_pe(g, 2, trivial="none")
    with pytest.raises(TypeError, match="graph must be a gnn_scratch Graph"):
        random_walk_pe(np.eye(3), 2)
    with pytest.raises(ValueError, match="walk_length"):
        random_walk_pe(g, 0)
    with pytest.raises(ValueError, match="graph_ptr"):
        random_sign_flip(np.ones((4, 2)), 0, np.array([0, 3]))
    with pytest.raises(TypeError, match="rng"):
        random_sign_flip(np.ones((4, 2)), "seed")
