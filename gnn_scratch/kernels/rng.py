"""The one counter-based random number generator of gnn_scratch: SplitMix64, host and device.

Every mask (feature dropout, GAT's attention dropout) and every sampler (GraphSAGE's neighbour
sampler, and the walks and negative samplers to come) draws its randomness here, so a random
decision is a pure function of (key, counter): the same on the CPU, the GPU and the simulator,
whatever the thread count, block size or launch shape.

    mix64(z)       = SplitMix64's finaliser (Steele, Lea & Flood 2014): 64 well-mixed bits of z
    hash64(key, k) = mix64(key + k * GOLDEN)             -- draw number k under ``key``

A sampler's *stream* is the same thing read in order: state <- state + GOLDEN, draw = mix64(state).

A Bernoulli(keep) decision for element k is ``hash64(key, k) >> 32 < threshold`` with the integer
``threshold = round(keep * 2^32)``: P(keep) = threshold / 2^32, within 2^-33 of ``keep``, and no
floating point is involved, so the host and the device agree bit for bit.

The functions are written once in plain Python over ``np.uint64`` and compiled three ways:
``mix64_cpu`` / ``hash64_cpu`` (Numba, inlined into CPU kernels), ``cuda_functions()`` (numba.cuda
device functions, built on first GPU use) and the NumPy-vectorised ``hash64_host`` (the reference).
uint64 products wrap modulo 2^64 by design.
"""
import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
S30, S27, S31, S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)


def mix64(z):
    """SplitMix64's finaliser of the uint64 ``z``. O(1)."""
    z = (z ^ (z >> S30)) * MIX1
    z = (z ^ (z >> S27)) * MIX2
    return z ^ (z >> S31)


def _hash64(key, k):
    return mix64(key + np.uint64(k) * GOLDEN)


mix64_cpu = njit(inline="always")(mix64)


@njit(inline="always")
def hash64_cpu(key, k):
    """Draw number ``k`` under ``key``: 64 random bits (Numba, inlined)."""
    return mix64_cpu(key + np.uint64(k) * GOLDEN)


@njit(inline="always")
def keep_cpu(key, k, threshold):
    """True when element ``k`` is kept by the mask named ``key`` (Numba, inlined)."""
    return (hash64_cpu(key, k) >> S32) < threshold


def keep_threshold(keep):
    """The uint64 threshold t with P(hash >> 32 < t) = t / 2^32 ~= ``keep``. ValueError unless 0 < keep <= 1."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep probability must be in (0, 1], got {keep}")
    return np.uint64(min(int(round(keep * 2.0 ** 32)), 2 ** 32))


def hash64_host(key, n):
    """hash64(key, k) for k = 0 .. n-1 as a (n,) uint64 array (NumPy): the reference of every mask."""
    with np.errstate(over="ignore"):
        return mix64(np.uint64(key) + np.arange(n, dtype=np.uint64) * GOLDEN)


def keep_mask_host(key, threshold, n):
    """The (n,) bool keep decisions of the mask ``key``: hash64(key, k) >> 32 < threshold (NumPy)."""
    return (hash64_host(key, n) >> S32) < np.uint64(threshold)


_cuda_functions = None


def cuda_functions():
    """(hash64, keep) as numba.cuda device functions, compiled from the same Python source on first use.

    Under the simulator the device functions run as Python on NumPy scalars, whose wrapping uint64
    products NumPy reports as overflows: those warnings are silenced there, as wrapping is intended.
    """
    global _cuda_functions
    if _cuda_functions is None:
        from .cuda import _simulator_enabled, cuda
        device = cuda.jit(device=True)
        if _simulator_enabled():
            def hash_sim(key, k):
                with np.errstate(over="ignore"):
                    return _hash64(key, k)
            hash64_dev = device(hash_sim)
        else:
            mix_dev = device(mix64)

            def hash_gpu(key, k):
                return mix_dev(key + np.uint64(k) * GOLDEN)
            hash64_dev = device(hash_gpu)

        def keep(key, k, threshold):
            return (hash64_dev(key, k) >> S32) < threshold
        _cuda_functions = (hash64_dev, device(keep))
    return _cuda_functions
