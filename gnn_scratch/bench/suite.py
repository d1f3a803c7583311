"""The benchmark command line: ``gnn-scratch bench`` and ``scripts/bench.py`` both call ``main``.

Parts (``--only``, repeatable or comma-separated): kernels, models, memory, startup, scaling, graphs, temporal,
hetero, attention, embeddings.
Sizes per mode:

    full      kernels on the 100k / 1M graph at widths 16, 64, 256 and on the 1M-node / 10M-edge graph
              at width 64 (the target's); models and memory on
              Cora, CiteSeer, 100k / 1M and 1M / 10M random graphs; start-up; scaling 1e5 .. 1e7 edges;
              graphs: GIN training epochs on PROTEINS (50 steps of 32 graphs), 2 warm-up + 10 rounds;
              temporal: T-GCN and GConvGRU training epochs on Los-loop (1597 windows, batches of 32),
              1 warm-up + 5 rounds; hetero: HAN and RGCN training steps on DBLP, 1 warm-up + 5 rounds;
              attention: fused / dense / torch SDPA full attention on one graph, memory at N = 1k .. 64k, time
              at N = 1k .. 16k on 1 thread and on all; embeddings: node2vec walks, skip-gram and the whole
              pipeline on BlogCatalog for p = q = 1 and p = q = 0.25 beside PecanPy + gensim, 5 / 3 / 3 rounds,
              Macro-F1 over 10 splits (about 25 min + 25 min on 2 threads)
    --quick   kernels on 10k / 100k; models on Cora and a 10k / 100k graph (2 rounds, PyG's edge_index
              and CSR forms); memory of GCN on Cora; scaling 1e4 .. 1e5 edges; graphs: PROTEINS epochs,
              1 warm-up + 3 rounds; temporal: T-GCN epochs on Los-loop, 1 warm-up + 3 rounds; hetero: HAN steps
              on DBLP, 2 rounds (after the servers' own warm-up step); attention: memory and time at N = 1k ..
              4k, one thread; embeddings: p = q = 1 on BlogCatalog, walks 3 rounds, skip-gram and pipeline
              1 round, Macro-F1 over 3 splits; no start-up, no 1M graph  (a few minutes on an idle 2-core machine)
    --tiny    (hidden, for the tests) a 500-node graph, one width, two repeats; graphs: 40 synthetic
              graphs, epochs of 3 steps of 8 graphs; temporal: a synthetic 24-node signal, 20 windows in
              batches of 8; hetero: a synthetic DBLP-like graph of 60 authors; attention: N = 256, 512;
              embeddings: a 200-node planted-partition graph, 2 walks of 20, dimension 16

The JSON (``--out``) keeps one section per part; a run of some parts replaces those sections and
keeps the others, then BENCHMARKS.md (``--md``) and the plot (``--plot``) are regenerated from the
whole file. ``--graphs`` (models and memory only) re-measures some graphs of a part and replaces
just their rows. ``meta["runs"]`` lists every run whose numbers the file holds (a full run starts
the list afresh), and the report prints them all. ``--report-only`` regenerates without measuring.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

PARTS = ("kernels", "models", "memory", "startup", "scaling", "graphs", "temporal", "hetero", "attention",
         "embeddings")
GRAPH_PARTS = ("models", "memory")    # the parts whose rows are per graph (``--graphs``)
NO_PYG = ("PyG not installed: the vs-PyG columns are skipped; "
          "pip install torch==2.13.0 && pip install '.[bench]'")   # said once, on standard error


def add_arguments(p):
    """The benchmark's options, on ``p`` (also used by the ``gnn-scratch bench`` subparser)."""
    p.add_argument("--quick", action="store_true",
                   help="small graphs, fewer repeats, no 1M-node graph and no start-up (a few minutes)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--only", action="append", default=None, metavar="PART",
                   help=f"run only these parts: {', '.join(PARTS)} (repeat or separate with commas)")
    p.add_argument("--graphs", default=None, metavar="NAME[,NAME]",
                   help="with --only models and/or memory: re-measure only these graphs of the mode's plan "
                        "(cora, citeseer, random-100k, random-1M) and replace their rows, keeping the others")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="results JSON (default benchmarks/results.json; --quick: benchmarks/results-quick.json)")
    p.add_argument("--md", default=None, metavar="FILE.md",
                   help="Markdown report to regenerate (default BENCHMARKS.md; --quick/--tiny: beside the JSON)")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="plot (default benchmarks/bench.png; --quick/--tiny: beside the JSON)")
    p.add_argument("--no-pyg", action="store_true",
                   help="skip the peers: PyG, PyG Temporal, and PecanPy + gensim in the embeddings part (each is skipped "
                        "anyway when not installed)")
    p.add_argument("--data-root", default=None,
                   help="data root holding planetoid/ind.cora.*, tu/PROTEINS/, temporal/ (Los-loop), hetero/dblp/ and "
                        "blogcatalog/ "
                        "(default $GNN_SCRATCH_DATA, then the data cache)")
    p.add_argument("--report-only", action="store_true", help="regenerate the Markdown and the plot from --out")
    p.add_argument("--peer-python", default=None, metavar="PYTHON",
                   help="embeddings part: the interpreter that runs PecanPy + gensim (default $GNN_SCRATCH_PEER_PYTHON, "
                        "then this one; PecanPy pins numpy < 2, so it may live in its own venv)")
    return p


def build_parser():
    from ..tasks.options import Parser   # errors in one line, as every gnn-scratch command
    p = Parser(prog="gnn-scratch bench",
                                description="Benchmarks of gnn_scratch beside scipy.sparse and PyG on the CPU.")
    return add_arguments(p)


def _parts(only):
    if not only:
        return list(PARTS)
    parts = [s.strip() for item in only for s in item.split(",") if s.strip()]
    bad = [s for s in parts if s not in PARTS]
    if bad:
        raise ValueError(f"unknown part(s) {bad}; choose from {', '.join(PARTS)}")
    return [p for p in PARTS if p in parts]


def _graphs(arg, parts, cfg):
    """The set of graph names of ``--graphs`` (None without it), checked against the parts and the plan."""
    if arg is None:
        return None
    names = {s.strip() for s in arg.split(",") if s.strip()}
    others = [p for p in parts if p not in GRAPH_PARTS]
    if others:
        raise ValueError(f"--graphs re-measures rows of the parts {', '.join(GRAPH_PARTS)} only; "
                         f"add --only models (or memory), not {others}")
    known = {spec.name for p in parts for spec in cfg[p]["specs"]}
    if not names or names - known:
        raise ValueError(f"--graphs: unknown graph(s) {sorted(names - known) or '(none given)'}; "
                         f"this mode's graphs are {sorted(known)}")
    return names


def _merge_rows(old, new, names, order):
    """``old``'s rows of graphs not in ``names``, ``new``'s for those, in the plan's graph order."""
    rows = [r for r in old.get("rows", []) if r.get("graph") not in names] + new["rows"]
    rank = {name: k for k, name in enumerate(order)}
    rows.sort(key=lambda r: rank.get(r.get("graph"), len(rank)))    # stable: a graph's rows keep their order
    return dict(new, rows=rows)


def _paths(args):
    mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    out = args.out or ("benchmarks/results.json" if mode == "full" else f"benchmarks/results-{mode}.json")
    stem = os.path.splitext(out)[0]
    md = args.md or ("BENCHMARKS.md" if mode == "full" else stem + ".md")
    plot = args.plot or ("benchmarks/bench.png" if mode == "full" else stem + ".png")
    return mode, out, md, plot


def plan(mode):
    """The graphs and sizes of each part in a mode (see the module docstring)."""
    from .embeddings import EmbedSpec
    from .graphs import DatasetSpec
    from .harness import GraphSpec, random_spec
    from .hetero import HeteroSpec
    from .scaling import EDGES
    from .temporal import TemporalSpec
    proteins, los_loop, dblp = DatasetSpec("proteins"), TemporalSpec(), HeteroSpec()
    cora, citeseer = GraphSpec("cora", "planetoid"), GraphSpec("citeseer", "planetoid")
    if mode == "tiny":
        tiny = random_spec(500, 5_000, num_features=16, num_classes=4)
        return dict(kernels=dict(specs=[tiny], widths=(16,), repeats=2, warmup=1, copy_mb=4),
                    models=dict(specs=[tiny]), memory=dict(specs=[tiny], forms=("edge_index",)),
                    startup=dict(repeats=1), scaling=dict(edges=(1_000, 3_000, 10_000)),
                    graphs=dict(specs=[DatasetSpec("synthetic", "synthetic", num_graphs=40)], iters=3, batch_size=8,
                                warmup=1, repeats=2),
                    temporal=dict(specs=[TemporalSpec("synthetic", "synthetic", windows=20, num_nodes=24,
                                                      num_steps=80)], batch_size=8, warmup=1, repeats=2),
                    hetero=dict(specs=[HeteroSpec("synthetic", "synthetic", num_authors=60)], warmup=1, repeats=2),
                    attention=dict(sizes=(256, 512), time_sizes=(256,), repeats=1, threads=(1,)),
                    embeddings=dict(specs=[EmbedSpec("synthetic", "synthetic", num_nodes=200)], num_walks=2,
                                    walk_length=20, dim=16, window=5, repeats=dict(walks=2, sgns=2, pipeline=1),
                                    eval_repeats=2))
    if mode == "quick":
        return dict(kernels=dict(specs=[random_spec(10_000, 100_000)], widths=(16, 64, 256), repeats=3, warmup=1,
                                 copy_mb=32, min_time=0.0),
                    models=dict(specs=[cora, random_spec(10_000, 100_000)], forms=("edge_index", "csr")),
                    memory=dict(specs=[cora], forms=("edge_index",), models=("gcn",)),
                    startup=dict(repeats=2), scaling=dict(edges=(10_000, 31_623, 100_000), forms=("edge_index", "csr")),
                    graphs=dict(specs=[proteins], iters=50, batch_size=32, warmup=1, repeats=3, max_time=120.0),
                    temporal=dict(specs=[los_loop], models=("tgcn",), warmup=1, repeats=3, max_time=120.0),
                    hetero=dict(specs=[dblp], models=("han",), warmup=0, repeats=2, max_time=120.0),
                    attention=dict(sizes=(1024, 2048, 4096), time_sizes=(1024, 2048, 4096), repeats=3, threads=(1,)),
                    embeddings=dict(specs=[EmbedSpec()], configs=((1.0, 1.0),), max_time=300.0,
                                    repeats=dict(walks=3, sgns=1, pipeline=1), eval_repeats=3))
    big = random_spec(1_000_000, 10_000_000)
    return dict(kernels=dict(specs=[random_spec(100_000, 1_000_000), big], widths=(16, 64, 256), repeats=5,
                             warmup=1, copy_mb=256, widths_by_graph={big.name: (64,)}, max_time=60.0),
                models=dict(specs=[cora, citeseer, random_spec(100_000, 1_000_000), big]),
                memory=dict(specs=[cora, citeseer, random_spec(100_000, 1_000_000), big],
                            forms=("edge_index", "EdgeIndex", "csr")),
                startup=dict(repeats=4), scaling=dict(edges=EDGES),
                graphs=dict(specs=[proteins], iters=50, batch_size=32, warmup=2, repeats=10, max_time=600.0),
                temporal=dict(specs=[los_loop], warmup=1, repeats=5, max_time=600.0),
                hetero=dict(specs=[dblp], warmup=1, repeats=5, max_time=600.0),
                attention=dict(),         # bench/attention.py's SIZES, TIME_SIZES, 3 repeats, 1 thread and all
                embeddings=dict(specs=[EmbedSpec()], configs=((1.0, 1.0), (0.25, 0.25)), max_time=600.0,
                                repeats=dict(walks=5, sgns=3, pipeline=3), eval_repeats=10))


def _planetoid_dir(args):
    """The folder holding ind.cora.* (searched as the data loader searches), or None."""
    from ..data.paths import candidate_dirs
    for d in candidate_dirs("planetoid", args.data_root):
        if (d / "ind.cora.x").exists():
            return str(d)
    return None


def run(args):
    """Run the parts asked for, merge them into the JSON, regenerate the report. Returns 0."""
    from .harness import machine, torch_available
    mode, out, md, plot_path = _paths(args)
    results = {}
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            results = json.load(f)
    if args.report_only:
        if not results:
            raise ValueError(f"--report-only needs an existing results file, {out} not found")
        _write_report(results, md, plot_path)
        return 0
    parts = _parts(args.only)
    if mode != "full" and "startup" in parts and not args.only:
        parts.remove("startup")
    cfg = plan(mode)
    graphs = _graphs(getattr(args, "graphs", None), parts, cfg)
    pyg = (not args.no_pyg) and torch_available()
    data_root = _planetoid_dir(args)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if not pyg and not args.no_pyg:
        log(NO_PYG)
    command = "gnn-scratch bench " + " ".join(shlex.quote(a) for a in (args.argv if hasattr(args, "argv") else []))
    meta = results.setdefault("meta", {})
    if "runs" not in meta and "command" in meta:   # a file from before runs were listed: its run comes first
        old = meta.get("machine", {})
        meta["runs"] = [dict(command=meta["command"], date=old.get("date"), parts=meta.get("parts"), graphs=None,
                             loadavg=old.get("loadavg"), loadavg_end=meta.get("loadavg_end"), wall_s=meta.get("wall_s"))]
    mach = machine()
    meta.update(machine=mach, command=command.strip(), mode=mode, parts=parts, pyg=pyg)
    this_run = dict(command=command.strip(), date=mach.get("date"), parts=parts, cpu=mach.get("cpu"),
                    graphs=sorted(graphs) if graphs else None, loadavg=mach.get("loadavg"), blas=mach.get("blas"))
    from .report import blas_forced
    if blas_forced(mach.get("blas")):   # said at the start: forcing older kernels can halve NumPy's products
        core = mach["blas"]["openblas_core"]
        print(f"note: OPENBLAS_CORETYPE forces OpenBLAS's {core} kernels for NumPy's dense products; "
              f"unset it to let OpenBLAS choose for this CPU", flush=True)
    complete = set(parts) == set(PARTS) and graphs is None
    meta["runs"] = ([] if complete or "runs" not in meta else meta["runs"]) + [this_run]
    t_start = time.perf_counter()
    planetoid_ok = data_root is not None

    def specs_of(part):
        specs = cfg[part]["specs"]
        if graphs is not None:
            specs = [s for s in specs if s.name in graphs]
        if not planetoid_ok:
            skipped = [s.name for s in specs if s.kind == "planetoid"]
            if skipped:
                log(f"{part}: no Planetoid files (set GNN_SCRATCH_DATA or --data-root): skipping {skipped}")
            specs = [s for s in specs if s.kind != "planetoid"]
        return specs

    for part in parts:
        t0 = time.perf_counter()
        log(f"== {part} ({mode}) ==")
        if part == "kernels":
            from .kernels import run as run_kernels
            c = cfg["kernels"]
            section = run_kernels(specs_of("kernels"), widths=c["widths"], repeats=c["repeats"], warmup=c["warmup"],
                                  copy_mb=c["copy_mb"], min_time=c.get("min_time", 0.2), log=log, data_root=data_root,
                                  widths_by_graph=c.get("widths_by_graph"), max_time=c.get("max_time"))
        elif part == "models":
            from .models import run as run_models
            section = run_models(specs_of("models"), quick=mode != "full", pyg=pyg, data_root=data_root, log=log,
                                 forms=cfg["models"].get("forms"))
        elif part == "memory":
            from .memory import run as run_memory
            section = run_memory(specs_of("memory"), pyg=pyg, forms=cfg["memory"]["forms"], data_root=data_root,
                                 log=log, **({"models": cfg["memory"]["models"]} if "models" in cfg["memory"] else {}))
        elif part == "startup":
            if not planetoid_ok:
                log("startup: needs the Cora files (GNN_SCRATCH_DATA or --data-root); skipped")
                continue
            if not pyg:
                log("startup: needs torch and torch_geometric for the PyG script; skipped")
                continue
            from .startup import run as run_startup
            section = run_startup(data_root, repeats=cfg["startup"]["repeats"], log=log)
        elif part == "graphs":
            from .graphs import run as run_graphs
            c = cfg["graphs"]
            section = run_graphs(c["specs"], iters=c["iters"], batch_size=c["batch_size"], warmup=c["warmup"],
                                 repeats=c["repeats"], max_time=c.get("max_time"), pyg=pyg, data_root=args.data_root,
                                 log=log)
        elif part == "temporal":
            from .temporal import run as run_temporal
            c = dict(cfg["temporal"])
            section = run_temporal(c.pop("specs"), pyg=pyg, data_root=args.data_root, log=log, **c)
        elif part == "hetero":
            from .hetero import run as run_hetero
            c = dict(cfg["hetero"])
            section = run_hetero(c.pop("specs"), pyg=pyg, data_root=args.data_root, log=log, **c)
        elif part == "attention":
            from .attention import CONTENDERS
            from .attention import run as run_attention
            contenders = CONTENDERS if pyg else tuple(c for c in CONTENDERS if c != "torch")
            section = dict(rows=run_attention(contenders=contenders, log=log, **cfg["attention"]))
        elif part == "embeddings":
            from .embeddings import run as run_embeddings
            c = dict(cfg["embeddings"])
            section = run_embeddings(c.pop("specs"), peer=not args.no_pyg, python=getattr(args, "peer_python", None),
                                     data_root=args.data_root, log=log, **c)
        else:
            from .scaling import run as run_scaling
            section = run_scaling(edges=cfg["scaling"]["edges"], pyg=pyg, quick=mode != "full", log=log,
                                  forms=cfg["scaling"].get("forms"))
        section["_run"] = dict(command=meta["command"], mode=mode, date=mach["date"], wall_s=time.perf_counter() - t0)
        if graphs is not None and part in results:
            section = _merge_rows(results[part], section, graphs, [s.name for s in cfg[part]["specs"]])
        results[part] = section
        _save(results, out)
    meta["wall_s"] = time.perf_counter() - t_start
    try:
        meta["loadavg_end"] = list(os.getloadavg())
    except OSError:
        pass
    this_run.update(wall_s=meta["wall_s"], loadavg_end=meta.get("loadavg_end"))
    _save(results, out)
    log(f"results: {out}")
    _write_report(results, md, plot_path)
    return 0


def _save(results, out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, out)


def _write_report(results, md, plot_path):
    from . import report
    png = report.plot(results, plot_path)
    rel = os.path.relpath(png, os.path.dirname(os.path.abspath(md))) if png else None
    report.write_markdown(results, md, rel)
    print(f"report: {md}" + (f", plot: {png}" if png else ""), file=sys.stderr, flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run(args)
