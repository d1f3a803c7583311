"""PinSAGE vs popularity vs features-only on generated user-item graphs (issue 18), 5 seeds, with and without
the hard-negative curriculum. Writes a Markdown table (stdout, and --out).

    NUMBA_NUM_THREADS=1 nice python scripts/pinsage_generated.py --out pinsage_table.md

Protocol: for each seed, ``generate_bipartite`` (sizes below; the seed also seeds training); held-out
(query, positive) pairs = two items of one user, the (user, positive) interaction removed from training;
every item but the query is a candidate; rank ties at their mean rank. PinSAGE: two PinSAGEConv
layers (32 -> 64 -> 64 -> 32), importance neighbourhoods of top-k=10 from 50 walks of 2 item -> user
-> item steps, max-margin loss (margin 0.1), 256 shared random negatives per batch, Adam lr 0.01,
``--epochs`` (8) epochs of ``--pairs`` (2048) positive pairs in batches of 256; "+ curriculum": epoch e
adds e-1 hard negatives per query, drawn from personalised-PageRank ranks [I/100, I/25) (``--band``),
their hinge terms averaged apart from the random ones and added with weight ``--hard-weight`` (1;
'none' = one pooled mean, which dilutes 1-7 hard terms among 256 random ones: no measurable effect,
README.md). Inference: both layers on the full (I, I) importance graph
(seed-fixed walks).
"""
import argparse
import json
import time

import numpy as np

from gnn_scratch.data.bipartite import generate_bipartite
from gnn_scratch.pinsage.evaluate import embedding_ranks, feature_ranks, metrics, popularity_ranks
from gnn_scratch.pinsage.train import PinSageConfig, embed_items, item_graph, train_pinsage
from gnn_scratch.tasks import options

COLS = ("HR@10", "HR@50", "MRR", "MRR_scaled", "median_rank")


def _hard_weight(text):
    """argparse type of --hard-weight: 'none' or a finite number >= 0."""
    if text.lower() == "none":
        return None
    try:
        return options.check("non_negative_float", float(text), "--hard-weight")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'none' or a finite number >= 0, got {text!r}") from None


def main():
    ap = options.Parser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--items", type=options.positive_int, default=5000, help="items I >= 2 (default 5000)")
    ap.add_argument("--users", type=options.positive_int, default=12000)
    ap.add_argument("--communities", type=options.positive_int, default=25, help="at most --items (default 25)")
    ap.add_argument("--test-pairs", type=options.positive_int, default=1000)
    ap.add_argument("--seeds", type=options.positive_int, default=5)
    ap.add_argument("--first-seed", type=options.non_negative_int, default=0,
                    help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--epochs", type=options.positive_int, default=8)
    ap.add_argument("--pairs", type=options.positive_int, default=2048)
    ap.add_argument("--hard-weight", type=_hard_weight, default=1.0,
                    help="'none': hard negatives pooled with the random ones in one mean; a number lambda >= 0 "
                         "(default 1): mean over random + lambda * mean over hard (MaxMarginLoss)")
    ap.add_argument("--band", type=options.non_negative_int, nargs=2, default=None, metavar=("LO", "HI"),
                    help="PageRank ranks [LO, HI) of the hard negatives, LO < HI <= --items (default [I/100, I/25))")
    ap.add_argument("--lr", type=options.finite_positive_float, default=0.01)
    ap.add_argument("--margin", type=options.non_negative_float, default=0.1)
    ap.add_argument("--favourites", type=options.positive_int, default=3)
    ap.add_argument("--concentration", type=options.finite_positive_float, default=0.5)
    ap.add_argument("--out", default=None, type=options.output_file, help="write the Markdown table here too")
    ap.add_argument("--json", default=None, type=options.output_file, help="write every number here too")
    a = ap.parse_args()
    if a.items < 2:
        ap.error(f"argument --items: expected at least 2 items, got {a.items}")
    if a.communities > a.items:
        ap.error(f"argument --communities: expected at most --items ({a.items}) communities, got {a.communities}")
    if a.band and not a.band[0] < a.band[1] <= a.items:
        ap.error(f"argument --band: expected LO < HI <= --items ({a.items}), got {a.band[0]} {a.band[1]}")
    results = {m: [] for m in ("popularity", "features only", "PinSAGE", "PinSAGE + curriculum")}
    timing = {"generate": [], "item graphs": [], "PinSAGE": [], "PinSAGE + curriculum": []}
    waits = {"PinSAGE": [], "PinSAGE + curriculum": []}
    size = None
    t_all = time.perf_counter()
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        t = time.perf_counter()
        d = generate_bipartite(num_items=a.items, num_users=a.users, num_communities=a.communities,
                               num_test_pairs=a.test_pairs, favourites=a.favourites,
                               concentration=a.concentration, seed=seed)
        timing["generate"].append(time.perf_counter() - t)
        size = (d.num_items, d.num_users, d.num_interactions, d.test_pairs.shape[0])
        results["popularity"].append(metrics(popularity_ranks(d.item_degree, d.test_pairs)))
        results["features only"].append(metrics(feature_ranks(d.x, d.test_pairs)))
        t = time.perf_counter()
        cfg = PinSageConfig(epochs=a.epochs, pairs_per_epoch=a.pairs, seed=seed, hard_weight=a.hard_weight,
                            band=tuple(a.band) if a.band else None, lr=a.lr, margin=a.margin)
        G = item_graph(d, cfg.k, cfg.num_walks, cfg.walk_length, seed=seed)
        P = item_graph(d, cfg.ppr_k, cfg.num_walks, cfg.walk_length, seed=seed)
        timing["item graphs"].append(time.perf_counter() - t)
        for name, cur in (("PinSAGE", False), ("PinSAGE + curriculum", True)):
            t = time.perf_counter()
            r = train_pinsage(d, PinSageConfig(**{**cfg.__dict__, "curriculum": cur}), P=P)
            Z = embed_items(r.model, d, G, cfg)
            results[name].append(metrics(embedding_ranks(Z, d.test_pairs)))
            timing[name].append(time.perf_counter() - t)
            waits[name].append(r.wait_share)
            print(f"seed {seed} {name}: {results[name][-1]['MRR']:.4f} MRR, train {r.train_s:.1f} s, "
                  f"wait share {r.wait_share:.3f}, losses {[round(x, 4) for x in r.losses]}, "
                  f"hard hinge hits {[round(x, 3) for x in r.hard_hits]}", flush=True)
    total = time.perf_counter() - t_all
    lines = [f"Generated graph: {size[0]} items, {size[1]} users, {size[2]} training interactions "
             f"(last seed), {size[3]} held-out pairs; {a.seeds} seeds (mean +- std); {a.epochs} epochs x "
             f"{a.pairs} pairs. Candidates: all {size[0] - 1} other items. MRR = plain mean 1/rank "
             f"(printed first); MRR/100 = the paper's scaled MRR 1/ceil(rank/100).", "",
             "| method | HR@10 | HR@50 | MRR | MRR/100 (paper) | median rank |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m, rows in results.items():
        cells = []
        for c in COLS:
            v = np.array([r[c] for r in rows])
            cells.append(f"{v.mean():.1f} +- {v.std():.1f}" if c == "median_rank" else f"{v.mean():.4f} +- {v.std():.4f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    base = np.array([r["MRR"] for r in results["PinSAGE"]])
    cur = np.array([r["MRR"] for r in results["PinSAGE + curriculum"]])
    lines += ["", f"Curriculum MRR change (paired by seed): {np.mean(cur - base):+.4f} +- {np.std(cur - base):.4f} "
              f"({np.sum(cur > base)}/{cur.size} seeds better)",
              "Timings per seed (s, mean): " + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in timing.items())
              + f"; whole script {total:.0f} s",
              "Trainer wait share (time blocked on the producer queue / training time): "
              + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in waits.items())]
    text = "\n".join(lines)
    print(text)
    if a.out:
        open(a.out, "w").write(text + "\n")
    if a.json:
        json.dump(dict(results=results, timing=timing, waits=waits, size=size, total_s=total), open(a.json, "w"))


if __name__ == "__main__":
    main()
