"""GConvLSTM (Seo et al., 2018, "Structured Sequence Modeling with Graph Convolutional Recurrent Networks").

An LSTM with peepholes whose eight products are Chebyshev graph convolutions; PyG Temporal's
``GConvLSTM``, same arguments, parameters and meaning. Derived in derivations/gconv_lstm.md.
"""
import numpy as np

from ... import ops
from ..checks import check_graph, float_dtype, positive_int
from ..conv.cheb_conv import ChebConv, _check_normalization
from ..init import as_rng, glorot
from ..module import check_grad_out
from .cell import RecurrentCell

GATES = ("i", "f", "c", "o")
PEEPHOLES = ("i", "f", "o")


class GConvLSTM(RecurrentCell):
    """One step of the graph convolutional LSTM with peepholes, as PyG Temporal writes it:

        I  = sigma(ChebConv_xi(X) + ChebConv_hi(H) + w_c_i * C  + b_i)          input gate
        F  = sigma(ChebConv_xf(X) + ChebConv_hf(H) + w_c_f * C  + b_f)          forget gate
        T  = tanh(ChebConv_xc(X) + ChebConv_hc(H) + b_c)                         candidate
        C' = F * C + I * T                                                       new cell state
        O  = sigma(ChebConv_xo(X) + ChebConv_ho(H) + w_c_o * C' + b_o)          output gate: sees the NEW C'
        H' = O * tanh(C')

    Each ``ChebConv`` (``conv_x_i``, ``conv_h_i``, ..., ``conv_h_o`` as in PyG Temporal) has K terms,
    the given ``normalization`` and, with ``bias``, its own bias. The peepholes ``w_c_i``, ``w_c_f``,
    ``w_c_o`` and the gate biases ``b_i``, ``b_f``, ``b_c``, ``b_o`` are PyG Temporal's parameters of
    shape (1, out_channels), one row multiplied / added to every node's row (the candidate has no
    peephole); initialised as there: Glorot-uniform peepholes (a = sqrt(6 / (1 + out_channels))),
    zero gate biases. (With ``bias`` each gate thus has two or three biases in a sum, as in PyG
    Temporal; they get equal gradients.) K = 1 uses no edge: an LSTM on every node alone.

    ``num_states = 2``. forward(x, graph, H=None, C=None, lambda_max=None): x (N, in_channels) float,
    H and C (N, out_channels) or None (zeros); returns (H', C'). backward(dH', dC') -> (dX, dH, dC):
    dX None when ``needs_input_grad`` is False. Raises what ``ChebConv`` raises for the graph and x (a
    non-square graph, wrong shapes or dtypes, NaN/Inf), ValueError / TypeError naming ``H`` or ``C``
    for a bad state and ``dH`` or ``dC`` for a bad upstream gradient.

    Backward (derivations/gconv_lstm.md), with Δ^H = dL/dH', Δ^C = dL/dC' (from the step after):
        dA_o = Δ^H tanh(C') O (1 - O);   dC' = Δ^C + Δ^H O (1 - tanh^2 C') + w_c_o dA_o
        dA_i = dC' T I (1 - I);   dA_f = dC' C F (1 - F);   dA_c = dC' I (1 - T^2)
        dC   = dC' F + w_c_i dA_i + w_c_f dA_f                                  (the cell-state recurrence)
        dw_c_i = Σ_n dA_i C;  dw_c_f = Σ_n dA_f C;  dw_c_o = Σ_n dA_o C';  db_g = Σ_n dA_g
        dX = Σ_g conv_x_g^T dA_g;  dH = Σ_g conv_h_g^T dA_g                      (the hidden-state recurrence)
    (``ops.lstm_state_backward`` computes the first three lines in one pass).
    """

    num_states = 2

    def __init__(self, in_channels, out_channels, K, normalization="sym", bias=True, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.K = positive_int("K", K)
        self.normalization = _check_normalization(normalization)
        dtype = float_dtype(dtype)
        seeds = iter(np.random.SeedSequence(seed).generate_state(2 * len(GATES) + len(PEEPHOLES)))
        for gate in GATES:
            setattr(self, f"conv_x_{gate}", ChebConv(self.in_channels, self.out_channels, K, normalization, bias,
                                                     seed=int(next(seeds)), dtype=dtype))
            setattr(self, f"conv_h_{gate}", ChebConv(self.out_channels, self.out_channels, K, normalization, bias,
                                                     seed=int(next(seeds)), dtype=dtype))
        for gate in PEEPHOLES:
            self.add_param(f"w_c_{gate}", glorot(as_rng(int(next(seeds))), 1, self.out_channels, dtype=dtype))
        for gate in GATES:
            self.add_param(f"b_{gate}", np.zeros((1, self.out_channels), dtype=dtype))

    def __repr__(self):
        return (f"GConvLSTM({self.in_channels}, {self.out_channels}, K={self.K}, "
                f"normalization={self.normalization})")

    def _preactivation(self, gate, x, H, graph, lambda_max):
        """ChebConv_x<gate>(X) + ChebConv_h<gate>(H): (N, out_channels)."""
        return ops.add_(getattr(self, f"conv_x_{gate}").forward(x, graph, lambda_max),
                        getattr(self, f"conv_h_{gate}").forward(H, graph, lambda_max))

    def forward(self, x, graph=None, H=None, C=None, lambda_max=None):
        check_graph(self, graph)
        H = self.initial_state(x, H)
        C = self.initial_state(x, C, "C")
        p = self.params
        I = ops.lstm_gate(self._preactivation("i", x, H, graph, lambda_max), p["w_c_i"], C, p["b_i"])
        F = ops.lstm_gate(self._preactivation("f", x, H, graph, lambda_max), p["w_c_f"], C, p["b_f"])
        T, C_new, O, H_new = ops.lstm_state(I, F, self._preactivation("c", x, H, graph, lambda_max), p["b_c"], C,
                                            self._preactivation("o", x, H, graph, lambda_max), p["w_c_o"], p["b_o"])
        self._push((C, I, F, T, O, C_new))
        return H_new, C_new

    def backward(self, dH, dC):
        C, I, F, T, O, C_new = self._pop()
        spec = (tuple(C_new.shape), np.dtype(C_new.dtype))
        check_grad_out(dH, spec, "dH")
        check_grad_out(dC, spec, "dC")
        p, g = self.params, self.grads
        for gate in GATES:
            getattr(self, f"conv_x_{gate}").needs_input_grad = self.needs_input_grad
        dA_i, dA_f, dA_c, dA_o, dC_prev = ops.lstm_state_backward(dH, dC, I, F, T, C, O, C_new, p["w_c_i"],
                                                                  p["w_c_f"], p["w_c_o"])
        dA = dict(i=dA_i, f=dA_f, c=dA_c, o=dA_o)
        for gate, state in (("i", C), ("f", C), ("o", C_new)):       # the peepholes: dw = Σ_n dA ⊙ (the C it saw)
            ops.col_sum(ops.mul(dA[gate], state), out=g[f"w_c_{gate}"].reshape(-1), accumulate=True)
        for gate in GATES:                                             # db_g = Σ_n dA_g
            ops.col_sum(dA[gate], out=g[f"b_{gate}"].reshape(-1), accumulate=True)
        dX = dH_prev = None                                            # X and H feed four convolutions each
        for gate in GATES:
            dx = getattr(self, f"conv_x_{gate}").backward(dA[gate])   # None when needs_input_grad is False
            dh = getattr(self, f"conv_h_{gate}").backward(dA[gate])
            if dx is not None:
                dX = dx if dX is None else ops.add_(dX, dx)
            dH_prev = dh if dH_prev is None else ops.add_(dH_prev, dh)
        return dX, dH_prev, dC_prev
