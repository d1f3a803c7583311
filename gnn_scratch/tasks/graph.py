"""Graph classification: one label per graph, k-fold cross-validation over mini-batches of graphs.

Two protocols, both reported (Xu et al. 2019 use the first; its authors say it is optimistic):

* **authors'** -- train on k-1 folds, score the held-out fold after every epoch; average the k
  curves and report the mean ± standard deviation (over folds) at the one epoch where the average
  is highest. The test folds choose the epoch, so the number is an upper estimate.
* **honest** -- split each training fold into ``val_folds`` stratified parts and hold one out;
  the epoch of best validation accuracy (ties: the earlier epoch) is chosen per fold from the
  validation graphs alone, and the test fold is read at that epoch only.

Each training iteration draws ``batch_size`` graphs from the training graphs at random (without
repetition within the batch, as the authors' code does), ``iters_per_epoch`` times per epoch;
Adam's learning rate is multiplied by ``lr_gamma`` every ``lr_step`` epochs. The dataset's graphs
are batched once (``GraphBatch``); every mini-batch is cut from it with ``GraphBatch.select``.
"""
from __future__ import annotations

import time

import numpy as np

from ..data import GRAPH_DATASETS
from ..data.tu import stratified_folds
from ..loop import input_is_data, train_step
from ..models import MODELS
from ..nn import SoftmaxCrossEntropy, accuracy
from ..optim import Adam
from ..threads import blas_threads
from . import options
from .base import Task, register_task

PROTOCOLS = ("both", "authors", "honest")


def inner_validation(y_train, val_folds, seed):
    """(train, validation) positions within a training fold: the first of ``val_folds`` stratified parts of it
    (``data.tu.stratified_folds`` with ``seed``) is the validation set, about 1 / val_folds of each class."""
    return stratified_folds(y_train, min(val_folds, y_train.size), seed)[0]


class _Scorer:
    """A fixed set of graphs scored in evaluation mode: the sub-batch and its features, cut once."""

    def __init__(self, whole, x_all, y, ids):
        self.batch, nodes = whole.select(ids)
        self.x, self.y = x_all[nodes], y[ids]

    def __call__(self, model):
        return accuracy(model.forward(self.x, self.batch), self.y)


def train_fold(model, optimizer, whole, x_all, y, train_ids, score_sets, train, seed, log=None, tag=""):
    """Train ``model`` on the graphs ``train_ids``; after each epoch score every set in ``score_sets``.

    whole: ``GraphBatch`` of every graph, x_all: its node features (N, F), y: (B,) labels.
    score_sets: {name: graph ids}. Returns {name: (epochs,) accuracies} and the epoch times (ms).
    The features are data: the model skips their gradient (``loop.input_is_data``).
    """
    loss_fn = SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed)
    scorers = {name: _Scorer(whole, x_all, y, ids) for name, ids in score_sets.items()}
    curves = {name: np.zeros(train["epochs"]) for name in scorers}
    epoch_ms = []
    base_lr = [g["lr"] for g in optimizer.groups]
    B = min(train["batch_size"], train_ids.size)
    with input_is_data(model):
        for epoch in range(train["epochs"]):
            t0 = time.perf_counter()
            for g, lr in zip(optimizer.groups, base_lr):
                g["lr"] = lr * train["lr_gamma"] ** (epoch // train["lr_step"])
            total = 0.0
            for _ in range(train["iters_per_epoch"]):
                ids = train_ids[rng.permutation(train_ids.size)[:B]]
                sub, nodes = whole.select(ids)
                total += float(train_step(model, x_all[nodes], sub, y[ids], None, optimizer, loss_fn))
            model.eval()
            with blas_threads(1):
                scores = {name: s(model) for name, s in scorers.items()}
            epoch_ms.append(1e3 * (time.perf_counter() - t0))
            for name, acc in scores.items():
                curves[name][epoch] = acc
            if log:
                accs = "  ".join(f"{name} {acc:.4f}" for name, acc in scores.items())
                log(f"{tag}epoch {epoch + 1:4d}  loss {total / train['iters_per_epoch']:.4f}  {accs}  "
                    f"{epoch_ms[-1]:.1f} ms")
    return curves, epoch_ms


@register_task
class GraphClassification(Task):
    """Graph classification: k-fold cross-validation on mini-batches of graphs (GIN's protocol and an honest one)."""

    name = "graph"
    datasets = GRAPH_DATASETS
    default_dataset = "mutag"
    devices = ("cpu",)          # where its loop runs: mini-batches are cut on the host (GraphBatch.select)
    defaults = dict(lr=0.01, weight_decay=0.0, epochs=350, batch_size=32, iters_per_epoch=50, lr_step=50,
                    lr_gamma=0.5, folds=10, protocol="both", val_folds=10)
    options = dict(epochs=("--epochs", "positive_int"), lr=("--lr", "finite_positive_float"),
                   weight_decay=("--weight-decay", "non_negative_float"),
                   batch_size=("--batch-size", "positive_int"), iters_per_epoch=("--iters-per-epoch", "positive_int"),
                   lr_step=("--lr-step", "positive_int"), lr_gamma=("--lr-gamma", "finite_positive_float"),
                   folds=("--folds", "positive_int"), val_folds=("--val-folds", "positive_int"))

    @classmethod
    def describe_data(cls, data):
        return (f"{data.name}: {data.num_graphs} graphs, {int(data.num_nodes.sum())} nodes, "
                f"{sum(ei.shape[1] for ei in data.edge_index)} edges, {data.num_features} features, "
                f"{data.num_classes} classes")

    @classmethod
    def add_arguments(cls, parser):
        d = cls.defaults
        kind = lambda key: getattr(options, cls.options[key][1])   # noqa: E731 -- the argparse type of a key
        helps = dict(epochs=f"training epochs, N >= 1 (default {d['epochs']})",
                     lr=f"Adam's initial learning rate, > 0 (default {d['lr']})",
                     weight_decay=f"L2 penalty on every parameter, >= 0 (default {d['weight_decay']})",
                     batch_size=f"graphs per mini-batch, >= 1 (default {d['batch_size']})",
                     iters_per_epoch=f"mini-batches per epoch, each drawn at random (default {d['iters_per_epoch']})",
                     lr_step=f"multiply the learning rate by --lr-gamma every N epochs (default {d['lr_step']})",
                     lr_gamma=f"the learning-rate decay factor, in (0, 1] (default {d['lr_gamma']})",
                     folds=f"k of the stratified k-fold cross-validation, >= 2 (default {d['folds']})",
                     val_folds=f"honest protocol: each training fold is split into K >= 2 stratified parts and one "
                               f"of them chooses the epoch (default {d['val_folds']}: a tenth)")
        metavars = dict(epochs="N", lr="LR", weight_decay="WD", batch_size="B", iters_per_epoch="N", lr_step="N",
                        lr_gamma="G", folds="K", val_folds="K")
        for key, (flag, _) in cls.options.items():
            parser.add_argument(flag, dest=key, type=kind(key), default=None, metavar=metavars[key], help=helps[key])
        parser.add_argument("--protocol", default=None, choices=PROTOCOLS,
                            help="authors' (the epoch of best mean test-fold accuracy: optimistic), honest (the "
                                 "epoch chosen on a validation split of each training fold), or both (default)")

    @classmethod
    def hparams_from_args(cls, args):
        return {key: getattr(args, key, None) for key in (*cls.options, "protocol")}

    @classmethod
    def check(cls, model_cls, device, train, model_kw=None):
        for key, (flag, kind) in cls.options.items():
            options.check(kind, train[key], f"{key} ({flag})")
        for key in ("folds", "val_folds"):
            if train[key] < 2:
                raise ValueError(f"{key} ({cls.options[key][0]}) must be >= 2, got {train[key]}")
        if train["lr_gamma"] > 1:
            raise ValueError(f"lr_gamma (--lr-gamma) must be a decay factor in (0, 1], got {train['lr_gamma']}")
        if train["protocol"] not in PROTOCOLS:
            raise ValueError(f"protocol (--protocol) must be one of {PROTOCOLS}, got {train['protocol']!r}")
        if not getattr(model_cls, "graph_level", False):
            takers = ", ".join(n for n, c in MODELS.items() if getattr(c, "graph_level", False)) or "none"
            raise ValueError(f"model {model_cls.name!r} gives node outputs, not one score per graph; the graph task "
                             f"takes: {takers}")
        if device not in cls.devices:
            raise ValueError(f"the graph task trains on {', '.join(cls.devices)}, not {device!r}")


    @classmethod
    def build(cls, model_cls, model_kw, train, data, seed):
        model = model_cls(in_channels=data.num_features, out_channels=data.num_classes, seed=seed, **model_kw)
        return model, Adam([{"params": model.parameters(), "weight_decay": train["weight_decay"]}], lr=train["lr"])

    @classmethod
    def run(cls, model_name, data, runs=1, seed=0, log=None, device="cpu", interruptible=False, **hparams):
        """Cross-validate ``model_name`` on the graphs of ``data`` ``runs`` times (seeds seed, seed+1, ...).

        data: a graph-classification dataset (``data.tu.TUDataset``): ``y`` (B,) labels,
        ``num_features``, ``num_classes`` and ``batch(dtype=)`` -> (``GraphBatch`` of every graph,
        x (N, F), y (B,)).
        Summary keys: model, dataset, runs, seed, folds, protocol, authors (mean, std, epoch, per-fold
        accuracies at that epoch, the mean curve), honest (mean, std, per-fold accuracies and chosen
        epochs), epoch_ms_median, hparams. Raises ValueError for an option out of range or a model
        that does not score graphs.
        """
        options.check("positive_int", runs, "runs (--runs)")
        options.check("non_negative_int", seed, "seed (--seed)")
        model_cls, model_kw, train = cls.validate(model_name, device, hparams)
        whole, x_all, y = data.batch(dtype=np.dtype(model_kw.get("dtype", "float32")))
        protocols = ("authors", "honest") if train["protocol"] == "both" else (train["protocol"],)
        k = train["folds"]
        if k > y.size:
            raise ValueError(f"folds (--folds) must be at most the number of graphs ({y.size} in "
                             f"{getattr(data, 'name', 'the dataset')}), got {k}")
        per_run, epoch_ms, model = [], [], None
        try:
            for r in range(runs):
                s = seed + r
                folds = stratified_folds(y, k, s)
                acc = {p: [] for p in protocols}
                chosen = []
                for f, (train_ids, test_ids) in enumerate(folds):
                    if "authors" in protocols:
                        model, opt = cls.build(model_cls, model_kw, train, data, s * 1000 + f)
                        curves, ms = train_fold(model, opt, whole, x_all, y, train_ids, {"test": test_ids}, train,
                                                s * 1000 + f, log, tag=f"fold {f + 1}/{k} authors  ")
                        acc["authors"].append(curves["test"])
                        epoch_ms += ms
                    if "honest" in protocols:
                        inner, val_ids = inner_validation(y[train_ids], train["val_folds"], s * 1000 + f)
                        model, opt = cls.build(model_cls, model_kw, train, data, s * 1000 + f)
                        curves, ms = train_fold(model, opt, whole, x_all, y, train_ids[inner],
                                                {"val": train_ids[val_ids], "test": test_ids}, train,
                                                s * 1000 + f, log, tag=f"fold {f + 1}/{k} honest  ")
                        e = int(np.argmax(curves["val"]))                   # first epoch of best validation accuracy
                        acc["honest"].append(curves["test"][e])
                        chosen.append(e + 1)                                # test accuracy read at that epoch only
                        epoch_ms += ms
                per_run.append(_summarise(acc, chosen))
                if log:
                    log(f"run {r + 1}/{runs} seed {s}: " + cls._line(per_run[-1]))
        except KeyboardInterrupt:
            if not (interruptible and per_run):
                raise
        summary = dict(model=model_name, dataset=getattr(data, "name", None), runs=len(per_run), seed=seed,
                       device=device, folds=k, protocol=train["protocol"],
                       epoch_ms_median=float(np.median(epoch_ms)) if epoch_ms else float("nan"),
                       hparams={**model_cls.model_defaults, **model_kw, **train})
        for p in protocols:
            summary[p] = per_run[-1][p] if len(per_run) == 1 else dict(
                mean=float(np.mean([run[p]["mean"] for run in per_run])),
                std=float(np.std([run[p]["mean"] for run in per_run])), runs=[run[p] for run in per_run])
        if len(per_run) < runs:
            summary.update(interrupted=True, runs_requested=runs)
        return summary, model

    @staticmethod
    def _line(s):
        parts = []
        if "authors" in s:
            a = s["authors"]
            at = f" (epoch {a['epoch']})" if "epoch" in a else ""                # one cross-validation: its epoch
            parts.append(f"authors' protocol {100 * a['mean']:.2f} ± {100 * a['std']:.2f} %{at}")
        if "honest" in s:
            h = s["honest"]
            parts.append(f"honest protocol {100 * h['mean']:.2f} ± {100 * h['std']:.2f} %")
        return "; ".join(parts)

    @classmethod
    def report(cls, summary):
        runs = summary["runs"]
        return (f"{summary['folds']}-fold test accuracy: {cls._line(summary)} "
                f"({'over ' + str(runs) + ' cross-validations; ' if runs > 1 else ''}"
                f"median epoch {summary['epoch_ms_median']:.1f} ms)")

    @classmethod
    def saved_metrics(cls, summary):
        return {p: summary[p]["mean"] for p in ("authors", "honest") if p in summary}


def _summarise(acc, chosen):
    """The protocol numbers of one cross-validation: {protocol: {mean, std, ...}} from the per-fold results."""
    out = {}
    if acc.get("authors"):
        curves = np.array(acc["authors"])                                   # (folds, epochs)
        mean_curve = curves.mean(axis=0)
        e = int(np.argmax(mean_curve))
        out["authors"] = dict(mean=float(mean_curve[e]), std=float(curves[:, e].std()), epoch=e + 1,
                              fold_acc=[float(a) for a in curves[:, e]], mean_curve=[float(a) for a in mean_curve])
    if acc.get("honest"):
        h = np.array(acc["honest"])
        out["honest"] = dict(mean=float(h.mean()), std=float(h.std()), fold_acc=[float(a) for a in h],
                             epochs=chosen)
    return out
