"""Benchmark the neighbour sampler and the background producer of mini-batch training.

For each graph (Cora if its files are found, and a 100k-node / ~1M-edge CSBM):
  * sampler throughput: sampled edges per second for ``--fanout`` (default 25,10) and batches of
    ``--batch-size`` (default 512) seeds, seeds in shuffled order, after one warm-up batch
    (Numba compilation). The time includes building the block ``Graph`` objects.
  * the share of a mini-batch training step (SAGE, mean, hidden 64: forward, backward, Adam) spent
    waiting for the next batch, with the sampler inline (``use_thread=False``: the wait is the
    sampling itself) and in a background producer thread (the wait is whatever the producer has
    not hidden).

    python scripts/bench_sampler.py [--json results.json] [--batches 40] [--steps 30]

Prints a markdown table. Timings depend on the machine and on what else runs on it: the two
shares are measured back to back in one process, so compare them with each other.
"""
from __future__ import annotations

import json
import os
import platform
import time

import numpy as np

from gnn_scratch.data import csbm, get_dataset
from gnn_scratch.minibatch import batch_stream
from gnn_scratch.models.sage import SAGE
from gnn_scratch.nn import SoftmaxCrossEntropy
from gnn_scratch.optim import Adam
from gnn_scratch.sampling import sample_blocks
from gnn_scratch.tasks import options
from gnn_scratch.train import prepare_features


def throughput(graph, batch_size, fanouts, batches, seed=0):
    """(sampled edges / s, ms per batch, mean sampled edges per batch) over ``batches`` batches."""
    order = np.random.default_rng(seed).permutation(graph.num_nodes)
    sample_blocks(graph, order[:batch_size], fanouts, seed=0)                 # compile / warm up
    edges, elapsed, done, start = 0, 0.0, 0, 0
    while done < batches:
        if start + batch_size > order.size:
            start = 0
        seeds = order[start:start + batch_size]
        t0 = time.perf_counter()
        mb = sample_blocks(graph, seeds, fanouts, seed=(seed, done))
        elapsed += time.perf_counter() - t0
        edges += mb.num_sampled_edges
        start += batch_size
        done += 1
    return edges / elapsed, 1e3 * elapsed / batches, edges / batches


def wait_share(data, x, batch_size, fanouts, steps, use_thread, seed=0):
    """(share of step time waiting for batches, ms per step) over ``steps`` training steps."""
    model = SAGE(data.num_features, data.num_classes, hidden_channels=64, seed=seed)
    opt = Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    loss_fn = SoftmaxCrossEntropy()
    nodes = np.arange(data.num_nodes)
    # warm up every kernel the step uses, so compilation is not charged to either variant
    for mb, x_in in batch_stream(data.graph, x, nodes[:batch_size], batch_size, fanouts, seed, 0, False):
        loss_fn.forward(model.forward(x_in, mb.blocks), data.y[mb.seeds])
        model.backward(loss_fn.backward())
    done, waited, t_start, epoch = 0, 0.0, time.perf_counter(), 1
    while done < steps:
        with batch_stream(data.graph, x, nodes, batch_size, fanouts, seed, epoch, use_thread) as stream:
            for mb, x_in in stream:
                opt.zero_grad()
                loss_fn.forward(model.forward(x_in, mb.blocks), data.y[mb.seeds])
                model.backward(loss_fn.backward())
                opt.step()
                done += 1
                if done == steps:
                    break
            waited += stream.wait_s
        epoch += 1
    total = time.perf_counter() - t_start
    return waited / total, 1e3 * total / steps


def main(argv=None):
    ap = options.Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=options.positive_int, default=512)
    ap.add_argument("--fanout", type=options.fanouts, default="25,10",
                    help="comma-separated fan-outs, hop order, one per layer of the 2-layer SAGE; -1 = all "
                         "neighbours (default 25,10)")
    ap.add_argument("--batches", type=options.positive_int, default=40,
                    help="batches timed for the throughput (default 40)")
    ap.add_argument("--steps", type=options.positive_int, default=30,
                    help="training steps timed per variant (default 30)")
    ap.add_argument("--json", default=None, type=options.output_file, metavar="PATH",
                    help="also write the results as JSON")
    ap.add_argument("--data-root", default=None, type=options.existing_folder, metavar="DIR",
                    help="an existing folder holding planetoid/ind.cora.* (default: $GNN_SCRATCH_DATA, then the cache)")
    args = ap.parse_args(argv)
    fanouts = args.fanout
    if len(fanouts) != 2:
        ap.error(f"argument --fanout: expected one fan-out per layer of the 2-layer SAGE (2), got {len(fanouts)}")
    graphs = []
    try:
        graphs.append(("cora", get_dataset("cora", root=args.data_root, download=False)))
    except (OSError, ValueError) as e:
        print(f"(skipping Cora: {e.__class__.__name__})")
    graphs.append(("csbm 100k", csbm(num_nodes=100_000, avg_degree=10, num_features=64, seed=0)))
    rows = []
    for name, data in graphs:
        g = data.graph
        eps, ms, per_batch = throughput(g, args.batch_size, fanouts, args.batches)
        x = prepare_features(data)
        inline, step_inline = wait_share(data, x, args.batch_size, fanouts, args.steps, use_thread=False)
        threaded, step_thread = wait_share(data, x, args.batch_size, fanouts, args.steps, use_thread=True)
        rows.append(dict(graph=name, nodes=g.num_nodes, edges=g.num_edges, batch_size=args.batch_size,
                         fanouts=fanouts, sampled_edges_per_batch=per_batch, sample_ms_per_batch=ms,
                         sampled_edges_per_s=eps, step_ms_inline=step_inline, wait_share_inline=inline,
                         step_ms_threaded=step_thread, wait_share_threaded=threaded))
    print(f"\nfan-out {fanouts}, batch {args.batch_size}; SAGE mean, hidden 64, Adam; "
          f"{os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}\n")
    print("| graph | nodes | edges | sampled edges / batch | sampling ms / batch | sampled edges / s "
          "| step ms (inline) | waiting (inline) | step ms (thread) | waiting (thread) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['graph']} | {r['nodes']:,} | {r['edges']:,} | {r['sampled_edges_per_batch']:,.0f} "
              f"| {r['sample_ms_per_batch']:.2f} | {r['sampled_edges_per_s'] / 1e6:.2f} M "
              f"| {r['step_ms_inline']:.1f} | {100 * r['wait_share_inline']:.1f} % "
              f"| {r['step_ms_threaded']:.1f} | {100 * r['wait_share_threaded']:.1f} % |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu_count=os.cpu_count(), results=rows), f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
