"""Draw what a trained GAT attends to: hidden embeddings in 2-D, edges weighted by layer-1 attention.

    python scripts/plot_attention.py                               # trains GAT on Cora, writes gat_attention.png
    python scripts/plot_attention.py --load gat_cora.npz --out att.png --nodes 300

Nodes are placed by PCA (NumPy SVD) of the first layer's hidden embeddings -- ELU(GATConv1(x)), the
(N, heads * hidden) representation the second layer reads -- and coloured by class. Only a
subgraph is drawn, to stay readable: the ``--nodes`` nodes nearest (breadth first) to a few test
nodes. Each edge j -> i between drawn nodes (self-loops left out) is a line whose width and opacity
grow with alpha_ij of layer 1, averaged over the heads; a black ring marks a misclassified node.
Data: ``--data-root``, else $GNN_SCRATCH_DATA, as for ``gnn-scratch train``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnn_scratch.data import NODE_DATASETS, get_dataset  # noqa: E402
from gnn_scratch.tasks import options  # noqa: E402
from gnn_scratch.train import prepare_features, run  # noqa: E402


def pca_2d(H):
    """The rows of H projected on their first two principal axes: (N, 2), via the SVD of centred H."""
    C = H - H.mean(axis=0)
    _, _, Vt = np.linalg.svd(C, full_matrices=False)
    return C @ Vt[:2].T


def bfs_subgraph(graph, seeds, n):
    """Up to ``n`` node ids reached breadth first from ``seeds``, following edges both ways."""
    A = graph.to_scipy()
    A = ((A + A.T) > 0).tocsr()
    seen, order, frontier = set(), [], list(seeds)
    while frontier and len(order) < n:
        nxt = []
        for v in frontier:
            if v in seen or len(order) >= n:
                continue
            seen.add(v)
            order.append(v)
            nxt.extend(A.indices[A.indptr[v]:A.indptr[v + 1]].tolist())
        frontier = nxt
    return np.array(order)


def main(argv=None):
    p = options.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora", type=str.lower, choices=NODE_DATASETS, metavar="NAME",
                   help=f"a node-classification dataset: {', '.join(NODE_DATASETS)} (default cora)")
    p.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                   help="an existing folder holding planetoid/ind.<name>.* (default: $GNN_SCRATCH_DATA, then the "
                        "cache)")
    p.add_argument("--load", default=None, type=options.model_input, metavar="FILE.npz",
                   help="a saved GAT (gnn-scratch train --save)")
    p.add_argument("--seed", type=options.non_negative_int, default=0)
    p.add_argument("--epochs", type=options.positive_int, default=None,
                   help="training epochs when not loading (default: the model's)")
    p.add_argument("--nodes", type=options.positive_int, default=300,
                   help="nodes in the drawn subgraph, at least 2 (default 300)")
    p.add_argument("--out", default="gat_attention.png", type=options.output_file,
                   help="the PNG written (default gat_attention.png)")
    args = p.parse_args(argv)
    if args.nodes < 2:
        p.error(f"argument --nodes: expected at least 2 nodes, got {args.nodes}")
    model = None
    if args.load:
        from gnn_scratch.io import load_model
        try:
            model, _ = load_model(args.load)
        except (OSError, ValueError) as e:
            p.error(f"argument --load: {e}")
        if model.config.get("model") != "gat":
            p.error(f"argument --load: {args.load} holds a {model.config.get('model')!r} model, not a GAT")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    data = get_dataset(args.dataset, root=args.data_root)
    if model is not None:
        for key, have, what in (("in_channels", data.num_features, "input features"),
                                ("out_channels", data.num_classes, "classes")):
            if model.config.get(key) != have:
                p.error(f"argument --load: {args.load} holds a GAT of {model.config.get(key)} {what}; --dataset "
                        f"{args.dataset} has {have}")
        how = f"loaded from {args.load}"
    else:
        summary, model = run("gat", data, runs=1, seed=args.seed, epochs=args.epochs)
        how = f"trained, seed {args.seed}, test acc {100 * summary['test_acc_mean']:.1f} %"
    model.eval()
    x = prepare_features(data, dtype=model.config.get("dtype", "float32"))
    g = data.graph
    logits = model.forward(x, g)
    hidden = model.act1.forward(model.conv1.forward(x, g), g)              # (N, heads * hidden)
    alpha = model.conv1.attention(x, g).mean(axis=1)                        # (E_loops,), heads averaged
    gl = model.conv1.message_graph(g)
    src, dst = gl.indices.astype(np.int64), gl.dst_of_edge().astype(np.int64)

    rng = np.random.default_rng(args.seed)
    seeds = rng.choice(np.flatnonzero(data.test_mask), size=3, replace=False)
    nodes = bfs_subgraph(g, seeds, args.nodes)
    pos = np.zeros((g.num_nodes, 2))
    pos[nodes] = pca_2d(np.asarray(hidden, np.float64)[nodes])     # PCA of the drawn nodes: they fill the plot
    inside = np.zeros(g.num_nodes, bool)
    inside[nodes] = True
    keep = inside[src] & inside[dst] & (src != dst)
    a = alpha[keep]                                    # in [0, 1]: drawn on an absolute scale

    fig, ax = plt.subplots(figsize=(9, 8), dpi=120)
    segs = np.stack([pos[src[keep]], pos[dst[keep]]], axis=1)
    colors = np.zeros((keep.sum(), 4))
    colors[:, :3] = 0.15
    colors[:, 3] = 0.04 + 0.6 * a                      # opacity and width grow with attention
    order = np.argsort(a)                              # strongest edges drawn last, on top
    ax.add_collection(LineCollection(segs[order], colors=colors[order], linewidths=(0.2 + 2.5 * a)[order]))
    cmap = plt.get_cmap("tab10")
    y = np.asarray(data.y)
    ax.scatter(pos[nodes, 0], pos[nodes, 1], c=[cmap(c % 10) for c in y[nodes]], s=28, zorder=3,
               edgecolors="white", linewidths=0.5)
    wrong = nodes[logits[nodes].argmax(axis=1) != y[nodes]]
    ax.scatter(pos[wrong, 0], pos[wrong, 1], s=70, facecolors="none", edgecolors="black", linewidths=1.0,
               zorder=4, label="misclassified")
    for c in np.unique(y[nodes]):
        ax.scatter([], [], color=cmap(c % 10), s=28, label=f"class {c}")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.set_title(f"GAT on {data.name} ({how}): {len(nodes)}-node subgraph, {keep.sum()} edges\n"
                 f"positions = PCA of layer-1 embeddings; edge width/opacity = layer-1 attention (mean of "
                 f"{model.conv1.heads} heads)", fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.autoscale()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}: {len(nodes)} nodes, {keep.sum()} edges, attention in [{a.min():.3f}, {a.max():.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
