"""Scaling of layer-wise PinSage inference on Dask: wall time and peak memory, 1 and 2 workers, per graph size.

    nice python scripts/bench_dask_inference.py --sizes 1m 10m --workers 1 2 [--json FILE]

Each measurement runs in a fresh Python process (so ``ru_maxrss`` is that run's peak): a LocalCluster
of W worker processes (one thread each; its scheduler lives in the client's process) is started, a
small warm-up run loads the Numba kernels on the workers, then one timed run of
``layerwise_inference_dask`` embeds every item of the generated user-item graph (``data.bipartite``,
``distributed.BIPARTITE_SIZES``): the graph built on one worker and copied to the others, features
drawn on the workers, two PinSAGEConv layers (32 -> 64 -> 64, Q 64 wide), importance neighbourhoods
with T = 50 walks of L = 2 item -> user -> item steps, top k = 10, the result written per chunk.
Reported: the time to build the graph on a worker and copy it to the others, the time of the rest
(neighbourhoods + 2 layers + writing the chunks), each worker's peak RSS, the client process's peak
RSS, the graph's size, and a run of ``layerwise_inference_local`` in one process on one Numba thread
(as each worker has) for comparison (its time and peak RSS), whose result is compared bit for bit
with the files each Dask run wrote. Prints a Markdown table.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

CHUNKS = 16        # chunks per graph: every worker gets several tasks per stage


def _rss_peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(size):
    from gnn_scratch.distributed import BipartiteGraph, GeneratedFeatures, ImportanceNeighbourhood
    from gnn_scratch.distributed.command import DIM, FEATURES, HIDDEN, NEIGHBOURHOOD
    from gnn_scratch.nn.conv.pinsage_conv import PinSAGEConv
    builder = BipartiteGraph(size, seed=0)
    I = builder.num_items
    x = GeneratedFeatures(I, FEATURES, seed=0)
    nb = ImportanceNeighbourhood(seed=0, num_src=I, **NEIGHBOURHOOD)
    layers = [PinSAGEConv(FEATURES, HIDDEN, DIM, seed=0), PinSAGEConv(DIM, HIDDEN, DIM, seed=1)]
    return builder, x, nb, layers, -(-I // CHUNKS)


def _graph_facts(graph):
    nbytes = sum(a.nbytes for a in (graph.indptr, graph.indices, graph.edge_id) if a is not None)
    return {"nodes": graph.num_nodes, "edges": graph.num_edges, "graph_mb": nbytes / 2**20}


def one_dask(size, workers, out):
    from gnn_scratch.distributed import connect, layerwise_inference_dask
    builder, x, nb, layers, chunk = _setup(size)
    with connect(n_workers=workers, memory_limit=0, log=lambda s: None) as client:
        small = _setup("small")
        layerwise_inference_dask(small[3], small[1], small[0], small[2], client=client, chunk_size=small[4],
                                 out=os.path.join(out, "warmup"), progress=False)
        client.run(lambda: __import__("gc").collect())
        before = client.run(_rss_peak_mb)
        stages = []
        t0 = time.perf_counter()
        layerwise_inference_dask(layers, x, builder, nb, client=client, chunk_size=chunk, out=os.path.join(out, "emb"),
                                 progress=False, log=lambda s: stages.append((s, time.perf_counter() - t0)))
        wall = time.perf_counter() - t0
        graph_s = next(t for s, t in stages if "graph on every worker" in s)
        peaks = client.run(_rss_peak_mb)
    return {"size": size, "workers": workers, "wall_s": wall, "graph_s": graph_s, "inference_s": wall - graph_s,
            "stages": stages, "chunk_size": chunk, "items": builder.num_items,
            "worker_peak_mb": sorted(peaks.values()), "worker_peak_before_mb": sorted(before.values()),
            "client_peak_mb": _rss_peak_mb()}


def one_local(size, compare):
    from gnn_scratch.distributed import layerwise_inference_local, load_embeddings
    builder, x, nb, layers, chunk = _setup(size)
    t_graph = time.perf_counter()
    graph = builder()
    t0 = time.perf_counter()
    Z = layerwise_inference_local(layers, x, graph, nb, chunk_size=chunk)
    wall = time.perf_counter() - t0
    equal = {folder: bool(np.array_equal(load_embeddings(os.path.join(folder, "emb")), Z)) for folder in compare}
    return {"size": size, "workers": 0, "wall_s": wall, "graph_s": t0 - t_graph, "chunk_size": chunk,
            "items": builder.num_items,
            "peak_mb": _rss_peak_mb(), "equal_to_dask": equal, **_graph_facts(graph)}


def child(argv):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", *argv]
    # the in-memory run gets one Numba thread, as each Dask worker does (connect sets NUMBA_NUM_THREADS)
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"} if argv[0] == "local" else None
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def table(rows):
    lines = ["| graph (items / edges) | workers | graph built + copied (s) | inference (s) |"
             " peak RSS per worker (MiB) | client peak RSS (MiB) | graph (MiB) | equal to in-memory |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for r in rows:
        g = f"{r['size']} ({r['items'] / 1000:g}k / {r['edges'] / 1e6:.1f}M)"
        if r["workers"] == 0:
            lines.append(f"| {g} | in-memory, 1 process, 1 thread | {r['graph_s']:.1f} (built) | {r['wall_s']:.1f} | "
                         f"{r['peak_mb']:.0f} (the process) | - | {r['graph_mb']:.0f} | - |")
        else:
            peaks = " / ".join(f"{p:.0f}" for p in r["worker_peak_mb"])
            lines.append(f"| {g} | {r['workers']} | {r['graph_s']:.1f} | {r['inference_s']:.1f} | {peaks} | "
                         f"{r['client_peak_mb']:.0f} | "
                         f"{r['graph_mb']:.0f} | {'yes' if r.get('equal') else 'NO'} |")
    return "\n".join(lines)


def main():
    if sys.argv[1:2] == ["--child"] and len(sys.argv) > 3:   # one measurement (``child``), checked by the parent
        kind, size, *rest = sys.argv[2:]
        row = one_dask(size, int(rest[0]), rest[1]) if kind == "dask" else one_local(size, rest)
        print(json.dumps(row))
        return
    from gnn_scratch.distributed import BIPARTITE_SIZES
    from gnn_scratch.tasks import options
    p = options.Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["1m", "10m"], type=str.lower, choices=tuple(BIPARTITE_SIZES),
                   metavar="SIZE", help=f"generated graphs, among {', '.join(BIPARTITE_SIZES)} (default 1m 10m)")
    p.add_argument("--workers", nargs="+", type=options.positive_int, default=[1, 2],
                   help="Dask worker counts (default 1 2)")
    p.add_argument("--json", default=None, type=options.output_file, help="write the rows here too")
    args = p.parse_args()
    rows = []
    for size in args.sizes:
        folders = []
        for w in args.workers:
            folder = tempfile.mkdtemp(prefix=f"bench_dask_{size}_{w}_")
            rows.append(child(["dask", size, str(w), folder]))
            folders.append(folder)
            print(json.dumps(rows[-1]), file=sys.stderr)
        local = child(["local", size, *folders])
        print(json.dumps(local), file=sys.stderr)
        for r, folder in zip(rows[-len(folders):], folders):
            r["equal"] = local["equal_to_dask"][folder]
            r.update(nodes=local["nodes"], edges=local["edges"], graph_mb=local["graph_mb"])
            shutil.rmtree(folder)
        rows.append(local)
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
