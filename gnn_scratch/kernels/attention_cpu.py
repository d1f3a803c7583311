"""FlashAttention in Numba: the same names, argument order and results as ``attention_reference.py``.

Read the contract at the top of ``attention_reference.py`` first. How these kernels meet it:

* **Tiles of the node range, whatever the graphs.** The N rows are cut into tiles of ``BR`` rows
  (t BR .. t BR + BR - 1); one work item is a (tile, head) pair, and the items run in a ``prange``.
  A tile that spans several graphs (many small graphs, or the seam between two large ones) handles
  its rows graph by graph: the rows of graph k in the tile, against the keys of graph k. So a batch
  of 20-node graphs costs about N x 20 score entries per head, one large graph N², and no table of
  tiles per graph is built. The first graph of a tile is found by binary search on ``graph_ptr``.
* **Forward: the online softmax over key tiles** (FlashAttention, Algorithm 1): per query row, a
  running max m and sum l; each key tile of ``Bc`` rows updates them and rescales the running
  output by exp(m_old - m_new). Saved: O and L = m + log l. Memory: the outputs plus a few tiles.
* **Backward in two passes, no atomics** (as FlashAttention-2): D = rowsum(dO ⊙ O) first; pass A
  owns query tiles and sums dQ over the key tiles of their graph; pass B owns key tiles and sums
  dK and dV over the query tiles. Both recompute P = exp(S - L) tile by tile. Every output row is
  written by one item in a fixed order: results repeat bit for bit, whatever the thread count
  (pass A and B each recompute S and dP: 7 tile products instead of 5, the price of no atomics).
* **Tile products are BLAS calls** (``np.dot`` on packed, C-contiguous tiles; Numba links SciPy's
  BLAS). Tiles of Q, K, V and dO are copied ("packed") into a per-thread workspace, Q
  pre-multiplied by the scale. Tile sizes: ``BR`` = 64 query rows, ``Bc`` = 64 key rows while a tile product stays within
  ``GEMM_MAX`` = 2^18 multiply-adds (64 x 64 x 64), halved for wider heads (d = 128: 32). Why 64:
  the Q, K, V and S tiles of one item (4 x 64 x 64 floats: 64 KiB in float32) stay in the L2 cache
  while a tile product runs, and OpenBLAS computes a product of at most 2^18 multiply-adds on the
  calling thread (``interface/gemm.c`` gives a GEMM m n k / (65536 x GEMM_MULTITHREAD_THRESHOLD,
  4 by default) threads), so Numba's workers never wake BLAS's own thread pool.
* **Workspace**: one flat row per Numba thread (``numba.get_thread_id()``), allocated by the
  wrappers below, O(threads x tile) memory, independent of N; each item overwrites what it reads,
  so which thread ran an item changes nothing. No allocation inside the kernels.
* **A vectorisable exp** (``_exp``, below): the n² exponentials of each pass are computed with
  plain arithmetic that LLVM turns into AVX lanes, within 2 ulp of NumPy's ``exp``.
* Arithmetic stays in Q's dtype (``scale`` is passed as a scalar of it); no ``fastmath``.

Arrays must be C-contiguous (``graph_ptr`` int64; float32 or float64 values of one dtype). The
kernels do not validate (``ops/attention.py`` does, once per call).
"""
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core.extending import intrinsic, overload

from ..threads import call_numba

_PARALLEL = dict(parallel=True, cache=True, nogil=True)
_SERIAL = dict(cache=True, nogil=True)

BR = 64               # query rows of a tile (key rows of an owned tile in the backward's pass B)
BC = 64               # key rows of a tile (query rows of a visited tile in pass B), at most
GEMM_MAX = 1 << 18    # multiply-adds of one tile product at most: OpenBLAS runs it single-threaded


def tile_sizes(d, dv):
    """(Br, Bc): BR query rows, and the largest Bc <= BC (a power of 2, >= 8) with Br Bc max(d, dv) <= GEMM_MAX."""
    width = max(d, dv, 1)
    bc = BC
    while bc > 8 and BR * bc * width > GEMM_MAX:
        bc //= 2
    return BR, bc


# -------------------------------------------------------------------------------- a vectorisable exp
# Numba's np.exp is a call into libm, which LLVM cannot vectorise (no SVML here): 5-13 ns per
# element, over half of these kernels' time (N² exps in the forward, 2 N² in the backward). ``_exp``
# is Cody-Waite range reduction and a polynomial -- plain arithmetic that LLVM turns into AVX
# lanes: e^x = 2^k e^r, k = round(x log2 e), |r| <= ln2 / 2, 2^k built from its bits. Accurate to
# 1-2 ulp (float64: Taylor to r^13; float32: Cephes' expf polynomial). The kernels only pass
# x <~ 0 (a score minus its row max or row log-sum-exp), so there is no overflow branch; below
# -700 (float64) / -87 (float32) it returns 0: e^-700 ~ 1e-304 is nothing beside the row's largest
# term, e^0 = 1 (tests/test_flash_attention.py checks it against np.exp).
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10       # fdlibm's split of ln 2
_LN2_HI_F, _LN2_LO_F = 0.693359375, -2.12194440e-4                             # Cephes' (float32)


@intrinsic
def _from_bits(typingctx, bits):
    """The float whose IEEE-754 bit pattern is ``bits`` (int64 -> float64, int32 -> float32)."""
    if bits == types.int64:
        sig, llty = types.float64(bits), ir.DoubleType()
    elif bits == types.int32:
        sig, llty = types.float32(bits), ir.FloatType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llty)

    return sig, codegen


def _exp(x):
    """e^x for x <~ 0 in the kernels' dtype (the Python twin, for tests)."""
    return np.exp(x)


@overload(_exp)
def _exp_impl(x):
    if x == types.float64:
        def exp64(x):
            y = max(x, -700.0)
            k = np.floor(y * _LOG2E + 0.5)
            r = (y - k * _LN2_HI) - k * _LN2_LO
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            p = p * r + 1.0
            p = p * r + 1.0
            v = p * _from_bits((np.int64(k) + 1023) << 52)
            return v if x > -700.0 else 0.0
        return exp64
    if x == types.float32:
        def exp32(x):
            y = max(x, np.float32(-87.0))
            k = np.floor(y * np.float32(_LOG2E) + np.float32(0.5))
            r = (y - k * np.float32(_LN2_HI_F)) - k * np.float32(_LN2_LO_F)
            p = np.float32(1.9875691500e-4)
            p = p * r + np.float32(1.3981999507e-3)
            p = p * r + np.float32(8.3334519073e-3)
            p = p * r + np.float32(4.1665795894e-2)
            p = p * r + np.float32(1.6666665459e-1)
            p = p * r + np.float32(5.0000001201e-1)
            p = p * r * r + r + np.float32(1.0)
            v = p * _from_bits(np.int32((np.int32(k) + 127) << 23))   # (Numba widens int32 sums)
            return v if x > np.float32(-87.0) else np.float32(0.0)
        return exp32
    return None


@njit(**_SERIAL)
def exp_array(x, out):
    """out[i] = _exp(x[i]): the kernels' exp over an array (for tests and the derivation)."""
    for i in range(x.size):
        out[i] = _exp(x[i])


# ------------------------------------------------------------------------------------------ helpers
@njit(**_SERIAL)
def _graph_of(graph_ptr, r):
    """The graph k holding row r: graph_ptr[k] <= r < graph_ptr[k+1] (empty graphs are never returned)."""
    lo, hi = 0, graph_ptr.shape[0] - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if graph_ptr[mid] <= r:
            lo = mid
        else:
            hi = mid
    return lo


@njit(**_SERIAL)
def _pack(X, h, r0, r1, factor, out):
    """out[i, :] = factor * X[r0 + i, h, :] for i < r1 - r0: one head's rows as a C-contiguous tile."""
    for i in range(r1 - r0):
        for f in range(X.shape[2]):
            out[i, f] = factor * X[r0 + i, h, f]


@njit(**_SERIAL)
def _tile(w, off, rows, cols):
    """A (rows, cols) C-contiguous view of the flat workspace w at offset off, and the offset after it."""
    return w[off:off + rows * cols].reshape((rows, cols)), off + rows * cols


# ------------------------------------------------------------------------------------------ forward
@njit(**_SERIAL)
def _forward_rows(Q, K, V, h, lo, hi, a, b, scale, O, L, Bc, w):
    """O and L of rows lo..hi-1 (head h), all in the graph a..b-1: the online softmax over its key tiles."""
    d, dv = Q.shape[2], V.shape[2]
    n = hi - lo
    one = Q.dtype.type(1)
    q, off = _tile(w, 0, n, d)
    acc, off = _tile(w, off, n, dv)
    pv, off = _tile(w, off, n, dv)
    ml, off = _tile(w, off, 2, n)                  # running max (row 0) and sum (row 1)
    kt, off = _tile(w, off, Bc, d)
    vt, off = _tile(w, off, Bc, dv)
    s_off = off
    _pack(Q, h, lo, hi, scale, q)
    for i in range(n):
        ml[0, i] = -np.inf
        ml[1, i] = 0
        for f in range(dv):
            acc[i, f] = 0
    for j0 in range(a, b, Bc):
        c = min(Bc, b - j0)
        _pack(K, h, j0, j0 + c, one, kt)
        _pack(V, h, j0, j0 + c, one, vt)
        s = w[s_off:s_off + n * c].reshape((n, c))
        np.dot(q, kt[:c].T, s)                      # S = scale q kᵀ
        for i in range(n):
            m_old = ml[0, i]
            m = m_old
            for j in range(c):
                if s[i, j] > m:
                    m = s[i, j]
            r = _exp(m_old - m)                     # 0 on the first tile (m_old = -inf)
            for j in range(c):                      # apart from the sum below, so that it vectorises
                s[i, j] = _exp(s[i, j] - m)
            t = ml[1, i] * r
            for j in range(c):
                t += s[i, j]
            ml[0, i] = m
            ml[1, i] = t
            for f in range(dv):
                acc[i, f] *= r
        np.dot(s, vt[:c], pv)                       # P v
        for i in range(n):
            for f in range(dv):
                acc[i, f] += pv[i, f]
    for i in range(n):
        # a row sum of 0 or NaN comes only from non-finite scores (NaN / Inf inputs, or overflow): give NaN as the
        # NumPy reference does, not Numba's ZeroDivisionError
        inv = one / ml[1, i] if ml[1, i] > 0 else one * np.nan
        for f in range(dv):
            O[lo + i, h, f] = acc[i, f] * inv
        L[lo + i, h] = ml[0, i] + np.log(ml[1, i])


@njit(**_PARALLEL)
def _forward(graph_ptr, Q, K, V, scale, O, L, Br, Bc, ws):
    N, H = Q.shape[0], Q.shape[1]
    B = graph_ptr.shape[0] - 1
    n_tiles = (N + Br - 1) // Br
    for item in prange(n_tiles * H):
        t, h = item // H, item % H
        w = ws[numba.get_thread_id()]
        r0, r1 = t * Br, min(N, t * Br + Br)
        g = _graph_of(graph_ptr, r0)
        while g < B and graph_ptr[g] < r1:
            a, b = graph_ptr[g], graph_ptr[g + 1]
            if b > a:
                _forward_rows(Q, K, V, h, max(r0, a), min(r1, b), a, b, scale, O, L, Bc, w)
            g += 1


# ----------------------------------------------------------------------------------------- backward
@njit(**_SERIAL)
def _dq_rows(Q, K, V, L, D, dO, h, lo, hi, a, b, scale, dQ, Bc, w):
    """Pass A: dQ of rows lo..hi-1 (head h) of graph a..b-1, summed over its key tiles."""
    d, dv = Q.shape[2], V.shape[2]
    n = hi - lo
    one = Q.dtype.type(1)
    q, off = _tile(w, 0, n, d)
    do, off = _tile(w, off, n, dv)
    dq, off = _tile(w, off, n, d)
    tmp, off = _tile(w, off, n, d)
    kt, off = _tile(w, off, Bc, d)
    vt, off = _tile(w, off, Bc, dv)
    s_off = off
    dp_off = off + n * Bc
    _pack(Q, h, lo, hi, scale, q)
    _pack(dO, h, lo, hi, one, do)
    for i in range(n):
        for f in range(d):
            dq[i, f] = 0
    for j0 in range(a, b, Bc):
        c = min(Bc, b - j0)
        _pack(K, h, j0, j0 + c, one, kt)
        _pack(V, h, j0, j0 + c, one, vt)
        s = w[s_off:s_off + n * c].reshape((n, c))
        dp = w[dp_off:dp_off + n * c].reshape((n, c))
        np.dot(q, kt[:c].T, s)                      # S
        np.dot(do, vt[:c].T, dp)                    # dP = dO vᵀ
        for i in range(n):
            Li, Di = L[lo + i, h], D[lo + i, h]
            for j in range(c):
                s[i, j] = _exp(s[i, j] - Li) * (dp[i, j] - Di)       # dS = P ⊙ (dP - D)
        np.dot(s, kt[:c], tmp)
        for i in range(n):
            for f in range(d):
                dq[i, f] += tmp[i, f]
    for i in range(n):
        for f in range(d):
            dQ[lo + i, h, f] = scale * dq[i, f]


@njit(**_SERIAL)
def _dkv_rows(Q, K, V, L, D, dO, h, lo, hi, a, b, scale, dK, dV, Bq, w):
    """Pass B: dK and dV of key rows lo..hi-1 (head h) of graph a..b-1, summed over its query tiles (Sᵀ tiles)."""
    d, dv = Q.shape[2], V.shape[2]
    n = hi - lo
    one = Q.dtype.type(1)
    kt, off = _tile(w, 0, n, d)
    vt, off = _tile(w, off, n, dv)
    dk, off = _tile(w, off, n, d)
    dvv, off = _tile(w, off, n, dv)
    qt, off = _tile(w, off, Bq, d)
    dot_, off = _tile(w, off, Bq, dv)
    LD, off = _tile(w, off, 2, Bq)                 # the visited queries' L (row 0) and D (row 1)
    tmp_off = off
    st_off = off + n * max(d, dv)
    dpt_off = st_off + n * Bq
    _pack(K, h, lo, hi, one, kt)
    _pack(V, h, lo, hi, one, vt)
    for j in range(n):
        for f in range(d):
            dk[j, f] = 0
        for f in range(dv):
            dvv[j, f] = 0
    for i0 in range(a, b, Bq):
        c = min(Bq, b - i0)
        _pack(Q, h, i0, i0 + c, scale, qt)
        _pack(dO, h, i0, i0 + c, one, dot_)
        for i in range(c):                          # contiguous copies, so that the loop below vectorises
            LD[0, i] = L[i0 + i, h]
            LD[1, i] = D[i0 + i, h]
        st = w[st_off:st_off + n * c].reshape((n, c))
        dpt = w[dpt_off:dpt_off + n * c].reshape((n, c))
        np.dot(kt, qt[:c].T, st)                    # Sᵀ = k (scale q)ᵀ
        np.dot(vt, dot_[:c].T, dpt)                 # dPᵀ = v dOᵀ
        for j in range(n):
            for i in range(c):
                p = _exp(st[j, i] - LD[0, i])
                st[j, i] = p                                     # Pᵀ
                dpt[j, i] = p * (dpt[j, i] - LD[1, i])           # dSᵀ
        tv = w[tmp_off:tmp_off + n * dv].reshape((n, dv))
        np.dot(st, dot_[:c], tv)                    # Pᵀ dO
        for j in range(n):
            for f in range(dv):
                dvv[j, f] += tv[j, f]
        tk = w[tmp_off:tmp_off + n * d].reshape((n, d))
        np.dot(dpt, qt[:c], tk)                     # dSᵀ (scale q)
        for j in range(n):
            for f in range(d):
                dk[j, f] += tk[j, f]
    for j in range(n):
        for f in range(d):
            dK[lo + j, h, f] = dk[j, f]
        for f in range(dv):
            dV[lo + j, h, f] = dvv[j, f]


@njit(**_PARALLEL)
def _backward(graph_ptr, Q, K, V, O, L, dO, scale, D, dQ, dK, dV, Br, Bc, ws):
    N, H = Q.shape[0], Q.shape[1]
    dv = V.shape[2]
    B = graph_ptr.shape[0] - 1
    zero = Q.dtype.type(0)
    for i in prange(N):
        for h in range(H):
            acc = zero
            for f in range(dv):
                acc += dO[i, h, f] * O[i, h, f]
            D[i, h] = acc
    n_tiles = (N + Br - 1) // Br
    for item in prange(n_tiles * H):                # pass A: query tiles own dQ
        t, h = item // H, item % H
        w = ws[numba.get_thread_id()]
        r0, r1 = t * Br, min(N, t * Br + Br)
        g = _graph_of(graph_ptr, r0)
        while g < B and graph_ptr[g] < r1:
            a, b = graph_ptr[g], graph_ptr[g + 1]
            if b > a:
                _dq_rows(Q, K, V, L, D, dO, h, max(r0, a), min(r1, b), a, b, scale, dQ, Bc, w)
            g += 1
    for item in prange(n_tiles * H):                # pass B: key tiles own dK and dV
        t, h = item // H, item % H
        w = ws[numba.get_thread_id()]
        r0, r1 = t * Br, min(N, t * Br + Br)
        g = _graph_of(graph_ptr, r0)
        while g < B and graph_ptr[g] < r1:
            a, b = graph_ptr[g], graph_ptr[g + 1]
            if b > a:
                _dkv_rows(Q, K, V, L, D, dO, h, max(r0, a), min(r1, b), a, b, scale, dK, dV, Bc, w)
            g += 1


# ----------------------------------------------------------------------------------------- wrappers
def _workspace(Br, Bc, d, dv, dtype):
    """One flat workspace row per Numba thread, sized for the largest of the three tile loops."""
    fwd = Br * (d + 2 * dv + 2) + Bc * (d + dv) + Br * Bc
    dq = Br * (3 * d + dv) + Bc * (d + dv) + 2 * Br * Bc
    dkv = Br * (2 * d + 2 * dv + max(d, dv)) + Bc * (d + dv + 2) + 2 * Br * Bc
    width = -(-max(fwd, dq, dkv) // 16) * 16         # rows start on 64-byte multiples
    return np.empty((numba.config.NUMBA_NUM_THREADS, width), dtype=dtype)


def _work(graph_ptr, H, d, dv):
    """Multiply-adds of one pass, sum_k n_k² H (d + dv): sizes the thread decision of ``call_numba``."""
    n = np.diff(graph_ptr).astype(np.float64)
    return float(np.sum(n * n)) * H * (d + dv)


def flash_attention_forward(graph_ptr, Q, K, V, scale, O, L):
    """FlashAttention's forward (contract: ``attention_reference.flash_attention_forward``).

    graph_ptr (B+1,) int64; Q, K (N, H, d); V (N, H, dv); scale a scalar of Q's dtype; O (N, H, dv)
    and L (N, H) overwritten. O(sum_k n_k² H (d + dv)) work; extra memory O(threads x tile), never
    O(n²). Parallel over (row tile, head) items, no atomics.
    """
    N, H, d = Q.shape
    dv = V.shape[2]
    Br, Bc = tile_sizes(d, dv)
    ws = _workspace(Br, Bc, d, dv, Q.dtype)
    call_numba(_forward, _work(graph_ptr, H, d, dv), graph_ptr, Q, K, V, Q.dtype.type(scale), O, L, Br, Bc, ws)


def flash_attention_backward(graph_ptr, Q, K, V, O, L, dO, scale, D, dQ, dK, dV):
    """FlashAttention's backward (contract: ``attention_reference.flash_attention_backward``).

    D (N, H) overwritten with <dO, O> per row and head; dQ, dK (N, H, d), dV (N, H, dv) overwritten.
    P recomputed from L tile by tile; pass A (query tiles -> dQ) and pass B (key tiles -> dK, dV).
    O(sum_k n_k² H (d + dv)) work (7 tile products per tile pair against the forward's 2); extra
    memory D and O(threads x tile).
    """
    N, H, d = Q.shape
    dv = V.shape[2]
    Br, Bc = tile_sizes(d, dv)
    ws = _workspace(Br, Bc, d, dv, Q.dtype)
    call_numba(_backward, _work(graph_ptr, H, d, dv), graph_ptr, Q, K, V, O, L, dO, Q.dtype.type(scale), D, dQ,
               dK, dV, Br, Bc, ws)
