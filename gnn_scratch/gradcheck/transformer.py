"""Gradient-check cases of the graph transformers: TransformerConv (edge_attr included), LayerNorm,
MultiheadAttention, GTLayer and GPSLayer -- every parameter and the input, float64, central differences."""
import numpy as np

from ..graph import GraphBatch
from ..nn import GCNConv, GINConv, Linear, ReLU, Sequential
from ..nn.attention import MultiheadAttention
from ..nn.conv.transformer_conv import TransformerConv
from ..nn.graph_transformer import GPSLayer, GTLayer
from ..nn.layer_norm import LayerNorm
from ..nn.module import Module
from . import (DEFAULT_EPS, DEFAULT_TOL, Row, check_module, numerical_gradient, random_test_graph, relative_error,
               roundoff_floor)
from .registry import case

F64 = np.float64


def _x(seed, n, f):
    return np.random.default_rng(seed).standard_normal((n, f))


def _randomise_biases(module, seed):
    """Non-zero biases and shifts (zeros would hide a missing term), gains near 1."""
    rng = np.random.default_rng(seed)
    for name, p, _ in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("b", "beta", "in_proj_bias", "out_proj_bias"):
            p[...] = 0.5 * rng.standard_normal(p.shape)
        elif leaf == "gamma":
            p[...] = 1.0 + 0.3 * rng.standard_normal(p.shape)


class _WithEdgeAttr(Module):
    """TransformerConv with its edge_attr held fixed, so ``check_module`` sees forward(x, graph)."""

    def __init__(self, conv, edge_attr):
        super().__init__()
        self.conv, self.edge_attr = conv, edge_attr

    def forward(self, x, graph=None):
        return self.conv.forward(x, graph, self.edge_attr)

    def backward(self, grad_out):
        return self.conv.backward(grad_out)


def _edge_attr_row(label, wrapped, x, graph, seed):
    """The row of dL/d edge_attr (``conv.grad_edge_attr``) against central differences of L = sum(G * out)."""
    G = np.random.default_rng(seed).standard_normal(wrapped.forward(x, graph).shape)
    out = lambda: wrapped.forward(x, graph)                                          # noqa: E731
    state = wrapped.conv.rng.bit_generator.state
    replay = lambda: (setattr(wrapped.conv.rng.bit_generator, "state", state), float(np.sum(G * out())))[1]  # noqa: E731
    floor = roundoff_floor(np.sum(np.abs(G * out())), DEFAULT_EPS)
    wrapped.conv.rng.bit_generator.state = state
    wrapped.forward(x, graph)
    wrapped.backward(G)
    analytic = wrapped.conv.grad_edge_attr.copy()
    err = relative_error(analytic, numerical_gradient(replay, wrapped.edge_attr), floor, DEFAULT_TOL)
    return [Row(label, "edge_attr", wrapped.edge_attr.shape, err, err < DEFAULT_TOL)]


@case("TransformerConv")
def transformer_conv():
    """Every option of PyG's TransformerConv on the fixture graph (and a bipartite block), with and without edge_attr."""
    rows = []
    configs = [  # heads, concat, beta, root_weight, edge_dim, dropout, bipartite
        (1, True, False, True, None, 0.0, False),
        (3, True, True, True, None, 0.0, False),
        (3, False, True, True, 2, 0.0, False),
        (2, True, False, False, 2, 0.0, False),
        (2, False, False, True, None, 0.3, False),
        (2, True, True, True, 3, 0.3, False),
        (2, True, True, True, 2, 0.0, True),
    ]
    for k, (H, concat, beta, root, edge_dim, p, bip) in enumerate(configs):
        g = random_test_graph(40 + k, num_nodes=7, num_src=10 if bip else None)
        conv = TransformerConv(5, 3, heads=H, concat=concat, beta=beta, root_weight=root, edge_dim=edge_dim,
                               dropout=p, seed=50 + k, dtype=F64).train()
        _randomise_biases(conv, k)
        label = (f"TransformerConv heads={H} concat={concat} beta={beta} root_weight={root} edge_dim={edge_dim} "
                 f"dropout={p}{' bipartite' if bip else ''}")
        x = _x(60 + k, g.num_src, 5)
        if edge_dim is None:
            rows += check_module(label, conv, x, g, seed=k)
        else:
            wrapped = _WithEdgeAttr(conv, _x(70 + k, g.num_edges, edge_dim))
            rows += check_module(label, wrapped, x, g, seed=k)
            rows += _edge_attr_row(label, wrapped, x, g, seed=k)
    return rows


@case("LayerNorm")
def layer_norm():
    rows = []
    for k, affine in enumerate((True, False)):
        ln = LayerNorm(6, elementwise_affine=affine, dtype=F64)
        _randomise_biases(ln, k)
        x = _x(80 + k, 9, 6) * 3.0 + 1.0
        rows += check_module(f"LayerNorm elementwise_affine={affine}", ln, x, None, seed=k)
    return rows


def _batch(seed):
    """Three fixture graphs (isolated node, self-loop, repeated edge each) of 6, 3 and 8 nodes as one GraphBatch."""
    return GraphBatch.from_graphs([random_test_graph(seed + i, num_nodes=n) for i, n in enumerate((6, 3, 8))])


@case("MultiheadAttention")
def multihead_attention():
    rows = []
    gb = _batch(90)
    for k, (H, bias, p) in enumerate([(2, True, 0.0), (1, False, 0.0), (2, True, 0.3)]):
        mha = MultiheadAttention(6, H, dropout=p, bias=bias, seed=100 + k, dtype=F64).train()
        _randomise_biases(mha, k)
        rows += check_module(f"MultiheadAttention heads={H} bias={bias} dropout={p} (3 graphs)", mha,
                             _x(110 + k, gb.num_nodes, 6), gb, seed=k)
    return rows


@case("GTLayer")
def gt_layer():
    rows = []
    gb = _batch(120)
    for k, (norm, residual, p) in enumerate([("batch_norm", True, 0.0), ("layer_norm", True, 0.2),
                                             (None, False, 0.0)]):
        layer = GTLayer(6, heads=2, dropout=p, norm=norm, residual=residual, seed=130 + k, dtype=F64).train()
        _randomise_biases(layer, k)
        rows += check_module(f"GTLayer norm={norm} residual={residual} dropout={p}", layer,
                             _x(140 + k, gb.num_nodes, 6), gb, seed=k)
    return rows


@case("GPSLayer")
def gps_layer():
    rows = []
    gb = _batch(150)
    C = 4
    for k, (local, norm, p, attn_p) in enumerate([("gin", "batch_norm", 0.0, 0.0), ("gcn", "layer_norm", 0.2, 0.2),
                                                  (None, None, 0.0, 0.0)]):
        if local == "gin":
            conv = GINConv(Sequential(lin1=Linear(C, C, seed=1, dtype=F64), act=ReLU(),
                                      lin2=Linear(C, C, seed=2, dtype=F64)))
        elif local == "gcn":
            conv = GCNConv(C, C, seed=3, dtype=F64)
        else:
            conv = None
        layer = GPSLayer(C, conv, heads=2, dropout=p, attn_dropout=attn_p, norm=norm, seed=160 + k, dtype=F64).train()
        _randomise_biases(layer, k)
        rows += check_module(f"GPSLayer conv={local} norm={norm} dropout={p} attn_dropout={attn_p}", layer,
                             _x(170 + k, gb.num_nodes, C), gb, seed=k)
    return rows
