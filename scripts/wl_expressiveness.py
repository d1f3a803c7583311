"""Pairs of graphs told apart by 1-WL and by untrained GNNs (see gnn_scratch/analysis/expressiveness.py).

Families: all connected graphs on 2..7 nodes (995 graphs, pairwise non-isomorphic) and the 15 strongly
regular graphs with parameters (25, 12, 5, 6). Prints a markdown table (pairs separated per model, the
largest "equal" / smallest "different" scaled distance) and, per model and family, the smallest pair
(fewest nodes, then edges) that 1-WL separates but the model does not, as edge lists.

    python scripts/wl_expressiveness.py [--layers 5] [--hidden 32] [--seed 0] [--tol 1e-10] [--act elu relu]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from gnn_scratch.analysis.expressiveness import MODELS, READOUT, TOL, pair_table
from gnn_scratch.analysis.wl import wl_graph_classes
from gnn_scratch.data.graph6 import load_wl_graphs
from gnn_scratch.tasks import options

LABEL = {"gin": "GIN (sum, 2-layer MLP, eps = sqrt2 - 1)", "sum": "GraphConv(aggr='add')", "gcn": "GCNConv (sym. norm.)",
         "mean": "GraphConv(aggr='mean')", "max": "GraphConv(aggr='max')"}


def edges(g):
    ei, n = g
    return f"n={n}: " + " ".join(f"{a}-{b}" for a, b in ei.T.tolist() if a < b)


def main(argv=None):
    p = options.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=options.positive_int, default=5)
    p.add_argument("--hidden", type=options.positive_int, default=32)
    p.add_argument("--seed", type=options.non_negative_int, default=0)
    p.add_argument("--tol", type=options.non_negative_float, default=TOL,
                   help=f"scaled distance at most this counts as equal, >= 0 (default {TOL:g})")
    p.add_argument("--act", nargs="+", default=["elu", "relu"], choices=["elu", "relu"],
                   help="activations to run (one table each)")
    p.add_argument("--root", default=None, type=options.existing_folder, metavar="DIR",
                   help="the data root holding wl/ (default: $GNN_SCRATCH_DATA, then the cache)")
    args = p.parse_args(argv)
    families = {
        "connected, 2..7 nodes": sum((load_wl_graphs(f"graph{k}c", args.root) for k in range(2, 8)), []),
        "SR(25,12,5,6)": load_wl_graphs("sr251256", args.root),
    }
    for act in args.act:
        print(f"\n## activation {act}\n")
        table(families, args, act)


def table(families, args, act):
    results = {}
    for fam, graphs in families.items():
        classes = wl_graph_classes(graphs)
        final = len(set(classes[-1].tolist()))
        needed = int(np.argmax([len(set(r.tolist())) == final for r in classes]))
        t0 = time.perf_counter()
        results[fam] = pair_table(graphs, MODELS, args.layers, args.hidden, args.seed, args.tol, act)
        print(f"{fam}: {len(graphs)} graphs, {final} 1-WL classes, 1-WL rounds needed {needed} "
              f"(layers {args.layers}); {time.perf_counter() - t0:.1f} s", flush=True)
        if needed > args.layers:
            print(f"  warning: {args.layers} layers < the {needed} rounds 1-WL needs on this family")
    fams = list(families)
    print()
    print("| model | readout | " + " | ".join(f"{f}: pairs separated" for f in fams) + " | beyond 1-WL | "
          "largest 'equal' / smallest 'different' scaled distance |")
    print("|---|---|" + "---|" * len(fams) + "---|---|")
    print("| 1-WL | - | " + " | ".join(f"{results[f]['wl']} / {results[f]['pairs']}" for f in fams) + " | - | - |")
    for m in MODELS:
        cells = [f"{results[f]['models'][m]['separated']} / {results[f]['pairs']}" for f in fams]
        beyond = sum(results[f]["models"][m]["beyond_wl"] for f in fams)
        r = results[fams[0]]["models"][m]
        fmt = lambda v: "-" if v is None else f"{v:.1e}"           # noqa: E731
        print(f"| {LABEL[m]} | {READOUT[m]} | " + " | ".join(cells) + f" | {beyond} | "
              f"{fmt(r['max_equal'])} / {fmt(r['min_different'])} |")
    print()
    for f in fams:
        for m in MODELS:
            pair = results[f]["models"][m]["smallest_missed"]
            if pair is not None:
                g = families[f]
                print(f"- {LABEL[m]}, {f}: smallest pair 1-WL separates but the model confuses: "
                      f"[{edges(g[pair[0]])}] vs [{edges(g[pair[1]])}]")
            else:
                print(f"- {LABEL[m]}, {f}: confuses no pair that 1-WL separates")


if __name__ == "__main__":
    main()
