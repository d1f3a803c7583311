"""GPU benchmark: gnn_scratch's numba.cuda kernels and training steps beside cuSPARSE and PyG, one GPU.

    gnn-scratch bench --gpu --out gpu.json          (or: python scripts/bench_gpu.py --out gpu.json)

Measures, on random graphs (default 1M nodes / 10M edges and 10M nodes / 100M edges, each skipped
with a note when the GPU has too little memory for it; no self-loop, no repeated edge, so every
PyG input form means the same graph):

* **aggregation**: ``kernels.cuda.spmm_sum`` (out = A X, F features) beside cuSPARSE SpMM on the
  same CSR arrays, called three ways: CuPy's ``csr_matrix @ X``, CuPy's ``cusparse.spmm`` on a
  column-major copy of X made outside the timing, and torch's CSR ``@`` (row-major X); the
  fastest is the one compared. Target: ours within 1.3x of cuSPARSE.
* **training steps**: one full-batch step (forward in training mode, masked cross-entropy,
  backward, Adam with L2 5e-4) of GCN, SAGE (mean) and GAT, ours on the device beside PyG on the
  same GPU, when torch with CUDA and torch_geometric are installed. Both sides are **one model**:
  ``model_config`` gives the hyper-parameters (the model class's ``model_defaults`` and
  ``train_defaults``, and on these random graphs
  the widths of the CPU benchmark: 64 hidden units; GAT 8 heads x 8, concat + ELU, then one
  head, mean, dropout 0.6 on features and attention), ours is built from it, and the PyG twin is
  built from our model's own layer list (``bench.models.describe`` -> ``bench.pyg_mirror``) with
  our initial weights, then checked to compute our eval-mode output on the benchmark graph. PyG
  runs with each input form it takes (edge_index, EdgeIndex, a torch CSR adjacency); a form that
  computes something else or fails is reported and left out; the fastest form is the one
  compared. Targets: GCN and GAT steps no slower than PyG.
* **peak device memory** of one training step, above what is allocated before it: PyG's
  ``torch.cuda.max_memory_allocated``; ours counted by a numba memory manager
  (``make_counting_manager``: numba's own, counting the bytes it hands out and those whose
  arrays died), installed before the CUDA context is created. When it cannot be installed the
  rows say "peak memory: not measured (why)". Target: GAT's peak at most half of PyG's (the
  PyG form with the smallest peak).
* **the memory roofline**: a lower bound on the bytes each operation must move (``spmm_bytes``,
  ``gcn_step_bytes``) divided by the measured device-to-device copy bandwidth -- the time no
  implementation can beat -- and each measured time's ratio to it.

Timing: CUDA events around each repetition after warm-up (compilation excluded), the device
synchronised; median and min-max over ``--repeats`` (fewer when one piece passes
``--piece-seconds``). Whatever fails (out of memory, a model that cannot run) becomes a row with a
note; the run goes on. The whole run keeps within ``--budget`` seconds (later pieces are skipped
with a note), prints each row as it comes, rewrites the JSON (``--out``) after each piece, and
ends with two Markdown tables: every row, and the targets. Needs a real NVIDIA GPU with
numba-cuda: without one (or under the numba CUDA simulator) it stops at once with a one-line error
and exit status 2.
"""
from __future__ import annotations

import ctypes
import gc
import json
import math
import sys
import time

import numpy as np

NO_GPU = ("error: no CUDA GPU available; the GPU benchmark needs an NVIDIA GPU with numba-cuda "
          "(pip install '.[cuda]')")
SUFFIX = {"": 1, "k": 10 ** 3, "K": 10 ** 3, "m": 10 ** 6, "M": 10 ** 6, "g": 10 ** 9, "G": 10 ** 9}
MiB = 2 ** 20

# The targets: (what, the ratio's ceiling).
SPMM_TARGET = 1.3           # ours / cuSPARSE
STEP_TARGETS = {"gcn": 1.0, "gat": 1.0}   # ours / PyG's fastest form; SAGE is reported without a target
GAT_MEMORY_TARGET = 0.5     # ours / PyG's smallest peak
WEIGHT_DECAY = 5e-4         # L2 on every parameter, both sides (as the CPU benchmark)


# ===================================================================================== pure Python
def parse_count(text):
    """'10M' -> 10_000_000, '2.5k' -> 2500, '1000' -> 1000. Raises ValueError for anything else."""
    t = str(text).strip()
    num, suf = (t[:-1], t[-1]) if t and t[-1] in SUFFIX else (t, "")
    try:
        value = float(num) * SUFFIX[suf]
    except ValueError:
        raise ValueError(f"not a count: {text!r} (write e.g. 1000, 2.5k, 10M)") from None
    if value <= 0 or value != int(value):
        raise ValueError(f"a count must be a positive whole number, got {text!r}")
    return int(value)


def parse_sizes(text):
    """'1M:10M,10M:100M' -> [(1_000_000, 10_000_000), (10_000_000, 100_000_000)]: (nodes, edges) pairs."""
    sizes = []
    for part in str(text).split(","):
        if part.count(":") != 1:
            raise ValueError(f"a size is NODES:EDGES, got {part!r}")
        n, e = (parse_count(s) for s in part.split(":"))
        if n < 2:
            raise ValueError(f"a graph needs at least 2 nodes, got {part!r}")
        sizes.append((n, e))
    return sizes


def parse_args(argv=None):
    from ..tasks.options import Parser   # errors in one line, as every gnn-scratch command
    p = Parser(prog="gnn-scratch bench --gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu.json", help="JSON file to write (default gpu.json)")
    p.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1M:10M,10M:100M"),
                   help="comma-separated NODES:EDGES graphs (default 1M:10M,10M:100M)")
    p.add_argument("--features", type=int, default=64, help="F: input features, and SpMM width (default 64)")
    p.add_argument("--hidden", type=int, default=64,
                   help="hidden channels of GCN and SAGE (default 64, as the CPU benchmark on random graphs; "
                        "GAT keeps 8 heads x 8)")
    p.add_argument("--classes", type=int, default=8, help="output classes (default 8)")
    p.add_argument("--repeats", type=int, default=10, help="timed repetitions (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repetitions first (default 2)")
    p.add_argument("--piece-seconds", type=float, default=15.0,
                   help="stop timing one piece after this many seconds (at least 3 repetitions; default 15)")
    p.add_argument("--budget", type=float, default=400.0,
                   help="skip the pieces that would start after this many seconds of the run (default 400: "
                        "the run, whose last piece may overrun, then ends within 10 minutes)")
    p.add_argument("--models", default="gcn,gat,sage",
                   help="models to time, if registered, in this order (default gcn,gat,sage: the ones with "
                        "targets first, in case the budget runs out)")
    p.add_argument("--forms", default="edge_index,EdgeIndex,csr",
                   help="PyG input forms to try (default edge_index,EdgeIndex,csr)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--no-peers", action="store_true", help="skip CuPy and PyG")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("features", "hidden", "classes", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be non-negative")
    if args.piece_seconds <= 0 or args.budget <= 0:
        p.error("--piece-seconds and --budget must be positive")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    unknown = sorted(set(args.forms) - set(PYG_FORMS))
    if unknown:
        p.error(f"unknown PyG form(s) {unknown}; choose from {list(PYG_FORMS)}")
    return args


def model_config(name, hidden=64):
    """(model kwargs, Adam learning rate) of ``name`` for both sides: the model class's defaults with the
    widths the CPU benchmark uses on random graphs -- ``hidden`` units for GCN and SAGE, 8 heads x 8 for GAT.

    GCN: dropout 0.5 -> GCNConv(F, hidden) -> ReLU -> dropout 0.5 -> GCNConv(hidden, C).
    SAGE: the same chain with SAGEConv(aggr="mean", root weight).
    GAT: dropout 0.6 -> GATConv(F, 8, heads=8, concat, attention dropout 0.6) -> ELU -> dropout 0.6
    -> GATConv(64, C, heads=1, concat=False, attention dropout 0.6).
    """
    from ..models import get_model_class
    model_cls = get_model_class(name)
    cfg, lr = dict(model_cls.model_defaults), model_cls.train_defaults.get("lr", 0.01)
    if name == "gat":
        cfg.update(hidden_channels=8, heads=8)
    else:
        cfg.update(hidden_channels=int(hidden))
    return cfg, lr


def hidden_width(name, cfg):
    """The width of the hidden layer (heads x channels for GAT's concatenated heads)."""
    return cfg.get("hidden_channels", 0) * (cfg.get("heads", 1) if name == "gat" else 1)


def spmm_bytes(n_dst, n_src, nnz, F, itemsize=4, index_itemsize=4, indptr_itemsize=8):
    """Lower bound on the bytes out = A X must move between GPU memory and the chip.

    Each of these is read or written at least once: indptr (n_dst + 1 pointers), indices and values
    (nnz each), every row of X that an edge touches (at most n_src, at most nnz; a random graph with
    nnz >> n_src touches nearly all of them: counted as min(n_src, nnz)), and the output (n_dst x F).
    """
    return ((n_dst + 1) * indptr_itemsize + nnz * (index_itemsize + itemsize)
            + min(n_src, nnz) * F * itemsize + n_dst * F * itemsize)


def gcn_step_bytes(N, E, F_in, hidden, classes, itemsize=4):
    """Lower bound on the bytes one two-layer GCN training step must move (self-loops included: E + N edges).

    Counted: X read twice (X W1 forward, X^T dZ1 backward: F_in >= hidden, so the product runs
    before the aggregation), and the four aggregations -- A (X W1) at width hidden, A (H W2) at width
    classes, and their transposes in the backward -- each at least ``spmm_bytes``. Everything else
    (activations, dropout, loss, the small matrix products, Adam) adds more; this is a floor.
    """
    E_hat = E + N
    agg = 2 * spmm_bytes(N, N, E_hat, hidden, itemsize) + 2 * spmm_bytes(N, N, E_hat, classes, itemsize)
    return 2 * N * F_in * itemsize + agg


def gcn_device_bytes(N, E, F_in, hidden, classes, itemsize=4):
    """Rough peak GPU memory of gnn_scratch's GCN step: both graphs with transposes, features, activations."""
    E_hat = E + N
    graph = lambda e: 2 * (N + 1) * 8 + e * (4 + 4 + 8)                 # noqa: E731  CSR + transpose (indices, t_perm)
    weights = E_hat * (itemsize + 8)                                     # edge values, float64 weights
    acts = N * (F_in + 6 * hidden + 6 * classes) * itemsize + N * hidden  # X, Z/out/masks, grads
    return graph(E) + graph(E_hat) + weights + acts


def summarize(times_ms):
    """{median, min, max, n} of a list of times in milliseconds."""
    t = np.asarray(times_ms, dtype=np.float64)
    return dict(median=float(np.median(t)), min=float(t.min()), max=float(t.max()), n=int(t.size))


def _ms(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def format_table(rows):
    """Markdown table of result rows (dicts with graph, op, impl, median, min, max, bound_ms, peak_MiB, note)."""
    head = ["graph", "operation", "implementation", "median ms", "min-max ms", "bound ms", "x bound", "peak MiB",
            "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        med = r.get("median")
        timed = _ms(med)
        bound = r.get("bound_ms")
        peak = r.get("peak_MiB")
        cells = [r.get("graph", ""), r.get("op", ""), r.get("impl", ""),
                 f"{med:.3f}" if timed else "-",
                 f"{r['min']:.3f}-{r['max']:.3f}" if timed else "-",
                 f"{bound:.3f}" if bound else "-",
                 f"{med / bound:.1f}" if timed and bound else "-",
                 f"{peak:.1f}" if _ms(peak) else "-",
                 r.get("note", "")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _best(rows, key, usable=lambda r: True):
    """The row with the smallest ``key`` among those that have it (and pass ``usable``), or None."""
    have = [r for r in rows if _ms(r.get(key)) and usable(r)]
    return min(have, key=lambda r: r[key]) if have else None


def _comparison(graph, what, ours, peer, key, target, unit, peer_note, ours_note=None):
    """One target row: ours / peer of ``key`` (a median time or a peak), the ceiling and whether it is met."""
    row = dict(graph=graph, comparison=what, target=target, unit=unit)
    if ours is None or not _ms(ours.get(key)):
        row.update(status="not measured", note=ours_note or (ours or {}).get("note", "") or "ours not measured")
        return row
    row["ours"] = ours[key]
    if peer is None or not _ms(peer.get(key)) or not peer[key]:
        row.update(status="not measured", note=peer_note)
        return row
    row.update(peer=peer[key], peer_impl=peer.get("impl", ""), ratio=ours[key] / peer[key])
    row["status"] = "-" if target is None else ("PASS" if row["ratio"] <= target else "MISS")
    return row


def _bound_row(graph, what, ours):
    return dict(graph=graph, comparison=f"{what}: ours / bytes-moved bound", ours=ours["median"], peer=ours["bound_ms"],
                peer_impl="bound", ratio=ours["median"] / ours["bound_ms"], target=None, status="-", unit="ms")


def targets(rows):
    """The issue's comparisons per graph, from the result rows: [{graph, comparison, ours, peer, ratio, target, status, note}].

    * SpMM: gnn_scratch ``spmm_sum`` / cuSPARSE, target <= 1.3;
    * each model's step: ours / PyG's fastest input form whose output matched ours, target <= 1.0
      for GCN and GAT (SAGE: reported, no target);
    * each model's peak step memory: ours / PyG's smallest (of the forms that matched), target
      <= 0.5 for GAT (the others: reported);
    * the bytes-moved bound: ours / bound for SpMM and the GCN step (no target: how far from the floor).
    """
    out = []
    for g in dict.fromkeys(r.get("graph", "") for r in rows):
        mine = [r for r in rows if r.get("graph", "") == g]
        skipped = [r for r in mine if r.get("op") == "all"]
        if skipped:
            out.append(dict(graph=g, comparison="all", status="not measured", note=skipped[0].get("note", "")))
            continue
        for r in mine:
            if r.get("op") == "error":       # the graph broke off: what came before it is still compared
                out.append(dict(graph=g, comparison="the rest", status="not measured", note=r.get("note", "")))
        spmm = [r for r in mine if str(r.get("op", "")).startswith("SpMM")]
        if spmm:
            op = spmm[0]["op"]
            ours = next((r for r in spmm if r.get("side") == "ours"), None)
            peers = [r for r in spmm if r.get("side") == "peer"]
            peer_note = "; ".join(r.get("note", "") for r in peers) or "no cuSPARSE row"
            out.append(_comparison(g, f"{op}: ours / cuSPARSE", ours, _best(peers, "median"), "median", SPMM_TARGET,
                                   "ms", peer_note))
            if ours is not None and _ms(ours.get("median")) and ours.get("bound_ms"):
                out.append(_bound_row(g, op, ours))
        for m in dict.fromkeys(r["model"] for r in mine if r.get("model")):
            steps = [r for r in mine if r.get("model") == m]
            ours = next((r for r in steps if r.get("side") == "ours"), None)
            pyg = [r for r in steps if r.get("side") == "peer"]
            matched = lambda r: r.get("matches", True) is not False   # noqa: E731
            peer_note = "; ".join(f"{r.get('impl')}: {r.get('note')}" for r in pyg if r.get("note")) or "no PyG row"
            out.append(_comparison(g, f"{m} step: ours / PyG", ours, _best(pyg, "median", matched), "median",
                                   STEP_TARGETS.get(m), "ms", peer_note))
            if m == "gcn" and ours is not None and _ms(ours.get("median")) and ours.get("bound_ms"):
                out.append(_bound_row(g, "gcn step", ours))
            if m == "gat" or (ours is not None and _ms(ours.get("peak_MiB"))):
                out.append(_comparison(g, f"{m} step peak memory: ours / PyG", ours, _best(pyg, "peak_MiB", matched),
                                       "peak_MiB", GAT_MEMORY_TARGET if m == "gat" else None, "MiB", peer_note,
                                       ours_note=(ours or {}).get("memory_note")))
    return out


def format_targets(rows):
    """Markdown table of ``targets``: graph | comparison | ours | peer | ratio | target | status | note."""
    head = ["graph", "comparison", "ours", "peer", "ratio", "target", "status", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        unit = r.get("unit", "")
        ours = f"{r['ours']:.3f} {unit}" if _ms(r.get("ours")) else "-"
        peer = f"{r['peer']:.3f} {unit} ({r.get('peer_impl', '')})" if _ms(r.get("peer")) else "-"
        ratio = f"{r['ratio']:.2f}x" if _ms(r.get("ratio")) else "-"
        target = f"<= {r['target']}x" if r.get("target") is not None else "-"
        lines.append("| " + " | ".join([str(r.get("graph", "")), str(r.get("comparison", "")), ours, peer, ratio,
                                        target, str(r.get("status", "")), str(r.get("note", ""))]) + " |")
    return "\n".join(lines)


class Budget:
    """Wall-clock budget of the whole run: ``left()`` seconds, ``over()`` once it is spent."""

    def __init__(self, seconds, clock=time.perf_counter):
        self.clock = clock
        self.deadline = clock() + seconds

    def left(self):
        return self.deadline - self.clock()

    def over(self):
        return self.left() <= 0


# ============================================================================ device memory counter
def _address(p):
    """The integer device address of a numba memory pointer, a raw driver handle or a ctypes pointer.

    numba's (Owned)MemoryPointer has ``device_pointer`` (a ``CUdeviceptr``, or a ctypes pointer with
    the ctypes binding); its ``device_ctypes_pointer`` is a ``c_size_t``; a driver handle is one of those.
    """
    if hasattr(p, "device_pointer"):
        p = p.device_pointer
    elif hasattr(p, "device_ctypes_pointer"):
        p = p.device_ctypes_pointer
    if isinstance(p, ctypes._SimpleCData):
        return p.value or 0
    try:
        return int(p)
    except (TypeError, ValueError):
        return id(p)


def make_counting_manager(base):
    """A subclass of numba's memory manager class ``base`` that counts the device bytes alive.

    ``memalloc`` adds each allocation's size; numba frees an allocation by handing its pointer to
    ``deallocations.add_item`` once the last array using it has died (the actual cuMemFree may be
    deferred), and that call subtracts it. ``live`` is the bytes of arrays alive (what PyG's
    ``torch.cuda.memory_allocated`` counts), ``peak`` its maximum since ``reset_peak()``,
    ``held`` = live + freed-but-deferred bytes (what the driver still has allocated).
    """

    class CountingMemoryManager(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.live = self.peak = self.deferred = self.held_peak = 0
            self.sizes = {}
            deallocs = getattr(self, "deallocations", None)
            if deallocs is not None:
                add, clear = deallocs.add_item, deallocs.clear

                def add_item(dtor, handle, *rest, **kw):
                    self._released(handle)
                    return add(dtor, handle, *rest, **kw)

                def clear_all():
                    out = clear()
                    if len(deallocs) == 0:
                        self.deferred = 0
                    return out

                deallocs.add_item, deallocs.clear = add_item, clear_all

        def memalloc(self, size):
            mem = super().memalloc(size)
            key = _address(mem)
            self.live += size - self.sizes.get(key, 0)
            self.sizes[key] = size
            self.peak = max(self.peak, self.live)
            self.held_peak = max(self.held_peak, self.live + self.deferred)
            return mem

        def _released(self, handle):
            size = self.sizes.pop(_address(handle), None)
            if size is not None:
                self.live -= size
                self.deferred += size

        def reset_peak(self):
            self.peak = self.live
            self.held_peak = self.live + self.deferred

    CountingMemoryManager.__name__ = CountingMemoryManager.__qualname__ = f"Counting{base.__name__}"
    return CountingMemoryManager


def install_memory_counter():
    """Install the counting memory manager into numba-cuda (before any CUDA context exists).

    Returns (the manager class, None), or (None, why not) -- never raises: the benchmark then
    reports "peak memory: not measured (why)".
    """
    try:
        from ..kernels import cuda as ck
        if ck.cuda is None:
            return None, "numba-cuda is not installed"
        if ck._simulator_enabled():
            return None, "the numba CUDA simulator has no device memory"
        from numba.cuda.cudadrv import driver
        cls = make_counting_manager(driver.NumbaCUDAMemoryManager)
        ck.cuda.set_memory_manager(cls)
        return cls, None
    except Exception as e:  # noqa: BLE001 -- any failure means "not measured", never a crash
        return None, f"{type(e).__name__}: {e}"[:160]


class DeviceMemory:
    """Peak of our live device bytes during a call, from the counting manager (or why it is not measured)."""

    def __init__(self, manager=None, reason=None):
        self.manager, self.reason = manager, reason

    @classmethod
    def attach(cls, cuda, manager_class, install_note):
        """The counter of the current context, after a self-check (allocate 1 MiB, free it)."""
        if manager_class is None:
            return cls(None, install_note or "no counting memory manager")
        try:
            mm = cuda.current_context().memory_manager
        except Exception as e:  # noqa: BLE001
            return cls(None, f"no CUDA context: {type(e).__name__}: {e}"[:160])
        if not isinstance(mm, manager_class):
            return cls(None, "the CUDA context existed before the counting memory manager was installed")
        before = mm.live
        a = cuda.device_array(MiB // 4, dtype=np.float32)
        grew = mm.live - before
        del a
        gc.collect()
        if grew < MiB or mm.live != before:
            return cls(None, f"the counter failed its self-check (+{grew} bytes for a 1 MiB array, "
                             f"{mm.live - before} left after freeing it)")
        return cls(mm, None)

    @property
    def ok(self):
        return self.manager is not None

    def peak_of(self, fn, sync):
        """(peak MiB above the bytes alive before ``fn()``, peak held MiB) or (None, None)."""
        if not self.ok:
            return None, None
        gc.collect()
        sync()
        base = self.manager.live
        held = self.manager.live + self.manager.deferred
        self.manager.reset_peak()
        fn()
        sync()
        return (self.manager.peak - base) / MiB, (self.manager.held_peak - held) / MiB

    def flush(self, cuda):
        """Free numba's deferred deallocations now (so that torch and CuPy see the memory)."""
        gc.collect()
        try:
            cuda.current_context().memory_manager.deallocations.clear()
            cuda.current_context().deallocations.clear()
        except Exception:  # noqa: BLE001
            pass


# ======================================================================================= the GPU
def require_real_gpu():
    """Exit with status 2 and the one-line error unless numba-cuda sees a real GPU (not the simulator)."""
    try:
        from ..kernels import cuda as ck
    except ImportError:
        raise SystemExit(NO_GPU) from None
    if ck.cuda is None or ck._simulator_enabled():
        why = "" if ck.cuda is None else " (the numba CUDA simulator is on: its timings mean nothing)"
        raise SystemExit(NO_GPU + why)
    try:
        ok = ck.cuda.is_available()
    except Exception:                      # a driver that fails to initialise counts as no GPU
        ok = False
    if not ok:
        raise SystemExit(NO_GPU)
    return ck.cuda


def time_events(cuda, fn, repeats, warmup, max_seconds=None):
    """Milliseconds of ``fn()`` per repetition, between CUDA events, after ``warmup`` calls.

    Stops after ``max_seconds`` of timed repetitions (but keeps at least 3, or ``repeats`` if fewer).
    """
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    out = []
    t0 = time.perf_counter()
    for _ in range(repeats):
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        out.append(start.elapsed_time(stop))
        if max_seconds is not None and len(out) >= 3 and time.perf_counter() - t0 > max_seconds:
            break
    return out


def copy_bandwidth(cuda, nbytes=1 << 30, repeats=10):
    """Device-to-device copy bandwidth in bytes/s (read + write counted), median over ``repeats``."""
    n = nbytes // 4
    src = cuda.device_array(n, dtype=np.float32)
    dst = cuda.device_array(n, dtype=np.float32)
    ms = time_events(cuda, lambda: dst.copy_to_device(src), repeats, 2)
    return 2 * n * 4 / (float(np.median(ms)) / 1e3)


def random_graph(N, E, seed):
    """A random directed graph of about E edges: Poisson in-degrees, uniform sources, no self-loop, no repeat.

    CSR with rows = destinations and sources ascending within a row (a repeated draw is dropped:
    about E^2 / (2 N^2) of them, a handful), so a sparse adjacency and an edge list mean the same graph.
    """
    from ..graph import Graph
    rng = np.random.default_rng(seed)
    deg = rng.poisson(E / N, size=N)
    dst = np.repeat(np.arange(N, dtype=np.int64), deg)
    src = rng.integers(0, N - 1, size=dst.size, dtype=np.int64)
    src += src >= dst                       # uniform over the N - 1 other nodes
    keys = np.unique(dst * N + src)         # sorted by (dst, src), repeats dropped
    del dst, src
    indptr = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // N, minlength=N), out=indptr[1:])
    indices = (keys % N).astype(np.int32)
    return Graph(indptr, indices, num_src=N, _validated=True)


def _row(label, op, impl, side, **kw):
    return dict(graph=label, op=op, impl=impl, side=side, **kw)


def _short(e):
    return f"{type(e).__name__}: {e}".replace("\n", " ")[:200]


def _spmm_peer(cuda, label, op, impl, fn, want, args, bound_ms):
    """Time one cuSPARSE call ``fn`` (returning a host copy when asked) and its max relative difference to ours."""
    try:
        ms = time_events(cuda, lambda: fn(False), args.repeats, args.warmup, args.piece_seconds)
        got = fn(True)
        err = float(np.abs(got - want).max() / max(1e-30, float(np.abs(want).max()))) if want.size else 0.0
        return _row(label, op, impl, "peer", bound_ms=bound_ms, note=f"max rel diff {err:.1e}", **summarize(ms))
    except Exception as e:  # noqa: BLE001 -- out of memory, an API this version lacks
        return _row(label, op, impl, "peer", note=f"failed: {_short(e)}")


def bench_spmm(cuda, g, F, dtype, args, bound_ms, label, budget=None):
    """out = A X: ours beside cuSPARSE, three ways -- CuPy's ``A @ X``, CuPy's ``cusparse.spmm`` on a
    column-major copy of X made outside the timing (CuPy's cuSPARSE calls take column-major dense
    matrices only, so ``A @ X`` also times a layout change), and torch's CSR ``A @ X`` (cuSPARSE
    SpMM on row-major X, as ours reads it). The fastest of them is the one compared."""
    from ..kernels import cuda as ck
    op = f"SpMM F={F}"
    rng = np.random.default_rng(args.seed)
    rows = []
    try:
        d_indptr, d_indices = cuda.to_device(g.indptr), cuda.to_device(g.indices)
        d_val = cuda.to_device(rng.random(g.num_edges, dtype=np.float32).astype(dtype))
        d_X = cuda.to_device(rng.standard_normal((g.num_src, F), dtype=np.float32).astype(dtype))
        d_out = cuda.device_array((g.num_dst, F), dtype=dtype)
        ms = time_events(cuda, lambda: ck.spmm_sum(d_indptr, d_indices, d_val, d_X, d_out), args.repeats,
                         args.warmup, args.piece_seconds)
        want = d_out.copy_to_host()
    except Exception as e:  # noqa: BLE001 -- out of memory, typically
        return [_row(label, op, "gnn_scratch spmm_sum", "ours", note=f"failed: {_short(e)}")]
    rows.append(_row(label, op, "gnn_scratch spmm_sum", "ours", bound_ms=bound_ms, **summarize(ms)))
    if args.no_peers:
        return rows
    if budget is not None and budget.over():
        rows.append(_row(label, op, "cuSPARSE", "peer", note="skipped: time budget spent"))
        return rows
    indptr32 = g.indptr.astype(np.int32)           # nnz < 2^31: cuSPARSE's 32-bit CSR
    try:
        import cupy
        import cupyx.cusparse
        import cupyx.scipy.sparse as csp
    except ImportError as e:
        rows.append(_row(label, op, "cuSPARSE (CuPy)", "peer", note=f"skipped: {e}"))
    else:
        A = X = Xf = Cf = None
        try:
            A = csp.csr_matrix((cupy.asarray(d_val), cupy.asarray(d_indices), cupy.asarray(indptr32)), shape=g.shape)
            X = cupy.asarray(d_X)
            rows.append(_spmm_peer(cuda, label, op, "cuSPARSE (CuPy A @ X)",
                                   lambda host: (A @ X).get() if host else A @ X, want, args, bound_ms))
            Xf = cupy.asfortranarray(X)
            Cf = cupy.empty((g.num_dst, F), dtype=dtype, order="F")

            def spmm(host):
                cupyx.cusparse.spmm(A, Xf, c=Cf)
                return cupy.ascontiguousarray(Cf).get() if host else None
            rows.append(_spmm_peer(cuda, label, op, "cuSPARSE (CuPy cusparse.spmm, column-major X)", spmm, want,
                                   args, bound_ms))
        except Exception as e:  # noqa: BLE001
            rows.append(_row(label, op, "cuSPARSE (CuPy)", "peer", note=f"failed: {_short(e)}"))
        finally:
            A = X = Xf = Cf = None
            try:
                cupy.get_default_memory_pool().free_all_blocks()
            except Exception:  # noqa: BLE001
                pass
    try:
        import torch
        if not torch.cuda.is_available():
            raise ImportError("torch has no CUDA")
    except ImportError as e:
        rows.append(_row(label, op, "cuSPARSE (torch CSR @ X)", "peer", note=f"skipped: {e}"))
    else:
        At = Xt = None
        try:
            dev = torch.device("cuda")
            At = torch.sparse_csr_tensor(torch.from_numpy(indptr32).to(dev), torch.as_tensor(d_indices, device=dev),
                                         torch.as_tensor(d_val, device=dev), size=g.shape)
            Xt = torch.as_tensor(d_X, device=dev)
            rows.append(_spmm_peer(cuda, label, op, "cuSPARSE (torch CSR @ X)",
                                   lambda host: (At @ Xt).cpu().numpy() if host else At @ Xt, want, args, bound_ms))
        except Exception as e:  # noqa: BLE001
            rows.append(_row(label, op, "cuSPARSE (torch CSR @ X)", "peer", note=f"failed: {_short(e)}"))
        finally:
            At = Xt = None
            torch.cuda.empty_cache()
    return rows


def build_pair(model_name, args):
    """Our host model (before it moves), its config, lr, and the PyG twin's description (or why there is none).

    The twin is described from our model itself (``bench.models.describe``: its chain of layers
    with their hyper-parameters and initial weights), so both sides are one architecture by construction.
    """
    from ..models import build_model
    cfg, lr = model_config(model_name, args.hidden)
    model = build_model(model_name, in_channels=args.features, out_channels=args.classes, seed=args.seed,
                        dtype=args.dtype, **cfg)
    try:
        from .models import describe
        desc, params = describe(model)
        twin = dict(desc=desc, params=params)
    except Exception as e:  # noqa: BLE001 -- no mirror for a layer, or the CPU benchmark's helpers missing
        twin = dict(error=f"no PyG twin: {_short(e)}")
    return model, cfg, lr, twin


def bench_data(g, args):
    """(x, y, train mask) on the host, shared by both sides: Gaussian features, random labels, 50 % train."""
    rng = np.random.default_rng(args.seed + 1)
    x = rng.standard_normal((g.num_nodes, args.features), dtype=np.float32).astype(args.dtype)
    y = rng.integers(0, args.classes, size=g.num_nodes, dtype=np.int64)
    mask = rng.random(g.num_nodes) < 0.5
    return x, y, mask


def bench_ours(cuda, model_name, model, lr, g, data, args, bound_ms, label, memory):
    """One gnn_scratch training step on the device: timed and its peak memory; also returns the eval-mode
    output of the initial weights (host), which the PyG twin must reproduce."""
    from .. import device
    from ..loop import input_is_data, train_step
    from ..nn import SoftmaxCrossEntropy
    from ..optim import Adam
    op = f"{model_name} step"
    base = dict(model=model_name)
    out = None
    try:
        model.to("cuda")
        opt = Adam([{"params": model.parameters(), "weight_decay": WEIGHT_DECAY}], lr=lr)
        x, y, mask = (device.to_device(a) for a in data)
        dg = g.to("cuda")
        loss_fn = SoftmaxCrossEntropy()
        model.eval()                        # the initial weights' output: what the PyG twin must compute
        out = np.asarray(device.to_host(model.forward(x, dg)), dtype=np.float64)
        with input_is_data(model):
            def step():
                train_step(model, x, dg, y, mask, opt, loss_fn)
            ms = time_events(cuda, step, args.repeats, args.warmup, args.piece_seconds)
            peak, held = memory.peak_of(step, cuda.synchronize)
    except Exception as e:  # noqa: BLE001 -- a model whose layers cannot run on the device, out of memory
        return [_row(label, op, "gnn_scratch", "ours", note=f"failed: {_short(e)}", **base)], None
    row = _row(label, op, "gnn_scratch", "ours", bound_ms=bound_ms, **base, **summarize(ms))
    if peak is None:
        row.update(memory_note=f"peak memory: not measured ({memory.reason})")
        row["note"] = row["memory_note"]
    else:
        row.update(peak_MiB=peak, peak_held_MiB=held)
    return [row], out


# PyG input forms, each built on the device from our CSR (rows = destinations, sources sorted per row).
PYG_FORMS = ("edge_index", "EdgeIndex", "csr")


def pyg_form(name, g, dev):
    """PyG's adjacency in form ``name`` on ``dev``: (2, E) edge_index, a col-sorted EdgeIndex, or adj_t as torch CSR."""
    import torch
    indptr = torch.from_numpy(g.indptr).to(dev)
    src = torch.from_numpy(g.indices.astype(np.int64)).to(dev)
    if name == "csr":
        vals = torch.ones(src.numel(), device=dev)
        return torch.sparse_csr_tensor(indptr, src, vals, size=(g.num_dst, g.num_src))
    dst = torch.repeat_interleave(torch.arange(g.num_dst, device=dev), indptr.diff())
    ei = torch.stack([src, dst])
    del src, dst
    if name == "edge_index":
        return ei
    from torch_geometric import EdgeIndex
    return EdgeIndex(ei, sparse_size=(g.num_src, g.num_dst), sort_order="col")


TORCH_DEVICE = "cuda"   # where PyG runs (the tests run the same code with torch on the CPU)


def torch_times(torch, step, dev, repeats, warmup, max_seconds=None):
    """Milliseconds of ``step()`` per repetition after ``warmup`` calls: CUDA events on a GPU, a clock on the CPU."""
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    ms = []
    t0 = time.perf_counter()
    for _ in range(repeats):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step()
            b.record()
            b.synchronize()
            ms.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            step()
            ms.append(1e3 * (time.perf_counter() - t))
        if max_seconds is not None and len(ms) >= 3 and time.perf_counter() - t0 > max_seconds:
            break
    return ms


def torch_peak_MiB(torch, step, dev):
    """Peak MiB that torch allocates during ``step()``, above what was allocated before it (None off the GPU)."""
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / MiB


def bench_pyg(model_name, twin, lr, g, data, expected, args, bound_ms, label, budget=None):
    """The same step with PyG on the same GPU, for each input form: its eval output checked against ours
    (``expected``), timed, and its peak memory."""
    op = f"{model_name} step"
    base = dict(model=model_name)
    if "error" in twin:
        return [_row(label, op, "PyG", "peer", note=twin["error"], **base)]
    try:
        import torch
        import torch.nn.functional as F
        from . import pyg_mirror as pm
    except ImportError as e:
        return [_row(label, op, "PyG", "peer", note=f"skipped: {e}", **base)]
    dev = torch.device(TORCH_DEVICE)
    if dev.type == "cuda" and not torch.cuda.is_available():
        return [_row(label, op, "PyG", "peer", note="skipped: torch has no CUDA", **base)]
    dt = getattr(torch, args.dtype)
    rows = []
    x = torch.from_numpy(data[0]).to(dev, dt)
    y, mask = torch.from_numpy(data[1]).to(dev), torch.from_numpy(data[2]).to(dev)
    for form in args.forms:
        impl = f"PyG ({form})"
        if budget is not None and budget.over():
            rows.append(_row(label, op, impl, "peer", note="skipped: time budget spent", **base))
            continue
        adj = net = opt = None
        try:
            adj = pyg_form(form, g, dev)
            net = pm.load_weights(pm.build_chain(twin["desc"]), twin["desc"], twin["params"]).to(dev, dt)
            net.eval()
            with torch.no_grad():
                got = net(x, adj).double().cpu().numpy()
            diff = float(np.max(np.abs(got - expected))) if expected is not None and got.size else None
            matches = expected is None or (got.shape == expected.shape
                                           and np.allclose(got, expected, rtol=1e-3, atol=1e-4))
            del got
            opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)

            def step():
                net.train()
                opt.zero_grad()
                F.cross_entropy(net(x, adj)[mask], y[mask]).backward()
                opt.step()

            ms = torch_times(torch, step, dev, args.repeats, args.warmup, args.piece_seconds)
            peak = torch_peak_MiB(torch, step, dev)
            note = "" if diff is None else f"max |diff| vs ours {diff:.1e}"
            if not matches:
                note += ": computes something else, left out"
            row = _row(label, op, impl, "peer", bound_ms=bound_ms, matches=bool(matches), note=note, **base,
                       **summarize(ms))
            if peak is not None:
                row["peak_MiB"] = peak
            rows.append(row)
        except Exception as e:  # noqa: BLE001 -- out of memory, an input form this layer does not take
            rows.append(_row(label, op, impl, "peer", note=f"failed: {_short(e)}", **base))
        finally:
            adj = net = opt = None
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    x = y = mask = None     # the step closures hold these cells: dropping the tensors frees the GPU memory
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def write_result(path, meta, rows):
    result = dict(meta, rows=rows, targets=targets(rows))
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return result


def _print_rows(rows):
    for r in rows:
        print("  " + format_table([r]).splitlines()[-1], flush=True)


def bench_graph(cuda, N, E, args, bw, memory, budget, rows, write):
    """Every piece on one random graph, each row appended to ``rows`` (and ``write()`` called) as it comes."""
    itemsize = np.dtype(args.dtype).itemsize
    t0 = time.perf_counter()
    g = random_graph(N, E, args.seed)
    label = f"{N:,} nodes / {g.num_edges:,} edges"
    print(f"{label}: built in {time.perf_counter() - t0:.1f} s", flush=True)

    def add(new):
        rows.extend(new)
        _print_rows(new)
        write()

    bound = (lambda nbytes: 1e3 * nbytes / bw) if bw else (lambda nbytes: None)
    add(bench_spmm(cuda, g, args.features, np.dtype(args.dtype), args,
                   bound(spmm_bytes(N, N, g.num_edges, args.features, itemsize)), label, budget))
    memory.flush(cuda)
    data = bench_data(g, args)
    from ..models import MODELS
    for model_name in args.models:
        op = f"{model_name} step"
        if budget.over():
            add([_row(label, op, "gnn_scratch", "ours", model=model_name, note="skipped: time budget spent")])
            continue
        if model_name not in MODELS:
            add([_row(label, op, "gnn_scratch", "ours", model=model_name, note="not registered")])
            continue
        try:
            model, cfg, lr, twin = build_pair(model_name, args)
        except Exception as e:  # noqa: BLE001
            add([_row(label, op, "gnn_scratch", "ours", model=model_name, note=f"failed: {_short(e)}")])
            continue
        step_ms = None
        if model_name == "gcn":
            step_ms = bound(gcn_step_bytes(N, g.num_edges, args.features, cfg["hidden_channels"], args.classes,
                                           itemsize))
        new, expected = bench_ours(cuda, model_name, model, lr, g, data, args, step_ms, label, memory)
        del model
        memory.flush(cuda)
        if not args.no_peers:
            new += bench_pyg(model_name, twin, lr, g, data, expected, args, step_ms, label, budget)
        del expected, twin
        memory.flush(cuda)
        add(new)


def main(argv=None):
    args = parse_args(argv)
    budget = Budget(args.budget)
    manager_class, install_note = install_memory_counter()   # before anything creates the CUDA context
    cuda = require_real_gpu()
    itemsize = np.dtype(args.dtype).itemsize
    ctx = cuda.current_context()
    memory = DeviceMemory.attach(cuda, manager_class, install_note)
    free, total = ctx.get_memory_info()
    name = getattr(cuda.get_current_device(), "name", "unknown GPU")
    name = name.decode() if isinstance(name, bytes) else str(name)
    try:
        bw = copy_bandwidth(cuda)
    except Exception as e:  # noqa: BLE001 -- no bound then, the timings still come
        print(f"copy bandwidth not measured: {_short(e)}", flush=True)
        bw = None
    memory.flush(cuda)
    print(f"{name}: {total / 2 ** 30:.1f} GiB, device-to-device copy "
          + (f"{bw / 1e9:.0f} GB/s" if bw else "not measured") + "; peak memory "
          + ("counted by numba's memory manager" if memory.ok else f"of ours not measured ({memory.reason})"),
          flush=True)
    meta = dict(device=name, memory_GiB=total / 2 ** 30, copy_bandwidth_GBps=bw / 1e9 if bw else None,
                dtype=args.dtype, features=args.features, hidden=args.hidden, classes=args.classes,
                repeats=args.repeats, warmup=args.warmup,
                models={m: dict(zip(("config", "lr"), model_config(m, args.hidden))) for m in args.models},
                weight_decay=WEIGHT_DECAY, memory_counter=memory.ok, memory_note=memory.reason)
    rows = []

    def write():
        return write_result(args.out, meta, rows)

    for N, E in args.sizes:
        label = f"{N:,} nodes / {E:,} edges"
        if budget.over():
            rows.append(dict(graph=label, op="all", impl="-", note="skipped: time budget spent"))
            continue
        widths = [hidden_width(m, model_config(m, args.hidden)[0]) for m in args.models]
        need = gcn_device_bytes(N, E, args.features, max(widths, default=args.hidden), args.classes, itemsize)
        memory.flush(cuda)
        free, _ = ctx.get_memory_info()
        if need > 0.9 * free:
            rows.append(dict(graph=label, op="all", impl="-", note=f"skipped: needs ~{need / 2 ** 30:.1f} GiB, "
                                                                  f"{free / 2 ** 30:.1f} GiB free"))
            write()
            continue
        try:
            bench_graph(cuda, N, E, args, bw, memory, budget, rows, write)
        except Exception as e:  # noqa: BLE001 -- whatever broke, the other graphs still run
            rows.append(dict(graph=label, op="error", impl="-", note=f"failed: {_short(e)}"))
            print(f"{label}: failed: {_short(e)}", flush=True)
        gc.collect()
        memory.flush(cuda)
    result = write()
    print()
    print(format_table(rows))
    print()
    print(format_targets(result["targets"]))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
