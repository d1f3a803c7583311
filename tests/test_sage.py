"""GraphSAGE: SAGEConv against PyG and dense formulas, the LSTM against torch, the stated rules
(empty neighbourhood, max ties, zero rows under normalisation), mini-batch training, layer-wise and
k-hop inference, the unsupervised objective, and one-seed Cora floors."""
import threading

import numpy as np
import pytest

from gnn_scratch.data import csbm, get_dataset
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph import Graph
from gnn_scratch.io import load_model, save_model
from gnn_scratch.minibatch import BackgroundProducer, fit_minibatch, layerwise_inference
from gnn_scratch.models import build_model
from gnn_scratch.models.sage import SAGE
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.lstm import LSTM, pack_neighbours, pack_sequences
from gnn_scratch.nn.conv.sage_conv import NORM_EPS, SAGEConv
from gnn_scratch.optim import Adam
from gnn_scratch.sampling import khop_subgraph
from gnn_scratch.train import build_for, prepare_features, run
from gnn_scratch.unsupervised import (LogisticRegressionProbe, UnsupervisedLoss, negative_distribution,
                                      random_walks, sample_negatives, train_unsupervised)

F64 = np.float64


def small_data(seed=0, n=300):
    return csbm(num_nodes=n, num_features=8, num_classes=3, avg_degree=6, train_per_class=20, num_val=60,
                num_test=100, seed=seed)


def neighbours(graph, i):
    return graph.indices[graph.indptr[i]:graph.indptr[i + 1]]


def dense_sage(conv, H, graph):
    """SAGEConv written out row by row from its docstring (mean / sum / max)."""
    p = conv.params
    M = np.maximum(H @ p["W_proj"] + p["b_proj"], 0) if conv.project else H
    agg = np.zeros((graph.num_dst, M.shape[1]))
    for i in range(graph.num_dst):
        nb = neighbours(graph, i)
        if nb.size:
            agg[i] = {"mean": M[nb].mean(0), "sum": M[nb].sum(0), "max": M[nb].max(0)}[conv.aggr]
    W_self, W_neigh = ((p["W"][:conv.in_channels], p["W"][conv.in_channels:]) if conv.concat
                       else (p.get("W_self"), p["W_neigh"]))
    out = agg @ W_neigh + p["b"]
    if W_self is not None:
        out = out + H[:graph.num_dst] @ W_self
    if conv.normalize:
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), NORM_EPS)
    return out


GRAPHS = {"square": lambda: random_test_graph(0), "bipartite": lambda: random_test_graph(1, 6, 14, num_src=9)}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
@pytest.mark.parametrize("aggr", ["mean", "sum", "max"])
@pytest.mark.parametrize("kw", [dict(), dict(concat=True), dict(root_weight=False), dict(normalize=True),
                                dict(project=True), dict(project=False)])
@pytest.mark.parametrize("fin, fout", [(4, 3), (3, 5)])
def test_sageconv_equals_its_dense_definition(graph, aggr, kw, fin, fout):
    g = GRAPHS[graph]()
    conv = SAGEConv(fin, fout, aggr=aggr, seed=1, dtype=F64, **kw)
    conv.params["b"][:] = np.linspace(-1, 1, fout)
    H = np.random.default_rng(0).standard_normal((g.num_src, fin))
    np.testing.assert_allclose(conv(H, g), dense_sage(conv, H, g), rtol=1e-12, atol=1e-12)


@pytest.mark.oracle
@pytest.mark.parametrize("aggr, project", [("mean", False), ("sum", False), ("max", True), ("max", False),
                                           ("mean", True)])
@pytest.mark.parametrize("root_weight", [True, False])
@pytest.mark.parametrize("bipartite", [False, True])
def test_sageconv_equals_torch_geometric(aggr, project, root_weight, bipartite):
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    g = GRAPHS["bipartite" if bipartite else "square"]()
    H = np.random.default_rng(2).standard_normal((g.num_src, 4))
    conv = SAGEConv(4, 3, aggr=aggr, root_weight=root_weight, project=project, normalize=True, seed=3, dtype=F64)
    conv.params["b"][:] = [0.3, -0.1, 0.2]
    ref = pyg.SAGEConv(4, 3, aggr=aggr, root_weight=root_weight, project=project, normalize=True).double()
    with torch.no_grad():
        ref.lin_l.weight.copy_(torch.from_numpy(conv.params["W_neigh"].T))
        ref.lin_l.bias.copy_(torch.from_numpy(conv.params["b"]))
        if root_weight:
            ref.lin_r.weight.copy_(torch.from_numpy(conv.params["W_self"].T))
        if project:
            ref.lin.weight.copy_(torch.from_numpy(conv.params["W_proj"].T))
            ref.lin.bias.copy_(torch.from_numpy(conv.params["b_proj"]))
        Ht = torch.from_numpy(H)
        x = (Ht, Ht[:g.num_dst]) if bipartite else Ht
        expected = ref(x, torch.from_numpy(g.edge_index()), size=(g.num_src, g.num_dst) if bipartite else None)
    np.testing.assert_allclose(conv(H, g), expected.numpy(), rtol=1e-10, atol=1e-12)


def test_sparse_input_gives_the_dense_result_and_no_input_gradient():
    import scipy.sparse as sp
    g = random_test_graph(0)
    H = np.random.default_rng(0).standard_normal((8, 5)) * (np.random.default_rng(1).random((8, 5)) < 0.4)
    for aggr in ("mean", "sum", "max", "lstm"):
        conv = SAGEConv(5, 3, aggr=aggr, seed=4, dtype=F64).eval()
        dense_out = conv(H, g)
        conv.zero_grad()
        conv.backward(np.ones_like(dense_out))
        dense_grads = {k: v.copy() for k, v in conv.grads.items()}
        conv.zero_grad()
        np.testing.assert_allclose(conv(sp.csr_matrix(H), g), dense_out, rtol=1e-12, atol=1e-14)
        assert conv.backward(np.ones_like(dense_out)) is None
        for k, v in dense_grads.items():
            np.testing.assert_allclose(conv.grads[k], v, rtol=1e-10, atol=1e-13)


# --------------------------------------------------------------------------- stated rules
def test_empty_neighbourhood_aggregates_to_zero():
    # node 2 has no in-edge: without self term its output is the bias alone, for every aggregator
    g = Graph.from_edge_index(np.array([[0, 1, 2], [1, 0, 1]]), num_nodes=3)
    H = np.random.default_rng(0).standard_normal((3, 4))
    for aggr in ("mean", "sum", "max", "lstm"):
        conv = SAGEConv(4, 2, aggr=aggr, root_weight=False, seed=0, dtype=F64)
        conv.params["b"][:] = [0.5, -0.5]
        np.testing.assert_array_equal(conv(H, g)[2], [0.5, -0.5])


def test_max_tie_gives_the_gradient_to_the_first_source_in_csr_order():
    # sources 3 and 1 of node 0 carry identical features: 3 comes first in the row, it wins
    g = Graph.from_csr(np.array([0, 2, 2, 2, 2]), np.array([3, 1]))
    H = np.array([[0.0, 0], [1, 2], [0, 0], [1, 2]])
    conv = SAGEConv(2, 2, aggr="max", project=False, root_weight=False, seed=0, dtype=F64)
    conv(H, g)
    dH = conv.backward(np.array([[1.0, 1.0], [0, 0], [0, 0], [0, 0]]))
    assert np.all(dH[3] != 0) and np.all(dH[1] == 0)


def test_normalize_maps_a_zero_row_to_zero_and_scales_its_gradient_by_one_over_eps():
    g = Graph.from_edge_index(np.array([[0], [1]]), num_nodes=2)
    conv = SAGEConv(2, 2, aggr="mean", root_weight=False, normalize=True, seed=0, dtype=F64)
    H = np.array([[1.0, 2.0], [0.0, 0.0]])
    y = conv(H, g)                       # node 0 has no neighbour: its row is b = 0
    np.testing.assert_array_equal(y[0], 0)
    np.testing.assert_allclose(np.linalg.norm(y[1]), 1.0)
    conv.zero_grad()
    conv.backward(np.array([[1.0, -1.0], [0, 0]]))
    np.testing.assert_allclose(conv.grads["b"], np.array([1.0, -1.0]) / NORM_EPS)


def test_lstm_permutation_is_drawn_in_training_replayed_by_the_rng_and_csr_order_in_eval():
    g = csbm(num_nodes=60, num_features=3, num_classes=2, num_val=10, num_test=10, train_per_class=5, seed=0).graph
    H = np.random.default_rng(0).standard_normal((60, 3))
    conv = SAGEConv(3, 2, aggr="lstm", seed=1, dtype=F64)
    state = conv.rng.bit_generator.state
    a, b = conv(H, g), conv(H, g)
    assert not np.allclose(a, b), "two training forwards should read different permutations"
    conv.rng.bit_generator.state = state
    np.testing.assert_array_equal(conv(H, g), a)
    conv.eval()
    np.testing.assert_array_equal(conv(H, g), conv(H, g))


@pytest.mark.oracle
def test_packed_lstm_equals_a_plain_loop_and_torch():
    rng = np.random.default_rng(0)
    indptr = np.array([0, 3, 3, 7, 8])                      # lengths 3, 0, 4, 1
    items = rng.integers(0, 5, 8)
    x = rng.standard_normal((5, 3))
    lstm = LSTM(3, 4, seed=2, dtype=F64)
    out = lstm(x, pack_sequences(indptr, items, 5))
    W_x, W_h, b = lstm.params["W_x"], lstm.params["W_h"], lstm.params["b"]
    sig = lambda a: 1 / (1 + np.exp(-a))
    for s in range(4):
        h, c = np.zeros(4), np.zeros(4)
        for j in items[indptr[s]:indptr[s + 1]]:
            a = x[j] @ W_x + h @ W_h + b
            i, f, g, o = sig(a[:4]), sig(a[4:8]), np.tanh(a[8:12]), sig(a[12:])
            c = f * c + i * g
            h = o * np.tanh(c)
        np.testing.assert_allclose(out[s], h, rtol=1e-12, atol=1e-14)
    torch = pytest.importorskip("torch")
    ref = torch.nn.LSTM(3, 4, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.from_numpy(W_x.T))
        ref.weight_hh_l0.copy_(torch.from_numpy(W_h.T))
        ref.bias_ih_l0.copy_(torch.from_numpy(b))
        ref.bias_hh_l0.zero_()
        seq = torch.from_numpy(x[items[3:7]])[None]          # sequence 2, length 4
        _, (h_n, _) = ref(seq)
    np.testing.assert_allclose(out[2], h_n[0, 0].numpy(), rtol=1e-10)


def test_pack_neighbours_permutes_within_rows_only():
    g = random_test_graph(3, 10, 30)
    seqs = pack_neighbours(g, np.random.default_rng(1))
    for t in range(seqs.num_steps):
        rows = seqs.order[:seqs.batch_sizes[t]]
        assert np.all(g.in_degree()[rows] > t)
    for s in range(g.num_dst):                             # each row's items are a permutation of its sources
        k = np.flatnonzero(seqs.order == s)[0]
        got = [seqs.items[seqs.offsets[t] + k] for t in range(seqs.lengths[s])]
        assert sorted(got) == sorted(neighbours(g, s).tolist())


def test_sageconv_errors_name_the_argument():
    g = random_test_graph(0)
    with pytest.raises(ValueError, match="aggr"):
        SAGEConv(3, 2, aggr="median")
    with pytest.raises(ValueError, match="root_weight"):
        SAGEConv(3, 2, concat=True, root_weight=False)
    with pytest.raises(ValueError, match="agg_channels"):
        SAGEConv(3, 2, aggr="mean", agg_channels=4)
    with pytest.raises(ValueError, match="in_channels"):
        SAGEConv(0, 2)
    conv = SAGEConv(3, 2, dtype=F64)
    with pytest.raises(BackwardBeforeForward):
        conv.backward(np.ones((8, 2)))
    with pytest.raises(ValueError, match="graph"):
        conv(np.ones((8, 3)))
    with pytest.raises(ValueError, match=r"shape \(8, 3\)"):
        conv(np.ones((7, 3)), g)
    with pytest.raises(TypeError, match="dtype"):
        conv(np.ones((8, 3), np.float32), g)
    with pytest.raises(ValueError, match="blocks"):
        SAGE(3, 2)(np.ones((8, 3), np.float32), [g])


# --------------------------------------------------------------------------- inference
@pytest.mark.parametrize("aggr", ["mean", "max", "lstm"])
def test_layerwise_inference_equals_the_full_graph_forward(aggr):
    d = small_data(1)
    x = d.x.astype(F64)
    model = SAGE(8, 3, hidden_channels=6, aggr=aggr, seed=2, dtype="float64").eval()
    full = model.forward(x, d.graph)
    np.testing.assert_allclose(layerwise_inference(model, x, d.graph, batch_size=37), full, rtol=1e-10, atol=1e-12)


def test_khop_subgraph_reproduces_the_full_graph_output_at_the_seeds():
    d = small_data(2)
    x = d.x.astype(F64)
    model = SAGE(8, 3, hidden_channels=6, aggr="lstm", seed=3, dtype="float64").eval()
    seeds = np.array([5, 77, 123])
    sub, nodes = khop_subgraph(d.graph, seeds, 2)
    assert sub.num_nodes < d.num_nodes
    np.testing.assert_allclose(model.forward(x[nodes], sub)[:3], model.forward(x, d.graph)[seeds], rtol=1e-10)


# --------------------------------------------------------------------------- mini-batch machinery
def test_background_producer_propagates_errors_and_shuts_down():
    def failing():
        yield 1
        raise KeyError("boom in the sampler")
    with BackgroundProducer(failing(), maxsize=1) as it:
        assert next(it) == 1
        with pytest.raises(KeyError, match="boom"):
            next(it)
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1
    before = threading.active_count()
    with BackgroundProducer(endless(), maxsize=2) as it:
        assert [next(it) for _ in range(3)] == [0, 1, 2]
    assert threading.active_count() == before, "the producer thread must be joined on exit"
    assert len(produced) <= 3 + 2 + 1, "the queue bound must hold the producer back"
    with pytest.raises(ValueError, match="maxsize"):
        BackgroundProducer(iter([]), maxsize=0)


def test_threaded_and_unthreaded_minibatch_training_are_identical():
    d = small_data(3)
    states = []
    for use_thread in (True, False):
        model, opt, hp = build_for("sage", d, 0, dict(hidden_channels=8, aggr="mean"))
        res = fit_minibatch(model, d, opt, epochs=3, batch_size=16, fanouts=[4, 3], seed=5, use_thread=use_thread)
        states.append((model.state_dict(), res.test_acc))
    for k, v in states[0][0].items():
        np.testing.assert_array_equal(v, states[1][0][k])
    assert states[0][1] == states[1][1]


def test_sage_model_config_saves_and_loads(tmp_path):
    model = build_model("sage", in_channels=8, out_channels=3, aggr="max", hidden_channels=6, seed=1)
    assert set(model.config) == {"model", "in_channels", "out_channels", "hidden_channels", "num_layers", "dropout",
                                 "aggr", "agg_channels", "normalize", "seed", "dtype"}
    save_model(tmp_path / "m.npz", model)
    back, _ = load_model(tmp_path / "m.npz")
    d = small_data(4)
    np.testing.assert_array_equal(back.forward(d.x, d.graph), model.eval().forward(d.x, d.graph))


# --------------------------------------------------------------------------- unsupervised
def test_random_walks_follow_in_edges_and_negatives_follow_degree_power():
    g = random_test_graph(5, 12, 40)
    walks = random_walks(g, np.arange(12), 4, seed=1)
    for w in walks:
        for a, b in zip(w[:-1], w[1:]):
            if b < 0:
                break
            assert b in neighbours(g, a)
    p = negative_distribution(g)
    np.testing.assert_allclose(p, g.in_degree() ** 0.75 / (g.in_degree() ** 0.75).sum())
    draws = sample_negatives(p, 200_000, np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(draws, minlength=12) / draws.size, p, atol=0.005)


def test_unsupervised_training_lowers_the_loss_and_the_probe_fits():
    d = small_data(5)
    x = d.x.astype(np.float32)
    model = SAGE(8, 8, hidden_channels=8, dropout=0.0, normalize=True, seed=1)
    losses = train_unsupervised(model, d.graph, x, Adam(model.parameters(), lr=0.01), steps=40, batch_size=64,
                                fanouts=[5, 5], seed=0)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    Z = layerwise_inference(model, x, d.graph)
    probe = LogisticRegressionProbe(3, l2=1e-3).fit(Z[d.train_mask], d.y[d.train_mask])
    assert probe.score(Z[d.test_mask], d.y[d.test_mask]) > 0.5
    with pytest.raises(ValueError, match="neg"):
        UnsupervisedLoss().forward(Z, np.array([0]), np.array([1]), np.array([2]))


# --------------------------------------------------------------------------- Cora floors
@pytest.fixture(scope="module")
def cora(data_root):
    return get_dataset("cora", root=data_root)


def test_cora_full_batch_mean_reaches_the_floor(cora):
    summary, _ = run("sage", cora, runs=1, seed=0)
    assert summary["test_acc_mean"] >= 0.79, summary["test_acc"]


def test_cora_minibatch_short_run_reaches_the_floor(cora):
    model, opt, _ = build_for("sage", cora, 0, {})
    res = fit_minibatch(model, cora, opt, epochs=30, batch_size=35, fanouts=[10, 10], x=prepare_features(cora),
                        seed=0)
    assert res.test_acc >= 0.76, res.test_acc


# --------------------------------------------------------------------------- docs that run
@pytest.mark.parametrize("name", ["sage.md", "lstm.md"])
def test_derivation_snippets_run(name):
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "derivations" / name).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{name} has no Python block"
    for code in blocks:
        exec(compile(code, name, "exec"), {})
