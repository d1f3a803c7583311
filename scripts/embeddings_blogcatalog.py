"""Issue 15's embedding table: DeepWalk, node2vec (p, q chosen on validation data), LINE on BlogCatalog and Cora.

BlogCatalog (10 312 nodes, 39 labels), the node2vec paper's protocol (``embed.evaluate.evaluate_multilabel``):
one-vs-rest L2 logistic regression (C = 1) on 50 % of the nodes, each test node given its true number k of
labels as its top-k scores, Macro- and Micro-F1 averaged over 10 random splits (``random_splits(N, 10,
eval_seed)``, the same splits for every method). Every embedding is learned without labels on the whole graph
(transductive, as in the papers); the labels reach only the classifier.

node2vec's p, q are chosen **without the test nodes**: within each of the 10 splits, the 50 % training half is
cut once more (a seeded permutation, ``default_rng((eval_seed, r, 1))``) into an inner training half (25 % of all
nodes) and a validation half (25 %); each grid point's embedding is scored by the validation Macro-F1 of a
classifier fitted on the inner half, and that split's test nodes are then scored with the embedding of the best
grid point, refitted on the whole training half (nested selection: one choice per split, reported with the
table; ``embed.evaluate.select_and_evaluate``). The paper instead cross-validates on 10 % labelled data; its
grid is {0.25, 0.5, 1, 2, 4}^2, the default here {0.25, 1, 4}^2 (``--grid``). The grid point p = q = 1 is
node2vec's DeepWalk: the DeepWalk embedding is reused for it.

The classifier: C = 1 and raw embeddings by default (the DeepWalk scoring protocol). ``--C 0.1,1,10,100`` and
``--normalize l2`` (or a list such as ``none,l2,standardize``) make C and the normalisation part of the same
validation choice -- jointly with (p, q) for node2vec, alone for DeepWalk and LINE -- never looking at test nodes.
The node2vec paper says only "one-vs-rest logistic regression with L2 regularization"; its C is not given.

Cora (public Planetoid split, ``embed.evaluate.classify_split``: multinomial logistic regression C = 1 on the 140
training nodes, accuracy on the 1000 test nodes): DeepWalk, node2vec with p, q chosen by accuracy on the 500
validation nodes (same grid), LINE(1st+2nd); one embedding seed each. DGI's number (its own 50-probe protocol)
is quoted from scripts/dgi_cora.py's run.

While the selection runs, one progress line per embedding (grid point) goes to stderr once its validation fits
are done: its best classifier setting by mean validation Macro-F1 (a report only; the choice is per split).

Skip-gram training is Hogwild on NUMBA_NUM_THREADS threads (lock-free, nondeterministic when > 1; the walks are
bit-identical for a seed) unless ``--deterministic``. LINE uses one worker (deterministic).

    GNN_SCRATCH_DATA=/work/shared/datasets NUMBA_NUM_THREADS=2 nice python scripts/embeddings_blogcatalog.py \\
        [--grid 0.25,1,4] [--C 1] [--normalize none] [--no-line] [--no-cora] [--cache DIR] [--json results.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time

import numpy as np

from gnn_scratch.data import load_blogcatalog, load_planetoid
from gnn_scratch.embed import DeepWalk, Node2Vec
from gnn_scratch.embed.evaluate import NORMALIZATIONS, classify_split, select_and_evaluate
from gnn_scratch.embed.line import line_embedding
from gnn_scratch.graph import Graph
from gnn_scratch.tasks import options
from gnn_scratch.tasks.embedding import _line_samples

PAPER = dict(deepwalk=0.2110, line=0.0784, node2vec=0.2581)     # node2vec paper, Table 2, Macro-F1 at 50 %
FLOOR = dict(deepwalk=0.20, node2vec=0.245)                     # issue 15's done-when
FRACTION = 0.5


class Embedder:
    """Computes (or reads from ``cache``) embeddings and remembers how long each took."""

    def __init__(self, graph, tag, seed, deterministic, cache=None):
        self.graph, self.tag, self.seed, self.deterministic, self.cache = graph, tag, seed, deterministic, cache
        self.seconds = {}

    def _cached(self, key, make):
        path = os.path.join(self.cache, f"{self.tag}-{key}-s{self.seed}.npy") if self.cache else None
        if path and os.path.exists(path):
            self.seconds.setdefault(key, float(np.load(path + ".seconds.npy")))
            return np.load(path)
        t0 = time.perf_counter()
        Z = make()
        self.seconds[key] = time.perf_counter() - t0
        if path:
            np.save(path, Z)
            np.save(path + ".seconds.npy", np.float64(self.seconds[key]))
        print(f"  [{self.tag}] {key}: {self.seconds[key]:.1f} s", flush=True)
        return Z

    def walks(self, p, q):
        if p == 1 and q == 1:         # node2vec with p = q = 1 is DeepWalk (the same first-order walks)
            return self._cached("deepwalk", lambda: DeepWalk(seed=self.seed, deterministic=self.deterministic)
                                .fit(self.graph).embedding)
        return self._cached(f"node2vec-p{p:g}-q{q:g}",
                            lambda: Node2Vec(p=p, q=q, seed=self.seed, deterministic=self.deterministic)
                            .fit(self.graph).embedding)

    def line(self):
        samples = _line_samples(self.graph)
        return self._cached("line", lambda: line_embedding(self.graph, 128, "1+2", samples, seed=self.seed)), samples


def _classifier_label(n, c):
    return f"{'raw' if n is None else n}, C = {c:g}"


def _progress(t0):
    """select_and_evaluate's progress hook: one line per embedding ((p, q) grid point) on stderr, when its
    validation fits are done -- its best classifier setting by mean validation Macro-F1 (a report only)."""
    def report(key, scores):
        (_, nm, c), v = max(scores.items(), key=lambda kv: np.mean(kv[1]))
        name = f"p={key[0]:g} q={key[1]:g}" if isinstance(key, tuple) else str(key)
        print(f"  {name}: validation Macro-F1 {np.mean(v):.4f} ({_classifier_label(nm, c)}), "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return report


def _c_values(text):
    """argparse type of --C: comma-separated positive finite numbers, repeats dropped (first kept)."""
    values = []
    for item in text.split(","):
        try:
            c = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item.strip()!r} in {text!r} is not a number") from None
        if not (math.isfinite(c) and c > 0):
            raise argparse.ArgumentTypeError(f"C values must be positive finite numbers, got {item.strip()!r}")
        values.append(c)
    return list(dict.fromkeys(values))


def _grid(text):
    """argparse type of --grid: comma-separated positive finite numbers (node2vec's p and q); the text is kept as
    given (the --json file records it), main reads the numbers from it."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive finite numbers (the p and q values), "
                                         f"got {text!r}")
    return text


def _normalizations(text):
    """argparse type of --normalize: comma-separated names among none, l2, standardize, repeats dropped."""
    values = [None if v.strip() == "none" else v.strip() for v in text.split(",")]
    bad = [v for v in values if v not in NORMALIZATIONS]
    if bad:
        raise argparse.ArgumentTypeError(f"takes none / l2 / standardize, got {bad[0]!r}")
    return list(dict.fromkeys(values))


def blogcatalog(args, grid):
    data = load_blogcatalog()
    Y = data.labels
    if not Y.any(axis=1).all():
        raise RuntimeError("expected every BlogCatalog node to carry a label (the splits index all nodes)")
    graph = Graph.from_edge_index(data.edge_index, data.num_nodes)
    emb = Embedder(graph, "blogcatalog", args.seed, args.deterministic, args.cache)
    n = graph.num_nodes
    res = dict(dataset="blogcatalog", num_nodes=n, num_edges=int(graph.num_edges), rows={})

    def score(embeddings):
        """select_and_evaluate over the embeddings x args.normalize x args.C (validation only), timed."""
        t0 = time.perf_counter()
        r = select_and_evaluate(embeddings, Y, FRACTION, args.repeats, args.eval_seed, args.C, args.normalize,
                                progress=_progress(t0))
        return r, time.perf_counter() - t0

    several = len(args.C) > 1 or len(args.normalize) > 1

    def row(r, seconds, eval_seconds):
        counts = {}
        for key, nm, c in r["choices"]:
            label = "; ".join(([f"p={key[0]:g}, q={key[1]:g}"] if isinstance(key, tuple) else [])
                              + ([_classifier_label(nm, c)] if several else []))
            counts[label] = counts.get(label, 0) + 1
        return dict(macro=r["macro_f1"], micro=r["micro_f1"], eval_seconds=eval_seconds, choices=counts,
                    seconds=seconds)

    print("BlogCatalog: DeepWalk", flush=True)
    r, t = score({"deepwalk": emb.walks(1.0, 1.0)})
    res["rows"]["deepwalk"] = row(r, emb.seconds["deepwalk"], t)

    print(f"BlogCatalog: node2vec grid {grid} x {grid} x normalize {args.normalize} x C {args.C}, validation "
          f"inside each training half", flush=True)
    r, t = score({(p, q): emb.walks(p, q) for p, q in itertools.product(grid, grid)})
    res["rows"]["node2vec"] = row(r, float(np.mean([emb.seconds[k] for k in emb.seconds
                                                     if k.startswith("node2vec")] or [np.nan])), t)
    # the (p, q) table shows each grid point's best classifier setting (validation Macro-F1, mean over splits)
    val = {}
    for (pq, nm, c), v in r["validation"].items():
        if pq not in val or np.mean(v) > np.mean(val[pq][0]):
            val[pq] = (v, _classifier_label(nm, c))
    res["validation"] = {f"{p:g},{q:g}": dict(mean=float(np.mean(v)), std=float(np.std(v)), all=v, classifier=lab)
                         for (p, q), (v, lab) in val.items()}
    res["validation_seconds"] = t
    if val:                                            # empty when there was a single candidate
        best_mean = max(val, key=lambda k: np.mean(val[k][0]))
        res["best_mean_validation"] = f"p={best_mean[0]:g}, q={best_mean[1]:g} ({val[best_mean][1]})"

    if args.line:
        print("BlogCatalog: LINE(1st+2nd)", flush=True)
        Z, samples = emb.line()
        r, t = score({"line": Z})
        res["rows"]["line"] = dict(row(r, emb.seconds["line"], t), samples_per_order=samples)
    res["embed_seconds"] = emb.seconds
    return res


def cora(args, grid):
    data = load_planetoid("cora")
    graph = data.graph
    emb = Embedder(graph, "cora", args.seed, args.deterministic, args.cache)
    res = dict(dataset="cora", rows={})

    def score(Z, mask):
        return classify_split(Z, data.y, data.train_mask, mask)

    print("Cora: DeepWalk, node2vec grid (validation = the 500 Planetoid validation nodes), LINE", flush=True)
    res["rows"]["deepwalk"] = dict(score(emb.walks(1.0, 1.0), data.test_mask), seconds=emb.seconds["deepwalk"])
    val = {(p, q): score(emb.walks(p, q), data.val_mask)["accuracy"] for p, q in itertools.product(grid, grid)}
    p, q = max(val, key=val.get)
    res["validation"] = {f"{a:g},{b:g}": v for (a, b), v in val.items()}
    key = "deepwalk" if p == q == 1 else f"node2vec-p{p:g}-q{q:g}"
    res["rows"]["node2vec"] = dict(score(emb.walks(p, q), data.test_mask), p=p, q=q, seconds=emb.seconds[key])
    if args.line:
        Z, samples = emb.line()
        res["rows"]["line"] = dict(score(Z, data.test_mask), seconds=emb.seconds["line"], samples_per_order=samples)
    res["embed_seconds"] = emb.seconds
    return res


def markdown(bc, co, args, grid):
    mode = ("deterministic single-thread skip-gram" if args.deterministic else
            f"Hogwild skip-gram on {os.environ.get('NUMBA_NUM_THREADS', 'all')} Numba threads (nondeterministic)")
    lines = []
    if bc:
        clf = (f"C = {args.C[0]:g}" if len(args.C) == 1 else f"C from {{{', '.join(f'{c:g}' for c in args.C)}}}")
        clf += "" if args.normalize == [None] else (", features " + " / ".join(
            "raw" if nm is None else nm for nm in args.normalize))
        clf += " (chosen on validation)" if len(args.C) > 1 or len(args.normalize) > 1 else ""
        lines += [f"**BlogCatalog**, {int(FRACTION * 100)} % labelled, one-vs-rest logistic regression ({clf}), top-k "
                  f"prediction, mean ± std over {args.repeats} random splits (eval seed {args.eval_seed}); embeddings "
                  f"d = 128, seed {args.seed}; walks 10 per node × 80 nodes, window 10, K = 5, 1 epoch; {mode}.", "",
                  "| method | settings | Macro-F1 | Micro-F1 | paper Macro-F1 | issue floor | embedding time (s) |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in bc["rows"].items():
            chosen = "; ".join(f"{k} ×{c}" for k, c in r.get("choices", {}).items() if k)
            chosen = f" (chosen on validation: {chosen})" if chosen and name != "node2vec" else chosen
            setting = dict(deepwalk=f"p = q = 1{chosen}",
                           node2vec="p, q per split on validation: " + chosen,
                           line=f"1st+2nd, 64 + 64, {r.get('samples_per_order', 0):.3g} samples per order"
                                f"{chosen}")[name]
            lines.append(f"| {name} | {setting} | {r['macro']['mean']:.4f} ± {r['macro']['std']:.4f} | "
                         f"{r['micro']['mean']:.4f} ± {r['micro']['std']:.4f} | {PAPER[name]:.4f} | "
                         f"{FLOOR.get(name, float('nan')):.3f} | {r['seconds']:.0f} |".replace("| nan |", "| — |"))
        lines += ["| sdne (quoted, not re-run) | 10312-1000-100, β = 10, α = 1, 60 epochs of 128 (line-sdne notes) | "
                  "0.1657 ± 0.0029 | 0.3215 ± 0.0034 | — | — | 1682 |", ""]
    if bc and bc["validation"]:
        several = len(args.C) > 1 or len(args.normalize) > 1
        lines += [f"node2vec validation Macro-F1 (mean ± std over the {args.repeats} inner splits: inner train = "
                  "25 % of the nodes, "
                  "validation = the other 25 % of each split's training half; test nodes never seen"
                  + ("; each cell at its best classifier setting" if several else "") + "):", "",
                  "| p \\ q | " + " | ".join(f"{q:g}" for q in grid) + " |",
                  "| ---: | " + " | ".join("---:" for _ in grid) + " |"]
        for p in grid:
            cells = [bc["validation"][f"{p:g},{q:g}"] for q in grid]
            lines.append(f"| {p:g} | " + " | ".join(f"{c['mean']:.4f} ± {c['std']:.4f}" + (
                f" ({c['classifier']})" if several else "") for c in cells) + " |")
        lines += ["", f"Best mean validation Macro-F1: {bc['best_mean_validation']}. Selection and test fits: "
                      f"{bc['validation_seconds']:.0f} s.", ""]
    if co:
        lines += [f"**Cora**, public Planetoid split (140 train / 500 val / 1000 test), multinomial logistic "
                  f"regression "
                  f"C = 1 on the frozen embedding (`classify_split`), one embedding seed ({args.seed}), same walk "
                  f"settings; node2vec's p, q = the best validation accuracy over the grid.", "",
                  "| method | settings | test accuracy | test Macro-F1 | embedding time (s) |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for name, r in co["rows"].items():
            setting = dict(deepwalk="p = q = 1", node2vec=f"p = {r.get('p', 0):g}, q = {r.get('q', 0):g}",
                           line=f"1st+2nd, {r.get('samples_per_order', 0):.3g} samples per order")[name]
            lines.append(f"| {name} | {setting} | {100 * r['accuracy']:.1f} | {r['macro_f1']:.4f} | "
                         f"{r['seconds']:.1f} |")
        lines += ["| dgi (quoted) | scripts/dgi_cora.py: 10 seeds × 50 Adam probes | 81.99 ± 0.92 | — "
                  "| ≈ 23 per seed |",
                  "", "Cora node2vec validation accuracy: " + ", ".join(
                      f"({k}) {100 * v:.1f}" for k, v in co["validation"].items())]
    return "\n".join(lines)


def main(argv=None):
    ap = options.Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="0.25,1,4", type=_grid,
                    help="comma-separated values (positive, finite) searched for both p and q")
    ap.add_argument("--seed", type=options.non_negative_int, default=0, help="embedding seed (walks, skip-gram, LINE)")
    ap.add_argument("--eval-seed", type=options.non_negative_int, default=0, help="seed of the random splits")
    ap.add_argument("--repeats", type=options.positive_int, default=10, help="random splits (default 10)")
    ap.add_argument("--C", default="1", type=_c_values, help="comma-separated C values (positive, finite) of the "
                    "logistic regression, chosen on validation with (p, q) when several (default 1: the DeepWalk "
                    "scoring protocol)")
    ap.add_argument("--normalize", default="none", type=_normalizations, help="comma-separated feature "
                    "normalisations among none, l2, standardize, chosen on validation when several (default none)")
    ap.add_argument("--deterministic", action="store_true", help="single-thread skip-gram, same bits per seed")
    ap.add_argument("--no-line", dest="line", action="store_false")
    ap.add_argument("--no-cora", dest="cora", action="store_false")
    ap.add_argument("--no-blogcatalog", dest="blogcatalog", action="store_false")
    ap.add_argument("--cache", default=None, help="folder for the embeddings (.npy), reused when present")
    ap.add_argument("--json", default=None, type=options.output_file, help="write every number here as well")
    args = ap.parse_args(argv)
    grid = [float(v) for v in args.grid.split(",")]
    if args.cache:
        os.makedirs(args.cache, exist_ok=True)
    t0 = time.perf_counter()
    co = cora(args, grid) if args.cora else None
    bc = blogcatalog(args, grid) if args.blogcatalog else None
    text = markdown(bc, co, args, grid)
    print("\n" + text + f"\n\nTotal wall time {time.perf_counter() - t0:.0f} s.")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(dict(args=vars(args), blogcatalog=bc, cora=co, total_seconds=time.perf_counter() - t0), fh,
                      indent=1)


if __name__ == "__main__":
    main()
