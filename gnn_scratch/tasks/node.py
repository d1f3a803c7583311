"""Node classification: full-batch training with early stopping (or sampled mini-batches), runs over seeds.

Each node has one label; the model is trained with softmax cross-entropy on ``data.train_mask``
and scored by accuracy on the train / val / test masks. The reported test accuracy is the one at
the epoch of best validation accuracy (ties: lower validation loss); ``patience`` counts epochs
without a better validation loss or accuracy (the GAT paper's rule; ``loop.BestEpoch``).
"""
from __future__ import annotations

import inspect
import time
from types import SimpleNamespace

import numpy as np

from .. import device as placement   # "device" names an argument here
from ..data import NODE_DATASETS
from ..loop import BestEpoch, epoch_line, evaluate, input_is_data, model_dtype, prepare_features, train_step
from ..minibatch import fit_minibatch
from ..models import MODELS, get_model_class
from ..nn import SoftmaxCrossEntropy
from ..optim import Adam
from ..threads import blas_threads
from . import options
from .base import Task, register_task


def to_device_inputs(model, optimizer, data, x, device):
    """Move what a full-batch epoch reads to ``device`` once: (a view of data, x).

    The model moves in place (``Module.to``); the view holds the graph (``Graph.to``), y and the
    three masks on ``device``. The train and val masks (shape, not empty, by name) and the labels they
    select (the CPU loss's own messages) are checked on the host first, because the device loss cannot
    raise without a host round trip (an empty test mask is allowed here: ``fit`` may score on another
    graph). On the host every move is a no-op (the same arrays come back). Raises ValueError when
    ``optimizer`` holds arrays that are not the model's (it was built before ``model.to(device)``),
    RuntimeError without a GPU.
    """
    C = int(np.max(data.y)) + 1 if getattr(data, "num_classes", None) is None else data.num_classes
    for key in ("train_mask", "val_mask"):
        mask = np.asarray(getattr(data, key))
        if mask.shape != (len(data.y),):
            raise ValueError(f"data.{key} must have shape ({len(data.y)},) like data.y, got {mask.shape}")
        if not mask.any():
            raise ValueError(f"data.{key} selects no node: the loss over an empty set is undefined")
        SoftmaxCrossEntropy().forward(np.zeros((len(data.y), C), np.float32), data.y, getattr(data, key))   # labels
    model.to(device)
    own = {id(p) for p, _ in model.parameters()}
    if any(id(p) not in own for g in optimizer.groups for p, _ in g["params"]):
        raise ValueError(f"the optimiser holds parameters that are not the model's on {device!r}: "
                         f"create it after model.to({device!r})")
    masks = {k: placement.to(np.asarray(getattr(data, k), dtype=bool), device)
             for k in ("train_mask", "val_mask", "test_mask")}
    view = SimpleNamespace(name=getattr(data, "name", None), graph=data.graph.to(device),
                           y=placement.to(np.asarray(data.y), device), **masks)
    return view, placement.to(x, device)


def fit(model, data, optimizer, epochs=200, patience=None, x=None, log=None, device="cpu"):
    """Train ``model`` full batch on ``data.train_mask``; keep the parameters of the best validation epoch.

    Each epoch: forward in training mode, loss on the training nodes, backward, optimiser step; then
    a forward in evaluation mode for the accuracies. Stops after ``patience`` epochs in which neither
    the validation loss nor the validation accuracy improved. Returns a ``loop.Result``; the model is
    left holding the best epoch's parameters. ``device="cuda"``: everything runs on the GPU after one
    move (``to_device_inputs``; build the optimiser after ``model.to("cuda")``), and per epoch only
    the validation loss, the accuracies (and the logged training loss) come back to the host.
    """
    x = prepare_features(data, dtype=model_dtype(model)) if x is None else x
    data, x = to_device_inputs(model, optimizer, data, x, device)   # moved once; no-ops on the host
    with input_is_data(model):
        return _fit_epochs(model, data, optimizer, epochs, patience, x, log)


def _fit_epochs(model, data, optimizer, epochs, patience, x, log):
    graph, y = data.graph, data.y
    loss_fn = SoftmaxCrossEntropy()
    tracker = BestEpoch(patience)
    best = tracker.result
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        loss = train_step(model, x, graph, y, data.train_mask, optimizer, loss_fn)
        model.eval()
        with blas_threads(1):
            Z = model.forward(x, graph)
        placement.synchronize(Z)                   # GPU kernels run asynchronously: wait before timing
        best.epoch_ms.append(1e3 * (time.perf_counter() - t0))
        val_loss, accs = evaluate(Z, y, data)
        if log:
            log(epoch_line(epoch, placement.item(loss), accs, val_loss, best.epoch_ms[-1]))
        if tracker.update(epoch, model, val_loss, accs):
            break
    model.load_state_dict(best.state)
    return best


def _constructor_value(model_cls, model_kw, key, default=None):
    """``model_kw[key]`` when given, else the default of ``model_cls``'s constructor argument ``key``
    (``default`` when it takes none): the value the model will be built with."""
    if key in model_kw:
        return model_kw[key]
    param = inspect.signature(model_cls.__init__).parameters.get(key)
    return default if param is None or param.default is inspect.Parameter.empty else param.default


def _takes_blocks(model_cls):
    """Whether the model trains on sampled blocks: ``minibatch.layerwise_inference`` runs it layer by layer."""
    return callable(getattr(model_cls, "layer_forward", None))


@register_task
class NodeClassification(Task):
    """Node classification: cross-entropy on the training nodes, accuracy on val / test (default)."""

    name = "node"
    datasets = NODE_DATASETS
    # The training loop's hyper-parameters; a model's train_defaults override the first four.
    # batch_size None = full batch; fanout None = (25, 10) when batch_size is given.
    defaults = dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=None, batch_size=None, fanout=None)
    minibatch_devices = ("cpu",)       # where sampled mini-batch training runs
    default_fanout = (25, 10)

    @classmethod
    def per_model(cls, key):
        """'gcn 0.01, gat 0.005, sage 0.01': the value of training hyper-parameter ``key`` for each registered model."""
        return ", ".join(f"{n} {c.train_defaults.get(key, cls.defaults[key])}" for n, c in MODELS.items()
                         if not any(getattr(c, k, False) for k in ("graph_level", "temporal", "embedding")))

    # The training hyper-parameters' options and kinds of value (``tasks.options``): the command line's
    # flags, and the names the checks of ``check`` give in their messages. None (patience: never) is valid.
    options = dict(epochs=("--epochs", "positive_int"), patience=("--patience", "positive_int"),
                   lr=("--lr", "finite_positive_float"), weight_decay=("--weight-decay", "non_negative_float"),
                   batch_size=("--batch-size", "positive_int"), fanout=("--fanout", "fanouts"))

    @classmethod
    def add_arguments(cls, parser):
        minibatch = ", ".join(n for n, c in MODELS.items() if _takes_blocks(c)) or "no model registered"
        kind = lambda key: getattr(options, cls.options[key][1])   # noqa: E731 -- the argparse type of a key
        parser.add_argument("--epochs", type=kind("epochs"), default=None, metavar="N",
                            help=f"training epochs at most, N >= 1 (default per model: {cls.per_model('epochs')})")
        parser.add_argument("--patience", type=kind("patience"), default=None, metavar="N",
                            help="stop after N >= 1 epochs with neither a better validation loss nor accuracy "
                                 f"(default per model: {cls.per_model('patience')}; None = never)")
        parser.add_argument("--lr", type=kind("lr"), default=None,
                            help=f"Adam learning rate, > 0 (default per model: {cls.per_model('lr')})")
        parser.add_argument("--weight-decay", type=kind("weight_decay"), default=None, metavar="WD",
                            help="L2 penalty on every parameter, >= 0 (gcn: on its first layer only; default per "
                                 f"model: {cls.per_model('weight_decay')})")
        parser.add_argument("--batch-size", type=kind("batch_size"), default=None, metavar="B",
                            help=f"only {minibatch}: train on sampled mini-batches of B >= 1 seed nodes, on "
                                 f"{', '.join(cls.minibatch_devices)} (default: full batch)")
        parser.add_argument("--fanout", type=kind("fanout"), default=None, metavar="F1,F2",
                            help=f"only {minibatch} with --batch-size: neighbours sampled per node at each hop from "
                                 f"the seeds, one per layer, -1 = all "
                                 f"(default {','.join(map(str, cls.default_fanout))})")

    @classmethod
    def hparams_from_args(cls, args):
        return dict(lr=args.lr, weight_decay=args.weight_decay, epochs=args.epochs, patience=args.patience,
                    batch_size=args.batch_size, fanout=args.fanout)

    @classmethod
    def build(cls, model_name, data, seed, hparams, device="cpu"):
        """(model, Adam optimiser, hyper-parameters) for ``data``: the model class's defaults under ``hparams``.

        The model is built with ``data.num_features`` inputs and ``data.num_classes`` outputs and
        moved to ``device`` before the optimiser (which holds the parameter arrays) is made. The
        returned dict holds every hyper-parameter in force (model and training). Raises ValueError
        for an unknown model or one that cannot run on ``device``.
        """
        model_cls = get_model_class(model_name)
        model_kw, train, hp = cls.split_hparams(model_cls, hparams)
        model = model_cls(in_channels=data.num_features, out_channels=data.num_classes, seed=seed, **model_kw)
        model.to(device)   # a no-op on the host
        groups = (model.param_groups(train["weight_decay"]) if hasattr(model, "param_groups")
                  else [{"params": model.parameters(), "weight_decay": train["weight_decay"]}])
        return model, Adam(groups, lr=train["lr"]), hp

    @classmethod
    def check(cls, model_cls, device, train, model_kw=None):
        """Raise ValueError (one line, naming the option) when ``model_cls`` cannot train on ``device`` with
        the training hyper-parameters ``train`` (``split_hparams``'s second dict; ``model_kw``, its first,
        gives the number of layers the fan-outs must match), before anything is built or moved.

        Every value is checked by its kind (``tasks.options``; None = the default, or never for patience).
        """
        for key, (flag, kind) in cls.options.items():
            if train.get(key) is not None:
                options.check(kind, train[key], f"{key} ({flag})")
        if getattr(model_cls, "graph_level", False):
            raise ValueError(f"model {model_cls.name!r} gives one score per graph, not per node: train it with "
                             f"--task graph")
        if getattr(model_cls, "temporal", False):
            raise ValueError(f"model {model_cls.name!r} forecasts a signal over time: train it with --task temporal")
        if getattr(model_cls, "embedding", False):
            raise ValueError(f"model {model_cls.name!r} embeds nodes without labels: run it with --task embedding")
        if getattr(model_cls, "inductive", False):
            raise ValueError(f"model {model_cls.name!r} is trained on the nodes of many graphs (PATTERN, CLUSTER): "
                             f"train it with --task inductive")
        if getattr(model_cls, "hetero", False):
            raise ValueError(f"model {model_cls.name!r} reads a heterogeneous graph (node and edge types): train it "
                             f"with --task hetero")
        if placement.check_device(device) not in model_cls.devices:
            able = ", ".join(n for n, c in MODELS.items() if device in c.devices)
            raise ValueError(f"model {model_cls.name!r} cannot train on {device!r} (its layers have no device "
                             f"path there yet); device={device!r} supports: {able}")
        if train["batch_size"] is not None:
            if device not in cls.minibatch_devices:
                raise ValueError(f"mini-batch training (batch_size, --batch-size) runs on "
                                 f"{', '.join(cls.minibatch_devices)}, not {device!r}")
            if not _takes_blocks(model_cls):
                takers = ", ".join(n for n, c in MODELS.items() if _takes_blocks(c)) or "no registered model"
                raise ValueError(f"batch_size (--batch-size) applies to {takers}, not {model_cls.name}: mini-batch "
                                 f"training needs a model that takes sampled blocks (one with layer_forward)")
            fanout = list(train["fanout"] or cls.default_fanout)
            layers = _constructor_value(model_cls, model_kw or {}, "num_layers")
            if layers is not None and len(fanout) != layers:
                raise ValueError(f"fanout (--fanout) must give one fan-out per layer ({layers} for "
                                 f"{model_cls.name}), got {','.join(map(str, fanout))}")
        elif train["fanout"] is not None:
            raise ValueError("fanout (--fanout) applies to mini-batch training only: give batch_size (--batch-size) "
                             "too, or leave the fan-out out")


    @classmethod
    def run(cls, model_name, data, runs=1, seed=0, log=None, device="cpu", interruptible=False, **hparams):
        """Train ``runs`` models with seeds seed, seed+1, ...; returns a summary dict and the last model.

        ``hparams`` override the model class's ``model_defaults`` / ``train_defaults`` (None = keep
        the default); ``batch_size`` switches to sampled mini-batches (``minibatch.fit_minibatch``).
        The features are prepared in the dtype the model is built with (``dtype``, default the model
        constructor's: float32). ``device="cuda"`` trains on the GPU (features moved once here, the
        rest once per run by ``fit``). Summary keys: model, dataset, runs, seed, device,
        test_acc_mean, test_acc_std, test_acc, val_acc, best_epoch (lists, one per run),
        epoch_ms_median (epoch 1 excluded: it compiles), hparams. Raises ValueError for an unknown
        model, a value out of range (``check``), a device it cannot use, or mini-batch training
        where it cannot run, or an empty test mask (its accuracy would be nan); TypeError when ``data``
        is not a dataset (a name, None).

        ``interruptible``: a KeyboardInterrupt during run k + 1 ends training and returns the summary
        of the k runs that finished (and the last of their models), with ``interrupted=True`` and
        ``runs_requested``; with none finished the KeyboardInterrupt propagates.
        """
        options.check("positive_int", runs, "runs (--runs)")
        options.check("non_negative_int", seed, "seed (--seed)")
        missing = [a for a in ("x", "y", "graph", "train_mask", "val_mask", "test_mask") if not hasattr(data, a)]
        if missing:
            hint = f" (load it first: gnn_scratch.data.get_dataset({data!r}))" if isinstance(data, str) else ""
            raise TypeError(f"data must be a node-classification Dataset (x, y, graph and the three masks), got "
                            f"{type(data).__name__}{hint}")
        if not np.any(np.asarray(data.test_mask, dtype=bool)):     # the reported accuracy would be nan
            raise ValueError("data.test_mask selects no node: there is no test accuracy to report")
        model_cls, model_kw, train = cls.validate(model_name, device, hparams)
        x = placement.to(prepare_features(data, dtype=_constructor_value(model_cls, model_kw, "dtype", "float32")),
                         device)
        results, model, hp = [], None, None
        try:
            for r in range(runs):
                trained, opt, hp = cls.build(model_name, data, seed + r, hparams, device=device)
                if train["batch_size"]:   # mini-batch training on sampled blocks (GraphSAGE); full batch otherwise
                    res = fit_minibatch(trained, data, opt, train["epochs"], train["patience"], train["batch_size"],
                                        train["fanout"] or cls.default_fanout, x=x, seed=seed + r, log=log)
                else:
                    res = fit(trained, data, opt, train["epochs"], train["patience"], x=x, log=log, device=device)
                results.append(res)
                model = trained
                if log:
                    log(f"run {r + 1}/{runs} seed {seed + r}: best epoch {res.best_epoch}  val {res.val_acc:.4f}  "
                        f"test {res.test_acc:.4f}")
        except KeyboardInterrupt:
            if not (interruptible and results):
                raise
        test = np.array([r.test_acc for r in results])
        epoch_ms = np.concatenate([r.epoch_ms[1:] or r.epoch_ms for r in results])  # epoch 1 includes compilation
        summary = dict(model=model_name, dataset=data.name, runs=len(results), seed=seed, device=device,
                       test_acc_mean=float(test.mean()), test_acc_std=float(test.std()),
                       test_acc=[float(t) for t in test], val_acc=[r.val_acc for r in results],
                       best_epoch=[r.best_epoch for r in results], epoch_ms_median=float(np.median(epoch_ms)),
                       hparams=dict(hp))
        if len(results) < runs:
            summary.update(interrupted=True, runs_requested=runs)
        return summary, model

    @classmethod
    def report(cls, summary):
        return (f"test accuracy {100 * summary['test_acc_mean']:.2f} ± {100 * summary['test_acc_std']:.2f} % "
                f"over {summary['runs']} run(s); median epoch {summary['epoch_ms_median']:.2f} ms")

    @classmethod
    def saved_metrics(cls, summary):
        return dict(test_acc=summary["test_acc"][-1])   # the saved model is the last run's


def build_for(model_name, data, seed, hparams, device="cpu"):
    """A model and its optimiser for ``data`` from ``hparams`` (the model class's defaults overridden), on
    ``device``: (model, Adam, hyper-parameters in force). See ``NodeClassification.build``."""
    return NodeClassification.build(model_name, data, seed, hparams, device=device)


def run(model_name, data, runs=1, seed=0, log=None, device="cpu", interruptible=False, **hparams):
    """Node classification over ``runs`` seeds: (summary, last model). See ``NodeClassification.run``."""
    return NodeClassification.run(model_name, data, runs=runs, seed=seed, log=log, device=device,
                                  interruptible=interruptible, **hparams)
