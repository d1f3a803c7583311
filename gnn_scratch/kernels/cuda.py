"""CUDA kernels (``numba.cuda``): the GPU twin of ``reference.py``, same names, same argument order.

The contract -- shapes, "out is preallocated and fully overwritten", the empty-row rules and the
max tie rule -- is written once, at the top of ``reference.py``; every function here follows it.
Each public function takes device arrays (numba ``DeviceNDArray`` or anything exposing
``__cuda_array_interface__``), checks shapes and dtypes (metadata only, never the data), picks a
launch configuration and launches. Nothing is copied to or from the host; host arrays are refused.

Launch shapes
-------------
* **Row-owner kernels** (``_row_launch``): a group of lanes owns one destination row -- a warp of 32
  by default, up to a whole block (256 lanes) for wide rows -- with ``threadIdx.x`` the lane and
  ``threadIdx.y`` the row within the block. The lanes split the row's features
  (``f = lane; f < F; f += lanes``) or, for per-edge outputs, the row's (edge, head) pairs. Every
  output element is written by exactly one thread that reads its edges in CSR order, so forward
  kernels use no atomics and repeat bit for bit.
* **Gather kernels** (``_gather_launch``: ``spmm_sum``, ``spmm_sum_perm``, ``spmm_mean`` and its
  backward): the same row-owner layout with up to a warp per row and four features per lane, each
  lane loading four edges' rows before it adds them (``_make_gather_kernel`` says why).
* **Per-(row, head) kernels** (``_flat_launch``): one thread per (row, head) pair loops over the
  row's edges (segment sums, edge softmax and its backward).
* All three use grid-stride loops, so any grid size is correct; the grid is capped at ``_MAX_BLOCKS``.
  Each launch helper returns None for an empty problem (no rows or items), and ``_launch`` then
  launches nothing.

No kernel uses atomics: the one backward whose formula scatters (``spmm_max_backward``) gathers
over the cached transpose instead. float32 and float64 are both supported:
kernels compile lazily per dtype on first launch, and accumulate in the dtype of their output
(``out.dtype.type(0)``), so float32 kernels contain no float64 arithmetic.

On a real GPU, NVVM contracts ``acc + w * x`` into a fused multiply-add, so the weighted sums
(``spmm_sum``, ``spmm_sum_perm``, ``sddmm_dot``) may differ from the NumPy reference in the last
bits -- they still repeat bit for bit from run to run. Sums of plain adds and divisions
(``spmm_mean``, ``segment_sum``, ...) and selections (``spmm_max``, ``sddmm_add``) equal the
reference exactly. ``edge_softmax`` uses the device ``exp``, within a few ulp of NumPy's.

Adding kernels (GAT fused kernels, element-wise ops, optimisers): write a ``@_jit`` kernel that
takes its row from ``_row_launch``'s layout (row = ``blockIdx.x * blockDim.y + threadIdx.y``,
lane = ``threadIdx.x``) or its item from ``_flat_launch``'s (``cuda.grid(1)``), both with
grid-stride loops, and a public wrapper: ``require_cuda()``, ``_device(...)``, checks, launch.

Importing this module never touches the GPU: without numba-cuda, or without a GPU, the import
succeeds and the first call raises ``require_cuda``'s RuntimeError. Under the simulator
(``NUMBA_ENABLE_CUDASIM=1``), where every thread is a Python thread, blocks are kept small.
"""
import math

import numpy as np

if not hasattr(np, "row_stack"):
    # numba-cuda 0.30.4 registers an overload of np.row_stack, which NumPy 2.5 removed (numba itself checks
    # first), so its array module fails to import and every kernel compile on a GPU raises AttributeError
    # (seen on an H200 with NumPy 2.5.2). Until 2.5 np.row_stack was a deprecated wrapper of np.vstack; the
    # alias np.vstack itself is what ran there (numba-cuda then registers its vstack typing on it once more).
    np.row_stack = np.vstack

try:
    import numba
    from numba import cuda
except ImportError:  # numba-cuda is not installed: the module imports, require_cuda() explains
    cuda = None

_NO_CUDA_MESSAGE = (
    "no CUDA GPU available; install the `cuda` extra (numba-cuda) and run on a machine with an "
    "NVIDIA GPU, or set NUMBA_ENABLE_CUDASIM=1 to use the simulator")


def _simulator_enabled():
    """True when numba runs CUDA kernels in its simulator (NUMBA_ENABLE_CUDASIM=1 at numba import)."""
    if cuda is None:
        return False
    try:
        from numba.cuda.core import config      # numba-cuda's own copy decides what numba.cuda is
    except ImportError:
        config = numba.config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


_cuda_ok = False


def require_cuda():
    """Raise RuntimeError unless a CUDA GPU or the numba CUDA simulator is available."""
    global _cuda_ok
    if _cuda_ok:
        return
    if cuda is None or not (_simulator_enabled() or cuda.is_available()):
        raise RuntimeError(_NO_CUDA_MESSAGE)
    _cuda_ok = True


def _jit(fn):
    """``cuda.jit`` (lazy: compiled per argument types on first launch), or the plain function without numba-cuda."""
    return cuda.jit(fn) if cuda is not None else fn


# ---------------------------------------------------------------------------------------- launching
_WARP = 32
_MAX_LANES = 256                                         # a whole block for one row at most
_BLOCK_THREADS = 64 if _simulator_enabled() else 256     # simulated threads are Python threads
_MAX_BLOCKS = 65535


def _row_launch(n_rows, width):
    """(grid, block) for a row-owner kernel: ``lanes`` threads per row, ``rows`` rows per block.

    ``width`` is the number of items a row splits across its lanes (features, or edge-head pairs).
    lanes = 32 (one warp), doubled up to ``_MAX_LANES`` while it is below ``width`` (wide features:
    up to a block per row); rows per block = ``_BLOCK_THREADS // lanes``. Returns None when there is
    nothing to launch.
    """
    if n_rows <= 0:
        return None
    lanes = _WARP
    while lanes < width and lanes < min(_MAX_LANES, _BLOCK_THREADS):
        lanes *= 2
    rows = max(1, _BLOCK_THREADS // lanes)
    grid = min((n_rows + rows - 1) // rows, _MAX_BLOCKS)
    return grid, (lanes, rows)


def _flat_launch(n_items):
    """(grid, block) for a kernel with one thread per item (grid-stride); None when n_items == 0."""
    if n_items <= 0:
        return None
    threads = _BLOCK_THREADS
    return min((n_items + threads - 1) // threads, _MAX_BLOCKS), threads


def _launch(kernel, config, *args):
    """Launch ``kernel[config](*args)``; a None config (empty problem) launches nothing."""
    if config is not None:
        kernel[config](*args)


# --------------------------------------------------------------------------------------- validation
def _device(**arrays):
    """The arguments as numba device arrays, in order; a host array raises TypeError (no hidden copies)."""
    out = []
    for name, a in arrays.items():
        if cuda.devicearray.is_cuda_ndarray(a):
            out.append(a)
        elif hasattr(a, "__cuda_array_interface__"):
            out.append(cuda.as_cuda_array(a))
        else:
            raise TypeError(
                f"{name} must be a device array (numba.cuda.to_device / device_array, or an object "
                f"with __cuda_array_interface__), got {type(a).__name__}; the CUDA kernels never "
                f"copy host data")
    return out


def _check(name, a, shape, dtype=None, kind=None):
    """Raise unless ``a`` has ``shape`` (None entries match anything) and ``dtype`` / dtype ``kind``."""
    if a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(a.shape)}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {a.dtype}")
    if kind is not None and a.dtype.kind not in kind:
        what = {"iu": "an integer", "f": "a float"}.get(kind, kind)
        raise TypeError(f"{name} must have {what} dtype, got {a.dtype}")


def _check_float(*named):
    """Raise unless every (name, array) pair is float32 or float64, all of one dtype."""
    dtype = named[0][1].dtype
    if dtype.name not in ("float32", "float64"):
        raise TypeError(f"{named[0][0]} must be float32 or float64, got {dtype}")
    for name, a in named[1:]:
        if a.dtype != dtype:
            raise TypeError(f"{name} must have dtype {dtype} like {named[0][0]}, got {a.dtype}")


def _check_csr(indptr, indices, ptr="indptr", idx="indices"):
    """Shape and dtype checks of a CSR pair; returns (number of rows, E)."""
    _check(ptr, indptr, (None,), kind="iu")
    if indptr.shape[0] < 1:
        raise ValueError(f"{ptr} must have length N_dst + 1 >= 1, got 0")
    _check(idx, indices, (None,), kind="iu")
    return indptr.shape[0] - 1, indices.shape[0]


def _check_signed_index(**arrays):
    """Raise unless every named index array of a gather kernel has a signed integer dtype.

    Why: the gather loop steps an edge index that has indptr's dtype (``e + 4``, ``e + 1``) and the mean's
    backward reads ``aux[s + 1]`` with s from indices; Numba types uint64 plus a signed int as float64,
    which cannot index, so a uint64 CSR would fail on a GPU with an obscure typing error at compile time.
    """
    for name, a in arrays.items():
        if a.dtype.kind != "i":
            raise TypeError(f"{name} must have a signed integer dtype (int64 or int32) for the gather kernels, "
                            f"got {a.dtype}")


# ================================================================================ SpMM (node <- edges)
# The four weighted-gather aggregations share one kernel body; ``mode`` is a compile-time constant of each
# specialisation, so the branches below fold away.
_SUM, _PERM, _MEAN, _DIVIDE = 0, 1, 2, 3
_FEATURES_PER_LANE = 4


def _gather_launch(n_rows, width):
    """(grid, block) of the gather kernels: ``lanes`` threads per row, each owning up to 4 features per pass.

    lanes = the smallest power of two with ``4 * lanes >= width``, at most a warp (32); rows per block =
    ``_BLOCK_THREADS // lanes`` (F = 64: 16 lanes, 16 rows per block; F = 8: 2 lanes, 128 rows).
    Returns None when ``n_rows <= 0`` (nothing to launch), as ``_row_launch`` does.
    """
    if n_rows <= 0:
        return None
    lanes = 1
    while lanes * _FEATURES_PER_LANE < width and lanes < _WARP:
        lanes *= 2
    rows = max(1, _BLOCK_THREADS // lanes)
    return min((n_rows + rows - 1) // rows, _MAX_BLOCKS), (lanes, rows)


def _make_gather_kernel(mode):
    """out[i] = sum over row i's edges e, in CSR order, of term(e) -- one specialisation per ``mode``:

    _SUM     edge_val[e] * X[indices[e]]                      (spmm_sum)
    _PERM    edge_val[aux[e]] * X[indices[e]]                 (spmm_sum_perm, aux = perm)
    _MEAN    X[indices[e]], the sum divided by max(deg_i, 1)  (spmm_mean)
    _DIVIDE  X[j] / max(deg_j, 1), j = indices[e]             (spmm_mean_backward, aux = indptr of the degrees)

    Why this shape: the old kernel (a lane per feature, one edge at a time) kept one gathered row in
    flight per destination, 2.1x cuSPARSE on an H200. Here a lane owns four features (f, f + L, f + 2L,
    f + 3L for L lanes) and, while those four are all in range, loads four edges' rows before it adds
    any: 16 independent loads in flight per lane. The additions stay in CSR order, one output element
    per thread, so the result is the old kernel's bit for bit (and the reference's, up to the FMA
    contraction of ``acc + w * x`` noted in the module docstring).
    """
    _weight, _add = _MODES[mode]

    @_jit
    def kernel(indptr, indices, aux, edge_val, X, out):
        L = cuda.blockDim.x
        F = out.shape[1]
        z = out.dtype.type(0)
        one = out.dtype.type(1)
        for i in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, out.shape[0],
                       cuda.gridDim.x * cuda.blockDim.y):
            lo = indptr[i]
            hi = indptr[i + 1]
            for f0 in range(cuda.threadIdx.x, F, _FEATURES_PER_LANE * L):
                f1 = f0 + L
                f2 = f1 + L
                f3 = f2 + L
                full = f3 < F
                a0 = z
                a1 = z
                a2 = z
                a3 = z
                e = lo
                if full:
                    while e + 4 <= hi:
                        s0 = indices[e]
                        s1 = indices[e + 1]
                        s2 = indices[e + 2]
                        s3 = indices[e + 3]
                        w0 = _weight(e, s0, aux, edge_val, X, one)
                        w1 = _weight(e + 1, s1, aux, edge_val, X, one)
                        w2 = _weight(e + 2, s2, aux, edge_val, X, one)
                        w3 = _weight(e + 3, s3, aux, edge_val, X, one)
                        p0 = X[s0, f0]
                        p1 = X[s1, f0]
                        p2 = X[s2, f0]
                        p3 = X[s3, f0]
                        q0 = X[s0, f1]
                        q1 = X[s1, f1]
                        q2 = X[s2, f1]
                        q3 = X[s3, f1]
                        r0 = X[s0, f2]
                        r1 = X[s1, f2]
                        r2 = X[s2, f2]
                        r3 = X[s3, f2]
                        t0 = X[s0, f3]
                        t1 = X[s1, f3]
                        t2 = X[s2, f3]
                        t3 = X[s3, f3]
                        a0 = _add(_add(_add(_add(a0, w0, p0), w1, p1), w2, p2), w3, p3)
                        a1 = _add(_add(_add(_add(a1, w0, q0), w1, q1), w2, q2), w3, q3)
                        a2 = _add(_add(_add(_add(a2, w0, r0), w1, r1), w2, r2), w3, r3)
                        a3 = _add(_add(_add(_add(a3, w0, t0), w1, t1), w2, t2), w3, t3)
                        e += 4
                while e < hi:                  # the row's last edges, or every edge of a partial pass
                    s0 = indices[e]
                    w0 = _weight(e, s0, aux, edge_val, X, one)
                    a0 = _add(a0, w0, X[s0, f0])
                    if f1 < F:
                        a1 = _add(a1, w0, X[s0, f1])
                    if f2 < F:
                        a2 = _add(a2, w0, X[s0, f2])
                    if full:
                        a3 = _add(a3, w0, X[s0, f3])
                    e += 1
                if mode == _MEAN:
                    deg = out.dtype.type(max(hi - lo, 1))
                    a0 = a0 / deg
                    a1 = a1 / deg
                    a2 = a2 / deg
                    a3 = a3 / deg
                out[i, f0] = a0
                if f1 < F:
                    out[i, f1] = a1
                if f2 < F:
                    out[i, f2] = a2
                if full:
                    out[i, f3] = a3
    return kernel


def _device_fn(fn):
    """``cuda.jit(device=True, inline=True)``, or the plain function without numba-cuda."""
    return cuda.jit(device=True, inline=True)(fn) if cuda is not None else fn


# edge e's factor (s = indices[e]) and how a term joins the sum, per mode: the factory picks the functions,
# so each specialisation types only its own (in the mean modes ``edge_val`` is a stand-in, never read)
@_device_fn
def _edge_weight(e, s, aux, edge_val, X, one):
    return edge_val[e]


@_device_fn
def _permuted_weight(e, s, aux, edge_val, X, one):
    return edge_val[aux[e]]


@_device_fn
def _unit_weight(e, s, aux, edge_val, X, one):
    return one


@_device_fn
def _source_degree(e, s, aux, edge_val, X, one):
    return X.dtype.type(max(aux[s + 1] - aux[s], 1))


@_device_fn
def _multiply_add(acc, w, x):
    return acc + w * x


@_device_fn
def _plain_add(acc, w, x):
    return acc + x


@_device_fn
def _divide_add(acc, w, x):
    return acc + x / w


_MODES = {_SUM: (_edge_weight, _multiply_add), _PERM: (_permuted_weight, _multiply_add),
          _MEAN: (_unit_weight, _plain_add), _DIVIDE: (_source_degree, _divide_add)}


_spmm_sum_kernel = _make_gather_kernel(_SUM)
_spmm_sum_perm_kernel = _make_gather_kernel(_PERM)
_spmm_mean_kernel = _make_gather_kernel(_MEAN)
_spmm_mean_backward_kernel = _make_gather_kernel(_DIVIDE)


def spmm_sum(indptr, indices, edge_val, X, out):
    """Weighted sum aggregation: out[i] = sum_{e in row i} edge_val[e] * X[indices[e]].

    indptr (N_dst+1,) int, indices (E,) int, edge_val (E,), X (N_src, F), out (N_dst, F); floats of
    one dtype. out is overwritten; an empty row gives 0. O(E * F) work. The index arrays of the four
    gather aggregations must be signed (int64 or int32): an unsigned one raises TypeError
    (``_check_signed_index`` says why).
    Launch (``_gather_launch``): up to a warp per destination row, four features per lane, four
    edges' rows loaded before they are added; no atomics.
    """
    require_cuda()
    indptr, indices, edge_val, X, out = _device(indptr=indptr, indices=indices, edge_val=edge_val, X=X, out=out)
    n_dst, E = _check_csr(indptr, indices)
    _check_signed_index(indptr=indptr, indices=indices)
    _check("edge_val", edge_val, (E,))
    _check("X", X, (None, None))
    _check("out", out, (n_dst, X.shape[1]))
    _check_float(("X", X), ("edge_val", edge_val), ("out", out))
    _launch(_spmm_sum_kernel, _gather_launch(n_dst, X.shape[1]), indptr, indices, indices, edge_val, X, out)


@_jit
def _bias_relu_kernel(Y, M, b, accumulate, relu):
    """Y = M + b (+ Y's old value with ``accumulate``), then the ReLU (``not v > 0`` gives 0: NaN too); M may be Y."""
    F = b.shape[0]
    zero = Y.dtype.type(0)
    for k in range(cuda.grid(1), Y.shape[0] * F, cuda.gridsize(1)):
        v = M[k // F, k % F] + b[k % F]
        if accumulate:
            v += Y[k // F, k % F]
        if relu and not v > zero:
            v = zero
        Y[k // F, k % F] = v


def spmm_sum_bias(indptr, indices, edge_val, X, b, relu, out):
    """out = A X + b, then max(out, 0) when ``relu`` (a NaN gives 0): ``spmm_sum`` and one grid-stride pass
    for the bias and the ReLU. b (F,) of X's dtype, ``relu`` bool; the rest as ``spmm_sum``. On the GPU the
    two launches are kept (the CPU version fuses them: its win is a pass over ``out`` through the caches).
    """
    spmm_sum(indptr, indices, edge_val, X, out)
    b, out = _device(b=b, out=out)
    _check("b", b, (out.shape[1],))
    _check_float(("out", out), ("b", b))
    _launch(_bias_relu_kernel, _flat_launch(out.size), out, out, b, False, bool(relu))


def spmm_sum_perm(indptr, indices, perm, edge_val, X, out):
    """Weighted sum with permuted weights: out[i] = sum_{e in row i} edge_val[perm[e]] * X[indices[e]].

    Called on the transpose (t_indptr, t_indices, t_perm) it computes A^T @ X with the weights kept
    in CSR order. indptr (R+1,), indices (E,), perm (E,) signed int, edge_val (E,), X (C, F), out (R, F).
    out is overwritten; an empty row gives 0. O(E * F) work.
    Launch: as ``spmm_sum``; no atomics.
    """
    require_cuda()
    indptr, indices, perm, edge_val, X, out = _device(
        indptr=indptr, indices=indices, perm=perm, edge_val=edge_val, X=X, out=out)
    n_rows, E = _check_csr(indptr, indices)
    _check("perm", perm, (E,), kind="iu")
    _check_signed_index(indptr=indptr, indices=indices, perm=perm)
    _check("edge_val", edge_val, (E,))
    _check("X", X, (None, None))
    _check("out", out, (n_rows, X.shape[1]))
    _check_float(("X", X), ("edge_val", edge_val), ("out", out))
    _launch(_spmm_sum_perm_kernel, _gather_launch(n_rows, X.shape[1]), indptr, indices, perm, edge_val, X, out)


def spmm_mean(indptr, indices, X, out):
    """Mean aggregation: out[i] = (1/deg_i) sum_{e in row i} X[indices[e]]; 0 when deg_i = 0.

    indptr (N_dst+1,), indices (E,) signed int, X (N_src, F), out (N_dst, F). out is overwritten.
    O(E * F) work. Launch: as ``spmm_sum``; no atomics.
    """
    require_cuda()
    indptr, indices, X, out = _device(indptr=indptr, indices=indices, X=X, out=out)
    n_dst, _ = _check_csr(indptr, indices)
    _check_signed_index(indptr=indptr, indices=indices)
    _check("X", X, (None, None))
    _check("out", out, (n_dst, X.shape[1]))
    _check_float(("X", X), ("out", out))
    # edge_val is unused in this mode; X stands in so that every specialisation has one signature
    _launch(_spmm_mean_kernel, _gather_launch(n_dst, X.shape[1]), indptr, indices, indices, X, X, out)


def spmm_mean_bias(indptr, indices, X, b, accumulate, relu, out):
    """out = mean(X) + b (+ out's old value when ``accumulate``), then max(out, 0) when ``relu`` (a NaN gives
    0): ``spmm_mean`` (into a temporary with ``accumulate``) and one grid-stride pass for the rest. b (F,) of
    X's dtype, ``accumulate`` and ``relu`` bools; the rest as ``spmm_mean``. Two launches, as ``spmm_sum_bias``.
    """
    require_cuda()
    b, out = _device(b=b, out=out)
    _check("b", b, (out.shape[1],))
    _check_float(("out", out), ("b", b))
    # without accumulate the mean can go straight into out (the pass reads and writes each element once)
    M = cuda.device_array(out.shape, out.dtype) if accumulate else out
    spmm_mean(indptr, indices, X, M)
    _launch(_bias_relu_kernel, _flat_launch(out.size), out, M, b, bool(accumulate), bool(relu))


def spmm_mean_backward(t_indptr, t_indices, indptr, grad_out, grad_X):
    """Gradient of spmm_mean w.r.t. X: grad_X[j] = sum_{edges j -> i} grad_out[i] / deg_i.

    t_indptr (N_src+1,), t_indices (E,) destination ids, indptr (N_dst+1,) for the degrees (all three
    signed int), grad_out (N_dst, F), grad_X (N_src, F). grad_X is overwritten. O(E * F) work.
    Launch: as ``spmm_sum``, over the *source* rows of the transpose: each grad_X row has one owner,
    so no atomics.
    """
    require_cuda()
    t_indptr, t_indices, indptr, grad_out, grad_X = _device(
        t_indptr=t_indptr, t_indices=t_indices, indptr=indptr, grad_out=grad_out, grad_X=grad_X)
    n_src, _ = _check_csr(t_indptr, t_indices, "t_indptr", "t_indices")
    _check("indptr", indptr, (None,), kind="iu")
    _check_signed_index(t_indptr=t_indptr, t_indices=t_indices, indptr=indptr)
    _check("grad_out", grad_out, (indptr.shape[0] - 1, None))
    _check("grad_X", grad_X, (n_src, grad_out.shape[1]))
    _check_float(("grad_out", grad_out), ("grad_X", grad_X))
    _launch(_spmm_mean_backward_kernel, _gather_launch(n_src, grad_X.shape[1]),
            t_indptr, t_indices, indptr, grad_out, grad_out, grad_X)


@_jit
def _scale_rows_kernel(indptr, G, out):
    F = G.shape[1]
    for k in range(cuda.grid(1), G.shape[0] * F, cuda.gridsize(1)):
        i = k // F
        out[i, k % F] = G[i, k % F] / out.dtype.type(max(indptr[i + 1] - indptr[i], 1))


def scale_rows_by_inverse_degree(indptr, G, out):
    """out[i] = G[i] / max(deg_i, 1): the D^-1 G of the mean's backward (an IEEE division, as the reference).

    indptr (N+1,) int64, G, out (N, F) one float dtype, out overwritten (may be G). O(N F), one
    thread per element; no atomics.
    """
    require_cuda()
    indptr, G, out = _device(indptr=indptr, G=G, out=out)
    _check("indptr", indptr, (G.shape[0] + 1,), kind="iu")
    _check("out", out, G.shape)
    _check_float(("G", G), ("out", out))
    _launch(_scale_rows_kernel, _flat_launch(G.size), indptr, G, out)


@_jit
def _spmm_max_kernel(indptr, indices, X, out, argmax):
    lanes = cuda.blockDim.x
    for i in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, out.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = indptr[i], indptr[i + 1]
        for f in range(cuda.threadIdx.x, out.shape[1], lanes):
            if lo == hi:                       # empty row: 0, argmax -1
                out[i, f] = 0
                argmax[i, f] = -1
                continue
            best_j = indices[lo]
            best = X[best_j, f]
            for e in range(lo + 1, hi):
                j = indices[e]
                v = X[j, f]
                if v > best:                   # strict: the first edge in CSR order wins ties
                    best = v
                    best_j = j
            out[i, f] = best
            argmax[i, f] = best_j


def spmm_max(indptr, indices, X, out, argmax):
    """Max aggregation per feature: out[i, f] = max_{e in row i} X[indices[e], f].

    indptr (N_dst+1,), indices (E,), X (N_src, F), out (N_dst, F), argmax (N_dst, F) int64. Both out
    and argmax are overwritten: argmax gets the winning source id (first edge in CSR order on ties),
    or -1 for an empty row, whose output is 0. O(E * F) work.
    Launch: a warp (up to a block, for F > 32) per destination row, features across lanes; no atomics.
    """
    require_cuda()
    indptr, indices, X, out, argmax = _device(indptr=indptr, indices=indices, X=X, out=out, argmax=argmax)
    n_dst, _ = _check_csr(indptr, indices)
    _check("X", X, (None, None))
    _check("out", out, (n_dst, X.shape[1]))
    _check("argmax", argmax, (n_dst, X.shape[1]), kind="iu")
    _check_float(("X", X), ("out", out))
    _launch(_spmm_max_kernel, _row_launch(n_dst, X.shape[1]), indptr, indices, X, out, argmax)


@_jit
def _spmm_max_backward_kernel(t_indptr, t_indices, argmax, grad_out, grad_X):
    lanes = cuda.blockDim.x
    for j in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, grad_X.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = t_indptr[j], t_indptr[j + 1]
        for f in range(cuda.threadIdx.x, grad_X.shape[1], lanes):
            acc = grad_X.dtype.type(0)
            for e in range(lo, hi):
                i = t_indices[e]
                # a repeated edge j -> i is adjacent in the transpose; j won feature f of row i once
                if (e == lo or t_indices[e - 1] != i) and argmax[i, f] == j:
                    acc += grad_out[i, f]
            grad_X[j, f] = acc


def spmm_max_backward(t_indptr, t_indices, argmax, grad_out, grad_X):
    """Gradient of spmm_max w.r.t. X: grad_X[j, f] = sum of grad_out[i, f] over the i with argmax[i, f] = j.

    t_indptr (N_src+1,), t_indices (E,): the transpose of the graph that produced argmax (its
    destinations ascending within a row, as ``Graph`` builds it); argmax (N_dst, F) int,
    grad_out (N_dst, F), grad_X (N_src, F), overwritten. O(E * F) work.
    Launch: a warp (up to a block, for F > 32) per *source* row of the transpose, features across
    lanes. The formula scatters; gathering over the transpose instead gives each grad_X element
    one owner, so there are no atomics and the result repeats bit for bit (sums in ascending i).
    """
    require_cuda()
    t_indptr, t_indices, argmax, grad_out, grad_X = _device(
        t_indptr=t_indptr, t_indices=t_indices, argmax=argmax, grad_out=grad_out, grad_X=grad_X)
    n_src, _ = _check_csr(t_indptr, t_indices, "t_indptr", "t_indices")
    _check("argmax", argmax, (None, None), kind="iu")
    _check("grad_out", grad_out, argmax.shape)
    _check("grad_X", grad_X, (n_src, argmax.shape[1]))
    _check_float(("grad_out", grad_out), ("grad_X", grad_X))
    _launch(_spmm_max_backward_kernel, _row_launch(n_src, grad_X.shape[1]),
            t_indptr, t_indices, argmax, grad_out, grad_X)


# ============================================================================== SDDMM (edge <- nodes)
@_jit
def _sddmm_dot_kernel(indptr, indices, A, B, out):
    lanes = cuda.blockDim.x
    H = out.shape[1]
    F = A.shape[2]
    for i in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, A.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = indptr[i], indptr[i + 1]
        for p in range(cuda.threadIdx.x, (hi - lo) * H, lanes):
            e = lo + p // H
            h = p % H
            j = indices[e]
            acc = out.dtype.type(0)
            for f in range(F):
                acc += A[i, h, f] * B[j, h, f]
            out[e, h] = acc


def sddmm_dot(indptr, indices, A, B, out):
    """Per-edge, per-head dot product: out[e, h] = <A[i, h, :], B[indices[e], h, :]> for e in row i.

    A (N_dst, H, F), B (N_src, H, F), out (E, H). out is overwritten. O(E * H * F) work.
    Launch: a warp per destination row; its lanes split the row's (edge, head) pairs and each lane
    sums its dot product over F in order, so each out[e, h] has one writer: no atomics.
    """
    require_cuda()
    indptr, indices, A, B, out = _device(indptr=indptr, indices=indices, A=A, B=B, out=out)
    n_dst, E = _check_csr(indptr, indices)
    _check("A", A, (n_dst, None, None))
    _check("B", B, (None, A.shape[1], A.shape[2]))
    _check("out", out, (E, A.shape[1]))
    _check_float(("A", A), ("B", B), ("out", out))
    if E:
        _launch(_sddmm_dot_kernel, _row_launch(n_dst, _WARP), indptr, indices, A, B, out)


@_jit
def _sddmm_add_kernel(indptr, indices, a_dst, a_src, out):
    lanes = cuda.blockDim.x
    H = out.shape[1]
    for i in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, a_dst.shape[0],
                   cuda.gridDim.x * cuda.blockDim.y):
        lo, hi = indptr[i], indptr[i + 1]
        for p in range(cuda.threadIdx.x, (hi - lo) * H, lanes):
            e = lo + p // H
            h = p % H
            out[e, h] = a_dst[i, h] + a_src[indices[e], h]


def sddmm_add(indptr, indices, a_dst, a_src, out):
    """Per-edge, per-head sum: out[e, h] = a_dst[i, h] + a_src[indices[e], h] for e in row i.

    a_dst (N_dst, H), a_src (N_src, H), out (E, H). out is overwritten. O(E * H) work.
    GAT's attention logits. Launch: a warp per destination row, its lanes across the row's
    (edge, head) pairs (contiguous in out, so the writes coalesce); no atomics.
    """
    require_cuda()
    indptr, indices, a_dst, a_src, out = _device(
        indptr=indptr, indices=indices, a_dst=a_dst, a_src=a_src, out=out)
    n_dst, E = _check_csr(indptr, indices)
    _check("a_dst", a_dst, (n_dst, None))
    _check("a_src", a_src, (None, a_dst.shape[1]))
    _check("out", out, (E, a_dst.shape[1]))
    _check_float(("a_dst", a_dst), ("a_src", a_src), ("out", out))
    if E:
        _launch(_sddmm_add_kernel, _row_launch(n_dst, _WARP), indptr, indices, a_dst, a_src, out)


# ======================================================================== segment sums, edge softmax
@_jit
def _segment_sum_kernel(indptr, edge_val, out):
    H = out.shape[1]
    for k in range(cuda.grid(1), out.shape[0] * H, cuda.gridsize(1)):
        i = k // H
        h = k % H
        acc = out.dtype.type(0)
        for e in range(indptr[i], indptr[i + 1]):
            acc += edge_val[e, h]
        out[i, h] = acc


def segment_sum(indptr, edge_val, out):
    """Sum of edge values per destination row: out[i, h] = sum_{e in row i} edge_val[e, h].

    indptr (N_dst+1,), edge_val (E, H), out (N_dst, H). out is overwritten; an empty row gives 0.
    O(E * H) work. Launch: one thread per (row, head), summing in CSR order; no atomics.
    """
    require_cuda()
    indptr, edge_val, out = _device(indptr=indptr, edge_val=edge_val, out=out)
    _check("indptr", indptr, (None,), kind="iu")
    _check("edge_val", edge_val, (None, None))
    _check("out", out, (indptr.shape[0] - 1, edge_val.shape[1]))
    _check_float(("edge_val", edge_val), ("out", out))
    _launch(_segment_sum_kernel, _flat_launch(out.shape[0] * out.shape[1]), indptr, edge_val, out)


@_jit
def _segment_sum_perm_kernel(t_indptr, t_perm, edge_val, out):
    H = out.shape[1]
    for k in range(cuda.grid(1), out.shape[0] * H, cuda.gridsize(1)):
        j = k // H
        h = k % H
        acc = out.dtype.type(0)
        for e in range(t_indptr[j], t_indptr[j + 1]):
            acc += edge_val[t_perm[e], h]
        out[j, h] = acc


def segment_sum_perm(t_indptr, t_perm, edge_val, out):
    """Sum of edge values per source node: out[j, h] = sum_{e' in transposed row j} edge_val[t_perm[e'], h].

    t_indptr (N_src+1,), t_perm (E,) int, edge_val (E, H) in CSR order, out (N_src, H). out is
    overwritten. O(E * H) work. Launch: one thread per (source, head), in transposed order; no atomics.
    """
    require_cuda()
    t_indptr, t_perm, edge_val, out = _device(t_indptr=t_indptr, t_perm=t_perm, edge_val=edge_val, out=out)
    _check_csr(t_indptr, t_perm, "t_indptr", "t_perm")
    _check("edge_val", edge_val, (t_perm.shape[0], None))
    _check("out", out, (t_indptr.shape[0] - 1, edge_val.shape[1]))
    _check_float(("edge_val", edge_val), ("out", out))
    _launch(_segment_sum_perm_kernel, _flat_launch(out.shape[0] * out.shape[1]), t_indptr, t_perm, edge_val, out)


@_jit
def _edge_softmax_kernel(indptr, scores, out):
    H = out.shape[1]
    for k in range(cuda.grid(1), (indptr.shape[0] - 1) * H, cuda.gridsize(1)):
        i = k // H
        h = k % H
        lo, hi = indptr[i], indptr[i + 1]
        if lo == hi:                           # softmax over no edges: nothing to write
            continue
        m = scores[lo, h]
        for e in range(lo + 1, hi):
            m = max(m, scores[e, h])
        s = out.dtype.type(0)
        for e in range(lo, hi):
            s += math.exp(scores[e, h] - m)
        for e in range(lo, hi):
            out[e, h] = math.exp(scores[e, h] - m) / s


def edge_softmax(indptr, scores, out):
    """Softmax over each destination's incoming edges, per head, shifted by the row max for stability.

    out[e, h] = exp(s[e, h] - m[i, h]) / sum_{e' in row i} exp(s[e', h] - m[i, h]), m = row max.
    indptr (N_dst+1,), scores (E, H), out (E, H). out is overwritten. O(E * H) work.
    Launch: one thread per (row, head): max pass, sum pass, write pass; no atomics.
    """
    require_cuda()
    indptr, scores, out = _device(indptr=indptr, scores=scores, out=out)
    _check("indptr", indptr, (None,), kind="iu")
    _check("scores", scores, (None, None))
    _check("out", out, scores.shape)
    _check_float(("scores", scores), ("out", out))
    if scores.shape[0]:
        _launch(_edge_softmax_kernel, _flat_launch((indptr.shape[0] - 1) * out.shape[1]), indptr, scores, out)


@_jit
def _edge_softmax_backward_kernel(indptr, alpha, grad_alpha, out):
    H = out.shape[1]
    for k in range(cuda.grid(1), (indptr.shape[0] - 1) * H, cuda.gridsize(1)):
        i = k // H
        h = k % H
        lo, hi = indptr[i], indptr[i + 1]
        s = out.dtype.type(0)
        for e in range(lo, hi):
            s += alpha[e, h] * grad_alpha[e, h]
        for e in range(lo, hi):
            out[e, h] = alpha[e, h] * grad_alpha[e, h] - alpha[e, h] * s


def edge_softmax_backward(indptr, alpha, grad_alpha, out):
    """Gradient of edge_softmax w.r.t. its scores: out[e] = alpha[e] * (g[e] - sum_{e' in row i} alpha[e'] g[e']).

    indptr (N_dst+1,), alpha, grad_alpha, out: (E, H). out is overwritten. O(E * H) work.
    Launch: one thread per (row, head): a sum pass, then a write pass; no atomics.
    """
    require_cuda()
    indptr, alpha, grad_alpha, out = _device(indptr=indptr, alpha=alpha, grad_alpha=grad_alpha, out=out)
    _check("indptr", indptr, (None,), kind="iu")
    _check("alpha", alpha, (None, None))
    _check("grad_alpha", grad_alpha, alpha.shape)
    _check("out", out, alpha.shape)
    _check_float(("alpha", alpha), ("grad_alpha", grad_alpha), ("out", out))
    if alpha.shape[0]:
        _launch(_edge_softmax_backward_kernel, _flat_launch((indptr.shape[0] - 1) * out.shape[1]),
                indptr, alpha, grad_alpha, out)
