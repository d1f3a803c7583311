"""GPU benchmark: gnn_scratch's numba.cuda kernels and training steps beside cuSPARSE and PyG, one GPU.

    python scripts/bench_gpu.py --out gpu.json

Measures, on random graphs (default 1M nodes / 10M edges and 10M nodes / 100M edges, each skipped
when the GPU has too little memory for it):

* **aggregation**: ``kernels.cuda.spmm_sum`` (out = A X, F features) beside cuSPARSE SpMM through
  CuPy (``cupyx.scipy.sparse.csr_matrix @ X``, same CSR arrays, zero copy), when CuPy is installed;
* **training step**: one full-batch GCN step (forward, masked cross-entropy, backward, Adam) of
  gnn_scratch on the device beside PyG's ``GCNConv`` (cached normalisation) on the same GPU, when
  torch with CUDA and torch_geometric are installed; SAGE and GAT too where registered and able to
  run on the device (otherwise the row says why);
* **the memory roofline**: a lower bound on the bytes each operation must move (``spmm_bytes``,
  ``gcn_step_bytes``) divided by the measured device-to-device copy bandwidth -- the time no
  implementation can beat -- and each measured time's ratio to it.

Timing: CUDA events around each repetition after warm-up (compilation excluded), the device
synchronised; reported as median and min-max over ``--repeats``. Writes JSON (``--out``) and
prints a Markdown table. Needs a real NVIDIA GPU with numba-cuda: without one (or under the
numba CUDA simulator) it stops at once with a one-line error and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

NO_GPU = ("error: no CUDA GPU available; the GPU benchmark needs an NVIDIA GPU with numba-cuda "
          "(pip install '.[cuda]')")
SUFFIX = {"": 1, "k": 10 ** 3, "K": 10 ** 3, "m": 10 ** 6, "M": 10 ** 6, "g": 10 ** 9, "G": 10 ** 9}


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
        sizes.append((n, e))
    return sizes


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu.json", help="JSON file to write (default gpu.json)")
    p.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1M:10M,10M:100M"),
                   help="comma-separated NODES:EDGES graphs (default 1M:10M,10M:100M)")
    p.add_argument("--features", type=int, default=64, help="F: input features, and SpMM width (default 64)")
    p.add_argument("--hidden", type=int, default=16, help="hidden channels (default 16)")
    p.add_argument("--classes", type=int, default=8, help="output classes (default 8)")
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first (default 3)")
    p.add_argument("--models", default="gcn,sage,gat", help="models to time, if registered (default gcn,sage,gat)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--no-peers", action="store_true", help="skip CuPy and PyG")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("features", "hidden", "classes", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be non-negative")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    return args


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


def format_table(rows):
    """Markdown table of result rows (dicts with graph, op, impl, median, min, max, bound_ms, note)."""
    head = ["graph", "operation", "implementation", "median ms", "min-max ms", "bound ms", "x bound", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        med = r.get("median")
        timed = med is not None and math.isfinite(med)
        bound = r.get("bound_ms")
        cells = [r.get("graph", ""), r.get("op", ""), r.get("impl", ""),
                 f"{med:.3f}" if timed else "-",
                 f"{r['min']:.3f}-{r['max']:.3f}" if timed else "-",
                 f"{bound:.3f}" if bound else "-",
                 f"{med / bound:.1f}" if timed and bound else "-",
                 r.get("note", "")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


# ======================================================================================= the GPU
def require_real_gpu():
    """Exit with status 2 and the one-line error unless numba-cuda sees a real GPU (not the simulator)."""
    try:
        from gnn_scratch.kernels import cuda as ck
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


def time_events(cuda, fn, repeats, warmup):
    """Milliseconds of ``fn()`` per repetition, between CUDA events, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    out = []
    for _ in range(repeats):
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        out.append(cuda.event_elapsed_time(start, stop))
    return out


def copy_bandwidth(cuda, nbytes=1 << 30, repeats=10):
    """Device-to-device copy bandwidth in bytes/s (read + write counted), median over ``repeats``."""
    n = nbytes // 4
    src = cuda.device_array(n, dtype=np.float32)
    dst = cuda.device_array(n, dtype=np.float32)
    ms = time_events(cuda, lambda: dst.copy_to_device(src), repeats, 2)
    return 2 * n * 4 / (float(np.median(ms)) / 1e3)


def random_graph(N, E, seed):
    """A random directed graph with about E edges: Poisson in-degrees, uniform sources (CSR built directly)."""
    from gnn_scratch.graph import Graph
    rng = np.random.default_rng(seed)
    deg = rng.poisson(E / N, size=N)
    indptr = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(deg, out=indptr[1:])
    indices = rng.integers(0, N, size=int(indptr[-1]), dtype=np.int32)
    return Graph(indptr, indices, num_src=N, _validated=True)


def bench_spmm(cuda, g, F, dtype, args, bound_ms, label):
    from gnn_scratch.kernels import cuda as ck
    rng = np.random.default_rng(args.seed)
    d_indptr, d_indices = cuda.to_device(g.indptr), cuda.to_device(g.indices)
    d_val = cuda.to_device(rng.random(g.num_edges, dtype=np.float32).astype(dtype))
    d_X = cuda.to_device(rng.standard_normal((g.num_src, F), dtype=np.float32).astype(dtype))
    d_out = cuda.device_array((g.num_dst, F), dtype=dtype)
    rows = []
    ms = time_events(cuda, lambda: ck.spmm_sum(d_indptr, d_indices, d_val, d_X, d_out), args.repeats, args.warmup)
    rows.append(dict(graph=label, op=f"SpMM F={F}", impl="gnn_scratch spmm_sum", bound_ms=bound_ms, **summarize(ms)))
    if not args.no_peers:
        try:
            import cupy
            import cupyx.scipy.sparse as csp
        except ImportError as e:
            rows.append(dict(graph=label, op=f"SpMM F={F}", impl="cuSPARSE (CuPy)", note=f"skipped: {e}"))
        else:
            A = csp.csr_matrix((cupy.asarray(d_val), cupy.asarray(d_indices), cupy.asarray(g.indptr.astype(np.int32))),
                               shape=g.shape)
            X = cupy.asarray(d_X)
            cupy.cuda.Device().synchronize()
            ms = time_events(cuda, lambda: A @ X, args.repeats, args.warmup)
            got, want = (A @ X).get(), d_out.copy_to_host()
            err = float(np.abs(got - want).max() / max(1e-30, np.abs(want).max()))
            rows.append(dict(graph=label, op=f"SpMM F={F}", impl="cuSPARSE (CuPy)", bound_ms=bound_ms,
                             note=f"max rel diff {err:.1e}", **summarize(ms)))
    del d_indptr, d_indices, d_val, d_X, d_out
    return rows


def bench_ours(cuda, model_name, g, args, bound_ms, label):
    """One gnn_scratch training step on the device, timed."""
    from gnn_scratch import dense
    from gnn_scratch.models import MODELS, build_model
    from gnn_scratch.nn import SoftmaxCrossEntropy
    from gnn_scratch.optim import Adam
    from gnn_scratch.train import train_step
    if model_name not in MODELS:
        return [dict(graph=label, op=f"{model_name} step", impl="gnn_scratch", note="not registered")]
    rng = np.random.default_rng(args.seed)
    N = g.num_nodes
    try:
        model = build_model(model_name, in_channels=args.features, out_channels=args.classes,
                            hidden_channels=args.hidden, seed=args.seed, dtype=args.dtype).to("cuda")
        opt = Adam(model.parameters(), lr=0.01)
        x = dense.to_device(rng.standard_normal((N, args.features), dtype=np.float32).astype(args.dtype))
        y = dense.to_device(rng.integers(0, args.classes, N))
        mask = dense.to_device(rng.random(N) < 0.1)
        dg = g.to("cuda")
        loss_fn = SoftmaxCrossEntropy()
        ms = time_events(cuda, lambda: train_step(model, x, dg, y, mask, opt, loss_fn), args.repeats, args.warmup)
    except Exception as e:                 # a model whose layers cannot run on the device yet
        note = f"failed: {type(e).__name__}: {e}"[:160]
        return [dict(graph=label, op=f"{model_name} step", impl="gnn_scratch", note=note)]
    return [dict(graph=label, op=f"{model_name} step", impl="gnn_scratch", bound_ms=bound_ms, **summarize(ms))]


def bench_pyg(cuda, model_name, g, args, bound_ms, label):
    """The same step with PyG on the same GPU (torch events)."""
    try:
        import torch
        import torch_geometric.nn as pyg_nn
    except ImportError as e:
        return [dict(graph=label, op=f"{model_name} step", impl="PyG", note=f"skipped: {e}")]
    if not torch.cuda.is_available():
        return [dict(graph=label, op=f"{model_name} step", impl="PyG", note="skipped: torch has no CUDA")]
    dev = torch.device("cuda")
    N = g.num_nodes
    src = torch.from_numpy(g.indices.astype(np.int64))
    dst = torch.repeat_interleave(torch.arange(N), torch.from_numpy(np.diff(g.indptr)))
    edge_index = torch.stack([src, dst]).to(dev)
    dt = getattr(torch, args.dtype)
    conv = {"gcn": lambda i, o: pyg_nn.GCNConv(i, o, cached=True), "sage": pyg_nn.SAGEConv,
            "gat": lambda i, o: pyg_nn.GATConv(i, o, heads=1)}.get(model_name)
    if conv is None:
        return [dict(graph=label, op=f"{model_name} step", impl="PyG", note="no PyG twin")]
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    x = torch.randn(N, args.features, generator=gen).to(dev, dt)
    y = torch.randint(0, args.classes, (N,), generator=gen).to(dev)
    mask = (torch.rand(N, generator=gen) < 0.1).to(dev)
    c1, c2 = conv(args.features, args.hidden).to(dev, dt), conv(args.hidden, args.classes).to(dev, dt)
    opt = torch.optim.Adam(list(c1.parameters()) + list(c2.parameters()), lr=0.01)

    def step():
        opt.zero_grad()
        h = torch.nn.functional.dropout(torch.relu(c1(torch.nn.functional.dropout(x, 0.5), edge_index)), 0.5)
        loss = torch.nn.functional.cross_entropy(c2(h, edge_index)[mask], y[mask])
        loss.backward()
        opt.step()

    try:
        for _ in range(args.warmup):
            step()
        torch.cuda.synchronize()
        ms = []
        for _ in range(args.repeats):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step()
            b.record()
            b.synchronize()
            ms.append(a.elapsed_time(b))
    except RuntimeError as e:              # out of memory, typically
        return [dict(graph=label, op=f"{model_name} step", impl="PyG", note=f"failed: {e}"[:160])]
    finally:
        del edge_index, x, y, mask, c1, c2, opt
        torch.cuda.empty_cache()
    return [dict(graph=label, op=f"{model_name} step", impl="PyG", bound_ms=bound_ms, **summarize(ms))]


def main(argv=None):
    args = parse_args(argv)
    cuda = require_real_gpu()
    dtype = np.dtype(args.dtype)
    itemsize = dtype.itemsize
    ctx = cuda.current_context()
    free, total = ctx.get_memory_info()
    name = cuda.get_current_device().name
    name = name.decode() if isinstance(name, bytes) else str(name)
    bw = copy_bandwidth(cuda)
    print(f"{name}: {total / 2 ** 30:.1f} GiB, device-to-device copy {bw / 1e9:.0f} GB/s", flush=True)
    rows = []
    for N, E in args.sizes:
        label = f"{N:,} nodes / {E:,} edges"
        need = gcn_device_bytes(N, E, args.features, args.hidden, args.classes, itemsize)
        free, _ = ctx.get_memory_info()
        if need > 0.9 * free:
            rows.append(dict(graph=label, op="all", impl="-", note=f"skipped: needs ~{need / 2 ** 30:.1f} GiB, "
                                                                  f"{free / 2 ** 30:.1f} GiB free"))
            continue
        t0 = time.perf_counter()
        g = random_graph(N, E, args.seed)
        print(f"{label}: built in {time.perf_counter() - t0:.1f} s", flush=True)
        spmm_ms = 1e3 * spmm_bytes(N, N, g.num_edges, args.features, itemsize) / bw
        rows += bench_spmm(cuda, g, args.features, dtype, args, spmm_ms, label)
        step_ms = 1e3 * gcn_step_bytes(N, g.num_edges, args.features, args.hidden, args.classes, itemsize) / bw
        for model_name in args.models:
            rows += bench_ours(cuda, model_name, g, args, step_ms if model_name == "gcn" else None, label)
            if not args.no_peers:
                rows += bench_pyg(cuda, model_name, g, args, step_ms if model_name == "gcn" else None, label)
        del g
    result = dict(device=name, memory_GiB=total / 2 ** 30, copy_bandwidth_GBps=bw / 1e9, dtype=args.dtype,
                  features=args.features, hidden=args.hidden, classes=args.classes, repeats=args.repeats,
                  rows=rows)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(format_table(rows))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
