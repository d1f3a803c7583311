"""Forecasting models: a recurrent graph cell read by ReLU and a linear layer (PyG Temporal's example model).

    S_{t+1} = cell(x_t, graph, S_t),  t = 0 .. T-1,  S_0 = 0
    y_hat   = ReLU(H_T) W + b                        (N, out_channels)

T = 1 with the lags as features is PyG Temporal's Chickenpox setting (each snapshot read alone,
from a zero state); T = seq_len steps of one feature is T-GCN's Los-loop setting (the state is
carried through the window). The cell is any ``RecurrentCell``; the graph may be a block-diagonal
batch of many snapshots or windows (``GraphBatch``), since every cell works row-wise on it.
"""
import numpy as np

from ..nn.activations import ReLU
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.recurrent import GConvGRU, Recurrent
from .registry import register


class RecurrentForecaster(Module):
    """Base class: ``self.rnn`` (a ``Recurrent``) then ReLU then ``Linear(hidden_channels, out_channels)``.

    forward(xs, graph): xs a list of T >= 1 arrays (N, in_channels) (or an array (T, N, in_channels));
    returns (N, out_channels). backward(G) -> the list of T input gradients (None entries when the
    input is data: ``needs_input_grad = False``). Subclasses build their cell and call ``_build``
    (the cell is held by ``self.rnn`` only: a second attribute would list its parameters twice).
    """

    temporal = True          # the temporal task trains these; the node and graph tasks refuse them
    devices = ("cpu",)
    train_defaults = {}
    needs_input_grad = True

    def _build(self, cell, out_channels, seed, dtype, bptt, **config):
        hidden_channels = cell.out_channels
        self.rnn = Recurrent(cell, bptt=bptt)
        self.act = ReLU()
        self.head = Linear(hidden_channels, out_channels, seed=int(np.random.SeedSequence(seed).generate_state(2)[1]),
                           dtype=dtype)
        self.config = dict(model=self.name, out_channels=out_channels, hidden_channels=hidden_channels, bptt=bptt,
                           seed=seed, dtype=np.dtype(dtype).name, **config)

    @property
    def cell(self):
        return self.rnn.cell

    def forward(self, xs, graph=None):
        outs = self.rnn.forward(xs, graph)
        self._cache = len(outs)
        return self.head.forward(self.act.forward(outs[-1]), graph)

    def backward(self, grad_out):
        T = self._saved()
        self.cell.needs_input_grad = self.needs_input_grad
        dH = self.act.backward(self.head.backward(grad_out))
        return self.rnn.backward([None] * (T - 1) + [dH])


@register
class GConvGRUForecaster(RecurrentForecaster):
    """GConvGRU (Seo et al. 2018) + ReLU + Linear: a GRU whose products are K-term Chebyshev convolutions."""

    name = "gconv_gru"
    model_defaults = dict(hidden_channels=32, K=2, bptt=None)

    def __init__(self, in_channels, out_channels=1, hidden_channels=32, K=2, normalization="sym", bptt=None, seed=0,
                 dtype=np.float32):
        super().__init__()
        self._build(GConvGRU(in_channels, hidden_channels, K, normalization, seed=seed, dtype=dtype), out_channels,
                    seed, dtype, bptt, in_channels=in_channels, K=K, normalization=normalization)
