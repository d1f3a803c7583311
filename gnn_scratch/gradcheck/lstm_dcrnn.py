"""Gradient checks of GConvLSTM, DConv and DCRNN (derivations/gconv_lstm.md, derivations/dcrnn.md).

The cells through time (``recurrent.check_sequence``: every parameter, every step's input, every initial state,
four steps, full and truncated BPTT); DConv alone (``check_module``: both product orders, K = 1 .. 4,
weighted, a graph whose zero-weight edges leave degrees of 0, and the column-block input DCRNN uses). All in
float64 on the fixture graphs (an isolated node, a self-loop, a repeated edge; directed).
"""
import numpy as np

from ..graph import Graph
from ..nn.conv.dconv import DConv
from ..nn.recurrent import DCRNN, GConvLSTM
from . import check_function, check_module, random_test_graph
from .recurrent import check_sequence
from .registry import case

F64 = np.float64
N = 8


def _sequence(seed, T, f):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((N, f)) for _ in range(T)]


def _state(seed, f, k=0):
    return 0.5 * np.random.default_rng((seed, k)).standard_normal((N, f))


def _weighted(seed):
    """The fixture graph of ``seed`` with weights in [0.5, 2)."""
    g = random_test_graph(seed)
    w = np.random.default_rng(seed + 100).uniform(0.5, 2.0, g.num_edges)
    return Graph.from_csr(g.indptr, g.indices, w, num_src=g.num_src)


def _random_biases(cell, seed):
    """Non-zero biases (they start at 0), so that every gate sits away from sigma(0) as after training."""
    rng = np.random.default_rng(seed)
    for _, m in cell.modules():
        for name, p in m.params.items():
            if name.startswith("b"):
                p[...] = 0.3 * rng.standard_normal(p.shape)
    return cell


@case("GConvLSTM through time")
def gconv_lstm():
    rows = []
    for K, norm, weighted in ((1, "sym", False), (2, None, True), (3, "rw", False)):
        g = _weighted(K) if weighted else random_test_graph(K)
        cell = _random_biases(GConvLSTM(2, 2, K=K, normalization=norm, seed=K, dtype=F64), K)
        kw = {"lambda_max": 3.0} if norm is None else {}
        rows += check_sequence(f"GConvLSTM K={K} {norm}{' weighted' if weighted else ''} (4 steps)", cell,
                               _sequence(K, 4, 2), g, (_state(K, 2, 0), _state(K, 2, 1)), seed=K, **kw)
    cell = _random_biases(GConvLSTM(2, 2, K=2, seed=9, dtype=F64), 9)
    rows += check_sequence("GConvLSTM K=2 truncated bptt=2 (4 steps)", cell, _sequence(9, 4, 2), random_test_graph(9),
                           (_state(9, 2, 0), _state(9, 2, 1)), seed=9, bptt=2)
    return rows


@case("DCRNN through time")
def dcrnn():
    rows = []
    for K, weighted in ((1, False), (2, True), (3, False)):
        g = _weighted(K) if weighted else random_test_graph(K)
        cell = _random_biases(DCRNN(2, 2, K=K, seed=K, dtype=F64), K)
        rows += check_sequence(f"DCRNN K={K}{' weighted' if weighted else ''} (4 steps)", cell, _sequence(K, 4, 2), g,
                               (_state(K, 2),), seed=K)
    cell = _random_biases(DCRNN(2, 2, K=3, seed=7, dtype=F64), 7)
    rows += check_sequence("DCRNN K=3 weighted truncated bptt=2 (4 steps)", cell, _sequence(7, 4, 2), _weighted(7),
                           (_state(7, 2),), seed=7, bptt=2)
    return rows


def _zero_degree_graph():
    """Edges of weight 0 leave node 1 with d_out = 0 and node 5 with d_in = 0 although both have edges; self-loops,
    the repeated edge 0 -> 1, node 7 isolated."""
    src = np.array([0, 1, 2, 3, 4, 5, 1, 6, 2, 0, 3, 0])
    dst = np.array([1, 5, 3, 2, 4, 6, 2, 6, 2, 2, 0, 1])
    w = np.array([1.0, 0.0, 0.7, 1.5, 2.0, 1.2, 0.0, 0.8, 1.1, 0.9, 1.3, 0.4])
    return Graph.from_edge_index(np.stack([src, dst]), num_nodes=N, edge_weight=w)


@case("DConv")
def dconv():
    rows = []
    rng = np.random.default_rng(0)
    for K in (1, 2, 3, 4):
        for (fin, fout), weighted in (((3, 2), False), ((2, 3), True)):   # transform first, propagate first
            g = _weighted(K) if weighted else random_test_graph(K)
            conv = _random_biases(DConv(fin, fout, K, seed=K, dtype=F64), K)
            rows += check_module(f"DConv K={K} {fin}->{fout}{' weighted' if weighted else ''}", conv,
                                 rng.standard_normal((N, fin)), g, seed=K)
    conv = _random_biases(DConv(3, 2, 3, seed=5, dtype=F64), 5)
    rows += check_module("DConv K=3 zero degrees", conv, rng.standard_normal((N, 3)), _zero_degree_graph(), seed=5)

    # the column blocks of DCRNN ([X ‖ H] never formed), in both orders
    for fout in (2, 6):
        conv = _random_biases(DConv(5, fout, 3, seed=fout, dtype=F64), fout)
        g = _weighted(fout)

        def forward(X, H):
            return conv.forward((X, H), g)

        def backward(G, X, H):
            conv.forward((X, H), g)
            dX, dH = conv.backward(G)
            return {"X": dX, "H": dH}
        rows += check_function(f"DConv K=3 blocks (2 | 3)->{fout}", forward, backward,
                               {"X": rng.standard_normal((N, 2)), "H": rng.standard_normal((N, 3))}, seed=fout)
    return rows
