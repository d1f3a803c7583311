"""HetGNN (Zhang et al. 2019): samplers, Bi-LSTM, the model against a per-node reference, gradients, training."""
from collections import Counter

import numpy as np
import pytest

from gnn_scratch.embed.alias import Stream, seed_key
from gnn_scratch.embed.hetgnn import (GraphContextLoss, HetGNN, hetgnn_input, train_hetgnn,
                                      triple_loss_and_backward)
from gnn_scratch.embed.hetgnn_sampling import RWR_PURPOSE, context_triples, rwr_neighbours
from gnn_scratch.gradcheck.hetgnn import PIECE_DIMS, bilstm_case, hetero_fixture, hetgnn_rows
from gnn_scratch.graph import Graph
from gnn_scratch.nn.bilstm import BiLSTM, equal_length_sequences, reverse_sequences
from gnn_scratch.nn.lstm import pack_neighbours

F64 = np.float64


def _two_community_hetero(seed=0, n=40):
    """Two communities of 'papers' (type 0) linked through their own 'authors' (type 1) and one shared 'venue' (2)."""
    rng = np.random.default_rng(seed)
    papers, authors = np.arange(n), np.arange(n, 2 * n)
    venue = 2 * n
    src, dst = [], []
    for p in papers:
        com = p % 2
        for a in rng.choice(authors[com::2], 2, replace=False):
            src.append(p), dst.append(a)
        src.append(p), dst.append(venue)
    src, dst = np.array(src), np.array(dst)
    N = 2 * n + 1
    g = Graph.from_edge_index(np.stack([np.r_[src, dst], np.r_[dst, src]]), num_nodes=N)
    node_type = np.r_[np.zeros(n), np.ones(n), [2]].astype(np.int64)
    pieces = [[rng.standard_normal((n, 5))], [rng.standard_normal((n, 3)), rng.standard_normal((n, 4))],
              [rng.standard_normal((1, 2))]]
    return g, node_type, pieces


# ------------------------------------------------------------------ gradients
def test_gradients_match_finite_differences_for_every_parameter_and_piece():
    rows = hetgnn_rows(0) + bilstm_case()
    names = {r.parameter for r in rows}
    assert {"u", "pieces[2][2]", "neigh_1.bwd.W_h", "content_2.fwd.W_x", "fc_1_1.W"} <= names
    bad = [(r.parameter, r.error) for r in rows if not r.passed]
    assert not bad, bad


def test_directional_derivative_matches_richardson_extrapolation():
    """All parameters moved at once along a random direction: the analytic slope g.v against a 4th-order
    finite difference, far tighter than the per-entry check (whose error is round-off bound)."""
    graph, node_type, pieces, neighbours, triples = hetero_fixture(0)
    data = hetgnn_input(node_type, pieces, neighbours)
    model = HetGNN(PIECE_DIMS, dim=4, piece_channels=3, seed=2, dtype=F64)
    for _, p, _ in model.named_parameters():
        p *= 3.0
    loss_fn = GraphContextLoss()
    model.zero_grad()
    triple_loss_and_backward(model, data, triples, loss_fn)
    P = [(p, g.copy()) for _, p, g in model.named_parameters()]
    rng = np.random.default_rng(0)
    V = [rng.standard_normal(p.shape) for p, _ in P]
    slope = sum(float(np.sum(g * v)) for (_, g), v in zip(P, V))

    def loss_at(h):
        for (p, _), v in zip(P, V):
            p += h * v
        uniq, inv = np.unique(triples, return_inverse=True)
        inv = inv.reshape(triples.shape)
        E = model.forward(uniq, data)
        out = loss_fn.forward(E[inv[:, 0]], E[inv[:, 1]], E[inv[:, 2]])
        for (p, _), v in zip(P, V):
            p -= h * v
        return out

    def central(h):
        return (loss_at(h) - loss_at(-h)) / (2 * h)
    rich = (4 * central(5e-4) - central(1e-3)) / 3
    assert abs(rich - slope) < 1e-7 * abs(slope), (rich, slope)


# ------------------------------------------------------------------ the Bi-LSTM
def test_reverse_sequences_reverses_every_sequence_and_is_an_involution():
    g = Graph.from_edge_index(np.array([[0, 1, 2, 3, 4, 0], [1, 1, 1, 2, 2, 3]]), num_nodes=6)
    seqs = pack_neighbours(g)
    rev = reverse_sequences(seqs)
    assert np.array_equal(reverse_sequences(rev).items, seqs.items)

    def as_lists(s):
        out = {int(q): [] for q in s.order}
        for t in range(s.num_steps):
            for k in range(s.batch_sizes[t]):
                out[int(s.order[k])].append(int(s.items[s.offsets[t] + k]))
        return out
    a, b = as_lists(seqs), as_lists(rev)
    assert a[1] == [0, 1, 2] and b[1] == [2, 1, 0] and b[2] == [4, 3] and b[0] == []


@pytest.mark.oracle
def test_bilstm_mean_equals_torch_bidirectional_lstm():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    B, L, F, H = 5, 4, 3, 2
    x = rng.standard_normal((B * L, F))
    items = rng.permutation(B * L).reshape(B, L)
    seqs = equal_length_sequences(items, B * L)
    m = BiLSTM(F, H, seed=1, dtype=F64)
    out = m.forward(x, seqs)
    G = rng.standard_normal(out.shape)
    m.zero_grad()
    dx = m.backward(G)

    lstm = torch.nn.LSTM(F, H, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for suf, d in (("", m.fwd), ("_reverse", m.bwd)):
            getattr(lstm, "weight_ih_l0" + suf).copy_(torch.tensor(d.params["W_x"].T))
            getattr(lstm, "weight_hh_l0" + suf).copy_(torch.tensor(d.params["W_h"].T))
            getattr(lstm, "bias_ih_l0" + suf).copy_(torch.tensor(d.params["b"]))
            getattr(lstm, "bias_hh_l0" + suf).zero_()
    xt = torch.tensor(x, requires_grad=True)
    y, _ = lstm(xt[torch.tensor(items)])
    ref = y.mean(dim=1)
    (ref * torch.tensor(G)).sum().backward()
    assert np.allclose(out, ref.detach().numpy(), rtol=0, atol=1e-12)
    assert np.allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-12)
    assert np.allclose(m.fwd.grads["W_h"], lstm.weight_hh_l0.grad.numpy().T, rtol=0, atol=1e-12)
    assert np.allclose(m.bwd.grads["W_x"], lstm.weight_ih_l0_reverse.grad.numpy().T, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ the model against a per-node reference
def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _lstm_steps(xs, W_x, W_h, b):
    H = W_h.shape[0]
    h, c, hs = np.zeros(H), np.zeros(H), []
    for x in xs:
        a = x @ W_x + h @ W_h + b
        i, f, g, o = _sig(a[:H]), _sig(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), _sig(a[3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.array(hs)


def _bilstm_mean(bi, xs):
    f = _lstm_steps(xs, bi.fwd.params["W_x"], bi.fwd.params["W_h"], bi.fwd.params["b"])
    r = _lstm_steps(xs[::-1], bi.bwd.params["W_x"], bi.bwd.params["W_h"], bi.bwd.params["b"])
    return np.concatenate([f.mean(axis=0), r.mean(axis=0)])


def _reference_embedding(model, data, v):
    """E_v computed node by node from the paper's equations, with plain loops."""
    def f1(w):
        t = data.node_type[w]
        xs = np.array([model.fc(t, i).params["W"].T @ data.pieces[t][i][data.local[w]] + model.fc(t, i).params["b"]
                       for i in range(len(data.pieces[t]))])
        return _bilstm_mean(getattr(model, f"content_{t}"), xs)
    cands = [f1(v)]
    for t in range(data.num_types):
        nb = data.neighbours[t][v]
        if nb.size and nb[0] >= 0:
            cands.append(_bilstm_mean(getattr(model, f"neigh_{t}"), np.array([f1(w) for w in nb])))
    u = model.params["u"][data.node_type[v]]
    s = np.array([u @ np.concatenate([c, cands[0]]) for c in cands])
    s = np.where(s > 0, s, model.negative_slope * s)
    a = np.exp(s - s.max())
    a /= a.sum()
    return sum(ai * c for ai, c in zip(a, cands))


def test_forward_equals_the_papers_equations_node_by_node():
    graph, node_type, pieces, neighbours, _ = hetero_fixture(0)
    data = hetgnn_input(node_type, pieces, neighbours)
    model = HetGNN(PIECE_DIMS, dim=4, piece_channels=3, seed=2, dtype=F64)
    model.params["u"][:] *= 10
    nodes = np.array([7, 0, 9, 3, 3, 10, 4])                        # repeated, isolated and unsorted ids
    E = model.forward(nodes, data)
    ref = np.array([_reference_embedding(model, data, v) for v in nodes])
    assert np.allclose(E, ref, rtol=0, atol=1e-13)
    assert np.array_equal(E[3], E[4])
    # an isolated node has no neighbour of any type: its attention keeps f1 alone
    assert all((nb[9] == -1).all() for nb in data.neighbours)
    assert np.allclose(model._cache[7][2], [1, 0, 0, 0])
    # one embedding of a node does not depend on the batch it is computed in
    assert np.allclose(model.forward(np.array([4]), data)[0], E[6], rtol=0, atol=1e-15)


def test_float32_model_runs_and_returns_float32():
    graph, node_type, pieces, neighbours, triples = hetero_fixture(1)
    data = hetgnn_input(node_type, [[p.astype(np.float32) for p in pl] for pl in pieces], neighbours)
    model = HetGNN(PIECE_DIMS, dim=6, seed=0)
    L, dp = triple_loss_and_backward(model, data, triples)
    assert dp is None and np.isfinite(L)
    assert model.forward(np.arange(11), data).dtype == np.float32
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for _, _, g in model.named_parameters())


# ------------------------------------------------------------------ samplers
def _rwr_reference(graph, node_type, k, restart, length, seed):
    key = seed_key(seed, RWR_PURPOSE)
    T = len(k)
    out = [np.full((graph.num_nodes, kt), -1, np.int64) for kt in k]
    for v in range(graph.num_nodes):
        if graph.indptr[v + 1] == graph.indptr[v]:
            continue
        s, cur, visits = Stream(key, v), v, []
        for _ in range(length):
            u = s.uniform()
            d = int(graph.indptr[cur + 1] - graph.indptr[cur])
            if u < restart or d == 0:
                cur = v
                continue
            cur = int(graph.indices[graph.indptr[cur] + s.below(d)])
            if cur != v:
                visits.append(cur)
        cnt = Counter(visits)
        for t in range(T):
            top = sorted((w for w in cnt if node_type[w] == t), key=lambda w: (-cnt[w], w))[:k[t]]
            if top:
                out[t][v] = [top[j % len(top)] for j in range(k[t])]
    return out


def test_rwr_neighbours_equal_a_python_reference_and_are_typed():
    g, node_type, _ = _two_community_hetero(1)
    k = [4, 3, 2]
    got = rwr_neighbours(g, node_type, k, restart=0.4, walk_length=30, seed=5)
    ref = _rwr_reference(g, node_type, k, 0.4, 30, 5)
    for t in range(3):
        assert np.array_equal(got[t], ref[t])
        filled = got[t] >= 0
        assert np.all(node_type[got[t][filled]] == t)
        assert np.all(filled.all(axis=1) | ~filled.any(axis=1))
    # the single venue: a sequence of type 2 that is filled repeats it (padding by repetition)
    venue_rows = got[2][:40][got[2][:40, 0] >= 0]
    assert len(venue_rows) > 30 and np.all(venue_rows == 80)
    # a paper's most visited authors are mostly of its own community (the shared venue lets walks cross)
    same = np.mean([np.mean(got[1][p] % 2 == p % 2) for p in range(40)])
    assert same > 0.8, same


def test_rwr_isolated_nodes_get_no_neighbours_and_results_do_not_depend_on_threads():
    import numba
    graph, node_type, _, _, _ = hetero_fixture(0)
    a = rwr_neighbours(graph, node_type, [2, 3, 2], restart=0.3, walk_length=50, seed=3)
    for nb in a:
        assert (nb[9] == -1).all() and (nb[10] == -1).all()
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = rwr_neighbours(graph, node_type, [2, 3, 2], restart=0.3, walk_length=50, seed=3)
    finally:
        numba.set_num_threads(old)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = rwr_neighbours(graph, node_type, [2, 3, 2], restart=0.3, walk_length=50, seed=4)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_context_triples_pair_walk_neighbours_with_negatives_of_the_contexts_type():
    g, node_type, _ = _two_community_hetero(2)
    tr = context_triples(g, node_type, num_walks=2, walk_length=10, window=1, seed=0)
    alive = int(np.sum(g.in_degree() > 0))                         # an isolated author's walk has no pair
    assert tr.shape[1] == 3 and len(tr) == 2 * 2 * alive * 9 and alive < 81
    A = g.to_scipy().tocsr()
    assert np.all(np.asarray(A[tr[:, 0], tr[:, 1]]).ravel() > 0)     # window 1: consecutive walk nodes
    assert np.array_equal(node_type[tr[:, 2]], node_type[tr[:, 1]])
    assert np.array_equal(tr, context_triples(g, node_type, num_walks=2, walk_length=10, window=1, seed=0))
    sub = context_triples(g, node_type, num_walks=2, walk_length=10, window=2, max_triples=100, seed=0)
    assert sub.shape == (100, 3)


# ------------------------------------------------------------------ training
def test_training_lowers_the_loss_and_is_repeatable():
    g, node_type, pieces = _two_community_hetero(3)
    kw = dict(dim=8, num_neighbours=[3, 3, 1], rwr_length=30, walk_length=8, window=2, triples_per_epoch=800,
              epochs=6, batch_size=64, lr=5e-2, seed=0)
    r1 = train_hetgnn(g, node_type, pieces, **kw)
    r2 = train_hetgnn(g, node_type, pieces, **kw)
    assert r1.losses[-1] < r1.losses[0] - 0.05, r1.losses
    assert np.array_equal(r1.embedding, r2.embedding)
    assert r1.embedding.shape == (81, 8) and r1.embedding.dtype == np.float32
    # the two paper communities separate: a paper is closer to its own community's mean embedding
    Z = r1.embedding[:40]
    c0, c1 = Z[0::2].mean(axis=0), Z[1::2].mean(axis=0)
    own = np.where(np.arange(40) % 2 == 0, np.linalg.norm(Z - c0, axis=1), np.linalg.norm(Z - c1, axis=1))
    other = np.where(np.arange(40) % 2 == 0, np.linalg.norm(Z - c1, axis=1), np.linalg.norm(Z - c0, axis=1))
    assert np.mean(own < other) > 0.7           # 0.5 by chance (the pieces are noise)


# ------------------------------------------------------------------ errors
def test_bad_input_raises_clear_errors():
    graph, node_type, pieces, neighbours, _ = hetero_fixture(0)
    with pytest.raises(ValueError, match=r"pieces\[1\]\[0\] must be a \(4, F\) float array"):
        hetgnn_input(node_type, [pieces[0], [pieces[1][0][:3]], pieces[2]], neighbours)
    bad = [list(p) for p in pieces]
    bad[2][1] = bad[2][1].copy()
    bad[2][1][1, 0] = np.nan
    with pytest.raises(ValueError, match=r"pieces\[2\]\[1\] must be finite"):
        hetgnn_input(node_type, bad, neighbours)
    wrong = [neighbours[1], neighbours[1], neighbours[2]]
    with pytest.raises(ValueError, match=r"neighbours\[0\] must list nodes of type 0"):
        hetgnn_input(node_type, pieces, wrong)
    with pytest.raises(ValueError, match="one list of feature pieces per node type"):
        hetgnn_input(node_type, pieces[:2], neighbours)
    with pytest.raises(ValueError, match="restart must be a probability"):
        rwr_neighbours(graph, node_type, 2, restart=1.0)
    with pytest.raises(ValueError, match="one count per node type"):
        rwr_neighbours(graph, node_type, [1, 2])
    with pytest.raises(ValueError, match="node_type must be a"):
        rwr_neighbours(graph, node_type[:5], 2)
    with pytest.raises(ValueError, match="dim must be an even int"):
        HetGNN(PIECE_DIMS, dim=5)
    data = hetgnn_input(node_type, pieces, neighbours)
    model = HetGNN(PIECE_DIMS, dim=4, dtype=F64)
    with pytest.raises(ValueError, match=r"nodes must be a 1-D array of node ids in \[0, 11\)"):
        model.forward(np.array([11]), data)
    with pytest.raises(TypeError, match="HetGNNInput"):
        model.forward(np.array([1]), pieces)
    with pytest.raises(ValueError, match="three \\(B, d\\) arrays"):
        GraphContextLoss().forward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 3)))


def test_derivation_snippets_run():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "derivations" / "hetgnn.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "derivations/hetgnn.md", "exec"), {"__name__": "derivations.hetgnn"})
