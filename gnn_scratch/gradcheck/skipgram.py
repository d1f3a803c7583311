"""Gradient-check case of skip-gram with negative sampling (derivations/skipgram.md), in float64.

L = SkipGramLoss(W_in[u], W_out[targets], mask) through two ``Embedding`` tables with row-sparse
gradients; the analytic gradients (``SparseRowGrad.to_dense()``) of both whole tables are compared
with central differences, so rows that no pair touches must come out exactly 0. The pairs include
a centre equal to its context (the same id in both tables), a negative repeated within a pair and
across pairs, and a negative equal to its context (masked: it must contribute nothing).
"""
import numpy as np

from ..embed.skipgram import SkipGramLoss
from ..nn.embedding import Embedding
from . import Row, numerical_gradient, relative_error, roundoff_floor
from .registry import case

N, D, K = 9, 4, 3
U = np.array([0, 2, 5, 5, 3])
TARGETS = np.array([[1, 4, 4, 6],          # a negative repeated within the pair
                    [2, 2, 7, 0],          # a negative equal to the context: masked
                    [5, 1, 4, 2],          # centre = context (different tables)
                    [3, 0, 6, 6],
                    [7, 1, 2, 4]])         # rows 8 of both tables and some of W_in are never touched


def sgns_rows():
    emb_in = Embedding(N, D, init="normal", seed=1, dtype=np.float64)
    emb_out = Embedding(N, D, init="normal", seed=2, dtype=np.float64)
    emb_in.params["weight"][:] *= 0.7
    emb_out.params["weight"][:] *= 0.7
    mask = TARGETS != TARGETS[:, :1]
    loss_fn = SkipGramLoss()

    def loss():
        return loss_fn.forward(emb_in.forward(U), emb_out.forward(TARGETS), mask)

    value = loss()
    emb_in.zero_grad()
    emb_out.zero_grad()
    dz_u, dz_ctx = loss_fn.backward()
    emb_in.backward(dz_u)
    emb_out.backward(dz_ctx)
    floor = roundoff_floor(value)                   # S = |L|: a sum of non-negative terms
    rows = []
    for name, emb in (("W_in", emb_in), ("W_out", emb_out)):
        analytic = emb.grads["weight"].to_dense()
        numeric = numerical_gradient(loss, emb.params["weight"])
        err = relative_error(analytic, numeric, floor)
        touched = np.zeros(N, bool)
        touched[emb.grads["weight"].touched_rows] = True
        exact_zero = bool(np.all(numeric[~touched] == 0.0))   # untouched rows: no gradient, and none claimed
        if not exact_zero:
            err = max(err, 1.0)                                 # a gradient leaking into an untouched row fails
        rows.append(Row("skip-gram negative sampling", f"{name} (touched rows {np.flatnonzero(touched).tolist()})",
                        emb.params["weight"].shape, err, err < 1e-6))
    return rows


@case("skip-gram negative sampling")
def skipgram_case():
    return sgns_rows()
