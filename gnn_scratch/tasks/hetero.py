"""Target-node classification on heterogeneous graphs (issue 14): ACM papers, DBLP authors.

Two kinds of model take this task:
* trained end to end with labels (``han``, ``rgcn``): full-batch Adam on the training nodes' cross
  entropy, the epoch of best validation accuracy kept (ties: lower validation loss), early stopping
  after ``patience`` epochs without a better validation loss or accuracy (``loop.BestEpoch``);
* embeddings learned without labels (``metapath2vec``, ``hetgnn``), then a logistic-regression
  probe on the target nodes' embeddings, fitted on the training nodes with its inverse penalty C
  chosen on the validation nodes (``embed.evaluate.classify_split``).
Both report Macro-F1 and Micro-F1 on the test nodes (Micro-F1 of a single-label prediction is its
accuracy), per run and as mean ± std over the runs (seeds seed, seed+1, ...), on HeCo's splits of
20 (40, 60) labelled nodes per class, 1000 validation and 1000 test nodes.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from .. import device as placement   # "device" names an argument here
from ..embed.evaluate import classify_split, f1_scores, labels_to_matrix
from ..loop import BestEpoch, epoch_line, evaluate, train_step
from ..models import MODELS
from ..nn import SoftmaxCrossEntropy
from ..optim import Adam
from ..threads import blas_threads
from . import options
from .base import Task, register_task

HETERO_DATASETS = ("acm", "dblp")
PROBE_C = (0.01, 0.1, 1.0, 10.0, 100.0)   # the probe's inverse penalties tried on the validation nodes


def is_hetero(model_cls):
    """Whether ``model_cls`` reads a heterogeneous dataset (a ``hetero`` class attribute)."""
    return bool(getattr(model_cls, "hetero", False))


def macro_micro_f1(pred, y, num_classes):
    """(Macro-F1, Micro-F1) of single-label predictions ``pred`` against ``y`` (both (n,) int)."""
    return f1_scores(labels_to_matrix(y, num_classes), labels_to_matrix(pred, num_classes), empty="zero")


def _masks(data):
    """The three splits as boolean masks over the target nodes, with the labels: a view ``evaluate`` reads."""
    n = int(data.y.shape[0])
    masks = {}
    for split in ("train", "val", "test"):
        m = np.zeros(n, dtype=bool)
        m[getattr(data, f"{split}_idx")] = True
        masks[f"{split}_mask"] = m
    return SimpleNamespace(y=np.asarray(data.y, dtype=np.int64), **masks)


@register_task
class HeteroClassification(Task):
    """Target-node classification on a heterogeneous graph (han, rgcn; metapath2vec, hetgnn + a probe): F1 scores."""

    name = "hetero"
    datasets = HETERO_DATASETS
    default_dataset = "acm"
    defaults = dict(lr=0.005, weight_decay=0.001, epochs=200, patience=100)
    options = dict(epochs=("--epochs", "positive_int"), patience=("--patience", "positive_int"),
                   lr=("--lr", "finite_positive_float"), weight_decay=("--weight-decay", "non_negative_float"))

    @classmethod
    def describe_data(cls, data):
        g = data.graph
        types = ", ".join(f"{g.num_nodes[t]} {t}" for t in g.node_types)
        return (f"{data.name}: {types}; {len(g.edge_types)} relations, {sum(x.num_edges for x in g.graphs.values())} "
                f"edges; target {data.target} ({data.num_classes} classes, {len(data.train_idx)} train / "
                f"{len(data.val_idx)} val / {len(data.test_idx)} test); metapaths {', '.join(data.metapaths)}")

    @classmethod
    def add_arguments(cls, parser):
        kind = lambda key: getattr(options, cls.options[key][1])   # noqa: E731 -- the argparse type of a key
        per = lambda key: ", ".join(f"{n} {c.train_defaults.get(key, cls.defaults[key])}"   # noqa: E731
                                    for n, c in MODELS.items() if is_hetero(c) and not _unsupervised(c))
        parser.add_argument("--epochs", type=kind("epochs"), default=None, metavar="N",
                            help=f"han, rgcn: training epochs at most, N >= 1 (default {per('epochs')})")
        parser.add_argument("--patience", type=kind("patience"), default=None, metavar="N",
                            help="han, rgcn: stop after N >= 1 epochs with neither a better validation loss nor "
                                 f"accuracy (default {per('patience')})")
        parser.add_argument("--lr", type=kind("lr"), default=None,
                            help=f"han, rgcn: Adam learning rate, > 0 (default {per('lr')})")
        parser.add_argument("--weight-decay", type=kind("weight_decay"), default=None, metavar="WD",
                            help=f"han, rgcn: L2 penalty on every parameter, >= 0 (default {per('weight_decay')})")

    @classmethod
    def hparams_from_args(cls, args):
        return dict(lr=args.lr, weight_decay=args.weight_decay, epochs=args.epochs, patience=args.patience)

    @classmethod
    def check(cls, model_cls, device, train, model_kw=None):
        if not is_hetero(model_cls):
            takers = ", ".join(n for n, c in MODELS.items() if is_hetero(c))
            raise ValueError(f"model {model_cls.name!r} reads one node type; the hetero task takes: {takers}")
        if placement.check_device(device) not in model_cls.devices:
            raise ValueError(f"model {model_cls.name!r} trains on {', '.join(model_cls.devices)}, not {device!r}")
        for key, (flag, kind) in cls.options.items():
            if train.get(key) is not None:
                options.check(kind, train[key], f"{key} ({flag})")
        kw = model_kw or {}
        options.check_heads_share_width(model_cls.name, kw)
        hidden, blocks = kw.get("hidden_channels"), kw.get("num_blocks")
        if hidden is not None and blocks is not None and hidden % blocks:
            raise ValueError(f"num_blocks (--num-blocks) must divide hidden_channels (--hidden) = {hidden}, got {blocks}")
        if kw.get("num_bases") is not None and kw.get("num_blocks") is not None:
            raise ValueError("num_bases (--num-bases) and num_blocks (--num-blocks) are two decompositions of W_r: "
                             "give one of them")
        if _unsupervised(model_cls):
            given = [cls.options[k][0] for k in cls.defaults if k in (model_kw or {}) or
                     (train.get(k) is not None and train[k] != model_cls.train_defaults.get(k, cls.defaults[k]))]
            if given:
                raise ValueError(f"{', '.join(given)} train han and rgcn; {model_cls.name} learns without labels "
                                 f"(its own options are its defaults)")

    @classmethod
    def run(cls, model_name, data, runs=1, seed=0, log=None, device="cpu", interruptible=False, **hparams):
        """Train (or embed and probe) ``runs`` times with seeds seed, seed+1, ...: (summary, the last model).

        Summary keys: model, dataset, target, runs, seed, macro_f1 / micro_f1 (mean, std, per run), val_micro_f1,
        best_epoch (supervised) or C (the probe's), seconds per run, epoch_ms_median (supervised), semantic
        attention β per metapath (han, every run), hparams. Raises ValueError for a model that is not
        heterogeneous or a value out of range.
        """
        options.check("positive_int", runs, "runs (--runs)")
        options.check("non_negative_int", seed, "seed (--seed)")
        model_cls, model_kw, train = cls.validate(model_name, device, hparams)
        view = _masks(data)
        per_run, model = [], None
        try:
            for r in range(runs):
                s = seed + r
                t0 = time.perf_counter()
                if _unsupervised(model_cls):
                    out, model = _embed_and_probe(model_cls, data, view, s, model_kw)
                else:
                    out, model = _fit(model_cls, data, view, s, model_kw, train, log)
                out.update(seed=s, seconds=time.perf_counter() - t0)
                per_run.append(out)
                if log:
                    beta = out.get("semantic_attention")
                    log(f"run {r + 1}/{runs} seed {s}: test Macro-F1 {out['macro_f1']:.4f}  Micro-F1 "
                        f"{out['micro_f1']:.4f}" + (f"  β {_beta_line(beta)}" if beta else "") +
                        f"  ({out['seconds']:.1f} s)")
        except KeyboardInterrupt:
            if not (interruptible and per_run):
                raise
        summary = dict(model=model_name, dataset=data.name, target=data.target, runs=len(per_run), seed=seed,
                       device=device, hparams={**model_kw, **({} if _unsupervised(model_cls) else train)},
                       runs_detail=per_run)
        for key in ("macro_f1", "micro_f1"):
            v = np.array([p[key] for p in per_run])
            summary[key] = dict(mean=float(v.mean()), std=float(v.std()), all=[float(a) for a in v])
        if per_run and "semantic_attention" in per_run[0]:
            names = list(per_run[0]["semantic_attention"])
            summary["semantic_attention"] = {n: float(np.mean([p["semantic_attention"][n] for p in per_run]))
                                             for n in names}
        if per_run and "epoch_ms" in per_run[0]:
            summary["epoch_ms_median"] = float(np.median(np.concatenate([p.pop("epoch_ms") for p in per_run])))
        if len(per_run) < runs:
            summary.update(interrupted=True, runs_requested=runs)
        return summary, model

    @classmethod
    def report(cls, summary):
        ma, mi = summary["macro_f1"], summary["micro_f1"]
        line = (f"test Macro-F1 {100 * ma['mean']:.2f} ± {100 * ma['std']:.2f}, Micro-F1 {100 * mi['mean']:.2f} ± "
                f"{100 * mi['std']:.2f} % over {summary['runs']} run(s)")
        if "semantic_attention" in summary:
            line += f"; semantic attention β (mean over runs): {_beta_line(summary['semantic_attention'])}"
        return line

    @classmethod
    def saved_metrics(cls, summary):
        last = summary["runs_detail"][-1]
        return dict(macro_f1=last["macro_f1"], micro_f1=last["micro_f1"])


def _unsupervised(model_cls):
    return bool(getattr(model_cls, "unsupervised", False))


def _beta_line(beta):
    return ", ".join(f"{k} {v:.3f}" for k, v in beta.items())


def _fit(model_cls, data, view, seed, model_kw, train, log):
    """One supervised run: (its scores, the model holding the best validation epoch's parameters)."""
    model = model_cls(out_channels=data.num_classes, seed=seed, **model_cls.data_arguments(data), **model_kw)
    dtype = model.config.get("dtype", "float32")
    x, graph = model_cls.inputs(data, dtype=dtype)
    opt = Adam([{"params": model.parameters(), "weight_decay": train["weight_decay"]}], lr=train["lr"])
    loss_fn = SoftmaxCrossEntropy()
    tracker = BestEpoch(train["patience"])
    epoch_ms = []
    for epoch in range(1, train["epochs"] + 1):
        t0 = time.perf_counter()
        loss = train_step(model, x, graph, view.y, view.train_mask, opt, loss_fn)
        model.eval()
        with blas_threads(1):
            Z = model.forward(x, graph)
        epoch_ms.append(1e3 * (time.perf_counter() - t0))
        val_loss, accs = evaluate(Z, view.y, view)
        if log:
            log(epoch_line(epoch, float(loss), accs, val_loss, epoch_ms[-1]))
        if tracker.update(epoch, model, val_loss, accs):
            break
    best = tracker.result
    model.load_state_dict(best.state)
    model.eval()
    with blas_threads(1):
        Z = model.forward(x, graph)
    pred = np.argmax(Z, axis=1)
    test = view.test_mask
    macro, micro = macro_micro_f1(pred[test], view.y[test], data.num_classes)
    out = dict(macro_f1=macro, micro_f1=micro, val_micro_f1=float(best.val_acc), best_epoch=best.best_epoch,
               epochs_run=best.epochs_run, epoch_ms=epoch_ms[1:] or epoch_ms)
    if hasattr(model, "semantic_attention"):
        out["semantic_attention"] = model.semantic_attention()
    return out, model


def _embed_and_probe(model_cls, data, view, seed, model_kw):
    """One unsupervised run: the target nodes' embedding, then the probe with C chosen on the validation nodes."""
    Z, info = model_cls.embed(data, seed=seed, **model_kw)
    if not np.all(np.isfinite(Z)):
        raise FloatingPointError(f"{model_cls.name} produced a non-finite embedding (seed {seed})")
    y = view.y
    tr, va, te = (np.flatnonzero(getattr(view, f"{s}_mask")) for s in ("train", "val", "test"))
    val = {C: classify_split(Z, y, tr, va, C=C)["micro_f1"] for C in PROBE_C}
    C = max(PROBE_C, key=lambda c: (val[c], -c))          # ties: the stronger penalty
    scores = classify_split(Z, y, tr, te, C=C)
    return dict(macro_f1=scores["macro_f1"], micro_f1=scores["micro_f1"], val_micro_f1=val[C], C=C, **info), Z

