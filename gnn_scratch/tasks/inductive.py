"""Inductive node classification on many graphs (PATTERN, CLUSTER): benchmarking-gnns' SBM protocol (issue 17).

Dwivedi et al., "Benchmarking Graph Neural Networks" (``main_SBMs_node_classification.py``,
``train/train_SBMs_node_classification.py``), as the Graph Transformer's code runs it:

* train on the training graphs in mini-batches of ``batch_size`` graphs (one ``GraphBatch`` each,
  the graphs in a fresh random order every epoch, the last batch smaller), Adam from lr ``lr``;
* the loss is the class-weighted cross-entropy recomputed on every batch (``nn.loss.
  WeightedSoftmaxCrossEntropy("balanced")``: w_c = (V - V_c) / V over the batch's V nodes);
* after each epoch, score the validation graphs (batches of the same size, evaluation mode);
  ``ReduceLROnPlateau`` on the validation loss halves the learning rate after ``lr_patience``
  epochs without improvement; training ends when the learning rate falls below ``min_lr``, after
  ``epochs`` epochs, or after ``max_time`` minutes;
* the metric is ``data.sbm.weighted_accuracy`` (their ``accuracy_SBM``: the mean over classes of
  each class's accuracy), averaged over the mini-batches of a split as they do.
Reported, per run: the test score of the **last** epoch's model (their protocol: no model
selection) and, beside it, the test score of the epoch of best validation score.

Inputs: ``x`` = one-hot tags, then the model's positional encoding (its ``pe`` / ``pe_dim``): the
Laplacian eigenvectors of ``graph.positional.laplacian_pe`` with a random sign per eigenvector and
graph in every training batch (the GT authors flip one sign per eigenvector for the whole batch;
per graph is the finer augmentation of the same invariance), or the random-walk PE. ``pe_dim``
left None takes the model's paper value for the dataset (``models.transformer``: GT 2 on PATTERN,
10 on CLUSTER). The PEs are computed once per graph and cached on it.

``size``: the graphs used -- None (as loaded), "small", "full" or an int number of training graphs,
the validation and test sets keeping the full set's ratio; a prefix of each split, which is what
``load_sbm(size=...)`` generates (a graph does not depend on how many others are made).
"""
from __future__ import annotations

import math
import numbers
import time

import numpy as np

from ..data.sbm import SBM_DATASETS, make_batch, split_sizes, weighted_accuracy
from ..loop import input_is_data
from ..models import MODELS
from ..nn.loss import WeightedSoftmaxCrossEntropy
from ..optim import Adam
from ..threads import blas_threads
from . import options
from .base import Task, register_task


def is_inductive(model_cls):
    """Whether ``model_cls`` is a node classifier of many graphs (an ``inductive`` class attribute)."""
    return bool(getattr(model_cls, "inductive", False))


def parse_size(text):
    """The argparse type of --size: "small", "full" or a positive int (training graphs)."""
    import argparse
    if text in ("small", "full"):
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected small, full or a positive number of training graphs, got {text!r}")
    return n


class ReduceLROnPlateau:
    """torch's ``ReduceLROnPlateau`` in mode "min" (threshold 1e-4 relative, no cooldown), on an ``optim.Adam``.

    ``step(metric)``: the metric improves when metric < best (1 - threshold); otherwise the epoch
    counts as bad, and after more than ``patience`` bad epochs in a row every group's learning rate
    is multiplied by ``factor`` (a change smaller than 1e-8 is skipped, as torch does) and the count
    restarts. ``lr`` is the first group's learning rate.
    """

    def __init__(self, optimizer, factor=0.5, patience=10, threshold=1e-4, eps=1e-8):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self.optimizer, self.factor, self.patience = optimizer, float(factor), int(patience)
        self.threshold, self.eps = float(threshold), float(eps)
        self.best, self.num_bad_epochs = math.inf, 0

    @property
    def lr(self):
        return self.optimizer.groups[0]["lr"]

    def step(self, metric):
        metric = float(metric)
        if metric < self.best * (1.0 - self.threshold):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            for g in self.optimizer.groups:
                new = g["lr"] * self.factor
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.num_bad_epochs = 0


def cut(data, size):
    """``data`` (an ``SBMDataset``) restricted to the first graphs of each split for ``size`` (None: all of it).

    Returns a shallow copy sharing the graphs (their cached PEs too). Raises ValueError for a size
    asking more graphs of a split than ``data`` holds, or a size that is not small, full or an int >= 1.
    """
    if size is None:
        return data
    want = split_sizes(data.name, size)
    have = (len(data.train), len(data.val), len(data.test))
    if any(w > h for w, h in zip(want, have)):
        raise ValueError(f"size (--size) {size!r} asks for {want[0]}/{want[1]}/{want[2]} train/val/test graphs; "
                         f"{data.name} as loaded holds {have[0]}/{have[1]}/{have[2]}")
    import copy
    out = copy.copy(data)
    out.train, out.val, out.test = data.train[:want[0]], data.val[:want[1]], data.test[:want[2]]
    out.sizes = want
    return out


def _inputs(batch, pe):
    """x = [features | PE] (N, F + pe_dim) of an ``SBMBatch``."""
    if pe == "none":
        return batch.x
    return np.ascontiguousarray(np.concatenate([batch.x, batch.lap_pe if pe == "laplacian" else batch.rw_pe], axis=1))


def _batch(members, pe, pe_dim, rng, dtype):
    b = make_batch(members, lap_pe=pe_dim if pe == "laplacian" else None, rw_pe=pe_dim if pe == "rw" else None,
                   rng=rng if pe == "laplacian" else None, dtype=dtype)
    return b.graph, _inputs(b, pe), b.y


def _chunks(n, size):
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


class _Scorer:
    """One split cut once into fixed batches (no sign flip): mean loss, mean per-batch and overall weighted accuracy."""

    def __init__(self, graphs, batch_size, pe, pe_dim, num_classes, dtype):
        self.batches = [_batch([graphs[i] for i in ids], pe, pe_dim, None, dtype)
                        for ids in _chunks(len(graphs), batch_size)]
        self.num_classes = num_classes

    def __call__(self, model, loss_fn):
        model.eval()
        losses, accs, preds, ys = [], [], [], []
        with blas_threads(1):
            for graph, x, y in self.batches:
                Z = model.forward(x, graph)
                losses.append(float(loss_fn.forward(Z, y)))
                pred = np.argmax(Z, axis=1)
                accs.append(weighted_accuracy(pred, y))
                preds.append(pred)
                ys.append(y)
        overall = weighted_accuracy(np.concatenate(preds), np.concatenate(ys))
        return float(np.mean(losses)), float(np.mean(accs)), overall


def train_run(model, data, train, seed, pe, pe_dim, log=None):
    """Train ``model`` on ``data``'s training graphs by the protocol of the module docstring; returns its scores.

    The result dict: test_acc / test_acc_overall (last epoch: the mean over batches / over all test
    nodes), best_val_acc, best_epoch, test_acc_best_val (test at the best validation epoch),
    epochs_run, stopped ("min_lr", "epochs" or "max_time"), epoch_s (wall time of every epoch),
    final_lr, train_loss (last epoch). ``model`` ends holding the last epoch's parameters.
    """
    dtype = np.dtype(model.config.get("dtype", "float32"))
    loss_fn = WeightedSoftmaxCrossEntropy("balanced")
    opt = Adam([{"params": model.parameters(), "weight_decay": train["weight_decay"]}], lr=train["lr"])
    sched = ReduceLROnPlateau(opt, factor=train["lr_factor"], patience=train["lr_patience"])
    order_rng = np.random.default_rng([seed, 1])
    flip_rng = np.random.default_rng([seed, 2])
    B = train["batch_size"]
    val = _Scorer(data.val, B, pe, pe_dim, data.num_classes, dtype)
    best = dict(val_acc=-1.0, epoch=0, state=None)
    epoch_s, stopped, t_start = [], "epochs", time.perf_counter()
    max_s = None if train["max_time"] is None else 60.0 * train["max_time"]
    epoch = 0
    with input_is_data(model):
        for epoch in range(1, train["epochs"] + 1):
            t0 = time.perf_counter()
            losses, accs = [], []
            perm = order_rng.permutation(len(data.train))
            for ids in _chunks(len(data.train), B):
                graph, x, y = _batch([data.train[i] for i in perm[ids]], pe, pe_dim, flip_rng, dtype)
                with blas_threads(1):
                    model.train()
                    opt.zero_grad()
                    Z = model.forward(x, graph)
                    losses.append(float(loss_fn.forward(Z, y)))
                    model.backward(loss_fn.backward())
                    opt.step()
                accs.append(weighted_accuracy(np.argmax(Z, axis=1), y))
            val_loss, val_acc, _ = val(model, loss_fn)
            lr = sched.lr
            sched.step(val_loss)
            if val_acc > best["val_acc"]:
                best = dict(val_acc=val_acc, epoch=epoch, state=model.state_dict())
            epoch_s.append(time.perf_counter() - t0)
            if log:
                log(f"epoch {epoch:4d}  loss {np.mean(losses):.4f}  train {np.mean(accs):.4f}  val_loss "
                    f"{val_loss:.4f}  val {val_acc:.4f}  lr {lr:.2e}  {epoch_s[-1]:.1f} s")
            if sched.lr < train["min_lr"]:
                stopped = "min_lr"
                break
            if max_s is not None and time.perf_counter() - t_start > max_s:
                stopped = "max_time"
                break
    test = _Scorer(data.test, B, pe, pe_dim, data.num_classes, dtype)
    _, test_acc, test_overall = test(model, loss_fn)
    last = model.state_dict()
    model.load_state_dict(best["state"])
    _, test_best, _ = test(model, loss_fn)
    model.load_state_dict(last)
    return dict(test_acc=test_acc, test_acc_overall=test_overall, best_val_acc=best["val_acc"],
                best_epoch=best["epoch"], test_acc_best_val=test_best, epochs_run=epoch, stopped=stopped,
                epoch_s=epoch_s, final_lr=sched.lr, train_loss=float(np.mean(losses)))


@register_task
class InductiveNodeClassification(Task):
    """Node classification on many graphs (PATTERN, CLUSTER): mini-batches of graphs, weighted accuracy."""

    name = "inductive"
    datasets = SBM_DATASETS
    default_dataset = "pattern"
    devices = ("cpu",)          # the mini-batches of graphs are built on the host
    # benchmarking-gnns' SBM schedule as the GT configs set it; a model's train_defaults override the first four.
    defaults = dict(lr=5e-4, weight_decay=0.0, epochs=1000, batch_size=128, lr_factor=0.5, lr_patience=10,
                    min_lr=1e-6, max_time=None, size=None)
    options = dict(epochs=("--epochs", "positive_int"), lr=("--lr", "finite_positive_float"),
                   weight_decay=("--weight-decay", "non_negative_float"), batch_size=("--batch-size", "positive_int"),
                   lr_factor=("--lr-factor", "finite_positive_float"),
                   lr_patience=("--lr-patience", "non_negative_int"),
                   min_lr=("--min-lr", "non_negative_float"), max_time=("--max-time", "finite_positive_float"))

    @classmethod
    def describe_data(cls, data):
        n = sum(m.num_nodes for m in data.train)
        e = sum(m.graph.num_edges for m in data.train)
        g = max(len(data.train), 1)
        return (f"{data.name}: {len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test graphs, "
                f"{n / g:.1f} nodes and {e / g:.0f} directed edges per training graph, {data.num_features} "
                f"features, {data.num_classes} classes")

    @classmethod
    def add_arguments(cls, parser):
        d = cls.defaults
        per = lambda key: ", ".join(f"{n} {c.train_defaults.get(key, d[key])}"   # noqa: E731
                                    for n, c in MODELS.items() if is_inductive(c))
        kind = lambda key: getattr(options, cls.options[key][1])   # noqa: E731 -- the argparse type of a key
        helps = dict(epochs=f"training epochs at most, N >= 1 (default per model: {per('epochs')})",
                     lr=f"Adam's initial learning rate, > 0 (default per model: {per('lr')})",
                     weight_decay=f"L2 penalty on every parameter, >= 0 (default per model: {per('weight_decay')})",
                     batch_size=f"graphs per mini-batch, B >= 1 (default per model: {per('batch_size')})",
                     lr_factor=f"ReduceLROnPlateau: multiply the learning rate by F in (0, 1) (default "
                               f"{d['lr_factor']})",
                     lr_patience=f"ReduceLROnPlateau: after more than N epochs without a lower validation loss "
                                 f"(default {d['lr_patience']})",
                     min_lr=f"stop when the learning rate falls below LR (default {d['min_lr']})",
                     max_time="stop after MIN minutes of training (default: no limit)")
        metavars = dict(epochs="N", lr="LR", weight_decay="WD", batch_size="B", lr_factor="F", lr_patience="N",
                        min_lr="LR", max_time="MIN")
        for key, (flag, _) in cls.options.items():
            parser.add_argument(flag, dest=key, type=kind(key), default=None, metavar=metavars[key], help=helps[key])
        parser.add_argument("--size", type=parse_size, default=None, metavar="SIZE",
                            help="the graphs used: small (200 training graphs), full (10000) or N training graphs; "
                                 "validation and test keep the full set's ratio (default: full)")

    @classmethod
    def hparams_from_args(cls, args):
        return {key: getattr(args, key, None) for key in (*cls.options, "size")}

    @classmethod
    def dataset_kwargs(cls, args):
        """What the command line passes to ``get_dataset``: only the graphs asked for are generated / loaded."""
        size = getattr(args, "size", None)
        return {} if size is None else {"size": size}

    @classmethod
    def check(cls, model_cls, device, train, model_kw=None):
        if not is_inductive(model_cls):
            takers = ", ".join(n for n, c in MODELS.items() if is_inductive(c))
            raise ValueError(f"model {model_cls.name!r} is not a node classifier of many graphs; the inductive "
                             f"task takes: {takers}")
        if device not in cls.devices:
            raise ValueError(f"the inductive task trains on {', '.join(cls.devices)}, not {device!r}")
        for key, (flag, kind) in cls.options.items():
            if not (key == "max_time" and train[key] is None):          # max_time None: no limit
                options.check(kind, train[key], f"{key} ({flag})")
        if not train["lr_factor"] < 1:
            raise ValueError(f"lr_factor (--lr-factor) must be in (0, 1), got {train['lr_factor']}")
        size = train["size"]
        if size is not None and not (size in ("small", "full") or (isinstance(size, numbers.Integral)
                                                                    and not isinstance(size, bool) and size >= 1)):
            raise ValueError(f"size (--size) must be 'small', 'full' or a positive int, got {size!r}")
        options.check_heads_share_width(model_cls.name, model_kw or {})

    @classmethod
    def pe_of(cls, model_cls, model_kw, dataset):
        """(pe, pe_dim) the model reads on ``dataset``: pe_dim None becomes its paper's value (``pe_dim_for``)."""
        pe = model_kw.get("pe", "none")
        pe_dim = model_kw.get("pe_dim")
        if pe_dim is None:
            pe_dim = model_cls.pe_dim_for(dataset, pe)
        return pe, pe_dim

    @classmethod
    def run(cls, model_name, data, runs=1, seed=0, log=None, device="cpu", interruptible=False, **hparams):
        """Train ``model_name`` on ``data`` (an ``SBMDataset``) ``runs`` times, seeds seed, seed+1, ...

        Summary keys: model, dataset, runs, seed, graphs (train, val, test counts), parameters,
        test_acc / test_acc_best_val / test_acc_overall / best_val_acc (mean, std, per run; fractions),
        epochs_run and stopped per run, epoch_s_median, seconds (total), hparams (pe_dim resolved).
        Raises ValueError for a model that is not inductive, an option out of range, or a size larger
        than the data.
        """
        from ..models.transformer import num_parameters
        options.check("positive_int", runs, "runs (--runs)")
        options.check("non_negative_int", seed, "seed (--seed)")
        model_cls, model_kw, train = cls.validate(model_name, device, hparams)
        data = cut(data, train["size"])
        pe, pe_dim = cls.pe_of(model_cls, model_kw, data.name)
        model_kw = {**model_kw, "pe_dim": pe_dim if pe != "none" else model_kw.get("pe_dim")}
        per_run, model, t0 = [], None, time.perf_counter()
        try:
            for r in range(runs):
                s = seed + r
                model = model_cls(in_channels=data.num_features, out_channels=data.num_classes, seed=s, **model_kw)
                out = train_run(model, data, train, s, pe, pe_dim, log)
                out["seed"] = s
                per_run.append(out)
                if log:
                    log(f"run {r + 1}/{runs} seed {s}: test {100 * out['test_acc']:.3f} % (last epoch "
                        f"{out['epochs_run']}, "
                        f"stopped: {out['stopped']}), {100 * out['test_acc_best_val']:.3f} % at the best validation "
                        f"epoch {out['best_epoch']}")
        except KeyboardInterrupt:
            if not (interruptible and per_run):
                raise
        summary = dict(model=model_name, dataset=data.name, runs=len(per_run), seed=seed, device=device,
                       graphs=[len(data.train), len(data.val), len(data.test)],
                       parameters=num_parameters(model) if model is not None else 0,
                       epochs_run=[p["epochs_run"] for p in per_run], stopped=[p["stopped"] for p in per_run],
                       epoch_s_median=float(np.median(np.concatenate([p["epoch_s"] for p in per_run])))
                       if per_run else float("nan"),
                       seconds=time.perf_counter() - t0,
                       hparams={**model_cls.model_defaults, **model_kw, **train})
        for key in ("test_acc", "test_acc_best_val", "test_acc_overall", "best_val_acc"):
            v = np.array([p[key] for p in per_run], dtype=np.float64)
            summary[key] = dict(mean=float(v.mean()) if v.size else float("nan"),
                                std=float(v.std()) if v.size else float("nan"), all=[float(a) for a in v])
        if len(per_run) < runs:
            summary.update(interrupted=True, runs_requested=runs)
        return summary, model

    @classmethod
    def report(cls, summary):
        t, b = summary["test_acc"], summary["test_acc_best_val"]
        return (f"test weighted accuracy {100 * t['mean']:.3f} ± {100 * t['std']:.3f} % (the last epoch's model, "
                f"mean over test batches; over {summary['runs']} run(s)); at the best validation epoch "
                f"{100 * b['mean']:.3f} ± {100 * b['std']:.3f} %; {summary['parameters']:,} parameters, "
                f"median epoch {summary['epoch_s_median']:.1f} s")

    @classmethod
    def saved_metrics(cls, summary):
        return dict(test_acc=summary["test_acc"]["mean"], test_acc_best_val=summary["test_acc_best_val"]["mean"])
