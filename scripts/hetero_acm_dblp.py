"""ACM and DBLP target-node classification: HAN, RGCN (ours and PyG's), metapath2vec and HetGNN, over 10 seeds.

    nice python scripts/hetero_acm_dblp.py            # Markdown tables on stdout, JSON with --json FILE

Needs the ``bench`` extra (torch + torch_geometric) for the PyG rows; ``--no-pyg`` leaves them out.

Protocol. HeCo's versions of ACM (target: 4019 papers, 3 classes) and DBLP (target: 4057 authors, 4
classes) with their split of 20 labelled nodes per class, 1000 validation and 1000 test nodes
(``data.hetero``; ``--split 40`` / ``60`` for the larger ones). Seeds 0..9 (``--runs``) on that one
split: each seed changes the initialisation, dropout and (metapath2vec, HetGNN) the walks.

* HAN (``models.hetero.HAN``): ``HANConv`` on the target type's features and metapath graphs (ACM: PAP,
  PSP; DBLP: APA, APCPA, APTPA), 8 heads of 8 (hidden 64), attention dropout 0.6, a linear classifier;
  Adam lr 0.005, weight decay 0.001, at most 200 epochs, patience 100 (the HAN paper's setting).
* RGCN (``models.hetero.RGCN``): a Linear per featured node type and a learned table per featureless
  one to width 64, two ``RGCNConv`` over every relation and its inverse (mean aggregation, root
  weight, no basis decomposition), ReLU and dropout 0.5 between; Adam lr 0.01, weight decay 5e-4, at
  most 200 epochs, patience 50.
* Both: the epoch of best validation accuracy (ties: lower validation loss) is kept; its test
  Macro-F1 and Micro-F1 are reported. PyG's rows train ``bench.pyg_hetero``'s twins -- the same
  architecture on ``torch_geometric.nn.HANConv`` / ``RGCNConv``, the same loop, torch's own
  initialisation (``torch.manual_seed(seed)``) -- with the same hyper-parameters and split.
* metapath2vec and HetGNN learn without labels; a logistic-regression probe on the target nodes'
  embeddings is fitted on the 20-per-class training nodes with its penalty chosen on the validation
  nodes (``tasks.hetero``); their options are the library's defaults (see their docstrings).

Numba, OpenBLAS and torch run on one thread each.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from gnn_scratch.data import HETERO_DATASETS, get_dataset  # noqa: E402
from gnn_scratch.tasks import get_task, options  # noqa: E402

SUPERVISED = ("han", "rgcn")
UNSUPERVISED = ("metapath2vec", "hetgnn")


def _fmt(values):
    v = 100 * np.asarray(values)
    return f"{v.mean():.2f} ± {v.std():.2f}"


def _runs_only(line):
    """The task's log without its per-epoch lines."""
    if not line.startswith("epoch"):
        print(line, file=sys.stderr, flush=True)


def main(argv=None):
    p = options.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="acm,dblp", type=options.names(HETERO_DATASETS, "datasets"),
                   help=f"comma-separated, among {', '.join(HETERO_DATASETS)} (default acm,dblp)")
    p.add_argument("--models", default=",".join(SUPERVISED + UNSUPERVISED),
                   type=options.names(SUPERVISED + UNSUPERVISED, "models"),
                   help=f"comma-separated, among {', '.join(SUPERVISED + UNSUPERVISED)} (default: all)")
    p.add_argument("--runs", type=options.positive_int, default=10, help="seeds 0 .. runs - 1 (default 10)")
    p.add_argument("--split", type=int, default=20, choices=(20, 40, 60))
    p.add_argument("--epochs", type=options.positive_int, default=None,
                   help="cap the supervised models' epochs (default: theirs)")
    p.add_argument("--patience", type=options.positive_int, default=None,
                   help="the supervised models' patience (default: theirs)")
    p.add_argument("--pyg-runs", type=options.positive_int, default=None,
                   help="seeds for the PyG twins (default: --runs)")
    p.add_argument("--no-pyg", action="store_true")
    p.add_argument("--no-ours", action="store_true", help="only the PyG twins (to run them in a separate process)")
    p.add_argument("--json", default=None, type=options.output_file, metavar="FILE")
    args = p.parse_args(argv)
    task = get_task("hetero")
    for model in args.models.split(","):            # every model's settings checked before any data is read
        hp = {} if model in UNSUPERVISED else dict(epochs=args.epochs, patience=args.patience)
        try:
            task.validate(model, hparams=hp)
        except ValueError as e:
            p.error(f"{model}: {e}")
    rows, detail = [], {}
    for name in args.datasets.split(","):
        data = get_dataset(name, split=args.split)
        print(task.describe_data(data), file=sys.stderr, flush=True)
        for model in args.models.split(","):
            t0 = time.perf_counter()
            hp = {} if model in UNSUPERVISED else {k: v for k, v in dict(epochs=args.epochs, patience=args.patience).items()
                                                   if v is not None}
            row = dict(dataset=name, model=model, ours=None)
            if not args.no_ours:
                summary, _ = task.run(model, data, runs=args.runs, seed=0, log=_runs_only, **hp)
                ours = dict(macro=summary["macro_f1"]["all"], micro=summary["micro_f1"]["all"],
                            seconds=time.perf_counter() - t0, beta=summary.get("semantic_attention"),
                            epochs_run=[r.get("epochs_run") for r in summary["runs_detail"]])
                detail[f"{name}/{model}/ours"] = row["ours"] = ours
            if model in SUPERVISED and not args.no_pyg:
                from gnn_scratch.bench.pyg_hetero import train
                t0 = time.perf_counter()
                res = []
                for s in range(args.runs if args.pyg_runs is None else args.pyg_runs):
                    res.append(train(model, data, seed=s, **hp))
                    print(f"PyG {model} {name} seed {s}: Macro-F1 {res[-1]['macro_f1']:.4f}  Micro-F1 "
                          f"{res[-1]['micro_f1']:.4f}  best epoch {res[-1]['best_epoch']}  ({res[-1]['seconds']:.0f} s)",
                          file=sys.stderr, flush=True)
                pyg = dict(macro=[r["macro_f1"] for r in res], micro=[r["micro_f1"] for r in res],
                           seconds=time.perf_counter() - t0, epoch_ms=[r["epoch_ms"] for r in res])
                print(f"PyG {model} {name}: Macro-F1 {_fmt(pyg['macro'])}  Micro-F1 {_fmt(pyg['micro'])}",
                      file=sys.stderr, flush=True)
                detail[f"{name}/{model}/pyg"] = pyg
                row["pyg"] = pyg
            rows.append(row)
    print(f"\nHeCo's split of {args.split} labelled nodes per class, {args.runs} seeds, test Macro-F1 / Micro-F1 "
          f"(%, mean ± std)\n")
    print("| dataset | model | ours Macro-F1 | ours Micro-F1 | PyG Macro-F1 | PyG Micro-F1 | Micro-F1 ours − PyG |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        o, g = r["ours"], r.get("pyg")
        gap = f"{100 * (np.mean(o['micro']) - np.mean(g['micro'])):+.2f}" if g and o else "–"
        print(f"| {r['dataset'].upper()} | {r['model']} | {_fmt(o['macro']) if o else '–'} | "
              f"{_fmt(o['micro']) if o else '–'} | {_fmt(g['macro']) if g else '–'} | {_fmt(g['micro']) if g else '–'} "
              f"| {gap} |")
    betas = [(r["dataset"], r["ours"]["beta"]) for r in rows if r["ours"] and r["ours"].get("beta")]
    if betas:
        print("\nHAN's semantic attention β per metapath (mean over seeds):")
        for name, beta in betas:
            print(f"- {name.upper()}: " + ", ".join(f"{k} {v:.3f}" for k, v in beta.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(detail, f, indent=1)


if __name__ == "__main__":
    main()
