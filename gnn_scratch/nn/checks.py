"""The checks every layer makes of what it is built with and fed, written once, with one wording.

Constructor arguments:
    positive_int("in_channels", v)   an int >= 1 (not a bool, not a float): TypeError / ValueError
    float_dtype(dtype)               np.float32 or np.float64 (or their names): TypeError otherwise
    probability("dropout", p)        a real number in [0, 1): TypeError / ValueError
    finite_real("negative_slope", v) a finite real number: TypeError / ValueError
What a layer is fed (``forward``):
    check_graph(layer, graph)        a ``Graph`` whose N_dst destinations are among its N_src sources
    check_features(x, rows, ...)     ``Graph.check_features``'s rules (graph/csr.py): shape (N_src, in_channels),
                                     the layer's float dtype, finite host values; scipy sparse -> CSR once
The upstream gradient of every ``backward`` is checked by ``Module`` itself (nn/module.py).
Every message is one line naming the argument and what was expected.
"""
import numbers

import numpy as np
import scipy.sparse as sp

from ..graph import Graph
from ..graph.csr import FLOAT_DTYPES, check_feature_array, check_finite


def positive_int(name, v):
    """``v`` as an int, or TypeError (not an integer: a bool, a float) / ValueError (< 1) naming ``name``."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {v!r}")
    if v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def float_dtype(dtype, name="dtype"):
    """``np.dtype(dtype)`` when it is float32 or float64, else TypeError naming ``name``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def _real(name, v, expected):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.integer, np.floating)):
        raise TypeError(f"{name} must be {expected}, got {v!r}")
    return float(v)


def probability(name, p):
    """``p`` as a float in [0, 1) (a drop probability), or TypeError / ValueError naming ``name``."""
    q = _real(name, p, "a number in [0, 1)")
    if not 0.0 <= q < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p!r}")
    return q


def finite_real(name, v):
    """``v`` as a finite float, or TypeError / ValueError naming ``name``."""
    f = _real(name, v, "a finite number")
    if not np.isfinite(f):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    return f


def check_graph(layer, graph, arg="x"):
    """Raise unless ``graph`` is a ``Graph`` whose N_dst destinations are its first N_dst sources."""
    name = type(layer).__name__
    if graph is None:
        raise ValueError(f"{name}.forward needs the graph: forward({arg}, graph)")
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a gnn_scratch Graph, got {type(graph).__name__}")
    if graph.num_dst > graph.num_src:
        raise ValueError(f"graph must have its N_dst = {graph.num_dst} destinations among its N_src = "
                         f"{graph.num_src} sources (a block lists the destinations first)")
    return graph


# How many Module.forward calls are running (nn/module.py counts them): 1 inside a layer called by the
# user, more inside a layer that a model or container calls. A plain counter, not thread-local: a
# forward runs on one thread.
forward_depth = 0
_arg_names = {}


def scan_inputs(module, args, kwargs=None):
    """Raise ValueError naming the argument, row and column of the first NaN / Inf among ``args`` and
    ``kwargs``, the host float arrays (NumPy or scipy.sparse) a user handed to ``module.forward``.

    The outermost forward calls it (``nn/module.py``), once per call, so a model's input is scanned
    once however many layers read it, and the activations its layers pass on are not scanned at all.
    """
    cls = type(module)
    names = _arg_names.get(cls)
    if names is None:
        import inspect
        names = _arg_names[cls] = [p for p in inspect.signature(cls.forward).parameters][1:]
    named = [(names[i] if i < len(names) else f"argument {i}", a) for i, a in enumerate(args)]
    named += list((kwargs or {}).items())
    # a sequence of arrays (a recurrent model's time steps) is scanned step by step
    named = [pair for name, a in named
             for pair in ([(f"{name}[{t}]", b) for t, b in enumerate(a)] if isinstance(a, (list, tuple))
                          else [(name, a)])]
    for name, a in named:
        sparse = sp.issparse(a)
        if (sparse or isinstance(a, np.ndarray)) and a.dtype.kind == "f":
            check_finite(a.tocsr() if sparse else a, name)


def check_features(x, num_rows=None, num_cols=None, dtype=None, name="x", graph=None):
    """A layer's input checked (and a scipy sparse one made CSR, once): see ``graph.csr.check_feature_array``.

    With ``graph``, x has one row per source node of it (``Graph.check_features``); else ``num_rows``
    rows (None: any). ``num_cols`` is the layer's in_channels, ``dtype`` its parameters' dtype.
    Shape and dtype are always checked. The values are scanned for NaN / Inf where they enter: by the
    outermost ``Module.forward`` (``scan_inputs``: the layer or model the user called), and here only
    outside any forward. A layer that a model calls on its own activations does not scan them -- that
    pass over memory per layer cost more than the layer's work on small graphs, and a non-finite
    activation still shows in the loss.
    """
    finite = forward_depth == 0
    if graph is not None:
        return graph.check_features(x, name, "src", num_cols, dtype, finite)
    return check_feature_array(x, name, num_rows, num_cols, dtype, finite=finite)
