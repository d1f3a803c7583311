"""The machine's own memory limits, and the aggregation kernels against them (issue 19 item 3).

    taskset -c 0 env NUMBA_NUM_THREADS=1 python scripts/measure_memory_bounds.py --part machine
    taskset -c 0 env NUMBA_NUM_THREADS=1 python scripts/measure_memory_bounds.py --part kernels   # 1M / 10M
    env NUMBA_NUM_THREADS=2 python scripts/measure_memory_bounds.py --threads 1,2 ...     # thread scaling

Machine part (Numba microbenchmarks, every number the median of ``--repeats``):

* sequential read (sum of a 512 MB float32 array) and copy, per thread count: the streaming bound;
* random row gather: sum of ``M`` rows of width ``F`` (float32, 256 B at F = 64) of an (N, F) matrix
  at uniformly random independent indices, with a software prefetch ``d`` rows ahead (d = 0: only
  what the out-of-order core finds by itself) -- the ceiling of a row-gathering kernel on a graph
  with no locality;
* pointer chase: k independent chains through a random cyclic permutation, each step loading one
  whole row whose first element names the next row -- exactly k row loads in flight, so k = 1 gives
  the DRAM latency and the curve over k gives the bandwidth Little's law allows (rows in flight x
  row bytes / latency).

Kernel part: every aggregation kernel of ``kernels/cpu.py`` at width ``--width`` on a uniform random
graph, timed interleaved with a large ``np.copyto``: achieved GB/s by ``bench.harness.bytes_moved``,
the fraction of the copy bound (what BENCHMARKS.md reports) and of the random-gather ceiling.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from numba import config, get_num_threads, njit, prange, set_num_threads

from gnn_scratch.bench.kernels import gather_rows   # the bench's yardstick, with the prefetch distance as an argument
from gnn_scratch.tasks import options

_PAR = dict(parallel=True, nogil=True, cache=True)
_SER = dict(nogil=True, cache=True)


# ------------------------------------------------------------------------------------ timing
def median_time(fn, repeats=7, warmup=1):
    """(median, best) seconds of ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(np.min(ts))


def interleaved(fns, repeats=7, warmup=1):
    """name -> median seconds, the functions run A B C, A B C, ... after ``warmup`` rounds."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            ts[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in ts.items()}


# ------------------------------------------------------------------------------------ streaming
@njit(fastmath=True, **_SER)
def _sum(a):
    s0 = np.float32(0)
    for k in range(a.size):    # fastmath: vectorised (a prange body would not be)
        s0 += a[k]
    return s0


@njit(**_PAR)
def stream_read(a, n_chunks):
    n = a.size
    acc = np.zeros(n_chunks, dtype=np.float32)
    for c in prange(n_chunks):
        acc[c] = _sum(a[n * c // n_chunks:n * (c + 1) // n_chunks])
    return acc.sum()


@njit(**_PAR)
def stream_copy(src, dst, n_chunks):
    n = src.size
    for c in prange(n_chunks):
        lo, hi = n * c // n_chunks, n * (c + 1) // n_chunks
        dst[lo:hi] = src[lo:hi]


# ------------------------------------------------------------------------------------ random gather
@njit(**_PAR)
def chase(Xi, starts, steps, n_chunks):
    """k = starts.shape[1] pointer chains per chunk through Xi[:, 0]; each step reads the whole row."""
    k = starts.shape[1]
    F = Xi.shape[1]
    tot = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        cur = starts[c].copy()
        s = 0
        for _ in range(steps):
            for q in range(k):
                row = Xi[cur[q]]
                for f in range(16, F, 16):   # touch every other line of the row (independent of the pointer)
                    s += row[f]
                cur[q] = row[0]
        tot[c] = s + cur.sum()
    return tot.sum()


def machine(args, log):
    """The limits above; returns name -> bytes/s (best of the repeats: a ceiling, not a typical value)."""
    res = {}
    threads = args.threads
    a = np.ones(128 * 2 ** 20, dtype=np.float32)          # 512 MB
    b = np.empty_like(a)
    for t in threads:
        set_num_threads(t)
        tr, trb = median_time(lambda: stream_read(a, 64), args.repeats)
        tc, tcb = median_time(lambda: stream_copy(a, b, 64), args.repeats)
        res[f"read_{t}t"] = a.nbytes / trb
        res[f"copy_{t}t"] = 2 * a.nbytes / tcb
        log(f"stream {t} thread(s): read {a.nbytes / tr / 1e9:6.2f} GB/s (best {a.nbytes / trb / 1e9:6.2f})   "
            f"copy (2 x bytes) {2 * a.nbytes / tc / 1e9:6.2f} GB/s (best {2 * a.nbytes / tcb / 1e9:6.2f})")
    tnp, tnpb = median_time(lambda: np.copyto(b, a), args.repeats)
    res["np_copyto"] = 2 * a.nbytes / tnpb
    log(f"np.copyto 512 MB (the harness' yardstick, 1 thread): {2 * a.nbytes / tnp / 1e9:6.2f} GB/s "
        f"(best {2 * a.nbytes / tnpb / 1e9:6.2f})")
    a = b = None     # free 1 GB before the gather

    N, F = args.nodes, args.width
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, F), dtype=np.float32)
    M = min(args.edges, 4_000_000)
    idx = rng.integers(0, N, M).astype(np.int32)
    row_bytes = F * 4
    log(f"random row gather: X {N} x {F} float32 ({X.nbytes / 2 ** 20:.0f} MB), {M} rows of {row_bytes} B")
    for t in threads:
        set_num_threads(t)
        out = np.empty((64, F), dtype=np.float32)
        for d in (0, 4, 8, 16, 32):
            tg, tgb = median_time(lambda: gather_rows(X, idx, d, 64, out), args.repeats)
            res[f"gather_{t}t_d{d}"] = M * row_bytes / tgb
            log(f"  {t} thread(s) prefetch {d:2d} rows ahead: {M * row_bytes / tg / 1e9:6.2f} GB/s of rows "
                f"(best {M * row_bytes / tgb / 1e9:6.2f}), {1e9 * tg / M * t:6.1f} ns per row per thread")
    X = None
    # pointer chase: a random cyclic permutation stored in column 0
    Xi = np.zeros((N, F), dtype=np.int32)
    perm = rng.permutation(N).astype(np.int32)
    Xi[perm, 0] = np.roll(perm, -1)
    log(f"pointer chase through {N} rows of {row_bytes} B (k chains = k rows in flight per thread)")
    for t in threads:
        set_num_threads(t)
        for k in (1, 2, 4, 8, 16, 32):
            steps = max(20_000, 400_000 // k)
            starts = perm[rng.integers(0, N, (t, k))].astype(np.int32)
            tch, tchb = median_time(lambda: chase(Xi, starts, steps, t), args.repeats)
            res[f"chase_{t}t_k{k}"] = (tchb / steps * 1e9, t * k * steps * row_bytes / tchb)
            log(f"  {t} thread(s) k = {k:2d}: {tch / steps * 1e9:6.1f} ns per dependent row load "
                f"(best {tchb / steps * 1e9:6.1f}), {t * k * steps * row_bytes / tch / 1e9:6.2f} GB/s of rows "
                f"(best {t * k * steps * row_bytes / tchb / 1e9:6.2f})")
    return res


# ------------------------------------------------------------------------------------ kernels
def load_graph(N, E, seed=0):
    """The bench's random graph (bench.harness.random_edge_index), CSR cached under /tmp between runs."""
    from gnn_scratch.bench.harness import random_edge_index
    from gnn_scratch.graph import Graph
    path = f"/tmp/gnn_bound_{N}_{E}_{seed}.npz"
    if os.path.exists(path):
        z = np.load(path)
        return Graph.from_csr(z["indptr"], z["indices"], num_src=N)
    g = Graph.from_edge_index(random_edge_index(N, E, seed), num_nodes=N)
    np.savez(path, indptr=g.indptr, indices=g.indices)
    return g


# The aggregation kernels of the bench's kernel groups (bench.kernels.kernel_cases: the same inputs).
AGGREGATION = ("weighted-sum fwd", "weighted-sum bwd", "weighted-sum bwd (pre-permuted)", "mean fwd", "mean bwd",
               "max fwd", "max bwd")


def kernels(args, log, gather_bw=None):
    from gnn_scratch.bench.harness import CopyBandwidth, bytes_moved
    t0 = time.perf_counter()
    g = load_graph(args.nodes, args.edges)
    g.t_perm
    log(f"graph {args.nodes} nodes / {g.num_edges} edges ready in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(0)
    from gnn_scratch.bench.kernels import kernel_cases
    cases = {k: v for k, v in kernel_cases(g, args.width, rng).items() if k in AGGREGATION}
    copy = CopyBandwidth(256 * 2 ** 20)
    rows = []
    for t in args.threads:
        set_num_threads(t)
        for name, (fn, _, kinds, shape, *_) in cases.items():
            if args.only and not any(o in name for o in args.only):
                continue
            m = interleaved({"k": fn, "copy": copy.fn}, args.repeats)
            nbytes = sum(bytes_moved(k, shape) for k in kinds)
            bw_copy = copy.bytes / m["copy"]
            ach = nbytes / m["k"]
            extra = f"  {100 * ach / gather_bw[t]:5.1f} % of random-gather" if gather_bw else ""
            log(f"  {t}t {name:34s} {1e3 * m['k']:8.1f} ms  {ach / 1e9:5.2f} GB/s  copy {bw_copy / 1e9:5.2f} GB/s  "
                f"{100 * ach / bw_copy:5.1f} % of copy bound{extra}")
            rows.append((t, name, m["k"], ach, bw_copy))
    return rows


def _thread_counts(text):
    """argparse type of --threads: comma-separated positive integers."""
    try:
        return [options.check("positive_int", int(t), "threads") for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated thread counts (positive integers), "
                                         f"got {text!r}") from None


def main():
    p = options.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default="all", choices=["machine", "kernels", "all"])
    p.add_argument("--nodes", type=options.positive_int, default=1_000_000)
    p.add_argument("--edges", type=options.positive_int, default=10_000_000)
    p.add_argument("--width", type=options.positive_int, default=64)
    p.add_argument("--threads", default=None, type=_thread_counts,
                   help="comma-separated thread counts (default: Numba's count)")
    p.add_argument("--repeats", type=options.positive_int, default=7)
    p.add_argument("--only", action="append", default=[], help="kernel names containing this (repeatable)")
    args = p.parse_args()
    args.threads = args.threads or [get_num_threads()]
    if max(args.threads) > config.NUMBA_NUM_THREADS:
        p.error(f"argument --threads: expected thread counts of at most {config.NUMBA_NUM_THREADS} "
                f"(NUMBA_NUM_THREADS), got {max(args.threads)}")
    log = lambda s: print(s, flush=True)   # noqa: E731
    gather_bw = None
    if args.part in ("machine", "all"):
        res = machine(args, log)
        gather_bw = {t: max(v for k, v in res.items() if k.startswith(f"gather_{t}t")) for t in args.threads}
    if args.part in ("kernels", "all"):
        kernels(args, log, gather_bw)


if __name__ == "__main__":
    main()
