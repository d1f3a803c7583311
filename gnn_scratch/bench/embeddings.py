"""Shallow-embedding benchmark: DeepWalk / node2vec walks and skip-gram, gnn_scratch beside PecanPy + gensim.

Issue 15's speed target: on BlogCatalog with the node2vec paper's settings (10 walks per node of 80 nodes,
window 10, dimension 128, K = 5 negatives, one epoch), walk generation and the whole pipeline <= 1.0x
PecanPy's (Liu & Krishnan 2021, the fastest public node2vec, Numba) paired with gensim's Word2Vec as PecanPy
itself pairs it, on the same threads, at equal Macro-F1 within 0.01. Three things are timed per (p, q):

* ``walks`` -- ours: ``embed.random_walks`` (rejection sampling for the second order, no per-edge tables);
  PecanPy: ``simulate_walks`` of its fastest mode for that (p, q) -- FirstOrderUnweighted for p = q = 1,
  PreComp otherwise (its per-edge alias tables are built inside the timing, on a fresh graph object each
  round: a user pays them once per run) -- with walk_length = 79 steps so both make 80-node walks; its
  mapping of the walks to string ids (which gensim needs) is part of ``simulate_walks`` and so is timed.
* ``sgns`` -- the same walks (ours, generated once, untimed) trained by ``embed.train_sgns`` with
  ``Node2Vec``'s settings (Hogwild over the Numba threads, degree^0.75 noise, word2vec's roles, gensim 4's start) and by gensim ``Word2Vec(sg=1, negative=5,
  window=10, epochs=1, min_count=0, sample=0, workers=threads)``: the same objective and the same amount of
  work (no frequent-node down-sampling on either side); the walks' conversion to string sentences is untimed.
* ``pipeline`` -- what a user runs: ours ``Node2Vec(p, q).fit(graph)``; PecanPy's ``embed()`` (its walks, then
  ``Word2Vec`` with gensim's defaults, i.e. ``sample=1e-3``, as PecanPy ships it).

The embeddings of the last pipeline round of both sides go through the same evaluation,
``embed.evaluate.evaluate_multilabel`` at 50 % labelled (``eval_repeats`` random splits, seed 0): the
"equal Macro-F1 within 0.01" check.

Both sides run in their own long-lived server, timed there and interleaved round by round by
``harness.interleave`` (ours: ``worker.py serve`` with part "embeddings"; the peer: ``embeddings_peer.py``,
which imports nothing from gnn_scratch). The peer's interpreter is ``peer_python`` (``--peer-python`` or
$GNN_SCRATCH_PEER_PYTHON, default this one): PecanPy 2.0.9 pins numpy < 2 through nptyping 2.5, so it either
lives in a separate environment (``python -m venv peer && peer/bin/pip install pecanpy gensim``) or is
installed ``--no-deps`` beside numpy 2 (``pip install gensim && pip install --no-deps pecanpy==2.0.9
nptyping==2.5.0 numba-progress``), in which case the peer process -- and only it -- puts back the numpy
aliases nptyping reads (``embeddings_peer._alias_shim``). Without a working peer the part still times ours and
says why the peer was skipped. PecanPy and gensim get Numba's thread count (NUMBA_NUM_THREADS, ``workers``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .harness import interleave

PEER_ENV = "GNN_SCRATCH_PEER_PYTHON"
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embeddings_peer.py")
KEYS = ("walks", "sgns", "pipeline")


@dataclass(frozen=True)
class EmbedSpec:
    """A graph with multi-labels: BlogCatalog, or a ``synthetic`` planted-partition graph (``--tiny``)."""
    name: str = "blogcatalog"
    kind: str = "blogcatalog"     # or "synthetic"
    num_nodes: int = 0            # synthetic only
    blocks: int = 4               # synthetic only
    seed: int = 0

    @property
    def label(self):
        return "BlogCatalog" if self.kind == "blogcatalog" else f"synthetic, {self.num_nodes} nodes"


def synthetic_graph(num_nodes, blocks=4, seed=0, p_in=0.08, p_out=0.004):
    """(edge_index (2, E) both directions, labels (N, blocks) bool): a planted partition, label = block."""
    rng = np.random.default_rng(seed)
    block = np.arange(num_nodes) % blocks
    iu = np.triu_indices(num_nodes, 1)
    same = block[iu[0]] == block[iu[1]]
    keep = rng.random(iu[0].size) < np.where(same, p_in, p_out)
    a, b = iu[0][keep], iu[1][keep]
    edge_index = np.concatenate([np.stack([a, b]), np.stack([b, a])], axis=1).astype(np.int64)
    return edge_index, np.eye(blocks, dtype=bool)[block]


def load(spec, data_root=None):
    """(Graph, labels (N, L) bool) of ``spec``; BlogCatalog is never downloaded here (DataNotFoundError)."""
    from ..graph import Graph
    if spec.kind == "synthetic":
        edge_index, labels = synthetic_graph(spec.num_nodes, spec.blocks, spec.seed)
        return Graph.from_edge_index(edge_index, num_nodes=spec.num_nodes), labels
    if spec.kind != "blogcatalog":
        raise ValueError(f"unknown graph kind {spec.kind!r}; expected 'blogcatalog' or 'synthetic'")
    from ..data import load_blogcatalog
    data = load_blogcatalog(data_root, download=False)
    return data.graph, data.labels


def write_pecanpy_csr(graph, path):
    """The graph's CSR rows (our walks follow them) as PecanPy's .npz (IDs, data, indptr, indices)."""
    indptr = np.asarray(graph.indptr, dtype=np.uint32)
    indices = np.asarray(graph.indices, dtype=np.uint32)
    np.savez(path, IDs=np.array([str(i) for i in range(graph.num_nodes)]), data=np.ones(indices.size, np.float32),
             indptr=indptr, indices=indices)


# ------------------------------------------------------------------------------ our server (worker.py serve)


class OursEmbedSide:
    """Server state for gnn_scratch (part "embeddings" of ``models.serve``): the graph, the timed functions."""

    def __init__(self, cfg):
        self.spec = EmbedSpec(**cfg["graph"])
        self.graph, _ = load(self.spec, cfg.get("data_root"))
        self.fns = {}

    def model(self, msg):
        from ..embed import Node2Vec, random_walks, train_sgns
        from ..embed.alias import negative_table
        from ..embed.deepwalk import walk_degree
        g, p, q = self.graph, float(msg["p"]), float(msg["q"])
        L, R, D, W, K, seed = (int(msg[k]) for k in ("walk_length", "num_walks", "dim", "window", "negatives", "seed"))
        walks = random_walks(g, L, R, p, q, seed=seed)              # the shared walks (also compiles the kernel)
        np.save(msg["walks_path"], walks)
        model = Node2Vec(D, L, R, W, K, p=p, q=q, seed=seed)
        noise = negative_table(counts=walk_degree(g))            # Node2Vec's trainer settings, exactly
        sg = dict(seed=seed, noise=noise, context_input=model.context_input, init_range=model.init_range)
        train_sgns(walks[:64], g.num_nodes, D, W, K, **sg)     # compile, untimed

        def walk():
            random_walks(g, L, R, p, q, seed=seed)

        def sgns():
            train_sgns(walks, g.num_nodes, D, W, K, **sg)

        def pipeline():
            Z = Node2Vec(D, L, R, W, K, p=p, q=q, seed=seed).fit(g).embedding
            np.save(msg["emb_path"], Z)

        self.fns = dict(walks=walk, sgns=sgns, pipeline=pipeline)
        return dict(walks=int(walks.shape[0]), tokens=int((walks >= 0).sum()), num_nodes=int(g.num_nodes),
                    num_edges=int(g.num_edges))

    def drop(self):
        self.fns = {}


# ------------------------------------------------------------------------------ the peer


def peer_python(explicit=None):
    """The interpreter of the peer: ``explicit``, else $GNN_SCRATCH_PEER_PYTHON, else this one."""
    return explicit or os.environ.get(PEER_ENV) or sys.executable


def probe_peer(python):
    """(versions dict, None) when ``python`` can run the peer, else (None, the reason in one line)."""
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return None, f"peer interpreter {python!r} not found (set --peer-python or ${PEER_ENV})"
    try:
        r = subprocess.run([python, PEER_SCRIPT, "--probe"], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"peer probe failed: {e}"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return None, (f"PecanPy/gensim not importable by {python} ({last[:200]}); pip install gensim && "
                      f"pip install --no-deps pecanpy==2.0.9 nptyping==2.5.0 numba-progress, or point "
                      f"--peer-python / ${PEER_ENV} at a venv holding them")
    return json.loads(r.stdout.strip().splitlines()[-1]), None


def _peer_server(cfg, python, log):
    """A models.Server speaking to ``embeddings_peer.py`` under ``python`` (another interpreter is fine)."""
    from .models import Server

    class PeerServer(Server):
        def __init__(self):
            env = dict(os.environ, NUMBA_NUM_THREADS=str(cfg["threads"]), OMP_NUM_THREADS="1",
                       OPENBLAS_NUM_THREADS="1")
            self.name = "peer"
            self.p = subprocess.Popen([python, PEER_SCRIPT, json.dumps(cfg)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=None, env=env, text=True, bufsize=1)
            self.ready = self._read()

    return PeerServer()


# ------------------------------------------------------------------------------ the part


def _f1(path, labels, repeats):
    from ..embed.evaluate import evaluate_multilabel
    Z = np.load(path)
    r = evaluate_multilabel(Z, labels, train_fractions=(0.5,), repeats=repeats, seed=0)[0.5]
    return dict(macro_f1=r["macro_f1"]["mean"], macro_f1_std=r["macro_f1"]["std"], micro_f1=r["micro_f1"]["mean"],
                repeats=repeats)


def run(specs, configs=((1.0, 1.0),), num_walks=10, walk_length=80, dim=128, window=10, negatives=5,
        repeats=None, warmup=None, max_time=None, eval_repeats=3, peer=True, python=None, data_root=None,
        log=print):
    """The "embeddings" section of the results: one row per (graph, p, q).

    repeats / warmup: dicts key -> count for the keys ``walks``, ``sgns``, ``pipeline`` (defaults 3 / 1, 1 / 0,
    1 / 0: our kernels are compiled by the server before any timing, gensim compiles nothing).
    """
    from .harness import num_threads
    from .models import Server, ServerError
    repeats = dict(dict(walks=3, sgns=1, pipeline=1), **(repeats or {}))
    warmup = dict(dict(walks=1, sgns=0, pipeline=0), **(warmup or {}))
    threads = num_threads()
    python = peer_python(python)
    versions, why = probe_peer(python) if peer else (None, "peer disabled (--no-pyg)")
    if why:
        log(f"embeddings: {why}: timing ours only")
    rows = []
    tmp = tempfile.mkdtemp(prefix="gnn_bench_embed_")
    try:
        for spec in specs:
            try:
                graph, labels = load(spec, data_root)
            except Exception as e:   # noqa: BLE001 -- e.g. BlogCatalog missing: one error row
                rows.append(dict(dataset=spec.name, dataset_label=spec.label, error=f"{type(e).__name__}: {e}"))
                log(f"embeddings on {spec.label}: {e}")
                continue
            graph_path = os.path.join(tmp, "graph.npz")
            write_pecanpy_csr(graph, graph_path)
            servers = {}
            try:
                try:
                    servers["ours"] = Server(dict(lib="ours", part="embeddings", graph=spec.__dict__,
                                                  data_root=data_root, threads=threads), log)
                except ServerError as e:
                    rows.append(dict(dataset=spec.name, dataset_label=spec.label, error=f"ours server: {e}"))
                    log(f"embeddings on {spec.label}: {e}")
                    continue
                peer_error = why
                if versions:
                    try:
                        servers["peer"] = _peer_server(dict(graph_path=graph_path, threads=threads), python, log)
                    except ServerError as e:
                        peer_error = f"peer server: {e}"
                        log(f"  {peer_error}")
                for p, q in configs:
                    rows.append(_time_config(servers, spec, graph, labels, p, q, tmp, dict(
                        num_walks=num_walks, walk_length=walk_length, dim=dim, window=window, negatives=negatives,
                        seed=0, sample=0.0), repeats, warmup, max_time, eval_repeats, peer_error, versions, log))
            finally:
                for s in servers.values():
                    s.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(rows=rows, threads=threads, peer=versions, peer_python=python if versions else None,
                peer_skipped=why)


def _time_config(servers, spec, graph, labels, p, q, tmp, params, repeats, warmup, max_time, eval_repeats,
                 peer_error, versions, log):
    from .models import ServerError
    tag = f"p{p:g}-q{q:g}"
    paths = dict(walks_path=os.path.join(tmp, f"walks-{tag}.npy"))
    emb = {lib: os.path.join(tmp, f"emb-{lib}-{tag}.npy") for lib in ("ours", "peer")}
    row = dict(dataset=spec.name, dataset_label=spec.label, p=p, q=q, num_nodes=int(graph.num_nodes),
               num_edges=int(graph.num_edges), **params)
    t0 = time.perf_counter()
    try:
        row["ours_setup"] = servers["ours"].call(cmd="model", p=p, q=q, emb_path=emb["ours"], **paths, **params)
    except ServerError as e:
        row["error"] = str(e)
        return row
    peer = servers.get("peer")
    if peer is not None:
        try:
            row["peer_setup"] = peer.call(cmd="model", p=p, q=q, emb_path=emb["peer"], **paths, **params)
        except ServerError as e:
            peer, peer_error = None, f"peer: {e}"
    if peer_error:
        row["peer_error"] = peer_error
    row["setup_s"] = time.perf_counter() - t0
    for key in KEYS:
        fns = {"ours": servers["ours"].timed(key)}
        if peer is not None:
            fns["peer"] = peer.timed(key)
        log(f"  {spec.label} p={p:g} q={q:g} {key}: {', '.join(fns)}")
        try:
            row[key] = interleave(fns, repeats[key], warmup=warmup[key], max_time=max_time)
        except ServerError as e:            # the peer's failure (a PreComp out of memory?): go on with ours
            if peer is None:
                row["error"] = str(e)
                return row
            row["peer_error"], peer = f"{key}: {e}", None
            row[key] = interleave({"ours": servers["ours"].timed(key)}, repeats[key], warmup=warmup[key],
                                  max_time=max_time)
    row["f1"] = {}
    for lib in ("ours", "peer"):
        if os.path.exists(emb[lib]):
            row["f1"][lib] = _f1(emb[lib], labels, eval_repeats)
    if peer is not None:
        row["peer_mode"] = row["peer_setup"].get("mode")
    log(f"  {spec.label} p={p:g} q={q:g}: " + "; ".join(
        f"{k} ours {row[k]['ours']['median']:.2f} s" + (f" / peer {row[k]['peer']['median']:.2f} s"
                                                         if "peer" in row[k] else "") for k in KEYS)
        + "; Macro-F1 " + ", ".join(f"{lib} {v['macro_f1']:.4f}" for lib, v in row["f1"].items()))
    return row


def ratio_of(row, key):
    """ours / peer of the medians of ``row[key]``, or None."""
    res = row.get(key) or {}
    if "ours" not in res or "peer" not in res:
        return None
    return res["ours"]["median"] / res["peer"]["median"]


