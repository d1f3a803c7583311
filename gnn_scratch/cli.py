"""The ``gnn-scratch`` command line: train, predict, gradcheck, bench, embed.

Every run ends in one line on standard error when it fails, never a traceback: a value out of range
or an option that does not apply is refused before any work, naming the option and what was
expected (exit 2); Ctrl-C stops cleanly (exit 130; ``train`` summarises the runs that finished).
Every option's value is checked by its kind in one module, ``tasks.options`` (argparse ``type=``).
``--json`` makes standard output one JSON object; every other line then goes to standard error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

from .tasks import options

COMPILING = "compiling the Numba kernels (first run only, cached afterwards)…"
DEBUG_ENV = "GNN_SCRATCH_DEBUG"     # set to 1: an unexpected error shows its traceback


Parser = options.Parser   # argparse, its errors in one line


def _add_data_args(p, default="csbm", names=None, default_help=None):
    from .data import DATASETS
    names = names or DATASETS
    generated = " (csbm and karate are built in: no file needed)" if "csbm" in names else ""
    p.add_argument("--dataset", default=default, type=str.lower, choices=names, metavar="NAME",
                   help=f"{', '.join(names)}{generated} (default: {default_help or default})")
    p.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                   help="an existing folder holding planetoid/ind.<name>.* or tu/<NAME>/ (default: $GNN_SCRATCH_DATA, "
                        "then the user cache, then a download for Planetoid; the TU files are never downloaded here)")


def _load_data(args):
    from .data import get_dataset
    from .data.planetoid import DataNotFoundError
    from .tasks import TASKS
    task = TASKS.get(getattr(args, "task", None))
    extra = task.dataset_kwargs(args) if hasattr(task, "dataset_kwargs") else {}   # e.g. inductive's --size
    try:
        return get_dataset(args.dataset, root=args.data_root, **extra)
    except DataNotFoundError as e:   # its advice names the API's root=; say the command line's option too
        raise DataNotFoundError(f"{e} On the command line: --data-root DIR (or GNN_SCRATCH_DATA).") from None


# Model options: constructor arguments of the registered models (their ``model_defaults`` keys), by key:
# (flags, argparse keywords, meaning). The help says which models take each one and their defaults;
# tests/test_tasks.py checks that every key of every model's model_defaults has a line here.
MODEL_OPTIONS = {
    "hidden_channels": (("--hidden", "--hidden-channels"), dict(type=options.positive_int, metavar="H"),
                        "hidden units per layer, H >= 1 (gat: per attention head; han, gt, gps: the width of all "
                        "heads together, divisible by --heads)"),
    "heads": (("--heads",), dict(type=options.positive_int, metavar="K"),
              "attention heads of the hidden layer (concatenated), K >= 1"),
    "dropout": (("--dropout",), dict(type=options.probability, metavar="P"),
                "dropout probability in [0, 1) on each layer's input (gat: on the attention coefficients too; gin: on "
                "each layer's score)"),
    "aggr": (("--aggr",), dict(choices=("mean", "sum", "max", "lstm")),
             "neighbour aggregator; the GPU takes mean, sum and max"),
    "K": (("--K",), dict(type=options.non_negative_int, metavar="K"),
          "cheb: the Chebyshev degree K of Kipf & Welling's Eq. 5 (K + 1 terms, ChebConv(K + 1)), K >= 0; the "
          "recurrent cells: PyG Temporal's K, the number of terms (gconv_*) or diffusion steps (dcrnn), K >= 1, "
          "K = 1 uses no edge"),
    "bptt": (("--bptt",), dict(type=options.positive_int, metavar="k"),
             "truncated backpropagation through time: no gradient crosses the boundaries of k-step chunks of a "
             "window (None: full BPTT)"),
    "num_layers": (("--num-layers",), dict(type=options.positive_int, metavar="L"),
                   "message-passing layers L (deep_*: L >= 2; gcnii: GCN2Conv layers, L >= 1; gin: the input counts as one, L >= 2)"),
    "residual": (("--residual",), dict(action="store_true"), "h <- h + layer(h) around every hidden layer"),
    "pairnorm": (("--pairnorm",), dict(action="store_true"), "PairNorm after every hidden convolution"),
    "num_bases": (("--num-bases",), dict(type=options.positive_int, metavar="B"),
                  "RGCN's basis decomposition W_r = sum_b a_rb V_b with B >= 1 bases (None: one matrix per relation)"),
    "plus_plus": (("--plus-plus",), dict(action="store_true"),
                  "metapath2vec++: negatives drawn within the context node's type"),
    "num_blocks": (("--num-blocks",), dict(type=options.positive_int, metavar="B"),
                   "RGCN's block-diagonal W_r of B >= 1 blocks in the hidden layer (B must divide --hidden)"),
    "readout": (("--readout",), dict(choices=("sum", "mean")),
                "the graph readout of every layer: sum (the GIN paper's) or mean"),
    "eps": (("--eps",), dict(type=options.finite_float, metavar="EPS"),
            "GINConv's eps: the root's weight is 1 + eps (GIN-0: 0); the initial value with --train-eps"),
    "train_eps": (("--train-eps",), dict(action="store_true"),
                  "learn each GINConv's eps (GIN-eps) instead of keeping it fixed"),
    "dropedge": (("--dropedge",), dict(type=options.probability, metavar="P"),
                 "DropEdge: drop each edge with probability P in [0, 1), a fresh subgraph per training step"),
    "norm": (("--norm",), dict(choices=("batch_norm", "layer_norm", "none")),
             "the normalisation inside every graph-transformer layer (the GT paper's choice: batch_norm)"),
    "pe": (("--pe",), dict(choices=("laplacian", "rw", "none")),
           "the positional encoding added to the input: Laplacian eigenvectors (random signs in training), "
           "random-walk return probabilities, or none"),
    "pe_dim": (("--pe-dim",), dict(type=options.positive_int, metavar="K"),
               "eigenvectors (laplacian) or walk steps (rw) of the PE, K >= 1 (None: the paper's for the dataset: "
               "gt PATTERN 2, CLUSTER 10; gps 10; rw 16)"),
    "attn_dropout": (("--attn-dropout",), dict(type=options.probability, metavar="P"),
                     "dropout on the global attention weights in [0, 1) (> 0: the dense attention path)"),
    "conv": (("--conv",), dict(choices=("gin", "gcn", "mean", "none")),
             "the message-passing layer: gps's local MPNN (gin, gcn, none); sbm_gcn's (mean: benchmarking-gnns', "
             "gcn: Kipf & Welling's)"),
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
    t.add_argument("--task", default=task, choices=tuple(TASKS), metavar="TASK",
                   help=f"what to learn: {', '.join(TASKS)} (default: the model's own, node for gcn, gat, sage; "
                        f"see the list above)")
    t.add_argument("--model", default="gcn", choices=tuple(MODELS), metavar="MODEL",
                   help=f"{', '.join(MODELS)} (default gcn; see the list above)")
    chosen = get_task(task)
    _add_data_args(t, chosen.default_dataset, chosen.datasets)
    t.add_argument("--runs", type=options.positive_int, default=1, metavar="N",
                   help="train N >= 1 models, seeds seed, seed+1, ... (default 1)")
    t.add_argument("--seed", type=options.non_negative_int, default=0, metavar="S",
                   help="first seed, S >= 0 (default 0)")
    where = "; ".join(f"{d}: {', '.join(n for n, c in MODELS.items() if d in c.devices)}" for d in DEVICES)
    t.add_argument("--device", default="cpu", choices=DEVICES,
                   help=f"where whole epochs run (default cpu; cuda needs numba-cuda and an NVIDIA GPU); the "
                        f"models each takes: {where}")
    t.add_argument("--save", default=None, type=chosen.save_type, metavar=chosen.save_help[1], help=chosen.save_help[0])
    t.add_argument("--json", action="store_true",
                   help="standard output is one JSON object of the results; every other line goes to standard "
                        "error (default: off)")
    t.add_argument("--quiet", action="store_true", help="no per-epoch lines (default: off)")
    models = t.add_argument_group("model options (left unset: the model's default)")
    for key, (flags, kw, meaning) in MODEL_OPTIONS.items():
        if any(key in c.model_defaults for c in MODELS.values()):
            models.add_argument(*flags, dest=key, default=None, help=_model_option_help(key, meaning), **kw)
    chosen.add_arguments(t.add_argument_group(f"task {chosen.name} options"))
    return t


def _not_applicable(args):
    """The first model option given that ``args.model`` does not take, as an error message; None if all apply."""
    from .models import MODELS
    for key, (flags, _, _) in MODEL_OPTIONS.items():
        if getattr(args, key, None) is not None and key not in MODELS[args.model].model_defaults:
            takers = ", ".join(n for n, c in MODELS.items() if key in c.model_defaults)
            return f"{flags[0]} applies to {takers}, not {args.model}"
    return None


class _SlowStartNotice:
    """Says ``COMPILING`` once on standard error when the first epoch has not ended ``after_s`` seconds after
    ``start``: the Numba kernels compile on a first run (seconds), and load from their cache afterwards."""

    def __init__(self, after_s=1.0, stream=None):
        self._timer = threading.Timer(after_s, self._say)
        self._timer.daemon = True
        self._stream = stream

    def _say(self):
        print(COMPILING, file=self._stream or sys.stderr, flush=True)

    def start(self):
        self._timer.start()
        return self

    def done(self):
        self._timer.cancel()


def cmd_train(args):
    from .tasks import get_task
    task = get_task(args.task)
    problem = _not_applicable(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    hp = {key: getattr(args, key) for key in MODEL_OPTIONS if hasattr(args, key)}   # None = not given
    hp.update(task.hparams_from_args(args))
    task.validate(args.model, args.device, hp)          # every refusal before the data is loaded
    if args.device != "cpu":   # say it in one line before loading anything
        from .kernels.cuda import require_cuda
        try:
            require_cuda()
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    human = sys.stderr if args.json else sys.stdout    # --json: standard output holds the JSON alone
    say = lambda s: print(s, file=human, flush=True)   # noqa: E731
    data = _load_data(args)
    if not args.quiet:
        say(f"{task.describe_data(data)}; model {args.model}, task {task.name}")
    notice = _SlowStartNotice()

    def log(line):                # every epoch line ends the wait for the first one
        notice.done()
        if not args.quiet:
            say(line)
    log.quiet = args.quiet        # a task that draws progress bars leaves them out too
    notice.start()
    try:
        summary, model = task.run(args.model, data, runs=args.runs, seed=args.seed, log=log, device=args.device,
                                  interruptible=True, **hp)
    except KeyboardInterrupt:
        print(f"interrupted after 0 of {args.runs} runs: nothing to summarise", file=sys.stderr, flush=True)
        return 130
    finally:
        notice.done()
    interrupted = summary.get("interrupted", False)
    if interrupted:
        print(f"interrupted after {summary['runs']} of {summary['runs_requested']} runs", file=sys.stderr,
              flush=True)
    say(task.report(summary))
    if args.save:
        path, what = task.save(args.save, model, data, summary)
        say(f"saved the last run's {what} to {path}")
    if args.json:
        print(json.dumps(summary), flush=True)
    return 130 if interrupted else 0


def cmd_predict(args):
    from .io import load_model
    from .loop import model_dtype
    from .nn import accuracy
    from .train import prepare_features
    from .data import NODE_DATASETS
    from .models import get_model_class
    if str(args.load).endswith(".npy"):
        raise ValueError(f"--load {args.load} is an array (train --task embedding --save writes the embedding as "
                         f".npy), not a model: read it with numpy.load")
    model, extra = load_model(args.load)
    cls = get_model_class(model.config.get("model", ""))
    for flag, task in (("graph_level", "graph"), ("temporal", "temporal"), ("hetero", "hetero"),
                       ("inductive", "inductive")):
        if getattr(cls, flag, False):
            raise ValueError(f"--load {args.load} holds a {cls.name} model of --task {task}; predict scores "
                             f"node-classification models (train --task {task} reports its own test scores)")
    if args.dataset is None:     # the dataset the model was trained on, as train --save recorded it
        args.dataset = extra.get("dataset")
        if args.dataset not in NODE_DATASETS:
            raise ValueError(f"--load {args.load} does not record a dataset predict can load (it says "
                             f"{args.dataset!r}): give --dataset, one of {', '.join(NODE_DATASETS)}")
    if args.dataset not in NODE_DATASETS:
        raise ValueError(f"predict scores node classification: --dataset must be one of {', '.join(NODE_DATASETS)}, "
                         f"got {args.dataset}")
    data = _load_data(args)
    for key, have, what in (("in_channels", data.num_features, "input features"),
                            ("out_channels", data.num_classes, "classes")):
        if have != model.config[key]:
            raise ValueError(f"--load {args.load} holds a model of {model.config[key]} {what}; --dataset "
                             f"{data.name} has {have}")
    Z = model.forward(prepare_features(data, dtype=model_dtype(model)), data.graph)
    accs = {k: accuracy(Z, data.y, getattr(data, f"{k}_mask")) for k in ("train", "val", "test")}
    print(f"{args.load} on {data.name}: " + "  ".join(f"{k} {100 * v:.2f} %" for k, v in accs.items()),
          file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(dict(dataset=data.name, **{f"{k}_acc": v for k, v in accs.items()})))
    return 0


def _gradcheck_cases(pattern):
    """{name: case function} of the registered gradient-check cases whose name contains ``pattern``."""
    from .gradcheck.registry import all_cases
    return {name: fn for name, fn in all_cases().items() if pattern is None or pattern.lower() in name.lower()}


def cmd_gradcheck(args):
    """One progress line per case on standard error, then the failed rows (every row with --verbose) and the
    summary line on standard output. A case that raises counts as one failed row naming the exception."""
    from .gradcheck import Row, format_table
    from .kernels import set_cpu_backend
    set_cpu_backend(args.backend)
    cases = _gradcheck_cases(args.only)
    if not cases:
        print(f"error: --only {args.only!r} matches no gradient-check case", file=sys.stderr)
        return 2
    rows, n = [], len(cases)
    for k, (name, fn) in enumerate(cases.items(), 1):
        print(f"[{k}/{n}] {name} ...", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            got = list(fn())
        except Exception as e:   # noqa: BLE001 -- a broken case is a failure to report, not a stop
            got = [Row(case=name, parameter=f"raised {type(e).__name__}: {_one_line(e)}", shape=(),
                       error=float("inf"), passed=False)]
        bad = sum(not r.passed for r in got)
        worst = max((r.error for r in got), default=0.0)
        print(f" {len(got)} row{'s' * (len(got) != 1)}, worst {worst:.1e}, {'ok' if not bad else f'{bad} FAILED'} "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
        rows += got
    failed = [r for r in rows if not r.passed]
    if args.verbose:
        print(format_table(rows) + "\n")
    elif failed:
        print("failed:\n" + format_table(failed) + "\n")
    worst = max((r.error for r in rows), default=0.0)
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed over {n} case(s) (worst max rel err "
          f"{worst:.2e}, tolerance 1e-6, float64, kernels: {args.backend})")
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
    p = Parser(prog="gnn-scratch", description="Graph neural networks from scratch in NumPy and Numba.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a task (default: node classification) and report its score",
                       description=_train_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(t, task)
    t.set_defaults(fn=cmd_train)
    p.train = t

    pr = sub.add_parser("predict", help="restore a saved model and print its accuracy on a dataset")
    pr.add_argument("--load", required=True, type=options.model_input, metavar="FILE[.npz]",
                    help="a model written by train --save, named with or without .npz (required, no default)")
    _add_data_args(pr, default=None, default_help="the dataset the model was trained on, as --save recorded it")
    pr.add_argument("--json", action="store_true",
                    help="standard output is one JSON object of the accuracies; the rest goes to standard error "
                         "(default: off)")
    pr.set_defaults(fn=cmd_predict)

    g = sub.add_parser("gradcheck", help="check every backward against finite differences (float64)",
                       description="Check every backward against central finite differences in float64: one "
                                   "progress line per case on standard error, then the failed rows (all rows "
                                   "with --verbose) and 'N passed, M failed'; exit 1 when any failed.")
    g.add_argument("--only", default=None, metavar="TEXT",
                   help="run only the cases whose name contains TEXT, any case (default: every case)")
    g.add_argument("--verbose", action="store_true",
                   help="print every row (case, tensor, shape, error), not only the failed ones (default: off)")
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

    from .distributed.command import add_arguments as add_embed_arguments, run as cmd_embed
    e = sub.add_parser("embed", help="PinSage item embeddings of a generated user-item graph by layer-wise inference "
                                     "on Dask (needs the distributed extra)",
                       description="Layer-wise PinSage inference on a Dask cluster (a LocalCluster by default): each "
                                   "layer's states stay on the workers, which write the embeddings chunk by chunk.")
    add_embed_arguments(e)
    e.set_defaults(fn=cmd_embed)
    return p


def _task_of(argv):
    """The --task of a train command line (default node), read before the parser is built: the train
    command's options include the chosen task's own. An unknown name is left to the parser to refuse."""
    if argv[:1] != ["train"]:
        return "node"
    from .tasks import TASKS
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=None)
    pre.add_argument("--model", default=None)
    known = pre.parse_known_args(argv[1:])[0]
    task = known.task if known.task is not None else home_task(known.model)
    return task if task in TASKS else "node"


def home_task(model_name):
    """The task a model is trained by when --task is not given: the one its kind of output belongs to
    (a score per graph: graph; a forecast: temporal; an embedding: embedding; a heterogeneous graph's
    target nodes: hetero; the nodes of many graphs: inductive); node for every other model, or a name that
    is not registered."""
    from .models import MODELS
    cls = MODELS.get(model_name)
    for flag, task in (("hetero", "hetero"), ("graph_level", "graph"), ("temporal", "temporal"),
                       ("embedding", "embedding"), ("inductive", "inductive")):
        if getattr(cls, flag, False):
            return task
    return "node"


def _one_line(e):
    """An exception's message on one line (multi-line messages joined)."""
    return " ".join(str(e).split()) or type(e).__name__


def _unrecognized(argv, args, extra):
    """The one-line error for options that no parser took; for ``train``, which other task takes them."""
    said = f"unrecognized arguments: {' '.join(extra)}"
    if getattr(args, "fn", None) is not cmd_train:
        return said
    from .tasks import TASKS, get_task
    flags = [e.split("=")[0] for e in extra if e.startswith("-")]
    takers = []
    for name in TASKS:
        own = options.Parser(add_help=False)       # the options task ``name`` adds (its other ones are common)
        get_task(name).add_arguments(own)
        if name != args.task and flags and all(f in own._option_string_actions for f in flags):
            takers.append(f"--task {name}")
    return f"{said}: options of {' or '.join(takers)}, not of --task {args.task}" if takers else said


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 done; 1 a failed gradient check; 2 a user's mistake, said in one line naming the option (argparse's
    own errors too); 130 interrupted (Ctrl-C). ``--help`` exits through SystemExit(0) as argparse does.
    Nothing ends in a traceback: an unexpected error is one line as well (``GNN_SCRATCH_DEBUG=1`` shows it).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            parser = build_parser(_task_of(argv))
            args, extra = parser.parse_known_args(argv)
            if extra:                    # said by the subcommand's parser: its --help is the one to read
                (parser.train if args.fn is cmd_train else parser).error(_unrecognized(argv, args, extra))
        except SystemExit as e:
            if e.code in (0, None):   # --help
                raise
            return e.code if isinstance(e.code, int) else 2
        return args.fn(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # the reader went away (| head): stop quietly
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 141
    except (ValueError, OSError) as e:
        # A user's mistake (bad file, bad option value, missing data): say it in one line, no traceback.
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:   # noqa: BLE001 -- a bug: still one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"error: unexpected {type(e).__name__}: {_one_line(e)} (set {DEBUG_ENV}=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
