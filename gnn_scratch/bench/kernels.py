"""Kernel benchmark: each Numba kernel of ``kernels/cpu.py`` (and the fused GAT kernels when present),
forward and backward, at several feature widths, beside ``scipy.sparse`` and the bytes-moved bound.

For every (kernel, width) one interleaved group times: our kernel, its scipy.sparse peer where one
exists (``A @ X``, ``A.T @ G``), and a large ``np.copyto`` whose bandwidth turns the kernel's
bytes-moved lower bound (``harness.bytes_moved``) into a time. Reported: the medians, the ratio to
scipy, and the achieved fraction of the bound = (bytes / kernel time) / copy bandwidth.

The copy bandwidth is not what a row gather on a random graph can reach: each edge loads a row
from a random place, so the rate is DRAM latency x rows in flight (``scripts/measure_memory_bounds.py``
measures both; on the 2-core EPYC a random 256 B row gather reaches ~1/4 of the copy bandwidth).
So each group also times a pure random row gather (``GatherBandwidth``: rows of an (N_src, F)
matrix at uniform random ids, prefetched as the kernels do, Numba's thread count) and reports the
*gather bound* = gathered rows (``harness.gathered_bytes``) / gather bandwidth + the other bytes /
copy bandwidth, and the kernel's fraction of it.

The max aggregation's backward, where it runs its scatter (``cpu.max_backward_scatters``: every graph
whose grad_X leaves L2), gathers nothing: it streams argmax and grad_out once and adds each gradient
into the grad_X line its argmax names, a random read-modify-write per (destination row, distinct
line), on one thread -- neither the copy nor the gather bandwidth says what that can reach. Its group
times a pure random line update instead (``ScatterBandwidth``: single float32 lines of an (N_src, F)
matrix, prefetched), on one thread as the kernel runs and on Numba's threads, and reports the
*scatter bound* = the kernel's updated lines (``updated_lines``, counted from the argmax it runs on)
x the one-thread time per line + its bytes / copy bandwidth, and the same with the all-thread time
(what a kernel using every core could at best reach).
"""
from __future__ import annotations

import importlib
import inspect

import numpy as np
import scipy.sparse as sp
from numba import get_num_threads, njit, prange

from ..device import host_empty
from ..kernels.prefetch import CACHE_LINE, prefetch_distance, prefetch_line, prefetch_row
from .harness import CopyBandwidth, Shape, bytes_moved, gathered_bytes, interleave, ratio

WIDTHS = (16, 64, 256)
SOFTMAX_HEADS = 8     # edge softmax and fused GAT run with 8 heads (GAT's usual first layer)


GATHER_ROWS = 2_000_000   # rows per timing of the random-gather yardstick (fewer on a smaller graph)


@njit(parallel=True, cache=True, nogil=True)
def gather_rows(X, idx, d, n_chunks, out):
    """out[c] = sum of the rows X[idx[k]] of chunk c of idx (c < n_chunks): a row gather with nothing else to
    do, a software prefetch ``d`` rows ahead when d > 0 (the kernels' ``prefetch_distance(X)``)."""
    M = idx.size
    F = X.shape[1]
    for c in prange(n_chunks):
        lo, hi = M * c // n_chunks, M * (c + 1) // n_chunks
        orow = out[c]
        for f in range(F):
            orow[f] = 0
        for k in range(lo, hi):
            if d > 0 and k + d < hi:
                prefetch_row(X, idx[k + d])
            xrow = X[idx[k]]
            for f in range(F):
                orow[f] += xrow[f]


def aligned(a):
    """A copy of ``a`` starting on a cache line, as the layers' arrays do (``device.host_empty``): timed kernels
    and the gather yardstick read rows laid out as in a model's forward."""
    out = host_empty(a.shape, a.dtype)
    out[...] = a
    return out


class GatherBandwidth:
    """A random row gather from an (n_rows, F) float32 matrix: the ceiling of a row-gathering kernel on a
    graph with no locality (uniform random ids, so it is cached exactly as much as the graph's rows are).

    ``fn`` sums ``min(rows, GATHER_ROWS)`` rows at uniform random ids with the kernels' prefetch;
    bandwidth = gathered bytes / time.
    """

    def __init__(self, n_rows, F, rows, seed=0):
        rng = np.random.default_rng(seed)
        self.X = aligned(rng.standard_normal((n_rows, F), dtype=np.float32))
        self.idx = rng.integers(0, n_rows, max(1, min(rows, GATHER_ROWS))).astype(np.int32)
        self.out = np.empty((64, F), dtype=np.float32)
        self.bytes = self.idx.size * F * 4
        self.ahead = prefetch_distance(self.X)

    def fn(self):
        gather_rows(self.X, self.idx, self.ahead, self.out.shape[0], self.out)

    def bandwidth(self, summary):
        """Bytes per second from the ``summarize`` dict of ``fn``'s timings (median time)."""
        return self.bytes / summary["median"]


SCATTER_LINES = 2_000_000   # line updates per timing of the random-scatter yardstick (fewer on a smaller graph)
# Lines ahead that the scatter yardstick prefetches: 0, 8 and 32 measured on the Intel VM (1M x 64 float32,
# one thread: 31, 21 and 16 ns a line; two: 23, 12 and 9), 32 the best of those tried.
SCATTER_AHEAD = 32


@njit(parallel=True, cache=True, nogil=True)
def scatter_lines(A, rows, cols, d, n_chunks):
    """A[rows[k], cols[k]] += 1 for every k, chunk c (< n_chunks) of k on one thread, with a software prefetch of
    the line ``d`` updates ahead: random single-line read-modify-writes with nothing else to do. The caller draws
    chunk c's rows from its own slice of A's rows (``ScatterBandwidth``), so no two threads write one line."""
    M = rows.size
    item = A.itemsize
    for c in prange(n_chunks):
        lo, hi = M * c // n_chunks, M * (c + 1) // n_chunks
        for k in range(lo, hi):
            if d > 0 and k + d < hi:
                prefetch_line(A, rows[k + d], cols[k + d] * item)
            A[rows[k], cols[k]] += 1


def updated_lines(argmax, itemsize, block=1 << 16):
    """Cache lines ``spmm_max_backward``'s scatter reads and writes back in a C-contiguous grad_X of ``itemsize``-byte
    items starting on a line (``device.host_empty``): per destination row i, the distinct lines holding the
    elements (argmax[i, f], f) with argmax[i, f] >= 0, summed over i (row i adds into several columns of one line
    at once, so a line counts once per row i; two source rows sharing a line, at a width under a line, count once)."""
    n, F = argmax.shape
    col_bytes = np.arange(F, dtype=np.int64) * itemsize
    total = 0
    for r0 in range(0, n, block):
        a = argmax[r0:r0 + block]
        key = np.where(a >= 0, (a.astype(np.int64) * (F * itemsize) + col_bytes) // CACHE_LINE, -1)
        key.sort(axis=1)
        new = np.ones(key.shape, dtype=bool)
        new[:, 1:] = key[:, 1:] != key[:, :-1]
        total += int(np.count_nonzero(new & (key >= 0)))
    return total


class ScatterBandwidth:
    """Random single-line read-modify-writes into an (n_rows, F) float32 matrix: the ceiling of a kernel that adds
    into rows at random (``spmm_max_backward``'s scatter) on a graph with no locality.

    ``fn`` updates ``min(lines, SCATTER_LINES)`` lines -- a uniform random row and a uniform random line of it --
    on ``threads`` threads (default: Numba's count), each in its own slice of the rows, prefetching
    ``SCATTER_AHEAD`` updates ahead; ``seconds_per_line`` = time / lines.
    """

    def __init__(self, n_rows, F, lines, threads=None, seed=0):
        rng = np.random.default_rng(seed)
        self.A = aligned(np.zeros((n_rows, F), dtype=np.float32))
        self.n_chunks = max(1, min(threads or get_num_threads(), n_rows))
        M = self.lines = max(1, min(lines, SCATTER_LINES))
        per_line = max(1, CACHE_LINE // self.A.itemsize)
        self.rows = np.empty(M, dtype=np.int32)
        n = self.n_chunks
        for c in range(n):     # scatter_lines' chunk c runs updates [lo, hi): their rows from chunk c's own rows
            lo, hi = M * c // n, M * (c + 1) // n
            self.rows[lo:hi] = rng.integers(n_rows * c // n, n_rows * (c + 1) // n, hi - lo)
        self.cols = (rng.integers(0, -(-F // per_line), M) * per_line).astype(np.int32)

    def fn(self):
        scatter_lines(self.A, self.rows, self.cols, SCATTER_AHEAD, self.n_chunks)

    def seconds_per_line(self, summary):
        """Seconds per line update from the ``summarize`` dict of ``fn``'s timings (median time)."""
        return summary["median"] / self.lines


def _gat_module():
    try:
        return importlib.import_module("gnn_scratch.kernels.gat_cpu")
    except ImportError:
        return None


def kernel_cases(graph, F, rng, gat=None, count_lines=False):
    """name -> (ours fn, scipy fn or None, bytes-moved kernel name(s), Shape[, lines]) for width F. With
    ``count_lines``, max bwd's case also has ``lines``, the cache lines it updates (``updated_lines``), when it runs
    its one-thread scatter at this size (``cpu.max_backward_scatters``)."""
    from ..kernels import cpu
    g = graph
    N, E = g.num_dst, g.num_edges
    t_indptr, t_indices, t_perm = g.t_indptr, g.t_indices, g.t_perm
    w = rng.random(E, dtype=np.float32) + np.float32(0.5)
    w_t = np.ascontiguousarray(w[t_perm])
    X = aligned(rng.standard_normal((g.num_src, F), dtype=np.float32))
    G = aligned(rng.standard_normal((N, F), dtype=np.float32))
    out_d = host_empty((N, F), np.float32)
    out_s = host_empty((g.num_src, F), np.float32)
    argmax = np.empty((N, F), dtype=np.int64)
    A = sp.csr_matrix((w, g.indices, g.indptr), shape=(N, g.num_src))
    deg = np.maximum(np.diff(g.indptr), 1).astype(np.float32)
    A_mean = sp.csr_matrix((np.repeat(1.0 / deg, np.diff(g.indptr)).astype(np.float32), g.indices, g.indptr),
                           shape=(N, g.num_src))
    cpu.spmm_max(g.indptr, g.indices, X, out_d, argmax)
    argmax_saved = argmax.copy()
    shape = Shape(N, g.num_src, E, F)
    cases = {
        "weighted-sum fwd": (lambda: cpu.spmm_sum(g.indptr, g.indices, w, X, out_d),
                             lambda: A @ X, ["spmm_sum"], shape),
        "weighted-sum bwd": (lambda: cpu.spmm_sum_perm(t_indptr, t_indices, t_perm, w, G, out_s),
                             lambda: A.T @ G, ["spmm_sum_perm"], shape),
        "weighted-sum bwd (pre-permuted)": (lambda: cpu.spmm_sum(t_indptr, t_indices, w_t, G, out_s),
                                            lambda: A.T @ G, ["spmm_sum_t"], shape),
        "mean fwd": (lambda: cpu.spmm_mean(g.indptr, g.indices, X, out_d), lambda: A_mean @ X, ["spmm_mean"], shape),
        "mean bwd": (lambda: cpu.spmm_mean_backward(t_indptr, t_indices, g.indptr, G, out_s),
                     lambda: A_mean.T @ G, ["spmm_mean_backward"], shape),
        "max fwd": (lambda: cpu.spmm_max(g.indptr, g.indices, X, out_d, argmax), None, ["spmm_max"], shape),
        "max bwd": (lambda: cpu.spmm_max_backward(t_indptr, t_indices, argmax_saved, G, out_s), None, ["spmm_max_backward"], shape),
    }
    if count_lines and cpu.max_backward_scatters(out_s):
        cases["max bwd"] += (updated_lines(argmax_saved, out_s.itemsize),)
    # SDDMM, one head at width F: the edge-weight gradient of the weighted sum (an (E, 1) output)
    A3, B3 = G[:, None, :], X[:, None, :]
    e_out = np.empty((E, 1), dtype=np.float32)
    g_e = rng.standard_normal(E, dtype=np.float32)

    def sddmm_bwd():
        cpu.spmm_sum(g.indptr, g.indices, g_e, X, out_d)                    # dA = S B
        cpu.spmm_sum_perm(t_indptr, t_indices, t_perm, g_e, G, out_s)       # dB = S^T A
    cases["SDDMM fwd"] = (lambda: cpu.sddmm_dot(g.indptr, g.indices, A3, B3, e_out), None, ["sddmm_dot"], shape)
    cases["SDDMM bwd"] = (sddmm_bwd, None, ["sddmm_dot_backward"], shape)
    if gat is not None and F % SOFTMAX_HEADS == 0:
        H, Fh = SOFTMAX_HEADS, F // SOFTMAX_HEADS
        Z = X.reshape(g.num_src, H, Fh)
        a_src = aligned(rng.standard_normal((g.num_src, H), dtype=np.float32))
        a_dst = aligned(rng.standard_normal((N, H), dtype=np.float32))
        no_mask = np.zeros((0, H), dtype=np.uint8)
        one, slope = np.float32(1.0), np.float32(0.2)
        out3 = np.empty((N, H, Fh), dtype=np.float32)
        rmax = np.empty((N, H), dtype=np.float32)
        rsum = np.empty((N, H), dtype=np.float32)
        gat.gat_forward(g.indptr, g.indices, a_dst, a_src, Z, slope, no_mask, one, out3, rmax, rsum)
        G3 = G.reshape(N, H, Fh)
        grad_pre = np.empty((E, H), dtype=np.float32)
        gZ = np.empty_like(Z)
        ga_dst, ga_src = np.empty_like(a_dst), np.empty_like(a_src)
        gshape = Shape(N, g.num_src, E, F, H)
        bwd_args = [g.indptr, g.indices, t_indptr, t_indices, t_perm, a_dst, a_src, Z, slope, no_mask, one, rmax,
                    rsum, G3, grad_pre, gZ, ga_dst, ga_src]
        if "alpha_d" in inspect.signature(gat.gat_backward.py_func).parameters:   # (E, H) workspace, newer kernel
            bwd_args.insert(15, np.empty((E, H), dtype=np.float32))
        cases["fused GAT fwd"] = (
            lambda: gat.gat_forward(g.indptr, g.indices, a_dst, a_src, Z, slope, no_mask, one, out3, rmax, rsum),
            None, ["gat_forward"], gshape)
        cases["fused GAT bwd"] = (lambda: gat.gat_backward(*bwd_args), None, ["gat_backward"], gshape)
    return cases


def _softmax_cases(graph, rng):
    from ..kernels import cpu
    g = graph
    E, H = g.num_edges, SOFTMAX_HEADS
    scores = rng.standard_normal((E, H), dtype=np.float32)
    alpha = np.empty_like(scores)
    cpu.edge_softmax(g.indptr, scores, alpha)
    grad = rng.standard_normal((E, H), dtype=np.float32)
    out = np.empty_like(scores)
    shape = Shape(g.num_dst, g.num_src, E, 1, H)
    return {
        "edge softmax fwd": (lambda: cpu.edge_softmax(g.indptr, scores, alpha), None, ["edge_softmax"], shape),
        "edge softmax bwd": (lambda: cpu.edge_softmax_backward(g.indptr, alpha, grad, out), None,
                             ["edge_softmax_backward"], shape),
    }


def _measure(cases, width_label, copy, repeats, warmup, log, graph_label, min_time=0.2, max_time=None,
             gather=None, scatter=()):
    """Rows for ``cases``; ``scatter`` = (one-thread yardstick[, all-thread yardstick]), timed in a group whose case
    has a line count (max bwd's scatter)."""
    rows = []
    for name, (ours, peer, kinds, shape, *lines) in cases.items():
        lines = lines[0] if lines and scatter else None
        fns = {"ours": ours, "copy": copy.fn}
        if peer is not None:
            fns["scipy"] = peer
        if gather is not None:
            fns["gather"] = gather.fn
        if lines is not None:
            for key, yardstick in zip(("scatter", "scatter_all"), scatter):
                fns[key] = yardstick.fn
        try:
            res = interleave(fns, repeats=repeats, warmup=warmup, min_time=min_time, max_time=max_time)
        except Exception as e:   # noqa: BLE001 -- a kernel still being written must not stop the run
            rows.append(dict(graph=graph_label, kernel=name, width=width_label, error=f"{type(e).__name__}: {e}"))
            if log:
                log(f"  {name:34s} {str(width_label):>5}  failed: {type(e).__name__}: {e}")
            continue
        nbytes = sum(bytes_moved(k, shape) for k in kinds)
        bw = copy.bandwidth(res["copy"])
        bound_s = nbytes / bw
        row = dict(graph=graph_label, kernel=name, width=width_label, ours=res["ours"], scipy=res.get("scipy"),
                   copy=res["copy"], copy_bandwidth_gbs=bw / 1e9, bytes=int(nbytes), bound_s=bound_s,
                   fraction_of_bound=bound_s / res["ours"]["median"],
                   speedup_vs_scipy=(1.0 / ratio(res["ours"], res["scipy"])) if "scipy" in res else None)
        gb = ""
        if gather is not None:
            gbw = gather.bandwidth(res["gather"])
            g_bytes = sum(gathered_bytes(k, shape) for k in kinds)
            g_bound = g_bytes / gbw + (nbytes - g_bytes) / bw
            row.update(gather=res["gather"], gather_bandwidth_gbs=gbw / 1e9, gathered_bytes=int(g_bytes),
                       gather_bound_s=g_bound, fraction_of_gather_bound=g_bound / res["ours"]["median"])
            gb = f"  gather bound {100 * row['fraction_of_gather_bound']:5.1f} %"
        if lines is not None:
            row["updated_lines"] = int(lines)
            for key, yardstick in zip(("scatter", "scatter_all"), scatter):
                per_line = yardstick.seconds_per_line(res[key])
                s_bound = lines * per_line + nbytes / bw
                row.update({key: res[key], f"{key}_threads": yardstick.n_chunks, f"{key}_ns_per_line": 1e9 * per_line,
                            f"{key}_bound_s": s_bound, f"fraction_of_{key}_bound": s_bound / res["ours"]["median"]})
                gb += f"  {key.replace('_', ' ')} bound {100 * row[f'fraction_of_{key}_bound']:5.1f} %"
        rows.append(row)
        if log:
            sc = f"  scipy {1e3 * res['scipy']['median']:.2f} ms" if "scipy" in res else ""
            log(f"  {name:34s} {str(width_label):>5}  ours {1e3 * res['ours']['median']:9.2f} ms{sc}  "
                f"bound {100 * row['fraction_of_bound']:5.1f} %{gb}")
    return rows


def run(specs, widths=WIDTHS, repeats=5, warmup=1, copy_mb=256, min_time=0.2, log=print, data_root=None,
        widths_by_graph=None, max_time=None):
    """The kernel rows for every graph of ``specs`` (their CSR and transpose built first).

    ``widths_by_graph`` (graph name -> widths) narrows the widths of some graphs (the 1M-node graph
    runs at the target's width only); ``max_time`` caps the seconds of one interleaved group.
    """
    from ..graph import Graph
    from .harness import random_edge_index
    gat = _gat_module()
    rows, graphs = [], []
    for spec in specs:
        if spec.kind == "planetoid":
            from ..data import get_dataset
            graph = get_dataset(spec.name, root=data_root).graph
        else:
            graph = Graph.from_edge_index(random_edge_index(spec.num_nodes, spec.num_edges, spec.seed),
                                          num_nodes=spec.num_nodes)
        graph.t_perm  # build the cached transpose outside the timings
        if log:
            log(f"kernels on {spec.label} (E = {graph.num_edges})")
        rng = np.random.default_rng(0)
        copy = CopyBandwidth(copy_mb * 2 ** 20)
        for F in (widths_by_graph or {}).get(spec.name, widths):
            cases = kernel_cases(graph, F, rng, gat, count_lines=True)
            gather = GatherBandwidth(graph.num_src, F, graph.num_edges)
            lines = max((c[4] for c in cases.values() if len(c) > 4), default=0)
            # the kernel's scatter runs on one thread: its bound, and what every thread could reach
            scatter = tuple(ScatterBandwidth(graph.num_src, F, lines, threads=t)
                            for t in sorted({1, get_num_threads()})) if lines else ()
            rows += _measure(cases, F, copy, repeats, warmup, log, spec.label, min_time, max_time, gather, scatter)
            del cases, gather, scatter
        rows += _measure(_softmax_cases(graph, rng), f"H={SOFTMAX_HEADS}", copy, repeats, warmup, log, spec.label,
                         min_time, max_time)
        graphs.append(dict(name=spec.name, label=spec.label, num_nodes=graph.num_nodes, num_edges=graph.num_edges))
        del graph, copy
    return dict(rows=rows, graphs=graphs, widths=list(widths), gat_fused=gat is not None,
                copy_mb=copy_mb, repeats=repeats, warmup=warmup)
