"""One thread pool at a time: NumPy's OpenBLAS pool is kept asleep while gnn_scratch computes.

A training step alternates dense products (NumPy -> OpenBLAS, with its own worker threads) and
sparse kernels (Numba's OpenMP pool). After each product OpenBLAS's workers keep spinning on
``sched_yield`` for up to 2^28 cycles (~0.1 s) before they sleep, so the Numba kernel that follows
shares its cores with them; PyTorch has a single pool and no such fight. ``blas_threads(1)``
runs the products of a block on the calling thread -- the workers are never woken -- and gives
OpenBLAS its previous thread count back on exit. Measured on the project's 2-core machine, the
100k-node GCN training step took 1.6-2x less time this way.

Only NumPy's bundled OpenBLAS (``scipy_openblas``) or a system ``libopenblas`` is controlled;
with any other BLAS the context manager does nothing.

The same concern for Numba's own pool: ``call_numba`` runs a small parallel kernel on one thread
(``SERIAL_GRAIN``), for the sparse ops and the element-wise kernels alike.

Inference (a layer in evaluation mode, ``layer_blas_pool``) still keeps OpenBLAS on one thread, but
splits a large dense product into fixed blocks of ``PRODUCT_BLOCK`` rows, run by Python threads
(``row_blocks``): each block is a one-thread BLAS call, which releases the GIL, so the product uses
Numba's thread count without waking OpenBLAS's spinning pool -- an idle Python worker sleeps on a
futex. The blocks do not depend on the thread count, so neither do the bits. Training keeps the
unsplit one-thread product (a blocked product rounds differently: a few float32 ulps). Inference also
runs Numba kernels below ``INFERENCE_GRAIN`` (rather than ``SERIAL_GRAIN``) on one thread.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_api = None      # (get, set) ctypes functions, False when no OpenBLAS was found
_depth = 0       # nesting of blas_threads blocks (the outermost one restores)
_saved = None


def _libraries():
    """The loaded libraries that may be NumPy's OpenBLAS: the one its wheels bundle (``libscipy_openblas*`` since
    NumPy 2, ``libopenblas*`` before; in ``numpy.libs`` on Linux and Windows, ``numpy/.dylibs`` on macOS,
    ``numpy/.libs`` in NumPy 1's Windows wheels), then the process's own symbols. A NumPy built on another BLAS
    (Accelerate, MKL) yields nothing that ``_find`` accepts, and ``blas_threads`` then changes nothing."""
    import numpy as np
    here = os.path.dirname(np.__file__)
    dirs = (os.path.join(os.path.dirname(here), "numpy.libs"), os.path.join(here, ".dylibs"), os.path.join(here, ".libs"))
    paths = [p for d in dirs for name in ("libscipy_openblas", "libopenblas") for ext in ("so*", "dll", "dylib")
             for p in sorted(glob.glob(os.path.join(d, f"{name}*.{ext}")))]
    for path in paths + [None]:
        try:
            lib = ctypes.CDLL(path)    # None: the symbols already in the process (dlopen(NULL))
        except (OSError, TypeError):   # Windows has no dlopen(NULL): CDLL(None) is a TypeError there
            continue
        yield lib


def _find():
    """(get_num_threads, set_num_threads) of the OpenBLAS that NumPy uses, or False."""
    names = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
             ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
             ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
             ("openblas_get_num_threads", "openblas_set_num_threads")]
    for lib in _libraries():
        for get, set_ in names:
            if hasattr(lib, get) and hasattr(lib, set_):
                g, s = getattr(lib, get), getattr(lib, set_)
                g.restype, g.argtypes = ctypes.c_int, []
                s.restype, s.argtypes = None, [ctypes.c_int]
                return g, s
    return False


def _openblas():
    global _api
    if _api is None:
        _api = _find()
    return _api


def openblas_corename():
    """The kernel family NumPy's OpenBLAS runs (``"SkylakeX"``, ``"Haswell"``, ...), or None for another BLAS.

    OpenBLAS picks it from the CPU when it is loaded, unless ``OPENBLAS_CORETYPE`` names one: a machine
    that forces ``Haswell`` (AVX2) on an AVX-512 CPU runs NumPy's products at about half their speed
    (a 100k x 128 by 128 x 64 float32 product: 21 ms against 10 ms on one Zen 5 core).
    """
    for lib in _libraries():
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype, fn.argtypes = ctypes.c_char_p, []
                return fn().decode("ascii", "replace").strip()
    return None


def get_blas_threads():
    """OpenBLAS's current thread count, or None when NumPy's BLAS is not a controllable OpenBLAS."""
    api = _openblas()
    return api[0]() if api else None


@contextmanager
def blas_threads(n=1):
    """Run the block with OpenBLAS limited to ``n`` threads (nestable; restored on exit)."""
    global _depth, _saved
    api = _openblas()
    if not api:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = api[0]()
            if _saved != n:
                api[1](n)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None and _saved != n:
                api[1](_saved)


# The evaluation-mode policy is per Python thread: a forward on one thread (an inference server, a
# Dask task) must not change how another thread's training products are computed, and bits would.
_local = threading.local()


def products_split():
    """True inside ``parallel_products`` (an evaluation-mode forward) on this thread: ``kernels/dense_cpu``
    splits big products."""
    return getattr(_local, "split", False)


@contextmanager
def _policy(split, grain):
    saved = (products_split(), numba_grain())
    with blas_threads(1):
        _local.split, _local.grain = split, grain
        try:
            yield
        finally:
            _local.split, _local.grain = saved


def parallel_products():
    """OpenBLAS on one thread, large dense products split into row blocks over Python threads, and
    Numba kernels below ``INFERENCE_GRAIN`` on one thread (an evaluation-mode forward), on this thread."""
    return _policy(True, INFERENCE_GRAIN)


def training_products():
    """OpenBLAS on one thread, products unsplit, the training grain (``SERIAL_GRAIN``) on this thread -- also
    inside an evaluation-mode forward (a training-mode layer nested in an eval one keeps training's bits)."""
    return _policy(False, SERIAL_GRAIN)


def layer_blas_pool(fn):
    """Decorator of a layer's ``forward``: ``training_products`` in training mode, ``parallel_products`` in
    evaluation mode (``self.training`` False): inference products use the thread count, training's do not."""
    import functools

    @functools.wraps(fn)
    def wrapped(self, *args, **kwargs):
        with (training_products() if self.training else parallel_products()):
            return fn(self, *args, **kwargs)
    return wrapped


# Rows per block of a split product: fixed (not derived from the thread count), so the blocks -- and
# the bits -- are the same for any number of threads. 4096 rows: 25 blocks on 100k rows (a few %
# imbalance over 2 threads), ~0.5-1 ms of work per block at width 64 against ~10 us per call.
PRODUCT_BLOCK = 4096
# Multiply-adds below which a product is not split (~0.3 ms on one core).
PRODUCT_GRAIN = 1 << 24

_pool = None
_pool_size = 0


def _workers(n):
    """A thread pool with at least ``n`` workers (kept for the process; its idle threads sleep)."""
    global _pool, _pool_size
    if _pool is None or _pool_size < n:
        from concurrent.futures import ThreadPoolExecutor
        with _lock:
            if _pool is None or _pool_size < n:
                _pool, _pool_size = ThreadPoolExecutor(max_workers=n, thread_name_prefix="gnn_scratch"), n
    return _pool


def _after_fork_in_child():
    # a forked child has the parent's pool object but none of its threads, and maybe a lock another
    # thread held at the fork: start both afresh (row_blocks would wait forever on the dead workers)
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def row_blocks(fn, n_rows, block=PRODUCT_BLOCK, enters_numba=False):
    """``fn(lo, hi)`` for the fixed row blocks [0, block), [block, 2 block), ... of ``n_rows`` rows, spread over
    Numba's thread count (the calling thread takes one share). ``fn`` must release the GIL to run in parallel
    (a NumPy / BLAS call does, a ``nogil`` Numba kernel does) and write only its own rows. With ``enters_numba``
    (``fn`` starts Numba parallel regions) the blocks run one after another on the calling thread where Numba's
    threading layer cannot take regions from several threads (``numba_regions_from_threads``). Exceptions
    propagate."""
    blocks = [(lo, min(n_rows, lo + block)) for lo in range(0, n_rows, block)]
    n = min(len(blocks), (_numba_api or _numba_threads())[0]())
    if enters_numba and not numba_regions_from_threads():
        n = 1
    if n <= 1:
        for lo, hi in blocks:
            fn(lo, hi)
        return

    def share(k):
        for lo, hi in blocks[k::n]:
            fn(lo, hi)
    pool = _workers(n - 1)
    futures = [pool.submit(share, k) for k in range(1, n)]
    try:
        share(0)
    finally:
        for f in futures:
            f.result()


def single_blas_pool(fn):
    """Decorator: ``fn`` runs inside ``blas_threads(1)`` (a layer's forward or backward)."""
    import functools

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with blas_threads(1):
            return fn(*args, **kwargs)
    return wrapped


# Work (elements, or edges x features) below which a Numba kernel runs on one thread: ~0.1 ms of
# work, less than a fork/join of the thread pool costs, and far less than a wake-up costs once the
# cores are shared. The same idea as PyTorch's at::parallel_for grain size.
SERIAL_GRAIN = 1 << 18
# The grain inside an evaluation-mode forward (``parallel_products``): a whole inference on a graph of
# Cora's size (GAT's largest kernel there: 0.85M edge x feature units, ~0.8 ms on one core) stays on one
# thread. Two threads could save at most half of that on an idle machine; measured at 2 threads on a
# loaded one (interleaved A/B), the parallel regions cost 1.3-5x -- a region waits for its slowest thread,
# and another process (another library's spinning OpenMP pool, as in the benchmark) holds a core. Kernels
# give the same bits for any thread count, so the grain changes time only.
INFERENCE_GRAIN = 1 << 20


_numba_api = None   # (get, set) of Numba's thread count

# An OpenMP worker spins after a parallel region before it sleeps (GNU libgomp with OMP_WAIT_POLICY unset:
# 300,000 spins, milliseconds). Inference hands its product blocks and the input scan to Python threads
# right after a Numba region (``row_blocks``), and a spinning worker holds the core they need: on the
# 2-core Intel VM, 100k-node SAGE inference took 62 ms with the spin against 53 ms without it (GCN 36
# -> 34 ms; the training steps within noise), four processes of each alternated. So Numba's pool is
# started with the passive policy -- idle workers sleep at once -- unless the user chose one (any of
# these variables set); the variable is set only while Numba loads its OpenMP runtime (which reads it
# then) and removed after, so no other library in the process inherits it.
_WAIT_POLICY_KNOBS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
_launch_lock = threading.Lock()


def launch_numba_pool():
    """Start Numba's thread pool (once) with OpenMP's passive wait policy unless the user set one of
    ``_WAIT_POLICY_KNOBS``. Called before the first op of each name runs (``kernels.registry.run``) and by
    ``call_numba``; a pool something else started first (``numba.get_num_threads()``, or an embedding
    kernel called directly) keeps OpenMP's default. No effect on an OpenMP runtime another library loaded
    first, or on Numba's ``workqueue`` / ``tbb`` threading layers."""
    from numba.np.ufunc import parallel
    if getattr(parallel, "_is_initialized", False):
        return
    with _launch_lock:    # another thread's subprocess started meanwhile may inherit the variable: rare
        if getattr(parallel, "_is_initialized", False):
            return
        set_here = not any(k in os.environ for k in _WAIT_POLICY_KNOBS)
        if set_here:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            parallel._launch_threads()
        finally:
            if set_here:
                os.environ.pop("OMP_WAIT_POLICY", None)


def _numba_threads():
    """(get, set) of the number of threads Numba's parallel kernels use on this thread.

    Numba's public ``get_num_threads`` / ``set_num_threads`` check that the pool is running and
    validate the value on every call (a lock and ~2 us per call); ``call_numba`` flips the count
    twice per small kernel, a few hundred times per training step on a small graph. Once the pool
    is launched, the backend's own setters are the same operation without the checks; with a Numba
    that lacks them, the public functions are used.
    """
    global _numba_api
    if _numba_api is None:
        import numba
        from numba.np.ufunc import parallel
        launch_numba_pool()
        get, set_ = getattr(parallel, "_get_num_threads", None), getattr(parallel, "_set_num_threads", None)
        _numba_api = (get, set_) if callable(get) and callable(set_) else (numba.get_num_threads,
                                                                          numba.set_num_threads)
    return _numba_api


def numba_grain():
    """The work below which ``call_numba`` runs a kernel on one thread, on this thread now: ``SERIAL_GRAIN``, or
    ``INFERENCE_GRAIN`` inside ``parallel_products``."""
    return getattr(_local, "grain", SERIAL_GRAIN)


_regions_from_threads = None


def numba_regions_from_threads():
    """Whether Numba parallel regions may start on several Python threads at once: True for its OpenMP and TBB
    threading layers; False for ``workqueue`` (its fallback without either, or chosen by the user), which aborts
    the process when two threads enter it. Starts Numba's pool to ask."""
    global _regions_from_threads
    if _regions_from_threads is None:
        import numba
        launch_numba_pool()                   # the layer is chosen when the pool starts
        _regions_from_threads = numba.threading_layer() != "workqueue"
    return _regions_from_threads


def call_numba(kernel, work, *args, one_thread=None):
    """``kernel(*args)``, a parallel Numba kernel, on one thread when ``work < SERIAL_GRAIN`` (``INFERENCE_GRAIN``
    in an evaluation-mode forward) -- then as ``one_thread(*args)`` when the kernel has such a form (the same
    sums, compiled for one thread: ``kernels/cpu.py: ONE_THREAD``)."""
    get, set_ = _numba_api or _numba_threads()      # the first call starts the pool (launch_numba_pool)
    if work < numba_grain():
        if one_thread is not None:
            kernel = one_thread
        n_threads = get()
        if n_threads > 1:
            set_(1)
            try:
                return kernel(*args)
            finally:
                set_(n_threads)
    return kernel(*args)
