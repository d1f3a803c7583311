"""Walks, alias samplers, the Embedding layer, the sparse optimisers and skip-gram (gnn_scratch.embed, issue 15)."""
import copy
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
import scipy.stats

from gnn_scratch.embed import (AliasTable, DeepWalk, Node2Vec, SkipGramLoss, edge_sampler, negative_table,
                               random_walks, train_sgns, train_sgns_reference, transition_probabilities, walk_csr,
                               walk_lengths)
from gnn_scratch.embed.alias import Stream, seed_key
from gnn_scratch.embed.skipgram import init_tables
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph import Graph
from gnn_scratch.nn.embedding import Embedding, SparseRowGrad
from gnn_scratch.optim import SGD, Adam, SparseAdam, SparseSGD

P_MIN = 1e-4       # a chi-square p-value below this fails (each test uses a fixed seed: deterministic)


def weighted(g, seed=5):
    w = np.random.default_rng(seed).uniform(0.5, 2.0, g.num_edges)
    return Graph.from_csr(g.indptr, g.indices, w, num_src=g.num_src)


def undirected(num_nodes=9, num_edges=18, seed=0):
    """A random undirected graph (both directions of each edge), with a self-loop, a repeated edge and node
    num_nodes - 1 isolated."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, num_nodes - 1, (2, num_edges))
    a, b = np.concatenate([a, [0, 1, 1]]), np.concatenate([b, [0, 2, 2]])
    return Graph.from_edge_index(np.stack([np.concatenate([a, b]), np.concatenate([b, a])]), num_nodes=num_nodes)


def chi2_pvalue(counts, probs):
    """p-value of observed counts against probabilities (categories with probability 0 must have count 0)."""
    counts, probs = np.asarray(counts, float), np.asarray(probs, float)
    assert np.all(counts[probs == 0] == 0), "a transition of probability 0 was sampled"
    keep = probs > 0
    if keep.sum() < 2:
        return 1.0
    exp = probs[keep] * counts.sum()
    return scipy.stats.chisquare(counts[keep], exp).pvalue


# ======================================================================== walks
@pytest.mark.parametrize("direction", ["in", "out"])
@pytest.mark.parametrize("pq", [(1.0, 1.0), (0.25, 4.0), (4.0, 0.5)])
def test_every_step_is_an_edge_and_walks_stop_only_at_dead_ends(direction, pq):
    g = weighted(random_test_graph(3, 10, 30))            # directed: dead ends, an isolated node, a self-loop
    adj = walk_csr(g, direction)
    walks = random_walks(g, 12, 3, p=pq[0], q=pq[1], seed=7, direction=direction)
    assert walks.shape == (3 * g.num_nodes, 12) and walks.dtype == np.int32
    edges = {(int(a), int(b)) for a in range(g.num_nodes)
             for b in adj.indices[adj.indptr[a]:adj.indptr[a + 1]]}     # a walk at a may step to b
    src, dst = g.edge_index()
    expected = ({(int(d), int(s)) for s, d in zip(src, dst)} if direction == "in"
                else {(int(s), int(d)) for s, d in zip(src, dst)})
    assert edges == expected                              # "in" follows edges backwards, "out" forwards
    lengths = walk_lengths(walks)
    for row, n in zip(walks, lengths):
        assert all((int(a), int(b)) in edges for a, b in zip(row[:n - 1], row[1:n]))
        assert np.all(row[n:] == -1)
        if n < walks.shape[1]:                             # stopped: at a node with nothing to follow
            assert adj.indptr[row[n - 1] + 1] == adj.indptr[row[n - 1]]
    starts = walks[:, 0].reshape(3, g.num_nodes)
    assert all(sorted(r) == list(range(g.num_nodes)) for r in starts)   # each round: every node once, shuffled
    isolated = g.num_nodes - 1
    assert np.all(walks[walks[:, 0] == isolated, 1:] == -1)           # a walk from an isolated node: itself alone


def test_first_order_transition_frequencies_match_the_weights():
    for g in (undirected(), weighted(undirected())):
        walks = random_walks(g, 40, 300, seed=11)
        a, b = walks[:, :-1].ravel(), walks[:, 1:].ravel()
        keep = b >= 0
        counts = np.zeros((g.num_nodes, g.num_nodes))
        np.add.at(counts, (a[keep], b[keep]), 1)
        for v in range(g.num_nodes - 1):
            assert chi2_pvalue(counts[v], transition_probabilities(g, -1, v)) > P_MIN, v


def test_transition_probabilities_formula_on_a_hand_example():
    # t - v, v - a, v - b, a - t; v has a self-loop. From t -> v: x = t is a return (1/p), a is a neighbour of
    # t (1), b is not (1/q), v itself is at distance 1 from t (1). Unweighted, each a single edge.
    t, v, a, b = 0, 1, 2, 3
    und = [(t, v), (v, a), (v, b), (a, t)]
    src = [s for s, d in und] + [d for s, d in und] + [v]
    dst = [d for s, d in und] + [s for s, d in und] + [v]
    g = Graph.from_edge_index(np.array([src, dst]), num_nodes=4)
    p, q = 0.5, 4.0
    P = transition_probabilities(g, t, v, p, q)
    expected = np.array([1 / p, 1.0, 1.0, 1 / q])          # x = t, v (self-loop), a, b
    np.testing.assert_allclose(P, expected / expected.sum(), rtol=1e-15)


@pytest.mark.parametrize("pq", [(0.25, 4.0), (4.0, 0.25), (0.5, 2.0), (2.0, 1.0)])
@pytest.mark.parametrize("kind", ["unweighted", "weighted", "directed-out"])
def test_node2vec_second_order_frequencies_match_the_formula(pq, kind):
    p, q = pq
    g = undirected(9, 22, seed=2)
    direction = "in"
    if kind == "weighted":
        g = weighted(g, seed=3)
    elif kind == "directed-out":
        g, direction = weighted(random_test_graph(4, 8, 30), seed=4), "out"
    adj = walk_csr(g, direction)
    deg = np.diff(adj.indptr)
    t = int(np.argmax(deg))                                 # start where many (t, v) pairs follow
    walks = random_walks(g, 3, 1, p=p, q=q, seed=13, starts=np.full(60000, t), direction=direction)
    walks = walks[walks[:, 2] >= 0]
    pvals = []
    for v in np.unique(walks[:, 1]):
        x = walks[walks[:, 1] == v, 2]
        if x.size < 2000:
            continue
        counts = np.bincount(x, minlength=g.num_nodes)
        pvals.append(chi2_pvalue(counts, transition_probabilities(g, t, int(v), p, q, direction)))
    assert len(pvals) >= 2
    assert min(pvals) > P_MIN / len(pvals), pvals


def test_p_equal_q_equal_one_is_the_first_order_walk_and_a_progress_bar_changes_nothing():
    g = weighted(undirected())
    a = random_walks(g, 20, 2, seed=3)
    assert np.array_equal(a, random_walks(g, 20, 2, seed=3, progress=True))   # per-round calls, same bits
    b = random_walks(g, 20, 2, p=1, q=1, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, random_walks(g, 20, 2, p=0.5, q=2, seed=3))
    assert not np.array_equal(a, random_walks(g, 20, 2, seed=4))


_THREADS_SCRIPT = """
import hashlib, numpy as np
from gnn_scratch.embed import random_walks, train_sgns
from gnn_scratch.gradcheck import random_test_graph
g = random_test_graph(3, 10, 30)
h = hashlib.sha256()
for p, q in ((1, 1), (0.25, 4)):
    w = random_walks(g, 15, 4, p=p, q=q, seed=5)
    h.update(w.tobytes())
Z = train_sgns(random_walks(g, 15, 4, seed=5), g.num_nodes, dim=8, window=3, negatives=2, seed=1,
               deterministic=True, dtype=np.float64)
h.update(Z[0].tobytes()); h.update(Z[1].tobytes())
print(h.hexdigest())
"""


def _digest_in_subprocess(threads):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def test_walks_and_deterministic_sgns_are_bit_identical_for_any_thread_count():
    assert _digest_in_subprocess(1) == _digest_in_subprocess(3)


def test_walks_do_not_depend_on_the_numba_thread_count_in_process():
    g = weighted(undirected())
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = random_walks(g, 30, 5, p=0.25, q=4, seed=9)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = random_walks(g, 30, 5, p=0.25, q=4, seed=9)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(a, b)


def test_walk_errors_are_clear():
    g = undirected()
    for kwargs, exc, msg in [(dict(p=0), ValueError, "p must be"), (dict(q=-1), ValueError, "q must be"),
                             (dict(q=float("inf")), ValueError, "q must be"), (dict(p="1"), TypeError, "p must be"),
                             (dict(walk_length=0), ValueError, "walk_length"),
                             (dict(walk_length=2.5), TypeError, "walk_length"),
                             (dict(num_walks=0), ValueError, "num_walks"),
                             (dict(starts=[0, 99]), ValueError, "starts"),
                             (dict(direction="up"), ValueError, "direction")]:
        with pytest.raises(exc, match=msg):
            random_walks(g, **{"walk_length": 5, **kwargs})
    no_edges = Graph.from_csr(np.zeros(4, np.int64), np.zeros(0, np.int32))
    with pytest.raises(ValueError, match="no edges"):
        random_walks(no_edges, 5)
    with pytest.raises(ValueError, match="square"):
        random_walks(random_test_graph(1, 4, 6, num_src=6), 5)
    neg = Graph.from_csr(g.indptr, g.indices, -np.ones(g.num_edges))
    with pytest.raises(ValueError, match="non-negative"):
        random_walks(neg, 5)
    zero = Graph.from_csr(g.indptr, g.indices, np.zeros(g.num_edges))
    with pytest.raises(ValueError, match="sum to 0"):
        random_walks(zero, 5)
    assert walk_lengths(random_walks(g, 1, 2)).tolist() == [1] * (2 * g.num_nodes)   # length 1: the start alone


# ======================================================================== alias tables
def test_alias_table_frequencies_and_the_python_stream_equal_the_compiled_one():
    w = np.array([0.0, 1.0, 5.0, 0.5, 2.5, 0.0, 3.0])
    table = AliasTable(w)
    np.testing.assert_allclose(table.probabilities, w / w.sum())
    # the distribution the table encodes, exactly: (prob[i] + sum_{k: alias[k] = i} (1 - prob[k])) / n
    encoded = table.prob.copy()
    np.add.at(encoded, table.alias, 1.0 - table.prob)
    np.testing.assert_allclose(encoded / w.size, w / w.sum(), atol=1e-15)
    draws = table.sample(200000, seed=3)
    assert chi2_pvalue(np.bincount(draws, minlength=w.size), w / w.sum()) > P_MIN
    first = table.sample(500, seed=3, per_stream=500)
    stream = Stream(seed_key(3), 0)
    assert first.tolist() == [stream.alias(table) for _ in range(500)]
    assert np.array_equal(table.sample(1000, seed=3), table.sample(1000, seed=3))
    for bad in ([], [1.0, -1.0], [0.0, 0.0], [1.0, np.nan]):
        with pytest.raises(ValueError, match="weights"):
            AliasTable(bad)


def test_negative_table_is_degree_to_the_three_quarters_and_edge_sampler_follows_weights():
    g = undirected()
    deg = g.in_degree().astype(float)
    np.testing.assert_allclose(negative_table(g).probabilities, deg ** 0.75 / np.sum(deg ** 0.75))
    assert negative_table(g).probabilities[g.num_nodes - 1] == 0          # isolated: never a negative
    gw = weighted(g)
    sampler = edge_sampler(gw)
    np.testing.assert_allclose(sampler.probabilities, gw.edge_weight / gw.edge_weight.sum())
    e = sampler.sample(100000, seed=1)
    assert chi2_pvalue(np.bincount(e, minlength=gw.num_edges), sampler.probabilities) > P_MIN


# ======================================================================== Embedding and sparse optimisers
def test_embedding_gathers_and_accumulates_row_sparse_gradients():
    emb = Embedding(6, 3, init="normal", seed=0, dtype=np.float64)
    dense = Embedding(6, 3, init="normal", seed=0, dtype=np.float64, sparse=False)
    ids = np.array([[1, 4], [4, 0]])
    G = np.random.default_rng(1).standard_normal((2, 2, 3))
    for layer in (emb, dense):
        np.testing.assert_array_equal(layer.forward(ids), layer.params["weight"][ids])
        assert layer.backward(G) is None
        layer.forward(np.array([4]))
        layer.backward(G[0, :1])                           # accumulates (+=) until zero_grad
    rows, values = emb.grads["weight"].coalesce()
    assert rows.tolist() == [0, 1, 4]
    np.testing.assert_allclose(values[2], G[0, 1] + G[1, 0] + G[0, 0])
    np.testing.assert_array_equal(emb.grads["weight"].to_dense(), dense.grads["weight"])
    emb.zero_grad()
    assert emb.grads["weight"].touched_rows.size == 0
    with pytest.raises(ValueError, match=r"expected \[0, 6\)"):
        emb.forward(np.array([6]))
    with pytest.raises(TypeError, match="integer"):
        emb.forward(np.array([1.0]))
    with pytest.raises(ValueError, match="init"):
        Embedding(3, 2, init="xavier")
    with pytest.raises(ValueError, match="device"):
        emb.check_device_support()


def _sparse_grads(seed, steps, N=7, D=3):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        rows = rng.integers(0, N - 2, 5)                    # rows N-2, N-1 never touched; repeats likely
        out.append((rows, rng.standard_normal((5, D))))
    return out


def test_sparse_sgd_updates_only_touched_rows_and_equals_dense_sgd_there():
    N, D = 7, 3
    W0 = np.random.default_rng(0).standard_normal((N, D))
    Ws, Wd = W0.copy(), W0.copy()
    gs, gd = SparseRowGrad((N, D), np.float64), np.zeros((N, D))
    sparse, dense = SparseSGD([(Ws, gs)], lr=0.1), SGD([(Wd, gd)], lr=0.1)
    for rows, vals in _sparse_grads(1, 4):
        sparse.zero_grad()
        dense.zero_grad()
        gs.add(rows, vals)
        np.add.at(gd, rows, vals)
        before = Ws.copy()
        sparse.step()
        dense.step()
        untouched = np.setdiff1d(np.arange(N), rows)
        assert np.array_equal(Ws[untouched], before[untouched])
        np.testing.assert_allclose(Ws, Wd, rtol=1e-14, atol=1e-15)
    assert np.array_equal(Ws[N - 2:], W0[N - 2:])


def test_sparse_sgd_decays_the_learning_rate_linearly_as_word2vec():
    opt = SparseSGD([(np.zeros((2, 2)), SparseRowGrad((2, 2), np.float64))], lr=0.025, total_steps=4)
    lrs = []
    for _ in range(6):
        lrs.append(opt.current_lr(0.025))
        opt.step()
    np.testing.assert_allclose(lrs, [0.025, 0.01875, 0.0125, 0.00625, 0.025e-4, 0.025e-4])
    assert opt.current_lr(0.025, progress=0.5) == 0.0125


def test_sparse_adam_is_lazy_and_equals_dense_adam_on_rows_touched_every_step():
    N, D = 7, 3
    W0 = np.random.default_rng(0).standard_normal((N, D))
    # 1. rows touched every step, eps = 0: Adam's update exactly (the eps placement is the only difference)
    Ws, Wd = W0.copy(), W0.copy()
    gs, gd = SparseRowGrad((N, D), np.float64), np.zeros((N, D))
    sparse, dense = SparseAdam([(Ws, gs)], lr=0.05, eps=0.0), Adam([(Wd, gd)], lr=0.05, eps=0.0)
    rng = np.random.default_rng(2)
    for _ in range(5):
        G = rng.standard_normal((N, D))
        sparse.zero_grad()
        gs.add(np.arange(N), G)
        gd[:] = G
        sparse.step()
        dense.step()
    np.testing.assert_allclose(Ws, Wd, rtol=1e-12)
    # 2. lazy: a row's parameters and moments do not move while it is not touched
    W = W0.copy()
    g = SparseRowGrad((N, D), np.float64)
    opt = SparseAdam([(W, g)], lr=0.05)
    for rows, vals in _sparse_grads(3, 5):
        opt.zero_grad()
        g.add(rows, vals)
        state = {k: v.copy() for k, v in opt.state.get(id(W), {}).items()}
        before = W.copy()
        opt.step()
        untouched = np.setdiff1d(np.arange(N), rows)
        assert np.array_equal(W[untouched], before[untouched])
        for k, v in state.items():
            assert np.array_equal(opt.state[id(W)][k][untouched], v[untouched])
    assert np.array_equal(W[N - 2:], W0[N - 2:])


@pytest.mark.oracle
def test_sparse_adam_equals_torch_sparse_adam():
    torch = pytest.importorskip("torch")
    N, D = 7, 3
    W0 = np.random.default_rng(0).standard_normal((N, D))
    W = W0.copy()
    g = SparseRowGrad((N, D), np.float64)
    ours = SparseAdam([(W, g)], lr=0.05, betas=(0.8, 0.95), eps=1e-3)
    emb = torch.nn.Embedding(N, D, sparse=True, dtype=torch.float64)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(W0))
    theirs = torch.optim.SparseAdam(emb.parameters(), lr=0.05, betas=(0.8, 0.95), eps=1e-3)
    for rows, vals in _sparse_grads(4, 6):
        ours.zero_grad()
        g.add(rows, vals)
        ours.step()
        theirs.zero_grad()
        out = emb(torch.from_numpy(rows))
        out.backward(torch.from_numpy(vals))
        theirs.step()
    np.testing.assert_allclose(W, emb.weight.detach().numpy(), rtol=1e-12, atol=1e-14)


# ======================================================================== skip-gram
def test_skipgram_loss_value_and_masked_negatives():
    rng = np.random.default_rng(0)
    z_u, z_ctx = rng.standard_normal((2, 4)), rng.standard_normal((2, 3, 4))
    mask = np.array([[True, True, False], [True, True, True]])
    L = SkipGramLoss().forward(z_u, z_ctx, mask)
    s = np.einsum("bd,bkd->bk", z_u, z_ctx)
    ls = lambda x: -np.log1p(np.exp(-x))                   # noqa: E731  log sigma
    expected = -(ls(s[0, 0]) + ls(-s[0, 1]) + ls(s[1, 0]) + ls(-s[1, 1]) + ls(-s[1, 2]))
    assert L == pytest.approx(expected, rel=1e-14)


def test_numba_single_thread_sgns_equals_the_numpy_reference():
    g = random_test_graph(3, 10, 30)                        # directed: walks with -1 padding
    walks = random_walks(g, 9, 2, p=0.5, q=2, seed=1)
    assert (walks < 0).any()
    kw = dict(dim=5, window=3, negatives=3, lr=0.1, epochs=2, seed=4)
    ref_in, ref_out = train_sgns_reference(walks, g.num_nodes, **kw)
    nb_in, nb_out = train_sgns(walks, g.num_nodes, dtype=np.float64, deterministic=True, **kw)
    scale = max(np.abs(ref_in).max(), np.abs(ref_out).max())
    assert np.abs(ref_out).max() > 0.05                     # it trained
    np.testing.assert_allclose(nb_in, ref_in, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(nb_out, ref_out, rtol=0, atol=1e-12 * scale)
    noise = negative_table(g)                               # another noise table: other negatives, other result
    other_in, _ = train_sgns(walks, g.num_nodes, dtype=np.float64, deterministic=True, noise=noise, **kw)
    assert np.abs(other_in - nb_in).max() > 1e-6
    ref2, _ = train_sgns_reference(walks, g.num_nodes, noise=noise, **kw)
    np.testing.assert_allclose(other_in, ref2, rtol=0, atol=1e-12 * scale)


def test_word2vec_roles_numba_equals_the_reference_and_differs_from_centre_input():
    g = random_test_graph(3, 10, 30)
    walks = random_walks(g, 9, 2, p=0.5, q=2, seed=1)
    kw = dict(dim=5, window=3, negatives=3, lr=0.1, epochs=2, seed=4, init_range=1.0)
    ref_in, ref_out = train_sgns_reference(walks, g.num_nodes, context_input=True, **kw)
    nb_in, nb_out = train_sgns(walks, g.num_nodes, dtype=np.float64, deterministic=True, context_input=True, **kw)
    scale = max(np.abs(ref_in).max(), np.abs(ref_out).max())
    assert np.abs(ref_out).max() > 0.05
    np.testing.assert_allclose(nb_in, ref_in, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(nb_out, ref_out, rtol=0, atol=1e-12 * scale)
    centre, _ = train_sgns(walks, g.num_nodes, dtype=np.float64, deterministic=True, **kw)
    assert np.abs(centre - nb_in).max() > 1e-6                # the roles change the updates


def test_word2vec_roles_put_the_context_in_the_input_row():
    # walk (0, 1), window 1, no negatives, lr 1 then 0.5 (linear decay over 2 tokens); W_out starts at 0, so
    # each step moves only the target's output row: W_out[target] += lr (1 - sigma(0)) W_in[input].
    walks = np.array([[0, 1]], dtype=np.int32)
    kw = dict(dim=3, window=1, negatives=0, lr=1.0, epochs=1, seed=5, dtype=np.float64)
    W0, _ = init_tables(2, 3, seed=5, dtype=np.float64)
    for context_input, (first, second) in ((False, ((0, 1), (1, 0))), (True, ((1, 0), (0, 1)))):
        for train in (train_sgns_reference, train_sgns):
            extra = dict(deterministic=True) if train is train_sgns else {}
            W_in, W_out = train(walks, 2, context_input=context_input, **kw, **extra)
            np.testing.assert_array_equal(W_in, W0)                      # the input rows met zero outputs
            (a1, t1), (a2, t2) = first, second                           # (input, target) of position 0, 1
            np.testing.assert_allclose(W_out[t1], 0.5 * W0[a1], rtol=1e-12)
            np.testing.assert_allclose(W_out[t2], 0.25 * W0[a2], rtol=1e-12)


def test_init_range_scales_the_same_draws():
    a, _ = init_tables(50, 8, seed=3, dtype=np.float64)
    b, _ = init_tables(50, 8, seed=3, dtype=np.float64, init_range=1.0)
    np.testing.assert_array_equal(b, 2.0 * a)
    assert np.abs(a).max() < 0.5 / 8 and np.abs(b).max() > 0.5 / 8 and np.abs(b).max() < 1.0 / 8
    with pytest.raises(ValueError, match="init_range"):
        init_tables(5, 2, init_range=0.0)


def test_hogwild_on_one_thread_is_the_deterministic_pass():
    g = undirected()
    walks = random_walks(g, 10, 3, seed=2)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = train_sgns(walks, g.num_nodes, dim=8, window=3, negatives=2, seed=3)
    finally:
        numba.set_num_threads(old)
    b = train_sgns(walks, g.num_nodes, dim=8, window=3, negatives=2, seed=3, deterministic=True)
    assert a[0].dtype == np.float32 and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_sgns_errors_are_clear():
    g = undirected()
    walks = random_walks(g, 5, 1, seed=0)
    bad = walks.copy()
    bad[0, 1] = -1
    bad[0, 3] = 2                                           # a node after the padding
    for w, kw, exc, msg in [(walks, dict(window=0), ValueError, "window"),
                            (walks, dict(lr=0.0), ValueError, "lr"),
                            (walks, dict(dim=2.0), TypeError, "dim"),
                            (walks, dict(negatives=-1), ValueError, "negatives"),
                            (bad, {}, ValueError, "padding"),
                            (walks + g.num_nodes, {}, ValueError, "node ids"),
                            (walks[:0], {}, ValueError, "non-empty"),
                            (walks, dict(noise=AliasTable(np.ones(3))), ValueError, "noise")]:
        with pytest.raises(exc, match=msg):
            train_sgns(w, g.num_nodes, **{"dim": 4, **kw})


def test_deepwalk_and_node2vec_separate_two_communities():
    # two 8-cliques joined by one edge: nodes of a clique should embed closer to each other than across
    a, b = np.triu_indices(8, 1)
    src = np.concatenate([a, a + 8, [7]])
    dst = np.concatenate([b, b + 8, [8]])
    g = Graph.from_edge_index(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]), num_nodes=16)
    for model in (DeepWalk(dim=16, walk_length=20, num_walks=10, window=4, seed=0, deterministic=True),
                  Node2Vec(dim=16, walk_length=20, num_walks=10, window=4, p=1, q=2, seed=0, deterministic=True)):
        Z = model.fit(g).embedding
        assert Z.shape == (16, 16) and Z.dtype == np.float32
        Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        C = Zn @ Zn.T
        same = np.equal.outer(np.arange(16) < 8, np.arange(16) < 8) & ~np.eye(16, dtype=bool)
        across = ~np.equal.outer(np.arange(16) < 8, np.arange(16) < 8)
        assert C[same].mean() > C[across].mean() + 0.3, (C[same].mean(), C[across].mean())
        assert np.array_equal(Z, copy.deepcopy(model).fit(g).embedding)        # deterministic: same bits


def test_skipgram_derivation_snippet_runs():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "derivations" / "skipgram.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)
    assert blocks
    namespace = {}
    for code in blocks:
        exec(compile(code, "derivations/skipgram.md", "exec"), namespace)


def test_skipgram_role_and_start_arguments_are_checked_before_any_work():
    from gnn_scratch.embed import Node2Vec
    from gnn_scratch.embed.skipgram import init_tables, train_sgns
    walks = np.array([[0, 1, 2, 1]], dtype=np.int32)
    for bad in ("False", None, 2):
        with pytest.raises(TypeError, match="context_input"):
            Node2Vec(context_input=bad)
        with pytest.raises(TypeError, match="context_input"):
            train_sgns(walks, 3, dim=4, window=1, context_input=bad)
    for bad in (-1, 0, "x", float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="init_range"):
            Node2Vec(init_range=bad)
        with pytest.raises(ValueError, match="init_range"):
            train_sgns(walks, 3, dim=4, window=1, init_range=bad, tables=init_tables(3, 4))
    with pytest.raises(ValueError, match="overflows float32"):
        init_tables(3, 4, init_range=1e39)
