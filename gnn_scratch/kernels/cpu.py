"""CPU kernels in Numba: the same names, argument order and semantics as ``reference.py``.

Read the contract at the top of ``reference.py`` first. What this module adds is *how*:

* **Row ownership.** Every parallel loop gives whole destination rows (or whole rows of the
  transpose) to one thread, so no two threads ever write the same output element, no atomics are
  needed, and every result is the same bit for bit from run to run, whatever the thread count:
  each output element is reduced by one thread, in CSR edge order. (``spmm_max_backward``
  on a large graph is one thread's scatter in ascending destination order: see there.)
* **Edge-balanced chunks.** Rows are split into ``_num_chunks`` contiguous chunks of about equal
  cost (edges + rows, found by binary search on ``indptr``), so a power-law graph whose hubs sit
  together does not leave one thread with most of the work.
* **Contiguous inner loops** over the feature axis (the last, C-contiguous axis), which LLVM
  vectorises. No ``fastmath``: sums run in the reference's order (edge order) and precision
  (the output's dtype), so results match the reference to a few ulps, often exactly.
* **Software prefetch.** The gathering kernels (SpMM, SDDMM dot) are bound by the latency of
  loading random rows; each asks for the row it will need ~4 KB of rows ahead
  (``kernels/prefetch.py``: an LLVM ``prefetch`` hint, no fault, no effect on results), which
  keeps several loads in flight per core -- for a gathered matrix over 1 MB: a smaller one sits in
  L2 and the hints would only cost instructions. On a random graph they run at 50-85 % of a pure random
  row gather's bandwidth (DRAM latency x rows in flight), which is ~1/4 of the copy bandwidth
  here; ``scripts/measure_memory_bounds.py`` measures both.
* **Rows on cache lines.** A gathered row costs as many DRAM lines as it spans, so the ops allocate
  their outputs -- the matrices the next kernel gathers -- starting on a 64-byte line
  (``device.host_empty``); NumPy's arrays are only 16-byte aligned (malloc's), which often made a
  64-byte row (16 float32) two lines and a 256-byte row five. Same arithmetic, same bits.
* **No allocation** of a kernel's output: ``out`` is preallocated by the caller and fully overwritten (or, with
  ``accumulate``, added to); a kernel allocates at most a scratch row per task (``spmm_mean_bias``).

Arrays must be C-contiguous (``indptr`` int64, ``indices`` int32 from a ``Graph``; a scipy CSR matrix's own
int32 or int64 index arrays from ``dense_cpu.matmul``; float32 or float64 values).
The kernels do not validate their inputs (the layers do, once); out-of-range ids are undefined
behaviour here, as in a C kernel. Each dtype combination compiles once on first call
(``cache=True`` keeps the machine code in ``__pycache__`` for later runs).
"""
import numpy as np
from numba import get_num_threads, njit, prange

from .prefetch import prefetch_distance, prefetch_line, prefetch_row

_PARALLEL = dict(parallel=True, cache=True, nogil=True)
_SERIAL = dict(cache=True, nogil=True)

# Row chunks per parallel loop. Fixed (not read from the thread count, which would stop Numba
# caching the machine code): enough for any thread count we run on to get equal shares of work.
_MAX_CHUNKS = 256

# Software prefetch of gathered rows (kernels/prefetch.py): the old private names stay for the
# kernel modules that import them from here (gin_cpu).
_prefetch_line = prefetch_line
_prefetch_row = prefetch_row
_prefetch_distance = prefetch_distance
# A per-edge random read of a 1-D array (a permuted weight, a degree) is prefetched only when the
# array holds more than this many items: a smaller one stays in L2 (2 MB here) and the hint is
# pure overhead (measured on Cora and the 100k-node graph).
_PREFETCH_MIN_ITEMS = 1 << 18
# spmm_max_backward prefetches the grad_X lines of this many rows ahead (1, 2, 4 measured: 2 best).
_MAX_BWD_AHEAD = 2


# ---------------------------------------------------------------------------------- scheduling
@njit(**_SERIAL)
def _num_chunks(n_rows):
    """Number of row chunks handed to ``prange``: ``_MAX_CHUNKS``, at most one per row, at least 1."""
    return max(1, min(n_rows, _MAX_CHUNKS))


@njit(**_SERIAL)
def _chunk_start(indptr, c, n_chunks):
    """First row of chunk ``c`` of ``n_chunks``, chosen so each chunk holds about the same cost.

    The cost of rows [0, i) is ``indptr[i] + i`` (edges plus rows, since an empty row still
    writes its output row); it is strictly increasing in i, so a binary search finds the first
    row whose prefix cost reaches ``c / n_chunks`` of the total. O(log N_rows), no allocation.
    """
    n_rows = indptr.size - 1
    if c >= n_chunks:
        return n_rows
    total = indptr[n_rows] + n_rows
    target = (total * c) // n_chunks
    lo, hi = 0, n_rows
    while lo < hi:                      # first i in [0, n_rows] with cost(i) >= target
        mid = (lo + hi) // 2
        if indptr[mid] + mid < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------- SpMM
@njit(inline="always", **_SERIAL)
def _edge_weight(edge_val, perm, e):
    """w_e: edge_val[e], edge_val[perm[e]] with a permutation (None branches are pruned at compile time)."""
    return edge_val[e] if perm is None else edge_val[perm[e]]


@njit(inline="always", **_SERIAL)
def _prefetch_edge(X, indices, edge_val, perm, e):
    """Prefetch the row of X that edge ``e`` gathers (and its permuted weight, when that is a large array)."""
    _prefetch_row(X, indices[e])
    if edge_val is not None and perm is not None and edge_val.size > _PREFETCH_MIN_ITEMS:
        # the permuted weight is a second random load per edge (~20 % of the time on a
        # 1M-edge graph); weights that sit in L2 anyway gain nothing from the hint
        _prefetch_line(edge_val, perm[e], 0)


@njit(inline="always", **_SERIAL)
def _add_edge_row(out, i, X, indices, edge_val, perm, e):
    """out[i] += w_e X[indices[e]] (w_e = 1 without ``edge_val``)."""
    j = indices[e]
    if edge_val is None:
        for f in range(out.shape[1]):
            out[i, f] += X[j, f]
    else:
        w = _edge_weight(edge_val, perm, e)
        for f in range(out.shape[1]):
            out[i, f] += w * X[j, f]


@njit(inline="always", **_SERIAL)
def _weighted_row_sum(out, i, X, indices, lo, hi, edge_val, perm, pd):
    """out[i] = sum_{e in [lo, hi)} w_e X[indices[e]], summed in edge order; 0 for an empty row.

    w_e = 1 when ``edge_val`` is None, edge_val[e] when ``perm`` is None, else edge_val[perm[e]].
    Numba compiles one specialisation per combination (a None argument prunes its branch), so the
    unweighted sum multiplies by nothing. The first edge initialises out[i] (no zeroing pass); the
    row of X needed ``pd`` edges later is prefetched, so several gathers are in flight at once
    (``pd`` = ``NO_PREFETCH`` for an X that fits in cache: then nothing is).
    Rows are indexed as ``out[i, f]`` and ``X[j, f]``, not through row views (``out[i]``): a view per
    edge is an array struct Numba builds and reference-counts, 10-25 % of a gather whose rows sit in
    cache (Cora's width-16 SpMM 57 -> 48 us); the arithmetic and its order are the same.
    The first edge is peeled off and the edges that prefetch (those with e + pd < E) run in a loop of
    their own before those that do not, so the loop over the remaining edges tests neither "first edge?"
    nor "prefetch?" per edge: on a graph whose rows sit in cache that loop is the whole cost (Cora's
    width-16 SpMM on one core 0.79-0.92x of the time with both tests inside it). Same sums, same order.
    """
    F = out.shape[1]
    E = indices.size
    if lo == hi:
        for f in range(F):
            out[i, f] = 0
        return
    if lo + pd < E:
        _prefetch_edge(X, indices, edge_val, perm, lo + pd)
    j = indices[lo]
    if edge_val is None:
        for f in range(F):
            out[i, f] = X[j, f]
    else:
        w = _edge_weight(edge_val, perm, lo)
        for f in range(F):
            out[i, f] = w * X[j, f]
    mid = min(hi, max(lo + 1, E - pd))     # edges [lo + 1, mid) prefetch the row pd edges ahead
    for e in range(lo + 1, mid):
        _prefetch_edge(X, indices, edge_val, perm, e + pd)
        _add_edge_row(out, i, X, indices, edge_val, perm, e)
    for e in range(mid, hi):
        _add_edge_row(out, i, X, indices, edge_val, perm, e)


@njit(inline="always", **_SERIAL)
def _row_sum_in_cache(out, i, X, indices, lo, hi, edge_val, perm):
    """out[i] = sum_{e in [lo, hi)} w_e X[indices[e]] from a zeroed row, summed in edge order, no prefetch:
    the row of the one-thread kernels (``ONE_THREAD``), whose X sits in cache. The same sums as
    ``_weighted_row_sum``, except that a row whose every term is -0 sums to +0 here (as the reference's
    zeroed output does) and to -0 there (its first edge starts the row): equal numbers."""
    for f in range(out.shape[1]):
        out[i, f] = 0
    for e in range(lo, hi):
        _add_edge_row(out, i, X, indices, edge_val, perm, e)


@njit(inline="always", **_SERIAL)
def _bias_relu_row(out, i, b, relu):
    """out[i] += b, then the ReLU's ``v if v > 0 else 0`` when ``relu`` (a NaN gives 0)."""
    zero = out.dtype.type(0)
    if relu:
        for f in range(out.shape[1]):
            v = out[i, f] + b[f]
            out[i, f] = v if v > zero else zero
    else:
        for f in range(out.shape[1]):
            out[i, f] += b[f]


@njit(inline="always", **_SERIAL)
def _divide_row(out, i, lo, hi):
    """out[i] /= deg_i = hi - lo, for a row with edges (an empty row stays 0)."""
    if hi > lo:
        deg = out.dtype.type(hi - lo)
        for f in range(out.shape[1]):
            out[i, f] /= deg


@njit(inline="always", **_SERIAL)
def _mean_bias_row(out, i, acc, lo, hi, b, accumulate, relu):
    """out[i] = acc[0] / deg_i + b (+ out[i] with ``accumulate``), then the ReLU when ``relu``; acc[0] holds the
    row's sum (0 for an empty row, which dividing by 1 leaves)."""
    zero = out.dtype.type(0)
    deg = out.dtype.type(max(hi - lo, 1))
    for f in range(out.shape[1]):
        v = acc[0, f] / deg + b[f]
        if accumulate:
            v += out[i, f]
        if relu:
            v = v if v > zero else zero
        out[i, f] = v


@njit(**_PARALLEL)
def spmm_sum(indptr, indices, edge_val, X, out):
    """Weighted sum aggregation: out[i] = sum_{e in row i} edge_val[e] * X[indices[e]].

    indptr   (N_dst+1,) int64   CSR row pointers, rows = destinations
    indices  (E,) int32         source node of each edge
    edge_val (E,) float         weight of each edge, CSR order
    X        (N_src, F) float   source features, C-contiguous
    out      (N_dst, F) float   overwritten; an empty row gets 0
    O(E * F) work, O(E * F) random reads of X rows; row-parallel, no atomics.

    The hot kernel, bound by the latency of gathering random rows of X. Row i's output row is
    written by one thread and stays in L1 while its edges stream by (``_weighted_row_sum``).
    """
    n_dst = out.shape[0]
    pd = _prefetch_distance(X)
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            _weighted_row_sum(out, i, X, indices, indptr[i], indptr[i + 1], edge_val, None, pd)


@njit(**_PARALLEL)
def spmm_sum_bias(indptr, indices, edge_val, X, b, relu, out):
    """out = A X + b, then max(out, 0) when ``relu``: ``spmm_sum`` with the bias (and ReLU) applied to each
    output row while it is still in L1, instead of two more passes over ``out`` (an evaluation-mode GCN
    layer's ``add_bias`` and ``relu``). b (F,) float of X's dtype, ``relu`` bool; other arrays as
    ``spmm_sum``. The same sums in the same order, then + b[f], then the ReLU's ``v if v > 0 else 0``.
    """
    n_dst = out.shape[0]
    pd = _prefetch_distance(X)
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            _weighted_row_sum(out, i, X, indices, indptr[i], indptr[i + 1], edge_val, None, pd)
            _bias_relu_row(out, i, b, relu)


@njit(**_PARALLEL)
def spmm_sum_perm(indptr, indices, perm, edge_val, X, out):
    """Weighted sum with permuted weights: out[i] = sum_{e in row i} edge_val[perm[e]] * X[indices[e]].

    indptr   (N_rows+1,) int64  usually the transpose's ``t_indptr``
    indices  (E,) int32         usually ``t_indices`` (destination ids)
    perm     (E,) int64         usually ``t_perm``: CSR position of each transposed edge
    edge_val (E,) float         weights in the *original* CSR order
    X        (N_cols, F) float  C-contiguous
    out      (N_rows, F) float  overwritten; an empty row gets 0
    O(E * F). On the transpose this is A^T @ X without permuting the weights first.
    """
    n_rows = out.shape[0]
    # the permuted weight's prefetch rides on the row prefetch's distance: keep it for large weights
    pd = _prefetch_distance(X, edge_val.size > _PREFETCH_MIN_ITEMS)
    n_chunks = _num_chunks(n_rows)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            _weighted_row_sum(out, i, X, indices, indptr[i], indptr[i + 1], edge_val, perm, pd)


@njit(**_PARALLEL)
def spmm_mean(indptr, indices, X, out):
    """Mean aggregation: out[i] = (1/deg_i) sum_{e in row i} X[indices[e]]; 0 when deg_i = 0.

    indptr (N_dst+1,) int64, indices (E,) int32, X (N_src, F) float C-contiguous,
    out (N_dst, F) float, overwritten. O(E * F). Sums first, then divides by deg_i (as the
    reference does), so the result is the reference's bit for bit.
    """
    n_dst = out.shape[0]
    pd = _prefetch_distance(X)
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            lo, hi = indptr[i], indptr[i + 1]
            _weighted_row_sum(out, i, X, indices, lo, hi, None, None, pd)
            _divide_row(out, i, lo, hi)


@njit(**_PARALLEL)
def spmm_mean_bias(indptr, indices, X, b, accumulate, relu, out):
    """out = mean(X) + b (+ out's old value with ``accumulate``), then max(out, 0) when ``relu``: an
    evaluation-mode SAGE layer's aggregation, bias, self term (``out`` = H W_self on entry) and ReLU as one
    pass over ``out``, instead of four. b (F,) of X's dtype, ``accumulate`` and ``relu`` bools; the rest
    as ``spmm_mean``. The same operations in the same order as spmm_mean, then + b[f], then + out[i, f],
    then the ReLU's ``v if v > 0 else 0``: the same bits.
    """
    n_dst, F = out.shape
    pd = _prefetch_distance(X)
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        # the row's sum goes to a scratch row, since out[i] may still hold the self term to be added
        acc = np.empty((1, F), out.dtype)
        for i in range(r0, r1):
            lo, hi = indptr[i], indptr[i + 1]
            _weighted_row_sum(acc, 0, X, indices, lo, hi, None, None, pd)
            _mean_bias_row(out, i, acc, lo, hi, b, accumulate, relu)


# ---------------------------------------------------------------------------------- one-thread forms
# ``threads.call_numba`` runs these instead of the row-chunked kernels of the same ops when the work is below
# the grain (a Cora-sized graph), on one thread. Each is a parallel region of a single task whose rows are one
# loop from row 0, summed from a zeroed row without prefetch (X sits in cache): the same sums as the chunked
# kernel, in the same order. Measured on one core of the Intel Xeon VM, interleaved, hot: Cora's width-16
# SpMM 58 against 108 us, width 7 74 against 103, the CSR features product (2708 x 1433, 49k entries) by a
# width-16 W 152 against 243 us (scipy: 210). Why the chunked kernel is slower there was narrowed down, not
# explained: the same loop in a plain (not parallel) function takes 181 us -- Numba compiles a parallel
# region's body with its arrays marked as not aliasing each other, which it cannot assume for a plain
# function -- and the same loop over rows [r0, r1) of a chunk, or with the first edge starting the row
# (``_weighted_row_sum``), 78-110 us: LLVM vectorises the narrow row update differently.
@njit(**_PARALLEL)
def _spmm_sum_one_thread(indptr, indices, edge_val, X, out):
    for _ in prange(1):
        for i in range(out.shape[0]):
            _row_sum_in_cache(out, i, X, indices, indptr[i], indptr[i + 1], edge_val, None)


@njit(**_PARALLEL)
def _spmm_sum_bias_one_thread(indptr, indices, edge_val, X, b, relu, out):
    for _ in prange(1):
        for i in range(out.shape[0]):
            _row_sum_in_cache(out, i, X, indices, indptr[i], indptr[i + 1], edge_val, None)
            _bias_relu_row(out, i, b, relu)


@njit(**_PARALLEL)
def _spmm_sum_perm_one_thread(indptr, indices, perm, edge_val, X, out):
    for _ in prange(1):
        for i in range(out.shape[0]):
            _row_sum_in_cache(out, i, X, indices, indptr[i], indptr[i + 1], edge_val, perm)


@njit(**_PARALLEL)
def _spmm_mean_one_thread(indptr, indices, X, out):
    for _ in prange(1):
        for i in range(out.shape[0]):
            lo, hi = indptr[i], indptr[i + 1]
            _row_sum_in_cache(out, i, X, indices, lo, hi, None, None)
            _divide_row(out, i, lo, hi)


@njit(**_PARALLEL)
def _spmm_mean_bias_one_thread(indptr, indices, X, b, accumulate, relu, out):
    for _ in prange(1):
        acc = np.empty((1, out.shape[1]), out.dtype)
        for i in range(out.shape[0]):
            lo, hi = indptr[i], indptr[i + 1]
            _row_sum_in_cache(acc, 0, X, indices, lo, hi, None, None)
            _mean_bias_row(out, i, acc, lo, hi, b, accumulate, relu)


@njit(**_PARALLEL)
def spmm_sum_bias_rows(indptr, indices, edge_val, X, b, relu, in_cache, lo, out):
    """out[r] = row lo + r of ``spmm_sum_bias``'s output, for r < out.shape[0], as one task (run it with Numba's thread
    count at 1, ``threads.call_numba(.., 0, ..)``; ``nogil``: Python threads may run several row ranges at once,
    Numba's thread count being per thread) -- under a threading layer that allows that (OpenMP, TBB; not
    ``workqueue``: ``threads.numba_regions_from_threads``). ``in_cache`` picks the sums of the one-thread form
    (``ONE_THREAD``: a zeroed row, no prefetch), else those of the chunked kernel (the first edge starts the row,
    the prefetch), so a caller that splits the rows gets the bits ``call_numba`` gives the whole op. Rows as
    ``spmm_sum_bias``; lo + out.shape[0] <= N_dst. For ``dense_cpu.spmm_sum_bias_matmul``.
    """
    pd = _prefetch_distance(X)
    for _ in prange(1):     # a parallel region of one task: its arrays compile as not aliasing (see above)
        for r in range(out.shape[0]):
            i = lo + r
            if in_cache:
                _row_sum_in_cache(out, r, X, indices, indptr[i], indptr[i + 1], edge_val, None)
            else:
                _weighted_row_sum(out, r, X, indices, indptr[i], indptr[i + 1], edge_val, None, pd)
            _bias_relu_row(out, r, b, relu)


ONE_THREAD = {"spmm_sum": _spmm_sum_one_thread, "spmm_sum_bias": _spmm_sum_bias_one_thread,
              "spmm_sum_perm": _spmm_sum_perm_one_thread, "spmm_mean": _spmm_mean_one_thread,
              "spmm_mean_bias": _spmm_mean_bias_one_thread}


@njit(**_PARALLEL)
def spmm_mean_backward(t_indptr, t_indices, indptr, grad_out, grad_X):
    """Gradient of spmm_mean w.r.t. X: grad_X[j] = sum_{edges j -> i} grad_out[i] / deg_i.

    t_indptr  (N_src+1,) int64  transpose row pointers, rows = sources
    t_indices (E,) int32        destination node of each transposed edge
    indptr    (N_dst+1,) int64  forward row pointers, for deg_i = indptr[i+1] - indptr[i]
    grad_out  (N_dst, F) float  C-contiguous
    grad_X    (N_src, F) float  overwritten; a node with no out-edges gets 0
    O(E * F), row-parallel over the transpose. grad_out[i] / deg_i is recomputed per edge (the
    same division the reference does once per row, so the same bits) instead of being stored.
    """
    n_src, F = grad_X.shape
    E = t_indices.size
    pdeg = indptr.size > _PREFETCH_MIN_ITEMS
    pd = _prefetch_distance(grad_out, pdeg)    # the degree's prefetch rides on the row prefetch's distance
    n_chunks = _num_chunks(n_src)
    for c in prange(n_chunks):
        r0 = _chunk_start(t_indptr, c, n_chunks)
        r1 = _chunk_start(t_indptr, c + 1, n_chunks)
        for j in range(r0, r1):
            lo, hi = t_indptr[j], t_indptr[j + 1]
            grow = grad_X[j]
            if lo == hi:
                for f in range(F):
                    grow[f] = 0
                continue
            for e in range(lo, hi):
                if e + pd < E:
                    _prefetch_row(grad_out, t_indices[e + pd])
                    if pdeg:
                        _prefetch_line(indptr, t_indices[e + pd], 0)   # deg_i: a random read too
                i = t_indices[e]
                deg = grad_X.dtype.type(indptr[i + 1] - indptr[i])   # >= 1: row i holds this edge
                src = grad_out[i]
                if e == lo:
                    for f in range(F):
                        grow[f] = src[f] / deg
                else:
                    for f in range(F):
                        grow[f] += src[f] / deg


@njit(**_PARALLEL)
def scale_rows_by_inverse_degree(indptr, G, out):
    """out[i] = G[i] / max(deg_i, 1), deg_i = indptr[i+1] - indptr[i]: the D^-1 G of the mean's backward.

    indptr (N+1,) int64, G (N, F) float C-contiguous, out (N, F) float, overwritten (may be G).
    O(N * F), streaming. The reference's division, element for element (an IEEE division, not a
    multiplication by 1/deg), so A^T of the result equals ``spmm_mean_backward`` bit for bit.
    """
    n, F = G.shape
    for i in prange(n):
        deg = out.dtype.type(max(indptr[i + 1] - indptr[i], 1))
        grow = G[i]
        orow = out[i]
        for f in range(F):
            orow[f] = grow[f] / deg


@njit(**_PARALLEL)
def spmm_max(indptr, indices, X, out, argmax):
    """Max aggregation per feature: out[i, f] = max_{e in row i} X[indices[e], f].

    indptr (N_dst+1,) int64, indices (E,) int32, X (N_src, F) float C-contiguous,
    out    (N_dst, F) float  overwritten; an empty row gets 0
    argmax (N_dst, F) int64  overwritten with the winning *source node id*; -1 for an empty row
    O(E * F). Tie rule: the comparison is strict (>), so the first edge in CSR order that attains
    the maximum keeps it.
    """
    n_dst, F = out.shape
    E = indices.size
    pd = _prefetch_distance(X)
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            lo, hi = indptr[i], indptr[i + 1]
            orow = out[i]
            arow = argmax[i]
            if lo == hi:
                for f in range(F):
                    orow[f] = 0
                    arow[f] = -1
                continue
            for e in range(lo, hi):
                if e + pd < E:
                    _prefetch_row(X, indices[e + pd])
                j = indices[e]
                xrow = X[j]
                if e == lo:
                    for f in range(F):
                        orow[f] = xrow[f]
                        arow[f] = j
                else:
                    for f in range(F):
                        if xrow[f] > orow[f]:
                            orow[f] = xrow[f]
                            arow[f] = j


def spmm_max_backward(t_indptr, t_indices, argmax, grad_out, grad_X):
    """Gradient of spmm_max w.r.t. X: grad_X[j, f] = sum of grad_out[i, f] over the i with argmax[i, f] = j.

    t_indptr  (N_src+1,) int64  transpose of the graph that produced argmax
    t_indices (E,) int32        destination of each transposed edge, ascending within a row
    argmax    (N_dst, F) int64  from spmm_max (-1 = empty row, never equal to a source id)
    grad_out  (N_dst, F) float  C-contiguous
    grad_X    (N_src, F) float  overwritten; zero where no row picked that node
    No atomics; every grad_X[j, f] is summed by one thread in ascending i from 0 -- the
    reference's order, whatever the thread count or the path: the same bits.

    Two paths, chosen by measurement (issue 19; ``scripts/measure_memory_bounds.py``):

    * ``_max_backward_scatter`` (one thread): streams argmax and grad_out once and adds each
      grad_out[i, f] into the row argmax[i, f] -- O(N_dst * F). On a graph whose grad_X leaves
      the caches this is the fast one: the gather below loads an argmax row and a grad_out row
      per edge (E / N_dst times the bytes: 7.7 GB on the 1M-node graph at width 64) and was
      3.4-5.9x slower on one thread, 2.5-3x slower on two, on the 100k- and 1M-node graphs.
      What bounds it: the random read-modify-write of grad_X's lines (31.5 per destination row
      there; ~4 ns each estimated on the AMD EPYC; 12-14 ns measured on one core of the Intel Xeon
      VM, its streams included, about that core's rate for a pure random line update:
      ``bench/kernels.py: ScatterBandwidth``, BENCHMARKS.md, 2026-12-01).
    * ``_max_backward_gather`` (row-parallel over the transpose, O(E * F)): used with more than
      one thread when grad_X fits in L2 (at most ``_PREFETCH_MIN_ITEMS`` elements): there the
      gather's rows are cache hits and it scales with the threads (Cora, width 64, 2 threads:
      0.079 ms against 0.111 ms for the scatter; the scatter wins on one thread, 0.11 vs 0.15).

    A Python function (the thread count is read here, outside the compiled code, which keeps
    the kernels cacheable) marked parallel for the registry, which then runs small calls on one
    thread as it does every parallel kernel. Splitting the scatter over two threads, the same bits,
    was measured and not taken: by column blocks, one per thread (2 blocks of 2 lines at width 64),
    1.3-1.5x slower on the AMD EPYC and 0.95-1.02x on the Intel Xeon VM; by source-row halves, each
    thread streaming everything, 1.14-1.31x on the Intel VM (BENCHMARKS.md, run of 2026-12-01 21:45).
    """
    if max_backward_scatters(grad_X):
        _max_backward_scatter(argmax, grad_out, grad_X)
    else:
        _max_backward_gather(t_indptr, t_indices, argmax, grad_out, grad_X)


def max_backward_scatters(grad_X):
    """True when ``spmm_max_backward`` into ``grad_X`` runs the one-thread scatter at the calling thread count,
    False when it runs the row-parallel gather (grad_X in L2 and more than one thread)."""
    return not (grad_X.size <= _PREFETCH_MIN_ITEMS and get_num_threads() > 1)


@njit(**_SERIAL)
def _max_backward_scatter(argmax, grad_out, grad_X):
    """spmm_max_backward as the formula's scatter, rows i in ascending order, on the calling thread.

    While row i is added, the grad_X lines that row i + ``_MAX_BWD_AHEAD`` will add into (named by
    its argmax row) are prefetched, one hint per (row, column): repeats of a line are cheap, and
    the exact lines beat whole rows (measured: 0.64x); no hints when grad_X fits in L2 (Cora:
    1.5x faster without).
    """
    n_src, F = grad_X.shape
    n_dst = argmax.shape[0]
    item = grad_X.itemsize
    for j in range(n_src):
        grow = grad_X[j]
        for f in range(F):
            grow[f] = 0
    ahead_rows = _MAX_BWD_AHEAD if grad_X.size > _PREFETCH_MIN_ITEMS else n_dst   # in L2: no hints
    for i in range(n_dst):
        if i + ahead_rows < n_dst:
            ahead = argmax[i + ahead_rows]
            for f in range(F):
                j = ahead[f]
                if j >= 0:
                    _prefetch_line(grad_X, j, f * item)
        arow = argmax[i]
        grow_i = grad_out[i]
        for f in range(F):
            j = arow[f]
            if j >= 0:
                grad_X[j, f] += grow_i[f]


@njit(**_PARALLEL)
def _max_backward_gather(t_indptr, t_indices, argmax, grad_out, grad_X):
    """spmm_max_backward as a gather over the transpose, row-parallel (the kernel before issue 19).

    Row j of grad_X is owned by one thread, which gathers the argmax and grad_out rows of j's
    out-neighbours i and keeps the features that j won. A repeated edge j -> i is visited once:
    the transpose lists a row's destinations in ascending order, so repeats are adjacent, and
    argmax holds the node j, which won once. The contributions arrive in ascending i from 0.
    """
    n_src, F = grad_X.shape
    E = t_indices.size
    pd = _prefetch_distance(argmax)
    n_chunks = _num_chunks(n_src)
    for c in prange(n_chunks):
        r0 = _chunk_start(t_indptr, c, n_chunks)
        r1 = _chunk_start(t_indptr, c + 1, n_chunks)
        for j in range(r0, r1):
            grow = grad_X[j]
            for f in range(F):
                grow[f] = 0
            lo, hi = t_indptr[j], t_indptr[j + 1]
            for e in range(lo, hi):
                if e + pd < E:
                    _prefetch_row(argmax, t_indices[e + pd])
                    _prefetch_row(grad_out, t_indices[e + pd])
                i = t_indices[e]
                if e > lo and t_indices[e - 1] == i:
                    continue
                arow = argmax[i]
                grow_i = grad_out[i]
                for f in range(F):
                    if arow[f] == j:
                        grow[f] += grow_i[f]


spmm_max_backward.targetoptions = _max_backward_gather.targetoptions   # registry: a parallel kernel


# ---------------------------------------------------------------------------------- SDDMM
@njit(**_PARALLEL)
def sddmm_dot(indptr, indices, A, B, out):
    """Per-edge, per-head dot product: out[e, h] = <A[i, h, :], B[indices[e], h, :]> for e in row i.

    indptr (N_dst+1,) int64, indices (E,) int32,
    A   (N_dst, H, F) float  C-contiguous (destination side, e.g. grad_out)
    B   (N_src, H, F) float  C-contiguous (source side, e.g. X)
    out (E, H) float         overwritten
    O(E * H * F), row-parallel; each dot product is accumulated in out's dtype in feature order.
    """
    n_dst = A.shape[0]
    H = out.shape[1]
    F = A.shape[2]
    E = indices.size
    pd = _prefetch_distance(B)
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            a = A[i]
            for e in range(indptr[i], indptr[i + 1]):
                if e + pd < E:
                    _prefetch_row(B, indices[e + pd])
                b = B[indices[e]]
                for h in range(H):
                    acc = out.dtype.type(0)
                    for f in range(F):
                        acc += a[h, f] * b[h, f]
                    out[e, h] = acc


@njit(**_PARALLEL)
def sddmm_add(indptr, indices, a_dst, a_src, out):
    """Per-edge, per-head sum: out[e, h] = a_dst[i, h] + a_src[indices[e], h] for e in row i.

    indptr (N_dst+1,) int64, indices (E,) int32, a_dst (N_dst, H), a_src (N_src, H),
    out (E, H) overwritten. O(E * H). GAT's attention logits; one addition, so exact.
    """
    n_dst = a_dst.shape[0]
    H = out.shape[1]
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            d = a_dst[i]
            for e in range(indptr[i], indptr[i + 1]):
                s = a_src[indices[e]]
                for h in range(H):
                    out[e, h] = d[h] + s[h]


# ---------------------------------------------------------------------------------- segment sums
@njit(**_PARALLEL)
def segment_sum(indptr, edge_val, out):
    """Sum of edge values per destination row: out[i, h] = sum_{e in row i} edge_val[e, h].

    indptr (N_dst+1,) int64, edge_val (E, H) float, out (N_dst, H) overwritten (0 for an empty
    row). O(E * H). Gradient of sddmm_add w.r.t. a_dst.
    """
    n_dst, H = out.shape
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            orow = out[i]
            for h in range(H):
                orow[h] = 0
            for e in range(indptr[i], indptr[i + 1]):
                v = edge_val[e]
                for h in range(H):
                    orow[h] += v[h]


@njit(**_PARALLEL)
def segment_sum_perm(t_indptr, t_perm, edge_val, out):
    """Sum of edge values per source node: out[j, h] = sum_{e' in transposed row j} edge_val[t_perm[e'], h].

    t_indptr (N_src+1,) int64, t_perm (E,) int64, edge_val (E, H) float in CSR order,
    out (N_src, H) overwritten (0 for a node with no out-edges). O(E * H), row-parallel over the
    transpose. Gradient of sddmm_add w.r.t. a_src.
    """
    n_src, H = out.shape
    n_chunks = _num_chunks(n_src)
    for c in prange(n_chunks):
        r0 = _chunk_start(t_indptr, c, n_chunks)
        r1 = _chunk_start(t_indptr, c + 1, n_chunks)
        for j in range(r0, r1):
            orow = out[j]
            for h in range(H):
                orow[h] = 0
            for e in range(t_indptr[j], t_indptr[j + 1]):
                v = edge_val[t_perm[e]]
                for h in range(H):
                    orow[h] += v[h]


# ---------------------------------------------------------------------------------- edge softmax
@njit(**_PARALLEL)
def edge_softmax(indptr, scores, out):
    """Softmax over each destination's incoming edges, per head, shifted by the row max.

    out[e, h] = exp(s[e, h] - m[i, h]) / sum_{e' in row i} exp(s[e', h] - m[i, h]),
    m[i, h] = max_{e in row i} s[e, h].
    indptr (N_dst+1,) int64, scores (E, H) float, out (E, H) overwritten. O(E * H).
    Three passes over the row (max; exp and sum, exp stored in out; divide); an empty row has no
    edges and writes nothing.
    """
    n_dst = indptr.size - 1
    H = out.shape[1]
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            lo, hi = indptr[i], indptr[i + 1]
            if lo == hi:
                continue
            for h in range(H):
                m = scores[lo, h]
                for e in range(lo + 1, hi):
                    if scores[e, h] > m:
                        m = scores[e, h]
                total = out.dtype.type(0)
                for e in range(lo, hi):
                    z = np.exp(scores[e, h] - m)
                    out[e, h] = z
                    total += z
                for e in range(lo, hi):
                    out[e, h] /= total


@njit(**_PARALLEL)
def edge_softmax_backward(indptr, alpha, grad_alpha, out):
    """Gradient of edge_softmax w.r.t. its scores: out[e] = alpha[e] * (g[e] - sum_{e' in row i} alpha[e'] g[e']).

    indptr (N_dst+1,) int64, alpha (E, H) the softmax output, grad_alpha (E, H) = g,
    out (E, H) overwritten. O(E * H). Computed as alpha*g - alpha * s_i, s_i = sum_row alpha*g,
    the reference's expression.
    """
    n_dst = indptr.size - 1
    H = out.shape[1]
    n_chunks = _num_chunks(n_dst)
    for c in prange(n_chunks):
        r0 = _chunk_start(indptr, c, n_chunks)
        r1 = _chunk_start(indptr, c + 1, n_chunks)
        for i in range(r0, r1):
            lo, hi = indptr[i], indptr[i + 1]
            for h in range(H):
                s = out.dtype.type(0)
                for e in range(lo, hi):
                    s += alpha[e, h] * grad_alpha[e, h]
                for e in range(lo, hi):
                    out[e, h] = alpha[e, h] * grad_alpha[e, h] - alpha[e, h] * s
