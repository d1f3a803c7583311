"""Forecasting benchmark: one training epoch of T-GCN's Los-loop protocol, gnn_scratch beside PyG Temporal.

One epoch is what ``tasks/temporal.py: Forecasting.run`` runs per epoch in T-GCN's setting
(``--input sequence``): every training window in order (Los-loop: 1597 windows of 12 steps in, 3
out), in mini-batches of 32 windows (the last one shorter: 29), each batch one block-diagonal graph
of 32 copies of the sensor graph; per batch the cell runs over the 12 steps with the state
carried, then ReLU, a Linear head to the 3 outputs, the mean squared error, backward, one Adam
step (lr 0.001). Hidden width 64 (T-GCN's Los-loop model). Models (``MODELS``): ``tgcn`` (T-GCN,
the paper's model) and ``gconv_gru`` (K = 2, ``sym``), float32.

* ours -- ``Windows.batch`` (the task's own: it slices the windows, makes the per-step inputs and
  targets, and builds each batch's ``GraphBatch`` once, keeping it with the normalisation cached
  on it), then the model's forward / backward, ``MSELoss`` and ``Adam``, inside
  ``loop.input_is_data`` and ``threads.blas_threads(1)`` -- ``Forecasting.run``'s inner loop
  (``tests/test_bench.py`` checks that one epoch here trains to the same bits as the task's).
* PyG Temporal -- its cell (``TGCN`` / ``GConvGRU``, loaded by ``bench.pyg_temporal.cells``, their
  default arguments: ``cached=False``, so ``GCNConv`` normalises the graph on every call, as a user
  of the cell gets) unrolled over the 12 steps on the block-diagonal ``edge_index`` / ``edge_weight``
  of the batch's copies (built once per batch size, before timing, as ours), ``torch.relu``, a
  ``torch.nn.Linear`` head, ``F.mse_loss``, ``backward``, ``torch.optim.Adam``, ``loss.item()``.
  Slicing the windows out of the (W, 12, N) tensor is timed on both sides.

Before any timing the PyG model is given *our initial weights* and must reproduce our forward on the
first batch to rtol 1e-4 (absolute floor 1e-4 x the largest output); the change of that output
after one training step on the batch is compared too (reported as ``step_rel_diff``: Adam's first
step is about lr x sign(gradient), so it shows a wrong or missing gradient, not float32 noise).
Both sides report a digest of the windows and the graph they read; the parent checks they agree.

Each library runs in its own long-lived server (``worker.py serve`` with this module's side
classes, config ``part="temporal"``; ``models.Pair``), each epoch is timed inside its server and
the two are interleaved round by round (``harness.interleave``); torch gets Numba's thread count.
``--tiny`` runs a synthetic signal (``synthetic_windows``: no data files) with a few windows.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .harness import interleave

MODELS = ("tgcn", "gconv_gru")
HIDDEN = 64                 # T-GCN's Los-loop model (Zhao et al. 2019, Table 2's best)
LR = 0.001                  # T-GCN's (tasks/temporal.py: Forecasting.setting)
BATCH_SIZE = 32
GCONV_GRU = dict(K=2, normalization="sym")
MIRROR_RTOL = 1e-4
TRAIN = dict(lags=None, seq_len=None, pre_len=None, train_ratio=None)   # the dataset's own windows


@dataclass(frozen=True)
class TemporalSpec:
    """A windowed signal: Los-loop (``load_temporal``), or ``synthetic`` (``synthetic_windows``);
    ``windows`` keeps only the first that many training windows (0: all)."""
    name: str = "los_loop"
    kind: str = "los_loop"      # "los_loop" or "synthetic"
    windows: int = 0
    num_nodes: int = 0          # synthetic only
    num_steps: int = 0          # synthetic only
    seed: int = 0               # synthetic only

    @property
    def label(self):
        if self.kind == "los_loop":
            return "Los-loop"
        return f"synthetic, {self.num_nodes} nodes"


def synthetic_windows(num_nodes=24, num_steps=80, seed=0, seq_len=12, pre_len=3, train_rate=0.8):
    """A small ``WindowedSignal`` shaped like Los-loop's (for ``--tiny``: no data files needed).

    A random symmetric graph with weights in (0, 1] and every node's own self-loop of weight 1 (as
    ``los_adj.csv``'s diagonal), a smooth random series in [0, 1] scaled by its maximum, T-GCN's
    split and windows (``data.temporal.tgcn_windows``).
    """
    from ..data.temporal import WindowedSignal, tgcn_windows
    rng = np.random.default_rng(seed)
    N, T = int(num_nodes), int(num_steps)
    A = np.triu((rng.random((N, N)) < 3.0 / N) * rng.uniform(0.1, 1.0, (N, N)), 1)
    A = A + A.T + np.eye(N)
    tgt, src = np.nonzero(A)
    raw = (60 + 10 * np.sin(np.arange(T)[:, None] / 7.0 + rng.uniform(0, 6, N)) + rng.normal(0, 2, (T, N)))
    raw = raw.astype(np.float32)
    scale = raw.max()
    signal = raw / scale
    train_size = int(T * train_rate)
    train_x, train_y = tgcn_windows(signal[:train_size], seq_len, pre_len)
    test_x, test_y = tgcn_windows(signal[train_size:], seq_len, pre_len)
    return WindowedSignal(name="synthetic", edge_index=np.stack([src, tgt]).astype(np.int64),
                          edge_weight=A[tgt, src].astype(np.float32), num_nodes=N, raw=raw, signal=signal,
                          scale=float(scale), seq_len=seq_len, pre_len=pre_len, train_size=train_size,
                          train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                          node_ids=np.arange(N, dtype=np.int64))


def load_signal(spec, data_root=None):
    """The ``WindowedSignal`` of ``spec`` (raises the loader's DataNotFoundError when the files are nowhere)."""
    if spec.kind == "synthetic":
        return synthetic_windows(spec.num_nodes, spec.num_steps, spec.seed)
    if spec.kind != "los_loop":
        raise ValueError(f"unknown signal kind {spec.kind!r}; expected 'los_loop' or 'synthetic'")
    from ..data import load_temporal
    return load_temporal("los_loop", root=data_root, download=False)


def num_windows(spec, data):
    W = data.train_x.shape[0]
    return W if not spec.windows else min(int(spec.windows), W)


def batch_ids(W, batch_size):
    """``Forecasting.run``'s batches: consecutive windows, in order, the last one shorter."""
    return [np.arange(a, min(a + batch_size, W)) for a in range(0, W, batch_size)]


def digest(data, W):
    """A short sha256 of the first W training windows, their targets and the graph: both servers must agree."""
    h = hashlib.sha256()
    for a in (data.train_x[:W], data.train_y[:W], data.edge_index, data.edge_weight):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------ in the worker


def build_ours(name, in_channels, out_channels, hidden_channels=HIDDEN, seed=0):
    """Our forecaster ``name`` as ``Forecasting.run`` builds it (the registered class, its other defaults)."""
    from ..models import get_model_class
    if name not in MODELS:
        raise ValueError(f"unknown forecaster {name!r}; the temporal benchmark runs {', '.join(MODELS)}")
    kw = dict(GCONV_GRU) if name == "gconv_gru" else {}
    return get_model_class(name)(in_channels=in_channels, out_channels=out_channels, hidden_channels=hidden_channels,
                                 seed=seed, **kw)


class OursTemporalSide:
    """Server state for gnn_scratch (part "temporal" of ``models.serve``): the windows, the model, its epoch."""

    def __init__(self, cfg):
        from ..tasks.temporal import Windows
        self.spec = TemporalSpec(**cfg["graph"])
        self.data = load_signal(self.spec, cfg.get("data_root"))
        self.win = Windows(self.data, TRAIN)
        self.W = num_windows(self.spec, self.data)
        self.fns, self.model_ = {}, None

    def build(self, msg):
        """(model, epoch function, step function, batches) for ``msg`` (model, hidden, lr, batch_size, seed)."""
        from ..loop import input_is_data
        from ..nn import MSELoss
        from ..optim import Adam
        from ..threads import blas_threads
        win, dtype = self.win, np.float32
        H = win.train_y.shape[1]
        model = build_ours(msg["model"], 1, H, msg.get("hidden", HIDDEN), msg.get("seed", 0))
        opt = Adam([{"params": model.parameters(), "weight_decay": 0.0}], lr=msg["lr"])
        loss_fn = MSELoss()
        batches = batch_ids(self.W, msg["batch_size"])

        def step(ids):    # Forecasting.run's inner loop, one batch
            xs, g, Y = win.batch("train", ids, "sequence", dtype)
            model.zero_grad()
            loss = float(loss_fn.forward(model.forward(xs, g), Y)) * len(ids)
            model.backward(loss_fn.backward())
            opt.step()
            return loss

        def epoch():
            total = 0.0
            model.train()
            with input_is_data(model), blas_threads(1):      # as Forecasting.run
                for ids in batches:
                    total += step(ids)
            return total

        return model, epoch, step, batches

    def forward0(self, model, batches):
        """Our eval-mode output on the first batch (the mirror check's expectation)."""
        from ..threads import blas_threads
        xs, g, _ = self.win.batch("train", batches[0], "sequence", np.float32)
        model.eval()
        with blas_threads(1):
            out = np.array(model.forward(xs, g))
        model.train()
        return out

    def model(self, msg):
        from ..loop import input_is_data
        from ..threads import blas_threads
        self.drop()
        model, epoch, step, batches = self.build(msg)
        state = model.state_dict()
        out0 = self.forward0(model, batches) if msg.get("dump") else None
        with input_is_data(model), blas_threads(1):
            model.train()
            step(batches[0])          # compile, build the first batch's graph; PyG takes the same step
        if msg.get("dump"):           # initial weights, output before / after that step, for the PyG mirror
            np.savez(msg["dump"], __out0__=out0, __out1__=self.forward0(model, batches), **state)
        self.fns, self.model_ = {"epoch": epoch}, model
        g = self.win.batch("train", batches[0], "sequence", np.float32)[1]
        return dict(config=model.config, digest=digest(self.data, self.W), windows=self.W, batches=len(batches),
                    num_nodes=int(self.data.num_nodes), num_edges=int(self.data.edge_index.shape[1]),
                    batch_nodes=int(g.num_nodes), batch_edges=int(g.num_edges),
                    seq_len=int(self.win.train_x.shape[1]), pre_len=int(self.win.train_y.shape[1]))

    def drop(self):
        self.fns, self.model_ = {}, None


class PyGForecaster:
    """Factory of the PyG Temporal side: ``build(name, hidden, out)`` -> a torch module (cell, ReLU, Linear)."""

    @staticmethod
    def build(name, hidden, out_channels):
        import torch
        from .pyg_temporal import cells
        C = cells()
        if name == "tgcn":
            cell = C["TGCN"](1, hidden)
        elif name == "gconv_gru":
            cell = C["GConvGRU"](1, hidden, GCONV_GRU["K"], normalization=GCONV_GRU["normalization"])
        else:
            raise ValueError(f"no PyG Temporal peer for {name!r}")

        class Net(torch.nn.Module):
            """PyG Temporal's cell unrolled over the steps, the state carried, then ReLU and a Linear head."""

            def __init__(self):
                super().__init__()
                self.cell = cell
                self.head = torch.nn.Linear(hidden, out_channels)

            def forward(self, xb, edge_index, edge_weight):
                """xb (B, L, N) windows -> (B N, out_channels); step t's input is xb[:, t] as (B N, 1)."""
                H = None
                for t in range(xb.shape[1]):
                    H = self.cell(xb[:, t, :].reshape(-1, 1), edge_index, edge_weight, H)
                return self.head(torch.relu(H))

        return Net()


def load_weights(net, name, state):
    """Copy our forecaster's ``state_dict`` (name -> array) into ``PyGForecaster.build``'s net (Linear weights
    transposed). Raises KeyError when a name of ours has no place in the PyG model (nothing may be left over)."""
    import torch
    used = set()

    def get(key):
        used.add(key)
        return torch.from_numpy(np.ascontiguousarray(state[key]))

    cell = net.cell
    with torch.no_grad():
        if name == "tgcn":
            for gate in "zrh":
                conv, lin = getattr(cell, f"conv_{gate}"), getattr(cell, f"linear_{gate}")
                conv.lin.weight.copy_(get(f"rnn.cell.conv_{gate}.W").T)
                conv.bias.copy_(get(f"rnn.cell.conv_{gate}.b"))
                lin.weight.copy_(get(f"rnn.cell.linear_{gate}.W").T)
                lin.bias.copy_(get(f"rnn.cell.linear_{gate}.b"))
        else:
            for gate in "zrh":
                for s in "xh":
                    conv, key = getattr(cell, f"conv_{s}_{gate}"), f"rnn.cell.conv_{s}_{gate}"
                    W = get(key + ".W")
                    for k in range(W.shape[0]):
                        conv.lins[k].weight.copy_(W[k].T)
                    conv.bias.copy_(get(key + ".b"))
        net.head.weight.copy_(get("head.W").T)
        net.head.bias.copy_(get("head.b"))
    left = set(state) - used
    if left:
        raise KeyError(f"our {name} has parameters the PyG mirror does not place: {sorted(left)}")
    return net


def block_edges(edge_index, edge_weight, copies, num_nodes):
    """(edge_index (2, copies E), edge_weight (copies E,)) of ``copies`` disjoint copies of one graph (tensors)."""
    import torch
    E = edge_index.shape[1]
    shift = torch.repeat_interleave(torch.arange(copies, dtype=torch.int64) * num_nodes, E)
    return edge_index.repeat(1, copies) + shift, edge_weight.repeat(copies)


class PyGTemporalSide:
    """Server state for PyG Temporal: the windows as tensors, the graph's edges; the model and its epoch."""

    def __init__(self, cfg):
        import torch
        torch.set_num_threads(int(cfg["threads"]))
        self.spec = TemporalSpec(**cfg["graph"])
        self.data = d = load_signal(self.spec, cfg.get("data_root"))
        self.W = num_windows(self.spec, d)
        # copies: the loader's arrays are read-only, which torch.from_numpy warns about
        self.x = torch.from_numpy(np.array(d.train_x[:self.W], dtype=np.float32))      # (W, L, N)
        self.y = torch.from_numpy(np.array(d.train_y[:self.W], dtype=np.float32))      # (W, H, N)
        self.edge_index = torch.from_numpy(np.array(d.edge_index, dtype=np.int64))
        self.edge_weight = torch.from_numpy(np.array(d.edge_weight, dtype=np.float32))
        self.fns = {}

    def build(self, msg):
        """(net, epoch function, step function, batches, blocks) with PyG's own initial weights."""
        import torch
        import torch.nn.functional as F
        N, H = self.data.num_nodes, self.y.shape[1]
        net = PyGForecaster.build(msg["model"], msg.get("hidden", HIDDEN), H)
        opt = torch.optim.Adam(net.parameters(), lr=msg["lr"])
        batches = [(int(ids[0]), int(ids[-1]) + 1) for ids in batch_ids(self.W, msg["batch_size"])]
        blocks = {b - a: block_edges(self.edge_index, self.edge_weight, b - a, N) for a, b in batches}
        x, y = self.x, self.y

        def step(a, b):
            ei, ew = blocks[b - a]
            opt.zero_grad()
            Y = y[a:b].permute(0, 2, 1).reshape(-1, H)                 # (B N, H): window-major, as ours
            loss = F.mse_loss(net(x[a:b], ei, ew), Y)
            loss.backward()
            opt.step()
            return loss.item() * (b - a)

        def epoch():
            total = 0.0
            net.train()
            for a, b in batches:
                total += step(a, b)
            return total

        return net, epoch, step, batches, blocks

    def model(self, msg):
        import torch
        self.fns = {}
        with np.load(msg["dump"]) as f:
            out0, out1 = f["__out0__"], f["__out1__"]
            state = {k: f[k] for k in f.files if not k.startswith("__")}
        net, epoch, step, batches, blocks = self.build(msg)
        load_weights(net, msg["model"], state)
        a, b = batches[0]

        def forward0():
            net.eval()
            with torch.no_grad():
                got = net(self.x[a:b], *blocks[b - a]).numpy()
            net.train()
            return got

        got0 = forward0()
        diff = float(np.max(np.abs(got0 - out0))) if got0.shape == out0.shape else float("inf")
        scale = max(float(np.max(np.abs(out0))), 1e-30)
        if got0.shape != out0.shape or not np.allclose(got0, out0, rtol=MIRROR_RTOL, atol=MIRROR_RTOL * scale):
            raise ValueError(f"the PyG Temporal mirror computes something else on the first batch (max |diff| = "
                             f"{diff:.3g}, {diff / scale:.3g} of the largest output)")
        step(a, b)                      # the step ours took before timing (a model that cannot train fails here)
        got1 = forward0()
        d_ours, d_pyg = out1 - out0, got1 - got0
        step_rel = float(np.linalg.norm(d_pyg - d_ours) / max(float(np.linalg.norm(d_ours)), 1e-30))
        self.fns = {"epoch": epoch}
        return dict(digest=digest(self.data, self.W), max_abs_diff=diff, max_rel_diff=diff / scale,
                    step_rel_diff=step_rel, batches=len(batches))

    def drop(self):
        self.fns = {}


# ------------------------------------------------------------------------------ in the parent


def time_model(pair, spec, name, info_base, batch_size, warmup, repeats, max_time, tmp, log, seed=0):
    """The row of one model: {model, dataset, epoch: {ours, pyg}, mirror, ...}."""
    from .models import ServerError
    row = dict(model=name, dataset=spec.name, dataset_label=spec.label, batch_size=batch_size, hidden=HIDDEN,
               lr=LR, seed=seed, **info_base)
    t0 = time.perf_counter()
    try:
        ours = pair.servers["ours"]
        dump = os.path.join(tmp, f"{name}.npz")
        msg = dict(cmd="model", model=name, hidden=HIDDEN, lr=LR, batch_size=batch_size, seed=seed)
        info = ours.call(dump=dump, **msg)
        row.update(config=info["config"], windows=info["windows"], batches=info["batches"],
                   num_nodes=info["num_nodes"], num_edges=info["num_edges"], batch_nodes=info["batch_nodes"],
                   batch_edges=info["batch_edges"], seq_len=info["seq_len"], pre_len=info["pre_len"])
        fns = {"ours": ours.timed("epoch")}
        if pair.alive("pyg"):
            try:
                got = pair.servers["pyg"].call(dump=dump, **msg)
                if got["digest"] != info["digest"]:
                    raise ServerError(f"the PyG server read other windows than ours ({got['digest']} vs "
                                      f"{info['digest']})")
                row["mirror"] = {k: got[k] for k in ("max_abs_diff", "max_rel_diff", "step_rel_diff")}
                fns["pyg"] = pair.servers["pyg"].timed("epoch")
            except ServerError as e:
                row["pyg_error"] = str(e)
                log(f"  PyG Temporal: {e}")
        log(f"temporal: {name} on {spec.label}, {info['windows']} windows in {info['batches']} batches of "
            f"{batch_size} (warm-up {warmup}, {repeats} rounds"
            + (f", stopping after {max_time:.0f} s" if max_time else "") + ")")
        row["epoch"] = interleave(fns, repeats=repeats, warmup=warmup, max_time=max_time)
        log("  epoch: " + "  ".join(f"{k} {1e3 * v['median']:.0f} ms" for k, v in row["epoch"].items()))
    except ServerError as e:
        row["error"] = str(e)
        log(f"temporal {name} on {spec.label}: {e}")
    finally:
        pair.drop_models()
    row["wall_s"] = time.perf_counter() - t0
    return row


def run(specs, models=MODELS, batch_size=BATCH_SIZE, warmup=1, repeats=5, max_time=None, pyg=True, data_root=None,
        log=print):
    """The "temporal" section of the results: one row per (signal, model)."""
    from .models import Pair, ServerError
    from .pyg_temporal import recurrent_dir
    if pyg:
        try:
            recurrent_dir()
        except ImportError as e:
            log(f"temporal: {e}; the PyG Temporal column is skipped")
            pyg = False
    rows = []
    pair = Pair(pyg, data_root, None, log, part="temporal")
    tmp = tempfile.mkdtemp(prefix="gnn_bench_temporal_")
    try:
        for spec in specs:
            t0 = time.perf_counter()
            try:
                pair.load(spec)
            except ServerError as e:
                rows += [dict(model=m, dataset=spec.name, dataset_label=spec.label, error=str(e)) for m in models]
                log(f"temporal on {spec.label}: {e}")
                continue
            base = dict(setup_s=time.perf_counter() - t0)
            rows += [time_model(pair, spec, m, base, batch_size, warmup, repeats, max_time, tmp, log) for m in models]
    finally:
        pair.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(rows=rows, pyg=pyg)
