"""Full-batch node classification: training with early stopping, and repeated runs over seeds."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from . import dense
from .models import build_model
from .nn import Dropout, Sequential, SoftmaxCrossEntropy, accuracy
from .optim import Adam
from .threads import blas_threads

# The papers' hyper-parameters, per model. ``patience`` counts epochs without a better validation
# loss or accuracy (the GAT paper's rule); the reported test accuracy is the one at the epoch of
# best validation accuracy (ties: lower validation loss).
DEFAULTS = {
    "gcn": dict(hidden_channels=16, dropout=0.5, lr=0.01, weight_decay=5e-4, epochs=200, patience=100),
    "gat": dict(hidden_channels=8, heads=8, dropout=0.6, lr=0.005, weight_decay=5e-4, epochs=1000, patience=100),
    "sage": dict(hidden_channels=64, dropout=0.5, lr=0.01, weight_decay=5e-4, epochs=200, patience=None, aggr="mean"),
}

# Models whose every layer runs on the GPU (``run(..., device="cuda")``, ``--device cuda``).
DEVICE_MODELS = ("gcn", "gat", "sage")

# Hyper-parameters of the training loop that are not model arguments: mini-batch size and fan-outs.
TRAINING_ONLY = ("batch_size", "fanout")


@dataclass
class Result:
    """What one training run measured."""
    best_epoch: int
    val_acc: float
    test_acc: float
    train_acc: float
    epochs_run: int
    epoch_ms: list = field(default_factory=list)
    state: dict = field(default_factory=dict, repr=False)



class BestEpoch:
    """Keeps the best validation epoch of a run and says when to stop.

    Best = highest validation accuracy, ties broken by lower validation loss; its accuracies and a
    copy of the parameters go into ``result``. Stop after ``patience`` epochs in which neither the
    validation loss nor the validation accuracy improved (the GAT paper's rule; None = never).
    """

    def __init__(self, patience):
        self.patience = patience
        self.result = Result(best_epoch=-1, val_acc=-1.0, test_acc=float("nan"), train_acc=float("nan"),
                             epochs_run=0)
        self._best_key, self._best_val_loss, self._best_val_acc, self._waited = (-1.0, -np.inf), np.inf, -1.0, 0

    def update(self, epoch, model, val_loss, accs):
        """Record epoch ``epoch`` (accs = train, val, test accuracy); True when training should stop."""
        best = self.result
        best.epochs_run = epoch
        key = (accs[1], -val_loss)
        if key > self._best_key:
            self._best_key = key
            best.best_epoch, best.train_acc, best.val_acc, best.test_acc = epoch, accs[0], accs[1], accs[2]
            best.state = model.state_dict()
        if val_loss < self._best_val_loss or accs[1] > self._best_val_acc:
            self._best_val_loss = min(self._best_val_loss, val_loss)
            self._best_val_acc = max(self._best_val_acc, accs[1])
            self._waited = 0
            return False
        self._waited += 1
        return self.patience is not None and self._waited >= self.patience

def prepare_features(data, normalize="auto", dtype=np.float32):
    """Features as the model consumes them: row-normalised for bag-of-words data (Planetoid), in ``dtype``."""
    x = data.x
    if normalize == "auto":
        normalize = data.name in ("cora", "citeseer")
    if normalize:
        from .data import row_normalize
        x = row_normalize(x)
    x = x.astype(dtype) if sp.issparse(x) else np.ascontiguousarray(x, dtype=dtype)
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        if not np.isfinite(x.data).all():
            raise ValueError("features x must be finite")
    else:
        data.graph.check_features(x, "x")
    return x


def input_layer(model):
    """The layer with parameters that reads the input features, or None when that is not certain.

    A model may name it (``model.input_layer``); for a ``Sequential`` chain it is the first layer
    with parameters, provided only dropouts come before it.
    """
    named = getattr(model, "input_layer", None)
    if named is not None:
        return named() if callable(named) else named
    if isinstance(model, Sequential):
        for layer in model.layers():
            if layer.params:
                return layer
            if not isinstance(layer, Dropout):
                return None
    return None


@contextmanager
def input_is_data(model):
    """While active, the input layer skips dL/dx (the features are data, nothing consumes it).

    The layer's backward then returns None and the chain stops there, so neither the input layer's
    G W^T product nor the backward of the dropout below it is computed -- what autograd skips for a
    tensor without ``requires_grad``. Parameter gradients are unchanged. Layers opt in with a
    ``needs_input_grad`` attribute (GCNConv, Linear); others are left as they are.
    """
    layer = input_layer(model)
    if layer is None or not hasattr(layer, "needs_input_grad"):
        yield model
        return
    had = "needs_input_grad" in vars(layer)
    old = layer.needs_input_grad
    layer.needs_input_grad = False
    try:
        yield model
    finally:
        if had:
            layer.needs_input_grad = old
        else:
            del layer.needs_input_grad


def train_step(model, x, graph, y, mask, optimizer, loss_fn):
    """One full-batch training step: forward in training mode, masked loss, backward, update. Returns the loss.

    NumPy's OpenBLAS runs single-threaded during the step (``threads.blas_threads``): its spinning
    workers would otherwise share the cores with the Numba kernels that follow every product.
    """
    with blas_threads(1):
        model.train()
        optimizer.zero_grad()
        loss = loss_fn.forward(model.forward(x, graph), y, mask)
        model.backward(loss_fn.backward())
        optimizer.step()
    return loss


def to_device_inputs(model, optimizer, data, x, device):
    """Move what a full-batch epoch reads to ``device`` once: (a view of data, x).

    The model moves in place (``Module.to``); the view holds the graph (``Graph.to``), y and the
    three masks as device arrays. Labels and masks are checked on the host first, with the CPU
    loss's own messages, because the device loss cannot raise without a host round trip. Raises
    ValueError when ``optimizer`` holds arrays that are not the model's (it was built before
    ``model.to(device)``), RuntimeError without a GPU.
    """
    C = int(np.max(data.y)) + 1 if getattr(data, "num_classes", None) is None else data.num_classes
    for mask in (data.train_mask, data.val_mask):
        SoftmaxCrossEntropy().forward(np.zeros((len(data.y), C), np.float32), data.y, mask)
    model.to(device)
    own = {id(p) for p, _ in model.parameters()}
    if any(id(p) not in own for g in optimizer.groups for p, _ in g["params"]):
        raise ValueError(f"the optimiser holds parameters that are not the model's on {device!r}: "
                         f"create it after model.to({device!r})")
    masks = {k: dense.to(np.asarray(getattr(data, k), dtype=bool), device)
             for k in ("train_mask", "val_mask", "test_mask")}
    view = SimpleNamespace(name=getattr(data, "name", None), graph=data.graph.to(device),
                           y=dense.to(np.asarray(data.y), device), **masks)
    return view, dense.to(x, device)


def fit(model, data, optimizer, epochs=200, patience=None, x=None, log=None, device="cpu"):
    """Train ``model`` full batch on ``data.train_mask``; keep the parameters of the best validation epoch.

    Each epoch: forward in training mode, loss on the training nodes, backward, optimiser step; then
    a forward in evaluation mode for the accuracies. Stops after ``patience`` epochs in which neither
    the validation loss nor the validation accuracy improved. Returns a ``Result``; the model is left
    holding the best epoch's parameters. ``device="cuda"``: everything runs on the GPU after one move
    (``to_device_inputs``; build the optimiser after ``model.to("cuda")``), and per epoch only the
    validation loss, the accuracies (and the logged training loss) come back to the host.
    """
    x = prepare_features(data) if x is None else x
    if device != "cpu":   # the GPU: model and data moved once; per epoch only the logged scalars come back
        data, x = to_device_inputs(model, optimizer, data, x, device)
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
        dense.synchronize(Z)                       # GPU kernels run asynchronously: wait before timing
        best.epoch_ms.append(1e3 * (time.perf_counter() - t0))
        val_loss = dense.item(SoftmaxCrossEntropy().forward(Z, y, data.val_mask))
        accs = [accuracy(Z, y, m) for m in (data.train_mask, data.val_mask, data.test_mask)]
        if log:
            log(f"epoch {epoch:4d}  loss {dense.item(loss):.4f}  train {accs[0]:.4f}  val {accs[1]:.4f}  "
                f"val_loss {val_loss:.4f}  {best.epoch_ms[-1]:.1f} ms")
        if tracker.update(epoch, model, val_loss, accs):
            break
    model.load_state_dict(best.state)
    return best


def build_for(model_name, data, seed, hparams, device="cpu"):
    """A model and its optimiser for ``data`` from ``hparams`` (the model's DEFAULTS overridden), on ``device``."""
    hp = dict(DEFAULTS.get(model_name, {}))
    hp.update({k: v for k, v in hparams.items() if v is not None})
    not_model = ("lr", "weight_decay", "epochs", "patience") + TRAINING_ONLY
    model_cfg = {k: v for k, v in hp.items() if k not in not_model}
    model = build_model(model_name, in_channels=data.num_features, out_channels=data.num_classes, seed=seed,
                        **model_cfg)
    if device != "cpu":
        model.to(device)   # before the optimiser, which holds the parameter arrays
    groups = (model.param_groups(hp["weight_decay"]) if hasattr(model, "param_groups")
              else [{"params": model.parameters(), "weight_decay": hp["weight_decay"]}])
    return model, Adam(groups, lr=hp["lr"]), hp


def run(model_name, data, runs=1, seed=0, log=None, device="cpu", **hparams):
    """Train ``runs`` models with seeds seed, seed+1, ...; returns a summary dict and the last model.

    ``device="cuda"`` trains on the GPU (features moved once here, the rest once per run by ``fit``).
    """
    if dense.check_device(device) != "cpu" and model_name not in DEVICE_MODELS:
        raise ValueError(f"model {model_name!r} cannot train on the GPU yet (its layers still compute with NumPy "
                         f"between kernel calls); device={device!r} supports: {', '.join(DEVICE_MODELS)}")
    x = dense.to(prepare_features(data), device)
    results, model = [], None
    for r in range(runs):
        model, opt, hp = build_for(model_name, data, seed + r, hparams, device=device)
        if hp.get("batch_size"):  # mini-batch training on sampled blocks (GraphSAGE); full batch otherwise
            if device != "cpu":
                raise ValueError(f"mini-batch training (batch_size) runs on the CPU, got device={device!r}")
            from .minibatch import fit_minibatch
            res = fit_minibatch(model, data, opt, hp["epochs"], hp["patience"], hp["batch_size"],
                                hp.get("fanout") or (25, 10), x=x, seed=seed + r, log=log)
        else:
            res = fit(model, data, opt, hp["epochs"], hp["patience"], x=x, log=log, device=device)
        results.append(res)
        if log:
            log(f"run {r + 1}/{runs} seed {seed + r}: best epoch {res.best_epoch}  val {res.val_acc:.4f}  "
                f"test {res.test_acc:.4f}")
    test = np.array([r.test_acc for r in results])
    epoch_ms = np.concatenate([r.epoch_ms[1:] or r.epoch_ms for r in results])  # epoch 1 includes compilation
    summary = dict(model=model_name, dataset=data.name, runs=runs, seed=seed, device=device,
                   test_acc_mean=float(test.mean()), test_acc_std=float(test.std()),
                   test_acc=[float(t) for t in test], val_acc=[r.val_acc for r in results],
                   best_epoch=[r.best_epoch for r in results], epoch_ms_median=float(np.median(epoch_ms)),
                   hparams={k: v for k, v in hp.items()})
    return summary, model
