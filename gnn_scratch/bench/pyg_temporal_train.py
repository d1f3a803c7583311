"""PyTorch Geometric Temporal's forecasting example as a reusable torch training loop (the peer of scripts/).

PyG Temporal's README / examples/recurrent/*_example.py train a recurrent cell + ReLU + ``Linear(32, 1)``
on the snapshots of a signal (Chickenpox: 4 lags as the features of one step, each snapshot read from a
zero hidden state) with one Adam step per epoch on the average over the training snapshots of a
per-snapshot loss, and score the test snapshots with the same average. ``train_forecaster`` does that
with the same snapshots as ``gnn_scratch`` (``data.temporal.TemporalSignal`` parts), in torch.

Two losses (``loss=``):

* ``"mse"`` -- the mean squared error, ``mean((y_hat.squeeze(-1) - y) ** 2)`` per snapshot. What the
  example means, and what ``gnn_scratch``'s temporal task minimises.
* ``"broadcast"`` -- the example's literal ``torch.mean((y_hat - snapshot.y) ** 2)`` with y_hat (N, 1)
  and y (N,): broadcasting makes it the mean over all N x N pairs (i, j) of (y_hat_i - y_j)^2, which
  rewards predicting every node's value as the snapshot's mean over nodes. Its "MSE" is that quantity.

Two loops (``loop=``), equal up to float rounding:

* ``"batched"`` -- the B snapshots of a step as one block-diagonal graph (one copy of the graph per
  snapshot, ids offset by N), one forward for all. For cells read from a zero state this is exactly the
  example's sum over snapshots (every cell is row-wise on a block-diagonal graph), and ~15x faster.
* ``"snapshot"`` -- the example's Python loop, one forward per snapshot (tests check the two agree).

Imports torch; the cells come from ``bench.pyg_temporal.cells()`` (installed with --no-deps).
"""
from __future__ import annotations

import time

import numpy as np

from ..analysis.forecast import forecast_metrics

LOSSES = ("mse", "broadcast")
LOOPS = ("batched", "snapshot")
EVAL_CHUNK = 64          # snapshots per evaluation forward: DCRNN's DConv builds a dense (n x n) adjacency


def _torch():
    import torch
    return torch


def _gconv_gru(C, i, h, K=2, normalization="sym"):
    return C["GConvGRU"](i, h, K, normalization=normalization)


def _gconv_lstm(C, i, h, K=2, normalization="sym"):
    return C["GConvLSTM"](i, h, K, normalization=normalization)


def _tgcn(C, i, h, improved=False, add_self_loops=True):
    return C["TGCN"](i, h, improved=improved, add_self_loops=add_self_loops)


def _dcrnn(C, i, h, K=2):
    return C["DCRNN"](i, h, K)


def _a3tgcn(C, i, h, periods=1):
    if i % periods:
        raise ValueError(f"A3TGCN: {i} input features cannot be cut into periods={periods}")
    return C["A3TGCN"](i // periods, h, periods)


def _step_h(cell, x, ei, ew):
    return cell(x, ei, ew)


def _step_lstm(cell, x, ei, ew):
    return cell(x, ei, ew)[0]                       # (H, C): the head reads H, as PyG's gconvlstm example


def _step_a3tgcn(cell, x, ei, ew):
    # the L lags as (N, in, periods), row-major: periods = L, in = 1 is PyG's a3tgcn example on Chickenpox
    # (x.view(N, 1, 4)); in = L, periods = 1 its other one (x.view(N, 4, 1))
    return cell(x.reshape(x.shape[0], cell.in_channels, cell.periods), ei, ew)


# PyG Temporal cell name -> (constructor(cells, in_channels, hidden, **kw), step(cell, x, ei, ew) -> H)
CELLS = {"GConvGRU": (_gconv_gru, _step_h), "GConvLSTM": (_gconv_lstm, _step_lstm), "TGCN": (_tgcn, _step_h),
         "DCRNN": (_dcrnn, _step_h), "A3TGCN": (_a3tgcn, _step_a3tgcn)}


def build_model(cell, in_channels, hidden_channels=32, out_channels=1, seed=0, dtype="float32", **cell_kwargs):
    """PyG Temporal's example model: ``cell`` (a name of ``CELLS``) + ReLU + ``torch.nn.Linear(hidden, out)``,
    built after ``torch.manual_seed(seed)`` in the example's order (the cell, then the linear layer), cast
    to ``dtype`` ("float32" / "float64"). cell_kwargs go to the cell (K, normalization, periods, ...)."""
    torch = _torch()
    from .pyg_temporal import cells

    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    make, step = CELLS[cell]

    class RecurrentGCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.recurrent = make(cells(), in_channels, hidden_channels, **cell_kwargs)
            self.linear = torch.nn.Linear(hidden_channels, out_channels)

        def forward(self, x, edge_index, edge_weight):
            # the cells make their zero state with torch.zeros (the default dtype): float64 runs need it set
            old = torch.get_default_dtype()
            torch.set_default_dtype(x.dtype)
            try:
                return self.linear(torch.relu(step(self.recurrent, x, edge_index, edge_weight)))
            finally:
                torch.set_default_dtype(old)

    torch.manual_seed(seed)
    return RecurrentGCN().to(getattr(torch, str(np.dtype(dtype))))


class Snapshots:
    """The snapshots of one ``TemporalSignal`` part as torch tensors, cut into block-diagonal batches.

    ``block(ids)`` -> (x (B N, L), edge_index (2, sum E), edge_weight (sum E,) or None, y (B N,)) for
    consecutive snapshot ids: snapshot b's nodes are ids b N .. b N + N - 1 (kept per ids).
    """

    def __init__(self, part, dtype):
        torch = _torch()
        self.torch, self.dtype = torch, getattr(torch, str(np.dtype(dtype)))
        self.part, self.N, self.S = part, part.num_nodes, part.num_snapshots
        self.x = torch.from_numpy(np.array(part.features, dtype=np.dtype(dtype)))       # (S, N, L), a copy:
        self.y = torch.from_numpy(np.array(part.targets, dtype=np.dtype(dtype)))        # the data is read-only
        self._blocks = {}

    def edges(self, s):
        ei, ew = self.part.edges_at(s)
        return (self.torch.from_numpy(np.array(ei, dtype=np.int64)),
                None if ew is None else self.torch.from_numpy(np.array(ew, dtype=self.x.numpy().dtype)))

    def block(self, ids):
        key = (int(ids[0]), len(ids))
        if key not in self._blocks:
            torch, N = self.torch, self.N
            pairs = [self.edges(int(s)) for s in ids]
            ei = torch.cat([e + b * N for b, (e, _) in enumerate(pairs)], dim=1)
            ew = None if pairs[0][1] is None else torch.cat([w for _, w in pairs])
            self._blocks[key] = (self.x[ids].reshape(len(ids) * N, -1), ei, ew, self.y[ids].reshape(-1))
        return self._blocks[key]


def snapshot_loss(y_hat, y, loss):
    """One snapshot's loss: y_hat (N, 1), y (N,). "mse": mean((y_hat[:, 0] - y)^2); "broadcast": the
    example's mean((y_hat - y)^2) over the N x N broadcast."""
    if loss == "mse":
        return ((y_hat.squeeze(-1) - y) ** 2).mean()
    return ((y_hat - y) ** 2).mean()


def batch_loss(y_hat, y, B, loss):
    """The mean over B snapshots of ``snapshot_loss`` for a block of them: y_hat (B N, 1), y (B N,).
    Every snapshot has N nodes, so "mse" is the plain mean over all B N rows."""
    if loss == "mse":
        return ((y_hat.squeeze(-1) - y) ** 2).mean()
    return ((y_hat.reshape(B, -1, 1) - y.reshape(B, 1, -1)) ** 2).mean()


def epoch_loss(model, snaps, loss="mse", loop="batched"):
    """The example's training objective on every snapshot of ``snaps`` (a graph with gradients attached)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
    if loop == "batched":
        x, ei, ew, y = snaps.block(np.arange(snaps.S))
        return batch_loss(model(x, ei, ew), y, snaps.S, loss)
    cost = 0
    for s in range(snaps.S):                        # PyG Temporal's loop, verbatim but for the loss
        ei, ew = snaps.edges(s)
        cost = cost + snapshot_loss(model(snaps.x[s], ei, ew), snaps.y[s], loss)
    return cost / snaps.S


def predict(model, snaps, chunk=EVAL_CHUNK):
    """(S, N) float64 predictions of ``model`` (eval mode, no gradients) for every snapshot of ``snaps``."""
    torch = snaps.torch
    model.eval()
    out = []
    with torch.no_grad():
        for a in range(0, snaps.S, chunk):
            ids = np.arange(a, min(a + chunk, snaps.S))
            x, ei, ew, _ = snaps.block(ids)
            out.append(model(x, ei, ew).reshape(len(ids), snaps.N).double().numpy())
    return np.concatenate(out)


def train_forecaster(model, train, test, epochs=200, lr=0.01, loss="mse", loop="batched", log=None):
    """Train ``model`` (``build_model``) PyG Temporal's way on ``train`` and score ``test``.

    train, test: ``TemporalSignal`` parts (``data.temporal.temporal_signal_split``), static or dynamic graph.
    One ``torch.optim.Adam(lr)`` step per epoch on ``epoch_loss`` over every training snapshot.
    Returns dict(losses: the training objective of every epoch (before its step), test: the
    ``analysis.forecast.forecast_metrics`` of the test predictions (mse is the true MSE whatever
    ``loss`` trained), test_broadcast: the example's N x N broadcast quantity on the test snapshots,
    preds: (S_test, N) float64, epoch_ms: wall time of every epoch).
    """
    torch = _torch()
    dtype = next(model.parameters()).dtype
    np_dtype = {torch.float32: "float32", torch.float64: "float64"}[dtype]
    tr, te = Snapshots(train, np_dtype), Snapshots(test, np_dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses, epoch_ms = [], []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        cost = epoch_loss(model, tr, loss, loop)
        cost.backward()
        opt.step()
        opt.zero_grad()
        epoch_ms.append(1e3 * (time.perf_counter() - t0))
        losses.append(float(cost.detach()))
        if log and (epoch + 1) % max(1, epochs // 10) == 0:
            log(f"epoch {epoch + 1:4d}  train {loss} {losses[-1]:.4f}  {epoch_ms[-1]:.1f} ms")
    P = predict(model, te)
    Y = te.y.double().numpy()
    broadcast = float(np.mean((P[:, :, None] - Y[:, None, :]) ** 2))
    return dict(losses=losses, test=forecast_metrics(Y[:, None, :], P[:, None, :]), test_broadcast=broadcast,
                preds=P, epoch_ms=epoch_ms)
