"""Deep Graph Infomax on Cora, evaluated as the paper: 10 DGI seeds x 50 logistic regressions, a Markdown table.

Each seed trains ``gnn_scratch.embed.dgi.DGI`` as the reference code (PetarV-/DGI, execute.py) does:
row-normalised features, GCN encoder with 512 channels and one PReLU slope, Adam lr 0.001, no weight
decay, a fresh row shuffle every epoch, early stopping with patience 20 on the training loss, the
best-loss weights kept. The real graph's embeddings are then frozen and 50 logistic regressions
(fresh Xavier init each, Adam lr 0.01, 100 epochs on the 140 Planetoid training nodes) are scored on
the 1000 test nodes. Paper (Veličković et al. 2019, Table 2): 82.3 ± 0.6.

    nice python scripts/dgi_cora.py [--seeds 10] [--runs 50] [--out dgi_cora.md] [--data-root DIR]
"""
from __future__ import annotations

import time

import numpy as np

from gnn_scratch.data import load_planetoid
from gnn_scratch.data.dataset import row_normalize
from gnn_scratch.device import to_host
from gnn_scratch.embed.dgi import DGI, logreg_accuracies
from gnn_scratch.tasks import options

PAPER = "82.3 ± 0.6"


def run_seed(x, data, seed, runs, hidden):
    """One DGI training and its ``runs`` probes: a dict of what the table shows."""
    t0 = time.perf_counter()
    model = DGI(x.shape[1], hidden, seed=seed)
    fit = model.fit(x, data.graph, seed=seed)
    t_train = time.perf_counter() - t0
    Z = to_host(model.embed(x, data.graph))
    t0 = time.perf_counter()
    accs = logreg_accuracies(Z, data.y, np.flatnonzero(data.train_mask), np.flatnonzero(data.test_mask), runs=runs,
                             seed=seed)
    return dict(seed=seed, epochs=fit.epochs, best_epoch=fit.best_epoch, best_loss=fit.best_loss, accs=accs,
                t_train=t_train, t_probe=time.perf_counter() - t0)


def table(rows, runs):
    means = np.array([r["accs"].mean() for r in rows])
    pooled = np.concatenate([r["accs"] for r in rows])
    lines = [f"DGI on Cora (Planetoid split), test accuracy (%) of {runs} logistic regressions per DGI seed; "
             f"paper {PAPER}.", "",
             "| DGI seed | epochs run | best epoch | best loss | test accuracy (mean ± std over the probes) "
             "| train time (s) | probe time (s) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['epochs']} | {r['best_epoch']} | {r['best_loss']:.4f} | "
                     f"{r['accs'].mean():.2f} ± {r['accs'].std():.2f} | {r['t_train']:.1f} | {r['t_probe']:.1f} |")
    lines += ["",
              f"**Mean over {len(rows)} seeds: {means.mean():.2f} ± {means.std():.2f}** (std of the seed means); "
              f"all {pooled.size} probes: {pooled.mean():.2f} ± {pooled.std():.2f}; "
              f"range of the seed means {means.min():.2f} – {means.max():.2f}. Paper: {PAPER}.",
              f"Time: {sum(r['t_train'] for r in rows):.0f} s training, {sum(r['t_probe'] for r in rows):.0f} s "
              f"probing in all."]
    return "\n".join(lines)


def main(argv=None):
    ap = options.Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=options.positive_int, default=10, help="DGI seeds (default 10)")
    ap.add_argument("--first-seed", type=options.non_negative_int, default=0,
                    help="the seeds are first-seed .. first-seed + seeds - 1 (default 0)")
    ap.add_argument("--runs", type=options.positive_int, default=50, help="logistic regressions per DGI seed")
    ap.add_argument("--hidden", type=options.positive_int, default=512)
    ap.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                    help="an existing folder holding planetoid/ind.cora.* (default: $GNN_SCRATCH_DATA, then the cache)")
    ap.add_argument("--out", default=None, type=options.output_file, help="write the Markdown table here too")
    args = ap.parse_args(argv)
    data = load_planetoid("cora", root=args.data_root)
    x = row_normalize(data.x)                      # the reference's preprocess_features
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rows.append(run_seed(x, data, seed, args.runs, args.hidden))
        r = rows[-1]
        print(f"seed {seed}: {r['epochs']} epochs (best {r['best_epoch']}, loss {r['best_loss']:.4f}), "
              f"test {r['accs'].mean():.2f} ± {r['accs'].std():.2f}  [{r['t_train']:.1f} s + {r['t_probe']:.1f} s]",
              flush=True)
    text = table(rows, args.runs)
    print("\n" + text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
