"""Timing, interleaving, statistics, the bytes-moved bound and the synthetic graphs of the benchmark.

Every comparison is a *ratio measured in one run*: the contenders (gnn_scratch, its peer, the copy
that calibrates the memory bandwidth) are timed in alternating order, round after round, so a
burst of load from another process slows all of them alike instead of one of them. Each timing is
summarised by its median and its min-max range over the repeats that follow the warm-up.
"""
from __future__ import annotations

import gc
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------------- statistics


def summarize(times):
    """{median, min, max, n, times} of a list of durations in seconds (the median of an even count
    is the mean of the two middle values). Raises ValueError for an empty list."""
    t = np.asarray(list(times), dtype=np.float64)
    if t.size == 0:
        raise ValueError("no timings to summarise")
    return dict(median=float(np.median(t)), min=float(t.min()), max=float(t.max()), n=int(t.size),
                times=[float(v) for v in t])


def ratio(a, b):
    """median(a) / median(b) of two ``summarize`` dicts; None when either is missing."""
    if not a or not b or not b.get("median"):
        return None
    return a["median"] / b["median"]


class Elapsed(float):
    """Seconds a function measured itself (see ``interleave``)."""


# Where two libraries alternate in two processes (``interleave(..., settle=SETTLE_S)``), each timed call
# is preceded by untimed calls of the same function for this many seconds: longer than an idle OpenMP
# worker spins before it sleeps (GNU libgomp's default, 300,000 spins: ~16 ms on the 2.6 GHz Intel VM), so
# the other library's spinning workers (torch's, in the PyG server, after its call) no longer hold a core
# when the timing starts, and the machine is not left idle either (a sleep instead of these calls doubled
# the times of millisecond calls on the VM). Measured without it: our GCN forward on the 100k-node graph
# took 49-53 ms in the bench against 33-39 ms alone. A group with a call longer than SETTLE_MAX_S is not
# settled at all (a 16 ms spin is under 2 % of its calls, and a second untimed call would double the
# bench's longest rows): within one group, every function is timed the same way. 1 s keeps PyG's slowest
# forms on the 100k-node graph (0.3-0.45 s forwards) inside their groups' settle.
SETTLE_S = 0.03
SETTLE_MAX_S = 1.0


def interleave(fns, repeats, warmup=1, min_time=0.0, max_time=None, settle=0.0):
    """Time every callable of ``fns`` (name -> fn) ``repeats`` times, interleaved; returns name -> summary.

    A function that returns an ``Elapsed`` is *self-timed*: that duration (measured where it ran,
    e.g. in a server process) is recorded instead of the wall time of the call.

    Each function first runs ``warmup`` times (compilation, caches, allocator). Then every round
    calls each function once, the order reversed on odd rounds (A B, B A, ...) so neither is
    always first after the other. A round whose total exceeds ``max_time`` seconds ends the
    measurement early (at least one round is kept); ``min_time`` keeps going past ``repeats`` while
    the rounds so far took less than that many seconds (more samples for very fast functions).
    A full garbage collection runs before the group and a young-generation one before each timing;
    the collector is off during a timing (a full collection with torch loaded costs ~0.1 s).
    With ``settle`` > 0, each timed call comes after untimed calls of the same function lasting at
    least ``settle`` seconds (one call when it is that long): the measurement is of back-to-back calls of
    one library, which the other library's idle threads do not disturb. A round is settled only when every
    function's last call (warm-up or timed) took at most ``SETTLE_MAX_S``, so all functions of a round are
    timed alike (with ``warmup=0`` the first round is not settled). Settle calls count towards
    ``max_time``. Each summary has ``settled``: how many of its timed calls were settled.
    """
    names = list(fns)
    last = {}
    for name in names:
        for _ in range(warmup):
            t0 = time.perf_counter()
            fns[name]()
            last[name] = time.perf_counter() - t0
    times = {name: [] for name in names}
    settled = dict.fromkeys(names, 0)
    gc.collect()
    start = time.perf_counter()
    r = 0
    while True:
        order = names if r % 2 == 0 else names[::-1]
        settle_round = bool(settle) and len(last) == len(names) and max(last.values()) <= SETTLE_MAX_S
        for name in order:
            if settle_round:
                settled[name] += 1
                t_end = time.perf_counter() + settle
                while True:
                    fns[name]()
                    if time.perf_counter() >= t_end:
                        break
            gc.collect(1)
            gc.disable()
            try:
                t0 = time.perf_counter()
                own = fns[name]()
                wall = time.perf_counter() - t0
                last[name] = wall
                times[name].append(float(own) if isinstance(own, Elapsed) else wall)
            finally:
                gc.enable()
        r += 1
        elapsed = time.perf_counter() - start
        if max_time is not None and elapsed > max_time:
            break
        if r >= repeats and elapsed >= min_time:
            break
        if r >= 50 * max(repeats, 1):
            break
    return {name: dict(summarize(v), settled=settled[name]) for name, v in times.items()}


def timed(acc, key, fn):
    """``fn`` wrapped so that each call adds its seconds to ``acc[key]`` (exceptions too): a per-phase breakdown
    (``scripts/profile_*.py``), not a timing."""
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[key] = acc.get(key, 0.0) + time.perf_counter() - t
    return wrapper


@contextmanager
def op_times(capture=None):
    """Time every registered op call (``kernels.registry.run``) inside the block, summed by op name.

    Yields ``(seconds, calls)``, two dicts by op name, filled as ops run. With a list as ``capture``,
    each call is also appended to it as ``(name, work, args)``, its array arguments copied before the
    call (so the call can be repeated alone later, on the inputs it had). The modules that imported
    ``run`` by name are patched for the block and restored after it, exceptions or not. The wrapper
    costs ~0.3 us a call: for a per-op breakdown (``scripts/profile_*.py``), not for the timings.
    """
    import sys

    from ..kernels import registry
    real = registry.run
    seconds, calls = {}, {}

    def run(name, work, *args):
        if capture is not None:
            capture.append((name, work, tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)))
        t = time.perf_counter()
        try:
            return real(name, work, *args)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
            calls[name] = calls.get(name, 0) + 1
    patched = [m for m in list(sys.modules.values())
               if getattr(m, "__name__", "").startswith("gnn_scratch") and getattr(m, "run", None) is real]
    for m in patched:
        m.run = run
    try:
        yield seconds, calls
    finally:
        for m in patched:
            m.run = real


# ----------------------------------------------------------------------------------- bandwidth


class CopyBandwidth:
    """A large ``np.copyto`` (float32, ``nbytes`` each way) used as the memory-bandwidth yardstick.

    ``fn`` is timed beside each kernel; bandwidth = 2 * nbytes / time (one read and one write
    stream, as STREAM counts a copy). Note: one thread, as NumPy copies.
    """

    def __init__(self, nbytes):
        n = max(1, int(nbytes) // 4)
        self.src = np.ones(n, dtype=np.float32)
        self.dst = np.empty_like(self.src)
        self.bytes = 2 * self.src.nbytes

    def fn(self):
        np.copyto(self.dst, self.src)

    def bandwidth(self, summary):
        """Bytes per second from the ``summarize`` dict of ``fn``'s timings (median time)."""
        return self.bytes / summary["median"]


# ----------------------------------------------------------------------------------- bytes moved
INDEX_BYTES = 4    # indices: int32
INDPTR_BYTES = 8   # indptr: int64
PERM_BYTES = 8     # t_perm: int64
ARGMAX_BYTES = 8   # argmax: int64


@dataclass(frozen=True)
class Shape:
    """What the bytes-moved formulas need: N_dst, N_src, E, feature width F, heads H, value itemsize."""
    n_dst: int
    n_src: int
    E: int
    F: int = 1
    H: int = 1
    itemsize: int = 4


def bytes_moved(kernel, s):
    """Lower bound on the bytes a kernel must move through memory: index + value + gathered rows + output.

    Each streamed array is counted once; every gathered source row (one per edge) is counted in
    full, F * itemsize bytes, as on a graph whose features do not fit in cache. ``s`` is a
    ``Shape``. Kernels (``kernels/cpu.py`` names; "_t" = on the transpose with pre-permuted
    weights, as GCN's backward runs it):

        spmm_sum            indptr + indices + weights + E gathered rows + N_dst output rows
        spmm_sum_perm       the same on the transpose, plus t_perm
        spmm_sum_t          the same on the transpose, weights already permuted
        spmm_mean           indptr + indices + E gathered rows + output
        spmm_mean_backward  t_indptr + t_indices + indptr (degrees) + E gathered rows + output
        spmm_max            indptr + indices + E gathered rows + output + argmax (int64)
        spmm_max_backward   argmax + grad_out read once, grad_X written (N_src rows); the CPU kernel
                            streams both once and scatters into grad_X (random line updates); the
                            CUDA kernel gathers both once per edge, E / N_dst times these reads
        sddmm_dot           indptr + indices + A rows (once) + E gathered B rows + (E, H) output
        sddmm_dot_backward  two SpMMs: dA = G B (CSR), dB = G^T A (transpose, permuted)
        edge_softmax        indptr + scores (E, H) read + alpha (E, H) written
        edge_softmax_backward  indptr + alpha and grad read + (E, H) written
        gat_forward         indptr + indices + a_dst + E gathered (a_src, Z rows) + output + row max/sum
        gat_backward        both orientations' index + E gathered Z and grad_out rows + grad_pre
                            written and read + E gathered a_src (twice) + grad_Z + grad_a_dst/src
    """
    e, nd, ns, F, H, w = s.E, s.n_dst, s.n_src, s.F, s.H, s.itemsize
    csr = (nd + 1) * INDPTR_BYTES + e * INDEX_BYTES
    csc = (ns + 1) * INDPTR_BYTES + e * INDEX_BYTES
    rows = e * F * w
    if kernel == "spmm_sum":
        return csr + e * w + rows + nd * F * w
    if kernel == "spmm_sum_perm":
        return csc + e * PERM_BYTES + e * w + rows + ns * F * w
    if kernel == "spmm_sum_t":
        return csc + e * w + rows + ns * F * w
    if kernel == "spmm_mean":
        return csr + rows + nd * F * w
    if kernel == "spmm_mean_backward":
        return csc + (nd + 1) * INDPTR_BYTES + rows + ns * F * w
    if kernel == "spmm_max":
        return csr + rows + nd * F * (w + ARGMAX_BYTES)
    if kernel == "spmm_max_backward":
        return nd * F * (ARGMAX_BYTES + w) + ns * F * w
    if kernel == "sddmm_dot":
        return csr + nd * H * F * w + e * H * F * w + e * H * w
    if kernel == "sddmm_dot_backward":
        return (csr + e * H * w + e * H * F * w + nd * H * F * w) + \
               (csc + e * PERM_BYTES + e * H * w + e * H * F * w + ns * H * F * w)
    if kernel == "edge_softmax":
        return (nd + 1) * INDPTR_BYTES + 2 * e * H * w
    if kernel == "edge_softmax_backward":
        return (nd + 1) * INDPTR_BYTES + 3 * e * H * w
    if kernel == "gat_forward":
        return csr + nd * H * w + e * H * w + rows + nd * F * w + 2 * nd * H * w
    if kernel == "gat_backward":
        return (csr + csc + e * PERM_BYTES + 2 * rows + 2 * e * H * w + 2 * e * H * w
                + ns * F * w + (nd + ns) * H * w + 2 * nd * H * w)
    raise ValueError(f"no bytes-moved formula for kernel {kernel!r}")


def gathered_bytes(kernel, s):
    """The part of ``bytes_moved(kernel, s)`` that is gathered rows: one random row per edge.

    On a graph with no locality those rows arrive at the random-row gather bandwidth (DRAM latency x
    rows in flight), not at the copy bandwidth that the rest (index, values, output) streams at;
    ``bench/kernels.py`` times both and bounds the kernel by gathered / gather bandwidth + the rest /
    copy bandwidth. ``spmm_max_backward``'s formula counts no gathered row (argmax and grad_out read
    once), so its bound stays the streaming one.
    """
    rows = s.E * s.F * s.itemsize               # a gathered (N, F) row per edge, as bytes_moved counts it
    head_rows = s.E * s.H * s.F * s.itemsize    # SDDMM's (N, H, F) rows
    if kernel in ("spmm_sum", "spmm_sum_perm", "spmm_sum_t", "spmm_mean", "spmm_mean_backward", "spmm_max",
                  "gat_forward"):
        return rows
    if kernel == "gat_backward":
        return 2 * rows
    if kernel == "sddmm_dot":
        return head_rows
    if kernel == "sddmm_dot_backward":
        return 2 * head_rows
    if kernel in ("spmm_max_backward", "edge_softmax", "edge_softmax_backward"):
        return 0
    raise ValueError(f"no bytes-moved formula for kernel {kernel!r}")


# ----------------------------------------------------------------------------------- graphs


@dataclass(frozen=True)
class GraphSpec:
    """A benchmark graph: a Planetoid dataset by name, or a uniform random graph of N nodes and E edges."""
    name: str
    kind: str              # "planetoid" or "random"
    num_nodes: int = 0
    num_edges: int = 0
    num_features: int = 128
    num_classes: int = 16
    seed: int = 0

    @property
    def label(self):
        if self.kind == "planetoid":
            return self.name
        return f"random {_si(self.num_nodes)} nodes / {_si(self.num_edges)} edges"


def _si(n):
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % (div // 10) == 0:
            v = n / div
            return f"{v:g}{suffix}"
    return str(n)


def random_spec(num_nodes, num_edges, name=None, **kw):
    return GraphSpec(name or f"random-{_si(num_nodes)}", "random", int(num_nodes), int(num_edges), **kw)


def random_edge_index(num_nodes, num_edges, seed=0):
    """(2, E) int64 edge_index of E distinct edges j -> i, j != i, drawn uniformly, in random order.

    No repeated edge and no self-loop, so every PyG input form means the same graph (a sparse
    matrix would merge repeats that an edge list keeps). Needs E <= N (N - 1).
    """
    N, E = int(num_nodes), int(num_edges)
    if E > N * (N - 1):
        raise ValueError(f"{E} distinct edges do not fit in a simple graph of {N} nodes")
    rng = np.random.default_rng(seed)
    keys = np.empty(0, dtype=np.int64)
    while keys.size < E:   # draw with a margin, drop loops and repeats, draw again if short
        more = rng.integers(0, N * N, size=int(1.05 * (E - keys.size)) + 16, dtype=np.int64)
        more = more[more // N != more % N]
        keys = np.unique(np.concatenate([keys, more]))
    keys = rng.permutation(keys)[:E]
    return np.stack([keys // N, keys % N])


@dataclass
class BenchData:
    """One graph's data for both libraries: our Graph and features, and the raw arrays PyG is built from."""
    spec: GraphSpec
    graph: object            # gnn_scratch Graph (CSR, rows = destinations)
    x: object                # what gnn_scratch trains on: scipy CSR (Planetoid) or dense float32
    x_dense: np.ndarray      # dense float32 features for PyG (the same values)
    edge_index: np.ndarray   # (2, E) int64 as given to PyG
    y: np.ndarray
    train_mask: np.ndarray
    num_classes: int
    num_nodes: int
    num_features: int


def load_bench_data(spec, data_root=None, need_graph=True, need_dense=True, need_sparse=True):
    """The ``BenchData`` of ``spec``: Planetoid files (row-normalised sparse features, as ``gnn-scratch
    train`` uses them) or a seeded random graph with Gaussian features, random labels and a 50 % train mask.

    need_graph: build our CSR ``Graph`` (a PyG-only process skips it); need_dense: the dense copy
    of sparse Planetoid features (PyG's input); need_sparse: keep the sparse ones (ours).
    """
    from ..graph import Graph
    if spec.kind == "planetoid":
        from ..data import get_dataset
        from ..loop import prepare_features
        data = get_dataset(spec.name, root=data_root)
        x = prepare_features(data)
        x_dense = None
        if need_dense:
            x_dense = np.asarray(x.toarray(), dtype=np.float32) if hasattr(x, "toarray") else x
        graph = data.graph if need_graph else None
        return BenchData(spec, graph, x if need_sparse else None, x_dense, data.edge_index, data.y,
                         data.train_mask, data.num_classes, data.num_nodes, x.shape[1])
    N, E = spec.num_nodes, spec.num_edges
    ei = random_edge_index(N, E, spec.seed)
    graph = Graph.from_edge_index(ei, num_nodes=N) if need_graph else None
    rng = np.random.default_rng(spec.seed + 1)
    x = rng.standard_normal((N, spec.num_features), dtype=np.float32)
    y = rng.integers(0, spec.num_classes, size=N, dtype=np.int64)
    train_mask = rng.random(N) < 0.5
    return BenchData(spec, graph, x, x, ei, y, train_mask, spec.num_classes, N, spec.num_features)


# ----------------------------------------------------------------------------------- environment


def cpu_model():
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def num_threads():
    """Numba's thread count: the thread count given to every contender (starting Numba's pool as the
    library does, ``threads.launch_numba_pool``, if nothing has yet)."""
    import numba

    from ..threads import launch_numba_pool
    launch_numba_pool()
    return int(numba.get_num_threads())


def versions():
    """Versions of the libraries the numbers depend on; a missing peer shows as None."""
    from importlib import metadata
    out = {"python": platform.python_version()}
    for dist in ("numpy", "numba", "scipy", "torch", "torch_geometric", "matplotlib"):
        try:   # read from the installed metadata: importing torch would take seconds
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine():
    """The machine facts written at the top of BENCHMARKS.md."""
    import datetime
    import numba
    info = dict(cpu=cpu_model(), cores=os.cpu_count(), threads=num_threads(),
                date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), platform=platform.platform(),
                versions=versions())
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:   # no parallel function has run yet
        info["numba_threading_layer"] = None
    from ..threads import openblas_corename
    # NumPy's BLAS kernels set the speed of every dense product; an environment may force older ones
    info["blas"] = dict(openblas_core=openblas_corename(), OPENBLAS_CORETYPE=os.environ.get("OPENBLAS_CORETYPE"))
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def torch_available():
    """True when torch and torch_geometric are installed (found, not imported: importing torch takes seconds)."""
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "torch_geometric"))
