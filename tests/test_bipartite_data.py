"""The generated user-item graph of data.bipartite (issue 18)."""
import numpy as np
import pytest

from gnn_scratch.data.bipartite import generate_bipartite, sample_training_pairs


@pytest.fixture(scope="module")
def data():
    return generate_bipartite(num_items=2000, num_users=5000, num_communities=10, mean_interactions=15,
                              num_test_pairs=300, seed=4)


def test_same_seed_same_arrays_and_another_seed_differs(data):
    again = generate_bipartite(num_items=2000, num_users=5000, num_communities=10, mean_interactions=15,
                               num_test_pairs=300, seed=4)
    for f in ("user", "item", "x", "community", "test_pairs", "item_degree"):
        assert np.array_equal(getattr(data, f), getattr(again, f)), f
    other = generate_bipartite(num_items=2000, num_users=5000, num_communities=10, mean_interactions=15,
                               num_test_pairs=300, seed=5)
    assert not np.array_equal(data.item, other.item[:data.item.size]) or data.item.size != other.item.size


def test_graph_is_the_undirected_bipartite_training_graph(data):
    I, U = data.num_items, data.num_users
    g = data.graph
    assert g.shape == (I + U, I + U) and g.num_edges == 2 * data.num_interactions
    src, dst = g.edge_index()
    assert np.all((src < I) != (dst < I))                    # no item-item, no user-user edge
    assert np.array_equal(np.bincount(data.item, minlength=I), data.item_degree)
    keys = np.unique(data.user * I + data.item)
    assert keys.size == data.num_interactions                # no repeated interaction
    assert 0.5 * U * 15 < data.num_interactions < 1.1 * U * 15   # about U x mean, minus collapsed repeats


def test_held_out_pairs_are_not_training_interactions_of_their_user(data):
    q, p = data.test_pairs.T
    assert data.test_pairs.shape[0] > 250 and np.all(q != p)
    assert np.all(data.item_degree[p] > 0) and np.all(data.item_degree[q] > 0)
    # every held-out positive lost one interaction: the user's (u, p) pair -- find u as a user of q without p
    train = set((data.user * data.num_items + data.item).tolist())
    removed = 0
    for a, b in data.test_pairs[:50]:
        users_q = data.user[data.item == a]
        removed += any((u * data.num_items + b) not in train for u in users_q)
    assert removed == 50


def test_communities_are_planted_in_interactions_and_features(data):
    pairs = sample_training_pairs(data, 5000, seed=1)
    same = np.mean(data.community[pairs[:, 0]] == data.community[pairs[:, 1]])
    assert same > 0.3                                        # chance is ~1/10
    same_test = np.mean(data.community[data.test_pairs[:, 0]] == data.community[data.test_pairs[:, 1]])
    assert same_test > 0.3
    # features: the nearest community mean (signal columns) beats chance but is far from perfect
    x = data.x[:, :16]
    means = np.stack([x[data.community == c].mean(0) for c in range(10)])
    acc = np.mean(np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), 1) == data.community)
    assert 0.3 < acc < 0.999
    assert data.x.shape == (2000, 32) and data.x.dtype == np.float32
    ptr = data.user_ptr()
    u = np.searchsorted(ptr, np.arange(ptr[-1]), side="right") - 1
    assert np.array_equal(u, data.user)


@pytest.mark.parametrize("kwargs, match", [(dict(num_items=1), "num_items"), (dict(noise_rate=2.0), "noise_rate"),
                                           (dict(num_communities=50, num_items=10), "num_communities"),
                                           (dict(concentration=0.0), "concentration")])
def test_generator_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_bipartite(**{**dict(num_items=100, num_users=100, num_communities=5), **kwargs})


def test_a_million_interactions():
    """The generator at PinSage-benchmark scale (its speed is not asserted here: timings belong in benchmarks)."""
    d = generate_bipartite(num_items=20000, num_users=50000, num_test_pairs=100, seed=0)
    assert d.num_interactions > 800_000
