"""Dense and element-wise CUDA kernels (``numba.cuda``): what a whole training step needs besides SpMM.

``kernels/cuda.py`` holds the sparse kernels and ``kernels/gat_cuda.py`` the fused GAT aggregation;
this module holds the rest of a GCN, GAT or GraphSAGE step -- the matrix products of the layers,
bias, column sums, activations, dropout and GAT's attention-dropout mask, GAT's per-head score
products and head mean, SAGE's row normalisation, the masked softmax cross-entropy, accuracy
counts, and the SGD / Adam updates -- so that an epoch runs on the GPU with no host round trip
but the logged scalars. ``gnn_scratch/dense.py`` dispatches to it (NumPy
on the host, these kernels on the device); layers never call it directly.

Conventions (as in ``kernels/cuda.py``)
---------------------------------------
* Every public function takes device arrays, checks shapes and dtypes (metadata only), picks a
  launch configuration and launches. Outputs are preallocated by the caller; nothing is copied
  to or from the host; host arrays are refused with a TypeError.
* float32 and float64 are both supported, one dtype per call; arithmetic stays in that dtype (the
  wrappers cast every scalar hyper-parameter to it first, exactly as NumPy casts a Python scalar
  against a float32 array), so a float32 kernel contains no float64 arithmetic.
* Arrays are C-contiguous. Element-wise kernels run on flat 1-D views with one thread per element
  and grid-stride loops (``_flat``), so any grid is correct; grids are capped at ``_MAX_BLOCKS``.

Launch shapes and determinism
-----------------------------
* **Tiled matmul** (``matmul``, ``matmul_tn``, ``matmul_nt``): a ``_TILE x _TILE`` block owns a
  tile of the output; the A and B tiles are staged through shared memory, loaded so that
  neighbouring threads read neighbouring addresses whichever operand is transposed. ``A^T B``
  (the weight gradient H^T dZ, whose reduction runs over all N nodes and whose output is tiny) is
  **split over K**: ``blockIdx.y`` takes a chunk of ``_SPLIT_K`` rows and writes its own partial
  product; the partials are then summed in a fixed order by ``col_sum``. No atomics anywhere.
* **Column sums** (``col_sum``: the bias gradient, the loss and accuracy totals; weighted by a
  per-(row, head) factor, GAT's attention-vector gradient ``head_dot_backward_att``): a block of
  (columns x row lanes) sums a chunk of ``_ROWS_PER_CHUNK`` rows and reduces its lanes with a
  shared-memory tree; with several chunks the partials go through ``col_sum`` again. The order of
  every floating-point sum depends only on the shapes, so results repeat bit for bit.
* No kernel here uses atomics (nor, since ``cuda.spmm_max_backward`` gathers over the cached
  transpose, any kernel of the GPU path).

Dropout (and GAT's attention dropout, ``keep_mask``) draws its mask from a counter-based hash of
(seed, call number, element index), see ``dropout``; it repeats exactly for the same seed and does
not depend on the launch shape.

Under the simulator (``NUMBA_ENABLE_CUDASIM=1``) every thread is a Python thread, so blocks, tiles
and chunks are small there (and the tests lower ``_MAX_BLOCKS`` further).
"""
import functools
import math

import numpy as np

from .cuda import _check, _check_float, _device, _jit, _launch, _simulator_enabled, cuda, require_cuda

try:
    import numba
except ImportError:  # pragma: no cover -- numba is a hard dependency of the package
    numba = None

_SIM = _simulator_enabled()
_BLOCK_THREADS = 8 if _SIM else 256       # flat kernels and column sums; a power of two
_TILE = 8 if _SIM else 16                 # matmul tile edge: _TILE**2 threads per block
_SPLIT_K = 16 if _SIM else 2048           # rows of the reduction per block in matmul_tn (a multiple of _TILE)
_ROWS_PER_CHUNK = 64 if _SIM else 4096    # rows per block in col_sum
_MAX_BLOCKS = 65535
_MAX_PARTIAL = 1 << 26                    # elements of matmul_tn's partial products (256 MB in float32)


# ---------------------------------------------------------------------------------------- launching
def _flat_launch(n_items):
    """(grid, block) for one thread per item with a grid-stride loop; None when n_items == 0."""
    if n_items <= 0:
        return None
    threads = _BLOCK_THREADS
    return min((n_items + threads - 1) // threads, _MAX_BLOCKS), threads


def _flat(a):
    """A C-contiguous device array as a 1-D view (no copy)."""
    return a if a.ndim == 1 else a.reshape(a.size)


def _contiguous(**arrays):
    for name, a in arrays.items():
        if not a.is_c_contiguous():
            raise ValueError(f"{name} must be C-contiguous")


def _nb_type(dtype):
    return numba.from_dtype(np.dtype(dtype))


# ================================================================================== matrix products
@functools.lru_cache(maxsize=None)
def _matmul_kernel(dtype_name, trans_a, trans_b, tile):
    """The tiled kernel out[z] (+)= op(A)[:, Kz] op(B)[Kz, :] for one dtype, transpose pattern and tile.

    Built per (dtype, transposes, tile) because shared arrays need a constant dtype and shape.
    """
    T = tile
    SHAPE = (T, T + 1)                     # +1 column: no shared-memory bank conflicts on the transposed store
    nbt = _nb_type(dtype_name)

    @_jit
    def kernel(A, B, out, k_chunk, accumulate):
        sA = cuda.shared.array(SHAPE, nbt)  # sA[k, i] = op(A)[i0 + i, k0 + k]
        sB = cuda.shared.array(SHAPE, nbt)  # sB[k, j] = op(B)[k0 + k, j0 + j]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        M = out.shape[1]
        N = out.shape[2]
        K = A.shape[0] if trans_a else A.shape[1]
        zero = nbt(0)
        z = cuda.blockIdx.y
        k_lo = z * k_chunk
        k_hi = min(K, k_lo + k_chunk)
        tiles_n = (N + T - 1) // T
        for t in range(cuda.blockIdx.x, ((M + T - 1) // T) * tiles_n, cuda.gridDim.x):
            i0 = (t // tiles_n) * T
            j0 = (t % tiles_n) * T
            acc = zero
            for k0 in range(k_lo, k_hi, T):
                if trans_a:                  # A is (K, M), contiguous along i
                    k = k0 + ty
                    i = i0 + tx
                    sA[ty, tx] = A[k, i] if (k < k_hi and i < M) else zero
                else:                        # A is (M, K), contiguous along k
                    i = i0 + ty
                    k = k0 + tx
                    sA[tx, ty] = A[i, k] if (i < M and k < k_hi) else zero
                if trans_b:                  # B is (N, K), contiguous along k
                    j = j0 + ty
                    k = k0 + tx
                    sB[tx, ty] = B[j, k] if (j < N and k < k_hi) else zero
                else:                        # B is (K, N), contiguous along j
                    k = k0 + ty
                    j = j0 + tx
                    sB[ty, tx] = B[k, j] if (k < k_hi and j < N) else zero
                cuda.syncthreads()
                for kk in range(T):
                    acc += sA[kk, ty] * sB[kk, tx]
                cuda.syncthreads()
            i = i0 + ty
            j = j0 + tx
            if i < M and j < N:
                if accumulate:
                    out[z, i, j] += acc
                else:
                    out[z, i, j] = acc

    return kernel


def _matmul(A, B, out, trans_a, trans_b, accumulate, names):
    """Shared body of the three products: checks, split over K, launch, and the ordered sum of the splits."""
    require_cuda()
    A, B, out = _device(**{names[0]: A, names[1]: B, "out": out})
    _check(names[0], A, (None, None))
    _check(names[1], B, (None, None))
    M = A.shape[1] if trans_a else A.shape[0]
    K = A.shape[0] if trans_a else A.shape[1]
    Kb = B.shape[1] if trans_b else B.shape[0]
    N = B.shape[0] if trans_b else B.shape[1]
    if Kb != K:
        raise ValueError(f"{names[0]} and {names[1]} do not chain: the inner dimensions are {K} and {Kb}")
    _check("out", out, (M, N))
    _check_float((names[0], A), (names[1], B), ("out", out))
    _contiguous(**{names[0]: A, names[1]: B, "out": out})
    if M == 0 or N == 0:
        return
    if K == 0:
        if not accumulate:
            fill(out, 0)
        return
    T = _TILE
    kernel = _matmul_kernel(out.dtype.name, trans_a, trans_b, T)
    tiles = ((M + T - 1) // T) * ((N + T - 1) // T)
    grid_x = min(tiles, _MAX_BLOCKS)
    splits = 1
    k_chunk = K
    if trans_a and not trans_b and K > _SPLIT_K:
        # A^T B with a long reduction: one partial product per chunk of rows, summed in order below
        k_chunk = max(_SPLIT_K, -(-K // max(1, min(_MAX_BLOCKS, _MAX_PARTIAL // (M * N)))))
        k_chunk = -(-k_chunk // T) * T
        splits = -(-K // k_chunk)
    if splits == 1:
        kernel[(grid_x, 1), (T, T)](A, B, out.reshape(1, M, N), K, accumulate)
        return
    partial = cuda.device_array((splits, M, N), dtype=out.dtype)
    kernel[(grid_x, splits), (T, T)](A, B, partial, k_chunk, False)
    col_sum(partial.reshape(splits, M * N), out.reshape(M * N), accumulate)


def matmul(A, B, out, accumulate=False):
    """out = A @ B (or out += A @ B with ``accumulate``).

    A (M, K), B (K, N), out (M, N): device arrays of one float dtype, C-contiguous. out is
    preallocated and overwritten (or added to). O(M N K) work, O((M N K) / _TILE) global reads.
    Launch: a _TILE x _TILE block per output tile, tiles staged in shared memory; no atomics.
    The layers' X W (N x F_in times F_in x F_out) and S W.
    """
    _matmul(A, B, out, False, False, accumulate, ("A", "B"))


def matmul_tn(A, B, out, accumulate=False):
    """out = A^T @ B (or out += A^T @ B): the weight gradient H^T dZ.

    A (K, M), B (K, N), out (M, N), one float dtype, C-contiguous; out preallocated. O(M N K) work.
    Launch: tiles as in ``matmul``, and the reduction over K (all N nodes of the graph) is split
    into chunks of ``_SPLIT_K`` rows, one per ``blockIdx.y``, each writing an (M, N) partial
    product; ``col_sum`` then adds the partials in chunk order. Deterministic, no atomics;
    O(ceil(K / _SPLIT_K) M N) extra memory (capped at ``_MAX_PARTIAL`` elements by widening the chunks).
    """
    _matmul(A, B, out, True, False, accumulate, ("A", "B"))


def matmul_nt(A, B, out, accumulate=False):
    """out = A @ B^T (or out += A @ B^T): the input gradient dZ W^T.

    A (M, K), B (N, K), out (M, N), one float dtype, C-contiguous; out preallocated. O(M N K) work.
    Launch: as ``matmul``; B's tile is loaded along its rows and stored transposed in shared memory.
    """
    _matmul(A, B, out, False, True, accumulate, ("A", "B"))


# ======================================================================================= column sums
@functools.lru_cache(maxsize=None)
def _col_sum_kernel(dtype_name, block_threads, weighted=False):
    """The column-sum kernel; ``weighted`` multiplies G[r, c] by S[r, c // (C / S.shape[1])] as it reads it.

    Built per (dtype, block, weighted) because the shared array needs a constant dtype and size;
    the unweighted kernel ignores S (``col_sum`` passes G itself).
    """
    nbt = _nb_type(dtype_name)
    BT = block_threads

    @_jit
    def kernel(G, S, out, rows_per_chunk, accumulate):
        s = cuda.shared.array(BT, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        TX = cuda.blockDim.x
        TY = cuda.blockDim.y
        R = G.shape[0]
        C = G.shape[1]
        F = C // S.shape[1]                  # columns per weight: G's (head, feature) pairs share their head's
        z = cuda.blockIdx.y
        r_lo = z * rows_per_chunk
        r_hi = min(R, r_lo + rows_per_chunk)
        for c0 in range(cuda.blockIdx.x * TX, C, cuda.gridDim.x * TX):
            c = c0 + tx
            acc = nbt(0)
            if c < C:
                for r in range(r_lo + ty, r_hi, TY):
                    if weighted:
                        acc += S[r, c // F] * G[r, c]
                    else:
                        acc += G[r, c]
            s[ty * TX + tx] = acc
            cuda.syncthreads()
            stride = TY // 2
            while stride > 0:               # tree over the row lanes, fixed order
                if ty < stride:
                    s[ty * TX + tx] += s[(ty + stride) * TX + tx]
                cuda.syncthreads()
                stride //= 2
            if ty == 0 and c < C:
                if accumulate:
                    out[z, c] += s[tx]
                else:
                    out[z, c] = s[tx]
            cuda.syncthreads()

    return kernel


def col_sum(G, out, accumulate=False):
    """out[c] = sum_r G[r, c] (or out[c] += ... with ``accumulate``): the bias gradient sum_n dY[n].

    G (R, C), out (C,), one float dtype, C-contiguous; out preallocated. R = 0 gives 0. O(R C) work.
    Launch: blocks of (TX columns x TY row lanes), TX = min(32, C rounded up to a power of two);
    ``blockIdx.y`` takes a chunk of ``_ROWS_PER_CHUNK`` rows, its lanes sum strided rows and a
    shared-memory tree adds the lanes. With more than one chunk the (chunks, C) partials are
    summed by ``col_sum`` again. Summation order fixed by the shapes: deterministic, no atomics.
    """
    require_cuda()
    G, out = _device(G=G, out=out)
    _check("G", G, (None, None))
    _check("out", out, (G.shape[1],))
    _check_float(("G", G), ("out", out))
    _contiguous(G=G, out=out)
    _col_sum(G, G, out, accumulate, False)


def _col_sum(G, S, out, accumulate, weighted):
    """Launch of ``col_sum`` / ``head_dot_backward_att``: chunks of rows, then the partials in order."""
    R, C = G.shape
    if C == 0:
        return
    BT = _BLOCK_THREADS
    TX = 1
    while TX < min(C, 32):
        TX *= 2
    TX = min(TX, BT)
    block = (TX, BT // TX)
    grid_x = min(-(-C // TX), _MAX_BLOCKS)
    kernel = _col_sum_kernel(out.dtype.name, BT, weighted)
    # gridDim.y may not exceed 65535 on a GPU (the simulator does not check): past _MAX_BLOCKS
    # chunks, the chunks grow instead (R > 268M rows with the GPU's 4096-row chunks).
    rows_per_chunk = max(_ROWS_PER_CHUNK, -(-R // _MAX_BLOCKS))
    chunks = max(1, -(-R // rows_per_chunk))
    if chunks == 1:
        kernel[(grid_x, 1), block](G, S, out.reshape(1, C), max(R, 1), accumulate)
        return
    partial = cuda.device_array((chunks, C), dtype=out.dtype)
    kernel[(grid_x, chunks), block](G, S, partial, rows_per_chunk, False)
    col_sum(partial, out, accumulate)


# ===================================================================================== element-wise
@_jit
def _fill_kernel(a, value):
    for k in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[k] = value


def fill(a, value):
    """a[...] = value, in place. a: any shape, C-contiguous; value cast to a's dtype. O(a.size)."""
    require_cuda()
    (a,) = _device(a=a)
    _contiguous(a=a)
    _launch(_fill_kernel, _flat_launch(a.size), _flat(a), a.dtype.type(value))


@_jit
def _add_kernel(acc, x):
    for k in range(cuda.grid(1), acc.shape[0], cuda.gridsize(1)):
        acc[k] += x[k]


def add(acc, x):
    """acc += x, in place (same shape and float dtype; gradient accumulation). O(acc.size), no atomics."""
    require_cuda()
    acc, x = _device(acc=acc, x=x)
    _check("x", x, acc.shape)
    _check_float(("acc", acc), ("x", x))
    _contiguous(acc=acc, x=x)
    _launch(_add_kernel, _flat_launch(acc.size), _flat(acc), _flat(x))


@_jit
def _add_bias_kernel(Y, b):
    F = b.shape[0]
    for k in range(cuda.grid(1), Y.shape[0] * F, cuda.gridsize(1)):
        Y[k // F, k % F] += b[k % F]


def add_bias(Y, b):
    """Y[n, :] += b for every row n, in place. Y (N, F), b (F,), one float dtype. O(N F)."""
    require_cuda()
    Y, b = _device(Y=Y, b=b)
    _check("Y", Y, (None, None))
    _check("b", b, (Y.shape[1],))
    _check_float(("Y", Y), ("b", b))
    _launch(_add_bias_kernel, _flat_launch(Y.size), Y, b)


@_jit
def _mul_kernel(a, b, out):
    for k in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[k] = a[k] * b[k]


def mul(a, b, out):
    """out = a * b element-wise (same shape, one float dtype). O(size). Dropout's x * scale and g * scale."""
    require_cuda()
    a, b, out = _device(a=a, b=b, out=out)
    _check("b", b, a.shape)
    _check("out", out, a.shape)
    _check_float(("a", a), ("b", b), ("out", out))
    _contiguous(a=a, b=b, out=out)
    _launch(_mul_kernel, _flat_launch(a.size), _flat(a), _flat(b), _flat(out))


# ---------------------------------------------------------------------------------------- activations
@_jit
def _relu_kernel(x, y, pos):
    zero = y.dtype.type(0)
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else zero


@_jit
def _leaky_relu_kernel(x, slope, y, pos):
    zero = y.dtype.type(0)
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else slope * v


@_jit
def _relu_backward_kernel(g, pos, slope, out):
    for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        out[k] = g[k] if pos[k] else g[k] * slope


def _check_activation(x, out, pos):
    _check("out", out, x.shape)
    _check("pos", pos, x.shape, dtype=np.bool_)
    _check_float(("x", x), ("out", out))
    _contiguous(x=x, out=out, pos=pos)


def relu(x, y, pos):
    """y = max(x, 0), pos = (x > 0). x, y (any shape, one float dtype), pos bool of x's shape; both overwritten.

    O(size), one thread per element. A non-positive x gives +0, as np.where(x > 0, x, 0).
    """
    require_cuda()
    x, y, pos = _device(x=x, y=y, pos=pos)
    _check_activation(x, y, pos)
    _launch(_relu_kernel, _flat_launch(x.size), _flat(x), _flat(y), _flat(pos))


def relu_backward(g, pos, out):
    """out = g * pos (the subgradient 0 at x = 0). g, out one float dtype, pos bool; O(size)."""
    leaky_relu_backward(g, pos, 0.0, out)


def leaky_relu(x, negative_slope, y, pos):
    """y = x if x > 0 else s x, pos = (x > 0); s cast to x's dtype. Shapes as ``relu``. O(size)."""
    require_cuda()
    x, y, pos = _device(x=x, y=y, pos=pos)
    _check_activation(x, y, pos)
    _launch(_leaky_relu_kernel, _flat_launch(x.size), _flat(x), x.dtype.type(negative_slope), _flat(y), _flat(pos))


def leaky_relu_backward(g, pos, negative_slope, out):
    """out = g if pos else s g; s cast to g's dtype. g, out one float dtype, pos bool. O(size)."""
    require_cuda()
    g, pos, out = _device(g=g, pos=pos, out=out)
    _check_activation(g, out, pos)
    _launch(_relu_backward_kernel, _flat_launch(g.size), _flat(g), _flat(pos), g.dtype.type(negative_slope),
            _flat(out))


@_jit
def _elu_kernel(x, alpha, y, pos):
    zero = y.dtype.type(0)
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[k]
        p = v > zero
        pos[k] = p
        y[k] = v if p else alpha * math.expm1(min(v, zero))


@_jit
def _elu_backward_kernel(g, pos, y, alpha, out):
    for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        out[k] = g[k] if pos[k] else g[k] * (y[k] + alpha)


def elu(x, alpha, y, pos):
    """y = x if x > 0 else a (e^x - 1) (expm1 of min(x, 0): no overflow), pos = (x > 0). O(size)."""
    require_cuda()
    x, y, pos = _device(x=x, y=y, pos=pos)
    _check_activation(x, y, pos)
    _launch(_elu_kernel, _flat_launch(x.size), _flat(x), x.dtype.type(alpha), _flat(y), _flat(pos))


def elu_backward(g, pos, y, alpha, out):
    """out = g if pos else g (y + a), with y the forward output. g, y, out one float dtype. O(size)."""
    require_cuda()
    g, pos, y, out = _device(g=g, pos=pos, y=y, out=out)
    _check_activation(g, out, pos)
    _check("y", y, g.shape)
    _check_float(("g", g), ("y", y))
    _launch(_elu_backward_kernel, _flat_launch(g.size), _flat(g), _flat(pos), _flat(y), g.dtype.type(alpha),
            _flat(out))


# --------------------------------------------------------------------------------------------- dropout
_MASK32 = np.uint64(0xFFFFFFFF)
_C1 = np.uint64(0x85EBCA6B)
_C2 = np.uint64(0xC2B2AE35)
_S8 = np.uint64(8)
_S13 = np.uint64(13)
_S16 = np.uint64(16)
_S32 = np.uint64(32)
_U24 = np.float32(1.0 / (1 << 24))


def _fmix32(h):
    """MurmurHash3's 32-bit finaliser on a uint64 holding 32 bits (products stay below 2^64: no overflow)."""
    h ^= h >> _S16
    h = (h * _C1) & _MASK32
    h ^= h >> _S13
    h = (h * _C2) & _MASK32
    h ^= h >> _S16
    return h


def _device_function(fn):
    return cuda.jit(device=True)(fn) if cuda is not None else fn


_fmix32_device = _device_function(_fmix32)


@_device_function
def _uniform_device(c, key0, key1):
    """u_c in [0, 1) for the counter c (uint64) and the keys: the one hash of every device mask."""
    h = _fmix32_device((c & _MASK32) ^ key0)
    h = _fmix32_device(((h + (c >> _S32)) & _MASK32) ^ key1)
    return np.float32(h >> _S8) * _U24           # 24 random bits -> [0, 1), like rng.random(dtype=float32)


@_jit
def _dropout_kernel(x, key0, key1, keep, scale_value, y, scale):
    zero = y.dtype.type(0)
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        u = _uniform_device(np.uint64(k), key0, key1)
        s = scale_value if u < keep else zero
        scale[k] = s
        y[k] = x[k] * s


def dropout_uniform_host(n, key0, key1):
    """The uniforms u[k], k < n, that ``dropout`` compares with keep, computed on the host (NumPy): for tests."""
    c = np.arange(n, dtype=np.uint64)
    h = _fmix32((c & _MASK32) ^ np.uint64(key0))
    h = _fmix32(((h + (c >> _S32)) & _MASK32) ^ np.uint64(key1))
    return (h >> _S8).astype(np.float32) * _U24


def dropout(x, key0, key1, keep, y, scale):
    """Inverted dropout: scale[k] = 1/keep if u_k < keep else 0, y = x * scale. Any shape, flat index k.

    x, y, scale: one float dtype, C-contiguous, y and scale overwritten. key0, key1: 32-bit ints that
    name the mask (``gnn_scratch.dense`` derives them from the layer's seed and call number).
    u_k = 24 bits of fmix32(fmix32(lo32(k) ^ key0) + hi32(k) ^ key1) / 2^24, in [0, 1): a
    counter-based generator, so the mask depends on (key0, key1, k) only -- not on the grid, the
    GPU or the simulator -- and needs no RNG state in memory. ``dropout_uniform_host`` computes
    the same u on the host. scale = (1 / keep) in x's dtype, as the CPU layer computes it. O(size).
    """
    require_cuda()
    x, y, scale = _device(x=x, y=y, scale=scale)
    _check("y", y, x.shape)
    _check("scale", scale, x.shape)
    _check_float(("x", x), ("y", y), ("scale", scale))
    _contiguous(x=x, y=y, scale=scale)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    dt = x.dtype.type
    _launch(_dropout_kernel, _flat_launch(x.size), _flat(x), np.uint64(key0 & 0xFFFFFFFF),
            np.uint64(key1 & 0xFFFFFFFF), np.float32(keep), dt(1) / dt(keep), _flat(y), _flat(scale))


@_jit
def _keep_mask_kernel(key0, key1, keep, mask):
    for k in range(cuda.grid(1), mask.shape[0], cuda.gridsize(1)):
        mask[k] = 1 if _uniform_device(np.uint64(k), key0, key1) < keep else 0


def keep_mask(key0, key1, keep, mask):
    """A dropout keep mask: mask[k] = 1 if u_k < keep else 0, u_k the hash of ``dropout`` (flat index k).

    mask: uint8 of any shape (GAT's attention dropout: (E, H), k = e H + h), C-contiguous,
    overwritten; key0, key1 32-bit ints; keep in (0, 1]. The same u_k as ``dropout`` for the same
    keys, so ``dropout_uniform_host(mask.size, key0, key1) < float32(keep)`` recomputes it on the
    host. O(size), one thread per element; no state, no atomics.
    """
    require_cuda()
    (mask,) = _device(mask=mask)
    _check("mask", mask, (None,) * mask.ndim, dtype=np.uint8)
    _contiguous(mask=mask)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    _launch(_keep_mask_kernel, _flat_launch(mask.size), np.uint64(key0 & 0xFFFFFFFF), np.uint64(key1 & 0xFFFFFFFF),
            np.float32(keep), _flat(mask))


# ====================================================================== per-head pieces of GAT
# Z is (N, H, F): H heads of F features. The score halves a[n, h] = <Z[n, h], att[h]> and their
# backward; the mean over heads of the last layer and its backward. Each output element has one
# writer; the reduction over nodes goes through the column-sum tree, so nothing here uses atomics.
@_jit
def _head_dot_kernel(Z, att, out):
    H = Z.shape[1]
    F = Z.shape[2]
    for k in range(cuda.grid(1), out.shape[0] * H, cuda.gridsize(1)):
        n = k // H
        h = k % H
        acc = out.dtype.type(0)
        for f in range(F):
            acc += Z[n, h, f] * att[h, f]
        out[n, h] = acc


def head_dot(Z, att, out):
    """out[n, h] = sum_f Z[n, h, f] att[h, f] for n < out.shape[0] (GAT's a_src, and a_dst on Z[:N_dst]).

    Z (N, H, F), att (H, F), out (M, H) with M <= N (the first M rows of Z), one float dtype;
    out overwritten. O(M H F). Launch: one thread per (n, h), summing f in order; no atomics.
    """
    require_cuda()
    Z, att, out = _device(Z=Z, att=att, out=out)
    _check("Z", Z, (None, None, None))
    H, F = Z.shape[1], Z.shape[2]
    _check("att", att, (H, F))
    _check("out", out, (None, H))
    if out.shape[0] > Z.shape[0]:
        raise ValueError(f"out has {out.shape[0]} rows, more than Z's {Z.shape[0]}")
    _check_float(("Z", Z), ("att", att), ("out", out))
    _launch(_head_dot_kernel, _flat_launch(out.shape[0] * H), Z, att, out)


def head_dot_backward_att(da, Z, out, accumulate=False):
    """out[h, f] = sum_n da[n, h] Z[n, h, f] (or +=): the gradient of att in a = head_dot(Z, att).

    da (M, H), Z (N, H, F) with M <= N (its first M rows are used), out (H, F): one float dtype,
    C-contiguous; out preallocated. O(M H F). Launch: ``col_sum``'s kernel on Z viewed as
    (N, H F), multiplying each element by its row's da[n, h] as it reads it: chunks of rows, a
    shared-memory tree per chunk, partials summed in chunk order. Deterministic, no atomics, no
    (M, H, F) temporary.
    """
    require_cuda()
    da, Z, out = _device(da=da, Z=Z, out=out)
    _check("Z", Z, (None, None, None))
    N, H, F = Z.shape
    _check("da", da, (None, H))
    _check("out", out, (H, F))
    M = da.shape[0]
    if M > N:
        raise ValueError(f"da has {M} rows, more than Z's {N}")
    _check_float(("Z", Z), ("da", da), ("out", out))
    _contiguous(da=da, Z=Z, out=out)
    _col_sum(Z.reshape(N, H * F)[:M], da, out.reshape(H * F), accumulate, True)


@_jit
def _head_dot_backward_Z_kernel(dZ, da, att):
    H = dZ.shape[1]
    F = dZ.shape[2]
    for k in range(cuda.grid(1), da.shape[0] * H * F, cuda.gridsize(1)):
        n = k // (H * F)
        h = (k // F) % H
        f = k % F
        dZ[n, h, f] += da[n, h] * att[h, f]


def head_dot_backward_Z(dZ, da, att):
    """dZ[n, h, f] += da[n, h] att[h, f] for n < da.shape[0], in place: the gradient of Z in head_dot.

    dZ (N, H, F), da (M, H) with M <= N, att (H, F), one float dtype. O(M H F), one thread per
    element of dZ[:M]; no atomics.
    """
    require_cuda()
    dZ, da, att = _device(dZ=dZ, da=da, att=att)
    _check("dZ", dZ, (None, None, None))
    N, H, F = dZ.shape
    _check("da", da, (None, H))
    _check("att", att, (H, F))
    if da.shape[0] > N:
        raise ValueError(f"da has {da.shape[0]} rows, more than dZ's {N}")
    _check_float(("dZ", dZ), ("da", da), ("att", att))
    _launch(_head_dot_backward_Z_kernel, _flat_launch(da.shape[0] * H * F), dZ, da, att)


@_jit
def _head_mean_kernel(Y, heads, out):
    H = Y.shape[1]
    F = Y.shape[2]
    for k in range(cuda.grid(1), Y.shape[0] * F, cuda.gridsize(1)):
        n = k // F
        f = k % F
        acc = out.dtype.type(0)
        for h in range(H):
            acc += Y[n, h, f]
        out[n, f] = acc / heads


def head_mean(Y, out):
    """out[n, f] = (sum_h Y[n, h, f]) / H: the mean over heads (sum in head order, then one division, as NumPy).

    Y (N, H, F), out (N, F), one float dtype; out overwritten. O(N H F), a thread per (n, f).
    """
    require_cuda()
    Y, out = _device(Y=Y, out=out)
    _check("Y", Y, (None, None, None))
    _check("out", out, (Y.shape[0], Y.shape[2]))
    _check_float(("Y", Y), ("out", out))
    _launch(_head_mean_kernel, _flat_launch(Y.shape[0] * Y.shape[2]), Y, out.dtype.type(Y.shape[1]), out)


@_jit
def _head_mean_backward_kernel(G, heads, out):
    H = out.shape[1]
    F = out.shape[2]
    for k in range(cuda.grid(1), out.shape[0] * H * F, cuda.gridsize(1)):
        n = k // (H * F)
        f = k % F
        out[n, (k // F) % H, f] = G[n, f] / heads


def head_mean_backward(G, out):
    """out[n, h, f] = G[n, f] / H for every head h: the gradient of ``head_mean``.

    G (N, F), out (N, H, F), one float dtype; out overwritten. O(N H F), a thread per element.
    """
    require_cuda()
    G, out = _device(G=G, out=out)
    _check("out", out, (None, None, None))
    _check("G", G, (out.shape[0], out.shape[2]))
    _check_float(("G", G), ("out", out))
    _launch(_head_mean_backward_kernel, _flat_launch(out.size), G, out.dtype.type(out.shape[1]), out)


# ======================================================================= row L2 normalisation
@_jit
def _row_normalize_kernel(x, eps, y, norm):
    F = x.shape[1]
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        s = y.dtype.type(0)
        for f in range(F):
            s += x[i, f] * x[i, f]
        n = math.sqrt(s)
        norm[i] = n
        d = max(n, eps)
        for f in range(F):
            y[i, f] = x[i, f] / d


def row_normalize(x, eps, y, norm):
    """y[i] = x[i] / max(||x[i]||, eps), norm[i] = ||x[i]|| (SAGEConv's normalize; a zero row stays 0).

    x, y (N, F), norm (N,), one float dtype; y and norm overwritten; eps cast to the dtype.
    O(N F). Launch: one thread per row (sum of squares in column order); no atomics.
    """
    require_cuda()
    x, y, norm = _device(x=x, y=y, norm=norm)
    _check("x", x, (None, None))
    _check("y", y, x.shape)
    _check("norm", norm, (x.shape[0],))
    _check_float(("x", x), ("y", y), ("norm", norm))
    _launch(_row_normalize_kernel, _flat_launch(x.shape[0]), x, x.dtype.type(eps), y, norm)


@_jit
def _row_normalize_backward_kernel(g, y, norm, eps, out):
    F = g.shape[1]
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        n = norm[i]
        if n > eps:
            yg = out.dtype.type(0)
            for f in range(F):
                yg += y[i, f] * g[i, f]
            for f in range(F):
                out[i, f] = (g[i, f] - y[i, f] * yg) / n
        else:                                   # below eps y = x / eps is linear in x
            for f in range(F):
                out[i, f] = g[i, f] / eps


def row_normalize_backward(g, y, norm, eps, out):
    """out[i] = (g[i] - y[i] (y[i] . g[i])) / ||x[i]|| if ||x[i]|| > eps else g[i] / eps.

    g, y, out (N, F), norm (N,) from ``row_normalize``, one float dtype; out overwritten. O(N F),
    one thread per row; no atomics.
    """
    require_cuda()
    g, y, norm, out = _device(g=g, y=y, norm=norm, out=out)
    _check("g", g, (None, None))
    _check("y", y, g.shape)
    _check("out", out, g.shape)
    _check("norm", norm, (g.shape[0],))
    _check_float(("g", g), ("y", y), ("norm", norm), ("out", out))
    _launch(_row_normalize_backward_kernel, _flat_launch(g.shape[0]), g, y, norm, g.dtype.type(eps), out)


# ================================================================== masked softmax cross-entropy
@_jit
def _xent_rows_kernel(Z, y, mask, rows):
    C = Z.shape[1]
    zero = rows.dtype.type(0)
    use_mask = mask.shape[0] > 0
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        if use_mask and not mask[i]:
            rows[i, 0] = zero
            rows[i, 1] = zero
            continue
        m = Z[i, 0]
        for c in range(1, C):
            m = max(m, Z[i, c])
        s = zero
        for c in range(C):
            s += math.exp(Z[i, c] - m)
        rows[i, 0] = -((Z[i, y[i]] - m) - math.log(s))      # -log softmax(Z_i)[y_i], max-shifted
        rows[i, 1] = rows.dtype.type(1)


@_jit
def _divide_kernel(totals, out):
    if cuda.grid(1) == 0:
        out[0] = totals[0] / totals[1]


@_jit
def _xent_backward_kernel(Z, y, mask, totals, dZ):
    C = Z.shape[1]
    zero = dZ.dtype.type(0)
    one = dZ.dtype.type(1)
    count = totals[1]
    use_mask = mask.shape[0] > 0
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        if use_mask and not mask[i]:
            for c in range(C):
                dZ[i, c] = zero
            continue
        m = Z[i, 0]
        for c in range(1, C):
            m = max(m, Z[i, c])
        s = zero
        for c in range(C):
            s += math.exp(Z[i, c] - m)
        log_s = math.log(s)
        for c in range(C):
            p = math.exp((Z[i, c] - m) - log_s)
            if c == y[i]:
                p -= one
            dZ[i, c] = p / count


def _check_xent(Z, y, mask):
    _check("Z", Z, (None, None))
    _check("y", y, (Z.shape[0],), kind="iu")
    if mask.shape[0] not in (0, Z.shape[0]):
        raise ValueError(f"mask must have shape ({Z.shape[0]},) or (0,) for every node, got {tuple(mask.shape)}")
    _check("mask", mask, (None,), dtype=np.bool_)
    _check_float(("Z", Z),)
    if Z.shape[1] == 0:
        raise ValueError("Z must have at least one class column")


def cross_entropy(Z, y, mask, rows, totals, loss):
    """Masked mean cross-entropy L = -(1/|M|) sum_{n in M} log softmax(Z_n)[y_n].

    Z (N, C) logits, y (N,) int labels (valid on the masked rows: checked on the host, not here),
    mask (N,) bool or (0,) for every node; workspace rows (N, 2), totals (2,) and loss (1,) of Z's
    dtype, all overwritten: rows[n] = (-log p_n[y_n], 1) on masked rows and (0, 0) elsewhere,
    totals = (sum of the losses, |M|), loss[0] = totals[0] / totals[1] (NaN for an empty mask:
    raising would need a host round trip). O(N C) work.
    Launch: one thread per row (max, sum of exps, the label's log-probability), then ``col_sum``
    for the two totals, then one thread divides. No atomics, deterministic.
    """
    require_cuda()
    Z, y, mask, rows, totals, loss = _device(Z=Z, y=y, mask=mask, rows=rows, totals=totals, loss=loss)
    _check_xent(Z, y, mask)
    _check("rows", rows, (Z.shape[0], 2), dtype=Z.dtype)
    _check("totals", totals, (2,), dtype=Z.dtype)
    _check("loss", loss, (1,), dtype=Z.dtype)
    _launch(_xent_rows_kernel, _flat_launch(Z.shape[0]), Z, y, mask, rows)
    col_sum(rows, totals)
    _divide_kernel[1, 1](totals, loss)


def cross_entropy_backward(Z, y, mask, totals, dZ):
    """dZ_n = (softmax(Z_n) - onehot(y_n)) / |M| for n in M, 0 elsewhere (|M| = totals[1] from the forward).

    Z, dZ (N, C) one float dtype, y (N,) int, mask (N,) bool or (0,), totals (2,). dZ overwritten.
    O(N C) work. Launch: one thread per row recomputing the softmax; no atomics.
    """
    require_cuda()
    Z, y, mask, totals, dZ = _device(Z=Z, y=y, mask=mask, totals=totals, dZ=dZ)
    _check_xent(Z, y, mask)
    _check("totals", totals, (2,), dtype=Z.dtype)
    _check("dZ", dZ, Z.shape, dtype=Z.dtype)
    _launch(_xent_backward_kernel, _flat_launch(Z.shape[0]), Z, y, mask, totals, dZ)


@_jit
def _accuracy_rows_kernel(Z, y, mask, rows):
    C = Z.shape[1]
    use_mask = mask.shape[0] > 0
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        if use_mask and not mask[i]:
            rows[i, 0] = 0.0
            rows[i, 1] = 0.0
            continue
        best = 0
        for c in range(1, C):
            if Z[i, c] > Z[i, best]:          # strict: the first maximum wins, as np.argmax
                best = c
        rows[i, 0] = 1.0 if best == y[i] else 0.0
        rows[i, 1] = 1.0


def accuracy_counts(Z, y, mask, rows, totals):
    """totals = (number of masked rows whose arg-max logit is the label, number of masked rows).

    Z (N, C) float, y (N,) int, mask (N,) bool or (0,) for every node; workspace rows (N, 2) and
    totals (2,) float64 (exact counts up to 2^53), overwritten. Ties: the first maximum wins, as
    ``np.argmax``. O(N C). Launch: one thread per row, then ``col_sum``; no atomics.
    """
    require_cuda()
    Z, y, mask, rows, totals = _device(Z=Z, y=y, mask=mask, rows=rows, totals=totals)
    _check_xent(Z, y, mask)
    _check("rows", rows, (Z.shape[0], 2), dtype=np.float64)
    _check("totals", totals, (2,), dtype=np.float64)
    _launch(_accuracy_rows_kernel, _flat_launch(Z.shape[0]), Z, y, mask, rows)
    col_sum(rows, totals)


# ======================================================================================= optimisers
@_jit
def _sgd_kernel(p, g, v, lr, momentum, use_momentum, wd, use_wd):
    for k in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[k]
        if use_wd:
            d = d + wd * p[k]
        if use_momentum:
            vk = v[k] * momentum
            vk = vk + d
            v[k] = vk
            d = vk
        p[k] = p[k] - lr * d


def sgd_update(p, grad, v, lr, momentum=0.0, weight_decay=0.0):
    """In place: d = g + w p;  v <- mu v + d, d = v (when mu != 0);  p <- p - lr d.

    p, grad, v: same shape, one float dtype (v unused and may be p when mu = 0). Scalars are cast
    to p's dtype first, as NumPy casts them in ``optim.SGD``, and the operations come in the same
    order, so the result equals the CPU optimiser's (bit for bit where the GPU does not contract a
    multiply-add into an FMA). O(size), one thread per element.
    """
    require_cuda()
    p, grad, v = _device(p=p, grad=grad, v=v)
    _check("grad", grad, p.shape)
    _check("v", v, p.shape)
    _check_float(("p", p), ("grad", grad), ("v", v))
    _contiguous(p=p, grad=grad, v=v)
    dt = p.dtype.type
    _launch(_sgd_kernel, _flat_launch(p.size), _flat(p), _flat(grad), _flat(v), dt(lr), dt(momentum),
            bool(momentum), dt(weight_decay), bool(weight_decay))


@_jit
def _adam_kernel(p, g, m, v, b1, c1, b2, c2, step, bias2, eps, wd, use_wd):
    for k in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[k]
        if use_wd:
            d = d + wd * p[k]
        mk = m[k] * b1
        mk = mk + c1 * d
        m[k] = mk
        vk = v[k] * b2
        vk = vk + (c2 * d) * d
        v[k] = vk
        p[k] = p[k] - (step * mk) / (math.sqrt(vk / bias2) + eps)


def adam_update(p, grad, m, v, t, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One Adam step in place, as ``optim.Adam`` (t = the step number, from 1):

        d = g + w p;   m <- b1 m + (1 - b1) d;   v <- b2 v + (1 - b2) d^2
        p <- p - [lr / (1 - b1^t)] m / (sqrt(v / (1 - b2^t)) + eps)

    p, grad, m, v: same shape, one float dtype. The scalars (1 - b1, lr / (1 - b1^t), ...) are
    computed in double on the host and cast to p's dtype, exactly as NumPy does with the CPU
    optimiser's Python floats. O(size), one thread per element, all four arrays read once.
    """
    require_cuda()
    p, grad, m, v = _device(p=p, grad=grad, m=m, v=v)
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        _check(name, a, p.shape)
    _check_float(("p", p), ("grad", grad), ("m", m), ("v", v))
    _contiguous(p=p, grad=grad, m=m, v=v)
    if t < 1:
        raise ValueError(f"the step number t counts from 1, got {t}")
    b1, b2 = betas
    dt = p.dtype.type
    _launch(_adam_kernel, _flat_launch(p.size), _flat(p), _flat(grad), _flat(m), _flat(v), dt(b1), dt(1 - b1),
            dt(b2), dt(1 - b2), dt(lr / (1 - b1 ** t)), dt(1 - b2 ** t), dt(eps), dt(weight_decay),
            bool(weight_decay))
