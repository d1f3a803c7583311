"""DCRNN's cell (Li et al., 2018, "Diffusion Convolutional Recurrent Neural Network: Data-Driven Traffic
Forecasting"): a GRU whose products are diffusion convolutions.

PyG Temporal's ``DCRNN``, same arguments and gates, on ``DConv`` -- the diffusion convolution as the paper
and the authors' code define it, where PyG Temporal's differs (``nn/conv/dconv.py``). Derived in
derivations/dcrnn.md (§ 5).
"""
import numpy as np

from ... import ops
from ..checks import check_features, check_graph, float_dtype, positive_int
from ..conv.dconv import DConv
from .cell import RecurrentCell

GATES = ("z", "r", "h")


class DCRNN(RecurrentCell):
    """One step of the diffusion convolutional GRU:

        Z       = sigma(DConv_z([X ‖ H]))                          update gate
        R       = sigma(DConv_r([X ‖ H]))                          reset gate
        H_tilde = tanh(DConv_h([X ‖ H * R]))                       candidate
        H'      = Z * H + (1 - Z) * H_tilde

    (PyG Temporal's convention, as in ``GConvGRU``: Z keeps the old state.) Each ``DConv`` maps
    in_channels + out_channels -> out_channels with K terms per direction and its own bias; the three
    are ``conv_x_z``, ``conv_x_r``, ``conv_x_h`` as in PyG Temporal, and each parameter has PyG's shape:
    W (2, K, in + out, out) = ``weight``, b (out,) = ``bias``. The concatenation [X ‖ H] is never
    formed: ``DConv`` takes the pair as column blocks and uses W's first in_channels rows for X, the
    rest for H. K = 1 uses no edge: a GRU on every node alone.

    forward(x, graph, H=None): x (N, in_channels) float, H (N, out_channels) or None (zeros); returns
    H' (N, out_channels). backward(dH') -> (dX, dH): dX None when ``needs_input_grad`` is False. The
    graph's edge weights are used (in the walks' entries and degrees). Raises ValueError / TypeError
    naming ``x`` or ``H`` for a wrong shape, dtype, or NaN / Inf, and what ``DConv`` raises for the graph.

    Backward (derivations/dcrnn.md § 5), G = dL/dH':
        dA_z = G (H - H_tilde) Z (1 - Z);  dA_h = G (1 - Z)(1 - H_tilde^2);  dH = G Z
        (dX, d(H R)) = conv_x_h^T dA_h;  dH += d(HR) R;  dA_r = d(HR) H R (1 - R)
        (dX, dH) += conv_x_r^T dA_r + conv_x_z^T dA_z
    where conv^T G is the diffusion convolution's backward, one gradient per block.
    """

    def __init__(self, in_channels, out_channels, K, bias=True, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.K = positive_int("K", K)
        dtype = float_dtype(dtype)
        seeds = iter(np.random.SeedSequence(seed).generate_state(3))
        for gate in GATES:
            setattr(self, f"conv_x_{gate}", DConv(self.in_channels + self.out_channels, self.out_channels, K, bias,
                                                  seed=int(next(seeds)), dtype=dtype))

    def __repr__(self):
        return f"DCRNN({self.in_channels}, {self.out_channels}, K={self.K})"

    def forward(self, x, graph=None, H=None):
        check_graph(self, graph)
        x = check_features(x, num_cols=self.in_channels, dtype=self.conv_x_z.param_dtype, graph=graph)
        H = self.initial_state(x, H)
        Z = ops.sigmoid(self.conv_x_z.forward((x, H), graph))
        R = ops.sigmoid(self.conv_x_r.forward((x, H), graph))
        H_tilde = ops.tanh(self.conv_x_h.forward((x, ops.mul(H, R)), graph))
        self._push((H, Z, R, H_tilde))
        return ops.gru_state(Z, H, H_tilde)

    def backward(self, grad_out):
        H, Z, R, H_tilde = self._pop()
        for gate in GATES:                                   # blocks (X, H): the state's gradient is always needed
            getattr(self, f"conv_x_{gate}").needs_input_grad = (self.needs_input_grad, True)
        dA_z, dH, dA_h = ops.gru_state_backward(grad_out, Z, H, H_tilde)
        dX, dHR = self.conv_x_h.backward(dA_h)                            # dHR = d(H * R)
        ops.add_(dH, ops.mul(dHR, R))
        dA_r = ops.sigmoid_backward(ops.mul(dHR, H), R)
        dX_r, dH_r = self.conv_x_r.backward(dA_r)
        dX_z, dH_z = self.conv_x_z.backward(dA_z)
        ops.add_(ops.add_(dH, dH_r), dH_z)
        if dX is not None:
            ops.add_(ops.add_(dX, dX_r), dX_z)
        return dX, dH
