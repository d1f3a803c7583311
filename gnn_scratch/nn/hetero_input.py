"""One input width for every node type: a Linear per featured type, a learned table per featureless one.

A heterogeneous graph's node types carry features of different widths (ACM: papers 1902 words,
authors their own bag of words, subjects none). A relational layer (RGCN) reads one matrix over
all N = Σ_t N_t nodes, so each type t is first brought to the same width F_out:

    H_t = X_t W_t + b_t          for a type with features X_t: (N_t, F_t); W_t, b_t ~ U(+-1/sqrt(F_t)) at the
                                 start, as torch.nn.Linear (PyG's per-type Linear) starts
    H_t = E_t                    for a featureless type: a learned table E_t (N_t, F_out)
    H   = [H_t1; H_t2; ...]      (N, F_out), stacked in node-type order

The table is the one-hot input of RGCN's entity classification (Schlichtkrull et al. 2018, section
5): one-hot rows times a weight matrix select the weight rows, so E_t is that matrix. Node-type order
is that of ``HeteroGraph.to_homogeneous()`` (PyG's), so H's rows are the homogeneous node ids.

Backward with G = dL/dH (derivations/linear.md for each Linear):
    dW_t = X_t^T G_t,   db_t = Σ_n G_t[n],   dE_t = G_t,   dX_t = G_t W_t^T (dense X_t only)
where G_t is type t's block of rows of G. Returns {type: dX_t or None}.
"""
from __future__ import annotations

import numpy as np

from .checks import float_dtype, positive_int
from .init import as_rng, glorot
from .linear import Linear
from .module import Module


class HeteroInput(Module):
    """H (N, F_out) from features of every node type: ``Linear`` for featured types, a table for featureless ones.

    in_channels: {node type: F_t, or None for a type without features}, in node-type order.
    num_nodes:   {node type: N_t} (needed for the featureless types' tables).
    forward(x_dict) -> H (Σ N_t, F_out); x_dict[t]: (N_t, F_t) float, dense or scipy.sparse, for every
    featured type (a featureless type's entry, if any, is ignored). backward(G) -> {type: dX_t or None}.
    Raises KeyError-free ValueErrors naming the type for a missing feature matrix or a wrong row count.
    """

    def __init__(self, in_channels, num_nodes, out_channels, seed=0, dtype=np.float32):
        super().__init__()
        out_channels = positive_int("out_channels", out_channels)
        dtype = float_dtype(dtype)
        if not isinstance(in_channels, dict) or not in_channels:
            raise TypeError(f"in_channels must be a non-empty dict {{node type: width or None}}, got {in_channels!r}")
        missing = [t for t in in_channels if t not in num_nodes]
        if missing:
            raise ValueError(f"num_nodes has no count for node type(s) {missing}")
        self.node_types = list(in_channels)
        self.in_channels = {t: (None if f is None else positive_int(f"in_channels[{t!r}]", f))
                            for t, f in in_channels.items()}
        self.num_nodes = {t: positive_int(f"num_nodes[{t!r}]", num_nodes[t]) for t in self.node_types}
        self.out_channels = out_channels
        self.dtype = dtype
        rng = as_rng(seed)
        self._linears = {}
        for t in self.node_types:
            if self.in_channels[t] is None:
                self.add_param(f"emb_{t}", glorot(rng, self.num_nodes[t], out_channels, dtype=dtype))
            else:
                lin = Linear(self.in_channels[t], out_channels, seed=rng, dtype=dtype)
                # torch.nn.Linear's start, W, b ~ U(+-1/sqrt(F_t)) (what PyG's per-type Linear gets), not Glorot:
                # on DBLP's 4231-word papers Glorot's is 2.4x wider, and RGCN trained 1.6 points below PyG's twin
                bound = 1.0 / np.sqrt(self.in_channels[t])
                lin.params["W"][...] = rng.uniform(-bound, bound, lin.params["W"].shape)
                lin.params["b"][...] = rng.uniform(-bound, bound, lin.params["b"].shape)
                setattr(self, f"lin_{t}", lin)
                self._linears[t] = lin
        offsets = np.cumsum([0] + [self.num_nodes[t] for t in self.node_types])
        self.offset = {t: (int(offsets[k]), int(offsets[k + 1])) for k, t in enumerate(self.node_types)}

    def forward(self, x_dict, graph=None):
        H = np.empty((sum(self.num_nodes.values()), self.out_channels), dtype=self.dtype)
        for t in self.node_types:
            lo, hi = self.offset[t]
            if t in self._linears:
                if x_dict is None or x_dict.get(t) is None:
                    raise ValueError(f"x_dict has no features for node type {t!r}, which was built with "
                                     f"{self.in_channels[t]} input channels")
                x = x_dict[t]
                if x.shape[0] != hi - lo:
                    raise ValueError(f"x_dict[{t!r}] must have {hi - lo} rows (one per {t} node), got {x.shape[0]}")
                H[lo:hi] = self._linears[t].forward(x)
            else:
                H[lo:hi] = self.params[f"emb_{t}"]
        self._cache = True
        return H

    def backward(self, grad_out):
        self._saved()
        dx = {}
        for t in self.node_types:
            lo, hi = self.offset[t]
            G = grad_out[lo:hi]
            if t in self._linears:
                dx[t] = self._linears[t].backward(np.ascontiguousarray(G))
            else:
                self.grads[f"emb_{t}"] += G
                dx[t] = None
        return dx
