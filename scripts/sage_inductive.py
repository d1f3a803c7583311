"""GraphSAGE on nodes it never saw: (a) unseen test nodes of Cora / CiteSeer, (b) a second CSBM graph.

(a) Inductive split. Train on the subgraph induced by the training + validation nodes (the test
    nodes and every edge touching them are absent during training; validation picks the epoch as
    usual), then classify the test nodes on the full graph with the same weights. Printed beside
    the transductive figure (the same model trained on the full graph), and beside a milder
    inductive split: the subgraph of every node except the test nodes (the unlabelled nodes and
    their edges stay, so training sees neighbourhoods of realistic size).
(b) "Organism A -> organism B". Train on one CSBM graph, evaluate on a second graph from the same
    generator drawn with another seed. ``csbm`` draws its class means from the seed too, so a second
    seed alone would change what each class looks like (a different generator, not a different
    sample); graph B therefore keeps its own nodes, edges, noise and split but takes A's class
    means: x_B <- x_B - mu_B[y_B] + mu_A[y_B]. The script also prints B as generated, for contrast.

    python scripts/sage_inductive.py [--runs 10] [--datasets cora,citeseer] [--aggr mean]
"""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np

from gnn_scratch.data import csbm, get_dataset
from gnn_scratch.nn import accuracy
from gnn_scratch.sampling import subgraph
from gnn_scratch.tasks import options
from gnn_scratch.train import build_for, fit, prepare_features


def train_on(data_view, x, seed, hparams):
    """A SAGE model trained full batch on ``data_view`` (graph, y, masks); returns (model, Result)."""
    model, opt, hp = build_for("sage", data_view, seed, hparams)
    res = fit(model, data_view, opt, hp["epochs"], hp["patience"], x=x)
    return model.eval(), res


def induced_view(data, seen, label):
    """The dataset restricted to the nodes ``seen`` (sorted ids): its induced subgraph, labels and masks."""
    sub, _ = subgraph(data.graph, seen)
    return SimpleNamespace(name=f"{data.name}[{label}]", graph=sub, y=data.y[seen], num_features=data.num_features,
                           num_classes=data.num_classes, train_mask=data.train_mask[seen],
                           val_mask=data.val_mask[seen], test_mask=np.zeros(seen.size, bool))


def inductive_planetoid(data, runs, hparams):
    """Test accuracies over ``runs`` seeds: (transductive, trained on train+val, trained on all but test), views."""
    x = prepare_features(data)
    seen = [np.flatnonzero(data.train_mask | data.val_mask), np.flatnonzero(~data.test_mask)]
    views = [induced_view(data, seen[0], "train+val"), induced_view(data, seen[1], "all but test")]
    accs = np.zeros((runs, 3))
    for seed in range(runs):
        accs[seed, 0] = train_on(data, x, seed, hparams)[1].test_acc
        for k, (view, nodes) in enumerate(zip(views, seen)):
            model, _ = train_on(view, x[nodes], seed, hparams)
            accs[seed, k + 1] = accuracy(model.forward(x, data.graph), data.y, data.test_mask)
    return accs, views


def with_means_of(b, a):
    """Graph b with a's class means in place of its own (same generator, another sample)."""
    mu_a = a.meta["class_means"].astype(np.float32)
    mu_b = b.meta["class_means"].astype(np.float32)
    x = b.x - mu_b[b.y] + mu_a[b.y]
    return SimpleNamespace(name="csbm B (A's class means)", x=x, y=b.y, graph=b.graph, test_mask=b.test_mask)


def organism_transfer(runs, hparams, **csbm_kw):
    """Per seed: (test acc on A, acc on B with A's means, acc on B as generated)."""
    out = []
    for seed in range(runs):
        a, b = csbm(seed=seed, **csbm_kw), csbm(seed=1000 + seed, **csbm_kw)
        model, res = train_on(a, prepare_features(a), seed, hparams)
        b_same = with_means_of(b, a)
        acc_same = accuracy(model.forward(b_same.x, b.graph), b.y, b.test_mask)
        acc_raw = accuracy(model.forward(prepare_features(b), b.graph), b.y, b.test_mask)
        out.append((res.test_acc, acc_same, acc_raw))
    return np.array(out)


def pm(a):
    return f"{100 * np.mean(a):.1f} ± {100 * np.std(a):.1f}"


PLANETOID = ("cora", "citeseer")       # (a) is the Planetoid split's inductive variant


def _datasets(text):
    """argparse type of --datasets: comma-separated Planetoid datasets (the text, lower-cased, is kept)."""
    if not all(name in PLANETOID for name in text.lower().split(",")):
        raise argparse.ArgumentTypeError(f"expected comma-separated datasets among {', '.join(PLANETOID)}, "
                                         f"got {text!r}")
    return text.lower()


def main(argv=None):
    ap = options.Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=options.positive_int, default=10, help="seeds 0 .. runs - 1 (default 10)")
    ap.add_argument("--datasets", default="cora,citeseer", type=_datasets,
                    help=f"comma-separated, among {', '.join(PLANETOID)} (default cora,citeseer)")
    ap.add_argument("--aggr", default="mean", choices=("mean", "sum", "max", "lstm"))
    ap.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                    help="an existing folder holding planetoid/ind.<name>.* (default: $GNN_SCRATCH_DATA, then the "
                         "cache)")
    args = ap.parse_args(argv)
    hp = dict(aggr=args.aggr)
    print(f"(a) inductive split, SAGE {args.aggr}, {args.runs} seeds, test accuracy at the best validation epoch\n")
    print("| dataset | transductive (full graph) | inductive: trained on train+val subgraph "
          "| inductive: trained on the graph without the test nodes |")
    print("| --- | ---: | ---: | ---: |")
    for name in args.datasets.split(","):
        data = get_dataset(name, root=args.data_root)
        accs, views = inductive_planetoid(data, args.runs, hp)
        size = [f"{v.graph.num_nodes} nodes, {v.graph.num_edges} edges" for v in views]
        print(f"| {name} ({data.graph.num_edges} edges) | {pm(accs[:, 0])} | {pm(accs[:, 1])} ({size[0]}) "
              f"| {pm(accs[:, 2])} ({size[1]}) |", flush=True)
    res = organism_transfer(args.runs, hp)
    print(f"\n(b) CSBM A -> B (2000 nodes, 4 classes, homophily 0.8), SAGE {args.aggr}, {args.runs} seeds\n")
    print("| test accuracy on | mean ± sd |")
    print("| --- | ---: |")
    print(f"| graph A (trained on, its test nodes) | {pm(res[:, 0])} |")
    print(f"| graph B, same generator (A's class means), unseen | {pm(res[:, 1])} |")
    print(f"| graph B as generated (its own class means: another generator) | {pm(res[:, 2])} |")


if __name__ == "__main__":
    main()
