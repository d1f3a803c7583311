"""Over-squashing, measured with the library's own backward: PNGs and a Markdown table from one command.

    python scripts/oversquashing.py --out docs/img                     # the full run (about 15 min, 2 cores)
    python scripts/oversquashing.py --out /tmp/sq --quick              # a smoke run (a minute)

Three figures (``--out``):
  oversquashing_cora.png        ||dh_i/dx_j||_F against the hop distance d(j, i) on Cora, for GCN stacks of
                                several depths L, untrained (Glorot init) and trained (Adam on the public
                                split), averaged over random target nodes i. Each target's row is divided by
                                its sum over all j (Xu et al.'s influence distribution), so depths compare.
  oversquashing_tree.png        the same on one Tree-NeighborsMatch tree of the largest depth r, the root as
                                the target (leaves are r hops away), for the models trained below, with and
                                without the fully-adjacent last layer, and their untrained twins.
  neighbors_match_accuracy.png  Tree-NeighborsMatch training accuracy against r, with and without +FA.
The accuracy table is printed as Markdown (and written to ``--table`` if given).

Sensitivity (``gnn_scratch.analysis.oversquashing.sensitivity``): F_out backward passes per target with a
one-hot upstream gradient; exact (tests/test_oversquashing.py checks it against finite differences).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gnn_scratch.analysis.oversquashing import (CONVS, NeighborsMatchNet, has_gin, hop_distances,  # noqa: E402
                                                sensitivity, sensitivity_by_hop, train_neighbors_match)
from gnn_scratch.data import get_dataset, row_normalize  # noqa: E402
from gnn_scratch.data.neighbors_match import MAX_DEPTH, tree_neighbors_match  # noqa: E402
from gnn_scratch.graph.csr import Graph  # noqa: E402
from gnn_scratch.loop import train_step  # noqa: E402
from gnn_scratch.nn import GCNConv, ReLU, Sequential, SoftmaxCrossEntropy, accuracy  # noqa: E402
from gnn_scratch.optim import Adam  # noqa: E402
from gnn_scratch.tasks import options  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ============================================================================ Cora
def gcn_stack(in_channels, hidden, out_channels, L, seed):
    layers = {}
    for k in range(L):
        fi = in_channels if k == 0 else hidden
        fo = out_channels if k == L - 1 else hidden
        layers[f"conv{k}"] = GCNConv(fi, fo, seed=seed + k)
        if k < L - 1:
            layers[f"act{k}"] = ReLU()
    return Sequential(**layers)


CORA_NODES = 2708          # Planetoid's Cora, a fixed graph: --cora-targets is checked against it before any work


def cora_sensitivity(depths, num_targets, epochs, seed):
    ds = get_dataset("cora")
    X = np.asarray(row_normalize(ds.x).toarray(), dtype=np.float32)
    g = Graph.from_edge_index(ds.edge_index, num_nodes=X.shape[0])
    rng = np.random.default_rng(seed)
    targets = np.sort(rng.choice(X.shape[0], size=num_targets, replace=False))
    D = hop_distances(g, targets)
    out, accs = {}, {}
    for L in depths:
        model = gcn_stack(X.shape[1], 16, ds.num_classes, L, seed)
        t0 = time.perf_counter()
        out[("untrained", L)] = sensitivity_by_hop(sensitivity(model, X, g, targets), D, normalize=True)
        if epochs:
            opt, loss = Adam(model.parameters(), lr=0.01, weight_decay=5e-4), SoftmaxCrossEntropy()
            for _ in range(epochs):
                train_step(model, X, g, ds.y, ds.train_mask, opt, loss)
            accs[L] = float(accuracy(model.eval().forward(X, g), ds.y, ds.test_mask))
            out[("trained", L)] = sensitivity_by_hop(sensitivity(model, X, g, targets), D, normalize=True)
        log(f"cora L={L}: {time.perf_counter() - t0:.1f}s" + (f", test acc {accs[L]:.3f}" if epochs else ""))
    return out, accs, num_targets


def plot_cora(out, depths, trained, path):
    kinds = ["untrained"] + (["trained"] if trained else [])
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 3.8), sharey=True, squeeze=False)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(depths)))
    for ax, kind in zip(axes[0], kinds):
        for c, L in zip(colours, depths):
            hops, mean, _ = out[(kind, L)]
            keep = (hops <= L) & (mean > 0)
            ax.semilogy(hops[keep], mean[keep], "o-", color=c, label=f"L = {L}")
        ax.set_title(f"Cora, GCN ({kind})")
        ax.set_xlabel("hop distance d(i, j)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean  ||∂h_i/∂x_j||_F / Σ_j ||∂h_i/∂x_j||_F")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ============================================================================ Tree-NeighborsMatch
PROTOCOL = dict(hidden_channels=32, lr=3e-3, batch_size=128, eval_every=10)


def neighbors_match_table(depths, convs, trees, epochs, time_limit, seed):
    results = {}
    for r in depths:
        for conv in convs:
            for fa in (False, True):
                res = train_neighbors_match(r, conv=conv, fully_adjacent=fa, num_trees=trees(r), epochs=epochs,
                                            time_limit=time_limit(r), seed=seed, **PROTOCOL)
                log(f"r={r} {conv}{'+FA' if fa else ''}: train acc {res['train_acc']:.3f} after {res['epochs']} "
                    f"epochs, {res['seconds']:.0f}s")
                results[(r, conv, fa)] = res
    return results


def markdown_table(results, depths, convs, trees, epochs, time_limit):
    cols = [(c, fa) for c in convs for fa in (False, True)]
    head = "| r | trees | classes | " + " | ".join(f"{c.upper()}{' +FA' if fa else ''}" for c, fa in cols) + " |"
    lines = [head, "|" + "---|" * (3 + len(cols))]
    for r in depths:
        cells = []
        for c, fa in cols:
            res = results[(r, c, fa)]
            cells.append(f"{res['train_acc']:.2f} ({res['epochs']} ep)")
        lines.append(f"| {r} | {trees(r)} | {2 ** r} | " + " | ".join(cells) + " |")
    p = PROTOCOL
    lines.append("")
    lines.append(f"Train accuracy at the roots (best over training, measured every {p['eval_every']} epochs), "
                 f"one seed. r + 1 layers of width {p['hidden_channels']}, residual + ReLU, linear encoder of the "
                 f"one-hot (key, label) features, linear read-out; Adam lr {p['lr']}, mini-batches of "
                 f"{p['batch_size']} trees, at most {epochs} epochs or {', '.join(f'{time_limit(r):.0f}s' for r in depths)}"
                 f" (r = {', '.join(map(str, depths))}), stopping at 100 %. +FA: the last layer runs on edges from "
                 "every node of a tree to its root. (n ep) = epochs run.")
    return "\n".join(lines)


def plot_accuracy(results, depths, convs, path):
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for c, colour in zip(convs, ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]):
        for fa in (False, True):
            ax.plot(depths, [results[(r, c, fa)]["train_acc"] for r in depths], "o-" if not fa else "s--",
                    color=colour, label=f"{c.upper()}{' +FA' if fa else ''}")
    ax.plot(depths, [1 / 2 ** r for r in depths], ":", color="grey", label="chance 1/2^r")
    ax.set_xlabel("tree depth r (r + 1 layers)")
    ax.set_ylabel("train accuracy")
    ax.set_xticks(depths)
    ax.set_ylim(0, 1.05)
    ax.set_title("Tree-NeighborsMatch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def tree_sensitivity(results, r, convs, seed):
    """Per-hop sensitivity of the root of one depth-r tree, trained models and their untrained twins."""
    one = tree_neighbors_match(r, 1, seed=seed + 100)
    D = hop_distances(one.graph, [0])
    curves = {}
    for conv in convs:
        for fa in (False, True):
            trained = results[(r, conv, fa)]["model"]
            fresh = NeighborsMatchNet(one.x.shape[1], one.num_classes, r + 1, conv=conv,
                                      hidden_channels=PROTOCOL["hidden_channels"], fully_adjacent=fa, seed=seed + 1)
            for kind, model in (("trained", trained), ("untrained", fresh)):
                curves[(conv, fa, kind)] = sensitivity_by_hop(sensitivity(model, one.x, one.graph, [0]), D,
                                                              normalize=True)
    return curves


def plot_tree(curves, r, convs, path):
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.8), sharey=True)
    for ax, kind in zip(axes, ("untrained", "trained")):
        for c, colour in zip(convs, ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]):
            for fa in (False, True):
                hops, mean, _ = curves[(c, fa, kind)]
                keep = mean > 0
                ax.semilogy(hops[keep], mean[keep], "o-" if not fa else "s--", color=colour,
                            label=f"{c.upper()}{' +FA' if fa else ''}")
        ax.set_title(f"Tree-NeighborsMatch r = {r}, root as target ({kind})")
        ax.set_xlabel("hop distance to the root (leaves at r)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("mean normalised ||∂h_root/∂x_j||_F")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ============================================================================ main
def _tree_depth(text):
    """argparse type of --depths: a Tree-NeighborsMatch depth r, an integer in 1 .. MAX_DEPTH."""
    try:
        r = int(text)
    except ValueError:
        r = 0
    if not 1 <= r <= MAX_DEPTH:
        raise argparse.ArgumentTypeError(f"expected a tree depth, an integer in 1 .. {MAX_DEPTH}, got {text!r}")
    return r


def main(argv=None):
    convs_here = tuple(c for c in CONVS if c != "gin" or has_gin())
    ap = options.Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/img", help="directory for the PNGs (created if missing)")
    ap.add_argument("--table", default=None, type=options.output_file,
                    help="also write the Markdown tables to this file")
    ap.add_argument("--quick", action="store_true", help="a smoke run: small sizes everywhere")
    ap.add_argument("--seed", type=options.non_negative_int, default=0)
    ap.add_argument("--depths", type=_tree_depth, nargs="+", default=[2, 3, 4, 5],
                    help=f"tree depths r, each in 1 .. {MAX_DEPTH}")
    ap.add_argument("--convs", nargs="+", default=None, choices=convs_here,
                    help="layers for NeighborsMatch (default gcn gat, and gin when the library has GINConv)")
    ap.add_argument("--epochs", type=options.positive_int, default=400, help="NeighborsMatch epochs (at most)")
    ap.add_argument("--time-scale", type=options.finite_positive_float, default=1.0,
                    help="multiply every NeighborsMatch run's time limit (the default fits ~15 min; r >= 4 needs more to converge)")
    ap.add_argument("--cora-depths", type=options.positive_int, nargs="+", default=[2, 4, 6, 8],
                    help="depths L of the GCN stacks on Cora")
    ap.add_argument("--cora-targets", type=options.positive_int, default=40, help="random target nodes on Cora")
    ap.add_argument("--cora-epochs", type=options.non_negative_int, default=200, help="0: untrained only")
    args = ap.parse_args(argv)
    if args.cora_targets > CORA_NODES:
        ap.error(f"argument --cora-targets: expected at most Cora's {CORA_NODES} nodes, got {args.cora_targets}")
    os.makedirs(args.out, exist_ok=True)
    convs = args.convs or (["gcn", "gat"] + (["gin"] if has_gin() else []))
    t_all = time.perf_counter()

    if args.quick:
        args.depths, args.epochs, args.cora_depths, args.cora_targets, args.cora_epochs = [2, 3], 30, [2, 4], 5, 20
        def trees(r): return 200
        def time_limit(r): return 20.0
    else:
        # more trees as r grows (more classes; fewer trees would let the network memorise them), and a time
        # budget per run that keeps the whole script near 15 minutes on two shared cores
        def trees(r): return {2: 1000, 3: 2000}.get(r, 3000)
        scale = 2.0 / len(convs)                  # the same total with a third layer type (GIN)
        def time_limit(r): return args.time_scale * scale * {2: 30.0, 3: 45.0, 4: 70.0}.get(r, 90.0)

    cora, cora_acc, T = cora_sensitivity(args.cora_depths, args.cora_targets, args.cora_epochs, args.seed)
    plot_cora(cora, args.cora_depths, bool(args.cora_epochs), Path(args.out) / "oversquashing_cora.png")

    results = neighbors_match_table(args.depths, convs, trees, args.epochs, time_limit, args.seed)
    table = markdown_table(results, args.depths, convs, trees, args.epochs, time_limit)
    plot_accuracy(results, args.depths, convs, Path(args.out) / "neighbors_match_accuracy.png")
    r_max = max(args.depths)
    curves = tree_sensitivity(results, r_max, convs, args.seed)
    plot_tree(curves, r_max, convs, Path(args.out) / "oversquashing_tree.png")

    # the per-hop numbers behind the figures, as tables
    hop_rows = ["| model | " + " | ".join(f"d = {d}" for d in range(max(args.cora_depths) + 1)) + " |",
                "|---|" + "---|" * (max(args.cora_depths) + 1)]
    for (kind, L), (hops, mean, _) in sorted(cora.items(), key=lambda kv: (kv[0][0] != "untrained", kv[0][1])):
        row = {int(h): m for h, m in zip(hops, mean)}
        name = f"GCN L={L} {kind}" + (f" (test acc {cora_acc[L]:.3f})" if kind == "trained" else "")
        hop_rows.append(f"| {name} | " + " | ".join(f"{row[d]:.1e}" if d in row and d <= L else "–"
                                                     for d in range(max(args.cora_depths) + 1)) + " |")
    tree_rows = ["| model | " + " | ".join(f"d = {d}" for d in range(r_max + 1)) + " |",
                 "|---|" + "---|" * (r_max + 1)]
    for (conv, fa, kind), (hops, mean, _) in curves.items():
        row = {int(h): m for h, m in zip(hops, mean)}
        tree_rows.append(f"| {conv.upper()}{' +FA' if fa else ''} {kind} | "
                         + " | ".join(f"{row.get(d, 0.0):.1e}" for d in range(r_max + 1)) + " |")
    text = "\n".join([
        "### Tree-NeighborsMatch: train accuracy vs depth", "", table, "",
        f"### Sensitivity on Cora (mean normalised ||∂h_i/∂x_j||_F at hop distance d, {T} random targets)", "",
        "\n".join(hop_rows), "",
        f"### Sensitivity on a Tree-NeighborsMatch tree (r = {r_max}, root as target; per node at distance d)", "",
        "\n".join(tree_rows), "",
        f"Total time {time.perf_counter() - t_all:.0f}s.",
    ])
    print(text)
    if args.table:
        Path(args.table).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
