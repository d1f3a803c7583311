"""Peak memory and time of one GAT training step (forward + loss + backward), gnn_scratch against PyG.

    python scripts/bench_gat_memory.py                          # 1,000,000 nodes, 10,000,000 edges
    python scripts/bench_gat_memory.py --nodes 100000 --edges 1000000 --json gat_mem.json

The model is the paper's Cora architecture on random data: dropout 0.6 -> GATConv(128, 8, heads=8,
attention dropout 0.6) -> ELU -> dropout 0.6 -> GATConv(64, 7, heads=1, mean) -> softmax
cross-entropy over all nodes. Each implementation runs in a fresh subprocess:

* ``fused``   -- gnn_scratch GAT, fused kernels (float32);
* ``unfused`` -- gnn_scratch GAT composed of the foundation ops (stores alpha (E, H));
* ``pyg``     -- torch_geometric's GATConv (autograd), when installed.

How memory is measured: each worker builds its data (features, labels, the graph with self-loops
already added -- gnn_scratch caches its self-loop graph and transpose; PyG gets the looped
edge_index and ``add_self_loops=False``, so neither pays preprocessing inside the step), warms up on
a tiny graph (Numba compilation, torch's lazy initialisation), collects garbage, then resets the
kernel's resident-set high-water mark (``/proc/self/clear_refs`` = 5) and records the resident set
``VmRSS`` as the baseline. After ``--steps`` steps, ``peak = VmHWM - baseline``: the most resident
memory the step added on top of what existed before it. Where the reset is not available, it
falls back to ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process-lifetime peak) minus the
same baseline, and says so in the ``method`` column. Times are wall-clock seconds per step
(median of the steps; the first step is included when there is only one).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPLS = ("fused", "unfused", "pyg")


# ---------------------------------------------------------------------------------- memory probes
def _status_kib(field):
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), in bytes; None if unreadable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak():
    """Reset the resident-set high-water mark to the current RSS; True if the kernel allowed it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux reports KiB


# ---------------------------------------------------------------------------------- the workers
def _random_graph(nodes, edges, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    src = rng.integers(0, nodes, edges)
    dst = rng.integers(0, nodes, edges)
    return np.stack([src, dst])


def _data(nodes, edges, features, classes, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((nodes, features), dtype=np.float32)
    y = rng.integers(0, classes, nodes)
    return _random_graph(nodes, edges, seed), X, y


def _gnn_scratch_worker(args, fused):
    import numpy as np

    from gnn_scratch.graph import Graph
    from gnn_scratch.models.gat import GAT
    from gnn_scratch.nn import SoftmaxCrossEntropy
    from gnn_scratch.nn.conv.gat_conv import self_loop_graph

    def build(nodes, edges):
        ei, X, y = _data(nodes, edges, args.features, args.classes)
        g = Graph.from_edge_index(ei, nodes)
        del ei
        gl = self_loop_graph(g)
        gl.t_perm                             # build the cached transpose now, not inside the step
        return g, X, y

    model = GAT(args.features, args.classes, hidden_channels=args.hidden, heads=args.heads, dropout=0.6,
                seed=0, dtype="float32", fused=fused).train()
    loss_fn = SoftmaxCrossEntropy()

    def step(g, X, y):
        model.zero_grad()
        loss_fn.forward(model.forward(X, g), y)
        model.backward(loss_fn.backward())

    step(*build(50, 200))                         # compile / load the Numba kernels
    data = build(args.nodes, args.edges)
    return _measure(lambda: step(*data), args.steps), data[0].num_edges + args.nodes


def _pyg_worker(args):
    import torch
    import torch.nn.functional as F
    from torch_geometric.nn import GATConv
    from torch_geometric.utils import add_self_loops, remove_self_loops

    class GAT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GATConv(args.features, args.hidden, heads=args.heads, dropout=0.6, add_self_loops=False)
            self.conv2 = GATConv(args.hidden * args.heads, args.classes, heads=1, concat=False, dropout=0.6,
                                 add_self_loops=False)

        def forward(self, x, edge_index):
            x = F.dropout(x, p=0.6, training=self.training)
            x = F.elu(self.conv1(x, edge_index))
            x = F.dropout(x, p=0.6, training=self.training)
            return self.conv2(x, edge_index)

    torch.manual_seed(0)
    model = GAT().train()

    def build(nodes, edges):
        ei, X, y = _data(nodes, edges, args.features, args.classes)
        ei = remove_self_loops(torch.from_numpy(ei))[0]
        ei = add_self_loops(ei, num_nodes=nodes)[0]
        return ei, torch.from_numpy(X), torch.from_numpy(y)

    def step(ei, X, y):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(X, ei), y).backward()

    step(*build(50, 200))
    data = build(args.nodes, args.edges)
    return _measure(lambda: step(*data), args.steps), int(data[0].shape[1])


def _measure(step, steps):
    """Run ``step`` ``steps`` times; (peak bytes above the baseline, baseline bytes, seconds per step, method)."""
    gc.collect()
    reset = _reset_peak()
    base = _status_kib("VmRSS")
    if base is None:                               # no /proc: the whole-process peak is all we have
        base = _ru_maxrss_bytes()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    hwm = _status_kib("VmHWM") if reset else None
    if hwm is not None:
        method = "VmHWM after clear_refs reset - VmRSS before"
        peak = hwm - base
    else:
        method = "ru_maxrss - baseline RSS"
        peak = _ru_maxrss_bytes() - base
    times.sort()
    return dict(peak_bytes=int(peak), baseline_bytes=int(base), step_s=times[len(times) // 2], method=method)


def worker(args):
    if args.worker == "pyg":
        res, E = _pyg_worker(args)
    else:
        res, E = _gnn_scratch_worker(args, fused=args.worker == "fused")
    res.update(impl=args.worker, nodes=args.nodes, edges=args.edges, edges_with_loops=E)
    print("RESULT " + json.dumps(res), flush=True)


# ---------------------------------------------------------------------------------- the driver
def run_one(impl, args):
    """Run the worker for ``impl`` in a fresh interpreter; its result dict, or one with an ``error``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, "--nodes", str(args.nodes),
           "--edges", str(args.edges), "--features", str(args.features), "--heads", str(args.heads),
           "--hidden", str(args.hidden), "--classes", str(args.classes), "--steps", str(args.steps)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return dict(impl=impl, error=f"exit {proc.returncode}: " + " | ".join(tail))


def fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024


def table(results):
    lines = ["| implementation | peak above baseline | step time (s) | baseline RSS |",
             "| --- | ---: | ---: | ---: |"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['impl']} | failed: {r['error']} | | |")
        else:
            lines.append(f"| {r['impl']} | {fmt_bytes(r['peak_bytes'])} | {r['step_s']:.2f} | "
                         f"{fmt_bytes(r['baseline_bytes'])} |")
    return "\n".join(lines)


def main(argv=None):
    sys.path.insert(0, str(REPO))                 # the workers get this checkout too (PYTHONPATH, run_one)
    from gnn_scratch.tasks import options
    p = options.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=options.positive_int, default=1_000_000)
    p.add_argument("--edges", type=options.positive_int, default=10_000_000)
    p.add_argument("--features", type=options.positive_int, default=128)
    p.add_argument("--heads", type=options.positive_int, default=8)
    p.add_argument("--hidden", type=options.positive_int, default=8)
    p.add_argument("--classes", type=options.positive_int, default=7)
    p.add_argument("--steps", type=options.positive_int, default=2,
                   help="training steps per implementation (default 2)")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    p.add_argument("--json", default=None, type=options.output_file, metavar="PATH",
                   help="also write the results as JSON here")
    p.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    bad = [s for s in impls if s not in IMPLS]
    if bad or not impls:
        p.error(f"argument --impls: expected a comma-separated subset of {','.join(IMPLS)}, got {args.impls!r}")
    results = []
    for impl in impls:
        if impl == "pyg":
            try:
                import torch_geometric  # noqa: F401
            except ImportError:
                results.append(dict(impl="pyg", error="torch_geometric is not installed"))
                continue
        results.append(run_one(impl, args))
        print(f"{impl}: done", file=sys.stderr, flush=True)
    print(f"\nGAT training step (forward + backward), {args.nodes:,} nodes, {args.edges:,} random edges "
          f"(+ self-loops), {args.features} features, {args.heads} heads x {args.hidden}, float32\n")
    print(table(results))
    methods = sorted({r["method"] for r in results if "method" in r})
    if methods:
        print(f"\npeak = {'; '.join(methods)}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(config=vars(args) | {"worker": None}, results=results), indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
