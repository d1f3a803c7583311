"""Gradient-check cases of metapath2vec++ (derivations/metapath2vec.md), in float64.

A random heterogeneous graph (3 node types, an isolated node, a repeated edge), metapath walks on it
(0-1-2-1-0), skip-gram pairs from the walks and K heterogeneous negatives per pair drawn from the
context's type (``TypedNoise``), plus hand-made pairs with a negative repeated within the pair and a
negative equal to its context (masked). Checked against central differences:

* ``HeteroSkipGramLoss`` through two ``Embedding`` tables (the whole W_in and W_out; rows no pair
  touches must come out exactly 0);
* ``TypeSoftmaxLoss`` (the exact type-normalised softmax, and the softmax over all nodes): dz_u and
  the whole W_out; with typed=True the rows of W_out outside the contexts' types must be exactly 0.
"""
import numpy as np

from ..embed.alias import Stream, seed_key
from ..embed.metapath2vec import HeteroSkipGramLoss, TypedNoise, TypeSoftmaxLoss
from ..embed.metapath_walks import metapath_walks
from ..embed.walks import walk_lengths
from ..graph import Graph
from ..nn.embedding import Embedding
from . import Row, numerical_gradient, relative_error, roundoff_floor
from .registry import case

D, K = 4, 3
CASE = "metapath2vec++ negative sampling"
CASE_SOFTMAX = "metapath2vec++ type-normalised softmax"


def hetero_test_graph(seed=0):
    """(graph, node_type): 13 nodes of types 0 (4), 1 (5), 2 (4); edges only between 0-1 and 1-2, both directions,
    a repeated edge, node 12 (type 2) isolated."""
    rng = np.random.default_rng(seed)
    node_type = np.array([0] * 4 + [1] * 5 + [2] * 4)
    a = rng.integers(0, 4, 8)
    p = rng.integers(4, 9, 8)
    c = rng.integers(9, 12, 6)
    p2 = rng.integers(4, 9, 6)
    src = np.concatenate([a, p2, [0]])
    dst = np.concatenate([p, c, [p[0] if a[0] == 0 else 4]])      # one repeated (or extra) author-paper edge
    ei = np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])])
    return Graph.from_edge_index(ei, num_nodes=13), node_type


def pairs_and_targets(seed=0):
    """(centres (B,), targets (B, K + 1), node_type): pairs of window 2 from 0-1-2-1-0 walks, typed negatives."""
    graph, node_type = hetero_test_graph(seed)
    walks = metapath_walks(graph, node_type, (0, 1, 2, 1, 0), walk_length=5, num_walks=1, seed=seed)
    deg = np.bincount(graph.dst_of_edge(), minlength=13).astype(float)
    noise = TypedNoise(deg ** 0.75, node_type)
    stream = Stream(seed_key(seed, 7), 0)
    centres, targets = [], []
    for w, n in zip(walks, walk_lengths(walks)):
        for i in range(n):
            for j in range(max(0, i - 2), min(n, i + 3)):
                if j != i and len(centres) < 8:
                    v = int(w[j])
                    centres.append(int(w[i]))
                    targets.append([v] + [noise.draw(stream, node_type[v]) for _ in range(K)])
    centres += [1, 5]
    targets += [[6, 7, 7, 4],            # a negative repeated within the pair
                [10, 10, 9, 11]]         # a negative equal to its context: masked
    return np.array(centres), np.array(targets), node_type


def ns_rows():
    U, TG, node_type = pairs_and_targets()
    N = node_type.size
    emb_in = Embedding(N, D, init="normal", seed=1, dtype=np.float64)
    emb_out = Embedding(N, D, init="normal", seed=2, dtype=np.float64)
    emb_in.params["weight"][:] *= 0.7
    emb_out.params["weight"][:] *= 0.7
    mask = TG != TG[:, :1]
    loss_fn = HeteroSkipGramLoss()

    def loss():
        return loss_fn.forward(emb_in.forward(U), emb_out.forward(TG), mask, node_type[TG])

    value = loss()
    emb_in.zero_grad()
    emb_out.zero_grad()
    dz_u, dz_ctx = loss_fn.backward()
    emb_in.backward(dz_u)
    emb_out.backward(dz_ctx)
    floor = roundoff_floor(value)
    rows = []
    for name, emb in (("W_in", emb_in), ("W_out", emb_out)):
        analytic = emb.grads["weight"].to_dense()
        numeric = numerical_gradient(loss, emb.params["weight"])
        err = relative_error(analytic, numeric, floor)
        touched = np.zeros(N, bool)
        touched[emb.grads["weight"].touched_rows] = True
        if not (np.all(numeric[~touched] == 0.0) and np.all(analytic[~touched] == 0.0)):
            err = max(err, 1.0)
        rows.append(Row(CASE, f"{name} (touched rows {np.flatnonzero(touched).tolist()})",
                        emb.params["weight"].shape, err, err < 1e-6))
    return rows


def softmax_rows():
    U, TG, node_type = pairs_and_targets(1)
    keep = node_type[TG[:, 0]] != 2                      # no context of type 2: its rows of W_out get nothing
    U, ctx = U[keep], TG[keep, 0]
    N = node_type.size
    rng = np.random.default_rng(3)
    rows = []
    for typed in (True, False):
        z_u = 0.7 * rng.standard_normal((U.size, D))
        W_out = 0.7 * rng.standard_normal((N, D))
        loss_fn = TypeSoftmaxLoss(typed=typed)

        def loss():
            return loss_fn.forward(z_u, W_out, ctx, node_type)

        value = loss()
        dz_u, dW_out = loss_fn.backward()
        floor = roundoff_floor(value)
        label = "typed (metapath2vec++)" if typed else "all nodes (metapath2vec)"
        for name, analytic, theta in (("z_u", dz_u, z_u), ("W_out", dW_out, W_out)):
            numeric = numerical_gradient(loss, theta)
            err = relative_error(analytic, numeric, floor)
            if typed and name == "W_out":
                outside = ~np.isin(node_type, node_type[ctx])
                if outside.any() and not (np.all(analytic[outside] == 0) and np.all(numeric[outside] == 0)):
                    err = max(err, 1.0)                  # the typed softmax must not reach other types
            rows.append(Row(CASE_SOFTMAX, f"{name}, {label}", theta.shape, err, err < 1e-6))
    return rows


@case(CASE)
def metapath2vecpp_ns_case():
    return ns_rows()


@case(CASE_SOFTMAX)
def metapath2vecpp_softmax_case():
    return softmax_rows()
