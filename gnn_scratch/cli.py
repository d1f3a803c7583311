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


def _fanouts(text):
    """'25,10' -> [25, 10]: the --fanout option."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"fan-outs must be comma-separated ints such as 25,10, got {text!r}")


def cmd_train(args):
    from .io import save_model
    from .train import run
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
              f"{data.num_classes} classes; model {args.model}", flush=True)
    hp = dict(hidden_channels=args.hidden, dropout=args.dropout, lr=args.lr, weight_decay=args.weight_decay,
              epochs=args.epochs, patience=args.patience)
    hp.update(aggr=args.aggr, batch_size=args.batch_size, fanout=args.fanout)  # GraphSAGE; None = not given
    summary, model = run(args.model, data, runs=args.runs, seed=args.seed, log=log, device=args.device, **hp)
    print(f"test accuracy {100 * summary['test_acc_mean']:.2f} ± {100 * summary['test_acc_std']:.2f} % "
          f"over {summary['runs']} run(s); median epoch {summary['epoch_ms_median']:.2f} ms", flush=True)
    if args.save:
        save_model(args.save, model, extra=dict(dataset=data.name, test_acc=summary["test_acc"][-1]))
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
    from .bench.suite import run
    argv = sys.argv[1:]
    args.argv = argv[argv.index("bench") + 1:] if "bench" in argv else []   # for the report's command line
    return run(args)


def build_parser():
    p = argparse.ArgumentParser(prog="gnn-scratch", description="Graph neural networks from scratch in NumPy and Numba.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a node classifier and report test accuracy")
    t.add_argument("--model", default="gcn", help="gcn (default) or gat")
    _add_data_args(t)
    t.add_argument("--runs", type=int, default=1, help="number of seeds (default 1)")
    t.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--patience", type=int, default=None)
    t.add_argument("--hidden", type=int, default=None)
    t.add_argument("--dropout", type=float, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--aggr", default=None, choices=("mean", "sum", "max", "lstm"), help="sage: aggregator (mean)")
    t.add_argument("--batch-size", type=int, default=None,
                   help="sage: train on sampled mini-batches of this many seed nodes (default: full batch)")
    t.add_argument("--fanout", type=_fanouts, default=None, metavar="F1,F2",
                   help="sage: neighbours sampled per node at each hop from the seeds, -1 = all (default 25,10)")
    t.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cpu (default) or cuda: whole epochs on the GPU (needs numba-cuda and an NVIDIA GPU)")
    t.add_argument("--save", default=None, metavar="FILE.npz", help="write the (last run's) trained model")
    t.add_argument("--json", action="store_true", help="end with one JSON object of the results")
    t.add_argument("--quiet", action="store_true", help="no per-epoch lines")
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
    b.set_defaults(fn=cmd_bench)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, OSError) as e:
        # A user's mistake (bad file, bad option value, missing data): say it in one line, no traceback.
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
