"""``gnn-scratch embed``: PinSage item embeddings of a generated user-item graph, layer-wise on Dask.

A LocalCluster of ``--workers`` processes by default, or the cluster of ``--scheduler``. The graph
is generated on one worker and copied to the others, the item features are drawn on the workers
per chunk, each layer's states stay on the workers, and the workers write the final chunks to
``--out`` (part-00000.npy, ... and manifest.json; ``distributed.load_embeddings`` reads them back).
The dashboard link goes to standard error; the progress bars too, when it is a terminal.
The model is two ``PinSAGEConv`` layers initialised from ``--seed`` (a trained model: call
``layerwise_inference_dask`` with its layers).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from ..tasks import options
from .local import BIPARTITE_SIZES

FEATURES, HIDDEN, DIM = 32, 64, 64                       # x width, Q's width, embedding width
NEIGHBOURHOOD = dict(num_walks=50, walk_length=2, k=10, hops=2)   # the paper's T, L; item -> user -> item


def output_folder(text):
    """--out: a folder to write into (made if missing; its parent must exist)."""
    path = os.path.abspath(text)
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"expected a folder, but {text!r} is a file")
    if not os.path.isdir(os.path.dirname(path)):
        raise argparse.ArgumentTypeError(f"expected a folder whose parent exists, but {os.path.dirname(path)!r} "
                                         "does not exist")
    return path


def add_arguments(p):
    sizes = ", ".join(f"{k} ({v['num_items']:,} items, ~{2 * v['num_users'] * v['mean_interactions'] / 1e6:g}M edges)"
                      for k, v in BIPARTITE_SIZES.items())
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://host:8786; --out must then be a folder every worker "
                        "sees (default: start a LocalCluster here)")
    p.add_argument("--workers", default=None, type=options.positive_int, metavar="N",
                   help="worker processes of the LocalCluster, one thread each (default 2; not with --scheduler)")
    p.add_argument("--dataset", default="small", type=str.lower, choices=tuple(BIPARTITE_SIZES), metavar="SIZE",
                   help=f"the generated user-item graph (data.bipartite): {sizes} (default: small)")
    p.add_argument("--out", required=True, type=output_folder, metavar="FOLDER",
                   help="where the workers write the embedding chunks and manifest.json (required)")
    p.add_argument("--chunk-size", default=16384, type=options.positive_int, metavar="ROWS",
                   help="rows per chunk: the unit of every task (default 16384)")
    p.add_argument("--seed", default=0, type=options.non_negative_int, metavar="S",
                   help="seed of the graph, the features, the walks and the weights (default 0)")


def run(args):
    """The embed command: returns the exit status (0)."""
    if args.scheduler is not None and args.workers is not None:
        raise ValueError("--workers sizes a LocalCluster; with --scheduler the cluster's own workers are used")
    from ..nn.conv.pinsage_conv import PinSAGEConv
    from .inference import _distributed, connect, layerwise_inference_dask
    from .local import BipartiteGraph, GeneratedFeatures, ImportanceNeighbourhood

    try:
        _distributed()
    except ImportError as e:              # said as a user's mistake (exit 2), naming the extra to install
        raise ValueError(str(e)) from None
    builder = BipartiteGraph(args.dataset, seed=args.seed)
    I = builder.num_items
    x = GeneratedFeatures(I, FEATURES, seed=args.seed)
    nb = ImportanceNeighbourhood(seed=args.seed, num_src=I, **NEIGHBOURHOOD)
    layers = [PinSAGEConv(FEATURES, HIDDEN, DIM, seed=args.seed), PinSAGEConv(DIM, HIDDEN, DIM, seed=args.seed + 1)]

    def say(line):
        print(line, file=sys.stderr)

    t0 = time.perf_counter()
    with connect(args.scheduler, n_workers=args.workers or 2, log=say) as client:
        manifest = layerwise_inference_dask(layers, x, builder, nb, client=client, chunk_size=args.chunk_size,
                                            out=args.out, log=say)
    N, F = manifest["shape"]
    print(f"wrote {N} x {F} item embeddings ({args.dataset}) in {len(manifest['files'])} chunk file(s) to "
          f"{args.out} in {time.perf_counter() - t0:.1f} s")
    return 0
