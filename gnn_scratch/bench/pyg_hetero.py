"""PyG twins of the hetero models (``models.hetero``): the same architecture and training protocol, in torch.

``scripts/hetero_acm_dblp.py`` trains both on HeCo's ACM and DBLP splits and ``bench.hetero`` times a
training step of each; neither is a dependency of the library (torch and torch_geometric come with
the ``bench`` extra). The twins:

* ``HANTwin``: ``torch_geometric.nn.HANConv`` on the target type's metapath graphs, then ``Linear``
  (PyG's examples/hetero/han_imdb.py, at the HAN paper's sizes, as ``models.hetero.HAN``);
* ``RGCNTwin``: a ``Linear`` per featured node type and a Glorot table per featureless one, then two
  ``torch_geometric.nn.RGCNConv`` (ReLU and dropout between) over the homogeneous view, the target
  type's rows read out (as ``models.hetero.RGCN``).

``train`` is ``tasks.hetero``'s supervised loop in torch: full-batch Adam with coupled L2 weight
decay on every parameter, the epoch of best validation accuracy (ties: lower validation loss),
early stopping after ``patience`` epochs with neither improving; Macro-F1 and Micro-F1 on the test
nodes from the kept epoch. Features go in as dense float32 tensors (torch's ``Linear`` takes no
scipy matrix); the numbers are the same as for the sparse product.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from ..embed.evaluate import f1_scores, labels_to_matrix


def _torch():
    import torch
    return torch


def _dense(x, torch, dtype):
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float64)).to(dtype)


def _edge_index(graph, torch):
    return torch.as_tensor(np.asarray(graph.edge_index(), dtype=np.int64))


def han_twin(data, hidden_channels=64, heads=8, dropout=0.6, seed=0, dtype="float32"):
    """(module, forward inputs) of the PyG HAN twin for a ``HeteroDataset``."""
    torch = _torch()
    from torch_geometric.nn import HANConv
    t = data.target
    graphs = data.metapath_graphs()
    edge_types = [(t, name, t) for name in data.metapaths]
    tdtype = getattr(torch, dtype)

    class HANTwin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = HANConv(data.graph.x_dict[t].shape[1], hidden_channels, ([t], edge_types), heads=heads,
                                dropout=dropout)
            self.lin = torch.nn.Linear(hidden_channels, data.num_classes)

        def forward(self, x_dict, edge_index_dict):
            return self.lin(self.conv(x_dict, edge_index_dict)[t])

    torch.manual_seed(seed)
    model = HANTwin().to(tdtype)
    inputs = ({t: _dense(data.graph.x_dict[t], torch, tdtype)},
              {e: _edge_index(graphs[e[1]], torch) for e in edge_types})
    return model, inputs


def rgcn_twin(data, hidden_channels=64, num_bases=None, num_blocks=None, dropout=0.5, seed=0, dtype="float32"):
    """(module, forward inputs) of the PyG RGCN twin for a ``HeteroDataset``."""
    torch = _torch()
    from torch_geometric.nn import RGCNConv
    g = data.graph
    h = g.to_homogeneous()
    R = len(g.edge_types)
    tdtype = getattr(torch, dtype)
    lo = h.node_offset[data.target]
    hi = lo + g.num_nodes[data.target]

    class RGCNTwin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lins = torch.nn.ModuleDict()
            self.embs = torch.nn.ParameterDict()
            for nt in g.node_types:
                if g.x_dict.get(nt) is None:
                    w = torch.empty(g.num_nodes[nt], hidden_channels)
                    torch.nn.init.xavier_uniform_(w)
                    self.embs[nt] = torch.nn.Parameter(w)
                else:
                    self.lins[nt] = torch.nn.Linear(g.x_dict[nt].shape[1], hidden_channels)
            self.conv1 = RGCNConv(hidden_channels, hidden_channels, R, num_bases=num_bases, num_blocks=num_blocks)
            # blocks split the hidden width only, as models.hetero.RGCN: the class count need not divide
            self.conv2 = RGCNConv(hidden_channels, data.num_classes, R, num_bases=num_bases)
            self.dropout = dropout

        def forward(self, x_dict, edge_index, edge_type):
            H = torch.cat([self.embs[nt] if nt in self.embs else self.lins[nt](x_dict[nt]) for nt in g.node_types])
            H = torch.nn.functional.dropout(torch.relu(self.conv1(H, edge_index, edge_type)), self.dropout,
                                            self.training)
            return self.conv2(H, edge_index, edge_type)[lo:hi]

    torch.manual_seed(seed)
    model = RGCNTwin().to(tdtype)
    x = {nt: _dense(v, torch, tdtype) for nt, v in g.x_dict.items() if v is not None}
    inputs = (x, _edge_index(h.graph, torch), torch.as_tensor(_edge_type_in_graph_order(h), dtype=torch.int64))
    return model, inputs


def _edge_type_in_graph_order(h):
    """The edge types in the order of ``h.graph.edge_index``'s columns (the CSR order)."""
    return np.asarray(h.edge_type)[np.asarray(h.graph.edge_id)]


TWINS = {"han": han_twin, "rgcn": rgcn_twin}


def train(model_name, data, seed=0, lr=None, weight_decay=None, epochs=None, patience=None, log=None, **model_kw):
    """Train the PyG twin of ``model_name`` on ``data`` as ``tasks.hetero`` trains ours: a dict of its scores.

    Keys: macro_f1, micro_f1 (test, at the kept epoch), val_micro_f1, best_epoch, epochs_run, seconds,
    epoch_ms (median). Training hyper-parameters left None take the model class's ``train_defaults``.
    """
    torch = _torch()
    from ..models import get_model_class
    cls = get_model_class(model_name)
    hp = {**cls.train_defaults, **{k: v for k, v in dict(lr=lr, weight_decay=weight_decay, epochs=epochs,
                                                          patience=patience).items() if v is not None}}
    kw = {**cls.model_defaults, **model_kw}
    torch.set_num_threads(1)
    model, inputs = TWINS[model_name](data, seed=seed, **kw)
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    y = torch.as_tensor(np.asarray(data.y, dtype=np.int64))
    idx = {s: torch.as_tensor(np.asarray(getattr(data, f"{s}_idx"), dtype=np.int64)) for s in ("train", "val", "test")}
    best_key, best_state, best_epoch = (-1.0, -np.inf), None, -1
    best_loss, best_acc, waited, times = np.inf, -1.0, 0, []
    t_start = time.perf_counter()
    epoch = 0
    for epoch in range(1, hp["epochs"] + 1):
        t0 = time.perf_counter()
        model.train()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(*inputs)[idx["train"]], y[idx["train"]])
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            Z = model(*inputs)
        times.append(1e3 * (time.perf_counter() - t0))
        val_loss = float(torch.nn.functional.cross_entropy(Z[idx["val"]], y[idx["val"]]))
        val_acc = float((Z[idx["val"]].argmax(1) == y[idx["val"]]).double().mean())
        if (val_acc, -val_loss) > best_key:
            best_key, best_epoch = (val_acc, -val_loss), epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if val_loss < best_loss or val_acc > best_acc:
            best_loss, best_acc, waited = min(best_loss, val_loss), max(best_acc, val_acc), 0
        else:
            waited += 1
            if hp["patience"] is not None and waited >= hp["patience"]:
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        pred = model(*inputs).argmax(1).numpy()
    te = idx["test"].numpy()
    C = data.num_classes
    macro, micro = f1_scores(labels_to_matrix(np.asarray(data.y)[te], C), labels_to_matrix(pred[te], C), empty="zero")
    return dict(macro_f1=macro, micro_f1=micro, val_micro_f1=best_key[0], best_epoch=best_epoch, epochs_run=epoch,
                seconds=time.perf_counter() - t_start, epoch_ms=float(np.median(times[1:] or times)))
