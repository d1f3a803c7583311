"""The ``gnn-scratch`` command line: train, predict, gradcheck, bench."""
from __future__ import annotations

import argparse
import json
import sys


def _add_data_args(p, default="csbm"):
    p.add_argument("--dataset", default=default,
                   help=f"cora, citeseer, csbm (generated, no file needed) or karate (default: {default})")
    p.add_argument("--data-root", default=None,
                   help="folder holding planetoid/ind.<name>.* (else $GNN_SCRATCH_DATA, then the cache, then download)")


def _load_data(args):
    from .data import get_dataset
    return get_dataset(args.dataset, root=args.data_root)


# Model options: constructor arguments of the registered models (their ``model_defaults`` keys), by key:
# (flags, argparse keywords, meaning). The help says which models take each one and their defaults;
# tests/test_tasks.py checks that every key of every model's model_defaults has a line here.
MODEL_OPTIONS = {
    "hidden_channels": (("--hidden", "--hidden-channels"), dict(type=int, metavar="H"),
                        "hidden units per layer (gat: per attention head)"),
    "heads": (("--heads",), dict(type=int, metavar="K"), "attention heads of the hidden layer (concatenated)"),
    "dropout": (("--dropout",), dict(type=float, metavar="P"),
                "dropout probability on each layer's input (gat: on the attention coefficients too)"),
    "aggr": (("--aggr",), dict(choices=("mean", "sum", "max", "lstm")),
             "neighbour aggregator; the GPU takes mean and sum"),
}


def _model_option_help(key, meaning):
    """``meaning`` and, from the registry, the models that take ``key`` with their defaults."""
    from .models import MODELS
    takes = {n: c.model_defaults[key] for n, c in MODELS.items() if key in c.model_defaults}
    defaults = ", ".join(f"{n} {v}" for n, v in takes.items())
    scope = "default" if len(takes) == len(MODELS) else "only " + ", ".join(takes) + "; default"
    return f"{meaning} ({scope}: {defaults})"


def _train_description():
    """The train command's description: every registered model and task, from their docstrings."""
    from .models import MODELS, summary_line
    from .tasks import TASKS
    width = max(map(len, list(MODELS) + list(TASKS)))
    models = "\n".join(f"  {n:<{width}}  {summary_line(c)} [devices: {', '.join(c.devices)}]"
                        for n, c in MODELS.items())
    tasks = "\n".join(f"  {n:<{width}}  {c.summary_line()}" for n, c in TASKS.items())
    return (f"Train a model on a task, report its score.\n\nmodels (--model):\n{models}\n\ntasks (--task):\n{tasks}\n\n"
            "Options left unset take the model's defaults (its paper's hyper-parameters), listed with each\n"
            "option. The task options below are --task's; gnn-scratch train --task NAME --help shows NAME's.")


def add_train_arguments(t, task="node"):
    """The train command's options on ``t``: common, model (from ``MODEL_OPTIONS``), then ``task``'s own."""
    from .device import DEVICES
    from .models import MODELS
    from .tasks import TASKS, get_task
    t.add_argument("--task", default="node", metavar="TASK",
                   help=f"what to learn: {', '.join(TASKS)} (default node; see the list above)")
    t.add_argument("--model", default="gcn", metavar="MODEL",
                   help=f"{', '.join(MODELS)} (default gcn; see the list above)")
    _add_data_args(t)
    t.add_argument("--runs", type=int, default=1, help="train this many models, seeds seed, seed+1, ... (default 1)")
    t.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    where = "; ".join(f"{d}: {', '.join(n for n, c in MODELS.items() if d in c.devices)}" for d in DEVICES)
    t.add_argument("--device", default="cpu", choices=DEVICES,
                   help=f"where whole epochs run (default cpu; cuda needs numba-cuda and an NVIDIA GPU); the "
                        f"models each takes: {where}")
    t.add_argument("--save", default=None, metavar="FILE.npz", help="write the (last run's) trained model")
    t.add_argument("--json", action="store_true", help="end with one JSON object of the results")
    t.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    models = t.add_argument_group("model options (left unset: the model's default)")
    for key, (flags, kw, meaning) in MODEL_OPTIONS.items():
        if any(key in c.model_defaults for c in MODELS.values()):
            models.add_argument(*flags, dest=key, default=None, help=_model_option_help(key, meaning), **kw)
    chosen = get_task(task)
    chosen.add_arguments(t.add_argument_group(f"task {chosen.name} options"))
    return t


def cmd_train(args):
    from .io import save_model
    from .tasks import get_task
    task = get_task(args.task)
    if args.device != "cpu":   # say it in one line before loading anything
        from .kernels.cuda import require_cuda
        try:
            require_cuda()
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    data = _load_data(args)
    log = None if args.quiet else (lambda s: print(s, flush=True))
    if not args.quiet:
        print(f"{data.name}: {data.num_nodes} nodes, {data.graph.num_edges} edges, {data.num_features} features, "
              f"{data.num_classes} classes; model {args.model}, task {task.name}", flush=True)
    hp = {key: getattr(args, key) for key in MODEL_OPTIONS if hasattr(args, key)}   # None = not given
    hp.update(task.hparams_from_args(args))
    summary, model = task.run(args.model, data, runs=args.runs, seed=args.seed, log=log, device=args.device, **hp)
    print(task.report(summary), flush=True)
    if args.save:
        save_model(args.save, model, extra=dict(dataset=data.name, **task.saved_metrics(summary)))
        print(f"saved the last run's model to {args.save}")
    if args.json:
        print(json.dumps(summary))
    return 0


def cmd_predict(args):
    from .io import load_model
    from .nn import accuracy
    from .train import prepare_features
    model, extra = load_model(args.load)
    data = _load_data(args)
    if data.num_features != model.config["in_channels"]:
        raise SystemExit(f"error: the model expects {model.config['in_channels']} input features, "
                         f"dataset {data.name} has {data.num_features}")
    Z = model.forward(prepare_features(data, dtype=model.config.get("dtype", "float32")), data.graph)
    accs = {k: accuracy(Z, data.y, getattr(data, f"{k}_mask")) for k in ("train", "val", "test")}
    print(f"{args.load} on {data.name}: " + "  ".join(f"{k} {100 * v:.2f} %" for k, v in accs.items()))
    if args.json:
        print(json.dumps(dict(dataset=data.name, **{f"{k}_acc": v for k, v in accs.items()})))
    return 0


def cmd_gradcheck(args):
    from .gradcheck import format_table
    from .gradcheck.registry import run
    from .kernels import set_cpu_backend
    set_cpu_backend(args.backend)
    rows = run(args.only)
    if not rows:
        print(f"no gradient-check case matches {args.only!r}", file=sys.stderr)
        return 2
    print(format_table(rows))
    failed = [r for r in rows if not r.passed]
    worst = max(r.error for r in rows)
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed (worst relative error {worst:.2e}, "
          f"tolerance 1e-6, float64, kernels: {args.backend})")
    return 1 if failed else 0


def cmd_bench(args):
    if args.gpu is not None:   # everything after --gpu is the GPU benchmark's command line
        from .bench.gpu import main as gpu_main
        return gpu_main(args.gpu)
    from .bench.suite import run
    argv = sys.argv[1:]
    args.argv = argv[argv.index("bench") + 1:] if "bench" in argv else []   # for the report's command line
    return run(args)


def build_parser(task="node"):
    """The command line's parser; the train command carries the options of task ``task``."""
    p = argparse.ArgumentParser(prog="gnn-scratch", description="Graph neural networks from scratch in NumPy and Numba.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a task (default: node classification) and report its score",
                       description=_train_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(t, task)
    t.set_defaults(fn=cmd_train)

    pr = sub.add_parser("predict", help="restore a saved model and print its accuracy on a dataset")
    pr.add_argument("--load", required=True, metavar="FILE.npz")
    _add_data_args(pr)
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=cmd_predict)

    g = sub.add_parser("gradcheck", help="check every backward against finite differences (float64)")
    g.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    g.add_argument("--backend", default="cpu", choices=("cpu", "reference"), help="kernels to check (default cpu)")
    g.set_defaults(fn=cmd_gradcheck)

    from .bench.suite import add_arguments as add_bench_arguments
    b = sub.add_parser("bench", help="benchmarks beside scipy.sparse and PyG on the CPU (= scripts/bench.py)",
                       description="Kernels, models, memory, start-up and scaling of gnn_scratch beside scipy.sparse "
                                   "and PyG; writes the JSON, BENCHMARKS.md and the plot.")
    add_bench_arguments(b)
    b.add_argument("--gpu", nargs=argparse.REMAINDER, default=None, metavar="GPU-OPTION",
                   help="run the GPU benchmark instead (numba.cuda kernels and training steps beside cuSPARSE and "
                        "PyG, one NVIDIA GPU); the options after --gpu are its own: gnn-scratch bench --gpu --help")
    b.set_defaults(fn=cmd_bench)
    return p


def _task_of(argv):
    """The --task of a train command line (default node), read before the parser is built: the train
    command's options include the chosen task's own. An unknown name is left to ``cmd_train`` to refuse."""
    if argv[:1] != ["train"]:
        return "node"
    from .tasks import TASKS
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="node")
    task = pre.parse_known_args(argv[1:])[0].task
    return task if task in TASKS else "node"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_task_of(argv)).parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, OSError) as e:
        # A user's mistake (bad file, bad option value, missing data): say it in one line, no traceback.
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
