"""Deep node classifiers for the over-smoothing study: GCN, GAT and GraphSAGE stacks of 2..64 layers, and GCNII.

Every model keeps its per-layer node states after each forward in ``model.states`` (a list of
L arrays: the output of each of the L propagation layers, after its activation, normalisation and
residual; the last one of a plain stack is the logits), which ``gnn_scratch.analysis.oversmoothing``
measures. The arrays are the forward's own (no copy): read them before the next forward.

The remedies, each a constructor flag (and a command-line option):
    residual   h <- h + block(h) around every hidden -> hidden layer (layers 2 .. L-1), where
               block = dropout -> conv [-> PairNorm] -> activation. Backward: the sum's gradient
               goes to both branches (derivations/gcn2_conv.md, "Residual connections").
    pairnorm   PairNorm (Zhao & Akoglu 2020; ``nn.PairNorm``) after every hidden conv, before the
               activation (the placement of the PairNorm authors' code).
    dropedge   p: every training forward runs on a fresh random subgraph (each directed edge dropped
               with probability p, ``graph.transforms.dropout_edge``, one subgraph shared by all
               layers of that forward, Rong et al. 2020); evaluation uses the whole graph.
GCNII (``gcnii``) is its own architecture (Chen et al. 2020): Linear -> ReLU, L GCN2Conv layers
with initial residual and identity mapping, Linear.

Host-only (``devices = ("cpu",)``): the residual sums, PairNorm and GCN2Conv's blends are NumPy
arithmetic, which has no device op yet.
"""
import numpy as np

from ..graph.transforms import dropout_edge
from ..nn import ELU, GATConv, GCNConv, Dropout, Linear, ReLU, SAGEConv
from ..nn.conv.gcn2_conv import GCN2Conv
from ..nn.init import as_rng
from ..nn.module import Module
from ..nn.pair_norm import PairNorm
from ..nn.checks import positive_int
from .common import child_seeds
from .registry import register


def _num_layers(num_layers, least=2):
    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < least:
        raise ValueError(f"num_layers must be an int >= {least}, got {num_layers!r}")
    return int(num_layers)


def _dropedge(p):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropedge must be a probability in [0, 1), got {p!r}")
    return float(p)


class _EdgeDropping(Module):
    """The DropEdge part shared by the deep models: a fresh subgraph per training forward."""

    def _init_dropedge(self, dropedge, seed):
        self.dropedge = _dropedge(dropedge)
        self.rng = as_rng(seed)     # named ``rng``: gradient checks replay it like a dropout's

    def _training_graph(self, graph):
        if not self.training or self.dropedge == 0.0:
            return graph
        key = self.rng.integers(0, 1 << 64, dtype=np.uint64)
        return dropout_edge(graph, self.dropedge, key)[0]


class DeepStack(_EdgeDropping):
    """L message-passing layers: [dropout -> conv -> (PairNorm) -> act (+ h)] x (L-1) -> dropout -> conv.

    Subclasses give ``conv(layer, F_in, F_out, last, seed)``, the hidden width ``width`` that
    their hidden convs output and the activation class ``act``. x: (N, F_in) dense or scipy.sparse;
    returns logits (N, C). See the module docstring for the flags.
    """

    act = ReLU
    devices = ("cpu",)
    train_defaults = dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=100)

    def __init__(self, in_channels, out_channels, hidden_channels=64, num_layers=8, dropout=0.5, residual=False,
                 pairnorm=False, dropedge=0.0, seed=0, dtype="float32"):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        L = _num_layers(num_layers)
        dtype = np.dtype(dtype)
        s = child_seeds(seed, 2 * L + 1)
        self.num_layers, self.residual, self.pairnorm = L, bool(residual), bool(pairnorm)
        self._init_dropedge(dropedge, s[-1])
        self.dtype = dtype
        width = self.width(hidden_channels)
        widths = [in_channels] + [width] * (L - 1) + [out_channels]
        self._layers = []
        for layer in range(L):
            last = layer == L - 1
            drop = Dropout(dropout, seed=s[2 * layer])
            conv = self.conv(layer, widths[layer], hidden_channels if not last else out_channels, last,
                             s[2 * layer + 1], dtype, dropout)
            norm = PairNorm() if self.pairnorm and not last else None
            act = None if last else self.act()
            for name, m in (("drop", drop), ("conv", conv), ("norm", norm), ("act", act)):
                if m is not None:
                    setattr(self, f"{name}{layer + 1}", m)
            skip = self.residual and 0 < layer < L - 1           # hidden -> hidden: same width in and out
            self._layers.append((drop, conv, norm, act, skip))
        self.states = []
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels,
                           hidden_channels=hidden_channels, num_layers=L, dropout=dropout, residual=self.residual,
                           pairnorm=self.pairnorm, dropedge=self.dropedge, seed=seed, dtype=dtype.name)

    def width(self, hidden_channels):
        return hidden_channels

    def input_layer(self):
        """The layer that reads the input features (``loop.input_is_data`` skips its dL/dx)."""
        return self.conv1

    def forward(self, x, graph=None):
        g = self._training_graph(graph)
        h, states = x, []
        for drop, conv, norm, act, skip in self._layers:
            z = conv.forward(drop.forward(h, g), g)
            if norm is not None:
                z = norm.forward(z, g)
            if act is not None:
                z = act.forward(z, g)
            h = z + h if skip else z
            states.append(h)
        self.states = states
        return h

    def backward(self, grad_out):
        G = grad_out
        for drop, conv, norm, act, skip in reversed(self._layers):
            G_skip = G                      # h = block(h_prev) + h_prev: the identity branch gets G as it is
            if act is not None:
                G = act.backward(G)
            if norm is not None:
                G = norm.backward(G)
            G = conv.backward(G)
            if G is None:                   # the input layer's input is data (sparse or input_is_data)
                return None
            G = drop.backward(G)
            if skip:
                G = G + G_skip
        return G


@register
class DeepGCN(DeepStack):
    """L-layer GCN (Kipf & Welling's layer stacked) with residual / PairNorm / DropEdge flags; states per layer.

    [dropout -> GCNConv -> (PairNorm) -> ReLU (+ h)] x (L-1) -> dropout -> GCNConv; hidden 64,
    dropout 0.5, 8 layers by default (the GCNII paper's GCN baseline grows L this way). Adam lr 0.01,
    L2 5e-4 on every parameter, 200 epochs, patience 100.
    """

    name = "deep_gcn"
    model_defaults = dict(hidden_channels=64, num_layers=8, dropout=0.5, residual=False, pairnorm=False, dropedge=0.0)

    def conv(self, layer, F_in, F_out, last, seed, dtype, dropout):
        return GCNConv(F_in, F_out, seed=seed, dtype=dtype)


@register
class DeepSAGE(DeepStack):
    """L-layer GraphSAGE (mean aggregator, root weight) with residual / PairNorm / DropEdge flags; states per layer.

    [dropout -> SAGEConv(mean) -> (PairNorm) -> ReLU (+ h)] x (L-1) -> dropout -> SAGEConv; hidden 64,
    dropout 0.5, 8 layers. Adam lr 0.01, L2 5e-4, 200 epochs, patience 100.
    """

    name = "deep_sage"
    model_defaults = dict(hidden_channels=64, num_layers=8, dropout=0.5, residual=False, pairnorm=False, dropedge=0.0)

    def conv(self, layer, F_in, F_out, last, seed, dtype, dropout):
        return SAGEConv(F_in, F_out, aggr="mean", seed=seed, dtype=dtype)


@register
class DeepGAT(DeepStack):
    """L-layer GAT (heads concatenated, ELU) with residual / PairNorm / DropEdge flags; states per layer.

    [dropout -> GATConv(heads x hidden, concat) -> (PairNorm) -> ELU (+ h)] x (L-1) -> dropout ->
    GATConv(C, 1 head); hidden 8 per head, 8 heads, dropout 0.6 on features and attention (the GAT
    paper's Cora values), 8 layers. Adam lr 0.005, L2 5e-4, 200 epochs, patience 100.
    """

    name = "deep_gat"
    act = ELU
    model_defaults = dict(hidden_channels=8, num_layers=8, dropout=0.6, residual=False, pairnorm=False, dropedge=0.0)
    train_defaults = dict(lr=0.005, weight_decay=5e-4, epochs=200, patience=100)

    def __init__(self, in_channels, out_channels, hidden_channels=8, num_layers=8, dropout=0.6, residual=False,
                 pairnorm=False, dropedge=0.0, heads=8, seed=0, dtype="float32"):
        self.heads = int(heads)
        super().__init__(in_channels, out_channels, hidden_channels, num_layers, dropout, residual, pairnorm, dropedge,
                         seed, dtype)
        self.config["heads"] = self.heads

    def width(self, hidden_channels):
        return self.heads * hidden_channels

    def conv(self, layer, F_in, F_out, last, seed, dtype, dropout):
        if last:
            return GATConv(F_in, F_out, heads=1, concat=False, dropout=dropout, seed=seed, dtype=dtype)
        return GATConv(F_in, F_out, heads=self.heads, concat=True, dropout=dropout, seed=seed, dtype=dtype)


@register
class GCNII(_EdgeDropping):
    """GCNII (Chen et al., 2020): Linear -> ReLU, L GCN2Conv layers (initial residual, identity map), Linear.

    x_0 = ReLU(Linear(dropout(x))); h = x_0; [h = ReLU(GCN2Conv(dropout(h), x_0))] x L;
    logits = Linear(dropout(h)). Layer l has beta_l = log(theta / l + 1). The paper's Cora values
    (and PyG's example): 64 layers, hidden 64, alpha 0.1, theta (lambda) 0.5, dropout 0.6, Adam
    lr 0.01 with L2 0.01 on the convolutions and 5e-4 on the two linear layers (``param_groups``),
    patience 100. ``model.states`` holds the L convolutions' outputs (after ReLU).
    """

    name = "gcnii"
    devices = ("cpu",)
    model_defaults = dict(hidden_channels=64, num_layers=64, dropout=0.6)
    train_defaults = dict(lr=0.01, weight_decay=0.01, epochs=1000, patience=100)
    dense_weight_decay = 5e-4

    def __init__(self, in_channels, out_channels, hidden_channels=64, num_layers=64, dropout=0.6, alpha=0.1,
                 theta=0.5, shared_weights=True, dropedge=0.0, seed=0, dtype="float32"):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        L = _num_layers(num_layers, least=1)
        dtype = np.dtype(dtype)
        s = child_seeds(seed, 2 * L + 5)
        self.num_layers = L
        self._init_dropedge(dropedge, s[-1])
        self.drop_in = Dropout(dropout, seed=s[0])
        self.lin_in = Linear(in_channels, hidden_channels, seed=s[1], dtype=dtype)
        self.act_in = ReLU()
        self._layers = []
        for layer in range(L):
            drop = Dropout(dropout, seed=s[2 + 2 * layer])
            conv = GCN2Conv(hidden_channels, alpha, theta, layer + 1, shared_weights=shared_weights,
                            seed=s[3 + 2 * layer], dtype=dtype)
            act = ReLU()
            setattr(self, f"drop{layer + 1}", drop)
            setattr(self, f"conv{layer + 1}", conv)
            setattr(self, f"act{layer + 1}", act)
            self._layers.append((drop, conv, act))
        self.drop_out = Dropout(dropout, seed=s[2 * L + 2])
        self.lin_out = Linear(hidden_channels, out_channels, seed=s[2 * L + 3], dtype=dtype)
        self.states = []
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels,
                           hidden_channels=hidden_channels, num_layers=L, dropout=dropout, alpha=alpha, theta=theta,
                           shared_weights=shared_weights, dropedge=self.dropedge, seed=seed, dtype=dtype.name)

    def input_layer(self):
        return self.lin_in

    def param_groups(self, weight_decay):
        """The paper's groups: L2 ``weight_decay`` on the convolutions, min(weight_decay, 5e-4) on the linear layers."""
        convs = [pg for _, conv, _ in self._layers for pg in conv.parameters()]
        dense = self.lin_in.parameters() + self.lin_out.parameters()
        return [{"params": convs, "weight_decay": weight_decay},
                {"params": dense, "weight_decay": min(weight_decay, self.dense_weight_decay)}]

    def forward(self, x, graph=None):
        g = self._training_graph(graph)
        x_0 = self.act_in.forward(self.lin_in.forward(self.drop_in.forward(x, g), g), g)
        h, states = x_0, []
        for drop, conv, act in self._layers:
            h = act.forward(conv.forward(drop.forward(h, g), x_0, g), g)
            states.append(h)
        self.states = states
        return self.lin_out.forward(self.drop_out.forward(h, g), g)

    def backward(self, grad_out):
        G = self.drop_out.backward(self.lin_out.backward(grad_out))
        G_0 = None                              # x_0 feeds every layer: its gradients add up
        for drop, conv, act in reversed(self._layers):
            dh, dx_0 = conv.backward(act.backward(G))
            G_0 = dx_0 if G_0 is None else G_0 + dx_0
            G = drop.backward(dh)
        G = self.lin_in.backward(self.act_in.backward(G + G_0))   # h_0 = x_0: the first layer's input is x_0 too
        if G is None:
            return None
        return self.drop_in.backward(G)
