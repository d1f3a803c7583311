"""GraphSAGE (Hamilton, Ying & Leskovec, 2017) for node classification: full batch or sampled blocks."""
import numpy as np

from ..graph import Graph
from ..nn import Dropout, ReLU
from ..nn.module import Module
from ..nn.checks import positive_int
from ..nn.conv.sage_conv import AGGREGATORS, SAGEConv
from .registry import register
from .common import child_seeds


@register
class SAGE(Module):
    """GraphSAGE (Hamilton et al., 2017): full batch, or mini-batches of sampled blocks (--batch-size).

    [dropout -> SAGEConv -> ReLU] x (L-1) -> dropout -> SAGEConv; returns logits (N_dst of the last graph, C).

    ``forward(x, graph)`` takes one square ``Graph`` used by every layer (full batch), or a list of
    L bipartite blocks (``sampling.sample_blocks``), blocks[l] feeding layer l; then x holds the
    rows of ``MiniBatch.input_nodes``. Defaults: 2 layers, hidden 64, dropout 0.5, PyG's SAGEConv
    (root_weight, no normalisation). ``agg_channels`` (width of the max aggregator's pooling
    projection or of the LSTM state) defaults to ``hidden_channels``. ``normalize`` L2-normalises the
    last layer's output rows (embeddings for the unsupervised objective; the paper's choice).
    """

    name = "sage"
    devices = ("cpu", "cuda")             # full batch, aggr "mean" / "sum" (``SAGEConv.check_device_support``)
    model_defaults = dict(hidden_channels=64, dropout=0.5, aggr="mean")             # constructor arguments
    train_defaults = dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=None)   # Adam; no early stopping

    def __init__(self, in_channels, out_channels, hidden_channels=64, num_layers=2, dropout=0.5, aggr="mean",
                 agg_channels=None, normalize=False, seed=0, dtype="float32"):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        if aggr not in AGGREGATORS:
            raise ValueError(f"aggr must be one of {AGGREGATORS}, got {aggr!r}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
        dtype = np.dtype(dtype)
        wide = aggr in ("max", "lstm")
        F_agg = (hidden_channels if agg_channels is None else agg_channels) if wide else None
        s = child_seeds(seed, 2 * num_layers)
        widths = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self._layers = []
        for layer in range(num_layers):
            drop = Dropout(dropout, seed=s[2 * layer])
            last = layer == num_layers - 1
            conv = SAGEConv(widths[layer], widths[layer + 1], aggr=aggr, agg_channels=F_agg,
                            normalize=bool(normalize) and last, seed=s[2 * layer + 1], dtype=dtype)
            act = None if last else ReLU()
            setattr(self, f"drop{layer + 1}", drop)
            setattr(self, f"conv{layer + 1}", conv)
            if act is not None:
                setattr(self, f"act{layer + 1}", act)
            self._layers.append((drop, conv, act))
        self.num_layers = int(num_layers)
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels,
                           hidden_channels=hidden_channels, num_layers=num_layers, dropout=dropout, aggr=aggr,
                           agg_channels=agg_channels, normalize=normalize, seed=seed, dtype=dtype.name)

    def input_layer(self):
        """The layer that reads the input features (``train.input_is_data`` skips its dL/dx)."""
        return self.conv1

    def _graphs(self, graph):
        if isinstance(graph, Graph):
            return [graph] * self.num_layers
        graphs = list(graph) if graph is not None else []
        if len(graphs) != self.num_layers or not all(isinstance(g, Graph) for g in graphs):
            raise ValueError(f"graph must be one Graph or a list of {self.num_layers} blocks (one per layer), "
                             f"got {type(graph).__name__} of length {len(graphs)}")
        return graphs

    def layer_forward(self, layer, h, graph):
        """Layer ``layer`` (0-based) alone: dropout -> conv -> ReLU (not after the last). (N_dst, F_out)."""
        drop, conv, act = self._layers[layer]
        # the ReLU runs inside the conv (``SAGEConv.forward(relu=True)``, the same bits); the ReLU module is skipped
        return conv.forward(drop.forward(h, graph), graph, relu=act is not None)

    def forward(self, x, graph=None):
        h = x
        for layer, g in enumerate(self._graphs(graph)):
            h = self.layer_forward(layer, h, g)
        return h

    def backward(self, grad_out):
        g = grad_out
        for drop, conv, _ in reversed(self._layers):
            g = conv.backward(g)        # through its fused ReLU too
            if g is None:  # below a sparse input there is nothing left to differentiate
                return None
            g = drop.backward(g)
        return g
