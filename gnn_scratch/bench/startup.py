"""Whole-process start-up: ``gnn-scratch train --model gcn --dataset cora --epochs 200`` from an empty and
from a warm Numba cache, beside the equivalent PyG script (``pyg_train_gcn.py``).

Each run is a fresh interpreter timed from spawn to exit (imports, data loading, compilation or
cache loading, 200 epochs). The cold run points ``NUMBA_CACHE_DIR`` at a new empty folder, so
every kernel it needs is compiled; the warm runs share one folder filled by an untimed first run.
The PyG script gets its Planetoid files linked into a temporary root, processed by an untimed
first run. The three commands are timed interleaved.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from .harness import interleave, num_threads

PLANETOID_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ours_command(epochs=200):
    """The train command: the installed ``gnn-scratch`` when it runs this checkout, else ``python -m gnn_scratch``."""
    args = ["train", "--model", "gcn", "--dataset", "cora", "--epochs", str(epochs)]
    return [sys.executable, "-m", "gnn_scratch"] + args


def _run(cmd, env):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-500:]}")
    return p.stdout


def run(planetoid, repeats=4, epochs=200, log=print):
    """{"ours_warm", "ours_cold", "pyg"} summaries and the exact commands; ``planetoid`` holds ind.cora.*."""
    work = tempfile.mkdtemp(prefix="gnn_bench_startup_")
    try:
        raw = os.path.join(work, "pyg", "Cora", "raw")
        os.makedirs(raw)
        for part in PLANETOID_PARTS:
            os.symlink(os.path.join(planetoid, f"ind.cora.{part}"), os.path.join(raw, f"ind.cora.{part}"))
        env = dict(os.environ)
        env["GNN_SCRATCH_DATA"] = planetoid
        env["PYTHONPATH"] = _repo_root() + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        warm_env = dict(env, NUMBA_CACHE_DIR=os.path.join(work, "numba_warm"))
        ours = ours_command(epochs)
        pyg = [sys.executable, "-m", "gnn_scratch.bench.pyg_train_gcn", "--root", os.path.join(work, "pyg"),
               "--epochs", str(epochs), "--threads", str(num_threads())]
        log("startup: untimed first runs (fill the warm Numba cache, let PyG process Cora)")
        outputs = dict(ours=_run(ours, warm_env).strip().splitlines()[-1], pyg=_run(pyg, env).strip().splitlines()[-1])
        counter = [0]

        def cold():
            counter[0] += 1
            d = os.path.join(work, f"numba_cold_{counter[0]}")
            _run(ours, dict(env, NUMBA_CACHE_DIR=d))
            shutil.rmtree(d, ignore_errors=True)

        res = interleave({"ours_warm": lambda: _run(ours, warm_env), "pyg": lambda: _run(pyg, env), "ours_cold": cold},
                         repeats=repeats, warmup=0)
        for k, v in res.items():
            log(f"  {k}: {v['median']:.2f} s (min {v['min']:.2f}, max {v['max']:.2f})")
        show = lambda cmd: " ".join(os.path.basename(c) if c == sys.executable else c for c in cmd)  # noqa: E731
        return dict(res, commands=dict(
            ours_warm="NUMBA_CACHE_DIR=<filled by a first run> " + show(ours),
            ours_cold="NUMBA_CACHE_DIR=<new empty folder> " + show(ours),
            pyg=show(pyg[:3]) + " --root <Cora raw files> --epochs " + str(epochs) + f" --threads {num_threads()}"),
            last_lines=outputs, epochs=epochs, repeats=repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
