"""FlashAttention in numba.cuda: the same names, argument order and results as ``attention_cpu.py``.

Read the contract at the top of ``attention_reference.py`` first. How the GPU versions meet it:

* **One block per (row tile, head)**: ``blockIdx.y`` is the head, ``blockIdx.x`` strides over the
  tiles of T consecutive rows (the tiling of ``attention_cpu``: a tile spanning several graphs
  handles them one after the other, each against its own graph's keys). Thread r of the block
  owns row t T + r of the tile: its query, running max m and sum l (registers), and its running
  output (a row of shared memory).
* **Forward**: for each key tile of the row's graph, the block loads K and V rows into shared
  memory (coalesced: consecutive threads read consecutive elements), synchronises, and each
  thread computes its T scores, the new max, rescales its output by exp(m_old - m_new) and adds
  P v -- the online softmax of FlashAttention, with the tile in shared memory read T times.
  Saved: O and L = m + log l. Nothing of size n² exists.
* **Backward, three kernels, no atomics**: D = <dO, O> per (row, head) (one thread each); pass A,
  blocks over query tiles, thread r sums dQ of its row over the key tiles (K, V in shared memory);
  pass B, blocks over key tiles, thread r sums dK and dV of its key row over the query tiles
  (Q, dO, L, D in shared memory). P = exp(S - L) is recomputed in both. Every output element has
  one writer that reads its tiles in a fixed order: results repeat bit for bit.
* **Shared memory**: a row that one thread reads and writes is stored with a stride of width + 1,
  so the 32 threads of a warp hit 32 different banks; rows every thread reads at once (K, V in
  the forward) are broadcast and unpadded. T is the largest power of 2 <= ``TILE`` (64; 16 under
  the simulator, where every thread is a Python thread) whose three layouts fit in 48 KiB, the
  static limit of every CUDA GPU: d = dv = 64 gives T = 32 in float32 and 16 in float64. Wider
  heads shrink T; a head too wide for T = 1 raises ValueError.

Arithmetic stays in Q's dtype (``scale`` is passed as a scalar of it; the kernels are compiled
once per dtype, since a shared array's dtype is fixed at compile time). On a real GPU ``exp`` is
the device's and multiply-adds may fuse, so results equal ``attention_cpu``'s to rounding, not bit
for bit. Arrays must be device arrays, C-contiguous.
"""
import math

import numpy as np

from . import cuda as _ck
from .cuda import _check, _check_float, _device, _flat_launch, _jit, _launch, _simulator_enabled, cuda, \
    require_cuda

TILE = 16 if _simulator_enabled() else 64     # rows per tile (threads per block), at most
SHARED_BYTES = 48 * 1024                       # static shared memory per block on every CUDA GPU


def _shared_elems(T, d, dv):
    """Elements of shared memory the largest of the three tile kernels needs for T rows per tile."""
    forward = T * (d + 1) + T * d + T * dv + T * (dv + 1) + T * (T + 1)
    dq = 2 * T * (d + 1) + T * (dv + 1) + T * d + T * dv
    dkv = 2 * T * (d + 1) + 2 * T * (dv + 1) + T * d + T * dv + 2 * T
    return max(forward, dq, dkv)


def tile_rows(d, dv, itemsize):
    """T: the largest power of 2 <= TILE whose layouts fit in SHARED_BYTES; ValueError if none does."""
    T = TILE
    while T > 1 and _shared_elems(T, d, dv) * itemsize > SHARED_BYTES:
        T //= 2
    if _shared_elems(T, d, dv) * itemsize > SHARED_BYTES:
        raise ValueError(f"head dimensions d = {d}, dv = {dv} are too wide for the CUDA attention kernels "
                         f"(one row needs more than {SHARED_BYTES} bytes of shared memory)")
    return T


if cuda is not None:
    @cuda.jit(device=True)
    def _graph_of(graph_ptr, r):
        """The graph k holding row r: graph_ptr[k] <= r < graph_ptr[k+1] (binary search)."""
        lo = 0
        hi = graph_ptr.shape[0] - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if graph_ptr[mid] <= r:
                lo = mid
            else:
                hi = mid
        return lo
else:  # pragma: no cover - numba-cuda missing: the wrappers raise through require_cuda first
    _graph_of = None


def _build(nb_dtype):
    """The forward, pass-A and pass-B kernels for one float type (a shared array's dtype is a constant)."""

    @cuda.jit
    def forward(graph_ptr, Q, K, V, scale, O, L):
        N, d, dv = Q.shape[0], Q.shape[2], V.shape[2]
        B = graph_ptr.shape[0] - 1
        T = cuda.blockDim.x
        r = cuda.threadIdx.x
        h = cuda.blockIdx.y
        zero = O.dtype.type(0)
        sm = cuda.shared.array(0, dtype=nb_dtype)
        qs = 0                           # T rows of scale q, stride d + 1 (thread r's own row)
        ks = qs + T * (d + 1)            # the key tile, T x d (read by every thread: broadcast)
        vs = ks + T * d                  # the value tile, T x dv
        acs = vs + T * dv                # T running outputs, stride dv + 1
        ss = acs + T * (dv + 1)          # T rows of scores, stride T + 1
        for t in range(cuda.blockIdx.x, (N + T - 1) // T, cuda.gridDim.x):
            r0 = t * T
            r1 = min(N, r0 + T)
            i = r0 + r
            g = _graph_of(graph_ptr, r0)
            while g < B and graph_ptr[g] < r1:
                a = graph_ptr[g]
                b = graph_ptr[g + 1]
                mine = i >= a and i < b and i < r1
                m = O.dtype.type(-math.inf)
                l = zero
                if mine:
                    for f in range(d):
                        sm[qs + r * (d + 1) + f] = scale * Q[i, h, f]
                    for f in range(dv):
                        sm[acs + r * (dv + 1) + f] = zero
                for j0 in range(a, b, T):
                    c = min(T, b - j0)
                    cuda.syncthreads()               # nobody reads the previous tile any more
                    for e in range(r, c * d, T):
                        sm[ks + e] = K[j0 + e // d, h, e % d]
                    for e in range(r, c * dv, T):
                        sm[vs + e] = V[j0 + e // dv, h, e % dv]
                    cuda.syncthreads()
                    if mine:
                        mx = m
                        for jj in range(c):
                            s = zero
                            for f in range(d):
                                s += sm[qs + r * (d + 1) + f] * sm[ks + jj * d + f]
                            sm[ss + r * (T + 1) + jj] = s
                            if s > mx:
                                mx = s
                        rs = math.exp(m - mx)        # 0 on the first tile (m = -inf)
                        l = l * rs
                        for f in range(dv):
                            sm[acs + r * (dv + 1) + f] *= rs
                        for jj in range(c):
                            p = math.exp(sm[ss + r * (T + 1) + jj] - mx)
                            l += p
                            for f in range(dv):
                                sm[acs + r * (dv + 1) + f] += p * sm[vs + jj * dv + f]
                        m = mx
                if mine:
                    for f in range(dv):
                        O[i, h, f] = sm[acs + r * (dv + 1) + f] / l
                    L[i, h] = m + math.log(l)
                g += 1

    @cuda.jit
    def backward_dq(graph_ptr, Q, K, V, L, D, dO, scale, dQ):
        N, d, dv = Q.shape[0], Q.shape[2], V.shape[2]
        B = graph_ptr.shape[0] - 1
        T = cuda.blockDim.x
        r = cuda.threadIdx.x
        h = cuda.blockIdx.y
        zero = dQ.dtype.type(0)
        sm = cuda.shared.array(0, dtype=nb_dtype)
        qs = 0                           # own rows: scale q, dO, the dQ sum (padded strides)
        dos = qs + T * (d + 1)
        dqs = dos + T * (dv + 1)
        ks = dqs + T * (d + 1)           # the key and value tiles
        vs = ks + T * d
        for t in range(cuda.blockIdx.x, (N + T - 1) // T, cuda.gridDim.x):
            r0 = t * T
            r1 = min(N, r0 + T)
            i = r0 + r
            g = _graph_of(graph_ptr, r0)
            while g < B and graph_ptr[g] < r1:
                a = graph_ptr[g]
                b = graph_ptr[g + 1]
                mine = i >= a and i < b and i < r1
                Li = zero
                Di = zero
                if mine:
                    Li = L[i, h]
                    Di = D[i, h]
                    for f in range(d):
                        sm[qs + r * (d + 1) + f] = scale * Q[i, h, f]
                        sm[dqs + r * (d + 1) + f] = zero
                    for f in range(dv):
                        sm[dos + r * (dv + 1) + f] = dO[i, h, f]
                for j0 in range(a, b, T):
                    c = min(T, b - j0)
                    cuda.syncthreads()
                    for e in range(r, c * d, T):
                        sm[ks + e] = K[j0 + e // d, h, e % d]
                    for e in range(r, c * dv, T):
                        sm[vs + e] = V[j0 + e // dv, h, e % dv]
                    cuda.syncthreads()
                    if mine:
                        for jj in range(c):
                            s = zero
                            for f in range(d):
                                s += sm[qs + r * (d + 1) + f] * sm[ks + jj * d + f]
                            dp = zero
                            for f in range(dv):
                                dp += sm[dos + r * (dv + 1) + f] * sm[vs + jj * dv + f]
                            ds = math.exp(s - Li) * (dp - Di)          # dS = P (dP - D)
                            for f in range(d):
                                sm[dqs + r * (d + 1) + f] += ds * sm[ks + jj * d + f]
                if mine:
                    for f in range(d):
                        dQ[i, h, f] = scale * sm[dqs + r * (d + 1) + f]
                g += 1

    @cuda.jit
    def backward_dkv(graph_ptr, Q, K, V, L, D, dO, scale, dK, dV):
        N, d, dv = Q.shape[0], Q.shape[2], V.shape[2]
        B = graph_ptr.shape[0] - 1
        T = cuda.blockDim.x
        r = cuda.threadIdx.x
        h = cuda.blockIdx.y
        zero = dK.dtype.type(0)
        sm = cuda.shared.array(0, dtype=nb_dtype)
        kso = 0                          # own rows: k, v, the dK and dV sums (padded strides)
        vso = kso + T * (d + 1)
        dks = vso + T * (dv + 1)
        dvs = dks + T * (d + 1)
        qs = dvs + T * (dv + 1)          # the visited query tile: scale q, dO, L, D
        dos = qs + T * d
        lds = dos + T * dv
        for t in range(cuda.blockIdx.x, (N + T - 1) // T, cuda.gridDim.x):
            r0 = t * T
            r1 = min(N, r0 + T)
            j = r0 + r
            g = _graph_of(graph_ptr, r0)
            while g < B and graph_ptr[g] < r1:
                a = graph_ptr[g]
                b = graph_ptr[g + 1]
                mine = j >= a and j < b and j < r1
                if mine:
                    for f in range(d):
                        sm[kso + r * (d + 1) + f] = K[j, h, f]
                        sm[dks + r * (d + 1) + f] = zero
                    for f in range(dv):
                        sm[vso + r * (dv + 1) + f] = V[j, h, f]
                        sm[dvs + r * (dv + 1) + f] = zero
                for i0 in range(a, b, T):
                    c = min(T, b - i0)
                    cuda.syncthreads()
                    for e in range(r, c * d, T):
                        sm[qs + e] = scale * Q[i0 + e // d, h, e % d]
                    for e in range(r, c * dv, T):
                        sm[dos + e] = dO[i0 + e // dv, h, e % dv]
                    if r < c:
                        sm[lds + r] = L[i0 + r, h]
                        sm[lds + T + r] = D[i0 + r, h]
                    cuda.syncthreads()
                    if mine:
                        for ii in range(c):
                            s = zero
                            for f in range(d):
                                s += sm[qs + ii * d + f] * sm[kso + r * (d + 1) + f]
                            p = math.exp(s - sm[lds + ii])
                            dp = zero
                            for f in range(dv):
                                dp += sm[dos + ii * dv + f] * sm[vso + r * (dv + 1) + f]
                                sm[dvs + r * (dv + 1) + f] += p * sm[dos + ii * dv + f]     # dV += P dO
                            ds = p * (dp - sm[lds + T + ii])
                            for f in range(d):
                                sm[dks + r * (d + 1) + f] += ds * sm[qs + ii * d + f]      # dK += dS scale q
                if mine:
                    for f in range(d):
                        dK[j, h, f] = sm[dks + r * (d + 1) + f]
                    for f in range(dv):
                        dV[j, h, f] = sm[dvs + r * (dv + 1) + f]
                g += 1

    return forward, backward_dq, backward_dkv


_KERNELS = {}   # dtype -> (forward, backward_dq, backward_dkv), built on first use


def _kernels(dtype):
    dtype = np.dtype(dtype)
    if dtype not in _KERNELS:
        from numba import from_dtype
        _KERNELS[dtype] = _build(from_dtype(dtype))
    return _KERNELS[dtype]


@_jit
def _row_dot_kernel(dO, O, D):
    H = D.shape[1]
    zero = D.dtype.type(0)
    for k in range(cuda.grid(1), D.shape[0] * H, cuda.gridsize(1)):
        i = k // H
        h = k % H
        acc = zero
        for f in range(O.shape[2]):
            acc += dO[i, h, f] * O[i, h, f]
        D[i, h] = acc


def _tile_launch(kernel, N, H, T, itemsize, d, dv, *args):
    """kernel[(tiles, H), T, stream 0, shared bytes](*args): grid-stride over the row tiles, a block row per head."""
    if N == 0 or H == 0:
        return
    grid = (min((N + T - 1) // T, _ck._MAX_BLOCKS), H)
    kernel[grid, T, 0, _shared_elems(T, d, dv) * itemsize](*args)


def _check_attention(graph_ptr, Q, K, V, outputs):
    """Shapes and dtypes of graph_ptr, Q, K, V and the (name, array, shape) triples (made from N, H, d, dv)."""
    _check("graph_ptr", graph_ptr, (None,), kind="iu")
    if graph_ptr.shape[0] < 1:
        raise ValueError("graph_ptr must have length B + 1 >= 1, got 0")
    _check("Q", Q, (None, None, None))
    N, H, d = Q.shape
    _check("K", K, (N, H, d))
    _check("V", V, (N, H, None))
    dv = V.shape[2]
    named = outputs(N, H, d, dv)
    for name, a, shape in named:
        _check(name, a, shape)
    _check_float(("Q", Q), ("K", K), ("V", V), *((name, a) for name, a, _ in named))
    return N, H, d, dv


def flash_attention_forward(graph_ptr, Q, K, V, scale, O, L):
    """FlashAttention's forward (contract: ``attention_reference.flash_attention_forward``).

    graph_ptr (B+1,) int; Q, K (N, H, d); V (N, H, dv); scale a scalar of Q's dtype; O (N, H, dv) and
    L (N, H) overwritten. O(sum_k n_k² H (d + dv)) work, no global workspace. Launch: blocks over
    (row tile, head), T threads (one per row), K / V tiles in shared memory; no atomics.
    """
    require_cuda()
    graph_ptr, Q, K, V, O, L = _device(graph_ptr=graph_ptr, Q=Q, K=K, V=V, O=O, L=L)
    N, H, d, dv = _check_attention(graph_ptr, Q, K, V, lambda N, H, d, dv: (("O", O, (N, H, dv)), ("L", L, (N, H))))
    T = tile_rows(d, dv, Q.dtype.itemsize)
    forward, _, _ = _kernels(Q.dtype)
    _tile_launch(forward, N, H, T, Q.dtype.itemsize, d, dv, graph_ptr, Q, K, V, Q.dtype.type(scale), O, L)


def flash_attention_backward(graph_ptr, Q, K, V, O, L, dO, scale, D, dQ, dK, dV):
    """FlashAttention's backward (contract: ``attention_reference.flash_attention_backward``).

    O (N, H, dv) and L (N, H) saved by the forward; dO (N, H, dv); D (N, H) overwritten with <dO, O>;
    dQ, dK (N, H, d), dV (N, H, dv) overwritten. Launch: D one thread per (row, head); pass A
    (dQ) blocks over query tiles, pass B (dK, dV) blocks over key tiles; no atomics.
    """
    require_cuda()
    graph_ptr, Q, K, V, O, L, dO, D, dQ, dK, dV = _device(graph_ptr=graph_ptr, Q=Q, K=K, V=V, O=O, L=L, dO=dO,
                                                          D=D, dQ=dQ, dK=dK, dV=dV)
    N, H, d, dv = _check_attention(graph_ptr, Q, K, V, lambda N, H, d, dv: (
        ("O", O, (N, H, dv)), ("L", L, (N, H)), ("dO", dO, (N, H, dv)), ("D", D, (N, H)), ("dQ", dQ, (N, H, d)),
        ("dK", dK, (N, H, d)), ("dV", dV, (N, H, dv))))
    T = tile_rows(d, dv, Q.dtype.itemsize)
    _, backward_dq, backward_dkv = _kernels(Q.dtype)
    sc = Q.dtype.type(scale)
    _launch(_row_dot_kernel, _flat_launch(N * H), dO, O, D)
    _tile_launch(backward_dq, N, H, T, Q.dtype.itemsize, d, dv, graph_ptr, Q, K, V, L, D, dO, sc, dQ)
    _tile_launch(backward_dkv, N, H, T, Q.dtype.itemsize, d, dv, graph_ptr, Q, K, V, L, D, dO, sc, dK, dV)
