"""Gradient checks of TGCN and A3TGCN (derivations/tgcn.md): every parameter, every input and the initial state,
through time, in float64 on the fixture graphs (an isolated node, a self-loop, a repeated edge)."""
import numpy as np

from ..graph import Graph
from ..nn.recurrent import A3TGCN, TGCN
from .. import ops
from . import check_function, random_test_graph
from .recurrent import check_sequence
from .registry import case

F64 = np.float64
N, F_IN, F_OUT = 8, 3, 4


def weighted_test_graph(seed=0):
    """``random_test_graph``'s edges with weights in [0.5, 2): the normalisation then reads the weights."""
    g = random_test_graph(seed)
    w = np.random.default_rng(100 + seed).uniform(0.5, 2.0, g.num_edges)
    return Graph.from_csr(g.indptr, g.indices, w, num_src=g.num_src)


def _sequence(seed, T, shape):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(T)]


def _state(seed, n=N, f=F_OUT):
    return 0.5 * np.random.default_rng(1000 + seed).standard_normal((n, f))


def tgcn_rows():
    g, gw = random_test_graph(0), weighted_test_graph(1)
    rows = []
    for tag, graph, kwargs, seed in (("", g, {}, 1),
                                     (" no self-loops", g, dict(add_self_loops=False), 2),
                                     (" improved, weighted graph", gw, dict(improved=True), 3),
                                     (" weighted graph", gw, {}, 4)):
        cell = TGCN(F_IN, F_OUT, seed=seed, dtype=F64, **kwargs)
        rows += check_sequence(f"TGCN{tag} (4 steps)", cell, _sequence(seed, 4, (N, F_IN)), graph, (_state(seed),),
                               seed=seed)
    cell = TGCN(F_IN, 5, seed=9, dtype=F64)
    rows += check_sequence("TGCN truncated bptt=2 (5 steps)", cell, _sequence(9, 5, (N, F_IN)), g,
                           (_state(9, f=5),), seed=9, bptt=2)
    return rows


def a3tgcn_rows():
    """One window (every parameter, the attention vector included, the window x and H), in PyG Temporal's form
    and the recurrent one; then two chained windows through ``Recurrent``, H carried from one to the next."""
    g, gw = random_test_graph(0), weighted_test_graph(2)
    rows = []
    for tag, graph, kwargs, seed in (("", g, {}, 11),
                                     (" recurrent_periods", g, dict(recurrent_periods=True), 12),
                                     (" improved, weighted graph", gw, dict(improved=True), 13)):
        cell = A3TGCN(F_IN, F_OUT, periods=4, seed=seed, dtype=F64, **kwargs)
        rows += check_sequence(f"A3TGCN{tag} (1 window of 4 periods)", cell, _sequence(seed, 1, (N, F_IN, 4)),
                               graph, (_state(seed),), seed=seed)
    for recurrent in (False, True):
        cell = A3TGCN(F_IN, F_OUT, periods=3, recurrent_periods=recurrent, seed=14, dtype=F64)
        rows += check_sequence(f"A3TGCN recurrent_periods={recurrent} (2 chained windows of 3 periods)", cell,
                               _sequence(14, 2, (N, F_IN, 3)), g, (_state(14),), seed=14)
    return rows


def temporal_ops_rows():
    """The ops of attention over time alone: the row softmax (an attention vector over 5 periods, and a
    (3, 4) block of rows) and the window transpose, checked against their backward ops."""
    rng = np.random.default_rng(21)
    rows = []
    for shape in ((1, 5), (3, 4)):
        rows += check_function(f"row_softmax {shape}", lambda x: ops.row_softmax(x),
                               lambda G, x: {"x": ops.row_softmax_backward(G, ops.row_softmax(x))},
                               {"x": 2.0 * rng.standard_normal(shape)}, seed=shape[0])
    rows += check_function("periods_first (4, 3, 5)", lambda X: ops.periods_first(X),
                           lambda G, X: {"X": ops.periods_last(G)}, {"X": rng.standard_normal((4, 3, 5))}, seed=7)
    return rows


@case("attention over time (row softmax, window transpose)")
def temporal_ops():
    return temporal_ops_rows()


@case("TGCN through time")
def tgcn():
    return tgcn_rows()


@case("A3TGCN")
def a3tgcn():
    return a3tgcn_rows()
