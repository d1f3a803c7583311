"""A3TGCN (Bai et al., 2021, "A3T-GCN: Attention Temporal Graph Convolutional Network for Traffic Forecasting").

T-GCN plus attention over the periods of an input window; PyG Temporal's ``A3TGCN`` (0.56.2), same
arguments and meaning, and by default the same semantics, which differ from the paper's (below).
Derived in derivations/tgcn.md (section A3TGCN).
"""
import numpy as np

from ... import ops
from ...device import empty
from ..checks import check_graph, float_dtype, positive_int
from ..module import BackwardBeforeForward
from .cell import RecurrentCell
from .tgcn import TGCN


class A3TGCN(RecurrentCell):
    """Attention over the P periods of a window X (N, F_in, P), each period run through one ``TGCN``:

        p       = softmax(a)                          a (P,) a free parameter ("attention")
        H_k     = TGCN(X[:, :, k], H)                 k = 0 .. P-1, every period from the same H
        H_accum = sum_k p_k H_k

    **PyG Temporal's semantics (the default), not the paper's.** PyG Temporal 0.56.2 calls its base
    ``TGCN`` on every period with the *same* state H (None: zeros): no recurrence runs across the
    periods, so H_k depends on period k's input alone, and the attention weights are one learned
    vector, the same for every node and every window (initialised U(0, 1), as PyG does). In the
    paper, a T-GCN runs *over* the window (h_k = TGCN(x_k, h_{k-1})) and the weights are computed
    from the hidden states by a two-layer perceptron (e_k = w2 (w1 h_k + b1) + b2, alpha =
    softmax(e)), so they change with the data. ``recurrent_periods=True`` gives the first half of the
    paper's model -- the state carried across the periods, H_k = TGCN(X[:, :, k], H_{k-1}) with
    H_{-1} = H -- with PyG's free attention vector; the paper's score perceptron is not built.

    Why a ``RecurrentCell``: one call consumes a whole window and returns something of the state's
    shape (N, out_channels), which PyG Temporal accepts back as H; the cell contract (state in,
    state out, a frame per call) then lets ``Recurrent`` chain windows with backpropagation through
    them, and eval mode keeps one window. PyG Temporal's own use is one call per window with H=None.

    Arguments: in_channels, out_channels, periods (P); improved, cached, add_self_loops (as ``TGCN``:
    ``cached`` changes nothing, the normalisation is cached on the graph); recurrent_periods (False:
    PyG Temporal; True: the state carried across the periods); seed, dtype. Parameters: ``attention``
    (P,) = PyG's ``_attention``, and the base cell's under ``base_tgcn.`` (PyG's ``_base_tgcn.``), mapped as
    in ``TGCN``.

    forward(x, graph, H=None): x (N, in_channels, periods) float, PyG Temporal's layout; H (N,
    out_channels) or None (zeros). Returns H_accum (N, out_channels). backward(dH_accum) -> (dX (N,
    in_channels, periods), dH); dX None when ``needs_input_grad`` is False. Raises ValueError naming
    ``x`` for a wrong shape (periods mismatch included) or a NaN/Inf, TypeError for a wrong dtype,
    what ``TGCN`` raises for ``H`` and the graph, and ``BackwardBeforeForward`` for a backward of a
    window whose forward ran in eval mode (which keeps one period of the base cell, not P).

    Backward (derivations/tgcn.md, section A3TGCN), G = dL/dH_accum:
        g_k = <G, H_k>;  da = p * (g - <p, g>);  dH_k = p_k G  (+ dH carried back from period k+1
        when recurrent); dX[:, :, k], dH_{k-1} = TGCN.backward(dH_k), periods in reverse order;
        PyG's form: dH = sum_k dH_{k-1}; recurrent: dH = the state gradient out of period 0.
    """

    def __init__(self, in_channels, out_channels, periods, improved=False, cached=False, add_self_loops=True,
                 recurrent_periods=False, seed=0, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.periods = positive_int("periods", periods)
        if not isinstance(recurrent_periods, (bool, np.bool_)):
            raise TypeError(f"recurrent_periods must be a bool, got {recurrent_periods!r}")
        self.recurrent_periods = bool(recurrent_periods)
        dtype = float_dtype(dtype)
        seed_tgcn, seed_att = np.random.SeedSequence(seed).generate_state(2)
        self.base_tgcn = TGCN(self.in_channels, self.out_channels, improved=improved, cached=cached,
                              add_self_loops=add_self_loops, seed=int(seed_tgcn), dtype=dtype)
        self.add_param("attention", np.random.default_rng(int(seed_att)).uniform(0.0, 1.0, self.periods).astype(dtype))

    @property
    def improved(self):
        return self.base_tgcn.improved

    @property
    def cached(self):
        return self.base_tgcn.cached

    @property
    def add_self_loops(self):
        return self.base_tgcn.add_self_loops

    def __repr__(self):
        return (f"A3TGCN({self.in_channels}, {self.out_channels}, periods={self.periods}, improved={self.improved}, "
                f"add_self_loops={self.add_self_loops}, recurrent_periods={self.recurrent_periods})")

    def _check_window(self, x, graph):
        """x checked to be (N, in_channels, periods) of the parameters' dtype (metadata only: values are
        scanned by the outermost forward)."""
        if not all(hasattr(x, a) for a in ("shape", "ndim", "dtype")):
            raise TypeError(f"x must be an array of shape (N, in_channels, periods), got {type(x).__name__}")
        want = (graph.num_src, self.in_channels, self.periods)
        if tuple(x.shape) != want:
            raise ValueError(f"x must have shape {want} (nodes, in_channels={self.in_channels}, "
                             f"periods={self.periods}: PyG Temporal's window layout), got {tuple(x.shape)}")
        if x.dtype != self.param_dtype:
            raise TypeError(f"x must have the layer's dtype {self.param_dtype}, got {x.dtype}")
        return x

    def forward(self, x, graph=None, H=None):
        check_graph(self, graph)
        x = self._check_window(x, graph)
        H = self.initial_state(x, H)
        P, N, F = self.periods, x.shape[0], self.out_channels
        base = self.base_tgcn
        base.reset()                               # this window's P steps are its whole stack
        Xs = ops.periods_first(x)                  # (P, N, F_in): period k is the contiguous block Xs[k]
        Hs = ops.zero_(empty((P, N, F), x.dtype, like=x))            # the P states, stacked for the weighted sum
        for k in range(P):
            S_k = Hs[k - 1] if (self.recurrent_periods and k > 0) else H
            ops.add_(Hs[k], base.forward(Xs[k], graph, S_k))
        probs = ops.row_softmax(self.params["attention"].reshape(1, P))          # (1, P)
        H_accum = ops.matmul(probs, Hs.reshape(P, N * F)).reshape(N, F)         # sum_k p_k H_k
        self._push((probs, Hs))
        return H_accum

    def backward(self, grad_out):
        probs, Hs = self._pop()
        P, N, F = Hs.shape
        base = self.base_tgcn
        if base.saved_steps != P:
            raise BackwardBeforeForward(
                f"A3TGCN.backward: the base TGCN holds {base.saved_steps} of the window's {P} periods -- a forward "
                f"in eval mode keeps one; call train() before a forward that is to be differentiated")
        base.needs_input_grad = self.needs_input_grad
        G = grad_out.reshape(1, N * F)
        g = ops.matmul_nt(G, Hs.reshape(P, N * F))                               # g_k = <G, H_k>: (1, P)
        ops.add_(self.grads["attention"].reshape(1, P), ops.row_softmax_backward(g, probs))
        dHs = ops.matmul_tn(probs, G).reshape(P, N, F)                           # dH_k = p_k G
        dXs = ops.zero_(empty((P, N, self.in_channels), grad_out.dtype, like=grad_out)) \
            if self.needs_input_grad else None
        dH = None
        for k in reversed(range(P)):
            dS = dHs[k]
            if self.recurrent_periods and dH is not None:
                ops.add_(dS, dH)                   # H_k also feeds period k + 1
            dX_k, dH_prev = base.backward(dS)
            if dXs is not None:
                ops.add_(dXs[k], dX_k)
            dH = dH_prev if (self.recurrent_periods or dH is None) else ops.add_(dH, dH_prev)
        return (None if dXs is None else ops.periods_last(dXs)), dH
