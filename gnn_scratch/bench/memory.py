"""Peak resident memory of each model configuration, each library in a fresh process.

A worker (``python -m gnn_scratch.bench.worker``, task "memory", body ``models.memory_config``)
loads the graph, builds the model, runs two training steps and one inference forward and reports
its peak resident set -- interpreter, libraries, data and model. The peak is read as VmHWM
(/proc/self/status): that is ``ru_maxrss`` of a process started clean, whereas Linux's
``ru_maxrss`` itself survives fork and exec and would start the worker at the parent's size. ``baseline_mb`` is the peak before the model was built (imports and data), so
``peak - baseline`` is what training added. The PyG worker never imports gnn_scratch's layers or
Numba; it gets the layer list (``models.describe``) from the parent, and is run once per adjacency form.
"""
from __future__ import annotations

import time

from .harness import num_threads
from .models import MODEL_NAMES, _log, available_models, build_ours, describe, run_worker

PYG_FORMS = ("edge_index", "EdgeIndex", "csr")


def _shape_of(spec, data_root, cache):
    """(num_features, num_classes) of a graph spec (Planetoid files are read once)."""
    if spec.kind == "random":
        return spec.num_features, spec.num_classes
    if spec.name not in cache:
        from ..data import get_dataset
        d = get_dataset(spec.name, root=data_root)
        cache[spec.name] = (d.num_features, d.num_classes)
    return cache[spec.name]


def run(specs, models=MODEL_NAMES, pyg=True, forms=PYG_FORMS, data_root=None, log=_log, timeout=3600):
    """Rows {model, graph, lib, form, peak_mb, baseline_mb} (or error) for every configuration."""
    have = available_models()
    rows, shapes = [], {}
    for spec in specs:
        for name in models:
            base = dict(model=name, graph=spec.name, graph_label=spec.label)
            if name not in have:
                rows.append(dict(base, lib="ours", error="not available yet"))
                continue
            F, C = _shape_of(spec, data_root, shapes)
            model, _, _ = build_ours(name, spec, F, C)
            jobs = [("ours", None, None)]
            if pyg:
                try:
                    desc, _ = describe(model)
                    jobs += [("pyg", form, desc) for form in forms]
                except ValueError as e:
                    rows.append(dict(base, lib="pyg", error=str(e)))
            for lib, form, desc in jobs:
                cfg = dict(task="memory", lib=lib, model=name, graph=spec.__dict__, form=form, desc=desc,
                           threads=num_threads(), data_root=data_root)
                t0 = time.perf_counter()
                res = run_worker(cfg, timeout=timeout, log=log)
                row = dict(base, lib=lib, form=form, wall_s=time.perf_counter() - t0, **res)
                rows.append(row)
                what = f"{lib}" + (f" ({form})" if form else "")
                if "error" in res:
                    log(f"memory: {name} on {spec.label}, {what}: {res['error']}")
                else:
                    log(f"memory: {name} on {spec.label}, {what}: peak {res['peak_mb']:.0f} MB "
                        f"(before the model {res['baseline_mb']:.0f} MB)")
    return dict(rows=rows)
