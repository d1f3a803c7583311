"""The Graph Isomorphism Network of Xu et al. (2019), "How Powerful are Graph Neural Networks?", for graph classification."""
import numpy as np

from .. import ops
from ..nn import BatchNorm1d, Dropout, GINConv, GlobalAddPool, GlobalMeanPool, Linear, ReLU, Sequential
from ..nn.checks import positive_int
from ..nn.flat import flatten_parameters
from ..nn.module import Module
from .common import child_seeds
from .registry import register

READOUTS = {"sum": GlobalAddPool, "mean": GlobalMeanPool}


@register
class GIN(Module):
    """GIN-0 of Xu et al. (2019): GINConv layers with MLPs, a readout of every layer (the input too), scores summed.

    With h^(0) = x and, for l = 1 .. L (L = ``num_layers`` - 1 GIN layers, the paper counts the input):

        h^(l)  = ReLU(BN_l(MLP_l((1 + eps_l) h_i^(l-1) + Σ_{j→i} h_j^(l-1))))   (Eq. 4.1; GINConv)
        MLP_l  = Linear -> BatchNorm -> ReLU -> Linear                          (``num_mlp_layers`` = 2)
        score  = Σ_{l=0..L} dropout(W_l^T readout(h^(l)) + b_l)                  (Eq. 4.2, summed over layers)

    readout = sum over each graph's nodes ("sum", the paper's choice) or their mean ("mean").
    eps_l = ``eps`` fixed (GIN-0: 0), or learned from it with ``train_eps`` (GIN-eps). This is
    the authors' code (weihua916/powerful-gnns, ``GraphCNN``) written on ``GINConv``: the outer
    BatchNorm and ReLU after each MLP, dropout on each layer's score only.

    Shapes: x (N, F_in) float over the nodes of a ``GraphBatch`` of B graphs; returns scores
    (B, out_channels). ``backward(G)``: G (B, out_channels) -> dx (N, F_in), every parameter's
    gradient added (derivations/gin_conv.md, pooling.md, batch_norm.md, linear.md).
    Raises TypeError when the graph is not a ``GraphBatch`` (there is no graph to read out from).

    Speed without changing a bit: the parameters are views of one flat buffer (``nn.flat``, so the
    optimiser updates and zeroes them in one call each), and each BatchNorm -> ReLU runs fused
    (``BatchNorm1d.forward(relu=True)``; the ``act`` modules stay for the structure, unused).
    """

    name = "gin"
    graph_level = True          # one score per graph: the graph task (tasks/graph.py) takes it
    devices = ("cpu",)
    model_defaults = dict(hidden_channels=64, num_layers=5, dropout=0.5, readout="sum", eps=0.0, train_eps=False)
    # The authors' defaults: Adam lr 0.01 halved every 50 epochs, 350 epochs of 50 batches of 32 graphs.
    train_defaults = dict(lr=0.01, weight_decay=0.0, epochs=350, batch_size=32)

    def __init__(self, in_channels, out_channels, hidden_channels=64, num_layers=5, dropout=0.5, readout="sum",
                 eps=0.0, train_eps=False, seed=0, dtype="float32"):
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)):
            raise TypeError(f"num_layers must be an int >= 2 (the input counts as one), got {num_layers!r}")
        if num_layers < 2:
            raise ValueError(f"num_layers must be an int >= 2 (the input counts as one), got {num_layers!r}")
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {sorted(READOUTS)}, got {readout!r}")
        dtype = np.dtype(dtype)
        self.num_layers = int(num_layers)
        s = iter(child_seeds(seed, 5 * num_layers))
        widths = [in_channels] + [hidden_channels] * (num_layers - 1)
        for l in range(1, num_layers):
            mlp = Sequential(lin1=Linear(widths[l - 1], hidden_channels, seed=next(s), dtype=dtype),
                             norm=BatchNorm1d(hidden_channels, dtype=dtype), act=ReLU(),
                             lin2=Linear(hidden_channels, hidden_channels, seed=next(s), dtype=dtype))
            setattr(self, f"conv{l}", GINConv(mlp, eps=eps, train_eps=train_eps, dtype=dtype))
            setattr(self, f"norm{l}", BatchNorm1d(hidden_channels, dtype=dtype))
            setattr(self, f"act{l}", ReLU())
        for l in range(num_layers):
            setattr(self, f"pool{l}", READOUTS[readout]())
            setattr(self, f"lin{l}", Linear(widths[l], out_channels, seed=next(s), dtype=dtype))
            setattr(self, f"drop{l}", Dropout(dropout, seed=next(s)))
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels,
                           hidden_channels=hidden_channels, num_layers=num_layers, dropout=dropout, readout=readout,
                           eps=eps, train_eps=train_eps, seed=seed, dtype=dtype.name)
        # ~40 small arrays: one flat buffer lets the optimiser update (and zero) them in one call each
        flatten_parameters(self)

    # ``loop.input_is_data`` clears this while training on data features: conv1 then skips dx, and
    # backward returns None (only the input readout's weights need its gradient, not x).
    @property
    def needs_input_grad(self):
        return self.conv1.needs_input_grad

    # Without dx, conv1's MLP needs no gradient of its own input either (lin1's G Wᵀ), unless a
    # trained eps reads it (deps = Σ dH ⊙ x): what autograd skips for features without requires_grad.
    @needs_input_grad.setter
    def needs_input_grad(self, value):
        self.conv1.needs_input_grad = bool(value)
        self._first_mlp_layer().needs_input_grad = bool(value) or self.conv1.train_eps

    @needs_input_grad.deleter
    def needs_input_grad(self):
        self.conv1.needs_input_grad = True
        self._first_mlp_layer().needs_input_grad = True

    def _first_mlp_layer(self):
        return self.conv1.nn.lin1

    def input_layer(self):
        """The model itself: x reaches two layers (conv1 and the input's readout), so the model decides."""
        return self

    def _layer(self, kind, l):
        return getattr(self, f"{kind}{l}")

    def forward(self, x, batch):
        h = x
        score = None
        for l in range(self.num_layers):
            if l > 0:      # norm -> act (a ReLU) as one fused pass: the same bits (BatchNorm1d.forward(relu=True))
                h = self._layer("norm", l).forward(self._layer("conv", l).forward(h, batch), relu=True)
            s_l = self._layer("drop", l).forward(self._layer("lin", l).forward(self._layer("pool", l).forward(h, batch)))
            score = s_l if score is None else ops.add_(score, s_l)
        return score

    def backward(self, G):
        dh = None
        for l in reversed(range(self.num_layers)):
            d_score = self._layer("lin", l).backward(self._layer("drop", l).backward(G))
            if l == 0 and not self.needs_input_grad:
                return None                                           # x is data: lin0's gradients were all it needed
            d_read = self._layer("pool", l).backward(d_score)
            dh = d_read if dh is None else ops.add_(dh, d_read)      # h^(l) feeds its readout and layer l + 1
            if l > 0:
                dh = self._layer("conv", l).backward(self._layer("norm", l).backward(dh))     # act's backward inside
        return dh
