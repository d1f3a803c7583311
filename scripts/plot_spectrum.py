"""Frequency responses g(λ) of Kipf & Welling's propagation models on a graph's Laplacian, drawn to a PNG.

    python scripts/plot_spectrum.py --out spectrum.png                 # Cora; trains the seven Table 3 models
    python scripts/plot_spectrum.py --dataset citeseer --out s.png --epochs 100

L = I - D^-1/2 A D^-1/2 (ChebConv's "sym" Laplacian) = U Λ Uᵀ, by a dense ``scipy.linalg.eigh``
(``nn.conv.spectral_conv.eigenbasis``). Three panels over λ ∈ [0, 2]:

(a) The fixed filters, on each eigenvalue λ_k. The first-order term only, D^-1/2 A D^-1/2 = I - L,
    is g(λ) = 1 - λ; the single-parameter filter I + D^-1/2 A D^-1/2 is 2 - λ (its largest value 2
    is what makes stacked layers explode); the MLP is 1. The renormalised filter
    Â = D~^-1/2 (A + I) D~^-1/2 is not a function of L (the self-loops change the eigenvectors), so
    it is drawn per eigenvector: u_kᵀ Â u_k, Â's response to L's k-th eigenvector (dots); its own
    spectrum, 1 - μ over the eigenvalues μ of I - Â, spans about [-0.5, 1] (the legend gives it).
    The renormalisation shrinks the high-frequency gain that 1 - λ gives (|1 - 2| = 1): a low-pass
    filter.
(b) The learned filters: each model trained once (``--epochs``, Table 3's hyper-parameters); the
    response of its first layer f (without its bias) on the data, per eigenvector
    ||(Uᵀ f(X))[k]|| / ||(Uᵀ X)[k]||, the gain at frequency λ_k (for a polynomial filter
    f(X) = Σ_j T_j(L~) X W_j it is ||x^_k Σ_j T_j(λ_k - 1) W_j|| / ||x^_k||, x^_k = (Uᵀ X)[k]). Drawn
    per band of λ (``--bands`` equal bands over [0, 2]) as the energy ratio
    sqrt(Σ_{k in band} ||(Uᵀ f(X))[k]||² / Σ_{k in band} ||x^_k||²), each curve scaled to a maximum of 1.
(c) The histogram of the eigenvalues: where the graph's frequencies lie.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnn_scratch import ops  # noqa: E402
from gnn_scratch.data import NODE_DATASETS, get_dataset  # noqa: E402
from gnn_scratch.nn.conv.spectral_conv import eigenbasis  # noqa: E402
from gnn_scratch.tasks import options  # noqa: E402
from gnn_scratch.train import prepare_features, run  # noqa: E402

# (label, model name, model keyword arguments), Table 3's order
MODELS = [("Chebyshev K = 3", "cheb", dict(K=3)), ("Chebyshev K = 2", "cheb", dict(K=2)),
          ("1st-order model", "first_order", {}), ("single parameter", "single_param", {}),
          ("renormalisation (GCN)", "gcn", {}), ("1st-order term only", "first_order_term", {}),
          ("MLP", "mlp", {})]
COLOURS = dict(zip([m[0] for m in MODELS], ["#1f77b4", "#17becf", "#2ca02c", "#ff7f0e", "#d62728", "#9467bd",
                                            "#7f7f7f"]))


def spectral_coefficients(U, X):
    """Uᵀ X (N, F) for a dense or scipy-sparse X, in float64."""
    if sp.issparse(X):
        return np.asarray((X.T.astype(np.float64) @ U).T)
    return U.T @ np.asarray(X, dtype=np.float64)


def renormalised_response(graph, U):
    """(u_kᵀ Â u_k for every eigenvector of L, the eigenvalues μ of I - Â): GCN's Â = D~^-1/2 (A + I) D~^-1/2."""
    g, a = ops.gcn_norm(graph, np.float64)
    A_hat = g.to_scipy(a)
    per_vector = np.einsum("nk,nk->k", U, A_hat @ U)
    mu = np.linalg.eigvalsh(np.eye(graph.num_nodes) - (A_hat.toarray() + A_hat.T.toarray()) / 2)
    return per_vector, mu


def learned_energy(model, x, graph, U):
    """||(Uᵀ f(X))[k]||² per eigenvector, f = the model's first layer without its bias (evaluation mode)."""
    layer = model.conv1
    model.eval()
    out = np.asarray(layer.forward(x, graph), dtype=np.float64)
    if "b" in layer.params:
        out = out - layer.params["b"]
    return np.sum((U.T @ out) ** 2, axis=1)


def band_response(lam, out_energy, in_energy, bands):
    """(band centres, sqrt(Σ out / Σ in) per band of λ over [0, 2]); bands without input energy are left out."""
    edges = np.linspace(0.0, 2.0, bands + 1)
    which = np.clip(np.searchsorted(edges, lam, side="right") - 1, 0, bands - 1)
    num = np.bincount(which, weights=out_energy, minlength=bands)
    den = np.bincount(which, weights=in_energy, minlength=bands)
    keep = den > 1e-12 * den.max()
    return ((edges[:-1] + edges[1:]) / 2)[keep], np.sqrt(num[keep] / den[keep])


def main(argv=None):
    ap = options.Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cora", type=str.lower, choices=NODE_DATASETS, metavar="NAME",
                    help=f"a node-classification dataset: {', '.join(NODE_DATASETS)} (default cora)")
    ap.add_argument("--out", default="spectrum.png", type=options.output_file,
                    help="the PNG written (default spectrum.png)")
    ap.add_argument("--epochs", type=options.positive_int, default=200,
                    help="training epochs of each model (default 200)")
    ap.add_argument("--seed", type=options.non_negative_int, default=0)
    ap.add_argument("--bands", type=options.positive_int, default=40, help="bands of λ in panel (b) (default 40)")
    args = ap.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = get_dataset(args.dataset)
    graph = data.graph
    lam, U = eigenbasis(graph, "sym")
    x = prepare_features(data)
    in_energy = np.sum(spectral_coefficients(U, x) ** 2, axis=1)

    fig, axes = plt.subplots(3, 1, figsize=(8.5, 11), sharex=True, gridspec_kw=dict(height_ratios=[3, 3, 1.2]))
    ax = axes[0]
    per_vector, mu = renormalised_response(graph, U)
    ax.axhline(0, color="black", lw=0.6)
    ax.plot(lam, np.ones_like(lam), color=COLOURS["MLP"], lw=2, label="MLP: g(λ) = 1")
    ax.plot(lam, 2 - lam, color=COLOURS["single parameter"], lw=2, label="single parameter: g(λ) = 2 − λ")
    ax.plot(lam, 1 - lam, color=COLOURS["1st-order term only"], lw=2, label="1st-order term only: g(λ) = 1 − λ")
    ax.scatter(lam, per_vector, s=5, alpha=0.4, color=COLOURS["renormalisation (GCN)"], linewidths=0,
               label=f"renormalisation (GCN): u_kᵀ Â u_k per eigenvector of L\n"
                     f"(its own spectrum: 1 − μ ∈ [{1 - mu.max():.2f}, {1 - mu.min():.2f}])")
    ax.set_ylabel("g(λ)")
    title = {"cora": "Cora", "citeseer": "CiteSeer"}.get(data.name, data.name)
    ax.set_title(f"(a) fixed filters on {title}'s normalised Laplacian L = I − D^-1/2 A D^-1/2")
    ax.legend(fontsize=8, loc="lower left")

    ax = axes[1]
    for label, name, kw in MODELS:
        _, model = run(name, data, runs=1, seed=args.seed, epochs=args.epochs, patience=10, **kw)
        centres, r = band_response(lam, learned_energy(model, x, graph, U), in_energy, args.bands)
        ax.plot(centres, r / r.max(), color=COLOURS[label], lw=2, marker="o", ms=3, label=label)
    ax.set_ylabel("learned gain (scaled)")
    ax.set_title(f"(b) learned first layers f: energy ratio ‖Uᵀ f(X)‖ / ‖Uᵀ X‖ in {args.bands} bands of λ")
    ax.legend(fontsize=8, ncol=2, loc="upper right")

    ax = axes[2]
    ax.hist(lam, bins=80, color="#555555")
    ax.set_xlabel("eigenvalue λ of L")
    ax.set_ylabel("count")
    ax.set_title(f"(c) the spectrum: {graph.num_nodes} eigenvalues")
    fig.tight_layout()
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
