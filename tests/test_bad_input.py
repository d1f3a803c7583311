"""Bad input is refused before any kernel runs, one line naming the argument and what was expected.

1. every backward checks its upstream gradient (once, in ``Module``), every op the shapes it can;
2. every layer checks its constructor arguments and its features with the same wording (``nn/checks.py``);
3. GCN normalisation refuses a negative weighted degree, naming the node (a zero degree stays 0);
4. every layer takes scipy csr / csc / coo features alike (the dense result);
5. the gradient checker passes a correct zero gradient and still fails a wrong small one.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch import ops
from gnn_scratch.gradcheck import check_module, relative_error, roundoff_floor
from gnn_scratch.graph import Graph, GraphError
from gnn_scratch.nn import (ELU, LSTM, BackwardBeforeForward, Dropout, GATConv, GCNConv, GINConv, GraphConv, LeakyReLU,
                            Linear, Module, ReLU, SAGEConv, Sequential)
from gnn_scratch.nn.lstm import pack_neighbours

F_IN, F_OUT = 3, 2
N = 8


def small_graph():
    """8 nodes: a self-loop, a repeated edge, node 7 isolated."""
    src = [0, 1, 2, 3, 4, 5, 6, 0, 1, 1, 2, 5]
    dst = [0, 2, 3, 4, 5, 6, 0, 1, 2, 2, 0, 1]
    return Graph.from_edge_index(np.array([src, dst]), num_nodes=N)


def block():
    """A bipartite block: 3 destinations (the first 3 of 5 sources)."""
    return Graph.from_csr([0, 2, 3, 5], [1, 4, 0, 2, 3], num_src=5)


# name -> (constructor(in, out, dtype), graph-free?)
LAYERS = {
    "GCNConv": lambda i, o, dt: GCNConv(i, o, dtype=dt),
    "GCNConv-wide": lambda i, o, dt: GCNConv(i, o + 4, dtype=dt),           # the (A H) W order
    "GATConv": lambda i, o, dt: GATConv(i, o, heads=2, dtype=dt),
    "GATConv-mean-unfused": lambda i, o, dt: GATConv(i, o, heads=2, concat=False, fused=False, dtype=dt),
    "SAGEConv-mean": lambda i, o, dt: SAGEConv(i, o, aggr="mean", dtype=dt),
    "SAGEConv-sum": lambda i, o, dt: SAGEConv(i, o, aggr="sum", dtype=dt),
    "SAGEConv-max": lambda i, o, dt: SAGEConv(i, o, aggr="max", dtype=dt),
    "SAGEConv-lstm": lambda i, o, dt: SAGEConv(i, o, aggr="lstm", dtype=dt),
    "SAGEConv-max-noproj-norm": lambda i, o, dt: SAGEConv(i, o, aggr="max", project=False, normalize=True, dtype=dt),
    "GraphConv-add": lambda i, o, dt: GraphConv(i, o, aggr="add", dtype=dt),
    "GraphConv-mean": lambda i, o, dt: GraphConv(i, o, aggr="mean", dtype=dt),
    "GraphConv-max": lambda i, o, dt: GraphConv(i, o, aggr="max", dtype=dt),
    "Linear": lambda i, o, dt: Linear(i, o, dtype=dt),
    "GINConv": lambda i, o, dt: GINConv(Sequential(lin=Linear(i, o, dtype=dt), act=ReLU()), train_eps=True),
}
BIPARTITE = [k for k in LAYERS if not k.startswith(("GCNConv", "GATConv", "Linear"))] + ["GATConv-block"]
CONSTRUCTORS = {"GCNConv": GCNConv, "GATConv": GATConv, "SAGEConv": SAGEConv, "GraphConv": GraphConv,
                "Linear": Linear, "LSTM": LSTM}


def features(n=N, f=F_IN, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(dtype)


def make(name, dtype=np.float32):
    if name == "GATConv-block":
        return GATConv(F_IN, F_OUT, heads=2, add_self_loops=False, dtype=dtype)
    return LAYERS[name](F_IN, F_OUT, dtype)


# =============================================================================== 1. upstream gradients
def test_gcnconv_backward_refuses_a_wrong_gradient_on_a_large_graph():
    """The issue's case: a (1, 4) gradient after a forward on 20,000 nodes must raise, not return garbage."""
    rng = np.random.default_rng(0)
    n, e = 20_000, 100_000
    g = Graph.from_edge_index(rng.integers(0, n, (2, e)), num_nodes=n)
    conv = GCNConv(8, 4, seed=0)
    out = conv(rng.standard_normal((n, 8)).astype(np.float32), g)
    assert out.shape == (n, 4)
    with pytest.raises(ValueError, match=r"^grad_out must have shape \(20000, 4\) like the forward's output, "
                                         r"got \(1, 4\)$"):
        conv.backward(np.ones((1, 4), np.float32))
    with pytest.raises(TypeError, match=r"^grad_out must have dtype float32 like the forward's output, got float64$"):
        conv.backward(np.ones((n, 4)))
    assert not any(v.any() for v in conv.grads.values())        # refused before any kernel ran
    assert conv.backward(np.ones((n, 4), np.float32)).shape == (n, 8)


@pytest.mark.parametrize("name", sorted(LAYERS) + ["GATConv-block"])
def test_every_layer_checks_grad_out(name):
    layer = make(name)
    g = block() if name in BIPARTITE and name != "SAGEConv-lstm" else small_graph()
    out = layer(features(g.num_src), g)
    shape = tuple(out.shape)
    bad = (1,) + shape[1:]
    with pytest.raises(ValueError, match=rf"^grad_out must have shape \({shape[0]}, {shape[1]}\) like the "
                                         rf"forward's output, got \(1, {shape[1]}\)$"):
        layer.backward(np.ones(bad, np.float32))
    with pytest.raises(ValueError, match=r"^grad_out must have shape"):
        layer.backward(np.ones((shape[0], shape[1] + 1), np.float32))
    with pytest.raises(TypeError, match=r"^grad_out must have dtype float32 like the forward's output, got float64$"):
        layer.backward(np.ones(shape))
    with pytest.raises(TypeError, match=r"^grad_out must be an array of shape .* got list$"):
        layer.backward(np.ones(shape, np.float32).tolist())
    assert not any(v.any() for v in layer.grads.values())
    layer.backward(np.ones(shape, np.float32))                   # the right one still works


@pytest.mark.parametrize("module", [ReLU(), LeakyReLU(0.1), ELU(), Dropout(0.5, seed=0)], ids=lambda m: type(m).__name__)
def test_activations_and_dropout_check_grad_out(module):
    module(features())
    with pytest.raises(ValueError, match=r"^grad_out must have shape \(8, 3\) like the forward's output, got \(8, 2\)$"):
        module.backward(np.ones((N, 2), np.float32))
    with pytest.raises(TypeError, match=r"^grad_out must have dtype float32"):
        module.backward(np.ones((N, 3), np.float64))
    assert module.backward(np.ones((N, 3), np.float32)).shape == (N, 3)


def test_lstm_and_containers_check_grad_out():
    g = small_graph()
    lstm = LSTM(F_IN, 4, dtype=np.float64)
    out = lstm(features(dtype=np.float64), pack_neighbours(g))
    with pytest.raises(ValueError, match=r"^grad_out must have shape \(8, 4\) like the forward's output, got \(3, 4\)$"):
        lstm.backward(np.ones((3, 4)))
    assert lstm.backward(np.ones_like(out)).shape == (N, F_IN)
    model = Sequential(conv1=GCNConv(F_IN, 4), act=ReLU(), conv2=GCNConv(4, F_OUT))
    model(features(), g)
    with pytest.raises(ValueError, match=r"^grad_out must have shape \(8, 2\) like the forward's output, got \(8, 4\)$"):
        model.backward(np.ones((N, 4), np.float32))
    assert model.backward(np.ones((N, F_OUT), np.float32)).shape == (N, F_IN)


def test_the_check_wraps_subclasses_once_and_skips_outputs_that_are_not_arrays():
    class Pair(Module):                    # a forward that returns a tuple records nothing
        def forward(self, x, graph=None):
            self._cache = x
            return x, x

        def backward(self, grads):
            return grads[0] + grads[1]

    x = features()
    p = Pair()
    p(x)
    np.testing.assert_array_equal(p.backward((x, x)), 2 * x)

    class Scaled(Linear):                  # super().backward with a gradient of its own: checked once, outside
        def backward(self, grad_out):
            return super().backward(grad_out * 2)

    lin = Scaled(F_IN, F_OUT)
    lin(x)
    assert lin.backward(np.ones((N, F_OUT), np.float32)).shape == (N, F_IN)
    with pytest.raises(ValueError, match="grad_out must have shape"):
        lin.backward(np.ones((2, F_OUT), np.float32))


def test_a_failed_forward_leaves_nothing_to_differentiate():
    conv = GCNConv(F_IN, F_OUT)
    g = small_graph()
    conv(features(), g)
    with pytest.raises(ValueError):
        conv(features(N - 1), g)
    with pytest.raises(BackwardBeforeForward):
        conv.backward(np.ones((N, F_OUT), np.float32))


def test_ops_check_shapes_and_dtypes_before_the_kernel():
    g = small_graph()
    E = g.num_edges
    X, w = features(dtype=np.float64), np.ones(E)
    cases = [
        (ValueError, r"^ops\.spmm: X must have shape \(8, F\), got \(7, 3\)$", lambda: ops.spmm(g, w, X[:7])),
        (ValueError, r"^ops\.spmm: edge_val must have shape \(12,\), got \(11,\)$", lambda: ops.spmm(g, w[:11], X)),
        (TypeError, r"^ops\.spmm: edge_val must have the dtype of X \(float64\), got float32$",
         lambda: ops.spmm(g, w.astype(np.float32), X)),
        (TypeError, r"^ops\.spmm: X must be float32 or float64, got int64$",
         lambda: ops.spmm(g, np.ones(E, np.int64), X.astype(np.int64))),
        (ValueError, r"^ops\.spmm_backward_X: grad_out must have shape \(8, F\), got \(1, 3\)$",
         lambda: ops.spmm_backward_X(g, w, X[:1])),
        (ValueError, r"^ops\.spmm_transposed: grad_out must have shape \(8, F\), got \(1, 3\)$",
         lambda: ops.spmm_transposed(g, w, "k", X[:1])),
        (ValueError, r"^ops\.mean_aggregate: X must have shape \(8, F\), got \(3,\)$",
         lambda: ops.mean_aggregate(g, X[0])),
        (ValueError, r"^ops\.mean_aggregate_backward: grad_out must have shape \(8, F\), got \(2, 3\)$",
         lambda: ops.mean_aggregate_backward(g, X[:2])),
        (ValueError, r"^ops\.max_aggregate_backward: argmax must have the shape of grad_out \(8, 3\), got \(8, 2\)$",
         lambda: ops.max_aggregate_backward(g, np.zeros((N, 2), np.int64), X)),
        (ValueError, r"^ops\.sddmm_add: a_src must have shape \(8, 2\), got \(4, 2\)$",
         lambda: ops.sddmm_add(g, X[:, :2], X[:4, :2])),
        (ValueError, r"^ops\.edge_softmax: scores must have shape \(12, H\), got \(8, 3\)$",
         lambda: ops.edge_softmax(g, X)),
        (ValueError, r"^ops\.relu_backward: pos must have the shape of grad_out \(8, 3\), got \(2, 3\)$",
         lambda: ops.relu_backward(X, np.ones((2, 3), bool))),
        (TypeError, r"^ops\.relu: x must be float32 or float64, got int64$", lambda: ops.relu(np.ones((2, 2), np.int64))),
        (ValueError, r"^ops\.add_: x must have the shape of acc \(8, 3\), got \(1, 3\)$", lambda: ops.add_(X, X[:1])),
        (ValueError, r"^ops\.matmul: B must have shape \(3, F\), got \(2, 2\)$", lambda: ops.matmul(X, np.ones((2, 2)))),
        (ValueError, r"^ops\.col_sum: out must have shape \(3,\), got \(2,\)$",
         lambda: ops.col_sum(X, out=np.zeros(2), accumulate=True)),
        (ValueError, r"^ops\.add_bias: b must have shape \(3,\), got \(4,\)$", lambda: ops.add_bias(X, np.zeros(4))),
    ]
    for exc, message, call in cases:
        with pytest.raises(exc, match=message):
            call()


# =============================================================================== 2. construction and features
@pytest.mark.parametrize("cls", sorted(CONSTRUCTORS), ids=str)
@pytest.mark.parametrize("arg", [0, 1])
def test_every_layer_checks_its_channels(cls, arg):
    make_layer = CONSTRUCTORS[cls]
    name = "in_channels" if arg == 0 else ("hidden_channels" if cls == "LSTM" else "out_channels")

    def build(v):
        args = [3, 2]
        args[arg] = v
        return make_layer(*args)

    for bad in (0, -2):
        with pytest.raises(ValueError, match=rf"^{name} must be a positive int, got {bad}$"):
            build(bad)
    for bad in (True, 2.0, "3", None):
        with pytest.raises(TypeError, match=rf"^{name} must be a positive int, got {bad!r}$"):
            build(bad)
    assert build(np.int64(2)) is not None


@pytest.mark.parametrize("cls", sorted(CONSTRUCTORS), ids=str)
def test_every_layer_checks_its_dtype(cls):
    for bad, shown in ((np.int32, "int32"), (np.float16, "float16"), ("int64", "int64"), (np.complex64, "complex64"),
                       ("no-such-type", "'no-such-type'")):
        with pytest.raises(TypeError, match=rf"^dtype must be float32 or float64, got {shown}$"):
            CONSTRUCTORS[cls](3, 2, dtype=bad)
    for good in (np.float32, "float64"):
        CONSTRUCTORS[cls](3, 2, dtype=good)


def test_other_constructor_arguments_name_themselves():
    for call, exc, message in [
        (lambda: GATConv(3, 2, heads=0), ValueError, r"^heads must be a positive int, got 0$"),
        (lambda: GATConv(3, 2, dropout="0.5"), TypeError, r"^dropout must be a number in \[0, 1\), got '0.5'$"),
        (lambda: GATConv(3, 2, dropout=float("nan")), ValueError, r"^dropout must be in \[0, 1\), got nan$"),
        (lambda: GATConv(3, 2, negative_slope=float("inf")), ValueError,
         r"^negative_slope must be a finite number, got inf$"),
        (lambda: Dropout(1.5), ValueError, r"^dropout probability p must be in \[0, 1\), got 1.5$"),
        (lambda: LeakyReLU(None), TypeError, r"^negative_slope must be a finite number, got None$"),
        (lambda: ELU(float("nan")), ValueError, r"^alpha must be a finite number, got nan$"),
        (lambda: SAGEConv(3, 2, aggr="max", agg_channels=0), ValueError, r"^agg_channels must be a positive int, got 0$"),
    ]:
        with pytest.raises(exc, match=message):
            call()


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_checks_its_features(name):
    layer, g = make(name), small_graph()
    shape_msg = (r"\(8, 3\) for a graph with 8 nodes and in_channels=3" if name != "Linear"
                 else r"\(N, 3\) for in_channels=3")
    for bad in (np.int64, np.complex64, np.float64):
        with pytest.raises(TypeError, match=rf"^x must have the layer's dtype float32, got {np.dtype(bad)}$"):
            layer(features().astype(bad), g)
    with pytest.raises(TypeError, match=rf"^x must be an array of shape {shape_msg}, got list$"):
        layer(features().tolist(), g)
    with pytest.raises(ValueError, match=rf"^x must have shape {shape_msg}, got \(8, 4\)$"):
        layer(features(f=4), g)
    if name != "Linear":
        with pytest.raises(ValueError, match=rf"^x must have shape {shape_msg}, got \(7, 3\)$"):
            layer(features(7), g)
        with pytest.raises(ValueError, match=r"forward needs the graph: forward\(x, graph\)$"):
            layer(features())
        with pytest.raises(TypeError, match=r"^graph must be a gnn_scratch Graph, got coo_matrix$"):
            layer(features(), g.to_scipy().tocoo())
    for value in (np.nan, np.inf, -np.inf):
        x = features()
        x[5, 2] = value
        with pytest.raises(ValueError, match=rf"^x must be finite, got {value} at row 5, column 2$"):
            layer(x, g)
    if name != "GraphConv-max":                  # the one layer that asks for dense x (its own clear error)
        xs = sp.csr_matrix(features())
        xs.data[4] = np.nan
        r, c = np.searchsorted(xs.indptr, 4, side="right") - 1, xs.indices[4]
        with pytest.raises(ValueError, match=rf"^x must be finite, got nan at row {r}, column {c}$"):
            layer(xs.tocoo(), g)


def test_the_lstm_checks_its_features():
    seqs = pack_neighbours(small_graph())
    lstm = LSTM(F_IN, 4)
    with pytest.raises(ValueError, match=r"^x must have shape \(8, 3\) for in_channels=3, got \(7, 3\)$"):
        lstm(features(7), seqs)
    with pytest.raises(TypeError, match=r"^x must have the layer's dtype float32, got int64$"):
        lstm(features().astype(np.int64), seqs)


# =============================================================================== 3. GCN normalisation
def test_gcn_norm_refuses_a_negative_degree_and_names_the_node():
    g = Graph.from_edge_index(np.array([[0, 1, 2], [1, 0, 1]]), num_nodes=3, edge_weight=np.array([-3.0, 2.0, 0.5]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # and no RuntimeWarning on the way
        with pytest.raises(ValueError, match=r"^gcn_norm: node 1 has weighted in-degree -1\.5 \(self-loop included\) "
                                             r"< 0, so D\^-1/2 is undefined"):
            ops.gcn_norm(g, np.float64)
        with pytest.raises(ValueError, match="node 1 has weighted in-degree -1.5"):
            GCNConv(2, 2, dtype=np.float64)(np.ones((3, 2)), g)


def test_gcn_norm_gives_a_zero_degree_coefficient_zero():
    # no self-loops: node 1 receives +1 and -1 (degree exactly 0), node 2 nothing (degree 0)
    g = Graph.from_edge_index(np.array([[0, 2, 1], [1, 1, 0]]), num_nodes=3, edge_weight=np.array([1.0, -1.0, 4.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gh, val = ops.gcn_norm(g, np.float64, add_self_loops=False)
    A = gh.to_scipy(val).toarray()
    np.testing.assert_array_equal(A[1], 0.0)                   # the edges into node 1: D^-1/2 of 0 taken as 0
    np.testing.assert_array_equal(A[2], 0.0)
    assert A[0, 1] == 0.0                                      # 1 -> 0: deg(0) = 4 but deg(1) = 0
    assert np.isfinite(A).all()


# =============================================================================== 4. sparse formats
def test_sageconv_takes_coo_features_like_gcn_and_gat():
    """The issue's case; and on a bipartite block (where the self term reads x[:N_dst])."""
    g = Graph.from_edge_index(np.array([[0, 1, 2], [1, 0, 1]]), num_nodes=3)
    X = np.array([[1, 0], [0, 2], [3, 0]], np.float64)
    for layer in (SAGEConv(2, 3, dtype=np.float64), GCNConv(2, 3, dtype=np.float64), GATConv(2, 3, dtype=np.float64)):
        np.testing.assert_allclose(layer(sp.coo_matrix(X), g), layer(X, g), rtol=1e-13, atol=1e-15)
    b = Graph.from_csr([0, 2, 3], [1, 2, 0], num_src=3)
    conv = SAGEConv(2, 3, dtype=np.float64)
    np.testing.assert_allclose(conv(sp.coo_matrix(X), b), conv(X, b), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("name", sorted(LAYERS) + ["GATConv-block"])
def test_every_layer_takes_every_scipy_format(name, fmt):
    g = block() if name in BIPARTITE else small_graph()
    X = features(g.num_src, dtype=np.float64, seed=3)
    X[X < 0.3] = 0.0                                           # sparse-ish
    Xs = getattr(sp, f"{fmt}_matrix")(X)
    dense_layer, sparse_layer = make(name, np.float64), make(name, np.float64)
    dense_layer.eval(), sparse_layer.eval()                    # the LSTM's neighbour order: CSR order in eval
    if name == "GraphConv-max":
        with pytest.raises(ValueError, match=r"^GraphConv\(aggr='max'\) needs dense x"):
            sparse_layer(Xs, g)
        return
    if name == "GINConv":                                      # (1 + eps) x + A x, then nn: x must be dense
        with pytest.raises(TypeError, match=r"^GINConv needs dense x, got a sparse matrix$"):
            sparse_layer(Xs, g)
        return
    out = sparse_layer(Xs, g)
    expected = dense_layer(X, g)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    G = np.random.default_rng(1).standard_normal(out.shape)
    assert sparse_layer.backward(G) is None                    # features are data: no input gradient
    dense_layer.backward(G)
    for k in dense_layer.grads:
        np.testing.assert_allclose(sparse_layer.grads[k], dense_layer.grads[k], rtol=1e-11, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("fmt", ["csc", "coo"])
def test_dropout_on_any_scipy_format_equals_dropout_on_csr(fmt):
    # an unsorted COO: its .data is not in the order of the CSR it becomes, so the mask must be drawn on the CSR
    rows, cols = np.array([2, 0, 1, 2]), np.array([0, 0, 1, 1])
    X = sp.coo_matrix((np.array([3.0, 1.0, 2.0, 4.0]), (rows, cols)), shape=(3, 2))
    expected = Dropout(0.5, seed=1)(X.tocsr()).toarray()
    got = Dropout(0.5, seed=1)(X if fmt == "coo" else X.tocsc()).toarray()
    np.testing.assert_array_equal(got, expected)
    assert set(np.unique(got)) <= {0.0, 2.0, 4.0, 6.0, 8.0}    # each stored value kept x 2 or dropped, in place


# =============================================================================== 5. the gradient checker's floor
def _zero_gradient_case():
    g = Graph.from_edge_index(np.array([[0, 1, 1, 2, 3, 0], [1, 0, 2, 1, 1, 3]]), num_nodes=4)
    return g, GATConv(3, 2, heads=2, dtype=np.float64, seed=7), np.random.default_rng(0).standard_normal((4, 3))


def test_gradcheck_passes_a_correct_zero_gradient():
    g, conv, X = _zero_gradient_case()
    rows = {r.parameter: r for r in check_module("GAT zero att_dst", conv, X, g)}
    assert np.abs(conv.grads["att_dst"]).max() < 1e-15         # analytic: cancellation noise around 0
    assert all(r.passed for r in rows.values()), rows
    assert rows["att_dst"].error < 1e-6


def test_gradcheck_floor_still_fails_a_wrong_small_gradient():
    g, conv, X = _zero_gradient_case()

    class Off(GATConv):                                        # att_dst's gradient off by 1e-6 (truly 0)
        def backward(self, grad_out):
            dx = super().backward(grad_out)
            self.grads["att_dst"] += 1e-6
            return dx

    off = Off(3, 2, heads=2, dtype=np.float64, seed=7)
    rows = {r.parameter: r for r in check_module("GAT off", off, X, g)}
    assert not rows["att_dst"].passed and rows["att_dst"].error > 1e-5
    assert rows["W"].passed and rows["input"].passed

    class OnePercent(Linear):                                  # a 1 % error in a gradient of size ~1e-3
        def backward(self, grad_out):
            dx = super().backward(grad_out)
            self.grads["W"] *= 1.01
            return dx

    x = 1e-3 * np.random.default_rng(0).random((4, 3))
    rows = {r.parameter: r for r in check_module("small", OnePercent(3, 2, dtype=np.float64), x)}
    assert not rows["W"].passed and rows["W"].error > 1e-3
    assert rows["b"].passed and rows["input"].passed


def test_the_floor_is_the_round_off_bound():
    floor = roundoff_floor(10.0, 1e-6)
    assert floor == pytest.approx(10 * np.finfo(np.float64).eps * 10.0 / 1e-6)
    # below the floor: judged by the absolute error; above it: relative, as without a floor
    assert relative_error(np.array([1e-17, -1e-17]), np.zeros(2), floor) < 1e-6
    assert relative_error(np.array([1e-17, -1e-17]), np.zeros(2)) == pytest.approx(1.0)
    assert relative_error(np.array([1.01]), np.array([1.0]), floor) == pytest.approx(relative_error([1.01], [1.0]))


def test_graph_errors_are_value_errors():
    assert issubclass(GraphError, ValueError)


def test_the_loss_refuses_a_mask_or_labels_of_the_wrong_shape_or_dtype():
    from gnn_scratch.nn import SoftmaxCrossEntropy, accuracy
    Z = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"ops.cross_entropy: mask must have shape \(4,\)"):
        SoftmaxCrossEntropy().forward(Z, np.zeros(4, np.int64), np.ones(3, bool))
    with pytest.raises(TypeError, match="mask must be a bool array"):
        SoftmaxCrossEntropy().forward(Z, np.zeros(4, np.int64), np.ones(4, np.int64))
    with pytest.raises(TypeError, match="y must hold integer class ids"):
        accuracy(Z, np.zeros(4, np.float32))


def test_every_model_names_a_bad_hidden_channels_itself():
    """A model's hidden width is refused under its own name, not as the in/out_channels of the layer it reaches."""
    import inspect

    from gnn_scratch.models.registry import MODELS
    checked = []
    for name, cls in sorted(MODELS.items()):
        sig = inspect.signature(cls.__init__)
        if "hidden_channels" not in sig.parameters:
            continue
        required = {p for p, v in sig.parameters.items() if p != "self" and v.default is inspect.Parameter.empty}
        kw = dict(in_channels=3, out_channels=2)
        if "pe" in sig.parameters and sig.parameters["pe"].default not in (None, "none"):
            kw["pe_dim"] = 4                   # a positional encoding's width has no default
        if name == "han":
            kw.update(metadata=(["a"], [("a", "to", "a")]), target="a")
        elif name == "rgcn":
            kw.update(num_nodes={"a": 4}, metadata=(["a"], [("a", "to", "a")]), target="a")
        assert required <= set(kw), (name, required)
        kw = {k: v for k, v in kw.items() if k in sig.parameters}
        for bad, error in ((0, ValueError), (-4, ValueError), (2.5, TypeError)):
            with pytest.raises(error, match="hidden_channels must be a positive int"):
                cls(hidden_channels=bad, **kw)
        checked.append(name)
    assert {"gcn", "gat", "sage", "gin", "cheb", "gconv_gru", "han", "rgcn"} <= set(checked)
