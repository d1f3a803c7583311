"""Zachary's karate club embedded without labels, drawn in 2-D and coloured by faction (docs/img/karate_embedding.png).

DeepWalk (``gnn_scratch.embed.DeepWalk``: 10 walks of 80 nodes from every node, window 10, K = 5 negatives,
``--epochs`` passes, deterministic single-thread skip-gram, so the picture repeats bit for bit) in d = 16
dimensions, projected onto its first two principal components (PCA of the centred embedding by SVD); the 78
friendships are drawn as light lines. The factions (Mr. Hi's = 0, the Officer's = 1) colour the nodes only;
the method never sees them. Printed: the variance the two components keep and the test accuracy of a logistic
regression trained on the two leaders (nodes 0 and 33, ``karate_club``'s split) on the 16-d embedding.

    nice python scripts/karate_embedding.py [--dim 16] [--epochs 5] [--seed 0] [--out docs/img/karate_embedding.png]
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gnn_scratch.data import karate_club  # noqa: E402
from gnn_scratch.embed import DeepWalk  # noqa: E402
from gnn_scratch.embed.evaluate import classify_split  # noqa: E402
from gnn_scratch.tasks import options  # noqa: E402

FACTIONS = ("Mr. Hi's faction", "the Officer's faction")
COLOURS = ("tab:blue", "tab:orange")


def main(argv=None):
    ap = options.Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=options.positive_int, default=16, help="embedding dimensions d >= 2 (default 16)")
    ap.add_argument("--epochs", type=options.positive_int, default=5, help="skip-gram passes (default 5)")
    ap.add_argument("--seed", type=options.non_negative_int, default=0)
    ap.add_argument("--out", default="docs/img/karate_embedding.png", type=options.output_file,
                    help="the PNG written (default docs/img/karate_embedding.png)")
    args = ap.parse_args(argv)
    if args.dim < 2:
        ap.error(f"argument --dim: expected at least 2 dimensions (the picture is the first two principal "
                 f"components), got {args.dim}")
    data = karate_club()
    Z = DeepWalk(dim=args.dim, epochs=args.epochs, seed=args.seed, deterministic=True).fit(data.graph).embedding
    Zc = Z.astype(np.float64) - Z.mean(axis=0)
    U, S, _ = np.linalg.svd(Zc, full_matrices=False)
    P = U[:, :2] * S[:2]
    kept = float((S[:2] ** 2).sum() / (S ** 2).sum())
    acc = classify_split(Z, data.y, data.train_mask, data.test_mask)["accuracy"]
    print(f"PCA keeps {100 * kept:.1f} % of the variance; logistic regression from the two leaders, "
          f"{int(data.test_mask.sum())} test nodes: accuracy {100 * acc:.1f} %")

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    src, dst = data.edge_index
    for a, b in zip(src, dst):
        if a < b:
            ax.plot(P[[a, b], 0], P[[a, b], 1], color="0.8", lw=0.7, zorder=1)
    for c in (0, 1):
        m = data.y == c
        ax.scatter(P[m, 0], P[m, 1], s=170, color=COLOURS[c], edgecolor="k", lw=0.6, zorder=2, label=FACTIONS[c])
    for i, (x, y) in enumerate(P):
        ax.text(x, y, str(i), ha="center", va="center", fontsize=7, zorder=3)
    ax.set_title(f"Karate club: DeepWalk (d = {args.dim}, no labels) → first two principal components\n"
                 f"({100 * kept:.0f} % of the variance; a linear probe from nodes 0 and 33: {100 * acc:.0f} % "
                 f"test accuracy)", fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
