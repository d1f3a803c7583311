"""metapath2vec / metapath2vec++ (gnn_scratch.embed.metapath_walks, gnn_scratch.embed.metapath2vec; issue 14)."""
import re
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.stats

from gnn_scratch.embed import negative_table, train_sgns
from gnn_scratch.embed.metapath2vec import (HeteroSkipGramLoss, MetaPath2Vec, TypedNoise, TypeSoftmaxLoss,
                                            metapath2vec, noise_weights, train_metapath2vecpp,
                                            train_metapath2vecpp_reference)
from gnn_scratch.embed.metapath_walks import (check_metapath, dead_starts, metapath_transition, metapath_walks,
                                              resolve_metapath, typed_csr)
from gnn_scratch.embed.walks import walk_lengths
from gnn_scratch.gradcheck.metapath2vec import hetero_test_graph
from gnn_scratch.graph import Graph

P_MIN = 1e-4
DERIVATION = Path(__file__).resolve().parents[1] / "derivations" / "metapath2vec.md"


def academic(seed=0, n_a=12, n_p=20, n_c=3, n_t=6, weighted=False, dead_author=True):
    """(graph, node_type): authors 0 (type 0), papers (1), conferences (2), terms (3); paper--other edges in
    both directions, one repeated paper-author edge; with dead_author the last author has no paper."""
    rng = np.random.default_rng(seed)
    off_p, off_c, off_t = n_a, n_a + n_p, n_a + n_p + n_c
    last = n_a - 1 if dead_author else n_a
    pa = [(off_p + p, a) for p in range(n_p) for a in rng.choice(last, 2, replace=False)]
    pa.append(pa[0])                                                 # a repeated edge
    pc = [(off_p + p, off_c + rng.integers(n_c)) for p in range(n_p)]
    pt = [(off_p + p, off_t + t) for p in range(n_p) for t in rng.choice(n_t, 2, replace=False)]
    e = np.array(pa + pc + pt).T
    ei = np.concatenate([e, e[::-1]], axis=1)
    N = off_t + n_t
    w = rng.uniform(0.5, 3.0, ei.shape[1] // 2) if weighted else None
    g = Graph.from_edge_index(ei, num_nodes=N, edge_weight=None if w is None else np.concatenate([w, w]))
    node_type = np.repeat([0, 1, 2, 3], [n_a, n_p, n_c, n_t])
    return g, node_type


def edge_set(graph):
    ei = graph.edge_index()
    return set(zip(ei[0].tolist(), ei[1].tolist()))


def chi2_pvalue(counts, probs):
    counts, probs = np.asarray(counts, float), np.asarray(probs, float)
    assert np.all(counts[probs == 0] == 0)
    k = probs > 0
    if k.sum() < 2:
        return 1.0
    return scipy.stats.chisquare(counts[k], counts.sum() * probs[k]).pvalue


# ------------------------------------------------------------------ walks
@pytest.mark.parametrize("weighted", [False, True])
def test_every_step_follows_the_metapath_along_an_edge_and_walks_stop_only_when_stuck(weighted):
    g, nt = academic(weighted=weighted)
    paths = [(0, 1, 0), (0, 1, 2, 1, 0), (0, 1, 3, 1, 0)]
    walks = metapath_walks(g, nt, paths, walk_length=11, num_walks=3, seed=2)
    S = int((nt == 0).sum())
    assert walks.shape == (3 * 3 * S, 11) and walks.dtype == np.int32
    edges, adj = edge_set(g), typed_csr(g, nt)
    lengths = walk_lengths(walks)
    for k, (w, n) in enumerate(zip(walks, lengths)):
        path = paths[(k // S) % 3]                       # round r holds one block of S walks per metapath
        period = len(path) - 1
        assert np.all(w[n:] == -1)
        for i in range(n):
            assert nt[w[i]] == path[i % period]
        for i in range(n - 1):
            assert (int(w[i]), int(w[i + 1])) in edges          # source -> target: direction "out"
        if n < walks.shape[1]:                                   # stopped: no neighbour of the next type
            assert adj.neighbours(w[n - 1], path[n % period]).size == 0
    for b in range(9):                                           # each block starts at every author once
        assert sorted(walks[b * S:(b + 1) * S, 0].tolist()) == list(range(S))
    dead = walks[walk_lengths(walks) == 1, 0]
    assert set(dead.tolist()) == {S - 1}                         # only the author without a paper
    assert dead_starts(g, nt, (0, 1, 0)) == 1 and dead_starts(g, nt, (1, 3, 1)) == 0


@pytest.mark.parametrize("weighted", [False, True])
def test_step_frequencies_match_the_metapath_transition(weighted):
    g, nt = academic(weighted=weighted, n_a=5, n_p=8)
    # walks of 2 nodes from every paper along P-A-P: the first step goes to an author of that paper
    walks = metapath_walks(g, nt, (1, 0, 1), walk_length=2, num_walks=6000, seed=4)
    v = 5                                                        # paper 0: it holds the repeated edge
    nxt = walks[walks[:, 0] == v, 1]
    P = metapath_transition(g, nt, v, 0)
    assert P.sum() == pytest.approx(1.0) and np.all(P[nt != 0] == 0)
    counts = np.bincount(nxt, minlength=g.num_nodes)
    assert chi2_pvalue(counts, P) > P_MIN
    if not weighted:                                             # the repeated edge counts twice
        row = typed_csr(g, nt).neighbours(v, 0)
        expect = np.bincount(row, minlength=g.num_nodes) / row.size
        np.testing.assert_allclose(P, expect)
        assert len(set(row.tolist())) < row.size


def test_direction_out_follows_edges_forwards_and_in_backwards():
    # a directed bipartite graph: 0 -> 2, 2 -> 1, 1 -> 3, 3 -> 0 (types 0: {0, 1}, 1: {2, 3})
    g = Graph.from_edge_index(np.array([[0, 2, 1, 3], [2, 1, 3, 0]]), num_nodes=4)
    nt = np.array([0, 0, 1, 1])
    out = metapath_walks(g, nt, (0, 1, 0), walk_length=5, num_walks=1, shuffle=False)
    inn = metapath_walks(g, nt, (0, 1, 0), walk_length=5, num_walks=1, shuffle=False, direction="in")
    assert out.tolist() == [[0, 2, 1, 3, 0], [1, 3, 0, 2, 1]]
    assert inn.tolist() == [[0, 3, 1, 2, 0], [1, 2, 0, 3, 1]]


def test_walks_are_a_function_of_the_seed_for_any_thread_count():
    g, nt = academic(weighted=True)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = metapath_walks(g, nt, [(0, 1, 2, 1, 0), (0, 1, 0)], walk_length=20, num_walks=4, seed=9)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = metapath_walks(g, nt, [(0, 1, 2, 1, 0), (0, 1, 0)], walk_length=20, num_walks=4, seed=9)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(a, b)
    c = metapath_walks(g, nt, [(0, 1, 2, 1, 0), (0, 1, 0)], walk_length=20, num_walks=4, seed=10)
    assert not np.array_equal(a, c)


def test_metapath_errors_are_clear():
    g, nt = academic()
    for mp, msg in [((0, 1), "not cyclic"), ((0,), "at least 2"), ((0, 7, 0), "unknown node-type code 7"),
                    ((0, 1.0, 0), "node-type codes"), ("APA", "sequence of node-type codes")]:
        with pytest.raises(ValueError, match=msg):
            metapath_walks(g, nt, mp, walk_length=5)
    with pytest.raises(ValueError, match="has no node"):
        metapath_walks(g, nt, (0, 4, 0), walk_length=5, num_types=5)
    with pytest.raises(ValueError, match="node_type"):
        metapath_walks(g, nt[:-1], (0, 1, 0))
    with pytest.raises(ValueError, match="codes >= 0"):
        metapath_walks(g, nt - 1, (0, 1, 0))
    with pytest.raises(ValueError, match="out of range for num_types"):
        metapath_walks(g, nt, (0, 1, 0), num_types=2)
    with pytest.raises(ValueError, match="walk_length"):
        metapath_walks(g, nt, (0, 1, 0), walk_length=0)
    with pytest.raises(ValueError, match="direction"):
        metapath_walks(g, nt, (0, 1, 0), direction="up")
    with pytest.raises(ValueError, match="square"):
        metapath_walks(Graph.from_csr(np.array([0, 1]), np.array([1]), num_src=2), np.array([0]), (0, 0))
    names = ["author", "paper", "conference", "term"]
    assert resolve_metapath("APCPA", names) == (0, 1, 2, 1, 0)
    assert resolve_metapath(["author", "paper", "author"], names) == (0, 1, 0)
    with pytest.raises(ValueError, match="letter 'X'"):
        resolve_metapath("AXA", names)
    with pytest.raises(ValueError, match="matches 2"):
        resolve_metapath("APA", ["author", "paper", "person"])
    with pytest.raises(ValueError, match="node type 'venue'"):
        resolve_metapath(["author", "venue", "author"], names)
    assert check_metapath(np.array([2, 1, 2]), np.array([1, 1, 1])).tolist() == [2, 1, 2]


# ------------------------------------------------------------------ noise and losses
def test_typed_noise_is_the_weights_restricted_to_each_type():
    g, nt = academic()
    w = noise_weights(g, nt)
    np.testing.assert_allclose(w, np.diff(g.indptr).astype(float) ** 0.75)
    noise = TypedNoise(w, nt)
    for t in range(4):
        members = nt == t
        np.testing.assert_allclose(noise.probabilities[members], w[members] / w[members].sum())
        draws = noise.sample(t, 20000, seed=t)
        assert np.all(nt[draws] == t)
        assert chi2_pvalue(np.bincount(draws, minlength=nt.size), np.where(members, noise.probabilities, 0)) > P_MIN
    restricted = noise_weights(g, nt, types={0, 1})
    assert np.all(restricted[nt >= 2] == 0) and np.array_equal(restricted[nt < 2], w[nt < 2])


def test_hetero_loss_refuses_negatives_of_another_type():
    rng = np.random.default_rng(0)
    z_u, z_ctx = rng.standard_normal((2, 4)), rng.standard_normal((2, 3, 4))
    loss = HeteroSkipGramLoss()
    ok = loss.forward(z_u, z_ctx, None, np.array([[1, 1, 1], [0, 0, 0]]))
    assert ok > 0
    with pytest.raises(ValueError, match="negative 2 of pair 1 has type 1, its context type 0"):
        loss.forward(z_u, z_ctx, None, np.array([[1, 1, 1], [0, 0, 1]]))
    with pytest.raises(ValueError, match="target_type"):
        loss.forward(z_u, z_ctx)


def test_type_softmax_loss_is_minus_log_of_the_softmax_within_the_type():
    rng = np.random.default_rng(1)
    nt = np.array([0, 0, 1, 1, 1, 2])
    z_u, W = rng.standard_normal((3, 5)), 3 * rng.standard_normal((6, 5))
    ctx = np.array([1, 3, 5])
    expected = 0.0
    for b, c in enumerate(ctx):
        same = np.flatnonzero(nt == nt[c])
        s = W[same] @ z_u[b]
        expected -= np.log(np.exp(W[c] @ z_u[b]) / np.exp(s).sum())
    assert TypeSoftmaxLoss(True).forward(z_u, W, ctx, nt) == pytest.approx(expected, rel=1e-12)
    s_all = z_u @ W.T
    full = -np.sum(s_all[np.arange(3), ctx] - np.log(np.exp(s_all).sum(axis=1)))
    assert TypeSoftmaxLoss(False).forward(z_u, W, ctx, nt) == pytest.approx(full, rel=1e-12)
    assert TypeSoftmaxLoss(True).forward(z_u, W, ctx, np.zeros(6, int)) == pytest.approx(full, rel=1e-12)
    huge = TypeSoftmaxLoss(True).forward(z_u, 1e3 * W, ctx, nt)           # max-shifted: finite
    assert np.isfinite(huge)
    loss = TypeSoftmaxLoss(True)
    loss.forward(z_u[2:], W, ctx[2:], nt)
    _, dW = loss.backward()
    assert np.all(dW[:5] == 0) and np.allclose(dW[5], 0)                  # context alone in its type: p = 1


# ------------------------------------------------------------------ trainers
def _small_walks():
    g, nt = hetero_test_graph(0)
    walks = metapath_walks(g, nt, [(0, 1, 2, 1, 0), (1, 0, 1)], walk_length=7, num_walks=2, seed=1)
    return g, nt, walks


def test_numba_deterministic_metapath2vecpp_equals_the_numpy_reference():
    g, nt, walks = _small_walks()
    assert (walks < 0).any()                                   # the isolated node's walks, padded
    kw = dict(dim=5, window=3, negatives=3, lr=0.1, epochs=2, seed=4)
    ref_in, ref_out = train_metapath2vecpp_reference(walks, nt, **kw)
    nb_in, nb_out = train_metapath2vecpp(walks, nt, dtype=np.float64, deterministic=True, **kw)
    scale = max(np.abs(ref_in).max(), np.abs(ref_out).max())
    assert np.abs(ref_out).max() > 0.05
    np.testing.assert_allclose(nb_in, ref_in, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(nb_out, ref_out, rtol=0, atol=1e-13 * scale)
    noise = TypedNoise(noise_weights(g, nt), nt)               # another noise: other negatives, other result
    other, _ = train_metapath2vecpp(walks, nt, dtype=np.float64, deterministic=True, noise=noise, **kw)
    assert np.abs(other - nb_in).max() > 1e-6
    ref2, _ = train_metapath2vecpp_reference(walks, nt, noise=noise, **kw)
    np.testing.assert_allclose(other, ref2, rtol=0, atol=1e-13 * scale)


def test_with_one_node_type_metapath2vecpp_is_plain_sgns_bit_for_bit():
    g, nt, walks = _small_walks()
    one = np.zeros_like(nt)
    kw = dict(dim=6, window=2, negatives=4, lr=0.05, epochs=2, seed=7, deterministic=True)
    deg = noise_weights(g, nt)                                 # = negative_table(g)'s weights, bit for bit
    a = train_metapath2vecpp(walks, one, noise=TypedNoise(deg, one), **kw)
    b = train_sgns(walks, g.num_nodes, noise=negative_table(g), **kw)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = train_metapath2vecpp(walks, nt, noise=TypedNoise(deg, nt), **kw)     # typed: other negatives
    assert not np.array_equal(a[0], c[0])


def test_hogwild_on_one_thread_is_the_deterministic_pass():
    g, nt, walks = _small_walks()
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = train_metapath2vecpp(walks, nt, dim=8, window=3, negatives=2, seed=3)
    finally:
        numba.set_num_threads(old)
    b = train_metapath2vecpp(walks, nt, dim=8, window=3, negatives=2, seed=3, deterministic=True)
    assert a[0].dtype == np.float32 and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_trainer_errors_are_clear():
    g, nt, walks = _small_walks()
    with pytest.raises(ValueError, match="lr"):
        train_metapath2vecpp(walks, nt, lr=0)
    with pytest.raises(ValueError, match="node_type"):
        train_metapath2vecpp(walks, nt[:, None])
    with pytest.raises(ValueError, match="walks"):
        train_metapath2vecpp(walks + 100, nt)
    with pytest.raises(ValueError, match="TypedNoise"):
        train_metapath2vecpp(walks, nt, noise=negative_table(g))
    zero = noise_weights(g, nt)
    zero[nt == 1] = 0
    with pytest.raises(ValueError, match="node type 1 occurs in the walks but has no noise mass"):
        train_metapath2vecpp(walks, nt, noise=TypedNoise(zero, nt))
    with pytest.raises(ValueError, match="noise"):
        MetaPath2Vec((0, 1, 0), noise="uniform")


@pytest.mark.parametrize("plus_plus", [False, True])
def test_metapath2vec_separates_two_research_communities(plus_plus):
    # two communities: authors 0..9 publish in conferences {0, 1}, authors 10..19 in {2, 3}
    rng = np.random.default_rng(0)
    n_a, n_p, n_c = 20, 60, 4
    pa, pc = [], []
    for p in range(n_p):
        side = p % 2
        for a in rng.choice(10, 2, replace=False) + 10 * side:
            pa.append((n_a + p, a))
        pc.append((n_a + p, n_a + n_p + 2 * side + rng.integers(2)))
    e = np.array(pa + pc).T
    g = Graph.from_edge_index(np.concatenate([e, e[::-1]], axis=1), num_nodes=n_a + n_p + n_c)
    nt = np.repeat([0, 1, 2], [n_a, n_p, n_c])
    model = MetaPath2Vec(["APCPA", "APA"], type_names=["author", "paper", "conference"], dim=16, walk_length=20,
                         num_walks=20, window=3, plus_plus=plus_plus, seed=0, deterministic=True)
    Z = model.fit(g, nt).embedding[:n_a]
    assert model.metapaths == [(0, 1, 2, 1, 0), (0, 1, 0)] and model.dead_starts == {(0, 1, 2, 1, 0): 0,
                                                                                      (0, 1, 0): 0}
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    cos = Zn @ Zn.T
    same = np.equal.outer(np.arange(n_a) // 10, np.arange(n_a) // 10)
    off = ~np.eye(n_a, dtype=bool)
    assert cos[same & off].mean() > cos[~same].mean() + 0.3
    again = metapath2vec(g, nt, ["APCPA", "APA"], plus_plus=plus_plus, type_names=["author", "paper", "conference"],
                         dim=16, walk_length=20, num_walks=20, window=3, seed=0, deterministic=True)
    assert np.array_equal(again[:n_a], Z)


def test_metapath2vec_derivation_snippet_runs():
    text = DERIVATION.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "derivations/metapath2vec.md has no python snippet"
    for code in blocks:
        exec(compile(code, str(DERIVATION), "exec"), {})
