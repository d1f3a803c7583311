"""Kernels: every op in three interchangeable implementations with one contract.

* ``reference`` modules -- plain NumPy, the readable truth;
* ``cpu`` modules       -- Numba ``njit(parallel=True, cache=True)``, row-parallel over destinations
                           (or BLAS / NumPy where that is already the fast path);
* ``cuda`` modules      -- ``numba.cuda``, one warp or block per destination row.

``registry`` lists every op with its family and dispatches once per call on where the arrays
live; ``rng`` is the one counter-based hash behind every mask and sampler. The sparse contract
(names, argument order, shapes, empty-row and tie rules) is written at the top of ``reference.py``.
"""
from .registry import get_cpu_backend, set_cpu_backend  # noqa: F401
