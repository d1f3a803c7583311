"""The op registry: every registered op has its three implementations, and the fast ones equal the reference.

The test walks ``kernels.registry.OPS``: an op without an example below fails, so a new op cannot
be registered without being checked. Each example builds host inputs (float64, a graph with an
isolated node, a self-loop and a repeated edge); the reference runs on copies, then the Numba/BLAS
implementation on fresh copies, then the CUDA one on device copies (under Numba's simulator in CI)
and every output -- the mutated arguments included, for in-place ops -- must agree.
"""
import numpy as np
import pytest

from gnn_scratch.graph import Graph
from gnn_scratch.kernels import registry, rng

N, H, F, C = 6, 2, 3, 4

# sources -> targets: a self-loop (2 -> 2), a repeated edge (0 -> 1 twice), node 5 isolated
EDGES = np.array([[0, 0, 1, 2, 3, 4, 1, 2, 0],
                  [1, 1, 0, 2, 2, 3, 4, 4, 3]])
GRAPH = Graph.from_edge_index(EDGES, num_nodes=N)
E = GRAPH.num_edges


def _r(g, *shape):
    return g.standard_normal(shape)


def _csr():
    return (GRAPH.indptr, GRAPH.indices)


def _t():
    return (GRAPH.t_indptr, GRAPH.t_indices, GRAPH.t_perm)


def _gat_inputs(g, with_dropout=True):
    keep = (g.random((E, H)) < 0.7).astype(np.uint8) if with_dropout else np.zeros((0, H), np.uint8)
    return _r(g, N, H), _r(g, N, H), _r(g, N, H, F), np.float64(0.2), keep, np.float64(1 / 0.7)


def _gat_saved(g):
    a_dst, a_src, Z, slope, keep, scale = _gat_inputs(g)
    out, row_max, row_sum = np.empty((N, H, F)), np.empty((N, H)), np.empty((N, H))
    registry.resolve("gat_forward", "reference")(*_csr(), a_dst, a_src, Z, slope, keep, scale, out, row_max, row_sum)
    return a_dst, a_src, Z, slope, keep, scale, row_max, row_sum


def _argmax(X):
    out, arg = np.empty((N, F)), np.empty((N, F), np.int64)
    registry.resolve("spmm_max", "reference")(*_csr(), X, out, arg)
    return arg


def _alpha(g):
    out = np.empty((E, H))
    registry.resolve("edge_softmax", "reference")(GRAPH.indptr, _r(g, E, H), out)
    return out


def _labels(g):
    return g.integers(0, C, N).astype(np.int64)


# the node segments of a batch of B = 4 graphs over the N nodes; graph 1 is empty (a GraphBatch has
# none, the kernels' contract gives it 0, argmax -1 and no gradient)
PTR = np.array([0, 2, 2, 3, N], dtype=np.int64)
B = PTR.size - 1


def _pool_argmax(X):
    out, arg = np.empty((B, F)), np.empty((B, F), np.int64)
    registry.resolve("pool_max", "reference")(PTR, X, out, arg)
    return arg


def _bn_stats(g):
    """batch_norm_forward's inputs: X (N, F), mean, (positive) var, eps, gamma, beta."""
    return _r(g, N, F), _r(g, F), np.abs(_r(g, F)) + 0.1, 1e-5, _r(g, F), _r(g, F)


# op name -> g -> (args, indices of the arguments that are outputs or are modified in place)
EXAMPLES = {
    "spmm_sum": lambda g: ((*_csr(), _r(g, E), _r(g, N, F), np.empty((N, F))), [4]),
    "spmm_sum_bias": lambda g: ((*_csr(), _r(g, E), _r(g, N, F), _r(g, F), True, np.empty((N, F))), [6]),
    "spmm_sum_perm": lambda g: ((*_t(), _r(g, E), _r(g, N, F), np.empty((N, F))), [5]),
    "spmm_mean": lambda g: ((*_csr(), _r(g, N, F), np.empty((N, F))), [3]),
    "spmm_mean_bias": lambda g: ((*_csr(), _r(g, N, F), _r(g, F), True, True, _r(g, N, F)), [6]),
    "spmm_mean_backward": lambda g: ((*_t()[:2], GRAPH.indptr, _r(g, N, F), np.empty((N, F))), [4]),
    "scale_rows_by_inverse_degree": lambda g: ((GRAPH.indptr, _r(g, N, F), np.empty((N, F))), [2]),
    "spmm_max": lambda g: ((*_csr(), _r(g, N, F), np.empty((N, F)), np.empty((N, F), np.int64)), [3, 4]),
    "spmm_max_backward": lambda g: ((*_t()[:2], _argmax(_r(g, N, F)), _r(g, N, F), np.empty((N, F))), [4]),
    "sddmm_dot": lambda g: ((*_csr(), _r(g, N, H, F), _r(g, N, H, F), np.empty((E, H))), [4]),
    "sddmm_add": lambda g: ((*_csr(), _r(g, N, H), _r(g, N, H), np.empty((E, H))), [4]),
    "segment_sum": lambda g: ((GRAPH.indptr, _r(g, E, H), np.empty((N, H))), [2]),
    "segment_sum_perm": lambda g: ((GRAPH.t_indptr, GRAPH.t_perm, _r(g, E, H), np.empty((N, H))), [3]),
    "edge_softmax": lambda g: ((GRAPH.indptr, _r(g, E, H), np.empty((E, H))), [2]),
    "edge_softmax_backward": lambda g: ((GRAPH.indptr, _alpha(g), _r(g, E, H), np.empty((E, H))), [3]),
    "gat_forward": lambda g: ((*_csr(), *_gat_inputs(g), np.empty((N, H, F)), np.empty((N, H)), np.empty((N, H))),
                              [8, 9, 10]),
    "gat_backward": lambda g: ((*_csr(), *_t(), *_gat_saved(g), _r(g, N, H, F), np.empty((E, H)), np.empty((E, H)),
                                np.empty((N, H, F)), np.empty((N, H)), np.empty((N, H))), [14, 15, 16, 17, 18]),
    "matmul": lambda g: ((_r(g, N, F), _r(g, F, C), np.empty((N, C))), [2]),
    "spmm_sum_bias_matmul": lambda g: ((*_csr(), _r(g, E), _r(g, N, F), _r(g, F), True, _r(g, F, C), np.empty((N, C))),
                                       [7]),
    "matmul_tn": lambda g: ((_r(g, N, F), _r(g, N, C), _r(g, F, C), True), [2]),
    "matmul_nt": lambda g: ((_r(g, N, F), _r(g, C, F), np.empty((N, C))), [2]),
    "col_sum": lambda g: ((_r(g, N, F), _r(g, F), True), [1]),
    "fill": lambda g: ((_r(g, N, F), 0.0), [0]),
    "add": lambda g: ((_r(g, N, F), _r(g, N, F)), [0]),
    "sub": lambda g: ((_r(g, N, F), _r(g, N, F)), [0]),
    "add_bias": lambda g: ((_r(g, N, F), _r(g, F)), [0]),
    "mul": lambda g: ((_r(g, N, F), _r(g, N, F), np.empty((N, F))), [2]),
    "head_dot": lambda g: ((_r(g, N, H, F), _r(g, H, F), np.empty((N - 2, H))), [2]),
    "head_dot_backward_att": lambda g: ((_r(g, N - 2, H), _r(g, N, H, F), _r(g, H, F), True), [2]),
    "head_dot_backward_Z": lambda g: ((_r(g, N, H, F), _r(g, N - 2, H), _r(g, H, F)), [0]),
    "head_mean": lambda g: ((_r(g, N, H, F), np.empty((N, F))), [1]),
    "head_mean_backward": lambda g: ((_r(g, N, F), np.empty((N, H, F))), [1]),
    # one zero row: the eps branch of the normalisation
    "row_normalize": lambda g: ((np.vstack([_r(g, N - 1, F), np.zeros((1, F))]), np.float64(1e-12),
                                 np.empty((N, F)), np.empty(N)), [2, 3]),
    "row_normalize_backward": lambda g: ((_r(g, N, F), _r(g, N, F), np.abs(_r(g, N)) * [1, 1, 1, 1, 1, 0],
                                          np.float64(1e-12), np.empty((N, F))), [4]),
    "relu": lambda g: ((_r(g, N, F), np.empty((N, F)), np.empty((N, F), np.bool_)), [1, 2]),
    "relu_backward": lambda g: ((_r(g, N, F), _r(g, N, F) > 0, np.empty((N, F))), [2]),
    "leaky_relu": lambda g: ((_r(g, N, F), np.float64(0.2), np.empty((N, F)), np.empty((N, F), np.bool_)), [2, 3]),
    "leaky_relu_backward": lambda g: ((_r(g, N, F), _r(g, N, F) > 0, np.float64(0.2), np.empty((N, F))), [3]),
    "elu": lambda g: ((_r(g, N, F), np.float64(1.0), np.empty((N, F)), np.empty((N, F), np.bool_)), [2, 3]),
    "elu_backward": lambda g: ((_r(g, N, F), _r(g, N, F) > 0, _r(g, N, F), np.float64(1.0), np.empty((N, F))), [4]),
    "elu_inference": lambda g: ((_r(g, N, F) * 8, np.float64(1.3), np.empty((N, F)), np.empty((N, F), np.bool_)),
                                [2, 3]),   # issue 19
    "dropout": lambda g: ((_r(g, 40, F), np.uint64(g.integers(0, 1 << 63)), rng.keep_threshold(0.6),
                           np.float64(1 / 0.6), np.empty((40, F))), [4]),
    "keep_mask": lambda g: ((np.uint64(g.integers(0, 1 << 63)), rng.keep_threshold(0.6),
                             np.empty((40, H), np.uint8)), [2]),
    "cross_entropy": lambda g: ((_r(g, N, C), _labels(g), g.random(N) < 0.6, np.empty((N, 2)), np.empty(2),
                                 np.empty(1)), [3, 4, 5]),
    "cross_entropy_backward": lambda g: ((_r(g, N, C), _labels(g), np.zeros(0, np.bool_),
                                          np.array([0.0, float(N)]), np.empty((N, C))), [4]),
    "accuracy_counts": lambda g: ((_r(g, N, C), _labels(g), g.random(N) < 0.6, np.empty((N, 2)), np.empty(2)),
                                  [3, 4]),
    "pool_mean": lambda g: ((PTR, _r(g, N, F), np.empty((B, F))), [2]),
    "pool_max": lambda g: ((PTR, _r(g, N, F), np.empty((B, F)), np.empty((B, F), np.int64)), [2, 3]),
    "pool_sum_backward": lambda g: ((PTR, _r(g, B, F), np.empty((N, F))), [2]),
    "pool_mean_backward": lambda g: ((PTR, _r(g, B, F), np.empty((N, F))), [2]),
    "pool_max_backward": lambda g: ((PTR, _pool_argmax(_r(g, N, F)), _r(g, B, F), np.empty((N, F))), [3]),
    "batch_norm_stats": lambda g: ((_r(g, N, F), 0.1, np.empty(F), np.empty(F), _r(g, F), np.abs(_r(g, F))),
                                   [2, 3, 4, 5]),
    "batch_norm_forward": lambda g: ((*_bn_stats(g), np.empty((N, F))), [6]),
    "batch_norm_backward": lambda g: ((_r(g, N, F), *_bn_stats(g)[:5], True, np.empty((N, F)),
                                       np.empty(F), np.empty(F)), [7, 8, 9]),
    "batch_norm_relu_forward": lambda g: ((*_bn_stats(g), np.empty((N, F)), np.empty((N, F), np.bool_)), [6, 7]),
    "batch_norm_relu_backward": lambda g: ((_r(g, N, F), _r(g, N, F) > 0, *_bn_stats(g)[:5], True, np.empty((N, F)),
                                            np.empty(F), np.empty(F)), [8, 9, 10]),
    "mse": lambda g: ((_r(g, N, F), _r(g, N, F), np.empty(N), np.empty(1)), [2, 3]),
    "mse_backward": lambda g: ((_r(g, N, F), _r(g, N, F), np.empty((N, F))), [2]),
    "sigmoid": lambda g: ((_r(g, N, F) * 30, np.empty((N, F))), [1]),      # * 30: e^-x would overflow float32
    "tanh": lambda g: ((_r(g, N, F) * 3, np.empty((N, F))), [1]),
    "sigmoid_backward": lambda g: ((_r(g, N, F), g.random((N, F)), np.empty((N, F))), [2]),
    "tanh_backward": lambda g: ((_r(g, N, F), np.tanh(_r(g, N, F)), np.empty((N, F))), [2]),
    "gru_state": lambda g: ((g.random((N, F)), _r(g, N, F), np.tanh(_r(g, N, F)), np.empty((N, F))), [3]),
    "gru_state_backward": lambda g: ((_r(g, N, F), g.random((N, F)), _r(g, N, F), np.tanh(_r(g, N, F)),
                                      np.empty((N, F)), np.empty((N, F)), np.empty((N, F))), [4, 5, 6]),
    # the LSTM's peepholes and biases are one row, (1, F) as in PyG Temporal or (F,): both shapes appear
    "lstm_gate": lambda g: ((_r(g, N, F) * 30, _r(g, 1, F), _r(g, N, F), _r(g, F), np.empty((N, F))), [4]),
    "lstm_state": lambda g: ((g.random((N, F)), g.random((N, F)), _r(g, N, F), _r(g, 1, F), _r(g, N, F),
                              _r(g, N, F) * 30, _r(g, 1, F), _r(g, F), *(np.empty((N, F)) for _ in range(4))),
                             [8, 9, 10, 11]),
    "lstm_state_backward": lambda g: ((_r(g, N, F), _r(g, N, F), g.random((N, F)), g.random((N, F)),
                                       np.tanh(_r(g, N, F)), _r(g, N, F), g.random((N, F)), _r(g, N, F),
                                       _r(g, 1, F), _r(g, F), _r(g, 1, F), *(np.empty((N, F)) for _ in range(5))),
                                      [11, 12, 13, 14, 15]),
    "row_softmax": lambda g: ((_r(g, N, F) * 400, np.empty((N, F))), [1]),  # * 400: an unshifted exp overflows
    "row_softmax_backward": lambda g: ((_softmax_rows(_r(g, N, F)), _r(g, N, F), np.empty((N, F))), [2]),
    "periods_first": lambda g: ((_r(g, N, F, C), np.empty((C, N, F))), [1]),
    "periods_last": lambda g: ((_r(g, C, N, F), np.empty((N, F, C))), [1]),
    # DGI's pieces: PReLU with one shared slope and with one per channel (the slope gradient's two reductions)
    "prelu": lambda g: ((_r(g, N, F), _r(g, F), np.empty((N, F))), [2]),
    "prelu_backward": lambda g: ((_r(g, N, F), _r(g, N, F), np.array([0.25]), np.empty((N, F)), np.empty((1, F)),
                                  np.empty(1)), [3, 4, 5]),
    "bilinear_rows": lambda g: ((_r(g, N, F), _r(g, N, H, F), np.empty((N, H))), [2]),
    "bilinear_rows_backward": lambda g: ((_r(g, N, H), _r(g, N, F), _r(g, N, H, F), np.empty((N, F)),
                                          np.empty((N, H, F))), [3, 4]),
    "bce_with_logits": lambda g: ((_r(g, N, 1) * 40, g.random((N, 1)), np.empty((N, 1)), np.empty(1)), [2, 3]),
    "bce_with_logits_backward": lambda g: ((_r(g, N, 1) * 40, g.random((N, 1)), np.empty((N, 1))), [2]),
    "gin_aggregate": lambda g: ((*_csr(), _r(g, N, F), np.array([0.3]), np.empty((N, F))), [4]),
    "sgd_update": lambda g: ((_r(g, N, F), _r(g, N, F), _r(g, N, F), 0.1, 0.9, 5e-4), [0, 2]),
    "adam_update": lambda g: ((_r(g, N, F), _r(g, N, F), _r(g, N, F), np.abs(_r(g, N, F)), 3, 0.01, (0.9, 0.999),
                               1e-8, 5e-4), [0, 2, 3]),
    # graph transformers: LayerNorm's rows, TransformerConv's beta gate (logits * 3: both sigmoid branches)
    "scale": lambda g: ((_r(g, N, H, F), 0.37, np.empty((N, H, F))), [2]),
    "layer_norm": lambda g: ((_r(g, N, F) + 5, _r(g, F), _r(g, F), 1e-5, np.empty((N, F)), np.empty((N, F)),
                              np.empty(N)), [4, 5, 6]),
    "layer_norm_backward": lambda g: ((_r(g, N, F), _r(g, N, F), g.random(N) + 0.5, _r(g, F), np.empty((N, F))), [4]),
    "beta_gate": lambda g: ((_r(g, N, F) * 3, _r(g, N, F) * 3, _r(g, 3 * F), np.empty((N, F)), np.empty(N)), [3, 4]),
    "beta_gate_backward": lambda g: ((_r(g, N, F), _r(g, N, F), _r(g, N, F), g.random(N), _r(g, 3 * F),
                                      np.empty((N, F)), np.empty((N, F)), np.empty(N)), [5, 6, 7]),
    # full attention within each graph of PTR (graph 1 empty, graph 2 a single node); V wider than Q, K
    "flash_attention_forward": lambda g: ((PTR, _r(g, N, H, F), _r(g, N, H, F), _r(g, N, H, C), np.float64(0.6),
                                           np.empty((N, H, C)), np.empty((N, H))), [5, 6]),
    "flash_attention_backward": lambda g: ((PTR, *_attention_saved(g), _r(g, N, H, C), np.float64(0.6),
                                            np.empty((N, H)), np.empty((N, H, F)), np.empty((N, H, F)),
                                            np.empty((N, H, C))), [8, 9, 10, 11]),
}


def _attention_saved(g):
    """Q, K, V and the O, L that the reference forward saves for them."""
    Q, K, V = _r(g, N, H, F), _r(g, N, H, F), _r(g, N, H, C)
    O, L = np.empty((N, H, C)), np.empty((N, H))
    registry.resolve("flash_attention_forward", "reference")(PTR, Q, K, V, np.float64(0.6), O, L)
    return Q, K, V, O, L


def _softmax_rows(x):
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _copy(a):
    return a.copy() if isinstance(a, np.ndarray) else a


def _run(name, implementation, args, outs):
    """The outputs of op ``name`` in ``implementation`` on copies of ``args`` (on the device for cuda)."""
    fn = registry.resolve(name, implementation)
    args = [_copy(a) for a in args]
    if implementation == "cuda":
        from numba import cuda
        args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
        fn(*args)
        return [args[i].copy_to_host() for i in outs]
    fn(*args)
    return [args[i] for i in outs]


def test_every_registered_op_has_an_example_and_every_example_an_op():
    assert set(EXAMPLES) == set(registry.OPS), (
        f"ops without an example: {sorted(set(registry.OPS) - set(EXAMPLES))}; "
        f"examples of no op: {sorted(set(EXAMPLES) - set(registry.OPS))}")


@pytest.mark.parametrize("name", sorted(registry.OPS))
def test_every_op_has_all_three_implementations(name):
    for implementation in registry.IMPLEMENTATIONS:
        if implementation == "cuda":
            pytest.importorskip("numba.cuda")
        assert callable(registry.resolve(name, implementation)), (name, implementation)


@pytest.mark.parametrize("implementation", ["cpu", "cuda"])
@pytest.mark.parametrize("name", sorted(registry.OPS))
def test_fast_implementation_equals_the_reference(name, implementation):
    if implementation == "cuda":
        pytest.importorskip("numba.cuda")
    args, outs = EXAMPLES[name](np.random.default_rng(sorted(registry.OPS).index(name)))
    want = _run(name, "reference", args, outs)
    got = _run(name, implementation, args, outs)
    for i, (w, o) in zip(outs, zip(want, got)):
        assert o.shape == w.shape and o.dtype == w.dtype, (name, i)
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(o, w, err_msg=f"{name}: argument {i}")
        else:
            np.testing.assert_allclose(o, w, rtol=1e-10, atol=1e-12, err_msg=f"{name}: argument {i}")


def test_dispatch_follows_the_arrays_and_the_cpu_backend():
    x = np.zeros(3)
    assert registry.implementation_for(x) == "cpu"
    registry.set_cpu_backend("reference")
    try:
        assert registry.implementation("spmm_sum", x) is registry.resolve("spmm_sum", "reference")
    finally:
        registry.set_cpu_backend("cpu")
    with pytest.raises(ValueError, match="cpu backend must be one of"):
        registry.set_cpu_backend("gpu")
    with pytest.raises(KeyError, match="no op named"):
        registry.resolve("no_such_op", "cpu")


def test_masks_are_the_same_bits_on_every_implementation():
    """The counter hash names a mask: the reference, Numba and CUDA keep masks agree element for element."""
    key, threshold = np.uint64(0x1234_5678_9ABC_DEF0), rng.keep_threshold(0.3)
    masks = [_run("keep_mask", impl, (key, threshold, np.empty((1000, 3), np.uint8)), [2])[0]
             for impl in ("reference", "cpu")]
    np.testing.assert_array_equal(masks[0], masks[1])
    assert abs(masks[0].mean() - 0.3) < 0.03
    np.testing.assert_array_equal(masks[0].reshape(-1), rng.keep_mask_host(key, threshold, 3000))
