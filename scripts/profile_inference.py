"""Per-op breakdown of one inference forward (``model.eval(); model.forward(x, graph)``), ours beside PyG's.

    python scripts/profile_inference.py [--models gcn,sage,gat] [--graphs cora,citeseer,random-100k]
                                        [--threads 2] [--repeats 7]

The models are built as ``gnn-scratch bench --only models`` builds them (``bench.models.build_ours``;
64 hidden units on the random graphs, GAT 8 heads x 8) and the PyG peer is the bench's mirror with our
weights (``bench.pyg_mirror``) in its CSR form. Each library runs in its own subprocess (two OpenMP
runtimes in one process would spin on each other's cores), ``--threads`` threads each.

Ours: every registered op call (``kernels.registry.run``) is timed and summed by op name, plus the
input finite-scan (``graph.csr.check_finite``) and the rest of the forward (Python, checks, allocation).
PyG: ``torch.profiler`` self CPU time per aten op. Both: the median forward over ``--repeats`` runs
without instrumentation, then one instrumented forward per repeat, per-op times are medians too.
Prints a Markdown table per (model, graph): ms per op, largest first.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

GRAPHS = {"cora": dict(name="cora", kind="planetoid"), "citeseer": dict(name="citeseer", kind="planetoid"),
          "random-100k": dict(name="random-100k", kind="random", num_nodes=100_000, num_edges=1_000_000),
          "random-1M": dict(name="random-1M", kind="random", num_nodes=1_000_000, num_edges=10_000_000)}


def _data(graph):
    from gnn_scratch.bench.harness import GraphSpec, load_bench_data
    spec = GraphSpec(**GRAPHS[graph])
    return spec, load_bench_data(spec, os.environ.get("GNN_SCRATCH_DATA"))


def _median_forward(fn, repeats):
    """ms of ``fn()``: the median of ``repeats`` calls after three warm-ups (``bench.harness.interleave``)."""
    from gnn_scratch.bench.harness import interleave
    return 1e3 * interleave({"fn": fn}, repeats=repeats, warmup=3)["fn"]["median"]


def worker_ours(model_name, graph, repeats):
    import gnn_scratch.nn.checks as checks
    from gnn_scratch.bench.harness import op_times, timed
    from gnn_scratch.bench.models import build_ours
    from gnn_scratch.loop import input_is_data
    spec, d = _data(graph)
    model, _, _ = build_ours(model_name, spec, d.num_features, d.num_classes)
    x, g = d.x, d.graph
    ctx = input_is_data(model)
    ctx.__enter__()
    model.eval()

    def fwd():
        model.forward(x, g)
    total = _median_forward(fwd, repeats)
    # instrumented: every registered op, and the input scan
    real_finite = checks.check_finite
    scan = {}
    checks.check_finite = timed(scan, "input finite-scan", real_finite)
    per = {}
    try:
        for _ in range(repeats):
            scan.clear()
            with op_times() as (acc, calls):
                t = time.perf_counter()
                fwd()
                wall = time.perf_counter() - t
            acc = dict(acc, **{"input finite-scan": scan.get("input finite-scan", 0.0)})
            acc["rest (Python, checks, allocation)"] = wall - sum(acc.values())
            for k, v in acc.items():
                per.setdefault(k, []).append(1e3 * v)
    finally:
        checks.check_finite = real_finite
    ops = {k: float(np.median(v)) for k, v in per.items()}
    return dict(total=total, ops=ops, calls=dict(calls), n_calls=sum(calls.values()))


def worker_pyg(model_name, graph, repeats, threads):
    import torch
    from gnn_scratch.bench import pyg_mirror as pm
    from gnn_scratch.bench.models import build_ours, describe
    torch.set_num_threads(threads)
    spec, d = _data(graph)
    model, _, _ = build_ours(model_name, spec, d.num_features, d.num_classes)
    desc, params = describe(model)
    x = pm.features(d.x_dense)
    best, times = None, {}
    for form, adj in pm.adjacency_forms(d.edge_index, d.num_nodes).items():
        try:   # a fresh net per form: GCNConv(cached=True) keeps the first form's normalised adjacency
            net = pm.load_weights(pm.build_chain(desc), desc, params)
            fn = pm.inference_fn(net, x, adj)
            t = _median_forward(fn, repeats)
        except Exception:   # noqa: BLE001 -- a form PyG cannot run this model with
            continue
        times[form] = t
        if best is None or t < best[0]:
            best = (t, form, fn)
    total, form, fn = best
    per = {}
    from torch.profiler import ProfilerActivity, profile
    for _ in range(repeats + 1):   # the first profiled call pays the profiler's start-up: dropped
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        if _ == 0:
            continue
        for e in prof.key_averages():
            if e.self_cpu_time_total > 0:
                per.setdefault(e.key, []).append(e.self_cpu_time_total / 1e3)
    ops = {k: float(np.median(v + [0.0] * (repeats - len(v)))) for k, v in per.items()}
    return dict(total=total, ops=ops, form=form, forms=times)


def _table(model_name, graph, ours, pyg, top=9):
    lines = [f"### {model_name.upper()} inference on {graph}: ours {ours['total']:.2f} ms "
             f"({ours['n_calls']} op calls), PyG ({pyg['form']}) {pyg['total']:.2f} ms, "
             f"ratio {ours['total'] / pyg['total']:.2f}x", "",
             "| ours: op | ms | PyG: aten op (self CPU) | ms |", "|---|---:|---|---:|"]
    a = sorted(ours["ops"].items(), key=lambda kv: -kv[1])[:top]
    b = sorted(pyg["ops"].items(), key=lambda kv: -kv[1])[:top]
    for i in range(max(len(a), len(b))):
        left = (f"{a[i][0]} (x{ours['calls'].get(a[i][0], 1)})", f"{a[i][1]:.2f}") if i < len(a) else ("", "")
        right = (b[i][0], f"{b[i][1]:.2f}") if i < len(b) else ("", "")
        lines.append(f"| {left[0]} | {left[1]} | {right[0]} | {right[1]} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    from gnn_scratch.bench.models import MODEL_NAMES
    from gnn_scratch.tasks import options
    p = options.Parser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="gcn,sage,gat", type=options.names(MODEL_NAMES, "models"),
                   help=f"comma-separated, among {', '.join(MODEL_NAMES)} (default gcn,sage,gat)")
    p.add_argument("--graphs", default="cora,citeseer,random-100k", type=options.names(tuple(GRAPHS), "graphs"),
                   help=f"comma-separated, among {', '.join(GRAPHS)} (default cora,citeseer,random-100k)")
    p.add_argument("--threads", type=options.positive_int, default=2)
    p.add_argument("--repeats", type=options.positive_int, default=7)
    p.add_argument("--worker", choices=("ours", "pyg"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        (model_name,), (graph,) = a.models.split(","), a.graphs.split(",")
        r = worker_ours(model_name, graph, a.repeats) if a.worker == "ours" else \
            worker_pyg(model_name, graph, a.repeats, a.threads)
        print("RESULT " + json.dumps(r))
        return
    env = dict(os.environ, NUMBA_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    print(f"Inference forward, {a.threads} thread(s), median of {a.repeats}; per-op times from an instrumented "
          f"forward (ours: registry ops; PyG: torch.profiler self CPU).\n")
    for graph in a.graphs.split(","):
        for model_name in a.models.split(","):
            res = {}
            for lib in ("ours", "pyg"):
                out = subprocess.run([sys.executable, __file__, "--worker", lib, "--models", model_name,
                                      "--graphs", graph, "--threads", str(a.threads), "--repeats", str(a.repeats)],
                                     env=env, capture_output=True, text=True)
                line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")]
                if not line:
                    raise SystemExit(f"{lib} {model_name} {graph} failed:\n{out.stderr[-3000:]}")
                res[lib] = json.loads(line[-1][7:])
            print(_table(model_name, graph, res["ours"], res["pyg"]), flush=True)


if __name__ == "__main__":
    main()
