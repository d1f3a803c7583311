"""The torch peer of scripts/temporal_chickenpox.py (``bench.pyg_temporal_train``) trains what the temporal
task trains: from the same initial weights, the same first-epoch loss and the same test MSE after several
Adam steps (float64); its batched loop equals PyG Temporal's per-snapshot loop for either loss."""
import numpy as np
import pytest

from gnn_scratch.data.temporal import TemporalSignal, temporal_signal_split
from gnn_scratch.gradcheck import relative_error
from gnn_scratch.models.temporal import GConvGRUForecaster
from gnn_scratch.nn import MSELoss
from gnn_scratch.tasks import get_task
from gnn_scratch.tasks.temporal import Windows

N, T, LAGS = 7, 26, 4


def _signal(seed=0):
    """A random series on a ring (both ways) with a self-loop on every node: every node has in- and
    out-edges (DCRNN divides by the degrees) and no edge repeats."""
    rng = np.random.default_rng(seed)
    ring = np.arange(N)
    src = np.concatenate([ring, ring, ring])
    dst = np.concatenate([ring, (ring + 1) % N, (ring - 1) % N])
    return TemporalSignal.from_series(rng.standard_normal((T, N)), LAGS, np.stack([src, dst]), np.ones(3 * N),
                                      name="ring", dtype=np.float64)


def _copy_gconv_gru(theirs, ours):
    """Our GConvGRU forecaster's weights into PyG Temporal's example model (lins hold W[k]^T)."""
    import torch

    with torch.no_grad():
        for gate in "zrh":
            for s in "xh":
                o, t = getattr(ours.cell, f"conv_{s}_{gate}"), getattr(theirs.recurrent, f"conv_{s}_{gate}")
                for k in range(ours.cell.K):
                    t.lins[k].weight.copy_(torch.from_numpy(o.params["W"][k].T))
                t.bias.copy_(torch.from_numpy(o.params["b"]))
        theirs.linear.weight.copy_(torch.from_numpy(ours.head.params["W"].T))
        theirs.linear.bias.copy_(torch.from_numpy(ours.head.params["b"]))


@pytest.mark.oracle
@pytest.mark.parametrize("K", [1, 2])
def test_torch_trainer_and_the_task_agree_from_the_same_weights(K, pyg_temporal):
    from gnn_scratch.bench.pyg_temporal_train import Snapshots, build_model, epoch_loss, train_forecaster

    signal = _signal(K)
    ratio, seed, hidden, epochs = 0.5, 3, 6, 6
    train, test = temporal_signal_split(signal, ratio)
    # the task builds model_cls(in_channels=lags, out_channels=1, seed=seed, **model_kw): the same weights
    ours = GConvGRUForecaster(in_channels=LAGS, out_channels=1, hidden_channels=hidden, K=K, seed=seed,
                              dtype=np.float64)
    theirs = build_model("GConvGRU", LAGS, hidden_channels=hidden, dtype="float64", K=K)
    _copy_gconv_gru(theirs, ours)

    win = Windows(signal, dict(lags=None, seq_len=None, pre_len=None, train_ratio=ratio))
    xs, g, Y = win.batch("train", np.arange(win.train_x.shape[0]), "features", np.float64)
    first_ours = float(MSELoss().forward(ours.forward(xs, g), Y))
    first_theirs = float(epoch_loss(theirs, Snapshots(train, "float64")).detach())
    assert abs(first_ours - first_theirs) <= 1e-12 * first_ours

    summary, _ = get_task("temporal").run("gconv_gru", signal, runs=1, seed=seed, epochs=epochs, lr=0.01,
                                          train_ratio=ratio, hidden_channels=hidden, K=K, dtype="float64")
    res = train_forecaster(theirs, train, test, epochs=epochs, lr=0.01)
    assert res["losses"][0] == pytest.approx(first_theirs, rel=1e-12)
    assert res["losses"][-1] < res["losses"][0]                        # it trained
    assert summary["test"]["mse"]["mean"] == pytest.approx(res["test"]["mse"], rel=1e-9)
    assert summary["test"]["mae"]["mean"] == pytest.approx(res["test"]["mae"], rel=1e-9)


@pytest.mark.oracle
@pytest.mark.parametrize("cell,kw", [("GConvGRU", dict(K=2)), ("TGCN", {}), ("DCRNN", dict(K=2)),
                                     ("GConvLSTM", dict(K=2))])
def test_batched_loop_equals_the_per_snapshot_loop(cell, kw, pyg_temporal):
    import torch

    from gnn_scratch.bench.pyg_temporal_train import Snapshots, build_model, epoch_loss

    train, _ = temporal_signal_split(_signal(5), 0.6)
    snaps = Snapshots(train, "float64")
    model = build_model(cell, LAGS, hidden_channels=5, dtype="float64", seed=1, **kw)
    for loss in ("mse", "broadcast"):
        got = {}
        for loop in ("snapshot", "batched"):
            model.zero_grad()
            value = epoch_loss(model, snaps, loss, loop)
            value.backward()
            got[loop] = (float(value.detach()), [p.grad.clone() for p in model.parameters()])
        (a, ga), (b, gb) = got["snapshot"], got["batched"]
        assert b == pytest.approx(a, rel=1e-12), loss
        for x, y in zip(ga, gb):
            assert relative_error(x.numpy(), y.numpy()) < 1e-10, loss
    with torch.no_grad():                        # the broadcast is the N x N pair mean, per snapshot
        P = torch.stack([model(snaps.x[s], *snaps.edges(s))[:, 0] for s in range(snaps.S)]).numpy()
        want = np.mean((P[:, :, None] - train.targets[:, None, :]) ** 2)
        assert float(epoch_loss(model, snaps, "broadcast")) == pytest.approx(want, rel=1e-12)
        assert float(epoch_loss(model, snaps, "mse")) == pytest.approx(np.mean((P - train.targets) ** 2), rel=1e-12)
