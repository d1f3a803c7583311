"""Full attention on one graph of N nodes: peak memory and time of the fused kernels, the dense reference, torch.

Three contenders compute one forward and one backward of multi-head self-attention over a
single graph (graph_ptr = [0, N]), Q, K, V, dO (N, H, d) standard normal, scale 1 / sqrt(d):

* ``fused`` -- ``ops.flash_attention`` + ``ops.flash_attention_backward`` (the Numba kernels of
  ``kernels/attention_cpu.py``): O(N H d) memory;
* ``dense`` -- ``kernels/attention_reference.dense_attention`` + ``dense_attention_backward``: the
  definition, NumPy / BLAS, holding the (H, N, N) scores (two such arrays at the backward's
  peak: P and dP, which becomes dS in place; the backward recomputes P, it does not keep it);
* ``torch`` -- ``torch.nn.functional.scaled_dot_product_attention`` on (1, H, N, d) tensors and
  ``backward``. On the CPU, without a mask or dropout, torch 2.x runs its own fused
  flash-attention kernel. Time only (tracemalloc cannot see torch's allocations).

Every measurement runs in a fresh process (``python -m gnn_scratch.bench.attention
{memory,time} ...``), so that no allocator cache of an earlier, larger run hides or inflates a
peak, and no thread pool of another library (torch's OpenMP threads spin after each parallel
region) shares the cores with the one being timed. Inside, the inputs are made and the code is
warmed up on a small graph (compilation, BLAS and torch set-up out of the way) first.

**Memory** (``memory_row``): the peak of one forward + backward, read two ways:
``traced_peak_bytes``, the peak of ``tracemalloc`` (every NumPy allocation, exactly, and nothing
else: what the formulas of derivations/flash_attention.md section 7 predict), and
``rss_peak_bytes``, the growth of the resident set's high-water mark (VmHWM of /proc/self/status,
reset just before through /proc/self/clear_refs): what the machine really gave, BLAS buffers and
Numba's allocations included. Both count the outputs (O, L, the gradients), not the inputs.
``dense`` is skipped (a row with ``skipped``) where its two (H, N, N) arrays would exceed
``dense_limit`` (8 GiB by default).

**Time** (``time_row``): forward and backward timed apart, ``repeats`` runs after the warm-up
(fewer when they pass ``max_time`` seconds); median and minimum. The process gets ``threads``
threads for everything: ``NUMBA_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and
``torch.set_num_threads``. ``run`` does both parts and returns rows (dicts with ``part`` =
"attention" and ``kind`` = "memory" or "time"); ``format_tables`` prints them as markdown.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np

SIZES = (1024, 2048, 4096, 8192, 16384, 32768, 65536)    # nodes of the one graph, memory table
TIME_SIZES = (1024, 2048, 4096, 8192, 16384)             # time table
DENSE_LIMIT = 8 << 30                                     # bytes of (H, N, N) arrays the dense reference may hold
CONTENDERS = ("fused", "dense", "torch")
WARMUP_N = 256


def dense_bytes(N, H, itemsize):
    """Bytes of the dense backward's two (H, N, N) arrays: its peak, up to O(N H d) terms."""
    return 2 * H * N * N * itemsize


def fused_bytes(N, H, d, itemsize):
    """Bytes the fused forward + backward allocate at their peak, the backward's (derivations/flash_attention.md,
    section 7): O, dQ, dK, dV (N H d each, with dv = d), L and D (N H each), graph_ptr's copy and the
    per-thread tile workspace (independent of N)."""
    from ..kernels import attention_cpu
    Br, Bc = attention_cpu.tile_sizes(d, d)
    ws = attention_cpu._workspace(Br, Bc, d, d, np.dtype(f"f{itemsize}")).nbytes
    return (4 * N * H * d + 2 * N * H) * itemsize + 16 + ws


def _inputs(N, H, d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((N, H, d), dtype=np.float32).astype(dtype, copy=False) for _ in range(4)]


def _contender(impl, N, H, d, dtype, seed=0):
    """(forward, backward): two functions running ``impl`` on fresh inputs of one graph of N nodes; backward
    uses what the last forward left."""
    Q, K, V, dO = _inputs(N, H, d, dtype, seed)
    ptr = np.array([0, N], dtype=np.int64)
    state = {}
    if impl == "fused":
        from .. import ops

        def forward():
            state["OL"] = ops.flash_attention(Q, K, V, ptr)

        def backward():
            return ops.flash_attention_backward(dO, Q, K, V, *state.pop("OL"), ptr)
    elif impl == "dense":
        from ..kernels.attention_reference import dense_attention, dense_attention_backward

        def forward():
            state["OL"] = dense_attention(Q, K, V, ptr)

        def backward():
            state.pop("OL")
            return dense_attention_backward(dO, Q, K, V, ptr)
    elif impl == "torch":
        import torch
        t = [torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2)))[None] for x in (Q, K, V, dO)]
        for x in t[:3]:
            x.requires_grad_(True)

        def forward():
            for x in t[:3]:
                x.grad = None
            state["out"] = torch.nn.functional.scaled_dot_product_attention(t[0], t[1], t[2])

        def backward():
            state.pop("out").backward(t[3])
            return t[0].grad, t[1].grad, t[2].grad
    else:
        raise ValueError(f"impl must be one of {CONTENDERS}, got {impl!r}")
    return forward, backward


def _both(impl, N, H, d, dtype, seed=0):
    forward, backward = _contender(impl, N, H, d, dtype, seed)

    def fn():
        forward()
        return backward()
    return fn


def _setup(impl, H, d, dtype):
    """Torch gets Numba's thread count; everything is run once on a small graph."""
    if impl == "torch":
        import numba
        import torch
        torch.set_num_threads(numba.get_num_threads())
    _both(impl, WARMUP_N, H, d, dtype, seed=1)()


def _status(key):
    """A size of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak():
    """Reset VmHWM to the current resident size (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_memory(impl, N, H=1, d=64, dtype="float32"):
    """Peak memory of one forward + backward of ``impl`` in *this* process: a row (see the module docstring).

    Run it in a fresh process (``memory_row`` does): what earlier work left in the allocator changes the
    resident-set numbers (tracemalloc's are exact anywhere).
    """
    dtype = np.dtype(dtype)
    _setup(impl, H, d, dtype)
    fn = _both(impl, N, H, d, dtype)
    gc.collect()
    base = _status("VmRSS")
    reset = _reset_peak()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = _status("VmHWM") - base
    del out
    return dict(part="attention", kind="memory", impl=impl, N=N, H=H, d=d, dtype=dtype.name,
                traced_peak_bytes=None if impl == "torch" else int(traced),
                rss_peak_bytes=int(rss) if reset else None, seconds=seconds)


def measure_time(impl, N, H=1, d=64, dtype="float32", repeats=3, max_time=60.0):
    """Forward and backward times of ``impl`` in *this* process: a row with the medians and minima."""
    import numba
    dtype = np.dtype(dtype)
    _setup(impl, H, d, dtype)
    forward, backward = _contender(impl, N, H, d, dtype)
    fwd, bwd = [], []
    start = time.perf_counter()
    while len(fwd) < max(1, repeats):
        gc.collect()
        t0 = time.perf_counter()
        forward()
        t1 = time.perf_counter()
        backward()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        if time.perf_counter() - start > max_time:
            break
    total = np.add(fwd, bwd)
    return dict(part="attention", kind="time", impl=impl, N=N, H=H, d=d, dtype=dtype.name,
                threads=int(numba.get_num_threads()), forward_s=float(np.median(fwd)),
                backward_s=float(np.median(bwd)), median_s=float(np.median(total)), min_s=float(total.min()),
                n=len(fwd))


def _subprocess(args, base, threads=None, timeout=900):
    """``python -m gnn_scratch.bench.attention *args`` in a fresh process: its JSON row, or ``base`` + error."""
    env = dict(os.environ)
    if threads is not None:
        for key in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[key] = str(threads)
    cmd = [sys.executable, "-m", "gnn_scratch.bench.attention", *map(str, args)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(base, error=f"timed out after {timeout} s")
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return dict(base, error=f"exit {res.returncode}: {' | '.join(tail)}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def memory_row(impl, N, H=1, d=64, dtype="float32", timeout=900):
    """``measure_memory`` in a fresh process (this interpreter, niceness inherited): the row, or one with ``error``."""
    base = dict(part="attention", kind="memory", impl=impl, N=N, H=H, d=d, dtype=np.dtype(dtype).name)
    return _subprocess(("memory", impl, N, H, d, np.dtype(dtype).name), base, timeout=timeout)


def time_row(impl, N, H=1, d=64, dtype="float32", repeats=3, threads=None, timeout=900):
    """``measure_time`` in a fresh process with ``threads`` threads for Numba, BLAS and torch (None: inherited)."""
    base = dict(part="attention", kind="time", impl=impl, N=N, H=H, d=d, dtype=np.dtype(dtype).name,
                threads=threads)
    return _subprocess(("time", impl, N, H, d, np.dtype(dtype).name, repeats), base, threads, timeout)


def _skip(kind, impl, N, H, d, dtype, limit, **extra):
    need = dense_bytes(N, H, np.dtype(dtype).itemsize)
    return dict(part="attention", kind=kind, impl=impl, N=N, H=H, d=d, dtype=np.dtype(dtype).name, **extra,
                skipped=f"needs {need / 2**30:.0f} GiB > {limit / 2**30:.0f} GiB")


def run(sizes=SIZES, time_sizes=TIME_SIZES, H=1, d=64, dtype="float32", repeats=3, threads=(1, None),
        contenders=CONTENDERS, dense_limit=DENSE_LIMIT, log=print):
    """Memory rows (fused and dense for each N of ``sizes``) and time rows (each contender, each N of
    ``time_sizes``, each thread count of ``threads``; None = the machine's default), every measurement in
    its own process; ``part`` = "attention" in every row. ``log`` gets one line per row."""
    import numba
    itemsize = np.dtype(dtype).itemsize
    threads = [numba.config.NUMBA_NUM_THREADS if t is None else int(t) for t in threads]
    rows = []

    def add(row):
        rows.append(row)
        log(_describe(row))

    for N in sizes:
        for impl in ("fused", "dense"):
            if impl == "dense" and dense_bytes(N, H, itemsize) > dense_limit:
                add(_skip("memory", impl, N, H, d, dtype, dense_limit))
            else:
                add(memory_row(impl, N, H, d, dtype))
    for t in threads:
        for k, N in enumerate(time_sizes):
            order = contenders if k % 2 == 0 else contenders[::-1]     # neither always first after the other
            for impl in order:
                if impl == "dense" and dense_bytes(N, H, itemsize) > dense_limit:
                    add(_skip("time", impl, N, H, d, dtype, dense_limit, threads=t))
                else:
                    add(time_row(impl, N, H, d, dtype, repeats, t))
    return rows


def _describe(row):
    head = f"attention {row['kind']}: {row['impl']:5s} N = {row['N']:6d}"
    if row["kind"] == "time":
        head += f", {row.get('threads')} thread(s)"
    if "skipped" in row:
        return f"{head}: skipped ({row['skipped']})"
    if "error" in row:
        return f"{head}: {row['error']}"
    if row["kind"] == "memory":
        return (f"{head}: traced {_mib(row.get('traced_peak_bytes'))} MiB, resident {_mib(row.get('rss_peak_bytes'))} "
                f"MiB, {row['seconds']:.2f} s")
    return (f"{head}: forward {row['forward_s']:.3f} s + backward {row['backward_s']:.3f} s, total median "
            f"{row['median_s']:.3f} s (min {row['min_s']:.3f}, {row['n']} runs)")


def _mib(v):
    return "-" if v is None else f"{v / 2**20:,.1f}"


def format_tables(rows):
    """Markdown: peak memory by N (fused, dense); then per thread count, time by N (fused, dense, torch)."""
    mem = {(r["N"], r["impl"]): r for r in rows if r["kind"] == "memory"}
    out = []
    if mem:
        out += ["| N | fused: traced (MiB) | fused: resident (MiB) | fused: one run (s) | dense: traced (MiB) | "
                "dense: resident (MiB) | dense: one run (s) | dense / fused (traced) |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for N in sorted({n for n, _ in mem}):
            cells = [f"{N:,}"]
            for impl in ("fused", "dense"):
                r = mem.get((N, impl), {})
                if "skipped" in r or "error" in r or not r:
                    cells += [r.get("skipped", r.get("error", "-")), "", ""]
                else:
                    cells += [_mib(r.get("traced_peak_bytes")), _mib(r.get("rss_peak_bytes")), f"{r['seconds']:.2f}"]
            f = mem.get((N, "fused"), {}).get("traced_peak_bytes")
            g = mem.get((N, "dense"), {}).get("traced_peak_bytes")
            cells.append("-" if not f or not g else f"{g / f:,.0f}")
            out.append("| " + " | ".join(cells) + " |")
    tim = [r for r in rows if r["kind"] == "time"]
    for t in sorted({r.get("threads") for r in tim}, key=lambda v: (v is None, v or 0)):
        sel = {(r["N"], r["impl"]): r for r in tim if r.get("threads") == t}
        label = f"{t} thread{'s' if t != 1 else ''}"
        out += ["", f"Time, forward + backward, {label} (median; forward / backward in brackets):", "",
                "| N | fused (s) | dense (s) | torch SDPA (s) | dense / fused | torch / fused |",
                "| ---: | ---: | ---: | ---: | ---: | ---: |"]
        for N in sorted({n for n, _ in sel}):
            med = {i: sel.get((N, i), {}).get("median_s") for i in CONTENDERS}
            cells = [f"{N:,}"]
            for i in CONTENDERS:
                r = sel.get((N, i), {})
                cells.append("-" if med[i] is None else
                             f"{med[i]:.3f} ({r['forward_s']:.3f} / {r['backward_s']:.3f})")
            cells += [("-" if med[i] is None or not med["fused"] else f"{med[i] / med['fused']:.2f}")
                      for i in ("dense", "torch")]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    # python -m gnn_scratch.bench.attention memory IMPL N H d DTYPE | time IMPL N H d DTYPE REPEATS: one JSON line
    usage = ("usage: python -m gnn_scratch.bench.attention memory {fused,dense,torch} N H d DTYPE\n"
             "       python -m gnn_scratch.bench.attention time {fused,dense,torch} N H d DTYPE REPEATS")
    argv = sys.argv[1:]
    if len(argv) == 6 and argv[0] == "memory":
        print(json.dumps(measure_memory(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5])))
    elif len(argv) == 7 and argv[0] == "time":
        print(json.dumps(measure_time(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5], int(argv[6]))))
    else:
        raise SystemExit(usage)
