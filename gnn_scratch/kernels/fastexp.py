"""expm1 of non-positive float64 arguments without libm, for Numba kernels whose loops must vectorise.

Numba's scalar ``np.exp`` / ``np.expm1`` is a call per element (~5-10 ns, no SIMD without Intel's SVML).
It is branch-free (selects only), so LLVM vectorises a loop around it: Cody-Waite reduction
t = k ln2 + r with |r| <= ln2 / 2, the Taylor polynomial of expm1(r) to degree 13 (truncation below
1.2e-17 relative), and 2^k as a product of selected powers of two (exact). All in float64, for float32
data too (round the result once). Measured accuracy (tests/test_inference.py):
  expm1_nonpositive: max relative error 2.2e-16 (1 ulp) against NumPy's float64 expm1 on t in [-745, 0];
                     rounded to float32, within 1 ulp of float64's expm1 rounded to float32 (NumPy's
                     float32 expm1 is up to 2 ulp from it).
NaN propagates; expm1(-0.0) = -0.0; t < -40 gives expm1 = -1 (expm1(-40) = -1 + 4e-18).
"""
import numpy as np
from numba import njit

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01    # fdlibm's split of ln 2: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = (1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320,
                                                             1 / 362880, 1 / 3628800, 1 / 39916800, 1 / 479001600,
                                                             1 / 6227020800)


@njit(inline="always", cache=True)
def _reduce(t):
    """(k, expm1(r)) with t = k ln2 + r, |r| <= ln2 / 2."""
    k = np.floor(t * _LOG2E + 0.5)
    r = (t - k * _LN2_HI) - k * _LN2_LO
    q = r * (1.0 + r * (0.5 + r * (_C3 + r * (_C4 + r * (_C5 + r * (_C6 + r * (_C7 + r * (
        _C8 + r * (_C9 + r * (_C10 + r * (_C11 + r * (_C12 + r * _C13))))))))))))
    return k, q


@njit(inline="always", cache=True)
def expm1_nonpositive(t):
    """expm1(t) for float64 t <= 0 (or NaN)."""
    if t < -40.0:
        t = -40.0
    k, q = _reduce(t)
    m = np.int64(-k)
    p = 1.0
    p *= 0.5 if m & 1 else 1.0
    p *= 0.25 if m & 2 else 1.0
    p *= 0.0625 if m & 4 else 1.0
    p *= 0.00390625 if m & 8 else 1.0
    p *= 1.52587890625e-05 if m & 16 else 1.0
    p *= 2.3283064365386963e-10 if m & 32 else 1.0
    return q if m == 0 else p * q + (p - 1.0)      # m = 0: q itself, so expm1(-0.0) stays -0.0

