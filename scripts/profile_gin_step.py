"""Where one GIN training step on PROTEINS goes, ours beside PyG's: the bench's graphs part, op by op.

    python scripts/profile_gin_step.py [--threads 2] [--repeats 5] [--iters 50] [--batch-size 32]

The epoch is the one ``gnn-scratch bench --only graphs`` times (``bench/graphs.py``): ``--iters`` steps
of ``--batch-size`` graphs drawn by ``draw_batches``, GIN with 5 layers, 64 hidden units, dropout 0.5,
Adam lr 0.01, float32. PyG runs its ``index`` cut with our initial weights (its mirror is checked
first, as in the bench). Each library runs in its own subprocess (two OpenMP runtimes in one process
spin on each other's cores), ``--threads`` threads each.

Ours: the median epoch over ``--repeats`` uninstrumented epochs, then instrumented epochs: the
step's phases (the batch cut, forward, loss, backward, optimiser; ``loop.train_step`` as the bench
calls it, its pieces timed through the model's, loss's and optimiser's own methods) and every
registered op (``kernels.registry.run``, by op name), the rest being Python, checks and allocation.
Then the column "alone": every op call of one more epoch repeated by itself on the inputs it had
(warm caches, nothing between calls, OpenBLAS on one thread as in the step) -- what the step's ops
would cost with no Python between them and no cache misses from one op to the next. The "rest" row
is everything outside the ops: the batch cut and the Python between the ops (the phase table splits
off the first).
PyG: the median epoch, then ``torch.profiler``'s self CPU time per aten op over one epoch.
All times are per training step (the epoch over ``--iters``), in ms. Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def _epoch_median(fn, repeats):
    """Seconds of ``fn()``: the median of ``repeats`` calls after two warm-ups (``bench.harness.interleave``)."""
    from gnn_scratch.bench.harness import interleave
    return interleave({"fn": fn}, repeats=repeats, warmup=2)["fn"]["median"]


def _alone(run, name, work, args, calls=10, repeats=3):
    """Seconds of one ``run(name, work, *args)``: the median over ``repeats`` of the mean of ``calls`` in a row."""
    for _ in range(2):
        run(name, work, *args)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            run(name, work, *args)
        ts.append((time.perf_counter() - t) / calls)
    return float(np.median(ts))


def worker_ours(args):
    from gnn_scratch.bench.graphs import LR, MODEL, DatasetSpec, draw_batches, load_dataset
    from gnn_scratch.bench.harness import op_times, timed
    from gnn_scratch.kernels import registry
    from gnn_scratch.loop import input_is_data, train_step
    from gnn_scratch.threads import blas_threads
    from gnn_scratch.models import build_model
    from gnn_scratch.nn import SoftmaxCrossEntropy
    from gnn_scratch.optim import Adam
    d = load_dataset(DatasetSpec("proteins"), os.environ.get("GNN_SCRATCH_DATA"))
    whole, x_all, y_all = d.batch(dtype=np.float32)
    model = build_model("gin", in_channels=d.num_features, out_channels=d.num_classes, seed=0, **MODEL)
    if args.dump:                 # initial weights and eval-mode scores, for the PyG worker's mirror check
        from gnn_scratch.bench.graphs import check_ids
        model.eval()
        sub, nodes = whole.select(check_ids(d.num_graphs, 0))
        np.savez(args.dump, __eval__=np.asarray(model.forward(x_all[nodes], sub)), **model.state_dict())
        with open(args.dump + ".json", "w") as f:
            json.dump(model.config, f)
    opt = Adam([{"params": model.parameters(), "weight_decay": 0.0}], lr=LR)
    loss_fn = SoftmaxCrossEntropy()
    batches = draw_batches(d.num_graphs, args.iters, args.batch_size, 0)
    phases = {}

    def epoch(select=whole.select):
        with input_is_data(model):          # as the bench and train_fold: the features are data
            for ids in batches:
                sub, nodes = select(ids)
                train_step(model, x_all[nodes], sub, y_all[ids], None, opt, loss_fn)

    total = _epoch_median(epoch, args.repeats)
    # the phases through the objects' own methods (instance attributes shadow the class's for the block)
    wrapped = {"forward": (model, "forward"), "backward": (model, "backward"), "loss": (loss_fn, "forward"),
               "loss backward": (loss_fn, "backward"), "optimiser": (opt, "step"), "zero_grad": (opt, "zero_grad")}
    for key, (obj, name) in wrapped.items():
        setattr(obj, name, timed(phases, key, getattr(obj, name)))
    cut = timed(phases, "batch cut (select)", whole.select)
    per_op, per_phase, calls = {}, {}, {}
    try:
        for _ in range(args.repeats):
            phases.clear()
            with op_times() as (acc, calls):
                t = time.perf_counter()
                epoch(cut)
                wall = time.perf_counter() - t
            phases["rest of the step (x[nodes], y[ids], train/eval, blas_threads)"] = wall - sum(phases.values())
            acc = dict(acc)
            acc["rest (Python, checks, allocation)"] = wall - sum(acc.values())
            for k, v in acc.items():
                per_op.setdefault(k, []).append(1e3 * v / args.iters)
            for k, v in phases.items():
                per_phase.setdefault(k, []).append(1e3 * v / args.iters)
    finally:
        for obj, name in wrapped.values():
            delattr(obj, name)
    # each op call of an epoch again, alone: repeated on the inputs it had (warm caches, nothing between)
    steps = batches
    captured = []
    with input_is_data(model), op_times(capture=captured):
        for ids in steps:
            sub, nodes = whole.select(ids)
            train_step(model, x_all[nodes], sub, y_all[ids], None, opt, loss_fn)
    alone = {}
    with blas_threads(1):                # as train_step runs them
        for name, work, op_args in captured:
            alone[name] = alone.get(name, 0.0) + _alone(registry.run, name, work, op_args) / len(steps)
    return dict(step=1e3 * total / args.iters, ops={k: float(np.median(v)) for k, v in per_op.items()},
                phases={k: float(np.median(v)) for k, v in per_phase.items()},
                alone={k: 1e3 * v for k, v in alone.items()},
                calls={k: v / args.iters for k, v in calls.items()}, num_graphs=d.num_graphs)


def worker_pyg(args):
    from torch.profiler import ProfilerActivity, profile

    from gnn_scratch.bench.graphs import LR, MODEL, DatasetSpec, PyGEpochSide
    side = PyGEpochSide(dict(graph=DatasetSpec("proteins").__dict__, threads=args.threads, forms=["index"]))
    with open(args.dump + ".json") as f:
        config = json.load(f)
    info = side.model(dict(dump=args.dump, config=config, model_kw=dict(MODEL), lr=LR, iters=args.iters,
                           batch_size=args.batch_size, seed=0))
    if "index:epoch" not in side.fns:
        raise SystemExit(f"the PyG mirror failed: {info['mirror']}")
    epoch = side.fns["index:epoch"]
    total = _epoch_median(epoch, args.repeats)
    per = {}
    for i in range(2):          # the first profiled epoch pays the profiler's start-up: dropped
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            epoch()
        if i:
            per = {e.key: e.self_cpu_time_total / 1e3 / args.iters for e in prof.key_averages()
                   if e.self_cpu_time_total > 0}
            calls = {e.key: e.count / args.iters for e in prof.key_averages() if e.self_cpu_time_total > 0}
    return dict(step=1e3 * total / args.iters, ops=per, calls=calls, mirror=info["mirror"])


def _named(op, calls):
    """``op (calls a step)``, or the bare name for a row that is not an op (ours' "rest")."""
    return f"{op} ({calls[op]:g})" if op in calls else op


def _tables(ours, pyg, top):
    r = ours["step"] / pyg["step"] if pyg else None
    head = (f"### GIN training step on PROTEINS: ours {ours['step']:.2f} ms, "
            + (f"PyG (index cut) {pyg['step']:.2f} ms, ratio {r:.2f}x" if pyg else "PyG not run") + "\n")
    phases = ["| ours: phase | ms / step |", "|---|---:|"]
    phases += [f"| {k} | {v:.2f} |" for k, v in sorted(ours["phases"].items(), key=lambda kv: -kv[1])]
    lines = ["| ours: op (calls / step) | ms / step | alone | PyG: aten op, self CPU (calls / step) | ms / step |",
             "|---|---:|---:|---|---:|"]
    a = sorted(ours["ops"].items(), key=lambda kv: -kv[1])[:top]
    b = sorted(pyg["ops"].items(), key=lambda kv: -kv[1])[:top] if pyg else []
    for i in range(max(len(a), len(b))):
        left = (_named(a[i][0], ours["calls"]), f"{a[i][1]:.3f}",
                f"{ours['alone'][a[i][0]]:.3f}" if a[i][0] in ours["alone"] else "") if i < len(a) else ("", "", "")
        right = (_named(b[i][0], pyg["calls"]), f"{b[i][1]:.3f}") if i < len(b) else ("", "")
        lines.append(f"| {left[0]} | {left[1]} | {left[2]} | {right[0]} | {right[1]} |")
    products = sum(v for k, v in ours["alone"].items() if k.startswith("matmul"))
    sums = (f"\nOurs, instrumented: ops {sum(v for k, v in ours['ops'].items() if not k.startswith('rest')):.2f} ms "
            f"a step, {sum(ours['calls'].values()):g} op calls. Alone (each call of an epoch repeated on its own "
            f"inputs, warm, OpenBLAS on one thread as in the step): {sum(ours['alone'].values()):.2f} ms a "
            f"step, the products {products:.2f} ms")
    if pyg:
        sums += f"; PyG's profiled self CPU time {sum(pyg['ops'].values()):.2f} ms a step (both threads, profiler on)"
    return head + "\n" + "\n".join(phases) + "\n\n" + "\n".join(lines) + sums + ".\n"


def main(argv=None):
    from gnn_scratch.tasks import options
    p = options.Parser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=options.positive_int, default=2)
    p.add_argument("--repeats", type=options.positive_int, default=5)
    p.add_argument("--iters", type=options.positive_int, default=50)
    p.add_argument("--batch-size", type=options.positive_int, default=32)
    p.add_argument("--top", type=options.positive_int, default=14, help="ops per library in the table")
    p.add_argument("--no-pyg", action="store_true", help="ours only")
    p.add_argument("--data-root", type=options.existing_folder, metavar="DIR",
                   help="the data root holding tu/PROTEINS/ (default $GNN_SCRATCH_DATA, then the data cache)")
    p.add_argument("--worker", choices=("ours", "pyg"), help=argparse.SUPPRESS)
    p.add_argument("--dump", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        r = worker_ours(a) if a.worker == "ours" else worker_pyg(a)
        print("RESULT " + json.dumps(r))
        return
    env = dict(os.environ, NUMBA_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    if a.data_root:
        env["GNN_SCRATCH_DATA"] = a.data_root
    res = {}
    with tempfile.TemporaryDirectory(prefix="gnn_gin_profile_") as tmp:
        dump = os.path.join(tmp, "gin.npz")
        for lib in ("ours",) + (() if a.no_pyg else ("pyg",)):
            out = subprocess.run([sys.executable, __file__, "--worker", lib, "--dump", dump,
                                  "--threads", str(a.threads), "--repeats", str(a.repeats), "--iters", str(a.iters),
                                  "--batch-size", str(a.batch_size)], env=env, capture_output=True, text=True)
            line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")]
            if not line:
                raise SystemExit(f"{lib} failed:\n{out.stderr[-3000:]}")
            res[lib] = json.loads(line[-1][7:])
    print(f"One GIN training step on PROTEINS ({a.iters} steps of {a.batch_size} graphs an epoch), {a.threads} "
          f"thread(s), median of {a.repeats} epochs; per-op times from instrumented epochs.\n")
    print(_tables(res["ours"], res.get("pyg"), a.top))


if __name__ == "__main__":
    main()
