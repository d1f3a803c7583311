"""Over-smoothing: the metrics on known values, the deep models and their remedies (residual, PairNorm, DropEdge,
GCNII), finite differences, PyG, and the smoothing itself on Cora."""
import json
import math

import numpy as np
import pytest

from gnn_scratch.analysis.oversmoothing import (dirichlet_energy, hop_masks, mad, mad_gap, relative_dirichlet_energy,
                                                state_metrics)
from gnn_scratch.cli import main
from gnn_scratch.gradcheck import oversmoothing as os_cases
from gnn_scratch.gradcheck import relative_error
from gnn_scratch.graph import Graph
from gnn_scratch.graph.transforms import dropout_edge
from gnn_scratch.models import MODELS, build_model
from gnn_scratch.models.deep import GCNII, DeepGCN
from gnn_scratch.nn import BackwardBeforeForward
from gnn_scratch.nn.conv.gcn2_conv import GCN2Conv
from gnn_scratch.nn.pair_norm import PairNorm

F64 = np.float64
DEEP = ("deep_gcn", "deep_gat", "deep_sage", "gcnii")


def undirected(pairs, n):
    """A Graph with both directions of every pair (i, j)."""
    e = np.array(pairs).T
    return Graph.from_edge_index(np.concatenate([e, e[::-1]], axis=1), num_nodes=n)


def path(n):
    return undirected([(i, i + 1) for i in range(n - 1)], n)


def random_graph(seed, n=12, num_edges=30, weighted=False):
    """Random directed graph with an isolated node (the last), a self-loop 0 -> 0 and the edge 1 -> 2 three times."""
    rng = np.random.default_rng(seed)
    src = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 1, 1, 1]])
    dst = np.concatenate([rng.integers(0, n - 1, num_edges), [0, 2, 2, 2]])
    ei = np.stack([src, dst])
    w = rng.uniform(0.5, 2.0, ei.shape[1]) if weighted else None
    return Graph.from_edge_index(ei, n, w), ei, w


# ================================================================================== the metrics
def test_energy_of_a_hand_computed_example():
    g = path(3)                                   # 0 - 1 - 2, degrees 1, 2, 1
    H = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # plain: 2 ||h0 - h1||^2 + 2 ||h1 - h2||^2 = 2 * 2 + 2 * 1, over N = 3
    assert dirichlet_energy(H, g, normalized=False) == pytest.approx(6 / 3, rel=1e-15)
    # normalised: ||h0/sqrt2 - h1/sqrt3||^2 = 1/2 + 1/3;  ||h1/sqrt3 - h2/sqrt2||^2 = 1/2 + (1/sqrt3 - 1/sqrt2)^2
    want = (2 * (1 / 2 + 1 / 3) + 2 * (1 / 2 + (1 / math.sqrt(3) - 1 / math.sqrt(2)) ** 2)) / 3
    assert dirichlet_energy(H, g) == pytest.approx(want, rel=1e-14)
    assert relative_dirichlet_energy(H, g) == pytest.approx(want / (4 / 3), rel=1e-14)   # ||H||^2 / N = 4 / 3


def test_energy_is_zero_exactly_on_the_smooth_states_and_ignores_self_loops():
    g = Graph.from_edge_index(np.array([[0, 1, 1, 2, 2, 3, 2], [1, 0, 2, 1, 3, 2, 2]]), num_nodes=5)  # loop 2->2
    c = np.random.default_rng(0).standard_normal(4)
    const = np.tile(c, (5, 1))
    assert dirichlet_energy(const, g, normalized=False) == 0.0
    assert dirichlet_energy(const, g) > 0                        # degrees differ: constant is not smooth here
    d = np.array([1, 2, 2, 1, 0])                                # in-degrees without the self-loop
    assert dirichlet_energy(np.sqrt(1 + d)[:, None] * const, g) == pytest.approx(0.0, abs=1e-28)
    H = np.random.default_rng(1).standard_normal((5, 4))
    assert dirichlet_energy(H, g) > 0 and relative_dirichlet_energy(np.zeros((5, 4)), g) == 0.0


def test_mad_of_a_hand_computed_example():
    H = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # D01 = 1, D02 = D12 = 1 - 1/sqrt2; row means over nonzero entries, then the mean over rows
    r0 = (1 + (1 - 1 / math.sqrt(2))) / 2
    assert mad(H) == pytest.approx((2 * r0 + (1 - 1 / math.sqrt(2))) / 3, rel=1e-14)
    only01 = np.zeros((3, 3))
    only01[0, 1] = only01[1, 0] = 1
    assert mad(H, only01) == pytest.approx(1.0, rel=1e-15)   # row 2 has no pair: it is not averaged in as 0
    assert mad(H, np.zeros((3, 3))) == 0.0


def test_mad_is_zero_for_parallel_states_and_a_zero_row_is_at_distance_one():
    c = np.random.default_rng(0).standard_normal(6)
    assert mad(np.outer([1.0, 2.0, 0.5, 3.0], c)) == pytest.approx(0.0, abs=1e-15)   # same direction: cos = 1
    H = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert mad(H) == pytest.approx(1.0)                  # scikit-learn's convention, which Chen et al.'s code uses


def test_mad_blocks_agree_with_a_dense_computation(monkeypatch):
    from gnn_scratch.analysis import oversmoothing
    rng = np.random.default_rng(3)
    H, M = rng.standard_normal((37, 5)), rng.random((37, 37)) < 0.3
    U = H / np.linalg.norm(H, axis=1, keepdims=True)
    D = np.clip(1 - U @ U.T, 0, 2) * M
    np.fill_diagonal(D, 0)
    rows = np.array([D[i][D[i] > 0].mean() if (D[i] > 0).any() else 0.0 for i in range(37)])
    want = rows[rows > 0].mean()
    monkeypatch.setattr(oversmoothing, "ROW_BLOCK", 8)              # several blocks, a ragged last one
    assert mad(H, M) == pytest.approx(want, rel=1e-13)


def test_hop_masks_on_two_paths_count_unreachable_pairs_as_remote():
    g = undirected([(i, i + 1) for i in range(11)] + [(12, 13)], 14)   # a 12-path and a separate edge
    neb, rmt = hop_masks(g)
    i, j = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    np.testing.assert_array_equal(neb[:12, :12], (abs(i - j) >= 1) & (abs(i - j) <= 3))
    np.testing.assert_array_equal(rmt[:12, :12], abs(i - j) >= 8)
    assert rmt[:12, 12:].all() and rmt[12:, :12].all() and not neb[:12, 12:].any()
    assert neb[12, 13] and not rmt[12, 13]
    assert hop_masks(g) is hop_masks(g)                             # cached on the graph
    with pytest.raises(ValueError, match="1 <= neighbor_hops < remote_hops"):
        hop_masks(g, 3, 3)


def test_mad_gap_is_remote_minus_neighbour_mad():
    g = path(14)
    H = np.random.default_rng(5).standard_normal((14, 3))
    neb, rmt = hop_masks(g)
    assert mad_gap(H, g) == pytest.approx(mad(H, rmt) - mad(H, neb), rel=1e-14)
    ramp = np.stack([np.cos(np.linspace(0, 3, 14)), np.sin(np.linspace(0, 3, 14))], axis=1)  # smooth along the path
    assert mad_gap(ramp, g) > 0.3
    assert mad_gap(np.tile([1.0, 2.0], (14, 1)), g) == pytest.approx(0.0, abs=1e-15)
    metrics = state_metrics([H, ramp], g)
    assert metrics[1]["mad_gap"] == pytest.approx(mad_gap(ramp, g)) and metrics[0]["mad"] == pytest.approx(mad(H))


def test_metrics_refuse_bad_states():
    g = path(4)
    with pytest.raises(ValueError, match="one row per node of the graph"):
        dirichlet_energy(np.zeros((3, 2)), g)
    with pytest.raises(ValueError, match="2-D"):
        mad(np.zeros(4))
    with pytest.raises(ValueError, match="finite.*row 1, column 0"):
        mad_gap(np.array([[0.0], [np.nan], [1.0], [2.0]]), g)
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 4\)"):
        mad(np.ones((4, 2)), np.ones((3, 3)))


# ================================================================================== DropEdge
def test_dropout_edge_keeps_about_one_minus_p_and_is_a_function_of_the_key():
    rng = np.random.default_rng(0)
    ei = rng.integers(0, 500, (2, 20000))
    g = Graph.from_edge_index(ei, 500, rng.uniform(0.5, 2, 20000))
    for p in (0.2, 0.5, 0.8):
        sub, mask = dropout_edge(g, p, key=7)
        kept = mask.sum()
        assert abs(kept - (1 - p) * 20000) < 5 * math.sqrt(20000 * p * (1 - p)), (p, kept)
        assert sub.num_edges == kept and sub.num_nodes == g.num_nodes
        np.testing.assert_array_equal(sub.edge_index(), g.edge_index()[:, mask])   # the kept edges, in order
        np.testing.assert_array_equal(sub.edge_weight, g.edge_weight[mask])
        np.testing.assert_array_equal(sub.edge_id, g.edge_id[mask])                # still the input's columns
    a, b, c = (dropout_edge(g, 0.5, key=k)[1] for k in (11, 11, 12))
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.4                                      # another key, another subset


def test_dropout_edge_is_the_identity_at_evaluation_and_refuses_bad_arguments():
    g, _, _ = random_graph(0)
    for kw in (dict(p=0.5, training=False), dict(p=0.0)):
        sub, mask = dropout_edge(g, key=3, **kw)
        assert sub is g and mask.all()
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\)"):
        dropout_edge(g, 1.0)
    with pytest.raises(TypeError, match="key must be an integer"):
        dropout_edge(g, 0.5, key=-1)
    with pytest.raises(TypeError, match="gnn_scratch Graph"):
        dropout_edge(np.zeros((2, 3)), 0.5)


def test_a_model_with_dropedge_trains_on_a_fresh_subgraph_and_evaluates_on_the_graph():
    g, _, _ = random_graph(1, n=30, num_edges=120)
    x = np.random.default_rng(2).standard_normal((30, 5))
    kw = dict(hidden_channels=6, num_layers=3, dropout=0.0, seed=4, dtype="float64")
    model, plain = DeepGCN(5, 3, dropedge=0.5, **kw), DeepGCN(5, 3, **kw)
    np.testing.assert_array_equal(model.eval().forward(x, g), plain.eval().forward(x, g))   # eval: the whole graph
    model.train()
    state = model.rng.bit_generator.state
    first, second = model.forward(x, g), model.forward(x, g)
    assert not np.allclose(first, second)                                 # a fresh subgraph per training step
    replay = np.random.default_rng()
    replay.bit_generator.state = state
    sub = dropout_edge(g, 0.5, replay.integers(0, 1 << 64, dtype=np.uint64))[0]
    # the layers just see another graph (GCN's normalisation then recomputed on it)
    np.testing.assert_array_equal(first, plain.train().forward(x, sub))


# ================================================================================== PairNorm
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_pair_norm_centres_and_fixes_the_total_pairwise_distance(scale):
    x = np.random.default_rng(0).standard_normal((40, 6)) * 3 + 5
    y = PairNorm(scale=scale, eps=0.0).forward(x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-14)
    assert np.mean(np.sum(y * y, axis=1)) == pytest.approx(scale ** 2, rel=1e-13)
    pair = np.mean(np.sum((y[:, None] - y[None]) ** 2, axis=2))           # (1/N^2) sum_ij ||y_i - y_j||^2
    assert pair == pytest.approx(2 * scale ** 2, rel=1e-12)
    ysi = PairNorm(scale=scale, scale_individually=True, eps=1e-12).forward(x)
    np.testing.assert_allclose(np.linalg.norm(ysi, axis=1), scale, rtol=1e-10)


def test_pair_norm_keeps_the_dtype_and_refuses_bad_settings():
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    assert PairNorm().forward(x).dtype == np.float32
    with pytest.raises(ValueError, match="eps must be > 0"):
        PairNorm(scale_individually=True, eps=0.0)
    with pytest.raises(BackwardBeforeForward):
        PairNorm().backward(x)


# ================================================================================== GCN2Conv
def test_gcn2_conv_equals_its_dense_definition():
    g, _, w = random_graph(3, weighted=True)
    rng = np.random.default_rng(1)
    x, x_0 = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
    for shared in (True, False):
        conv = GCN2Conv(4, alpha=0.3, theta=0.5, layer=2, shared_weights=shared, normalize=False, seed=2, dtype=F64)
        A = g.to_scipy().toarray()
        beta = math.log(0.5 / 2 + 1)
        W2 = conv.params["W1"] if shared else conv.params["W2"]
        want = (0.7 * A @ x) @ ((1 - beta) * np.eye(4) + beta * conv.params["W1"]) \
            + (0.3 * x_0) @ ((1 - beta) * np.eye(4) + beta * W2)
        np.testing.assert_allclose(conv(x, x_0, g), want, rtol=1e-13, atol=1e-13)


def test_gcn2_conv_refuses_bad_arguments():
    with pytest.raises(ValueError, match="theta and layer go together"):
        GCN2Conv(4, 0.1, theta=0.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        GCN2Conv(4, 1.5)
    with pytest.raises(ValueError, match="layer must be an int >= 1"):
        GCN2Conv(4, 0.1, theta=0.5, layer=0)
    conv = GCN2Conv(4, 0.1, dtype=F64)
    g, _, _ = random_graph(0)
    with pytest.raises(ValueError, match="x_0"):
        conv(np.zeros((12, 4)), np.zeros((12, 3)), g)
    with pytest.raises(BackwardBeforeForward):
        GCN2Conv(4, 0.1).backward(np.zeros((12, 4), np.float32))


# ================================================================================== finite differences
@pytest.mark.parametrize("cases", [os_cases.pair_norm, os_cases.gcn2_conv, os_cases.deep_models])
def test_gradcheck_rows_pass(cases, backend):
    rows = cases()
    assert rows
    for r in rows:
        assert r.passed, f"{r.case} / {r.parameter}: relative error {r.error:.2e} with {backend} kernels"


def test_gcn2_conv_gradcheck_covers_both_inputs_and_both_weights():
    names = {(r.case.split(" [")[0], r.parameter) for r in os_cases.gcn2_conv()}
    assert ("GCN2Conv shared=False theta=0.5 layer=3", "W2") in names
    assert ("GCN2Conv shared=True theta=None layer=None", "input x_0") in names


# ================================================================================== PyG
@pytest.mark.oracle
@pytest.mark.parametrize("scale_individually", [False, True])
def test_pair_norm_equals_torch_geometric(scale_individually):
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    for seed in range(3):
        rng = np.random.default_rng(seed)
        x, G = rng.standard_normal((15, 4)) * 2 + 1, rng.standard_normal((15, 4))
        ours = PairNorm(scale=1.3, scale_individually=scale_individually)
        out = ours.forward(x)
        dx = ours.backward(G)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = pyg.PairNorm(scale=1.3, scale_individually=scale_individually)(xt)
        yt.backward(torch.from_numpy(G))
        assert relative_error(out, yt.detach().numpy()) <= 1e-10
        assert relative_error(dx, xt.grad.numpy()) <= 1e-10


@pytest.mark.oracle
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("theta, layer", [(None, None), (0.5, 4)])
@pytest.mark.parametrize("normalize, weighted", [(True, False), (True, True), (False, True)])
def test_gcn2_conv_equals_torch_geometric(shared, theta, layer, normalize, weighted):
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    for seed in range(3):
        g, ei, w = random_graph(seed, weighted=weighted)
        rng = np.random.default_rng(100 + seed)
        x, x_0, G = (rng.standard_normal((12, 5)) for _ in range(3))
        conv = GCN2Conv(5, alpha=0.2, theta=theta, layer=layer, shared_weights=shared, normalize=normalize,
                        seed=seed, dtype=F64)
        out = conv(x, x_0, g)
        conv.zero_grad()
        dx, dx_0 = conv.backward(G)

        ref = pyg.GCN2Conv(5, alpha=0.2, theta=theta, layer=layer, shared_weights=shared,
                           normalize=normalize).double()
        with torch.no_grad():                               # PyG multiplies x @ weight1: no transpose
            ref.weight1.copy_(torch.from_numpy(conv.params["W1"]))
            if not shared:
                ref.weight2.copy_(torch.from_numpy(conv.params["W2"]))
        xt, x0t = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(x_0).requires_grad_(True)
        yt = ref(xt, x0t, torch.from_numpy(ei), None if w is None else torch.from_numpy(w))
        yt.backward(torch.from_numpy(G))
        checks = [("out", out, yt.detach().numpy()), ("x", dx, xt.grad.numpy()), ("x_0", dx_0, x0t.grad.numpy()),
                  ("W1", conv.grads["W1"], ref.weight1.grad.numpy())]
        if not shared:
            checks.append(("W2", conv.grads["W2"], ref.weight2.grad.numpy()))
        for name, a, b in checks:
            assert relative_error(a, b) <= 1e-10, (seed, name, relative_error(a, b))


# ================================================================================== the models
@pytest.mark.parametrize("name", DEEP)
def test_deep_models_run_forward_and_backward_and_keep_one_state_per_layer(name):
    g, _, _ = random_graph(2, n=20, num_edges=60)
    x = np.random.default_rng(0).standard_normal((20, 6))
    kw = dict(in_channels=6, out_channels=3, hidden_channels=4, num_layers=3, seed=1, dtype="float64")
    extra = [{}] if name == "gcnii" else [{}, dict(residual=True, pairnorm=True, dropedge=0.3)]
    for flags in extra:
        model = build_model(name, **kw, **flags).train()
        out = model.forward(x, g)
        assert out.shape == (20, 3) and len(model.states) == 3
        assert all(h.shape[0] == 20 for h in model.states)
        dx = model.backward(np.ones_like(out))
        assert dx.shape == x.shape and np.isfinite(dx).all()
        assert any(np.abs(gr).sum() > 0 for _, _, gr in model.named_parameters())
    assert MODELS[name].devices == ("cpu",)


def test_residual_model_state_is_the_sum_of_its_input_and_the_block():
    g, _, _ = random_graph(3, n=16, num_edges=50)
    x = np.random.default_rng(0).standard_normal((16, 5))
    kw = dict(hidden_channels=4, num_layers=4, dropout=0.0, seed=2, dtype="float64")
    res, plain = DeepGCN(5, 3, residual=True, **kw).eval(), DeepGCN(5, 3, **kw).eval()
    res.forward(x, g)
    # layer 2 of the residual model: h2 = relu(conv2(h1)) + h1 (same weights as the plain model's)
    block = plain.act2.forward(plain.conv2.forward(res.states[0], g))
    np.testing.assert_allclose(res.states[1], block + res.states[0], rtol=1e-14)


def test_gcnii_param_groups_follow_the_paper():
    model = GCNII(6, 3, hidden_channels=4, num_layers=3)
    convs, dense = model.param_groups(0.01)
    assert convs["weight_decay"] == 0.01 and dense["weight_decay"] == 5e-4
    assert len(convs["params"]) == 3 and len(dense["params"]) == 4
    assert model.param_groups(0.0)[1]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="num_layers must be an int >= 2"):
        DeepGCN(6, 3, num_layers=1)
    with pytest.raises(ValueError, match=r"dropedge must be a probability in \[0, 1\)"):
        DeepGCN(6, 3, dropedge=1.0)


def test_the_command_line_passes_the_depth_and_the_remedies(capsys):
    assert main(["train", "--model", "deep_gcn", "--dataset", "karate", "--num-layers", "3", "--residual",
                 "--pairnorm", "--dropedge", "0.2", "--hidden", "4", "--epochs", "2", "--quiet", "--json"]) == 0
    hp = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hparams"]
    assert (hp["num_layers"], hp["residual"], hp["pairnorm"], hp["dropedge"]) == (3, True, True, 0.2)
    assert main(["train", "--model", "gcn", "--dataset", "karate", "--residual", "--epochs", "1", "--quiet"]) == 2
    assert "--residual applies to deep_gcn" in capsys.readouterr().err


# ================================================================================== the smoothing itself
@pytest.fixture(scope="module")
def cora(data_root):
    from gnn_scratch.data import get_dataset
    from gnn_scratch.loop import prepare_features
    d = get_dataset("cora", root=data_root)
    return d, prepare_features(d)


@pytest.mark.parametrize("seed", [0, 1])
def test_an_untrained_deep_gcn_smooths_cora_layer_after_layer(cora, seed):
    data, x = cora
    model = DeepGCN(data.num_features, data.num_classes, num_layers=6, seed=seed).eval()
    model.forward(x, data.graph)
    hidden = model.states[:-1]
    energy = [dirichlet_energy(h, data.graph) for h in hidden]
    relative = [relative_dirichlet_energy(h, data.graph) for h in hidden]
    assert all(b < a for a, b in zip(energy, energy[1:])), energy
    assert all(b < a for a, b in zip(relative, relative[1:])), relative     # not only shrinking: becoming alike
    assert energy[-1] < 0.05 * energy[0]


def test_gcnii_keeps_the_energy_that_a_gcn_of_the_same_depth_loses(cora):
    data, x = cora
    gcn = DeepGCN(data.num_features, data.num_classes, num_layers=8, seed=0).eval()
    gcnii = GCNII(data.num_features, data.num_classes, num_layers=8, seed=0).eval()
    gcn.forward(x, data.graph)
    gcnii.forward(x, data.graph)
    e_gcn = [relative_dirichlet_energy(h, data.graph) for h in gcn.states[:-1]]
    e_ii = [relative_dirichlet_energy(h, data.graph) for h in gcnii.states]
    assert e_ii[-1] > 0.5 * e_ii[1]                       # the initial residual holds it up
    assert e_gcn[-1] < 0.1 * e_gcn[0]


@pytest.mark.parametrize("page", ["pair_norm.md", "gcn2_conv.md"])
def test_derivation_snippets_run(page):
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "derivations" / page).read_text(encoding="utf-8")
    blocks = re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)
    assert blocks, page
    namespace = {"__name__": f"derivations.{page}"}
    for n, code in enumerate(blocks):
        exec(compile(code, f"derivations/{page}:python-block-{n}", "exec"), namespace)


@pytest.mark.parametrize("name", DEEP)
def test_deep_models_save_and_load_to_the_same_predictions(name, tmp_path):
    from gnn_scratch.io import load_model, save_model
    g, _, _ = random_graph(4, n=20, num_edges=60)
    x = np.random.default_rng(0).standard_normal((20, 6))
    flags = {} if name == "gcnii" else dict(residual=True, pairnorm=True, dropedge=0.2)
    model = build_model(name, in_channels=6, out_channels=3, hidden_channels=4, num_layers=3, seed=5,
                        dtype="float64", **flags).eval()
    for _, p, _ in model.named_parameters():                 # not the seed's weights: loading must restore them
        p += np.random.default_rng(1).standard_normal(p.shape)
    loaded, _ = load_model(save_model(tmp_path / name, model))
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.eval().forward(x, g), model.forward(x, g))
