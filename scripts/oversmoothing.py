"""Over-smoothing on Cora: Dirichlet energy, MAD and MADGap at every layer, and accuracy against depth.

    nice python scripts/oversmoothing.py --out docs/img            # the PNGs, and the tables on stdout

1. GCN, GAT and GraphSAGE stacks (``deep_gcn``, ``deep_gat``, ``deep_sage``) of depth 2, 4, 8, 16,
   32: the node states after every layer, untrained (the seed's initial weights) and trained,
   measured by ``gnn_scratch.analysis.oversmoothing`` (energy on a log scale).
2. Accuracy against depth on the public split, one seed: plain GCN, GCN + residual, GCN + PairNorm,
   GCN + DropEdge, GCN + residual + PairNorm and GCNII; the Markdown table goes to stdout, the curves to a PNG.

Protocol (printed with the table): Adam with each model's learning rate and L2 (``train_defaults``;
GCNII: 0.01 on the convolutions, 5e-4 on the linear layers), at most ``--epochs`` epochs with
early stopping after ``--patience`` epochs without a better validation loss or accuracy, the test
accuracy of the best validation epoch. Numba runs on one thread (``NUMBA_NUM_THREADS=1`` unless
set): on a shared 2-core machine the parallel kernels at Cora's size lose more to waiting for a
busy core than they gain.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gnn_scratch.analysis.oversmoothing import state_metrics  # noqa: E402
from gnn_scratch.data import get_dataset  # noqa: E402
from gnn_scratch.loop import prepare_features  # noqa: E402
from gnn_scratch.tasks import options  # noqa: E402
from gnn_scratch.tasks.node import build_for, fit  # noqa: E402

FAMILIES = {"GCN": "deep_gcn", "GAT": "deep_gat", "SAGE": "deep_sage"}
DROPEDGE_P = 0.3
VARIANTS = {"GCN": ("deep_gcn", {}), "GCN + residual": ("deep_gcn", {"residual": True}),
            "GCN + PairNorm": ("deep_gcn", {"pairnorm": True}),
            "GCN + DropEdge": ("deep_gcn", {"dropedge": DROPEDGE_P}),
            "GCN + residual + PairNorm": ("deep_gcn", {"residual": True, "pairnorm": True}), "GCNII": ("gcnii", {})}
METRICS = {"energy": "Dirichlet energy (normalised, log)", "energy_relative": "energy / mean squared norm (log)",
           "mad": "MAD (cosine, all pairs)", "mad_gap": "MADGap (>= 8 hops minus <= 3 hops)"}


def states_of(model, x, graph):
    """The per-layer node states of an evaluation forward."""
    model.eval().forward(x, graph)
    return [np.asarray(h, dtype=np.float64) for h in model.states]


def train(name, data, x, depth, flags, epochs, patience, seed):
    """(untrained model's metrics, trained model's metrics, loop.Result, seconds) of one model."""
    model, opt, _ = build_for(name, data, seed, dict(num_layers=depth, **flags))
    before = state_metrics(states_of(model, x, data.graph), data.graph)
    t0 = time.perf_counter()
    res = fit(model, data, opt, epochs=epochs, patience=patience, x=x)
    seconds = time.perf_counter() - t0
    after = state_metrics(states_of(model, x, data.graph), data.graph)
    return before, after, res, seconds


def grid_plot(curves, metric, path, depths):
    """Rows untrained / trained, columns GCN / GAT / SAGE, one line per depth: ``metric`` against the layer."""
    fig, axes = plt.subplots(2, len(FAMILIES), figsize=(4.2 * len(FAMILIES), 6.4), sharex=True, squeeze=False)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(depths)))
    for col, fam in enumerate(FAMILIES):
        for row, when in enumerate(("untrained", "trained")):
            ax = axes[row, col]
            for c, depth in zip(colours, depths):
                ys = [m[metric] for m in curves[fam][depth][when]]
                ax.plot(np.arange(1, depth + 1), ys, color=c, marker="." if depth <= 8 else None, label=f"L={depth}")
            if metric.startswith("energy"):
                ax.set_yscale("log")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{fam}, {when}", fontsize=10)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("layer")
            if col == 0:
                ax.set_ylabel(METRICS[metric], fontsize=9)
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(f"Cora: {METRICS[metric]} of the node states after each layer", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)


def remedies_plot(remedy_states, depth, path):
    """Trained models of depth ``depth``: energy and MAD of the hidden states per layer for each variant."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for label, metrics in remedy_states.items():
        layers = np.arange(1, len(metrics) + 1)
        for ax, metric in zip(axes, ("energy", "energy_relative", "mad")):
            ax.plot(layers, [m[metric] for m in metrics], label=label)
    for ax, metric in zip(axes, ("energy", "energy_relative", "mad")):
        if metric.startswith("energy"):
            ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_title(METRICS[metric], fontsize=10)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"Cora, trained, depth {depth}: the remedies' hidden node states", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)


def accuracy_plot(acc, depths, path):
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, by_depth in acc.items():
        ax.plot(depths, [100 * by_depth[d] for d in depths], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set_xlabel("layers")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Cora (public split), one seed", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)


def markdown_accuracy(acc, depths):
    cols = list(acc)
    lines = ["| layers | " + " | ".join(cols) + " |", "|---:|" + "---:|" * len(cols)]
    for d in depths:
        lines.append(f"| {d} | " + " | ".join(f"{100 * acc[c][d]:.1f}" for c in cols) + " |")
    return "\n".join(lines)


def markdown_last_layer(curves, depths):
    """The last hidden layer's (L-1) metrics, untrained -> trained, per family and depth."""
    lines = ["| model | layers | energy (untrained -> trained) | MAD | MADGap |", "|---|---:|---|---|---|"]
    for fam in FAMILIES:
        for d in depths:
            k = d - 2                                            # the last hidden state (layer L-1), not the logits
            u, t = curves[fam][d]["untrained"][k], curves[fam][d]["trained"][k]
            lines.append(f"| {fam} | {d} | {u['energy']:.2e} -> {t['energy']:.2e} | {u['mad']:.3f} -> {t['mad']:.3f} "
                         f"| {u['mad_gap']:.3f} -> {t['mad_gap']:.3f} |")
    return "\n".join(lines)


def _depths(text):
    """argparse type of --depths: comma-separated integers >= 2 (the deep_* models have an input and an output
    layer)."""
    try:
        depths = [int(d) for d in text.split(",")]
    except ValueError:
        depths = []
    if not depths or min(depths) < 2:
        raise argparse.ArgumentTypeError(f"expected comma-separated depths, each an integer >= 2 (the deep_* models "
                                         f"have an input and an output layer), got {text!r}")
    return depths


def _output_path(text):
    return Path(options.output_file(text))


def main(argv=None):
    p = options.Parser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/img"),
                   help="folder for the PNGs, created if missing (default docs/img)")
    p.add_argument("--depths", default="2,4,8,16,32", type=_depths,
                   help="comma-separated depths, each >= 2 (default 2,4,8,16,32)")
    p.add_argument("--epochs", type=options.positive_int, default=200,
                   help="at most this many epochs per model (default 200)")
    p.add_argument("--patience", type=options.positive_int, default=50, help="early-stopping patience (default 50)")
    p.add_argument("--seed", type=options.non_negative_int, default=0)
    p.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                   help="an existing folder holding planetoid/ind.cora.* (default: $GNN_SCRATCH_DATA, then the cache)")
    p.add_argument("--json", type=_output_path, default=None, help="also write every number to this JSON file")
    args = p.parse_args(argv)
    depths = args.depths
    args.out.mkdir(parents=True, exist_ok=True)
    data = get_dataset("cora", root=args.data_root)
    x = prepare_features(data)
    say = lambda s: print(s, file=sys.stderr, flush=True)   # noqa: E731
    t_start = time.perf_counter()

    curves = {fam: {} for fam in FAMILIES}
    acc = {label: {} for label in list(VARIANTS) + ["GAT", "SAGE"]}
    epochs_run = {label: {} for label in acc}
    remedy_states = {}
    for fam, name in FAMILIES.items():
        for d in depths:
            before, after, res, sec = train(name, data, x, d, {}, args.epochs, args.patience, args.seed)
            curves[fam][d] = dict(untrained=before, trained=after)
            label = "GCN" if fam == "GCN" else fam
            acc[label][d], epochs_run[label][d] = res.test_acc, res.epochs_run
            if fam == "GCN" and d == depths[-1]:
                remedy_states["GCN"] = after[:-1]               # the hidden states: the last is the logits
            say(f"{fam:5s} L={d:2d}: test {100 * res.test_acc:.1f} %  ({res.epochs_run} epochs, {sec:.0f} s; "
                f"energy of layer L-1 {before[max(d - 2, 0)]['energy']:.2e} -> {after[max(d - 2, 0)]['energy']:.2e})")
    for label, (name, flags) in VARIANTS.items():
        if label == "GCN":
            continue
        for d in depths:
            _, after, res, sec = train(name, data, x, d, flags, args.epochs, args.patience, args.seed)
            acc[label][d], epochs_run[label][d] = res.test_acc, res.epochs_run
            if d == depths[-1]:
                remedy_states[label] = after if name == "gcnii" else after[:-1]
            say(f"{label:15s} L={d:2d}: test {100 * res.test_acc:.1f} %  ({res.epochs_run} epochs, {sec:.0f} s)")

    for metric in METRICS:
        grid_plot(curves, metric, args.out / f"oversmoothing_{metric}.png", depths)
    remedies_plot(remedy_states, depths[-1], args.out / "oversmoothing_remedies.png")
    accuracy_plot(acc, depths, args.out / "oversmoothing_accuracy.png")

    protocol = (f"Cora, public split, seed {args.seed}; Adam, each model's lr and L2 (deep_gcn / deep_sage: lr 0.01, "
                f"5e-4, hidden 64, dropout 0.5; deep_gat: lr 0.005, 5e-4, 8 heads x 8, dropout 0.6; GCNII: lr 0.01, "
                f"L2 0.01 on the convolutions and 5e-4 on the linear layers, hidden 64, dropout 0.6, alpha 0.1, "
                f"theta 0.5); at most {args.epochs} epochs, patience {args.patience}; test accuracy (%) of the best "
                f"validation epoch. DropEdge p = {DROPEDGE_P}. Depth = message-passing layers (GCNII: GCN2Conv "
                f"layers, plus its two linear layers).")
    print("### Test accuracy against depth\n")
    print(protocol + "\n")
    print(markdown_accuracy(acc, depths))
    print("\n### The last hidden layer's states, untrained -> trained\n")
    print(markdown_last_layer(curves, depths))
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(dict(protocol=protocol, depths=depths, accuracy=acc, epochs_run=epochs_run,
                                             curves=curves, remedies=remedy_states), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
