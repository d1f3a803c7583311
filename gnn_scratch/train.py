"""Full-batch node classification: training with early stopping, and repeated runs over seeds."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .models import build_model
from .nn import SoftmaxCrossEntropy, accuracy
from .optim import Adam

# The papers' hyper-parameters, per model. ``patience`` counts epochs without a better validation
# loss or accuracy (the GAT paper's rule); the reported test accuracy is the one at the epoch of
# best validation accuracy (ties: lower validation loss).
DEFAULTS = {
    "gcn": dict(hidden_channels=16, dropout=0.5, lr=0.01, weight_decay=5e-4, epochs=200, patience=100),
}


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


def fit(model, data, optimizer, epochs=200, patience=None, x=None, log=None):
    """Train ``model`` full batch on ``data.train_mask``; keep the parameters of the best validation epoch.

    Each epoch: forward in training mode, loss on the training nodes, backward, optimiser step; then
    a forward in evaluation mode for the accuracies. Stops after ``patience`` epochs in which neither
    the validation loss nor the validation accuracy improved. Returns a ``Result``; the model is left
    holding the best epoch's parameters.
    """
    x = prepare_features(data) if x is None else x
    graph, y = data.graph, data.y
    loss_fn = SoftmaxCrossEntropy()
    best = Result(best_epoch=-1, val_acc=-1.0, test_acc=float("nan"), train_acc=float("nan"), epochs_run=0)
    best_val_loss, best_val_acc, best_key, waited = np.inf, -1.0, (-1.0, -np.inf), 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        optimizer.zero_grad()
        loss = loss_fn.forward(model.forward(x, graph), y, data.train_mask)
        model.backward(loss_fn.backward())
        optimizer.step()
        model.eval()
        Z = model.forward(x, graph)
        best.epoch_ms.append(1e3 * (time.perf_counter() - t0))
        val_loss = SoftmaxCrossEntropy().forward(Z, y, data.val_mask)
        accs = [accuracy(Z, y, m) for m in (data.train_mask, data.val_mask, data.test_mask)]
        best.epochs_run = epoch
        if log:
            log(f"epoch {epoch:4d}  loss {loss:.4f}  train {accs[0]:.4f}  val {accs[1]:.4f}  "
                f"val_loss {val_loss:.4f}  {best.epoch_ms[-1]:.1f} ms")
        key = (accs[1], -val_loss)
        if key > best_key:
            best_key = key
            best.best_epoch, best.train_acc, best.val_acc, best.test_acc = epoch, accs[0], accs[1], accs[2]
            best.state = model.state_dict()
        if val_loss < best_val_loss or accs[1] > best_val_acc:
            best_val_loss, best_val_acc = min(best_val_loss, val_loss), max(best_val_acc, accs[1])
            waited = 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    model.load_state_dict(best.state)
    return best


def build_for(model_name, data, seed, hparams):
    """A model and its optimiser for ``data`` from ``hparams`` (the model's DEFAULTS overridden)."""
    hp = dict(DEFAULTS.get(model_name, {}))
    hp.update({k: v for k, v in hparams.items() if v is not None})
    model_cfg = {k: v for k, v in hp.items() if k not in ("lr", "weight_decay", "epochs", "patience")}
    model = build_model(model_name, in_channels=data.num_features, out_channels=data.num_classes, seed=seed,
                        **model_cfg)
    groups = (model.param_groups(hp["weight_decay"]) if hasattr(model, "param_groups")
              else [{"params": model.parameters(), "weight_decay": hp["weight_decay"]}])
    return model, Adam(groups, lr=hp["lr"]), hp


def run(model_name, data, runs=1, seed=0, log=None, **hparams):
    """Train ``runs`` models with seeds seed, seed+1, ...; returns a summary dict and the last model."""
    x = prepare_features(data)
    results, model = [], None
    for r in range(runs):
        model, opt, hp = build_for(model_name, data, seed + r, hparams)
        res = fit(model, data, opt, hp["epochs"], hp["patience"], x=x, log=log)
        results.append(res)
        if log:
            log(f"run {r + 1}/{runs} seed {seed + r}: best epoch {res.best_epoch}  val {res.val_acc:.4f}  "
                f"test {res.test_acc:.4f}")
    test = np.array([r.test_acc for r in results])
    epoch_ms = np.concatenate([r.epoch_ms[1:] or r.epoch_ms for r in results])  # epoch 1 includes compilation
    summary = dict(model=model_name, dataset=data.name, runs=runs, seed=seed,
                   test_acc_mean=float(test.mean()), test_acc_std=float(test.std()),
                   test_acc=[float(t) for t in test], val_acc=[r.val_acc for r in results],
                   best_epoch=[r.best_epoch for r in results], epoch_ms_median=float(np.median(epoch_ms)),
                   hparams={k: v for k, v in hp.items()})
    return summary, model
