"""GConvGRU (Seo et al., 2018, "Structured Sequence Modeling with Graph Convolutional Recurrent Networks").

A GRU whose six products are Chebyshev graph convolutions; PyG Temporal's ``GConvGRU``, same
arguments and meaning. Derived in derivations/recurrent.md (section GConvGRU).
"""
import numpy as np

from ... import ops
from ..checks import check_graph, float_dtype, positive_int
from ..conv.cheb_conv import ChebConv, _check_normalization
from .cell import RecurrentCell

GATES = ("z", "r", "h")


class GConvGRU(RecurrentCell):
    """One step of the graph convolutional GRU:

        Z       = sigma(ChebConv_xz(X) + ChebConv_hz(H))                  update gate
        R       = sigma(ChebConv_xr(X) + ChebConv_hr(H))                  reset gate
        H_tilde = tanh(ChebConv_xh(X) + ChebConv_hh(H * R))               candidate
        H'      = Z * H + (1 - Z) * H_tilde

    (PyG Temporal's convention: Z keeps the old state.) Each ``ChebConv`` has K terms, the given
    ``normalization`` and its own bias (``conv_x_z``, ``conv_h_z``, ... as in PyG Temporal). K = 1 uses
    no edge at all: a GRU applied to every node alone, the no-graph baseline.

    forward(x, graph, H=None, lambda_max=None): x (N, in_channels) float, H (N, out_channels) or None
    (zeros); returns H' (N, out_channels). backward(dH') -> (dX, dH): dX None when
    ``needs_input_grad`` is False. Raises what ``ChebConv`` raises for the graph and x (a non-square
    graph, wrong shapes or dtypes, NaN/Inf), and ValueError / TypeError naming ``H`` for a bad state.

    Backward (derivations/recurrent.md), G = dL/dH':
        dA_z = G (H - H_tilde) Z (1 - Z);  dA_h = G (1 - Z)(1 - H_tilde^2);  dH = G Z
        dX  = conv_x_h^T dA_h;  d(H R) = conv_h_h^T dA_h;  dH += d(HR) R;  dA_r = d(HR) H R (1 - R)
        dX += conv_x_r^T dA_r + conv_x_z^T dA_z;  dH += conv_h_r^T dA_r + conv_h_z^T dA_z
    where conv^T G is the convolution's backward (derivations/cheb_conv.md), which also adds its
    weight and bias gradients.
    """

    def __init__(self, in_channels, out_channels, K, normalization="sym", bias=True, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.K = positive_int("K", K)
        self.normalization = _check_normalization(normalization)
        dtype = float_dtype(dtype)
        seeds = iter(np.random.SeedSequence(seed).generate_state(6))
        for gate in GATES:
            setattr(self, f"conv_x_{gate}", ChebConv(self.in_channels, self.out_channels, K, normalization, bias,
                                                     seed=int(next(seeds)), dtype=dtype))
            setattr(self, f"conv_h_{gate}", ChebConv(self.out_channels, self.out_channels, K, normalization, bias,
                                                     seed=int(next(seeds)), dtype=dtype))

    def __repr__(self):
        return (f"GConvGRU({self.in_channels}, {self.out_channels}, K={self.K}, "
                f"normalization={self.normalization})")

    def forward(self, x, graph=None, H=None, lambda_max=None):
        check_graph(self, graph)
        H = self.initial_state(x, H)
        Z = ops.sigmoid(ops.add_(self.conv_x_z.forward(x, graph, lambda_max), self.conv_h_z.forward(H, graph, lambda_max)))
        R = ops.sigmoid(ops.add_(self.conv_x_r.forward(x, graph, lambda_max), self.conv_h_r.forward(H, graph, lambda_max)))
        H_tilde = ops.tanh(ops.add_(self.conv_x_h.forward(x, graph, lambda_max),
                                    self.conv_h_h.forward(ops.mul(H, R), graph, lambda_max)))
        self._push((H, Z, R, H_tilde))
        return ops.gru_state(Z, H, H_tilde)

    def backward(self, grad_out):
        H, Z, R, H_tilde = self._pop()
        for gate in GATES:
            getattr(self, f"conv_x_{gate}").needs_input_grad = self.needs_input_grad
        dA_z, dH, dA_h = ops.gru_state_backward(grad_out, Z, H, H_tilde)
        dX = self.conv_x_h.backward(dA_h)
        dHR = self.conv_h_h.backward(dA_h)                               # d(H * R)
        ops.add_(dH, ops.mul(dHR, R))
        dA_r = ops.sigmoid_backward(ops.mul(dHR, H), R)
        ops.add_(dH, self.conv_h_r.backward(dA_r))
        ops.add_(dH, self.conv_h_z.backward(dA_z))
        dX_r, dX_z = self.conv_x_r.backward(dA_r), self.conv_x_z.backward(dA_z)
        if dX is not None:
            ops.add_(ops.add_(dX, dX_r), dX_z)
        return dX, dH
