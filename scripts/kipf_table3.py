"""Kipf & Welling (2017), Table 3: the seven propagation models on Cora and CiteSeer, beside the paper's numbers.

    python scripts/kipf_table3.py                       # 10 seeds each, this repository's trainer
    python scripts/kipf_table3.py --protocol both       # and the paper's early stopping, side by side
    python scripts/kipf_table3.py --runs 2 --datasets cora --json table3.json

Models (``gnn_scratch.models.spectral``, and ``gcn`` for the renormalisation trick): cheb K=3,
cheb K=2, first_order, single_param, gcn, first_order_term, mlp; each with the paper's
hyper-parameters (2 layers, hidden 16, dropout 0.5, Adam lr 0.01, L2 5e-4 on the first layer, at most
200 epochs), features row-normalised as in the paper (``prepare_features``), Planetoid public split.

Two protocols (``--protocol``):
  repo   ``gnn_scratch.train.run``: stop after ``--patience`` (10) epochs in which neither the validation
         loss nor the validation accuracy improved; report the test accuracy of the epoch of best
         validation accuracy (ties: lower validation loss).
  paper  the paper's code (gcn/train.py): stop at the first epoch e > 10 whose validation loss exceeds
         the mean of the previous 10; report the test accuracy of the *last* model.
The paper reports the mean of 100 random initialisations; ``--runs`` (10) seeds here. Printed as a
Markdown table: mean ± std of the test accuracy in %, and the paper's figure.
Data: ``--data-root``, else $GNN_SCRATCH_DATA.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnn_scratch.data import NODE_DATASETS, get_dataset  # noqa: E402
from gnn_scratch.loop import evaluate, input_is_data, model_dtype, prepare_features, train_step  # noqa: E402
from gnn_scratch.nn import SoftmaxCrossEntropy  # noqa: E402
from gnn_scratch.tasks import options  # noqa: E402
from gnn_scratch.train import build_for, run  # noqa: E402

# (label, model name, model keyword arguments), in the paper's row order
ROWS = [("Chebyshev filter, K = 3", "cheb", dict(K=3)),
        ("Chebyshev filter, K = 2", "cheb", dict(K=2)),
        ("1st-order model", "first_order", {}),
        ("Single parameter", "single_param", {}),
        ("Renormalization trick (GCN)", "gcn", {}),
        ("1st-order term only", "first_order_term", {}),
        ("Multi-layer perceptron", "mlp", {})]
PAPER = {"cora": [79.5, 81.2, 80.0, 79.2, 81.5, 80.5, 55.1],
         "citeseer": [69.8, 69.6, 68.3, 69.3, 70.3, 68.7, 46.5]}
NAMES = {"cora": "Cora", "citeseer": "CiteSeer"}


def fit_paper(model, data, optimizer, x, epochs=200, window=10):
    """Kipf & Welling's loop: stop when the validation loss exceeds the mean of the previous ``window``;
    returns the test accuracy of the final model (no best-epoch restore)."""
    loss_fn, val_losses, accs = SoftmaxCrossEntropy(), [], None
    with input_is_data(model):
        for epoch in range(epochs):
            train_step(model, x, data.graph, data.y, data.train_mask, optimizer, loss_fn)
            model.eval()
            val_loss, accs = evaluate(model.forward(x, data.graph), data.y, data)
            val_losses.append(val_loss)
            if epoch > window and val_loss > np.mean(val_losses[-(window + 1):-1]):
                break
    return accs[2]


def run_paper(name, data, runs, epochs, **model_kw):
    """Test accuracies of ``runs`` seeds under the paper's protocol."""
    accs, x = [], None
    for seed in range(runs):
        model, opt, _ = build_for(name, data, seed, dict(model_kw, epochs=epochs))
        if x is None:
            x = prepare_features(data, dtype=model_dtype(model))
        accs.append(fit_paper(model, data, opt, x, epochs=epochs))
    return np.array(accs)


def measure(datasets, protocols, runs, epochs, patience, log=print, root=None):
    """{protocol: {dataset: [(mean %, std %) per row]}}; ``root``: the data root (None: $GNN_SCRATCH_DATA)."""
    results = {p: {} for p in protocols}
    for ds in datasets:
        data = get_dataset(ds, root=root)
        for label, name, kw in ROWS:
            for p in protocols:
                t0 = time.perf_counter()
                if p == "repo":
                    summary, _ = run(name, data, runs=runs, epochs=epochs, patience=patience, **kw)
                    acc = np.array(summary["test_acc"])
                else:
                    acc = run_paper(name, data, runs, epochs, **kw)
                results[p].setdefault(ds, []).append((100 * acc.mean(), 100 * acc.std()))
                log(f"{NAMES.get(ds, ds):9s} {label:30s} {p:5s} {100 * acc.mean():5.1f} ± {100 * acc.std():.1f}  "
                    f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return results


def markdown(results, datasets, runs=None):
    """The table: one row per propagation model, per dataset a column per protocol and the paper's figure."""
    protocols = list(results)
    what = dict(repo="ours, repo trainer", paper="ours, paper's stopping")
    head = ["Propagation model", "`--model`"]
    for ds in datasets:
        head += [f"{NAMES.get(ds, ds)}: {what[p]}" for p in protocols]
        if ds in PAPER:
            head.append(f"{NAMES.get(ds, ds)}: published")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r, (label, name, kw) in enumerate(ROWS):
        flag = f"`{name}" + "".join(f" --{k} {v}" for k, v in kw.items()) + "`"
        cells = [label, flag]
        for ds in datasets:
            cells += [f"{results[p][ds][r][0]:.1f} ± {results[p][ds][r][1]:.1f}" for p in protocols]
            if ds in PAPER:
                cells.append(f"{PAPER[ds][r]:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _datasets(text):
    """argparse type of --datasets: comma-separated node-classification datasets (case and blanks ignored)."""
    names = [d.strip().lower() for d in text.split(",") if d.strip()]
    if not names or not all(d in NODE_DATASETS for d in names):
        raise argparse.ArgumentTypeError(f"expected comma-separated datasets among {', '.join(NODE_DATASETS)}, "
                                         f"got {text!r}")
    return names


def main(argv=None):
    ap = options.Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=options.positive_int, default=10,
                    help="seeds per model (default 10; the paper: 100)")
    ap.add_argument("--datasets", default="cora,citeseer", type=_datasets,
                    help=f"comma-separated, among {', '.join(NODE_DATASETS)} (default cora,citeseer)")
    ap.add_argument("--protocol", choices=("repo", "paper", "both"), default="repo",
                    help="early stopping and model selection (default repo; see the module docstring)")
    ap.add_argument("--epochs", type=options.positive_int, default=200, help="epochs at most (default 200)")
    ap.add_argument("--patience", type=options.positive_int, default=10,
                    help="the repo protocol's patience (default 10)")
    ap.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                    help="an existing folder holding planetoid/ind.<name>.* (default: $GNN_SCRATCH_DATA, then the "
                         "cache)")
    ap.add_argument("--json", default=None, type=options.output_file, metavar="FILE",
                    help="also write the numbers to FILE")
    args = ap.parse_args(argv)
    datasets = args.datasets
    protocols = ["repo", "paper"] if args.protocol == "both" else [args.protocol]
    results = measure(datasets, protocols, args.runs, args.epochs, args.patience, root=args.data_root)
    published = ("; published: Kipf & Welling (2017), Table 3, mean of 100 random initialisations"
                 if any(ds in PAPER for ds in datasets) else "")
    print(f"Test accuracy (%), mean ± std over {args.runs} seeds{published}.\n")
    print(markdown(results, datasets, args.runs))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(runs=args.runs, results=results, paper=PAPER,
                                                   rows=[r[0] for r in ROWS]), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
