"""Gradient-check cases of graph attention: GATConv (fused and composed paths) and the GAT model + loss."""
import numpy as np

from ..models.gat import GAT
from ..nn import SoftmaxCrossEntropy
from ..nn.conv.gat_conv import GATConv
from . import check_model_loss, check_module, random_test_graph
from .registry import case

F64 = np.float64


def _x(seed, n, f):
    return np.random.default_rng(seed).standard_normal((n, f))


def _conv_rows(fused):
    """GATConv 5 -> 4 on ``random_test_graph``: every parameter and the input, in four configurations."""
    path = "fused" if fused else "unfused"
    g = random_test_graph(10)
    rows = []
    for k, (heads, concat, dropout) in enumerate([(1, True, 0.0), (3, True, 0.0), (3, False, 0.0),
                                                  (3, True, 0.4)]):
        conv = GATConv(5, 4, heads=heads, concat=concat, dropout=dropout, seed=20 + k, dtype=F64, fused=fused)
        conv.params["b"][:] = np.random.default_rng(k).standard_normal(conv.params["b"].shape)  # a non-zero b
        label = f"GATConv[{path}] heads={heads} concat={concat} attn dropout={dropout}"
        rows += check_module(label, conv, _x(30 + k, g.num_nodes, 5), g, seed=k)
    return rows


@case("GATConv fused")
def gat_conv_fused():
    return _conv_rows(fused=True)


@case("GATConv unfused")
def gat_conv_unfused():
    return _conv_rows(fused=False)


@case("GAT + loss")
def gat_model():
    g = random_test_graph(11)
    rng = np.random.default_rng(12)
    y, mask = rng.integers(0, 3, g.num_nodes), rng.random(g.num_nodes) < 0.6
    mask[0] = True
    rows = []
    for fused in (True, False):
        model = GAT(5, 3, hidden_channels=2, heads=3, dropout=0.3, seed=13, dtype="float64", fused=fused).train()
        rows += check_model_loss(f"GAT + loss [{'fused' if fused else 'unfused'}, train mode]", model,
                                 SoftmaxCrossEntropy(), _x(14, g.num_nodes, 5), g, y, mask)
    return rows
