"""Gradient-check cases of the spectral layers (derivations/cheb_conv.md, derivations/spectral_conv.md), in float64.

ChebConv: K = 1..4 x both product orders x unweighted / weighted, on the directed fixture graph (an
isolated node, a self-loop, a repeated edge: L~ᵀ != L~, so a backward using L~ for L~ᵀ fails), one
case per normalisation, lambda_max default and given. FirstOrderConv: its three variants. SpectralConv:
free and smooth multipliers on the fixture made undirected. Every parameter and the input.
"""
import numpy as np

from ..graph import Graph
from ..nn.conv.cheb_conv import FIRST_ORDER_VARIANTS, ChebConv, FirstOrderConv
from ..nn.conv.spectral_conv import SpectralConv
from . import check_module, random_test_graph
from .registry import case

F64 = np.float64
DIMS = ((3, 2), (2, 3))       # F_out < F_in: transform first (Clenshaw); F_out > F_in: propagate first (the terms)


def with_weights(g, seed):
    """``g`` with edge weights drawn from U(0.5, 2), in CSR order."""
    w = np.random.default_rng(seed).uniform(0.5, 2.0, g.num_edges)
    return Graph.from_csr(g.indptr, g.indices, w, num_src=g.num_src)


def undirected(g):
    """``g`` with every edge's reverse added (the isolated node, the self-loop, the repeated edge stay)."""
    ei = g.edge_index()
    return Graph.from_edge_index(np.concatenate([ei, ei[::-1]], axis=1), num_nodes=g.num_nodes)


def _x(graph, F, seed):
    return np.random.default_rng(seed).standard_normal((graph.num_src, F))


def _with_bias(conv, seed):
    conv.params["b"][:] = np.random.default_rng(seed).uniform(-0.5, 0.5, conv.params["b"].shape)
    return conv


class _WithLambda:
    """forward(x, graph) of a ChebConv with lambda_max fixed: what ``check_module`` calls."""

    def __init__(self, conv, lambda_max):
        self.conv, self.lambda_max = conv, lambda_max

    def __getattr__(self, name):
        return getattr(self.conv, name)

    def forward(self, x, graph):
        return self.conv.forward(x, graph, lambda_max=self.lambda_max)


def cheb_rows(normalization):
    rows = []
    square = random_test_graph(0)
    for label, g in (("directed", square), ("directed, weighted", with_weights(square, 5))):
        for K in (1, 2, 3, 4):
            for F_in, F_out in DIMS:
                for lam in (None, 3.5):
                    conv = _with_bias(ChebConv(F_in, F_out, K, normalization=normalization, seed=11, dtype=F64), 2)
                    rows += check_module(f"ChebConv {normalization} K={K} {F_in}->{F_out} lambda_max={lam} [{label}]",
                                         _WithLambda(conv, lam), _x(g, F_in, 20), g)
    return rows


@case("ChebConv sym")
def cheb_sym():
    return cheb_rows("sym")


@case("ChebConv rw")
def cheb_rw():
    return cheb_rows("rw")


@case("ChebConv None")
def cheb_none():
    return cheb_rows(None)


@case("FirstOrderConv")
def first_order():
    rows = []
    square = random_test_graph(0)
    for label, g in (("directed", square), ("directed, weighted", with_weights(square, 5))):
        for variant in FIRST_ORDER_VARIANTS:
            for F_in, F_out in DIMS:
                conv = _with_bias(FirstOrderConv(F_in, F_out, variant=variant, seed=11, dtype=F64), 2)
                rows += check_module(f"FirstOrderConv {variant} {F_in}->{F_out} [{label}]", conv, _x(g, F_in, 20), g)
    return rows


@case("SpectralConv")
def spectral():
    rows = []
    g = undirected(random_test_graph(0))
    for normalization in ("sym", None):
        for d, q in ((8, None), (5, None), (None, 5), (6, 4)):
            for F_in, F_out in DIMS:
                conv = _with_bias(SpectralConv(F_in, F_out, num_eigenvectors=d, smooth_basis=q,
                                               normalization=normalization, seed=11, dtype=F64), 2)
                rows += check_module(f"SpectralConv {normalization} d={d} q={q} {F_in}->{F_out}", conv,
                                     _x(g, F_in, 20), g)
    return rows
