"""Scaling: GCN training-step time against the edge count, average degree 10, with the log-log slope.

Each size is a random graph of E edges and E / 10 nodes (128 features, 64 hidden, 16 classes),
timed like the model benchmark (``models.time_graph``: ours and PyG in two server processes,
interleaved).
The slope s of log t = a + s log E, fitted by least squares over the sizes, is 1 for a step whose
cost is linear in the graph; fixed per-step costs pull it below 1 at the small end, and caches
that stop holding the working set push it above 1.
"""
from __future__ import annotations

import time

import numpy as np

from .harness import random_spec
from .models import Pair, ServerError, _log, plan_for, time_graph

EDGES = (100_000, 316_228, 1_000_000, 3_162_278, 10_000_000)
QUICK_EDGES = (10_000, 31_623, 100_000, 316_228, 1_000_000)
AVG_DEGREE = 10


def loglog_slope(edges, seconds):
    """Least-squares slope of log(seconds) against log(edges); None with fewer than two points."""
    e = np.asarray(edges, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    ok = np.isfinite(t) & (t > 0)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(e[ok]), np.log(t[ok]), 1)[0])


def run(edges=EDGES, model="gcn", pyg=True, quick=False, log=_log, forms=None):
    """Rows {edges, nodes, train: {ours, pyg:<form>...}} and the fitted slopes of ours and of PyG's best form."""
    rows = []
    pair = Pair(pyg, None, forms, log)
    try:
        _sizes(edges, model, pyg, quick, log, pair, rows)
    finally:
        pair.close()
    ok = [r for r in rows if "train" in r]
    slope = loglog_slope([r["edges"] for r in ok], [r["train"]["ours"]["median"] for r in ok])
    pyg_best = [min((v["median"] for k, v in r["train"].items() if k.startswith("pyg:")), default=np.nan) for r in ok]
    pyg_slope = loglog_slope([r["edges"] for r in ok], pyg_best) if pyg else None
    return dict(rows=rows, model=model, avg_degree=AVG_DEGREE, slope=slope, pyg_slope=pyg_slope)


def _sizes(edges, model, pyg, quick, log, pair, rows):
    for E in edges:
        spec = random_spec(max(2, E // AVG_DEGREE), E, name=f"scale-{E}")
        warmup, repeats, max_time = plan_for(spec, quick)
        t0 = time.perf_counter()
        try:
            res = time_graph(spec, [model], phases=("train",), pyg=pyg, log=log,
                             plan=(warmup, max(repeats, 3), max_time), pair=pair)[0]
        except ServerError as e:
            res = dict(error=str(e))
        row = dict(edges=int(E), nodes=spec.num_nodes, wall_s=time.perf_counter() - t0)
        if "error" in res:
            row["error"] = res["error"]
            log(f"scaling: E = {E}: {res['error']}")
        else:
            row["train"] = res["train"]
        rows.append(row)
