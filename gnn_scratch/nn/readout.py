"""Graph-level readouts: one row per graph of a ``GraphBatch`` from its nodes' rows (derivations/pooling.md).

Xu et al. (2019, "How Powerful are Graph Neural Networks?") read a graph out by summing its node
features (an injective readout of multisets, where mean and max are not); PyG's
``global_add_pool`` / ``global_mean_pool`` / ``global_max_pool``. Each module is
``forward(x, batch) -> (B, F)`` and ``backward(G) -> dX (N, F)``; it has no parameters.

Shapes: x (N, F) float32 or float64, dense and finite, one row per node of the batch; batch a
``GraphBatch`` of B graphs (every graph has at least one node); out and G (B, F).
Errors: ValueError without a batch or for x of the wrong shape or with NaN / Inf; TypeError for a
batch that is not a ``GraphBatch`` or an x that is not a float array.
"""
from .. import ops
from ..device import issparse
from ..graph import GraphBatch
from .checks import check_features
from .module import Module


class _Readout(Module):
    def _checked(self, x, batch):
        name = type(self).__name__
        if batch is None:
            raise ValueError(f"{name}.forward needs the batch: forward(x, batch)")
        if not isinstance(batch, GraphBatch):
            raise TypeError(f"batch must be a gnn_scratch GraphBatch (graph_ptr marks each graph's nodes), "
                            f"got {type(batch).__name__}")
        x = check_features(x, graph=batch)                          # (N, F), float, finite
        if issparse(x):
            raise TypeError(f"{name} needs dense x, got a sparse matrix")
        return x


class GlobalAddPool(_Readout):
    """out[k] = Σ_{n ∈ graph k} x[n];  backward: dX[n] = G[k] for every node n of graph k."""

    def forward(self, x, batch=None):
        x = self._checked(x, batch)
        self._cache = batch
        return ops.global_add_pool(x, batch)

    def backward(self, grad_out):
        return ops.global_add_pool_backward(self._saved(), grad_out)


class GlobalMeanPool(_Readout):
    """out[k] = (1/n_k) Σ_{n ∈ graph k} x[n];  backward: dX[n] = G[k] / n_k."""

    def forward(self, x, batch=None):
        x = self._checked(x, batch)
        self._cache = batch
        return ops.global_mean_pool(x, batch)

    def backward(self, grad_out):
        return ops.global_mean_pool_backward(self._saved(), grad_out)


class GlobalMaxPool(_Readout):
    """out[k, f] = max_{n ∈ graph k} x[n, f];  backward: dX[n, f] = G[k, f] if n won (k, f), else 0.

    Tie rule: the first node of the graph (lowest index) attaining the maximum wins and alone gets
    the gradient (PyG 2.8 splits a tie's gradient evenly; continuous inputs have no ties).
    """

    def forward(self, x, batch=None):
        x = self._checked(x, batch)
        out, argmax = ops.global_max_pool(x, batch, return_argmax=True)
        self._cache = (batch, argmax)
        return out

    def backward(self, grad_out):
        batch, argmax = self._saved()
        return ops.global_max_pool_backward(batch, argmax, grad_out)
