"""Over-squashing analysis: Jacobian norms from the library's own backward, hop distances, Tree-NeighborsMatch."""
import numpy as np
import pytest

from gnn_scratch.analysis.oversquashing import (NeighborsMatchNet, has_gin, hop_distances, sensitivity, sensitivity_by_hop,
                                                train_neighbors_match)
from gnn_scratch.data.neighbors_match import (fully_adjacent_to_roots, leaf_nodes, tree_edge_index,
                                              tree_neighbors_match)
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph.csr import Graph
from gnn_scratch.nn import GATConv, GCNConv, GraphConv, LeakyReLU, ReLU, Sequential

F64 = np.float64


def fd_jacobian_norms(model, x, graph, targets, eps=1e-6):
    """||dh_i/dx_j||_F by central differences of the forward alone (eval mode), (T, N)."""
    model.eval()
    N, F_in = x.shape
    J = np.zeros((len(targets), N, model.forward(x, graph).shape[1], F_in))
    for j in range(N):
        for b in range(F_in):
            xp, xm = x.copy(), x.copy()
            xp[j, b] += eps
            xm[j, b] -= eps
            diff = (model.forward(xp, graph) - model.forward(xm, graph)) / (2 * eps)
            J[:, j, :, b] = diff[targets]
    return np.sqrt((J ** 2).sum(axis=(2, 3)))


def path_graph(n, undirected=True):
    src = np.arange(n - 1)
    ei = np.stack([src, src + 1])
    if undirected:
        ei = np.concatenate([ei, ei[::-1]], axis=1)
    return Graph.from_edge_index(ei, num_nodes=n)


def three_layer_model(seed=0):
    return Sequential(c1=GCNConv(3, 5, seed=seed, dtype=F64), a1=ReLU(),
                      c2=GATConv(5, 3, heads=2, seed=seed + 1, dtype=F64), a2=LeakyReLU(0.1),
                      c3=GraphConv(6, 4, aggr="mean", seed=seed + 2, dtype=F64))


# ---------------------------------------------------------------------------- sensitivity = the true Jacobian
@pytest.mark.parametrize("seed", [0, 1])
def test_sensitivity_equals_finite_differences(seed):
    g = random_test_graph(seed=seed, num_nodes=9, num_edges=18)
    x = np.random.default_rng(seed).normal(size=(9, 3))
    model = three_layer_model(seed)
    targets = np.array([0, 2, 5])
    S = sensitivity(model, x, g, targets)
    J = fd_jacobian_norms(model, x, g, targets)
    assert S.shape == (3, 9)
    assert np.max(np.abs(S - J)) <= 1e-7 * max(1.0, np.max(J))
    assert np.count_nonzero(J) > 5           # the check compares something


@pytest.mark.parametrize("conv, fa", [("gat", True), ("gcn", True), ("graphconv", False), ("gin", True)])
def test_sensitivity_neighbors_match_net_equals_finite_differences(conv, fa):
    if conv == "gin" and not has_gin():
        pytest.skip("GINConv is not in this library yet")
    data = tree_neighbors_match(2, 2, seed=3, dtype=F64)
    x = data.x + np.random.default_rng(0).normal(scale=0.1, size=data.x.shape)   # off the one-hot corners
    model = NeighborsMatchNet(x.shape[1], data.num_classes, 3, conv=conv, hidden_channels=8,
                              fully_adjacent=fa, seed=1, dtype=F64)
    targets = np.flatnonzero(data.root_mask)
    S = sensitivity(model, x, data.graph, targets)
    J = fd_jacobian_norms(model, x, data.graph, targets)
    assert np.max(np.abs(S - J)) <= 1e-7 * max(1.0, np.max(J))
    # the two trees do not talk to each other: a root feels nothing of the other tree
    n = data.num_nodes_per_tree
    assert np.all(S[0, n:] == 0) and np.all(S[1, :n] == 0) and np.all(S[0, :n] > 0)


def test_sensitivity_leaves_grads_flags_and_modes_untouched():
    g = random_test_graph(seed=4, num_nodes=7)
    x = np.random.default_rng(1).normal(size=(7, 3))
    model = three_layer_model(4)
    for _, _, grad in model.named_parameters():
        grad[...] = np.random.default_rng(2).normal(size=grad.shape)
    before = {name: grad.copy() for name, _, grad in model.named_parameters()}
    model.c1.needs_input_grad = False                  # as the trainer leaves a first layer
    model.train()
    S = sensitivity(model, x, g, [1, 3])
    for name, _, grad in model.named_parameters():
        np.testing.assert_array_equal(grad, before[name])
    assert model.c1.needs_input_grad is False and "needs_input_grad" not in vars(model.c3)
    assert all(m.training for _, m in model.modules())
    np.testing.assert_allclose(S, fd_jacobian_norms(model, x, g, [1, 3]), rtol=1e-6, atol=1e-9)


def test_sensitivity_rejects_bad_targets():
    g = path_graph(4)
    model = Sequential(c=GCNConv(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="targets"):
        sensitivity(model, np.ones((4, 2)), g, [4])
    with pytest.raises(ValueError, match="targets"):
        sensitivity(model, np.ones((4, 2)), g, [0.5])


@pytest.mark.parametrize("L", [1, 2, 3])
def test_zero_sensitivity_beyond_L_hops(L):
    g = random_test_graph(seed=L, num_nodes=12, num_edges=14)       # directed, sparse: many distances > L
    x = np.random.default_rng(L).normal(size=(12, 3))
    # linear GCN stack: the block is (A_hat^L)_ij W_1 ... W_L, nonzero exactly within L hops
    layers = {f"c{k}": GCNConv(3, 3, seed=k, dtype=F64) for k in range(L)}
    targets = np.arange(12)
    S = sensitivity(Sequential(**layers), x, g, targets)
    D = hop_distances(g, targets)
    assert np.any(D > L) and np.any(D <= L)
    assert np.all(S[D > L] == 0.0)
    assert np.all(S[D <= L] > 0.0)


# ---------------------------------------------------------------------------- hop distances
def test_hop_distances_on_paths():
    D = hop_distances(path_graph(6), [0, 3])
    np.testing.assert_array_equal(D, np.abs(np.arange(6)[None, :] - np.array([[0], [3]])))
    # directed 0 -> 1 -> ... -> 5: x_j reaches node 3 after 3 - j layers, never from downstream
    D = hop_distances(path_graph(6, undirected=False), [3])
    np.testing.assert_array_equal(D[0], [3, 2, 1, 0, np.inf, np.inf])


def test_sensitivity_by_hop_means():
    S = np.array([[4.0, 2.0, 2.0, 9.0], [1.0, 3.0, 0.0, 0.0]])
    D = np.array([[0, 1, 1, np.inf], [1, 0, 2, 2]])
    hops, mean, count = sensitivity_by_hop(S, D)
    np.testing.assert_array_equal(hops, [0, 1, 2])
    np.testing.assert_array_equal(count, [2, 3, 2])
    np.testing.assert_allclose(mean, [3.5, 5.0 / 3, 0.0])
    _, mean_n, _ = sensitivity_by_hop(S, D, normalize=True)
    np.testing.assert_allclose(mean_n, [(4 / 17 + 3 / 4) / 2, (2 / 17 + 2 / 17 + 1 / 4) / 3, 0.0])


# ---------------------------------------------------------------------------- Tree-NeighborsMatch
@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_neighbors_match_trees(r):
    B, C, n = 7, 2 ** r, 2 ** (r + 1) - 1
    d = tree_neighbors_match(r, B, seed=11)
    assert d.num_nodes_per_tree == n and d.num_classes == C
    assert d.graph.num_graphs == B and d.graph.num_nodes == B * n and d.graph.num_edges == B * (n - 1)
    np.testing.assert_array_equal(np.diff(d.graph.graph_ptr), n)
    assert d.x.shape == (B * n, 2 * C + 2) and d.x.dtype == np.float32
    assert np.all(d.x.sum(axis=1) == 2)                        # one key slot and one label slot per node
    for k in range(B):
        np.testing.assert_array_equal(np.sort(d.keys[k]), np.arange(C))
        np.testing.assert_array_equal(np.sort(d.labels[k]), np.arange(C))
    # decode the features back: the root's answer is the label of the leaf holding the query key
    X = d.x.reshape(B, n, -1)
    leaves = leaf_nodes(r)
    for k in range(B):
        q = np.argmax(X[k, 0, :C + 1]) - 1
        assert q == d.query[k] and X[k, 0, C + 1] == 1         # the root: a key, no label
        leaf_keys = np.argmax(X[k, leaves, :C + 1], axis=1) - 1
        leaf_labels = np.argmax(X[k, leaves, C + 1:], axis=1) - 1
        np.testing.assert_array_equal(leaf_keys, d.keys[k])
        np.testing.assert_array_equal(leaf_labels, d.labels[k])
        assert d.y[k * n] == leaf_labels[leaf_keys == q][0]
        inner = np.setdiff1d(np.arange(1, n), leaves)
        assert np.all(X[k, inner, 0] == 1) and np.all(X[k, inner, C + 1] == 1)
    assert np.all(d.y[~d.root_mask] == -1) and d.root_mask.sum() == B and np.all(d.root_mask[::n])
    # child -> parent edges: every non-root node has exactly one out-edge, to its parent; depth r from the root
    g0 = d.graph.graph(0)
    np.testing.assert_array_equal(np.sort(g0.edge_index()[0]), np.arange(1, n))
    np.testing.assert_array_equal(tree_edge_index(r)[1], (np.arange(1, n) - 1) // 2)
    D = hop_distances(g0, [0])[0]
    np.testing.assert_array_equal(D[leaves], r)


def test_neighbors_match_is_deterministic_and_seeded():
    a, b, c = (tree_neighbors_match(3, 20, seed=s) for s in (5, 5, 6))
    for f in ("x", "y", "keys", "labels", "query"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.keys, c.keys)
    # many trees: the answers cover the classes (not a constant)
    assert len(np.unique(tree_neighbors_match(2, 200, seed=0).answer)) == 4


@pytest.mark.parametrize("r", [0, -1, 13, 2.5, True, "3"])
def test_neighbors_match_bad_depth(r):
    with pytest.raises(ValueError, match="depth"):
        tree_neighbors_match(r, 4)


def test_neighbors_match_bad_num_trees():
    with pytest.raises(ValueError, match="num_trees"):
        tree_neighbors_match(2, 0)


def test_fully_adjacent_edges():
    d = tree_neighbors_match(2, 3, seed=0)
    fa = fully_adjacent_to_roots(d.graph)
    n, N = d.num_nodes_per_tree, d.graph.num_nodes
    np.testing.assert_array_equal(fa.graph_ptr, d.graph.graph_ptr)
    got = {tuple(e) for e in fa.edge_index().T}
    want = {(j, (j // n) * n) for j in range(N) if j % n}
    assert got == want and fa.num_edges == len(want)
    assert fully_adjacent_to_roots(d.graph) is fa                  # cached on the batch
    # one layer on the FA graph brings every leaf to the root
    D = hop_distances(fa, [0])[0]
    np.testing.assert_array_equal(D[:n], [0] + [1] * (n - 1))
    with pytest.raises(TypeError, match="GraphBatch"):
        fully_adjacent_to_roots(d.graph.graph(0))


def test_neighbors_match_training_fits_depth_2():
    res = train_neighbors_match(2, conv="gcn", num_trees=400, epochs=150, batch_size=64, lr=3e-3,
                                eval_every=5, seed=0, target_accuracy=0.98)
    assert res["train_acc"] >= 0.95
    assert res["curve"][0][1] < 0.9                                 # it learned, it did not start there
