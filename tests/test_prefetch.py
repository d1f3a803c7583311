"""kernels/prefetch.py: the llvm.prefetch intrinsic compiles, emits the instruction, never faults, and the
kernels that use it (including the size-gated hints of spmm_sum_perm / spmm_mean_backward) give the same
bits as without it."""
import numpy as np
import pytest
from numba import njit

from gnn_scratch.kernels import cpu, reference
from gnn_scratch.kernels.prefetch import (CACHE_LINE, NO_PREFETCH, PREFETCH_MIN_BYTES, prefetch_distance,
                                         prefetch_line, prefetch_row)


@njit(cache=False)
def _touch(X, rows):
    """Prefetch the given rows (some far out of range) and return a plain sum of X: the hint changes nothing."""
    for k in range(rows.size):
        prefetch_row(X, rows[k])
        prefetch_line(X, rows[k], 3 * CACHE_LINE)
    s = 0.0
    for v in X.ravel():
        s += v
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 2, 16)])
def test_prefetch_compiles_for_every_array_kind_and_never_faults(dtype, shape):
    X = np.arange(np.prod(shape)).astype(dtype).reshape(shape)
    rows = np.array([0, X.shape[0] - 1, 10 ** 9, -(10 ** 9)], dtype=np.int64)   # hints past both ends
    assert _touch(X, rows) == float(X.sum())


def test_prefetch_emits_the_llvm_intrinsic():
    X = np.zeros((4, 64), dtype=np.float32)
    _touch(X, np.zeros(1, dtype=np.int64))
    ir = next(iter(_touch.inspect_llvm().values()))
    assert "llvm.prefetch" in ir


def test_prefetch_distance_is_about_4kb_of_rows_clamped_to_4_64():
    # arrays just past PREFETCH_MIN_BYTES (smaller ones are not prefetched at all: next test)
    assert prefetch_distance(np.zeros((4097, 64), np.float32)) == 16      # 256 B rows
    assert prefetch_distance(np.zeros((257, 1024), np.float32)) == 4      # 4 KB rows: at least 4
    assert prefetch_distance(np.zeros((131073, 2), np.float32)) == 64     # 8 B rows: at most 64
    assert prefetch_distance(np.zeros((2049, 64), np.int64)) == 8


def test_arrays_that_fit_in_cache_are_not_prefetched():
    assert PREFETCH_MIN_BYTES == 1 << 20
    assert prefetch_distance(np.zeros((4096, 64), np.float32)) == NO_PREFETCH     # exactly 1 MB
    assert prefetch_distance(np.zeros((3, 2), np.float32)) == NO_PREFETCH
    assert prefetch_distance(np.zeros((0, 64), np.float32)) == NO_PREFETCH
    # the kernels' test ``e + pd < E`` is then false for any edge list that fits in memory
    assert NO_PREFETCH > 1 << 48


def _big_random_csr(n, e, seed):
    """CSR and transpose with more than cpu._PREFETCH_MIN_ITEMS edges and rows, so the gated hints run."""
    from gnn_scratch.graph import Graph
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, e)
    dst = rng.integers(0, n, e)
    dst[: n // 50] = 0                        # a hub, some repeats, isolated nodes likely
    return Graph.from_edge_index(np.stack([src, dst]), num_nodes=n)


@pytest.fixture(scope="module")
def big():
    n = cpu._PREFETCH_MIN_ITEMS + 1000
    g = _big_random_csr(n, cpu._PREFETCH_MIN_ITEMS + 5000, 0)
    assert g.num_edges > cpu._PREFETCH_MIN_ITEMS and g.indptr.size > cpu._PREFETCH_MIN_ITEMS
    # width-4 float32 rows of this many nodes are over PREFETCH_MIN_BYTES: the kernels prefetch them
    assert prefetch_distance(np.zeros((g.num_src, 4), np.float32)) != NO_PREFETCH
    return g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gathers_with_the_row_prefetch_give_the_reference_bits(big, dtype):
    """spmm_sum, spmm_mean and gin_aggregate on a graph whose rows are prefetched: the reference's sums, bit for bit."""
    from gnn_scratch.kernels import gin_cpu, gin_reference
    g, F = big, 4
    rng = np.random.default_rng(4)
    X = rng.standard_normal((g.num_src, F)).astype(dtype)
    w = rng.standard_normal(g.num_edges).astype(dtype)
    eps = np.array([0.25], dtype)
    for name, args in (("spmm_sum", (g.indptr, g.indices, w, X)), ("spmm_mean", (g.indptr, g.indices, X))):
        got, want = np.full((g.num_dst, F), np.nan, dtype), np.empty((g.num_dst, F), dtype)
        getattr(cpu, name)(*args, got)
        getattr(reference, name)(*args, want)
        np.testing.assert_array_equal(got, want, err_msg=name)
    got, want = np.full((g.num_dst, F), np.nan, dtype), np.empty((g.num_dst, F), dtype)
    gin_cpu.gin_aggregate(g.indptr, g.indices, X, eps, got)
    gin_reference.gin_aggregate(g.indptr, g.indices, X, eps, want)
    np.testing.assert_array_equal(got, want, err_msg="gin_aggregate")


def test_large_permuted_weights_are_prefetched_even_when_the_rows_fit_in_cache():
    """A few hundred nodes (rows in L2) but more edges than _PREFETCH_MIN_ITEMS: the weight prefetch keeps its
    distance (``prefetch_distance(X, needed=True)``), and the result is the reference's."""
    from gnn_scratch.graph import Graph
    rng = np.random.default_rng(5)
    n, e, F = 300, cpu._PREFETCH_MIN_ITEMS + 2000, 8
    g = Graph.from_edge_index(rng.integers(0, n, (2, e)), num_nodes=n)   # many repeated edges
    G = rng.standard_normal((n, F)).astype(np.float32)
    assert prefetch_distance(G) == NO_PREFETCH and prefetch_distance(G, True) != NO_PREFETCH
    w = rng.standard_normal(g.num_edges).astype(np.float32)
    got, want = np.empty((n, F), np.float32), np.empty((n, F), np.float32)
    cpu.spmm_sum_perm(g.t_indptr, g.t_indices, g.t_perm, w, G, got)
    reference.spmm_sum_perm(g.t_indptr, g.t_indices, g.t_perm, w, G, want)
    np.testing.assert_array_equal(got, want)


def test_spmm_sum_perm_with_the_weight_prefetch_equals_the_prepermuted_sum_and_the_reference(big):
    g, F = big, 4
    rng = np.random.default_rng(1)
    w = rng.standard_normal(g.num_edges).astype(np.float32)
    G = rng.standard_normal((g.num_dst, F)).astype(np.float32)
    out = np.empty((g.num_src, F), np.float32)
    cpu.spmm_sum_perm(g.t_indptr, g.t_indices, g.t_perm, w, G, out)
    pre = np.empty_like(out)
    cpu.spmm_sum(g.t_indptr, g.t_indices, np.ascontiguousarray(w[g.t_perm]), G, pre)
    np.testing.assert_array_equal(out, pre)                     # same products, same order: same bits
    ref = np.empty_like(out)
    reference.spmm_sum_perm(g.t_indptr, g.t_indices, g.t_perm, w, G, ref)
    np.testing.assert_array_equal(out, ref)


def test_spmm_mean_backward_with_the_degree_prefetch_equals_the_two_step_form_and_the_reference(big):
    g, F = big, 4
    rng = np.random.default_rng(2)
    G = rng.standard_normal((g.num_dst, F)).astype(np.float32)
    out = np.empty((g.num_src, F), np.float32)
    cpu.spmm_mean_backward(g.t_indptr, g.t_indices, g.indptr, G, out)
    Gs = np.empty_like(G)
    cpu.scale_rows_by_inverse_degree(g.indptr, G, Gs)
    two = np.empty_like(out)
    cpu.spmm_sum(g.t_indptr, g.t_indices, np.ones(g.num_edges, np.float32), Gs, two)
    np.testing.assert_array_equal(out, two)
    ref = np.empty_like(out)
    reference.spmm_mean_backward(g.t_indptr, g.t_indices, g.indptr, G, ref)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_backward_scatter_and_gather_give_the_reference_bits(dtype):
    """Both paths of spmm_max_backward (the scatter, the gather over the transpose) give the reference's bits."""
    from gnn_scratch.graph import Graph
    rng = np.random.default_rng(3)
    n, e, F = 300, 2500, 24
    src, dst = rng.integers(0, n, e), rng.integers(0, n - 20, e)   # the last 20 rows empty: argmax -1
    dst[:40] = 7                                                    # a hub
    g = Graph.from_edge_index(np.stack([np.concatenate([src, src[:30]]), np.concatenate([dst, dst[:30]])]),
                              num_nodes=n)               # repeated edges too
    X = rng.integers(-3, 4, (n, F)).astype(dtype)         # many ties: the first edge in CSR order wins
    out, argmax = np.empty((n, F), dtype), np.empty((n, F), np.int64)
    cpu.spmm_max(g.indptr, g.indices, X, out, argmax)
    assert (argmax == -1).any()
    G = rng.standard_normal((n, F)).astype(dtype)
    want = np.empty((n, F), dtype)
    reference.spmm_max_backward(g.t_indptr, g.t_indices, argmax, G, want)
    got = np.full((n, F), np.nan, dtype)
    cpu._max_backward_scatter(argmax, G, got)
    np.testing.assert_array_equal(got, want, err_msg="scatter")
    got = np.full((n, F), np.nan, dtype)
    cpu._max_backward_gather(g.t_indptr, g.t_indices, argmax, G, got)
    np.testing.assert_array_equal(got, want, err_msg="gather")
    got = np.full((n, F), np.nan, dtype)
    cpu.spmm_max_backward(g.t_indptr, g.t_indices, argmax, G, got)
    np.testing.assert_array_equal(got, want)
    assert cpu.spmm_max_backward.targetoptions.get("parallel")   # the registry's small-call rule applies


def test_max_backward_with_the_line_prefetch_equals_the_reference_on_a_big_graph(big):
    g, F = big, 4                                    # grad_X.size > _PREFETCH_MIN_ITEMS: the hints run
    rng = np.random.default_rng(4)
    X = rng.standard_normal((g.num_src, F)).astype(np.float32)
    out, argmax = np.empty((g.num_dst, F), np.float32), np.empty((g.num_dst, F), np.int64)
    cpu.spmm_max(g.indptr, g.indices, X, out, argmax)
    G = rng.standard_normal((g.num_dst, F)).astype(np.float32)
    want = np.empty((g.num_src, F), np.float32)
    reference.spmm_max_backward(g.t_indptr, g.t_indices, argmax, G, want)
    assert g.num_src * F > cpu._PREFETCH_MIN_ITEMS
    got = np.full_like(want, np.nan)
    cpu._max_backward_scatter(argmax, G, got)
    np.testing.assert_array_equal(got, want)
    got = np.full_like(want, np.nan)
    cpu.spmm_max_backward(g.t_indptr, g.t_indices, argmax, G, got)      # big: the scatter on any thread count
    np.testing.assert_array_equal(got, want)
