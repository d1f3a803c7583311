"""An embedding table with row-sparse gradients: forward = gather, backward = the touched rows only.

    Y = W[ids]                       ids (...,) int, W (N, D), Y (..., D)
    dW[r] = sum_{k: ids_k = r} G[k]  for the touched rows r, 0 elsewhere

A shallow encoder (DeepWalk, node2vec, LINE) reads a few rows of an N x D table per step, so its
gradient is zero outside those rows. With ``sparse=True`` (the default) ``grads["weight"]`` is a
``SparseRowGrad``: the touched rows and their gradient rows, appended by every ``backward`` (the
``+=`` of the layer contract) and summed per row by ``coalesce``. ``optim.SparseSGD`` and
``optim.SparseAdam`` update those rows only: O(touched x D) a step instead of O(N x D).
With ``sparse=False`` the gradient is an ordinary dense (N, D) array (``np.add.at`` into it).
"""
import numpy as np

from . import checks
from .module import Module


class SparseRowGrad:
    """A gradient that is zero outside some rows: appended (rows, values) pairs, summed on ``coalesce``.

    shape (N, D) and dtype of the parameter. ``add(rows (R,) int, values (R, D))`` accumulates;
    ``coalesce()`` -> (rows (U,) int64 ascending and distinct, values (U, D)) with the values of a
    repeated row summed in the order they were added; ``to_dense()`` -> (N, D); ``clear()`` zeroes it.
    """

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._rows, self._values = [], []

    def add(self, rows, values):
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        values = np.asarray(values).reshape(rows.size, self.shape[1])
        if values.dtype != self.dtype:
            raise TypeError(f"gradient values must have dtype {self.dtype}, got {values.dtype}")
        self._rows.append(rows)
        self._values.append(values)

    def coalesce(self):
        if not self._rows:
            return np.empty(0, np.int64), np.empty((0, self.shape[1]), self.dtype)
        rows, values = np.concatenate(self._rows), np.concatenate(self._values)
        uniq, inverse = np.unique(rows, return_inverse=True)
        summed = np.zeros((uniq.size, self.shape[1]), dtype=self.dtype)
        np.add.at(summed, inverse, values)                  # in the order added: repeated rows sum
        self._rows, self._values = [uniq], [summed]
        return uniq, summed

    def to_dense(self):
        rows, values = self.coalesce()
        out = np.zeros(self.shape, dtype=self.dtype)
        out[rows] = values
        return out

    def clear(self):
        self._rows, self._values = [], []

    @property
    def touched_rows(self):
        return self.coalesce()[0]


class Embedding(Module):
    """A lookup table W (num_embeddings, embedding_dim): ``forward(ids)`` = W[ids], with row-sparse gradients.

    The shallow encoder of DeepWalk (Perozzi et al. 2014), node2vec (Grover & Leskovec 2016), LINE
    (Tang et al. 2015), as ``torch.nn.Embedding(sparse=True)``.
    init: "uniform" -- U[-0.5/D, 0.5/D), word2vec's input vectors (syn0); "zeros" -- word2vec's
    output vectors (syn1neg); "normal" -- N(0, 1) like torch. seed: int or tuple; dtype float32/64.
    Shapes: ids (...,) int in [0, num_embeddings) -> (..., embedding_dim). ``backward(G)`` with G
    (..., embedding_dim) adds into ``grads["weight"]`` and returns None (ids have no gradient).
    Raises TypeError / ValueError for bad sizes, an unknown init, non-integer or out-of-range ids.
    A sparse Embedding stays on the host (``check_device_support`` refuses a move).
    """

    INITS = ("uniform", "zeros", "normal")

    def __init__(self, num_embeddings, embedding_dim, sparse=True, init="uniform", seed=0, dtype=np.float32):
        super().__init__()
        self.num_embeddings = checks.positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = checks.positive_int("embedding_dim", embedding_dim)
        dtype = checks.float_dtype(dtype)
        if init not in self.INITS:
            raise ValueError(f"init must be one of {self.INITS}, got {init!r}")
        shape = (self.num_embeddings, self.embedding_dim)
        rng = np.random.default_rng(seed)
        if init == "uniform":
            W = ((rng.random(shape) - 0.5) / self.embedding_dim).astype(dtype)
        elif init == "zeros":
            W = np.zeros(shape, dtype=dtype)
        else:
            W = rng.standard_normal(shape).astype(dtype)
        self.sparse = bool(sparse)
        self.add_param("weight", W)
        if self.sparse:
            self.grads["weight"] = SparseRowGrad(shape, dtype)

    def forward(self, ids, graph=None):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integer row ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids holds values in [{ids.min()}, {ids.max()}], expected [0, {self.num_embeddings})")
        self._cache = ids
        return self.params["weight"][ids]

    def backward(self, grad_out):
        ids = self._saved()
        G = grad_out.reshape(-1, self.embedding_dim)
        if self.sparse:
            self.grads["weight"].add(ids.reshape(-1), G)
        else:
            np.add.at(self.grads["weight"], ids.reshape(-1), G)
        return None

    def zero_grad(self):
        if self.sparse:
            self.grads["weight"].clear()
        else:
            super().zero_grad()

    def check_device_support(self):
        if self.sparse:
            raise ValueError("Embedding(sparse=True) has no device path: its row-sparse gradient lives on the host")
