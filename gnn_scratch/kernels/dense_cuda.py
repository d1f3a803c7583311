"""Dense CUDA kernels (``numba.cuda``): the ``dense`` op family on the GPU.

The matrix products of the layers, bias, column sums, fill / add / mul, GAT's per-head score
products and head mean, and SAGE's row normalisation. The element-wise kernels (activations,
dropout masks) live in ``elementwise_cuda.py``, the loss in ``loss_cuda.py``, the optimiser
updates in ``optim_cuda.py``; all reach the layers through ``gnn_scratch.ops`` and the registry.
Contract and reference twins: ``dense_reference.py``.

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
  tile of the output, ``_ROWS_PER_THREAD x _cols_per_thread(N)`` outputs per thread held in
  registers (a 64 x 64 tile for the layers' 64-wide products); the A and B tiles are staged
  through shared memory, loaded so that neighbouring threads read neighbouring addresses
  whichever operand is transposed. ``A^T B``
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

The masks of dropout live in ``elementwise_cuda.py`` and draw from ``rng.py``'s counter hash.

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
_ROWS_PER_THREAD = 4                      # matmul register tile: outputs per thread along i (rows of out)


def _cols_per_thread(N):
    """The matmul register tile's outputs per thread along j (columns of out) for an N-wide product.

    4 for N > 2 _TILE (the layers' 64-wide products on a GPU, where _TILE = 16), 2 for _TILE < N <= 2 _TILE,
    1 for N <= _TILE, so a narrow product does not pay for a register tile it cannot fill.
    """
    return 4 if N > 2 * _TILE else (2 if N > _TILE else 1)


@functools.lru_cache(maxsize=None)
def _matmul_kernel(dtype_name, trans_a, trans_b, tile, cols=1):
    """The tiled kernel out[z] (+)= op(A)[:, Kz] op(B)[Kz, :] for one dtype, transpose pattern, tile and width.

    A (tile x tile) block owns an output tile of (_ROWS_PER_THREAD tile) x (cols tile): each thread
    keeps _ROWS_PER_THREAD x cols sums in registers, rows i0 + r tile + ty and columns j0 + c tile + tx.
    Why: with one output per thread (the first version) every product read two shared values per
    multiply-add and a 64-wide product read A once per 16 columns; here a 64 x 64 tile reads A once
    and each shared value feeds 4 multiply-adds (1M x 64 by 64 x 64 on an H200: see BENCHMARKS.md).
    Each output still adds its K terms in ascending k, so the bits are the first version's.
    Built per (dtype, transposes, tile, cols) because shared and local arrays need constant shapes.
    """
    T = tile
    RM, RN = _ROWS_PER_THREAD, cols
    SHAPE_A = (T, RM * T + 1)              # +1 column: no shared-memory bank conflicts on the transposed store
    SHAPE_B = (T, RN * T + 1)
    nbt = _nb_type(dtype_name)

    @_jit
    def kernel(A, B, out, k_chunk, accumulate):
        sA = cuda.shared.array(SHAPE_A, nbt)  # sA[k, i] = op(A)[i0 + i, k0 + k]
        sB = cuda.shared.array(SHAPE_B, nbt)  # sB[k, j] = op(B)[k0 + k, j0 + j]
        acc = cuda.local.array((RM, RN), nbt)
        a = cuda.local.array(RM, nbt)
        b = cuda.local.array(RN, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        M = out.shape[1]
        N = out.shape[2]
        K = A.shape[0] if trans_a else A.shape[1]
        zero = nbt(0)
        z = cuda.blockIdx.y
        k_lo = z * k_chunk
        k_hi = min(K, k_lo + k_chunk)
        tiles_n = (N + RN * T - 1) // (RN * T)
        for t in range(cuda.blockIdx.x, ((M + RM * T - 1) // (RM * T)) * tiles_n, cuda.gridDim.x):
            i0 = (t // tiles_n) * (RM * T)
            j0 = (t % tiles_n) * (RN * T)
            for r in range(RM):
                for c in range(RN):
                    acc[r, c] = zero
            for k0 in range(k_lo, k_hi, T):
                for r in range(RM):
                    if trans_a:              # A is (K, M), contiguous along i
                        k = k0 + ty
                        i = i0 + r * T + tx
                        sA[ty, r * T + tx] = A[k, i] if (k < k_hi and i < M) else zero
                    else:                    # A is (M, K), contiguous along k
                        i = i0 + r * T + ty
                        k = k0 + tx
                        sA[tx, r * T + ty] = A[i, k] if (i < M and k < k_hi) else zero
                for c in range(RN):
                    if trans_b:              # B is (N, K), contiguous along k
                        j = j0 + c * T + ty
                        k = k0 + tx
                        sB[tx, c * T + ty] = B[j, k] if (j < N and k < k_hi) else zero
                    else:                    # B is (K, N), contiguous along j
                        k = k0 + ty
                        j = j0 + c * T + tx
                        sB[ty, c * T + tx] = B[k, j] if (k < k_hi and j < N) else zero
                cuda.syncthreads()
                for kk in range(T):
                    for r in range(RM):
                        a[r] = sA[kk, r * T + ty]
                    for c in range(RN):
                        b[c] = sB[kk, c * T + tx]
                    for r in range(RM):
                        for c in range(RN):
                            acc[r, c] += a[r] * b[c]
                cuda.syncthreads()
            for r in range(RM):
                i = i0 + r * T + ty
                for c in range(RN):
                    j = j0 + c * T + tx
                    if i < M and j < N:
                        if accumulate:
                            out[z, i, j] += acc[r, c]
                        else:
                            out[z, i, j] = acc[r, c]

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
    cols = _cols_per_thread(N)
    kernel = _matmul_kernel(out.dtype.name, trans_a, trans_b, T, cols)
    tiles = -(-M // (_ROWS_PER_THREAD * T)) * -(-N // (cols * T))
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


def _is_sparse(A):
    """A ``DeviceCSR`` (sparse features on the device; recognised by its format, the kernels import no placement)."""
    return getattr(A, "format", None) == "csr"


def _sparse_product(A, B, out, accumulate, transpose):
    """out (+)= A @ B or A^T @ B for a DeviceCSR A: the SpMM kernels over its rows or its cached transpose."""
    from . import cuda as sparse_cuda
    res = out if not accumulate else cuda.device_array(out.shape, dtype=out.dtype)
    if transpose:
        sparse_cuda.spmm_sum_perm(A.t_indptr, A.t_indices, A.t_perm, A.data, B, res)
    else:
        sparse_cuda.spmm_sum(A.indptr, A.indices, A.data, B, res)
    if accumulate:
        add(out, res)


def matmul(A, B, out, accumulate=False):
    """out = A @ B (or out += A @ B with ``accumulate``); A may be a DeviceCSR (then an SpMM).

    A (M, K), B (K, N), out (M, N): device arrays of one float dtype, C-contiguous. out is
    preallocated and overwritten (or added to). O(M N K) work; about M N K (1 / (c _TILE) + 1 /
    (4 _TILE)) global reads, c = ``_cols_per_thread(N)`` (A is read once per c _TILE columns of
    out, B once per 4 _TILE rows).
    Launch: a _TILE x _TILE block per output tile of (4 _TILE) x (c _TILE), each thread
    holding its 4 x c outputs in registers; tiles staged in shared memory; no atomics.
    The layers' X W (N x F_in times F_in x F_out) and S W.
    """
    if _is_sparse(A):
        return _sparse_product(A, B, out, accumulate, transpose=False)
    _matmul(A, B, out, False, False, accumulate, ("A", "B"))


def spmm_sum_bias_matmul(indptr, indices, edge_val, X, b, relu, W, out):
    """out = act(A X + b) @ W, as ``dense_reference.spmm_sum_bias_matmul``: the sparse family's ``spmm_sum_bias``
    into a device temporary H (N_dst, F), then ``matmul``. Device arrays of one float dtype; the launches of
    the two. (The CPU version's gain, H kept out of memory, would need a fused kernel here; not written.)"""
    from . import cuda as sparse_cuda
    X, W, out = _device(X=X, W=W, out=out)
    _check("W", W, (X.shape[1], out.shape[1]))
    H = cuda.device_array((out.shape[0], X.shape[1]), dtype=X.dtype)
    sparse_cuda.spmm_sum_bias(indptr, indices, edge_val, X, b, relu, H)
    matmul(H, W, out)


def matmul_tn(A, B, out, accumulate=False):
    """out = A^T @ B (or out += A^T @ B): the weight gradient H^T dZ.

    A (K, M), B (K, N), out (M, N), one float dtype, C-contiguous; out preallocated. O(M N K) work.
    Launch: tiles as in ``matmul``, and the reduction over K (all N nodes of the graph) is split
    into chunks of ``_SPLIT_K`` rows, one per ``blockIdx.y``, each writing an (M, N) partial
    product; ``col_sum`` then adds the partials in chunk order. Deterministic, no atomics;
    O(ceil(K / _SPLIT_K) M N) extra memory (capped at ``_MAX_PARTIAL`` elements by widening the chunks).
    """
    if _is_sparse(A):
        return _sparse_product(A, B, out, accumulate, transpose=True)
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
def _sub_kernel(acc, x):
    for k in range(cuda.grid(1), acc.shape[0], cuda.gridsize(1)):
        acc[k] -= x[k]


def sub(acc, x):
    """acc -= x, in place (same shape and float dtype; the Chebyshev recurrences' - T_{k-2}). O(acc.size)."""
    require_cuda()
    acc, x = _device(acc=acc, x=x)
    _check("x", x, acc.shape)
    _check_float(("acc", acc), ("x", x))
    _contiguous(acc=acc, x=x)
    _launch(_sub_kernel, _flat_launch(acc.size), _flat(acc), _flat(x))


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

