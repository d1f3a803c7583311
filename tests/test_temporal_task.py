"""The forecasting task: batching windows as one block-diagonal graph is exact, the task refuses what it
cannot do, the command line runs end to end, and GConvGRU beats the mean on Chickenpox."""
import json

import numpy as np
import pytest

from gnn_scratch import cli
from gnn_scratch.gradcheck import random_test_graph
from gnn_scratch.graph import GraphBatch
from gnn_scratch.models import build_model
from gnn_scratch.nn import MSELoss
from gnn_scratch.tasks import get_task


def test_a_block_diagonal_batch_equals_the_per_snapshot_loop():
    """PyG Temporal's loop sums per-snapshot losses (each from a zero state); one forward over the
    block-diagonal batch of the snapshots gives the same loss and the same gradients."""
    g = random_test_graph(0)
    rng = np.random.default_rng(0)
    S, N = 5, g.num_nodes
    X, Y = rng.standard_normal((S, N, 4)), rng.standard_normal((S, N, 1))
    grads = []
    for batched in (False, True):
        m = build_model("gconv_gru", in_channels=4, hidden_channels=6, K=3, dtype="float64")
        m.zero_grad()
        loss = MSELoss()
        if batched:
            big = GraphBatch.from_graphs([g] * S)
            total = float(loss.forward(m.forward([X.reshape(S * N, 4)], big), Y.reshape(S * N, 1)))
            m.backward(loss.backward())
        else:
            total = 0.0
            for s in range(S):
                total += float(loss.forward(m.forward([X[s]], g), Y[s])) / S
                m.backward(loss.backward() / S)
        grads.append((total, {n: gr.copy() for n, _, gr in m.named_parameters()}))
    (l1, g1), (l2, g2) = grads
    assert l1 == pytest.approx(l2, rel=1e-12)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-10, atol=1e-13)


def test_sequence_input_carries_the_state_and_features_input_does_not():
    g = random_test_graph(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3))
    m = build_model("gconv_gru", in_channels=1, hidden_channels=5, dtype="float64")
    steps = [x[:, t:t + 1] for t in range(3)]
    full = m.forward(steps, g)
    last_only = m.forward(steps[-1:], g)
    assert np.abs(full - last_only).max() > 1e-6          # earlier steps reach the output through the state


def test_the_tasks_refuse_each_others_models():
    with pytest.raises(ValueError, match="not a recurrent forecaster"):
        get_task("temporal").validate("gcn")
    with pytest.raises(ValueError, match="temporal"):
        get_task("node").validate("gconv_gru")
    with pytest.raises(ValueError, match="score per graph|one score per graph|graph task takes"):
        get_task("graph").validate("gconv_gru")


def test_mse_refuses_to_broadcast_a_column_against_a_vector():
    with pytest.raises(ValueError, match="no broadcasting"):
        MSELoss().forward(np.zeros((20, 1)), np.zeros(20))


@pytest.fixture(scope="module")
def chickenpox(request):
    from conftest import shared_data_root
    from gnn_scratch.data import load_temporal
    root = shared_data_root()
    if not (root / "temporal" / "chickenpox.json").exists():
        pytest.skip(f"temporal/chickenpox.json not under {root}")
    return load_temporal("chickenpox", root=root)


def test_gconv_gru_beats_the_historical_mean_on_chickenpox(chickenpox):
    """One seed, PyG Temporal's setting (4 lags, 32 filters, Adam 0.01, 200 epochs, train_ratio 0.2), K = 2."""
    summary, _ = get_task("temporal").run("gconv_gru", chickenpox, seed=0)
    mse = summary["test"]["mse"]["mean"]
    assert mse < summary["baselines"]["historical_mean"]["mse"] - 0.05
    assert mse < 0.9                                     # README: 10 seeds and PyG Temporal beside it


def test_dynamic_graph_refuses_sequence_input():
    from gnn_scratch.data.temporal import TemporalSignal
    rng = np.random.default_rng(0)
    series = rng.standard_normal((12, 4))
    eis = tuple(np.array([[0, 1], [1, 2]]) for _ in range(12 - 3))
    sig = TemporalSignal(name="toy", edge_index=eis, edge_weight=None, num_nodes=4, signal=series, lags=3,
                         features=np.stack([series[s:s + 3].T for s in range(9)]),
                         targets=np.stack([series[s + 3] for s in range(9)]))
    with pytest.raises(ValueError, match="graph per snapshot"):
        get_task("temporal").run("gconv_gru", sig, input="sequence", epochs=1, train_ratio=0.5)
    summary, _ = get_task("temporal").run("gconv_gru", sig, epochs=2, train_ratio=0.5)
    assert np.isfinite(summary["test"]["mse"]["mean"])


def test_cli_trains_on_chickenpox_and_prints_json(chickenpox, capsys, monkeypatch):
    from conftest import shared_data_root
    monkeypatch.setenv("GNN_SCRATCH_DATA", str(shared_data_root()))
    rc = cli.main(["train", "--task", "temporal", "--model", "gconv_gru", "--dataset", "chickenpox", "--epochs", "3",
                   "--K", "1", "--hidden", "8", "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "gconv_gru" and out["hparams"]["K"] == 1 and out["input"] == "features"
    assert set(out["baselines"]) >= {"last_value", "historical_mean", "ar_shared"}
    assert np.isfinite(out["test"]["mse"]["mean"])


def test_cli_names_options_of_another_task(capsys):
    rc = cli.main(["train", "--task", "node", "--model", "gcn", "--dataset", "karate", "--seq-len", "4"])
    assert rc == 2
    assert "--task temporal" in capsys.readouterr().err
