"""GraphSAGE trained without labels (random-walk positives, degree^0.75 negatives), evaluated by a linear probe.

The embeddings (SAGE, 2 layers, L2-normalised output) are trained on the unsupervised loss of
``gnn_scratch.unsupervised`` with sampled blocks, then frozen; a logistic-regression probe is fitted
on the labelled training nodes and scored on the test nodes. Baselines with the same probe: the raw
(row-normalised) features, and the same SAGE with its initial random weights (mean aggregation
alone smooths features over neighbourhoods, so that baseline is not weak).

    python scripts/sage_unsupervised.py [--dataset cora] [--runs 3] [--steps 300]
"""
from __future__ import annotations

import numpy as np

from gnn_scratch.data import NODE_DATASETS, get_dataset
from gnn_scratch.minibatch import layerwise_inference
from gnn_scratch.models.sage import SAGE
from gnn_scratch.optim import Adam
from gnn_scratch.tasks import options
from gnn_scratch.train import prepare_features
from gnn_scratch.unsupervised import LogisticRegressionProbe, train_unsupervised


def probe_accuracy(Z, data, l2):
    Z = np.asarray(Z.toarray() if hasattr(Z, "toarray") else Z, dtype=np.float64)
    probe = LogisticRegressionProbe(data.num_classes, l2=l2).fit(Z[data.train_mask], data.y[data.train_mask])
    return probe.score(Z[data.test_mask], data.y[data.test_mask])


def main(argv=None):
    ap = options.Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cora", type=str.lower, choices=NODE_DATASETS, metavar="NAME",
                    help=f"a node-classification dataset: {', '.join(NODE_DATASETS)} (default cora)")
    ap.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                    help="an existing folder holding planetoid/ind.<name>.* (default: $GNN_SCRATCH_DATA, then the "
                         "cache)")
    ap.add_argument("--runs", type=options.positive_int, default=3, help="seeds 0 .. runs - 1 (default 3)")
    ap.add_argument("--steps", type=options.positive_int, default=300, help="training steps (default 300)")
    ap.add_argument("--batch-size", type=options.positive_int, default=256, help="walk start nodes per step")
    ap.add_argument("--dim", type=options.positive_int, default=64, help="embedding width")
    ap.add_argument("--aggr", default="mean", choices=("mean", "sum", "max", "lstm"))
    ap.add_argument("--l2", type=options.non_negative_float, default=1e-3, help="the probe's L2 penalty, >= 0")
    args = ap.parse_args(argv)
    data = get_dataset(args.dataset, root=args.data_root)
    x = prepare_features(data)
    raw = probe_accuracy(x, data, args.l2)
    rand, trained, final_loss = [], [], []
    for seed in range(args.runs):
        model = SAGE(data.num_features, args.dim, hidden_channels=64, dropout=0.0, aggr=args.aggr, normalize=True,
                     seed=seed)
        rand.append(probe_accuracy(layerwise_inference(model, x, data.graph), data, args.l2))
        losses = train_unsupervised(model, data.graph, x, Adam(model.parameters(), lr=0.01), steps=args.steps,
                                    batch_size=args.batch_size, walk_length=5, num_negatives=20, fanouts=[25, 10],
                                    seed=seed)
        final_loss.append(np.mean(losses[-20:]))
        trained.append(probe_accuracy(layerwise_inference(model, x, data.graph), data, args.l2))
        print(f"seed {seed}: loss {np.mean(losses[:20]):.3f} -> {final_loss[-1]:.3f}; probe test accuracy "
              f"random SAGE {100 * rand[-1]:.1f} %, trained {100 * trained[-1]:.1f} %", flush=True)
    pm = lambda a: f"{100 * np.mean(a):.1f} ± {100 * np.std(a):.1f}"
    print(f"\n{args.dataset}, logistic-regression probe on the {int(data.train_mask.sum())} training labels, "
          f"test accuracy ({args.runs} seeds)\n")
    print("| embedding | test accuracy |")
    print("| --- | ---: |")
    print(f"| raw features | {100 * raw:.1f} |")
    print(f"| SAGE {args.aggr}, random weights | {pm(rand)} |")
    print(f"| SAGE {args.aggr}, unsupervised loss ({args.steps} steps) | {pm(trained)} |")


if __name__ == "__main__":
    main()
