"""PATTERN / CLUSTER generators (data/sbm.py): SBM statistics, determinism, the disk cache and its key,
mini-batches with positional encodings, and benchmarking-gnns' weighted accuracy."""

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

import gnn_scratch.data.sbm as S
from gnn_scratch.data.sbm import cache_key, load_sbm, make_batch, sbm_params, split_sizes, weighted_accuracy
from gnn_scratch.graph.positional import laplacian_pe, random_walk_pe


def dense(m):
    A = m.graph.to_scipy().toarray()
    assert np.array_equal(A, A.T) and not np.diagonal(A).any() and A.max() <= 1   # undirected, simple
    return A


def densities(graphs, block):
    """(edges / pairs) within and across the node groups ``block(m)`` (n,), pooled over ``graphs``."""
    e_in = p_in = e_out = p_out = 0
    for m in graphs:
        A, b = dense(m), block(m)
        same = b[:, None] == b[None, :]
        iu = np.triu_indices(m.num_nodes, 1)
        e_in += A[iu][same[iu]].sum()
        p_in += same[iu].sum()
        e_out += A[iu][~same[iu]].sum()
        p_out += (~same[iu]).sum()
    return e_in / p_in, e_out / p_out


@pytest.fixture(scope="module")
def cluster():
    return load_sbm("cluster", "small", seed=0, cache=False)


@pytest.fixture(scope="module")
def pattern():
    return load_sbm("pattern", "small", seed=0, cache=False)


# ------------------------------------------------------------------------------------------------ CLUSTER
def test_cluster_statistics(cluster):
    assert (len(cluster.train), len(cluster.val), len(cluster.test)) == (200, 20, 20)
    assert cluster.num_classes == 6 and cluster.num_features == 7
    graphs = cluster.train
    for m in graphs:
        sizes = np.bincount(m.y, minlength=6)
        assert sizes.size == 6 and np.all((sizes >= 5) & (sizes <= 34))           # randint(5, 35)
        labelled = np.flatnonzero(m.tags)
        assert labelled.size == 6                                                # one labelled node per community
        np.testing.assert_array_equal(np.sort(m.tags[labelled] - 1), np.arange(6))
        np.testing.assert_array_equal(m.tags[labelled] - 1, m.y[labelled])      # tag = community + 1
        np.testing.assert_array_equal(m.x.argmax(1), m.tags)
    p_hat, q_hat = densities(graphs, lambda m: m.y)
    assert abs(p_hat - 0.55) < 0.01 and abs(q_hat - 0.25) < 0.01               # ~250k / ~1.1M pairs
    freq = np.bincount(np.concatenate([m.y for m in graphs]), minlength=6) / sum(m.num_nodes for m in graphs)
    assert np.all(np.abs(freq - 1 / 6) < 0.02)                                  # balanced classes
    n = np.array([m.num_nodes for m in graphs])
    assert 110 < n.mean() < 125                                                 # 6 x 19.5 = 117


# ------------------------------------------------------------------------------------------------ PATTERN
def test_pattern_statistics(pattern):
    assert (len(pattern.train), len(pattern.val), len(pattern.test)) == (200, 40, 40)
    assert pattern.num_classes == 2 and pattern.num_features == 3
    graphs = pattern.train
    for m in graphs:
        m_p = int(m.y.sum())
        assert 5 <= m_p <= 34 and 25 <= m.num_nodes - m_p <= 170                 # pattern; 5 communities
        assert set(np.unique(m.tags)) <= {0, 1, 2}
    _, q_p = densities(graphs, lambda m: m.y)                                   # pattern <-> rest pairs
    assert abs(q_p - 0.5) < 0.01
    frac = np.mean(np.concatenate([m.y for m in graphs]))
    assert 0.08 < frac < 0.3                                                    # ~20 of ~118 nodes
    # graph i uses pattern instance i mod 100: graphs 0 and 100 plant the same pattern (its tags and edges)
    for a, b in ((graphs[0], graphs[100]), (graphs[7], graphs[107])):
        pa, pb = np.flatnonzero(a.y), np.flatnonzero(b.y)
        assert pa.size == pb.size
        assert np.array_equal(np.sort(a.tags[pa]), np.sort(b.tags[pb]))
        assert dense(a)[np.ix_(pa, pa)].sum() == dense(b)[np.ix_(pb, pb)].sum()


def test_pattern_blocks_with_extreme_probabilities():
    # p = 1, q = 0, q_P = 0: the rest is 5 disjoint cliques (the communities) and the pattern touches nothing else
    ds = load_sbm("pattern", 20, cache=False, p=1.0, q=0.0, q_pattern=0.0)
    for m in ds.train:
        A = dense(m)
        rest = np.flatnonzero(m.y == 0)
        assert not A[np.ix_(rest, np.flatnonzero(m.y == 1))].any()
        k, comp = connected_components(A[np.ix_(rest, rest)], directed=False)
        assert k == 5
        sizes = np.bincount(comp)
        assert np.all((sizes >= 5) & (sizes <= 34))
        assert A[np.ix_(rest, rest)].sum() == sum(s * (s - 1) for s in sizes)   # each a clique
    # p = q: one density everywhere in the block-model part
    ds = load_sbm("pattern", 100, cache=False, p=0.3, q=0.3)
    rest_density, _ = densities(ds.train, lambda m: np.where(m.y == 1, np.arange(m.num_nodes) + 1, 0))
    assert abs(rest_density - 0.3) < 0.01


def test_fixed_pattern_size_of_the_paper():
    ds = load_sbm("pattern", 10, cache=False, pattern_size=20)
    assert all(int(m.y.sum()) == 20 for m in ds.train)


# ------------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("name", ["pattern", "cluster"])
def test_seeded_and_prefix_stable(name):
    a = load_sbm(name, 30, seed=4, cache=False)
    b = load_sbm(name, 30, seed=4, cache=False)
    c = load_sbm(name, 30, seed=5, cache=False)
    small = load_sbm(name, 10, seed=4, cache=False)
    same = lambda x, y: (np.array_equal(x.graph.indptr, y.graph.indptr) and np.array_equal(x.graph.indices, y.graph.indices)
                         and np.array_equal(x.tags, y.tags) and np.array_equal(x.y, y.y))
    assert all(same(x, y) for x, y in zip(a.train + a.val + a.test, b.train + b.val + b.test))
    assert not all(same(x, y) for x, y in zip(a.train, c.train))
    assert all(same(x, y) for x, y in zip(small.train, a.train[:10]))          # a graph does not depend on the count
    assert all(same(x, y) for x, y in zip(small.val, a.val))


def test_small_size_builds_200_training_graphs():
    ds = load_sbm("pattern", "small", seed=11, cache=False)
    assert len(ds.train) == 200


# -------------------------------------------------------------------------------------------- the cache
def test_cache_key_changes_with_every_input(monkeypatch):
    base = sbm_params("pattern")
    sizes = split_sizes("pattern", "small")
    k0 = cache_key("pattern", base, sizes, 0)
    assert k0 == cache_key("pattern", sbm_params("pattern"), sizes, 0)         # a pure function of its inputs
    changed = {k0}
    for key, value in dict(p=0.45, q=0.3, p_pattern=0.4, q_pattern=0.55, vocab_size=4, num_patterns=50,
                           pattern_size=20, num_communities=4, community_size=(5, 36)).items():
        changed.add(cache_key("pattern", sbm_params("pattern", **{key: value}), sizes, 0))
    changed.add(cache_key("pattern", base, split_sizes("pattern", "full"), 0))
    changed.add(cache_key("pattern", base, sizes, 1))
    changed.add(cache_key("cluster", sbm_params("cluster"), split_sizes("cluster", "small"), 0))
    monkeypatch.setattr(S, "GENERATOR_VERSION", S.GENERATOR_VERSION + 1)
    changed.add(cache_key("pattern", base, sizes, 0))
    assert len(changed) == 14                                                   # every change, another key


def test_cache_round_trip_and_repair(tmp_path):
    a = load_sbm("cluster", 12, seed=2, root=tmp_path)
    assert "generated_s" in a.meta
    files = list(tmp_path.glob("cluster-*.npz"))
    assert [f.name for f in files] == [f"cluster-{a.key}.npz"]
    b = load_sbm("cluster", 12, seed=2, root=tmp_path)
    assert "loaded_s" in b.meta
    for x, y in zip(a.train + a.val + a.test, b.train + b.val + b.test):
        assert np.array_equal(x.graph.to_scipy().toarray(), y.graph.to_scipy().toarray())
        assert np.array_equal(x.tags, y.tags) and np.array_equal(x.y, y.y)
    load_sbm("cluster", 12, seed=2, root=tmp_path, p=0.6)                      # another parameter: another file
    assert len(list(tmp_path.glob("cluster-*.npz"))) == 2
    files[0].write_bytes(b"not a zip file")                                     # a damaged cache is regenerated
    c = load_sbm("cluster", 12, seed=2, root=tmp_path)
    assert "generated_s" in c.meta and np.array_equal(c.train[3].tags, a.train[3].tags)


# ------------------------------------------------------------------------------------------- mini-batches
def test_make_batch_concatenates_members_and_their_pes(cluster):
    members = cluster.train[:4]
    b = make_batch(members, lap_pe=3, rw_pe=5)
    assert b.graph.num_graphs == 4 and b.x.shape == (b.graph.num_nodes, 7) and b.x.dtype == np.float32
    np.testing.assert_array_equal(b.y, np.concatenate([m.y for m in members]))
    for m, x, lap, rw in zip(members, b.graph.unbatch(b.x), b.graph.unbatch(b.lap_pe), b.graph.unbatch(b.rw_pe)):
        np.testing.assert_array_equal(x, m.x)
        np.testing.assert_array_equal(lap, laplacian_pe(m.graph, 3))
        np.testing.assert_array_equal(rw, random_walk_pe(m.graph, 5))
    flipped = make_batch(members, lap_pe=3, rng=np.random.default_rng(1)).lap_pe
    ratio = [np.sign(f[0] / l[0]) for f, l in zip(b.graph.unbatch(flipped), b.graph.unbatch(b.lap_pe))]
    for f, l, s in zip(b.graph.unbatch(flipped), b.graph.unbatch(b.lap_pe), ratio):
        np.testing.assert_array_equal(f, l * s)                                  # one sign per column per graph
    again = cluster.batch("train", [0, 1, 2, 3], lap_pe=3, rng=np.random.default_rng(1)).lap_pe
    np.testing.assert_array_equal(again, flipped)
    with pytest.raises(ValueError, match="empty"):
        make_batch([])


# --------------------------------------------------------------------------------------- weighted accuracy
def accuracy_sbm_transcribed(scores, targets):
    """benchmarking-gnns train/metrics.py accuracy_SBM, line for line (sklearn's confusion_matrix written out)."""
    S_, C = targets, np.argmax(scores, axis=1)
    labels = np.unique(np.concatenate([S_, C]))
    CM = np.zeros((labels.size, labels.size))
    for s, c in zip(S_, C):
        CM[np.searchsorted(labels, s), np.searchsorted(labels, c)] += 1
    nb_classes = CM.shape[0]
    pr_classes = np.zeros(nb_classes)
    for r in range(nb_classes):
        cluster = np.where(targets == r)[0]
        pr_classes[r] = CM[r, r] / float(cluster.shape[0]) if cluster.shape[0] != 0 else 0.0
    return 100. * np.sum(pr_classes) / float(nb_classes)


def test_weighted_accuracy_hand_cases():
    assert weighted_accuracy([0, 1, 2, 1], [0, 1, 2, 1]) == 1.0
    assert weighted_accuracy([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx((2 / 3 + 1) / 2)   # not 3/4
    assert weighted_accuracy([1, 1, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.5)               # plain accuracy: 1/4
    assert weighted_accuracy([0, 1], [0, 0]) == pytest.approx(0.25)            # class 1 predicted, absent: scores 0
    assert weighted_accuracy([0, 0, 2], [0, 0, 2]) == pytest.approx(0.5)       # their quirk: labels {0, 2}
    scores = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]])                   # tie -> first class
    assert weighted_accuracy(scores, [0, 1, 0]) == 1.0


def test_weighted_accuracy_equals_benchmarking_gnns_and_balanced_accuracy():
    rng = np.random.default_rng(0)
    for trial in range(50):
        C = int(rng.integers(2, 7))
        y = rng.integers(0, C, size=int(rng.integers(1, 60)))
        scores = rng.standard_normal((y.size, C))
        ours = weighted_accuracy(scores, y, C)
        assert ours == pytest.approx(accuracy_sbm_transcribed(scores, y) / 100, abs=1e-12)
        pred = scores.argmax(1)
        if np.array_equal(np.unique(np.r_[y, pred]), np.arange(C)) and np.all(np.bincount(y, minlength=C) > 0):
            balanced = np.mean([np.mean(pred[y == c] == c) for c in range(C)])
            assert ours == pytest.approx(balanced, abs=1e-12)


def test_weighted_accuracy_bad_input():
    with pytest.raises(ValueError, match="shape"):
        weighted_accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match=r"y must lie in \[0, 2\)"):
        weighted_accuracy([0, 1], [0, 2], num_classes=2)
    with pytest.raises(ValueError, match="empty"):
        weighted_accuracy([], [])
    with pytest.raises(ValueError, match="unknown pattern parameter"):
        sbm_params("pattern", r=0.5)
    with pytest.raises(ValueError, match="name must be one of"):
        load_sbm("zinc")
    with pytest.raises(ValueError, match="size must be"):
        split_sizes("cluster", "tiny")
