"""Gradient-check cases of the heterogeneous models' own pieces (derivations/hetero_models.md): ``HeteroInput``
and the RGCN and HAN models through the real loss, on a small random heterogeneous dataset, in float64.

The dataset has three node types (two with features, one without), relations in both directions, a
target type with isolated nodes (no edge at all), a repeated edge and a same-type relation with a
self-loop; its metapath graphs are built by ``HeteroGraph.metapath_graph``.
"""
from __future__ import annotations

import numpy as np

from ..data.hetero import HeteroDataset
from ..graph.hetero import HeteroGraph
from ..nn import SoftmaxCrossEntropy
from ..nn.hetero_input import HeteroInput
from . import compare_rows, roundoff_floor
from .registry import case

F64 = np.float64


def random_hetero_dataset(seed=0, num_classes=3):
    """A ``HeteroDataset`` small enough for central differences (target 'p': 9 nodes, the last two isolated)."""
    rng = np.random.default_rng(seed)
    n = {"p": 9, "a": 6, "s": 3}
    pa = np.stack([rng.integers(0, 7, 12), rng.integers(0, 6, 12)])
    pa = np.concatenate([pa, [[0, 0], [1, 1]]], axis=1)              # edge 0 -> 1 twice: a repeated edge
    ps = np.stack([rng.integers(0, 7, 7), rng.integers(0, 3, 7)])
    pp = np.concatenate([np.stack([rng.integers(0, 7, 5), rng.integers(0, 7, 5)]), [[2], [2]]], axis=1)  # self-loop
    g = HeteroGraph(n, {("p", "writes", "a"): pa, ("p", "about", "s"): ps, ("p", "cites", "p"): pp},
                    x_dict={"p": rng.standard_normal((9, 4)), "a": rng.standard_normal((6, 3))}).with_inverse()
    y = rng.integers(0, num_classes, 9)
    meta = {"PAP": [("p", "writes", "a"), ("a", "rev_writes", "p")],
            "PSP": [("p", "about", "s"), ("s", "rev_about", "p")]}
    return HeteroDataset(name="random", graph=g, target="p", y=y.astype(np.int64), num_classes=num_classes,
                         train_idx=np.arange(0, 6), val_idx=np.arange(6, 8), test_idx=np.arange(8, 9),
                         metapaths=meta, split=2)


def _rows_through_loss(name, model, x, graph, y, mask, check):
    """Rows for every parameter of ``model`` (and x[check], a dense feature matrix) through the masked
    cross-entropy of its target logits."""
    loss_fn = SoftmaxCrossEntropy()

    def loss():
        return float(loss_fn.forward(model.forward(x, graph), y, mask))
    floor = roundoff_floor(loss())
    model.zero_grad()
    model.forward(x, graph)
    loss_fn.forward(model.forward(x, graph), y, mask)
    dx = model.backward(loss_fn.backward())
    if check is None or dx is None:
        return compare_rows(name, loss, model, None, None, floor, check_input=False)
    return compare_rows(name, loss, model, dx[check], x[check], floor)


@case("HeteroInput")
def hetero_input():
    rng = np.random.default_rng(3)
    layer = HeteroInput({"p": 4, "s": None, "a": 3}, {"p": 5, "s": 2, "a": 4}, 3, seed=1, dtype=F64)
    x = {"p": rng.standard_normal((5, 4)), "a": rng.standard_normal((4, 3))}
    G = rng.standard_normal((11, 3))
    loss = lambda: float(np.sum(G * layer.forward(x)))             # noqa: E731
    floor = roundoff_floor(np.sum(np.abs(G * layer.forward(x))))
    layer.zero_grad()
    layer.forward(x)
    dx = layer.backward(G)
    rows = compare_rows("HeteroInput", loss, layer, dx["p"], x["p"], floor)
    rows += compare_rows("HeteroInput (type a)", loss, layer, dx["a"], x["a"], floor)[-1:]
    return rows


@case("RGCN model")
def rgcn_model():
    from ..models.hetero import RGCN
    data = random_hetero_dataset(0)
    mask = np.zeros(9, bool)
    mask[data.train_idx] = True
    rows = []
    for kw in (dict(), dict(num_bases=2), dict(num_blocks=2)):
        model = RGCN(out_channels=3, hidden_channels=4, dropout=0.0, seed=5, dtype="float64",
                     **RGCN.data_arguments(data), **kw)
        x, graph = RGCN.inputs(data, dtype="float64")
        label = ", ".join(f"{k}={v}" for k, v in kw.items()) or "full W_r"
        rows += _rows_through_loss(f"RGCN model [{label}]", model, x, graph, data.y, mask, None)
    return rows


@case("HAN model")
def han_model():
    from ..models.hetero import HAN
    data = random_hetero_dataset(1)
    mask = np.zeros(9, bool)
    mask[data.train_idx] = True
    model = HAN(out_channels=3, hidden_channels=4, heads=2, dropout=0.0, seed=5, dtype="float64",
                **HAN.data_arguments(data))
    x, graph = HAN.inputs(data, dtype="float64")
    return _rows_through_loss("HAN model", model, x, graph, data.y, mask, None)
