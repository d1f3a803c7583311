"""Gradient-check cases of the foundation: dense layers, activations, dropout, loss, kernels, GCN."""
import numpy as np

from .. import ops
from ..models import GCN
from ..nn import ELU, Dropout, GCNConv, LeakyReLU, Linear, MSELoss, ReLU, Sequential, SoftmaxCrossEntropy
from . import check_function, check_model_loss, check_module, random_test_graph
from .registry import case

F64 = np.float64


def _x(seed, n, f):
    return np.random.default_rng(seed).standard_normal((n, f))


@case("Linear")
def linear():
    return check_module("Linear", Linear(4, 3, seed=1, dtype=F64), _x(0, 6, 4))


@case("activations")
def activations():
    x = _x(1, 6, 4)
    return (check_module("ReLU", ReLU(), x) + check_module("LeakyReLU(0.2)", LeakyReLU(0.2), x)
            + check_module("ELU", ELU(), x))


@case("Dropout")
def dropout():
    return check_module("Dropout(p=0.5)", Dropout(0.5, seed=3), _x(2, 6, 4))


@case("SoftmaxCrossEntropy")
def softmax_cross_entropy():
    Z, y = _x(3, 8, 4), np.random.default_rng(3).integers(0, 4, 8)
    mask = np.array([1, 1, 0, 1, 0, 1, 1, 0], dtype=bool)

    def forward(Z):
        return SoftmaxCrossEntropy().forward(Z, y, mask)

    def backward(G, Z):
        L = SoftmaxCrossEntropy()
        L.forward(Z, y, mask)
        return {"Z": G * L.backward()}
    return check_function("SoftmaxCrossEntropy", forward, backward, {"Z": Z})


@case("MSELoss")
def mse_loss():
    Y = _x(4, 7, 3)

    def forward(P):
        return MSELoss().forward(P, Y)

    def backward(G, P):
        L = MSELoss()
        L.forward(P, Y)
        return {"P": G * L.backward()}
    return check_function("MSELoss", forward, backward, {"P": _x(5, 7, 3)})


@case("aggregation kernels")
def aggregation_kernels():
    rows = []
    for label, g in (("square", random_test_graph(0)), ("bipartite", random_test_graph(1, 6, 14, num_src=9))):
        rng = np.random.default_rng(7)
        X = rng.standard_normal((g.num_src, 3))
        w = rng.uniform(0.5, 1.5, g.num_edges)
        rows += check_function(
            f"spmm_sum [{label}]", lambda X, w: ops.spmm(g, w, X),
            lambda G, X, w: {"X": ops.spmm_backward_X(g, w, G), "w": ops.spmm_backward_edge_val(g, X, G)},
            {"X": X, "w": w})
        rows += check_function(
            f"mean_aggregate [{label}]", lambda X: ops.mean_aggregate(g, X),
            lambda G, X: {"X": ops.mean_aggregate_backward(g, G)}, {"X": X.copy()})

        def max_backward(G, X):
            _, argmax = ops.max_aggregate(g, X)
            return {"X": ops.max_aggregate_backward(g, argmax, G)}
        rows += check_function(f"max_aggregate [{label}]", lambda X: ops.max_aggregate(g, X)[0], max_backward,
                               {"X": X.copy()})
        a_dst, a_src = rng.standard_normal((g.num_dst, 2)), rng.standard_normal((g.num_src, 2))

        def add_backward(G, a_dst, a_src):
            d, s = ops.sddmm_add_backward(g, G)
            return {"a_dst": d, "a_src": s}
        rows += check_function(f"sddmm_add [{label}]", lambda a_dst, a_src: ops.sddmm_add(g, a_dst, a_src),
                               add_backward, {"a_dst": a_dst, "a_src": a_src})
        A, B = rng.standard_normal((g.num_dst, 2, 3)), rng.standard_normal((g.num_src, 2, 3))

        def dot_backward(G, A, B):
            # s[e,h] = <A[i,h], B[j,h]>: dA[i,h] = sum_e G[e,h] B[j,h] (rows); dB[j,h] = sum_e G[e,h] A[i,h] (transpose)
            dA = np.stack([ops.spmm(g, G[:, h].copy(), B[:, h].copy()) for h in range(2)], axis=1)
            dB = np.stack([ops.spmm_backward_X(g, G[:, h].copy(), A[:, h].copy()) for h in range(2)], axis=1)
            return {"A": dA, "B": dB}
        rows += check_function(f"sddmm_dot [{label}]", lambda A, B: ops.sddmm_dot(g, A, B), dot_backward,
                               {"A": A, "B": B})
        s = rng.standard_normal((g.num_edges, 2))

        def softmax_backward(G, s):
            return {"s": ops.edge_softmax_backward(g, ops.edge_softmax(g, s), G)}
        rows += check_function(f"edge_softmax [{label}]", lambda s: ops.edge_softmax(g, s), softmax_backward,
                               {"s": s})
    return rows


@case("GCNConv")
def gcn_conv():
    g = random_test_graph(2)
    rows = check_module("GCNConv 4->3 (A(HW))", GCNConv(4, 3, seed=1, dtype=F64), _x(4, 8, 4), g)
    rows += check_module("GCNConv 3->5 ((AH)W)", GCNConv(3, 5, seed=2, dtype=F64), _x(5, 8, 3), g)
    weighted = type(g).from_edge_index(g.edge_index(), g.num_nodes,
                                       np.random.default_rng(0).uniform(0.5, 2.0, g.num_edges))
    rows += check_module("GCNConv weighted", GCNConv(4, 3, seed=3, dtype=F64), _x(6, 8, 4), weighted)
    return rows


@case("GCNConv + ReLU fused")
def gcn_conv_relu():
    """Sequential(GCNConv, ReLU) runs as GCNConv.forward(relu=True): in evaluation mode, order A(HW) with a bias,
    the bias and ReLU inside the SpMM (ops.spmm_bias) and the backward's mask rebuilt from the output; in
    training mode, and in the other order, the ReLU op after the layer. Both orders, both modes."""
    g = random_test_graph(2)
    rows = []
    for label, (F_in, F_out), seed in (("A(HW)", (4, 3), 11), ("(AH)W", (3, 5), 12)):
        for train in (True, False):
            conv = GCNConv(F_in, F_out, seed=seed, dtype=F64)
            conv.params["b"][:] = np.random.default_rng(seed).uniform(-0.5, 0.5, F_out)   # some rows cut, some not
            seq = Sequential(conv=conv, act=ReLU()).train(train)
            rows += check_module(f"GCNConv + ReLU {label} {'train' if train else 'eval'}", seq, _x(seed, 8, F_in), g)
    return rows


@case("GCN + loss")
def gcn_model():
    g = random_test_graph(3)
    rng = np.random.default_rng(4)
    y, mask = rng.integers(0, 3, 8), rng.random(8) < 0.6
    mask[0] = True
    model = GCN(5, 3, hidden_channels=4, dropout=0.5, seed=5, dtype="float64").train()
    return check_model_loss("GCN + loss (train mode)", model, SoftmaxCrossEntropy(), _x(7, 8, 5), g, y, mask)
