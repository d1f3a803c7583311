"""Forecasting a signal on a graph: recurrent graph networks trained on windows of the past, scored on the future.

Every dataset is read as **windows**: inputs x (W, L, N) -- L past steps of N nodes -- and targets
y (W, H, N) -- the next H steps (``analysis.forecast``). Two settings, chosen per dataset by default:

* **PyG Temporal's** (Chickenpox, PedalMe, England COVID): the L = ``lags`` past steps are the
  *features* of one step (``--input features``), the cell runs once from a zero state, H = 1; the
  first ``train_ratio`` of the snapshots train (PyG Temporal's README example: 0.2), the rest test;
  one Adam step per epoch on the mean squared error over every training snapshot (its example loop).
* **T-GCN's** (Los-loop): the L = ``seq_len`` = 12 past steps are a *sequence* (``--input sequence``,
  one feature per step, the state carried through the window), H = ``pre_len`` outputs; the first
  80 % of the series trains, windows in order in mini-batches of 32; RMSE and MAE in mph.

A mini-batch of windows is one block-diagonal graph (``GraphBatch``) holding one copy of the graph
per window (a dynamic graph: each snapshot's own graph), so a step is one forward over all of them.
For snapshots read alone from a zero state this is exactly the sum of the per-snapshot losses of
PyG Temporal's loop. The test windows are scored once, after the last epoch (PyG Temporal's and
T-GCN's examples report the final model; no validation split is taken). The non-learned baselines
of ``analysis.forecast`` (last value, historical mean, window mean, linear autoregressions) are fitted
on the same training part and reported on the same targets.
"""
from __future__ import annotations

import time

import numpy as np

from ..analysis.forecast import evaluate_baselines, forecast_metrics, signal_windows
from ..data.temporal import TEMPORAL_DATASETS, TemporalSignal, WindowedSignal, temporal_signal_split, tgcn_windows
from ..graph import Graph, GraphBatch
from ..loop import input_is_data
from ..models import MODELS
from ..nn import MSELoss
from ..optim import Adam
from ..threads import blas_threads
from . import options
from .base import Task, register_task

INPUTS = ("features", "sequence")


class Windows:
    """The train / test windows of a dataset in one form, with the graph of each window.

    train_x (W, L, N), train_y (W, H, N), test_x, test_y likewise; train_series (T_train, N) for the
    baselines; scale (multiply predictions and targets for the metrics: Los-loop's mph); graphs: a
    function window ids -> list of ``Graph`` (one per window).
    """

    def __init__(self, data, train):
        self._batches = {}
        if isinstance(data, WindowedSignal):
            if train["lags"] is not None:
                raise ValueError(f"lags (--lags) cuts snapshots of the PyG Temporal datasets; {data.name} is cut into "
                                 f"windows: use --seq-len")
            seq_len = train["seq_len"] or data.seq_len
            pre_len = train["pre_len"] or data.pre_len
            T = data.signal.shape[0]
            n_train = data.train_size if train["train_ratio"] is None else int(train["train_ratio"] * T)
            if (seq_len, pre_len, n_train) != (data.seq_len, data.pre_len, data.train_size):
                self.train_x, self.train_y = tgcn_windows(data.signal[:n_train], seq_len, pre_len, "training part")
                self.test_x, self.test_y = tgcn_windows(data.signal[n_train:], seq_len, pre_len, "test part")
            else:
                self.train_x, self.train_y, self.test_x, self.test_y = data.train_x, data.train_y, data.test_x, data.test_y
            self.train_series, self.scale = data.signal[:n_train], float(data.scale)
            self._graphs = dict(train=data.graph())
            self._graphs["test"] = self._graphs["train"]
            self.protocol = (f"T-GCN: first {n_train} of {T} steps train, windows of {seq_len} in / {pre_len} out, "
                             f"series / {data.scale:g}")
            return
        if not isinstance(data, TemporalSignal):
            raise TypeError(f"data must be a TemporalSignal or a WindowedSignal, got {type(data).__name__}")
        for key in ("seq_len", "pre_len"):
            if train[key] is not None:
                raise ValueError(f"{key} (--{key.replace('_', '-')}) cuts T-GCN's windows (los_loop); {data.name} is cut "
                                 f"into snapshots of --lags past steps and one next step")
        if train["lags"] is not None and train["lags"] != data.lags:
            if data.is_dynamic:
                raise ValueError(f"{data.name} has a graph per snapshot: its lags are fixed by the loader "
                                 f"(load_temporal({data.name!r}, lags=...)), not by --lags")
            data = TemporalSignal.from_series(data.signal, train["lags"], data.edge_index, data.edge_weight,
                                              name=data.name, dtype=data.signal.dtype)
        ratio = 0.2 if train["train_ratio"] is None else train["train_ratio"]
        tr, te = temporal_signal_split(data, ratio)
        self.train_x, self.train_y = signal_windows(tr)
        self.test_x, self.test_y = signal_windows(te)
        self.train_series, self.scale = tr.signal, 1.0
        # one Graph for a static graph (shared by every window), one per snapshot for a dynamic one
        self._graphs = {name: ([part.graph(s) for s in range(part.num_snapshots)] if part.is_dynamic else part.graph())
                        for name, part in (("train", tr), ("test", te))}
        self.protocol = (f"PyG Temporal: {data.lags} lags, first {tr.num_snapshots} of {data.num_snapshots} "
                         f"snapshots train (train_ratio {ratio})")

    def batch(self, part, ids, inp, dtype):
        """(xs, graph, Y) for windows ``ids`` (consecutive) of ``part`` ("train" / "test"): xs the model's input
        steps, graph the block-diagonal graph of the windows' graphs (built once per batch and kept: the
        Laplacian or normalisation cached on it is computed once too)."""
        x, y = (self.train_x, self.train_y) if part == "train" else (self.test_x, self.test_y)
        key = (part, int(ids[0]), len(ids))
        if key not in self._batches:
            g = self._graphs[part]
            self._batches[key] = GraphBatch.from_graphs([g] * len(ids) if isinstance(g, Graph)
                                                        else [g[int(s)] for s in ids])
        xb, yb = x[ids], y[ids]                                      # (B, L, N), (B, H, N)
        B, L, N = xb.shape
        if inp == "features":                                        # one step, the L lags as features
            xs = [np.ascontiguousarray(xb.transpose(0, 2, 1).reshape(B * N, L), dtype=dtype)]
        else:                                                        # L steps, one feature each
            xs = [np.ascontiguousarray(xb[:, t, :].reshape(B * N, 1), dtype=dtype) for t in range(L)]
        Y = np.ascontiguousarray(yb.transpose(0, 2, 1).reshape(B * N, -1), dtype=dtype)
        return xs, self._batches[key], Y


@register_task
class Forecasting(Task):
    """Forecasting: recurrent graph networks on signals over time (MSE / RMSE / MAE, next to baselines)."""

    name = "temporal"
    datasets = TEMPORAL_DATASETS
    default_dataset = "chickenpox"
    devices = ("cpu",)
    # None: the dataset's setting (see ``setting``)
    defaults = dict(epochs=None, lr=None, weight_decay=0.0, batch_size=None, train_ratio=None, lags=None,
                    seq_len=None, pre_len=None, input=None)
    options = dict(epochs=("--epochs", "positive_int"), lr=("--lr", "finite_positive_float"),
                   weight_decay=("--weight-decay", "non_negative_float"), batch_size=("--batch-size", "positive_int"),
                   train_ratio=("--train-ratio", "finite_positive_float"), lags=("--lags", "positive_int"),
                   seq_len=("--seq-len", "positive_int"), pre_len=("--pre-len", "positive_int"))

    @staticmethod
    def setting(data):
        """The defaults of a dataset's published setting: PyG Temporal's example or T-GCN's."""
        if isinstance(data, WindowedSignal):
            return dict(epochs=100, lr=0.001, batch_size=32, input="sequence")
        return dict(epochs=200, lr=0.01, batch_size=None, input="features")

    @classmethod
    def describe_data(cls, data):
        E = data.edge_index[0].shape[1] if isinstance(data.edge_index, tuple) else data.edge_index.shape[1]
        steps = data.signal.shape[0]
        return f"{data.name}: {data.num_nodes} nodes, {E} edges, {steps} time steps"

    @classmethod
    def add_arguments(cls, parser):
        helps = dict(
            epochs="training epochs, N >= 1 (default: 200 for the PyG Temporal datasets, 100 for los_loop)",
            lr="Adam's learning rate, > 0 (default: 0.01, PyG Temporal's example; 0.001 for los_loop, T-GCN's)",
            weight_decay="L2 penalty on every parameter, >= 0 (default 0)",
            batch_size="windows per Adam step, taken in order (default: every training snapshot at once for the "
                       "PyG Temporal datasets, as its example loop; 32 for los_loop, T-GCN's)",
            train_ratio="the first fraction of the snapshots (los_loop: of the series) that trains, in (0, 1) (default "
                        "0.2, PyG Temporal's README example; los_loop: 0.8, T-GCN's)",
            lags="past steps per snapshot, not los_loop (default: the loader's, 4 for chickenpox)",
            seq_len="los_loop only: input steps per window (default 12)",
            pre_len="los_loop only: predicted steps per window, 3 / 6 / 9 / 12 = 15 / 30 / 45 / 60 min (default 3)")
        metavars = dict(epochs="N", lr="LR", weight_decay="WD", batch_size="B", train_ratio="R", lags="L",
                        seq_len="L", pre_len="H")
        kind = lambda key: getattr(options, cls.options[key][1])   # noqa: E731
        for key, (flag, _) in cls.options.items():
            parser.add_argument(flag, dest=key, type=kind(key), default=None, metavar=metavars[key], help=helps[key])
        parser.add_argument("--input", default=None, choices=INPUTS,
                            help="features: the past steps are the features of one step from a zero state (PyG "
                                 "Temporal's setting); sequence: one step per past value, the state carried "
                                 "(T-GCN's); default: the dataset's setting")

    @classmethod
    def hparams_from_args(cls, args):
        return {key: getattr(args, key, None) for key in (*cls.options, "input")}

    @classmethod
    def check(cls, model_cls, device, train, model_kw=None):
        for key, (flag, kind) in cls.options.items():
            if train.get(key) is not None:
                options.check(kind, train[key], f"{key} ({flag})")
        if train.get("train_ratio") is not None and not 0 < train["train_ratio"] < 1:
            raise ValueError(f"train_ratio (--train-ratio) must be in (0, 1), got {train['train_ratio']}")
        if train.get("input") is not None and train["input"] not in INPUTS:
            raise ValueError(f"input (--input) must be one of {INPUTS}, got {train['input']!r}")
        if not getattr(model_cls, "temporal", False):
            takers = ", ".join(n for n, c in MODELS.items() if getattr(c, "temporal", False))
            raise ValueError(f"model {model_cls.name!r} is not a recurrent forecaster; the temporal task takes: "
                             f"{takers}")
        if device not in cls.devices:
            raise ValueError(f"the temporal task trains on {', '.join(cls.devices)}, not {device!r}")


    @classmethod
    def run(cls, model_name, data, runs=1, seed=0, log=None, device="cpu", interruptible=False, **hparams):
        """Train ``model_name`` ``runs`` times (seeds seed, seed+1, ...) on ``data`` and score the test part.

        data: a ``TemporalSignal`` (snapshots of lags, PyG Temporal's datasets) or a ``WindowedSignal``
        (Los-loop). Summary keys: model, dataset, runs, seed, protocol, input, test (the metrics of
        ``analysis.forecast.forecast_metrics``: mean and std over runs, and per run), baselines (the same
        metrics for each baseline), epoch_ms_median, hparams. Raises ValueError for an option out of
        range, a model that is not a forecaster, or a sequence input on a dynamic graph.
        """
        options.check("positive_int", runs, "runs (--runs)")
        options.check("non_negative_int", seed, "seed (--seed)")
        model_cls, model_kw, train = cls.validate(model_name, device, hparams)
        if getattr(model_cls, "reads_window", False):     # a3tgcn: the window's steps are its periods, read at once
            if train.get("input") == "sequence":
                raise ValueError(f"model {model_name!r} reads a whole window at once (its periods): --input sequence "
                                 f"does not apply")
            train["input"] = "features"
        train = {**train, **{k: v for k, v in cls.setting(data).items() if train.get(k) is None}}
        if isinstance(data, TemporalSignal) and data.is_dynamic and train["input"] == "sequence":
            raise ValueError(f"{data.name} has a graph per snapshot: --input sequence would need one graph for "
                             f"every step of a window; use --input features")
        win = Windows(data, train)
        dtype = np.dtype(model_kw.get("dtype", "float32"))
        L, H = win.train_x.shape[1], win.train_y.shape[1]
        in_channels = L if train["input"] == "features" else 1
        W = win.train_x.shape[0]
        B = W if train["batch_size"] is None else min(train["batch_size"], W)
        batches = [np.arange(a, min(a + B, W)) for a in range(0, W, B)]
        test_ids = np.arange(win.test_x.shape[0])
        per_run, epoch_ms, model = [], [], None
        try:
            for r in range(runs):
                s = seed + r
                model = model_cls(in_channels=in_channels, out_channels=H, seed=s, **model_kw)
                opt = Adam([{"params": model.parameters(), "weight_decay": train["weight_decay"]}], lr=train["lr"])
                loss_fn = MSELoss()
                model.train()
                # one BLAS thread, as the other tasks' loops: the products here are small, and an idle pool's
                # spinning threads took the cores from the Numba kernels (an epoch on Los-loop 855 s -> 21 s)
                with input_is_data(model), blas_threads(1):
                    for epoch in range(train["epochs"]):
                        t0 = time.perf_counter()
                        total = 0.0
                        for ids in batches:
                            xs, g, Y = win.batch("train", ids, train["input"], dtype)
                            model.zero_grad()
                            total += float(loss_fn.forward(model.forward(xs, g), Y)) * len(ids)
                            model.backward(loss_fn.backward())
                            opt.step()
                        epoch_ms.append(1e3 * (time.perf_counter() - t0))
                        if log and (epoch + 1) % max(1, train["epochs"] // 10) == 0:
                            log(f"run {r + 1} epoch {epoch + 1:4d}  train mse {total / W:.4f}  {epoch_ms[-1]:.1f} ms")
                model.eval()
                xs, g, Y = win.batch("test", test_ids, train["input"], dtype)
                with blas_threads(1):
                    P = model.forward(xs, g)
                N = win.test_x.shape[2]
                preds = np.asarray(P, dtype=np.float64).reshape(len(test_ids), N, H).transpose(0, 2, 1)
                per_run.append(forecast_metrics(win.test_y, preds, win.scale))
                if log:
                    log(f"run {r + 1}/{runs} seed {s}: " + cls._line(per_run[-1]))
        except KeyboardInterrupt:
            if not (interruptible and per_run):
                raise
        baselines = evaluate_baselines(win.train_x, win.train_y, win.test_x, win.test_y, win.train_series, win.scale)
        test = {k: dict(mean=float(np.mean([p[k] for p in per_run])), std=float(np.std([p[k] for p in per_run])))
                for k in per_run[0]} if per_run else {}
        summary = dict(model=model_name, dataset=getattr(data, "name", None), runs=len(per_run), seed=seed,
                       device=device, protocol=win.protocol, input=train["input"], test=test, test_runs=per_run,
                       baselines=baselines, epoch_ms_median=float(np.median(epoch_ms)) if epoch_ms else float("nan"),
                       hparams={**model_cls.model_defaults, **model_kw, **train})
        if len(per_run) < runs:
            summary.update(interrupted=True, runs_requested=runs)
        return summary, model

    @staticmethod
    def _line(m):
        return f"test MSE {m['mse']:.4f}  RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}"

    @classmethod
    def report(cls, summary):
        t = summary["test"]
        runs = summary["runs"]
        pm = (lambda k: f"{t[k]['mean']:.4f} ± {t[k]['std']:.4f}") if runs > 1 else (lambda k: f"{t[k]['mean']:.4f}")
        best = min(summary["baselines"].items(), key=lambda kv: kv[1]["mse"])
        return (f"test MSE {pm('mse')}, RMSE {pm('rmse')}, MAE {pm('mae')}"
                f"{' over ' + str(runs) + ' runs' if runs > 1 else ''}; best baseline {best[0]}: MSE "
                f"{best[1]['mse']:.4f}, RMSE {best[1]['rmse']:.4f}, MAE {best[1]['mae']:.4f} "
                f"({summary['protocol']}; median epoch {summary['epoch_ms_median']:.1f} ms)")

    @classmethod
    def saved_metrics(cls, summary):
        return {k: summary["test"][k]["mean"] for k in ("mse", "rmse", "mae")}
