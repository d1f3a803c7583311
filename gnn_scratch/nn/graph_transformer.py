"""Graph transformer layers: GT (Dwivedi & Bresson 2020) and GPS (Rampasek et al. 2022), composed of existing layers.

Derivation: derivations/graph_transformer.md. Both are compositions whose backward is the chain
rule through their parts in reverse, with the gradients of a tensor used on several paths summed
(the residuals; GPS's input feeds the local convolution, the global attention and two residuals).
"""
import numpy as np

from .. import ops
from .activations import ReLU
from .attention import MultiheadAttention
from .checks import check_features, float_dtype, positive_int, probability
from .conv.transformer_conv import TransformerConv
from .dropout import Dropout
from .init import as_rng
from .layer_norm import LayerNorm
from .linear import Linear
from .module import Module
from .norm import BatchNorm1d
from .sequential import Sequential

NORMS = ("batch_norm", "layer_norm", None)


def _norm(kind, channels, dtype):
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
    if kind == "batch_norm":
        return BatchNorm1d(channels, dtype=dtype)
    if kind == "layer_norm":
        return LayerNorm(channels, dtype=dtype)
    return None


def _apply(module, x, graph):
    return x if module is None else module.forward(x, graph)


def _back(module, g):
    return g if module is None else module.backward(g)


def _sum(a, b):
    """a + b into a (a is a fresh array this layer owns); returns a."""
    return ops.add_(a, b)


class GTLayer(Module):
    """The Graph Transformer layer of Dwivedi & Bresson (2020), "A Generalization of Transformer Networks to Graphs".

    With h (N, C) and attention restricted to the edges j -> i of the graph (no edge features):
        h1 = Norm1(h + O(Dropout(concat_k sum_{j in N(i)} softmax_j(<Q^k h_i, K^k h_j> / sqrt(d)) V^k h_j)))
        out = Norm2(h1 + W_2 Dropout(ReLU(W_1 h1 + b_1)) + b_2)       (FFN of width 2C)
    ``residual=False`` drops both skips; ``norm`` is "batch_norm" (the paper's choice for its results),
    "layer_norm" or None. The attention is a ``TransformerConv(C, C / heads, heads, concat=True,
    root_weight=False, bias=qkv_bias)`` (the authors' Q, K, V have no bias: ``qkv_bias=False``);
    O is ``Linear(C, C)``. The authors' code clamps the scores to [-5, 5] before the exponential;
    this layer does not (the paper's softmax, whose gradient the clamp would cut).

    Children (names used by ``named_parameters``): ``attn`` (TransformerConv), ``O``, ``norm1``,
    ``ffn1``, ``ffn2``, ``norm2``, ``drop_attn``, ``drop_ffn``.
    Shapes: x (N, C) dense float; the graph square (N, N) (a ``GraphBatch`` too); out (N, C).
    Errors: ValueError for channels not divisible by heads, an unknown norm, a bad dropout.
    """

    needs_input_grad = True

    def __init__(self, channels, heads=1, dropout=0.0, norm="batch_norm", residual=True, qkv_bias=False, seed=0,
                 dtype=np.float32):
        super().__init__()
        C, H = positive_int("channels", channels), positive_int("heads", heads)
        if C % H:
            raise ValueError(f"channels ({C}) must be divisible by heads ({H})")
        self.channels, self.heads, self.residual = C, H, bool(residual)
        self.dropout = probability("dropout", dropout)
        dtype = float_dtype(dtype)
        rng = as_rng(seed)
        s = [int(v) for v in rng.integers(0, 2**31 - 1, size=6)]
        self.attn = TransformerConv(C, C // H, heads=H, concat=True, root_weight=False, bias=bool(qkv_bias),
                                    seed=s[0], dtype=dtype)
        self.drop_attn = Dropout(self.dropout, seed=s[1])
        self.O = Linear(C, C, seed=s[2], dtype=dtype)
        self.norm1 = _norm(norm, C, dtype)
        self.ffn1 = Linear(C, 2 * C, seed=s[3], dtype=dtype)
        self.act = ReLU()
        self.drop_ffn = Dropout(self.dropout, seed=s[4])
        self.ffn2 = Linear(2 * C, C, seed=s[5], dtype=dtype)
        self.norm2 = _norm(norm, C, dtype)

    def forward(self, x, graph=None):
        x = check_features(x, num_cols=self.channels, dtype=self.O.params["W"].dtype)
        h = self.O.forward(self.drop_attn.forward(self.attn.forward(x, graph), graph), graph)
        if self.residual:
            h = _sum(h, x)
        h1 = _apply(self.norm1, h, graph)
        f = self.ffn2.forward(self.drop_ffn.forward(self.act.forward(self.ffn1.forward(h1, graph), graph), graph),
                              graph)
        if self.residual:
            f = _sum(f, h1)
        self._cache = True
        return _apply(self.norm2, f, graph)

    def backward(self, grad_out):
        self._saved()
        g = _back(self.norm2, grad_out)                                   # d(h1 + FFN(h1))
        dh1 = self.ffn1.backward(self.act.backward(self.drop_ffn.backward(self.ffn2.backward(g))))
        if self.residual:
            dh1 = ops.add_(dh1, g)                                        # the skip: h1 reaches f twice
        g = _back(self.norm1, dh1)                                        # d(x + O(...))
        dx = self.attn.backward(self.drop_attn.backward(self.O.backward(g)))
        if self.residual:
            dx = ops.add_(dx, g)
        return dx


class GPSLayer(Module):
    """One layer of GraphGPS (Rampasek et al. 2022, "Recipe for a General, Powerful, Scalable Graph Transformer").

    PyG's ``GPSConv(channels, conv, heads=1, dropout=0.0, act="relu", norm="batch_norm",
    attn_type="multihead")``, same computation:
        h_M = Norm1(Dropout(conv(x, graph)) + x)                 (local message passing, any of our convs)
        h_T = Norm2(Dropout(MHA(x, graph)) + x)                  (global attention within each graph)
        h   = h_M + h_T
        out = Norm3(h + MLP(h)),  MLP = Linear(C, 2C), ReLU, Dropout, Linear(2C, C), Dropout
    ``conv`` is a Module mapping (N, C) to (N, C) with forward(x, graph) (e.g. ``GINConv``,
    ``GCNConv``), or None (no local branch: h = h_T). MHA is ``MultiheadAttention(C, heads,
    dropout=attn_dropout)`` over the graphs of a ``GraphBatch`` (PyG's ``to_dense_batch`` + key
    padding mask, without the padding). ``norm``: "batch_norm" (PyG's default), "layer_norm"
    (torch's per-node LayerNorm) or None.

    Children: ``conv``, ``attn``, ``norm1``, ``norm2``, ``norm3``, ``mlp`` (``lin1``, ``act``,
    ``drop1``, ``lin2``, ``drop2``), ``drop_local``, ``drop_attn``.
    Shapes: x (N, C) dense float; graph a ``GraphBatch`` (or one ``Graph``); out (N, C).
    Errors: ValueError for channels not divisible by heads, an unknown norm, a bad dropout;
    TypeError for a conv that is not a Module.
    """

    needs_input_grad = True

    def __init__(self, channels, conv, heads=1, dropout=0.0, attn_dropout=0.0, norm="batch_norm", seed=0,
                 dtype=np.float32):
        super().__init__()
        C, H = positive_int("channels", channels), positive_int("heads", heads)
        if conv is not None and not isinstance(conv, Module):
            raise TypeError(f"conv must be a gnn_scratch Module (e.g. GINConv) or None, got {type(conv).__name__}")
        self.channels, self.heads = C, H
        self.dropout = probability("dropout", dropout)
        dtype = float_dtype(dtype)
        rng = as_rng(seed)
        s = [int(v) for v in rng.integers(0, 2**31 - 1, size=7)]
        self.conv = conv
        self.drop_local = Dropout(self.dropout, seed=s[0])
        self.attn = MultiheadAttention(C, H, dropout=attn_dropout, seed=s[1], dtype=dtype)
        self.drop_attn = Dropout(self.dropout, seed=s[2])
        self.mlp = Sequential(lin1=Linear(C, 2 * C, seed=s[3], dtype=dtype), act=ReLU(),
                              drop1=Dropout(self.dropout, seed=s[4]), lin2=Linear(2 * C, C, seed=s[5], dtype=dtype),
                              drop2=Dropout(self.dropout, seed=s[6]))
        self.norm1 = _norm(norm, C, dtype) if conv is not None else None
        self.norm2 = _norm(norm, C, dtype)
        self.norm3 = _norm(norm, C, dtype)

    def forward(self, x, graph=None):
        x = check_features(x, num_cols=self.channels, dtype=self.attn.params["in_proj_weight"].dtype)
        h = _sum(self.drop_attn.forward(self.attn.forward(x, graph), graph), x)   # a fresh array (attn's output)
        h = _apply(self.norm2, h, graph)
        if self.conv is not None:
            hm = self.drop_local.forward(self.conv.forward(x, graph), graph)
            hm = _apply(self.norm1, _sum(ops.scale(hm, 1.0), x), graph)              # a copy: dropout may pass it through
            h = _sum(h, hm)                                                          # h is nobody's cache
        out = _sum(self.mlp.forward(h, graph), h)
        self._cache = True
        return _apply(self.norm3, out, graph)

    def backward(self, grad_out):
        self._saved()
        g = _back(self.norm3, grad_out)                                   # d(h + MLP(h))
        dh = ops.add_(self.mlp.backward(g), g)
        gt = _back(self.norm2, dh)                                        # h_T = Norm2(x + Dropout(MHA(x)))
        dx = ops.add_(self.attn.backward(self.drop_attn.backward(gt)), gt)
        if self.conv is not None:
            gm = _back(self.norm1, dh)                                    # h_M = Norm1(x + Dropout(conv(x)))
            ops.add_(dx, self.conv.backward(self.drop_local.backward(gm)))
            ops.add_(dx, gm)
        return dx
