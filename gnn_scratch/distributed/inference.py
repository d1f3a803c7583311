"""Layer-wise inference on a Dask cluster: each layer's states live as row chunks on the workers.

PinSage's MapReduce inference (Ying et al., KDD 2018, §3.4) on ``dask.distributed`` futures:

    neighbourhoods   plan[c] = gather_plan(neighbourhood(graph, chunk c))   once per chunk, on a worker;
                     the client fetches only plan[c].needed (which source chunks chunk c reads)
    per layer        m[c]  = transform(h[c])                          the map, one task per chunk
                     part[c][s] = m[s][plan[c].rows[s]]  for s in needed[c]
                                                                      the join: a task beside each chunk of
                                                                      m takes the rows chunk c reads, so
                                                                      only those rows travel
                     h'[c] = combine(h[c], aggregate(concat(part[c]), plan[c].block))    the reduce

The graph goes to one worker (scattered, or built there by a picklable function, so the client
never holds it), the neighbourhood's ``prepare`` runs there (the walk CSR), and it is then copied
to every other worker, once; x is made per chunk on the workers from a ``GeneratedFeatures`` (or
scattered chunk by chunk from an array). The client holds futures, the chunk starts and the ``needed`` lists:
never a layer's states. The result is written chunk by chunk to ``out`` by the workers
(``part-00000.npy``, ... plus ``manifest.json``), or returned as a lazy dask array backed by the
workers' chunks. Tasks are the functions of ``distributed.local``, so the result equals
``layerwise_inference_local`` bit for bit (see that module for why).

Dask is imported here only: ``gnn_scratch.distributed`` imports this module lazily, and nothing
on the single-machine path imports it (tests/test_distributed.py checks it in a fresh interpreter).
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from contextlib import contextmanager

import numpy as np

from ..graph import Graph
from .local import (_check_layers, chunk_bounds, feature_rows, num_rows, per_layer, plan_chunk, plan_rows,
                    reduce_gathered, take_rows, transform_chunk)

MISSING_DASK = ("layer-wise inference on Dask needs dask and distributed: pip install 'gnn_scratch[distributed]' "
                "(or pip install 'dask[distributed]')")


def _distributed():
    try:
        import distributed
    except ImportError as e:
        raise ImportError(MISSING_DASK) from e
    return distributed


@contextmanager
def connect(scheduler=None, n_workers=2, threads_per_worker=1, memory_limit="auto", dashboard_address=":0",
            log=None):
    """A ``distributed.Client``: to ``scheduler`` (an address, e.g. tcp://host:8786) or a new LocalCluster.

    The LocalCluster has ``n_workers`` worker processes of ``threads_per_worker`` threads each (and as
    many Numba threads: NUMBA_NUM_THREADS), its scheduler in this process; it is closed on exit (a
    remote cluster is only disconnected from).
    ``log`` (a function of one str, default: print to standard error) gets the dashboard link.
    """
    dist = _distributed()
    log = log or (lambda s: print(s, file=sys.stderr))
    if scheduler is not None:
        client = dist.Client(scheduler)
        cluster = None
    else:
        # Dask is the parallelism: a worker's Numba kernels (the walks, the SpMM) get its own threads only, so
        # W workers of one thread use W cores, not W x all of them
        cluster = dist.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                                    memory_limit=memory_limit, dashboard_address=dashboard_address,
                                    env={"NUMBA_NUM_THREADS": str(threads_per_worker)})
        client = dist.Client(cluster)
    try:
        log(f"dask: {len(client.scheduler_info(n_workers=-1)['workers'])} worker(s) at {client.scheduler.address}, "
            f"dashboard {client.dashboard_link}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ------------------------------------------------------------------------------ worker-side helpers
def _make_chunk(x, lo, hi):
    return feature_rows(x, lo, hi)


def _call(build):
    return build()


def _prepare(neighbourhoods, graph):
    for nb in neighbourhoods:
        nb.prepare(graph)
    return graph


def _needed(plan):
    return plan.needed


def _shape_dtype(a):
    return a.shape, a.dtype.str


def _write_chunk(h, folder, c):
    path = os.path.join(folder, f"part-{c:05d}.npy")
    np.save(path, h)
    return os.path.basename(path)


def layerwise_inference_dask(model_layers, x, graph, neighbourhood, client=None, chunk_size=65536, out=None,
                             progress=None, log=None):
    """Every node's embedding, layer by layer, on a Dask cluster; equal to ``layerwise_inference_local``.

    model_layers: layers with transform / aggregate / combine (``PinSAGEConv``), applied in order.
    x: a ``GeneratedFeatures`` (made on the workers, best: the client never holds x) or an (N, F)
       array (scattered chunk by chunk).
    graph: what ``neighbourhood`` reads: a ``Graph`` (sent once to a worker), or a picklable function of
       no argument that builds it (run on one worker: the client never holds it). A neighbourhood with a
       ``prepare(graph)`` method (``ImportanceNeighbourhood``: the walk CSR) has it run there, then the
       graph with what it cached is copied to every other worker.
    neighbourhood: (graph, nodes) -> block function, an all-nodes block ``Graph``, or one per layer
       (see ``local.chunk_neighbourhood``); evaluated on the workers, per chunk.
    client: a ``distributed.Client``; None starts a LocalCluster of 2 worker processes for this call
       (see ``connect``) and, with ``out`` None, returns the gathered (N, F_out) numpy array.
    chunk_size: rows per chunk (the unit of every task; the in-memory reference must use the same).
    out: a folder: the workers write chunk c to out/part-{c:05d}.npy and the client writes
       out/manifest.json (chunk starts, shape, dtype, files); the manifest is returned. It must be
       reachable by every worker under that path (a LocalCluster: any folder; a real cluster: shared).
       None: a dask array of shape (N, F_out) chunked by ``chunk_size`` whose chunks stay on the
       workers until computed (``load_embeddings`` reads a folder back).
    progress: show dask.distributed's progress bar per layer; None: only when standard error is a terminal.
    log: function of one str for one line per stage (default: nothing).

    Raises ValueError for layers without the three pieces, a mis-shaped x or block; ImportError
    naming the extra when dask is not installed.
    """
    if client is None:
        with connect(log=log) as own:
            result = layerwise_inference_dask(model_layers, x, graph, neighbourhood, own, chunk_size, out,
                                              progress, log)
            return result if out is not None else result.compute()
    dist = _distributed()
    layers = _check_layers(model_layers)
    N = num_rows(x)
    starts = chunk_bounds(N, chunk_size)
    C = starts.size - 1
    log = log or (lambda s: None)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    run = uuid.uuid4().hex[:8]          # task keys of this call: a readable dashboard, no clash across calls
    t0 = time.perf_counter()

    def step(futures, what):
        if show:
            dist.progress(futures)
        else:
            dist.wait(futures)
        bad = [f for f in futures if f.status == "error"]
        if bad:
            bad[0].result()                 # re-raises the worker's exception here
        log(f"dask: {what} done ({time.perf_counter() - t0:.1f} s)")

    if callable(graph) and not isinstance(graph, Graph):    # a builder: the graph is made on a worker, never here
        g = client.submit(_call, graph, key=f"graph-{run}")
    else:
        [g] = client.scatter([graph])
    neighbourhoods = per_layer(neighbourhood, len(layers))
    prepares = [nb for nb in neighbourhoods if callable(getattr(nb, "prepare", None))]
    if prepares:     # the structures the walks need, built once on one worker and copied with the graph
        g = client.submit(_prepare, prepares, g, key=f"graph-prepared-{run}")
    dist.wait([g])
    if g.status == "error":
        g.result()
    client.replicate([g])
    log(f"dask: graph on every worker ({time.perf_counter() - t0:.1f} s)")
    if callable(x):
        h = [client.submit(_make_chunk, x, int(starts[c]), int(starts[c + 1]), key=f"x-{run}-{c}") for c in range(C)]
    else:
        h = [client.scatter(np.ascontiguousarray(x[starts[c]:starts[c + 1]])) for c in range(C)]
    layer_f = client.scatter(list(layers), broadcast=True)

    plans, made = [], {}
    for nb in neighbourhoods:
        if id(nb) not in made:
            nb_f = client.scatter(nb, broadcast=True) if isinstance(nb, Graph) else nb
            k = len(made)
            p = [client.submit(plan_chunk, nb_f, g, starts, c, key=f"plan-{run}-{k}-{c}") for c in range(C)]
            step(p, f"neighbourhoods of {C} chunk(s)")
            need = [np.asarray(a) for a in client.gather([client.submit(_needed, f) for f in p])]
            # rows[c][j]: the ids chunk c reads from chunk need[c][j]; small arrays, kept for every layer
            rows = [[client.submit(plan_rows, p[c], j, key=f"rows-{run}-{k}-{c}-{j}") for j in range(len(need[c]))]
                    for c in range(C)]
            made[id(nb)] = (p, need, rows)
        plans.append(made[id(nb)])

    for i, (lf, (plan, need, rows)) in enumerate(zip(layer_f, plans)):
        m = [client.submit(transform_chunk, lf, h[c], key=f"transform-{run}-L{i}-{c}") for c in range(C)]
        # the join: the rows chunk c needs are taken where each chunk of m lives, and only they travel
        parts = [[client.submit(take_rows, m[s], rows[c][j], key=f"take-{run}-L{i}-{c}-{s}")
                  for j, s in enumerate(need[c])] for c in range(C)]
        h = [client.submit(reduce_gathered, lf, h[c], plan[c], *parts[c], key=f"reduce-{run}-L{i}-{c}")
             for c in range(C)]
        del m, parts                             # the scheduler frees them once the reduces are done
        step(h, f"layer {i + 1}/{len(layers)}")
    del plans, made                              # the neighbourhoods, likewise

    if out is not None:
        folder = os.path.abspath(os.fspath(out))
        os.makedirs(folder, exist_ok=True)
        written = [client.submit(_write_chunk, h[c], folder, c, key=f"write-{run}-{c}") for c in range(C)]
        step(written, f"writing {C} chunk file(s) to {folder}")
        (shape0, dtype) = client.submit(_shape_dtype, h[0]).result()
        manifest = {"shape": [N, int(shape0[1])], "dtype": dtype, "chunk_starts": starts.tolist(),
                    "files": client.gather(written)}
        with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f)
        return manifest
    import dask.array as da
    metas = client.gather([client.submit(_shape_dtype, f) for f in h])
    return da.concatenate([da.from_delayed(f, shape, dtype=np.dtype(dt)) for f, (shape, dt) in zip(h, metas)],
                          axis=0)

