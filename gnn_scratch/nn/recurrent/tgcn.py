"""TGCN (Zhao et al., 2019, "T-GCN: A Temporal Graph Convolutional Network for Traffic Prediction").

A GRU whose input enters through graph convolutions; PyG Temporal's ``TGCN`` (0.56.2), same
arguments and meaning. Derived in derivations/tgcn.md.
"""
import numpy as np

from ... import ops
from ..checks import check_features, check_graph, float_dtype, positive_int
from ..conv.gcn_conv import GCNConv
from ..module import Module
from .cell import RecurrentCell

GATES = ("z", "r", "h")


class ConcatLinear(Module):
    """Y = [A, B] W + b, computed as A W[:k] + B W[k:] + b: a Linear over a concatenation never formed.

    A (N, k), B (N, m), W (k + m, F_out), b (F_out,), Y (N, F_out), with k = ``split``. W and b are one
    ``torch.nn.Linear(k + m, F_out)`` (weight = W^T, bias = b) and are initialised as torch does:
    U(-1/sqrt(k + m), 1/sqrt(k + m)) for both. Splitting the rows of W saves the (N, k + m) copy of
    the concatenation in the forward and its split in the backward.

    forward(a, b) -> Y; backward(G) -> (dA, dB) (derivations/tgcn.md, "The split Linear"):
        dW[:k] += A^T G;  dW[k:] += B^T G;  db += sum_n G[n];  dA = G W[:k]^T;  dB = G W[k:]^T
    Raises ValueError / TypeError naming ``a`` or ``b`` for a wrong shape or dtype.
    """

    def __init__(self, split, in_channels, out_channels, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.split = positive_int("split", split)
        if self.split >= self.in_channels:
            raise ValueError(f"split must be below in_channels = {self.in_channels} (both blocks non-empty), "
                             f"got {split}")
        dtype = float_dtype(dtype)
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(self.in_channels)
        self.add_param("W", rng.uniform(-k, k, (self.in_channels, self.out_channels)).astype(dtype))
        self.add_param("b", rng.uniform(-k, k, self.out_channels).astype(dtype))

    def __repr__(self):
        return f"ConcatLinear({self.split} + {self.in_channels - self.split}, {self.out_channels})"

    def forward(self, a, b):
        W, k = self.params["W"], self.split
        a = check_features(a, num_cols=k, dtype=W.dtype, name="a")
        b = check_features(b, num_rows=a.shape[0], num_cols=self.in_channels - k, dtype=W.dtype, name="b")
        Y = ops.add_(ops.matmul(a, W[:k]), ops.matmul(b, W[k:]))
        ops.add_bias(Y, self.params["b"])
        self._cache = (a, b)
        return Y

    def backward(self, grad_out):
        a, b = self._saved()
        W, dW, k = self.params["W"], self.grads["W"], self.split
        ops.matmul_tn(a, grad_out, out=dW[:k], accumulate=True)          # dW_top += A^T G
        ops.matmul_tn(b, grad_out, out=dW[k:], accumulate=True)          # dW_bot += B^T G
        ops.col_sum(grad_out, out=self.grads["b"], accumulate=True)      # db += sum_n G[n]
        return ops.matmul_nt(grad_out, W[:k]), ops.matmul_nt(grad_out, W[k:])


class TGCN(RecurrentCell):
    """One step of the temporal graph convolutional GRU (PyG Temporal's ``TGCN``):

        Z       = sigma([GCN_z(X), H]     W_z + b_z)                      update gate
        R       = sigma([GCN_r(X), H]     W_r + b_r)                      reset gate
        H_tilde = tanh ([GCN_h(X), H * R] W_h + b_h)                      candidate
        H'      = Z * H + (1 - Z) * H_tilde

    (PyG Temporal's convention: Z keeps the old state.) The graph enters through the input only:
    each ``GCN_g`` is a ``GCNConv(in_channels, out_channels)`` (A_hat X W + b with PyG's
    normalisation, ``improved`` and ``add_self_loops`` as given), ``conv_z``, ``conv_r``, ``conv_h``;
    the state is mixed by ``linear_z``, ``linear_r``, ``linear_h``, each one ``Linear(2 out, out)`` over
    the concatenation (a ``ConcatLinear``: [C, H] W = C W[:out] + H W[out:], never concatenated).
    Parameters map one to one onto PyG Temporal's: ``conv_g.W = conv_g.lin.weight^T``, ``conv_g.b =
    conv_g.bias``, ``linear_g.W = linear_g.weight^T``, ``linear_g.b = linear_g.bias``.

    Arguments: in_channels, out_channels; ``improved`` (self-loops of weight 2: A_hat = D^-1/2 (A + 2I)
    D^-1/2); ``cached`` (accepted for PyG's signature: the normalisation is always cached, on the
    graph object, so each graph gets its own and True or False give the same numbers -- PyG's
    ``cached=True`` instead reuses the first graph's normalisation for every later graph);
    ``add_self_loops``; seed, dtype (float32 or float64).

    forward(x, graph, H=None): x (N, in_channels) float, graph a square ``Graph`` (weights, if any,
    are the edge weights), H (N, out_channels) or None (zeros); returns H' (N, out_channels).
    backward(dH') -> (dX, dH): dX None when ``needs_input_grad`` is False (then no GCN input
    gradient is computed at all). Raises ValueError / TypeError naming ``x`` (shape, dtype, NaN/Inf)
    or ``H``, and what ``GCNConv`` raises for the graph (not square, a negative in-degree).

    Backward (derivations/tgcn.md), G = dL/dH':
        dA_z = G (H - H_tilde) Z (1 - Z);  dA_h = G (1 - Z)(1 - H_tilde^2);  dH = G Z
        [dC_h, d(HR)] = dA_h [W_h^top, W_h^bot]^T;  dH += d(HR) R;  dA_r = d(HR) H R (1 - R)
        [dC_r, dH_r] = dA_r W_r^T;  [dC_z, dH_z] = dA_z W_z^T;  dH += dH_r + dH_z
        dX = conv_h^T dC_h + conv_r^T dC_r + conv_z^T dC_z
    where conv^T is ``GCNConv.backward`` (derivations/gcn.md), which also adds its weight and bias
    gradients, and each Linear adds its own (``ConcatLinear``).
    """

    def __init__(self, in_channels, out_channels, improved=False, cached=False, add_self_loops=True,
                 seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        for name, flag in (("improved", improved), ("cached", cached), ("add_self_loops", add_self_loops)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.improved, self.cached, self.add_self_loops = bool(improved), bool(cached), bool(add_self_loops)
        self.dtype = dtype = float_dtype(dtype)      # the cell holds no parameter of its own: its sub-layers' dtype
        seeds = iter(np.random.SeedSequence(seed).generate_state(6))
        for gate in GATES:
            setattr(self, f"conv_{gate}", GCNConv(self.in_channels, self.out_channels, improved=self.improved,
                                                  add_self_loops=self.add_self_loops, seed=int(next(seeds)),
                                                  dtype=dtype))
            setattr(self, f"linear_{gate}", ConcatLinear(self.out_channels, 2 * self.out_channels, self.out_channels,
                                                         seed=int(next(seeds)), dtype=dtype))

    def __repr__(self):
        return (f"TGCN({self.in_channels}, {self.out_channels}, improved={self.improved}, "
                f"add_self_loops={self.add_self_loops})")

    def forward(self, x, graph=None, H=None):
        check_graph(self, graph)
        x = check_features(x, num_cols=self.in_channels, dtype=self.dtype, graph=graph)
        H = self.initial_state(x, H)
        Z = ops.sigmoid(self.linear_z.forward(self.conv_z.forward(x, graph), H))
        R = ops.sigmoid(self.linear_r.forward(self.conv_r.forward(x, graph), H))
        H_tilde = ops.tanh(self.linear_h.forward(self.conv_h.forward(x, graph), ops.mul(H, R)))
        self._push((H, Z, R, H_tilde))
        return ops.gru_state(Z, H, H_tilde)

    def backward(self, grad_out):
        H, Z, R, H_tilde = self._pop()
        for gate in GATES:
            getattr(self, f"conv_{gate}").needs_input_grad = self.needs_input_grad
        dA_z, dH, dA_h = ops.gru_state_backward(grad_out, Z, H, H_tilde)
        dC_h, dHR = self.linear_h.backward(dA_h)                             # dHR = d(H * R)
        ops.add_(dH, ops.mul(dHR, R))
        dA_r = ops.sigmoid_backward(ops.mul(dHR, H), R)
        dC_r, dH_r = self.linear_r.backward(dA_r)
        dC_z, dH_z = self.linear_z.backward(dA_z)
        ops.add_(ops.add_(dH, dH_r), dH_z)
        dX = self.conv_h.backward(dC_h)
        dX_r, dX_z = self.conv_r.backward(dC_r), self.conv_z.backward(dC_z)
        if dX is not None:
            ops.add_(ops.add_(dX, dX_r), dX_z)
        return dX, dH
