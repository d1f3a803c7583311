"""Gradient-check cases of PinSage (issue 18): PinSAGEConv (weighted / unweighted, square / bipartite blocks,
normalised or not), the two-layer PinSAGE model on importance blocks, and the max-margin loss."""
import numpy as np

from ..graph import Graph
from ..nn.conv.pinsage_conv import PinSAGEConv
from ..pinsage.loss import MaxMarginLoss
from ..pinsage.neighbourhoods import importance_blocks, importance_neighbourhoods
from ..pinsage.train import PinSAGE
from . import check_function, check_module, random_test_graph
from .registry import case

F64 = np.float64
MARGIN = 1e-3  # distance kept from ReLU and hinge kinks, far beyond the 1e-6 finite-difference step


def _importance_weights(g, seed):
    """The fixture graph with positive weights summing to 1 per non-empty row (importance-pooling alpha)."""
    w = np.random.default_rng(seed).uniform(0.2, 1.0, g.num_edges)
    row = g.dst_of_edge()
    rs = np.bincount(row, weights=w, minlength=g.num_dst)
    return Graph(g.indptr, g.indices, edge_weight=w / rs[row], num_src=g.num_src)


def _graphs():
    sq = random_test_graph(0)                                   # 8 nodes, isolated 7, self-loop, repeated edge
    bi = random_test_graph(1, 6, 14, num_src=9)                 # bipartite: 6 destinations among 9 sources
    return (("square, weighted", _importance_weights(sq, 3)), ("square, unweighted", sq),
            ("bipartite, weighted", _importance_weights(bi, 4)))


def _away_from_kinks(conv, g, seed):
    """A standard-normal x whose pre-activations r = xQ + q and p stay MARGIN away from 0."""
    for s in range(seed, seed + 500):
        x = np.random.default_rng(s).standard_normal((g.num_src, conv.in_channels))
        r = x @ conv.params["Q"] + conv.params["q"]
        m = np.maximum(r, 0)
        n = g.to_scipy() @ m
        p = x[:g.num_dst] @ conv.params["W"][:conv.in_channels] + n @ conv.params["W"][conv.in_channels:] \
            + conv.params["w"]
        if np.min(np.abs(r)) > MARGIN and np.min(np.abs(p)) > MARGIN and (np.maximum(p, 0).sum(1) > 0).all():
            return x
    raise RuntimeError("no input away from kinks in 500 draws")


@case("PinSAGEConv")
def pinsage_conv():
    rows = []
    for label, g in _graphs():
        for normalize in (True, False):
            conv = PinSAGEConv(3, 4, 5, normalize=normalize, seed=7, dtype=F64)
            rng = np.random.default_rng(8)
            conv.params["q"][:] = rng.uniform(-0.5, 0.5, 4)
            conv.params["w"][:] = rng.uniform(0.1, 0.6, 5)   # nonzero: isolated rows output ReLU(h W_self + w)
            rows += check_module(f"PinSAGEConv 3->4->5 [{label}{', normalize' if normalize else ''}]", conv,
                                 _away_from_kinks(conv, g, 20), g)
    return rows


@case("PinSAGE model (importance blocks)")
def pinsage_model():
    g = random_test_graph(5, 12, 40)
    nb = importance_neighbourhoods(g, num_walks=8, walk_length=3, k=3, seed=2)
    blocks, inp = importance_blocks(nb, np.array([0, 4, 11]), 2)   # 11 is isolated: empty rows
    model = PinSAGE(3, 4, 5, seed=6, dtype=F64)
    model.conv1.needs_input_grad = True
    for conv in (model.conv1, model.conv2):
        conv.params["q"][:] = 0.3
        conv.params["w"][:] = 0.2
    x = np.random.default_rng(9).standard_normal((inp.size, 3))
    return check_module("PinSAGE 2 layers [importance blocks, isolated seed]", model, x, blocks)


@case("max-margin ranking loss")
def max_margin():
    rng = np.random.default_rng(10)
    rows = []
    for label, hard_h, hw in (("shared negatives", 0, None), ("shared + hard negatives", 2, None),
                              ("shared + hard negatives, hard_weight 0.7", 2, 0.7)):
        for s in range(11, 200):
            Z = np.random.default_rng(s).standard_normal((9, 4)) * 0.5
            q, p = np.array([0, 1, 2, 2]), np.array([3, 1, 4, 0])     # (1, 1): a query that is its own positive
            neg = np.array([5, 6, 6, 3])                              # a repeated negative, a positive as negative
            hard = rng.integers(0, 9, (4, hard_h))
            L = MaxMarginLoss(margin=0.2, hard_weight=hw)
            L.forward(Z, q, p, neg, hard)
            H = np.concatenate([(Z[q] @ Z[neg].T).ravel(), np.einsum("bd,bhd->bh", Z[q], Z[hard]).ravel()])
            spos = np.einsum("bd,bd->b", Z[q], Z[p])
            args = np.concatenate([(Z[q] @ Z[neg].T - spos[:, None]).ravel(),
                                   (np.einsum("bd,bhd->bh", Z[q], Z[hard]) - spos[:, None]).ravel()]) + 0.2
            if np.min(np.abs(args)) > MARGIN and 0 < L.hit_fraction < 1 and H.size:
                break

        def forward(Z, q=q, p=p, neg=neg, hard=hard, hw=hw):
            return MaxMarginLoss(0.2, hw).forward(Z, q, p, neg, hard)

        def backward(G, Z, q=q, p=p, neg=neg, hard=hard, hw=hw):
            L = MaxMarginLoss(0.2, hw)
            L.forward(Z, q, p, neg, hard)
            return {"Z": G * L.backward()}
        rows += check_function(f"max-margin loss [{label}]", forward, backward, {"Z": Z})
    return rows
