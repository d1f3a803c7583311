"""The training loop's pieces shared by every task: best-epoch tracking, one step, evaluation, logging.

A task (``gnn_scratch.tasks``) writes its own epoch loop from these; the full-batch and the
mini-batch node classifiers (``tasks.node``, ``minibatch``) both do. This module sits below the
tasks and below ``minibatch`` and imports neither, so no import circle goes through it.

It is a top-level module rather than ``train/loop.py``: importing ``gnn_scratch.train.loop`` would
first run ``gnn_scratch/train/__init__.py``, and that façade must import the tasks (for
``train.run``), which import this module -- a circle at import time whichever side comes first.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from . import device
from .nn import Dropout, Sequential, SoftmaxCrossEntropy, accuracy
from .threads import blas_threads


@dataclass
class Result:
    """What one training run measured.

    best_epoch: the selected epoch (1-based; -1 before any); val_acc, test_acc, train_acc: its
    accuracies; epochs_run: epochs actually trained (early stopping may end before the budget);
    epoch_ms: wall time of every epoch in milliseconds; state: the selected epoch's parameters
    (``Module.state_dict``).
    """
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


def model_dtype(model):
    """The dtype ``model`` computes in (its ``config["dtype"]``, as saved with it); float32 when it does not say."""
    return getattr(model, "config", {}).get("dtype", "float32")


def prepare_features(data, normalize="auto", dtype=np.float32):
    """Features as the model consumes them: row-normalised for bag-of-words data (Planetoid), in ``dtype``.

    Returns (N, F) dense ``dtype`` or scipy CSR. Raises ValueError for non-finite features (and the
    graph's own errors for a wrong number of rows).
    """
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


def evaluate(Z, y, data):
    """Score logits Z (N, C) against labels y (N,) on data's three node masks: (val_loss, [train, val, test] acc).

    The validation loss is a Python float (one copy back when Z lives on the GPU); the accuracies
    are Python floats (nan for an empty mask). Raises the loss's ValueError for bad labels or masks.
    """
    val_loss = device.item(SoftmaxCrossEntropy().forward(Z, y, data.val_mask))
    accs = [accuracy(Z, y, m) for m in (data.train_mask, data.val_mask, data.test_mask)]
    return val_loss, accs


def epoch_line(epoch, loss, accs, val_loss, ms):
    """The log line of one epoch: training loss, train / val accuracy, validation loss, wall time."""
    return (f"epoch {epoch:4d}  loss {loss:.4f}  train {accs[0]:.4f}  val {accs[1]:.4f}  "
            f"val_loss {val_loss:.4f}  {ms:.1f} ms")
