"""Fuzzing: every public layer's forward / backward and Graph's constructors, with random shapes, dtypes,
node ids and non-finite values (hypothesis).

Each example runs twice, with the NumPy reference kernels and with the Numba ones
(``kernels.set_cpu_backend``), and must end in one of two ways on both:
  * a clear ValueError / TypeError (``GraphError`` is a ValueError) with a one-line message, the same on both;
  * a result equal on both, and finite whenever the input was.
Any other exception fails the example. ``test_kernels_read_nothing_out_of_bounds`` runs the layers
again in a subprocess whose Numba kernels are compiled with bounds checking.
"""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gnn_scratch import ops
from gnn_scratch.graph import Graph
from gnn_scratch.kernels import get_cpu_backend, set_cpu_backend
from gnn_scratch.nn import ELU, Dropout, GATConv, GCNConv, GraphConv, LeakyReLU, Linear, ReLU, SAGEConv

REPO = Path(__file__).resolve().parents[1]
# 50 examples per property keeps the file under ~20 s; GNN_SCRATCH_FUZZ_EXAMPLES=5000 hunts longer
FUZZ = settings(max_examples=int(os.environ.get("GNN_SCRATCH_FUZZ_EXAMPLES", 50)), deadline=None,
                suppress_health_check=list(HealthCheck))
CLEAR = (ValueError, TypeError)
DTYPES = (np.float32, np.float64, np.int64, np.float16, np.complex64, np.bool_)


# ====================================================================================== the harness
def on_both_backends(fn):
    """(reference outcome, cpu outcome), each ("ok", value) or ("error", type name, message)."""
    old, got = get_cpu_backend(), []
    try:
        for backend in ("reference", "cpu"):
            set_cpu_backend(backend)
            try:
                got.append(("ok", fn()))
            except CLEAR as e:                     # anything else propagates: the example fails
                message = str(e)
                assert message and "\n" not in message, f"{type(e).__name__} without a one-line message: {message!r}"
                got.append(("error", type(e).__name__, message))
    finally:
        set_cpu_backend(old)
    return got


def _flat(value):
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _flat(v)]
    if isinstance(value, dict):
        return [a for k in sorted(value) for a in _flat(value[k])]
    return [value]


def assert_same_outcome(outcomes, finite_input):
    (ref, cpu) = outcomes
    # what the examples ended in, for pytest --hypothesis-show-statistics
    event(ref[0] if ref[0] == "ok" else f"{ref[1]}: {re.sub(r'[-0-9.]+', '#', ref[2])[:45]}")
    assert ref[0] == cpu[0], f"reference: {ref[:3]}, cpu: {cpu[:3]}"
    if ref[0] == "error":
        assert ref == cpu
        return
    for a, b in zip(_flat(ref[1]), _flat(cpu[1]), strict=True):
        if a is None or b is None:
            assert a is None and b is None
            continue
        a, b = (np.asarray(v.toarray() if sp.issparse(v) else v) for v in (a, b))
        assert a.shape == b.shape and a.dtype == b.dtype
        if finite_input:
            assert np.isfinite(a).all() and np.isfinite(b).all(), "a non-finite result from finite input"
        # float32: the two backends round differently, and cancellation (a softmax over logits in the
        # hundreds) makes that an error relative to the array's largest entry, not to each entry
        tol = 1e-9 if a.dtype == np.float64 else 1e-3
        scale = max(1.0, float(np.max(np.abs(a)))) if a.size else 1.0
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol * scale)


def _finite(x):
    values = x.data if sp.issparse(x) else x
    return not np.issubdtype(values.dtype, np.inexact) or bool(np.isfinite(values).all())


# ====================================================================================== layers
LAYERS = {
    "GCNConv": lambda i, o, dt: GCNConv(i, o, dtype=dt, seed=1),
    "GCNConv-wide": lambda i, o, dt: GCNConv(i, o + 5, dtype=dt, seed=1),
    "GCNConv-raw": lambda i, o, dt: GCNConv(i, o, normalize=False, add_self_loops=False, dtype=dt, seed=1),
    "GATConv": lambda i, o, dt: GATConv(i, o, heads=2, dropout=0.3, dtype=dt, seed=1),
    "GATConv-block": lambda i, o, dt: GATConv(i, o, heads=2, concat=False, add_self_loops=False, dtype=dt, seed=1),
    "GATConv-unfused": lambda i, o, dt: GATConv(i, o, heads=3, fused=False, dtype=dt, seed=1),
    "SAGEConv-mean": lambda i, o, dt: SAGEConv(i, o, aggr="mean", dtype=dt, seed=1),
    "SAGEConv-sum": lambda i, o, dt: SAGEConv(i, o + 5, aggr="sum", root_weight=False, dtype=dt, seed=1),
    "SAGEConv-max": lambda i, o, dt: SAGEConv(i, o, aggr="max", dtype=dt, seed=1),
    "SAGEConv-max-raw": lambda i, o, dt: SAGEConv(i, o, aggr="max", project=False, normalize=True, dtype=dt, seed=1),
    "GraphConv-add": lambda i, o, dt: GraphConv(i, o, aggr="add", dtype=dt, seed=1),
    "GraphConv-mean": lambda i, o, dt: GraphConv(i, o + 5, aggr="mean", dtype=dt, seed=1),
    "GraphConv-max": lambda i, o, dt: GraphConv(i, o, aggr="max", dtype=dt, seed=1),
    "Linear": lambda i, o, dt: Linear(i, o, dtype=dt, seed=1),
}


def _pick(rng, p, choices):
    """None with probability 1 - p, else one of ``choices``: a fault, rare enough that most examples run."""
    return choices[rng.integers(len(choices))] if rng.random() < p else None


GRAPH_FAULTS = ["negative id", "id too high", "fractional id", "nan weight", "short weight", "int weight"]


def graph_builder(n_dst, n_src, E, weighted, rng):
    """build() making a Graph (a bipartite block when n_src > n_dst), maybe with a corrupted id or weight."""
    src, dst = rng.integers(0, n_src, E), rng.integers(0, n_dst, E)
    w = rng.uniform(-0.5, 2.0, E) if weighted else None
    fault = _pick(rng, 0.15, GRAPH_FAULTS) if E else None
    if fault == "negative id":
        src[rng.integers(E)] = -1
    elif fault == "id too high":
        src[rng.integers(E)] = n_src
    elif fault == "fractional id":
        src = src + 0.5
    elif fault == "nan weight":
        w = rng.uniform(-0.5, 2.0, E)
        w[rng.integers(E)] = np.nan
    elif fault == "short weight":
        w = np.ones(E - 1)
    elif fault == "int weight":
        w = np.ones(E, np.int64)

    def build():
        if n_src == n_dst:
            return Graph.from_edge_index(np.stack([src, dst]), num_nodes=n_dst, edge_weight=w)
        order = np.argsort(dst, kind="stable")
        indptr = np.r_[0, np.cumsum(np.bincount(dst, minlength=n_dst))]
        return Graph.from_csr(indptr, src[order], None if w is None or w.shape != (E,) else w[order], num_src=n_src)
    return build


def features(n_rows, n_cols, layer_dtype, rng):
    """(x, finite?): usually right; sometimes of the wrong shape, dtype or format, or with a NaN / Inf."""
    rows = n_rows + (_pick(rng, 0.05, [-1, 1]) or 0)
    cols = n_cols + (_pick(rng, 0.05, [1]) or 0)
    dtype = np.dtype(_pick(rng, 0.1, DTYPES) or layer_dtype)
    x = rng.standard_normal((max(rows, 0), cols)) * (100.0 if rng.random() < 0.2 else 1.0)
    x[np.abs(x) < 0.5] = 0.0                                        # some zeros: ties in a max, sparsity
    bad = _pick(rng, 0.08, [np.nan, np.inf, -np.inf])
    if bad is not None and x.size:
        x[rng.integers(x.shape[0]), rng.integers(cols)] = bad
    with np.errstate(all="ignore"):
        x = x.astype(dtype)
    fmt = _pick(rng, 0.3, ["csr", "csc", "coo"])
    if fmt is not None and dtype != np.float16:                     # scipy.sparse has no float16
        x = getattr(sp, f"{fmt}_matrix")(x)
    return x, _finite(x)


@FUZZ
@given(name=st.sampled_from(sorted(LAYERS)), layer_dtype=st.sampled_from([np.float32, np.float64]),
       F_in=st.integers(1, 4), F_out=st.integers(1, 3), n_dst=st.integers(1, 8), extra_src=st.integers(0, 4),
       E=st.integers(0, 24), weighted=st.booleans(), train=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_layers_forward_backward(name, layer_dtype, F_in, F_out, n_dst, extra_src, E, weighted, train, seed):
    rng = np.random.default_rng(seed)
    n_src = n_dst + (extra_src if rng.random() < 0.4 else 0)       # a bipartite block, or a square graph
    build_graph = graph_builder(n_dst, n_src, E, weighted, rng)
    x, finite = features(n_src, F_in, layer_dtype, rng)
    grad_fault = _pick(rng, 0.1, ["shape", "dtype"])

    def run():
        graph = build_graph()
        layer = LAYERS[name](F_in, F_out, layer_dtype).train(train)
        out = layer(x, graph)
        shape, dtype = out.shape, out.dtype
        if grad_fault == "shape":
            shape = (shape[0] + 1, shape[1])
        elif grad_fault == "dtype":
            dtype = np.float64 if dtype == np.float32 else np.float32
        G = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        dx = layer.backward(G)
        return out, dx, {k: v.copy() for k, v in layer.grads.items()}

    outcomes = on_both_backends(run)
    assert_same_outcome(outcomes, finite)
    if outcomes[0][0] == "ok":
        assert finite, "non-finite host features were accepted"
        assert grad_fault is None, "a gradient of the wrong shape or dtype was accepted"


@FUZZ
@given(kind=st.sampled_from(["ReLU", "LeakyReLU", "ELU", "Dropout"]), param=st.floats(0.0, 0.95),
       shape=st.lists(st.integers(0, 6), min_size=1, max_size=3), train=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_activations_and_dropout(kind, param, shape, train, seed):
    rng = np.random.default_rng(seed)
    param = _pick(rng, 0.15, [float("nan"), float("inf"), 1e39, -0.5, 1.0, "0.1"]) or param
    dtype = np.dtype(_pick(rng, 0.15, DTYPES) or rng.choice([np.float32, np.float64]))
    x = rng.standard_normal(shape) * 10
    if x.size and rng.random() < 0.1:
        x.reshape(-1)[rng.integers(x.size)] = np.nan
    with np.errstate(all="ignore"):
        x = x.astype(dtype)

    def run():
        make = {"ReLU": lambda: ReLU(), "LeakyReLU": lambda: LeakyReLU(param),
                "ELU": lambda: ELU(param), "Dropout": lambda: Dropout(param, seed=3)}[kind]
        module = make().train(train)
        y = module(x)
        return y, module.backward(np.ones(y.shape, y.dtype))

    assert_same_outcome(on_both_backends(run), _finite(x))


# ====================================================================================== Graph's constructors
def ids(shape, n, rng):
    """Node ids of ``shape`` in [0, n), sometimes with a negative or too-high id, or of a wrong dtype."""
    a = rng.integers(0, max(n, 1), shape)
    fault = _pick(rng, 0.3, ["negative", "high", "float-int", "float-frac", "bool"])
    if a.size and fault == "negative":
        a.reshape(-1)[rng.integers(a.size)] = -1 - rng.integers(2)
    elif a.size and fault == "high":
        a.reshape(-1)[rng.integers(a.size)] = n + rng.integers(2)
    elif fault == "float-int":
        a = a.astype(np.float64)
    elif fault == "float-frac":
        a = a + 0.25
    elif fault == "bool":
        a = a.astype(bool)
    return a


def edge_weights(E, rng):
    w = rng.uniform(-1, 2, E)
    fault = _pick(rng, 0.3, ["float32", "short", "int", "nan", "inf"])
    if rng.random() < 0.3:
        return None
    if fault == "float32":
        return w.astype(np.float32)
    if fault == "short":
        return w[:-1] if E else np.ones(1)
    if fault == "int":
        return w.astype(np.int64)
    if fault in ("nan", "inf") and E:
        w[-1] = np.nan if fault == "nan" else np.inf
    return w


@FUZZ
@given(how=st.sampled_from(["from_edge_index", "from_csr", "from_scipy"]), n=st.integers(1, 7), E=st.integers(0, 15),
       seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_graph_constructors(how, n, E, seed):
    rng = np.random.default_rng(seed)
    if rng.random() < 0.05:
        n = 0
    w = None
    if how == "from_edge_index":
        shape = _pick(rng, 0.1, [(3, E), (E,), (2, E, 1)]) or (2, E)
        ei = ids(shape, n, rng)
        num_nodes = _pick(rng, 0.2, [n + 2, max(n - 1, 0), -1, 2.5, True]) or (None if rng.random() < 0.5 else n)
        w = edge_weights(E, rng)
        args, kwargs = (ei,), dict(num_nodes=num_nodes, edge_weight=w)

        def expected():
            e = ei.astype(np.int64)                    # an empty float edge_index is taken as "no edges"
            N = int(e.max()) + 1 if num_nodes is None else num_nodes
            A = np.zeros((N, N))
            np.add.at(A, (e[1], e[0]), 1.0 if w is None else np.asarray(w, np.float64))
            return A
    elif how == "from_csr":
        num_src = _pick(rng, 0.2, [0, -1, 1.5, n + 2]) or (None if rng.random() < 0.5 else n)
        indptr = np.r_[0, np.cumsum(rng.multinomial(E, np.ones(n) / n))] if n else np.zeros(1, int)
        if indptr.size > 2 and rng.random() < 0.1:
            indptr[1], indptr[-2] = indptr[-2] + 1, indptr[1]            # not non-decreasing
        if rng.random() < 0.05:
            indptr = indptr[:-1]                                        # indptr[-1] != E
        cols = num_src if isinstance(num_src, int) and num_src > 0 else n
        indices = ids((E,), cols, rng)
        w = edge_weights(E, rng)
        args, kwargs = (indptr, indices), dict(edge_weight=w, num_src=num_src)

        def expected():
            return sp.csr_matrix((np.ones(E) if w is None else np.asarray(w, np.float64), indices, indptr),
                                 shape=(indptr.size - 1, n if num_src is None else num_src)).toarray()
    else:
        rows, cols = rng.integers(0, 7, 2)
        dense = np.where(rng.random((rows, cols)) < 0.4, rng.uniform(-1, 2, (rows, cols)), 0.0)
        if dense.size and rng.random() < 0.1:
            dense[rng.integers(rows), rng.integers(cols)] = np.nan
        dtype = _pick(rng, 0.3, [np.int64, np.bool_, np.complex128, np.float32]) or np.float64
        fmt = ["csr", "csc", "coo", "lil", "dense"][rng.integers(5)]
        with np.errstate(all="ignore"):
            dense = dense.astype(dtype)
        A = dense if fmt == "dense" else getattr(sp, f"{fmt}_matrix")(dense)
        args, kwargs = (A,), {}

        def expected():
            return dense.astype(np.float64)

    def run():
        g = getattr(Graph, how)(*args, **kwargs)
        _graph_is_sound(g)
        X = np.random.default_rng(0).standard_normal((g.num_src, 3))
        out = ops.spmm(g, ops.edge_weight_or_ones(g, np.float64), X)
        back = ops.spmm_backward_X(g, ops.edge_weight_or_ones(g, np.float64), out)
        np.testing.assert_allclose(out, expected() @ X, rtol=1e-10, atol=1e-10)
        return out, back, ops.mean_aggregate(g, X), ops.max_aggregate(g, X)

    assert_same_outcome(on_both_backends(run), True)   # a graph that is built has finite weights (checked above)


def _graph_is_sound(g):
    assert 1 <= g.num_dst and 1 <= g.num_src
    assert g.indptr.dtype == np.int64 and g.indptr.shape == (g.num_dst + 1,)
    assert g.indptr[0] == 0 and np.all(np.diff(g.indptr) >= 0) and g.indptr[-1] == g.num_edges
    assert g.indices.dtype == np.int32 and g.indices.shape == (g.num_edges,)
    if g.num_edges:
        assert 0 <= g.indices.min() and g.indices.max() < g.num_src
    if g.edge_weight is not None:
        assert g.edge_weight.shape == (g.num_edges,) and np.isfinite(g.edge_weight).all()


# ====================================================================================== bounds checking
BOUNDSCHECK_SCRIPT = textwrap.dedent('''
    import sys

    import numba
    from numba.core import config

    assert config.BOUNDSCHECK, "NUMBA_BOUNDSCHECK is not on"
    _njit = numba.njit


    def checked_njit(*args, **options):
        """njit with bounds checks, and parallel off: Numba drops an IndexError raised inside a parfor worker."""
        options.update(parallel=False, boundscheck=True, cache=False)
        if len(args) == 1 and callable(args[0]):
            return _njit(args[0], **options)
        return _njit(*args, **options)


    numba.njit = checked_njit          # before gnn_scratch's kernels are defined
    import numpy as np
    import scipy.sparse as sp

    from gnn_scratch.graph import Graph
    from gnn_scratch.kernels import cpu, set_cpu_backend
    from gnn_scratch.nn import ELU, Dropout, GATConv, GCNConv, GraphConv, LeakyReLU, Linear, ReLU, SAGEConv

    set_cpu_backend("cpu")
    # the harness itself: an X too short for the graph must make the Numba SpMM raise IndexError
    try:
        cpu.spmm_sum(np.array([0, 1, 2]), np.array([0, 5], np.int32), np.ones(2), np.ones((2, 3)), np.empty((2, 3)))
    except IndexError:
        pass
    else:
        sys.exit("bounds checking is not active: an out-of-bounds read went unnoticed")

    rng = np.random.default_rng(0)
    for n, e in ((1, 0), (1, 3), (7, 0), (int(rng.integers(10, 30)), int(rng.integers(40, 120)))):
        weighted = e % 2 == 1
        g = Graph.from_edge_index(rng.integers(0, n, (2, e)), num_nodes=n,
                                  edge_weight=rng.random(e) + 0.1 if weighted else None)
        n_dst = max(1, n // 2)
        cuts = np.sort(rng.integers(0, e + 1, n_dst - 1))
        blk = Graph.from_csr(np.r_[0, cuts, e], rng.integers(0, n, e), num_src=n)
        for dt in (np.float32, np.float64):
            X = rng.standard_normal((n, 5)).astype(dt)
            layers = [(GCNConv(5, 3, dtype=dt), g), (GCNConv(5, 8, dtype=dt), g),
                      (GATConv(5, 3, heads=2, dropout=0.3, dtype=dt), g),
                      (GATConv(5, 3, heads=2, concat=False, fused=False, dtype=dt), g),
                      (GATConv(5, 3, heads=2, add_self_loops=False, dtype=dt), blk)]
            for aggr in ("mean", "sum", "max", "lstm"):
                layers += [(SAGEConv(5, 3, aggr=aggr, normalize=True, dtype=dt), blk),
                           (SAGEConv(5, 7, aggr=aggr, project=True, dtype=dt), g)]
            for aggr in ("add", "mean", "max"):
                layers += [(GraphConv(5, 3, aggr=aggr, dtype=dt), blk), (GraphConv(5, 8, aggr=aggr, dtype=dt), g)]
            layers += [(Linear(5, 3, dtype=dt), None), (ReLU(), None), (LeakyReLU(0.2), None), (ELU(), None),
                       (Dropout(0.5, seed=1), None)]
            for layer, graph in layers:
                dense_only = isinstance(layer, (ReLU, LeakyReLU, ELU)) or (
                    isinstance(layer, GraphConv) and layer.aggr == "max")
                for x in (X,) if dense_only else (X, sp.csr_matrix(np.where(X > 0.5, X, 0))):
                    out = layer(x, graph)
                    layer.backward(rng.standard_normal(out.shape).astype(out.dtype))
    print("ok")
''')


def test_kernels_read_nothing_out_of_bounds(tmp_path):
    """Every layer's forward and backward with the Numba kernels compiled with ``boundscheck=True``.

    In a subprocess: NUMBA_BOUNDSCHECK=1, a fresh NUMBA_CACHE_DIR (no cached unchecked build is
    reused), and ``numba.njit`` forcing parallel=False before gnn_scratch defines its kernels,
    since an IndexError raised in a worker of a parallel loop is lost (the row is left unwritten).
    The script first checks that a deliberate out-of-bounds read does raise.
    """
    script = tmp_path / "boundscheck.py"
    script.write_text(BOUNDSCHECK_SCRIPT)
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout[-2000:] + done.stderr[-4000:]
