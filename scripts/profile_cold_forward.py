"""How much slower is one inference forward when it does not follow another? (issue 19)

    python scripts/profile_cold_forward.py [--model gcn] [--graph cora] [--repeats 30]

``gnn-scratch bench`` alternates our process and PyG's, so each timed forward of ours starts after the
other library ran with ours idle. This script times, in one process, the bench's model on a Planetoid graph
(``bench.models.build_ours``, evaluation mode) after different things ran just before it:

* ``hot``: the same forward (everything it touches is cached);
* ``sleep 1 / 10 ms``: the process idle (what the benchmark does to it);
* ``busy loop 20 ms``: a Python loop that keeps the core awake and touches almost nothing (if the
  slowdown were the clock or an idle core's sleep state, this would remove it);
* ``sleep, then read the data``: one read of every cache line of every array the forward reads
  (features, weights, the graph and a GCN's normalised graph): what is left is not the data;
* ``sleep, then a 20-node forward``: the same model on a tiny graph first -- the same code, almost no
  data: what it removes is the cost of the code path (instructions, Python objects, dispatch);
* ``20-node forward, hot / after sleep``: that code path's cost alone.

Prints one line per case: the median and min over ``--repeats`` forwards, in ms. Absolute numbers
depend on the machine and what else runs on it; the differences between the cases are the point.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

from gnn_scratch.tasks import options


def main(argv=None):
    p = options.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gcn", choices=("gcn", "sage", "gat"))
    p.add_argument("--graph", default="cora", choices=("cora", "citeseer"))
    p.add_argument("--repeats", type=options.positive_int, default=30, help="forwards timed per case (default 30)")
    p.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                   help="an existing folder holding planetoid/ind.<graph>.* (default: $GNN_SCRATCH_DATA, then the "
                        "cache)")
    args = p.parse_args(argv)
    if args.data_root is None:
        args.data_root = os.environ.get("GNN_SCRATCH_DATA")

    import scipy.sparse as sp

    from gnn_scratch.bench.harness import GraphSpec, load_bench_data
    from gnn_scratch.bench.models import build_ours
    from gnn_scratch.graph import Graph
    from gnn_scratch.loop import input_is_data

    spec = GraphSpec(args.graph, "planetoid")
    d = load_bench_data(spec, args.data_root, need_dense=False)
    model, _, _ = build_ours(args.model, spec, d.num_features, d.num_classes)
    x, g = d.x, d.graph
    rng = np.random.default_rng(0)
    tiny_g = Graph.from_edge_index(rng.integers(0, 20, (2, 60)), num_nodes=20)
    tiny_x = sp.random(20, x.shape[1], density=0.02, format="csr", dtype=x.dtype, random_state=0)
    arrays = [a for a in (getattr(x, "data", None), getattr(x, "indices", None), getattr(x, "indptr", None))
              if a is not None] + [p for _, p, _ in model.named_parameters()] + [g.indptr, g.indices]
    for _, m in model.modules():   # a GCN layer reads its cached normalised graph, not g
        if hasattr(m, "propagation"):
            g_hat, a_hat = m.propagation(g, m.params["W"].dtype)
            arrays += [g_hat.indptr, g_hat.indices, a_hat]
    arrays = [np.ascontiguousarray(a).reshape(-1).view(np.uint8) for a in arrays]   # views: no copies

    def forward():
        model.eval()
        model.forward(x, g)

    def tiny():
        model.eval()
        model.forward(tiny_x, tiny_g)

    def busy(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    def read_data():
        for a in arrays:
            a[::64].sum()    # one byte of every 64-byte line

    cases = {
        "hot": (forward, forward),
        "sleep 1 ms": (forward, lambda: time.sleep(0.001)),
        "sleep 10 ms": (forward, lambda: time.sleep(0.01)),
        "busy loop 20 ms": (forward, lambda: busy(0.02)),
        "sleep 10 ms, then read the data": (forward, lambda: (time.sleep(0.01), read_data())),
        "sleep 10 ms, then a 20-node forward": (forward, lambda: (time.sleep(0.01), tiny())),
        "20-node forward, hot": (tiny, tiny),
        "20-node forward, after sleep 10 ms": (tiny, lambda: time.sleep(0.01)),
    }
    with input_is_data(model):
        for _ in range(5):
            forward()
            tiny()
        times = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, (fn, before) in cases.items():
                before()
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    print(f"{args.model} on {args.graph}, inference forward, {args.repeats} repeats (median, min; ms)")
    for name, v in times.items():
        print(f"  {name:38s} {1e3 * statistics.median(v):7.3f}  {1e3 * min(v):7.3f}")


if __name__ == "__main__":
    main()
