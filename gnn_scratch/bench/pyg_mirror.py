"""The PyG peer of a gnn_scratch model: the same layers, sizes, dropouts and weights, as torch modules.

``bench.models.describe(model)`` lists the model's chain of layers (``Module.children()`` in order:
dropout, convolution, activation, ...); ``build_chain`` builds the PyG / torch layer of each and
``load_weights`` copies the weights, so that in evaluation mode both compute the same function --
``check_mirror`` verifies it on the benchmark graph before any timing. ``adjacency_forms`` gives PyG's input forms for one graph:
``edge_index`` (a (2, E) tensor), ``EdgeIndex`` (PyG's sorted, CSR-caching index) and ``csr``
(a ``torch.sparse_csr_tensor`` adjacency, rows = targets, PyG's ``adj_t`` convention).
``torch_sparse.SparseTensor`` is used as well when torch_sparse is installed.

torch is imported by this module: import it only when the peer is wanted. It imports nothing of
gnn_scratch's layers (nor Numba), so a PyG memory worker carries no gnn_scratch weight.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric import nn as pyg_nn



def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


class Chain(torch.nn.Module):
    """Layers applied in order; graph convolutions also get the adjacency."""

    def __init__(self, layers):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x, adj):
        for layer in self.layers:
            if isinstance(layer, pyg_nn.MessagePassing):
                x = layer(x, adj)
            else:
                x = layer(x)
        return x


class MirrorError(ValueError):
    """The model holds a layer (or a setting) with no PyG counterpart here."""


def _build(d):
    """The torch / PyG layer of one layer description (``bench.models.describe``)."""
    kind, a = d["type"], d.get("args", {})
    if kind == "Dropout":
        return torch.nn.Dropout(a["p"])
    if kind == "ReLU":
        return torch.nn.ReLU()
    if kind == "ELU":
        return torch.nn.ELU(a["alpha"])
    if kind == "LeakyReLU":
        return torch.nn.LeakyReLU(a["negative_slope"])
    if kind == "Linear":
        return torch.nn.Linear(a["in_channels"], a["out_channels"], bias=a["bias"])
    if kind == "GCNConv":
        return pyg_nn.GCNConv(a["in_channels"], a["out_channels"], improved=a["improved"], cached=True,
                              add_self_loops=a["add_self_loops"], normalize=a["normalize"], bias=a["bias"])
    if kind == "GATConv":
        return pyg_nn.GATConv(a["in_channels"], a["out_channels"], heads=a["heads"], concat=a["concat"],
                              negative_slope=a["negative_slope"], dropout=a["dropout"],
                              add_self_loops=a["add_self_loops"], bias=a["bias"])
    if kind == "SAGEConv":
        return pyg_nn.SAGEConv(a["in_channels"], a["out_channels"], aggr=a["aggr"], normalize=a["normalize"],
                               root_weight=a["root_weight"], project=a["project"], bias=a["bias"])
    raise MirrorError(f"no PyG mirror for {kind}")


def build_chain(desc):
    """A ``Chain`` from a list of layer descriptions (PyG's own initial weights)."""
    return Chain([_build(d) for d in desc])


def load_weights(net, desc, params):
    """Copy gnn_scratch parameters into the chain: ``params`` is one dict per layer (name -> array)."""
    with torch.no_grad():
        for m, d, P in zip(net.layers, desc, params):
            kind = d["type"]
            if kind in ("Linear", "GCNConv", "GATConv"):
                weight = m.weight if kind == "Linear" else m.lin.weight
                weight.copy_(_t(P["W"].T))
                if "b" in P:
                    m.bias.copy_(_t(P["b"]))
                if kind == "GATConv":
                    m.att_src.copy_(_t(P["att_src"][None]))
                    m.att_dst.copy_(_t(P["att_dst"][None]))
            elif kind == "SAGEConv":
                m.lin_l.weight.copy_(_t(P["W_neigh"].T))
                if "b" in P:
                    m.lin_l.bias.copy_(_t(P["b"]))
                if "W_self" in P:
                    m.lin_r.weight.copy_(_t(P["W_self"].T))
                if "W_proj" in P:
                    m.lin.weight.copy_(_t(P["W_proj"].T))
                    m.lin.bias.copy_(_t(P["b_proj"]))
    return net


def adjacency_forms(edge_index, num_nodes):
    """PyG's input forms for one graph: name -> adjacency object (built here, outside any timing)."""
    from torch_geometric.utils import to_torch_csr_tensor
    ei = torch.from_numpy(np.ascontiguousarray(edge_index, dtype=np.int64))
    forms = {"edge_index": ei}
    try:
        from torch_geometric import EdgeIndex
        forms["EdgeIndex"] = EdgeIndex(ei, sparse_size=(num_nodes, num_nodes)).sort_by("col")[0]
    except Exception:   # noqa: BLE001 -- older PyG
        pass
    forms["csr"] = to_torch_csr_tensor(ei.flip(0), size=(num_nodes, num_nodes))   # adj_t: rows = targets
    try:
        from torch_sparse import SparseTensor
        forms["SparseTensor"] = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(num_nodes, num_nodes))
    except Exception:   # noqa: BLE001 -- torch_sparse is optional
        pass
    return forms


def features(x_dense):
    return torch.from_numpy(np.ascontiguousarray(x_dense, dtype=np.float32))


def check_mirror(net, model, x_ours, graph, x_torch, adj, rtol=1e-3, atol=1e-4):
    """Max abs difference of the two models' eval-mode outputs; raises MirrorError when they differ."""
    model.eval()
    net.eval()
    ours = np.asarray(model.forward(x_ours, graph))
    with torch.no_grad():
        theirs = net(x_torch, adj).numpy()
    diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=rtol, atol=atol):
        raise MirrorError(f"the PyG mirror computes something else (max |diff| = {diff:.3g})")
    return diff


def train_step_fn(net, x, adj, y, mask, optimizer):
    """One PyG training step: forward (train mode), masked cross-entropy, backward, Adam step."""
    def step():
        net.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(net(x, adj)[mask], y[mask])
        loss.backward()
        optimizer.step()
    return step


def inference_fn(net, x, adj):
    def infer():
        net.eval()
        with torch.no_grad():   # not inference_mode: its tensors would poison GCNConv's cache and EdgeIndex
            net(x, adj)
    return infer
