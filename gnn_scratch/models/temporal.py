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
from ..nn.recurrent import A3TGCN, DCRNN, TGCN, GConvGRU, GConvLSTM, Recurrent
from ..nn.checks import positive_int
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
        self.head = Linear(hidden_channels, out_channels, dtype=dtype)
        # The head starts as torch.nn.Linear does in PyG Temporal's example model (W, b ~ U(+-1/sqrt(fan_in)),
        # not Glorot's U(+-sqrt(6/(fan_in + fan_out))): on Chickenpox the wider Glorot head alone moved
        # T-GCN's 10-seed test MSE 5 % away from PyG Temporal's, the same model from the same weights
        # agreeing to 0.4 %.
        rng = np.random.default_rng(np.random.SeedSequence(seed).generate_state(2)[1])
        bound = 1.0 / np.sqrt(hidden_channels)
        for name in ("W", "b"):
            p = self.head.params[name]
            p[...] = rng.uniform(-bound, bound, p.shape).astype(p.dtype)
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
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        self._build(GConvGRU(in_channels, hidden_channels, K, normalization, seed=seed, dtype=dtype), out_channels,
                    seed, dtype, bptt, in_channels=in_channels, K=K, normalization=normalization)


@register
class TGCNForecaster(RecurrentForecaster):
    """T-GCN (Zhao et al. 2019) + ReLU + Linear: a GRU whose gates read a GCN of the input and the state."""

    name = "tgcn"
    model_defaults = dict(hidden_channels=32, bptt=None)

    def __init__(self, in_channels, out_channels=1, hidden_channels=32, improved=False, add_self_loops=True, bptt=None,
                 seed=0, dtype=np.float32):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        self._build(TGCN(in_channels, hidden_channels, improved=improved, add_self_loops=add_self_loops, seed=seed,
                         dtype=dtype), out_channels, seed, dtype, bptt, in_channels=in_channels, improved=improved,
                    add_self_loops=add_self_loops)


@register
class A3TGCNForecaster(RecurrentForecaster):
    """A3T-GCN (Bai et al. 2021) as PyG Temporal builds it + ReLU + Linear: attention over a window's periods."""

    name = "a3tgcn"
    model_defaults = dict(hidden_channels=32)
    # The cell reads a whole window at once, one period per past step: the task always gives it the
    # window as one (N, periods) input, whatever --input says (a sequence of steps does not apply).
    reads_window = True

    def __init__(self, in_channels, out_channels=1, hidden_channels=32, improved=False, add_self_loops=True,
                 recurrent_periods=False, seed=0, dtype=np.float32):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        # in_channels = the window's length: its periods, one feature each
        self._build(A3TGCN(1, hidden_channels, periods=in_channels, improved=improved, add_self_loops=add_self_loops,
                           recurrent_periods=recurrent_periods, seed=seed, dtype=dtype), out_channels, seed, dtype,
                    None, in_channels=in_channels, improved=improved, add_self_loops=add_self_loops,
                    recurrent_periods=recurrent_periods)
        del self.config["bptt"]

    def forward(self, xs, graph=None):
        if len(xs) != 1:
            raise ValueError(f"a3tgcn reads a window as one input (N, periods), got {len(xs)} steps")
        x = xs[0]
        return super().forward([x.reshape(x.shape[0], 1, x.shape[1])], graph)

    def backward(self, grad_out):
        dxs = super().backward(grad_out)
        return [None if d is None else d.reshape(d.shape[0], d.shape[2]) for d in dxs]


@register
class GConvLSTMForecaster(RecurrentForecaster):
    """GConvLSTM (Seo et al. 2018) + ReLU + Linear: an LSTM with peepholes whose products are Chebyshev convolutions."""

    name = "gconv_lstm"
    model_defaults = dict(hidden_channels=32, K=2, bptt=None)

    def __init__(self, in_channels, out_channels=1, hidden_channels=32, K=2, normalization="sym", bptt=None, seed=0,
                 dtype=np.float32):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        self._build(GConvLSTM(in_channels, hidden_channels, K, normalization, seed=seed, dtype=dtype), out_channels,
                    seed, dtype, bptt, in_channels=in_channels, K=K, normalization=normalization)


@register
class DCRNNForecaster(RecurrentForecaster):
    """DCRNN's cell (Li et al. 2018) + ReLU + Linear: a GRU whose gates are diffusion convolutions (K steps each way)."""

    name = "dcrnn"
    model_defaults = dict(hidden_channels=32, K=2, bptt=None)

    def __init__(self, in_channels, out_channels=1, hidden_channels=32, K=2, bptt=None, seed=0, dtype=np.float32):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        super().__init__()
        self._build(DCRNN(in_channels, hidden_channels, K, seed=seed, dtype=dtype), out_channels, seed, dtype, bptt,
                    in_channels=in_channels, K=K)
