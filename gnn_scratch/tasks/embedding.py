"""Node embeddings learned without labels, then scored by a classifier trained on top of them (frozen).

``gnn-scratch train --task embedding --model M --dataset D [--save emb.npy]`` runs one of the methods of
``models/embedding.py`` (DeepWalk, node2vec, LINE, SDNE, DGI) on D's graph (DGI: and its features) and
evaluates the embedding Z (N, d) the way the method's papers do:

* **multi-label** (BlogCatalog): the node2vec / DeepWalk protocol -- one-vs-rest L2 logistic regression
  trained on a random ``train_fraction`` of the nodes (default 0.5), each test node given its true
  number k of labels as its top-k scores, Macro- and Micro-F1 averaged over ``repeats`` random splits
  (``embed.evaluate.evaluate_multilabel``);
* **single-label** (Cora, CiteSeer, karate, csbm): a multinomial logistic regression on the dataset's
  own training nodes, accuracy (and F1) on its test nodes (``embed.evaluate.classify_split``) -- the
  public Planetoid split for Cora and CiteSeer. (DGI's paper probes with 50 Adam-trained logistic
  regressions instead: ``scripts/dgi_cora.py``.)

The labels are used by the evaluation only, never by the method. ``--runs`` repeats the embedding with
seeds seed, seed+1, ...; ``--save`` writes the last run's Z with ``numpy.save``.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from ..data import Dataset
from ..data.blogcatalog import MultiLabelGraph
from ..embed.evaluate import classify_split, evaluate_multilabel
from ..graph import Graph
from ..models import MODELS, get_model_class
from . import options
from .base import Task, register_task

# (default, the kind of value, the flag's help); None: the method's own default (METHOD_DEFAULTS)
OPTIONS = dict(
    dim=(None, "positive_int", "embedding width d (default: 128; dgi 512, the paper's)"),
    walk_length=(80, "positive_int", "deepwalk, node2vec: nodes per walk (default 80)"),
    num_walks=(10, "positive_int", "deepwalk, node2vec: walks started from every node (default 10)"),
    window=(10, "positive_int", "deepwalk, node2vec: skip-gram window (default 10)"),
    negatives=(5, "positive_int", "deepwalk, node2vec, line: negative samples per positive pair (default 5)"),
    p=(1.0, "finite_positive_float", "node2vec: return parameter p (default 1)"),
    q=(1.0, "finite_positive_float", "node2vec: in-out parameter q (default 1)"),
    epochs=(None, "positive_int", "passes over the walks (default 1), sdne epochs (default 60: it needs thousands of "
                                  "steps), dgi's most epochs (default 10000, early stopping decides)"),
    lr=(None, "finite_positive_float", "initial learning rate (default: 0.025 for the walks and line, linearly "
                                       "decayed; 0.001 Adam for sdne and dgi)"),
    samples=(None, "positive_int", "line: edge samples drawn per order (default: 100 per directed edge, at most 1e8)"),
    order=("1+2", None, "line: 1, 2 or 1+2 (the two halves concatenated, the paper's best; default)"),
    batch_size=(None, "positive_int", "sdne: nodes per mini-batch (default 128)"),
    sdne_hidden=((1000, 100), None, "sdne: the encoder's layer widths after the N-wide input, comma-separated; the "
                                    "last is the embedding (default 1000,100, the paper's for BlogCatalog)"),
    alpha=(None, "non_negative_float", "sdne: weight of the first-order Laplacian term (default 1)"),
    beta=(10.0, "finite_positive_float", "sdne: weight of the non-zero entries in the reconstruction (default 10)"),
    patience=(20, "positive_int", "dgi: epochs without a lower loss before stopping (default 20)"),
    train_fraction=(0.5, "fraction", "evaluation on multi-label data: the fraction of nodes the classifier "
                                     "trains on, in (0, 1) (default 0.5)"),
    repeats=(10, "positive_int", "evaluation on multi-label data: random splits averaged (default 10)"),
)
METHOD_DEFAULTS = {
    "deepwalk": dict(dim=128, epochs=1, lr=0.025),
    "node2vec": dict(dim=128, epochs=1, lr=0.025),
    "line": dict(dim=128, lr=0.025),
    "sdne": dict(epochs=60, lr=1e-3, batch_size=128, alpha=1.0),   # embed.sdne.train_sdne's (see its docstring)
    "dgi": dict(dim=512, lr=1e-3, epochs=10_000),
}
COMMON = ("train_fraction", "repeats")


def _line_samples(graph):
    """LINE's default budget: 100 samples per directed edge, between 1e5 and 1e8 (BlogCatalog: 6.7e7, minutes; the
    paper draws billions on its larger graphs)."""
    return int(min(1e8, max(1e5, 100 * graph.num_edges)))


@register_task
class EmbeddingTask(Task):
    """Embeddings without labels (deepwalk, node2vec, line, sdne, dgi), scored by a classifier on top."""

    name = "embedding"
    datasets = ("karate", "csbm", "cora", "citeseer", "blogcatalog")
    default_dataset = "karate"
    devices = ("cpu",)
    defaults = {k: v[0] for k, v in OPTIONS.items()} | {"deterministic": False}
    save_help = ("write the last run's embedding (N, d) float32 to FILE.npy with numpy.save (.npy added when "
                 "missing; the folder must exist; default: not saved)", "FILE[.npy]")

    @staticmethod
    def save_type(text):
        return options.array_output(text)

    @classmethod
    def save(cls, path, model, data, summary):
        np.save(path, model)
        return path, "embedding"

    @classmethod
    def describe_data(cls, data):
        g = _graph(data)
        labels = (f"{data.labels.shape[1]} labels (multi-label)" if isinstance(data, MultiLabelGraph)
                  else f"{data.num_classes} classes")
        return f"{data.name}: {g.num_nodes} nodes, {g.num_edges} edges, {labels}"

    @classmethod
    def add_arguments(cls, parser):
        for key, (default, kind, help_) in OPTIONS.items():
            flag = "--" + key.replace("_", "-")
            if key == "order":
                parser.add_argument(flag, dest=key, default=None, choices=("1", "2", "1+2"), help=help_)
            elif key == "sdne_hidden":
                parser.add_argument(flag, dest=key, default=None, type=_widths, metavar="W1,W2", help=help_)
            else:
                parser.add_argument(flag, dest=key, default=None, type=getattr(options, kind),
                                    metavar=key.upper() if len(key) > 1 else key, help=help_)
        parser.add_argument("--deterministic", action="store_true", default=None,
                            help="deepwalk, node2vec: train the skip-gram on one thread in walk order, the same "
                                 "bits for a seed (default: lock-free on every Numba thread, as word2vec)")

    @classmethod
    def hparams_from_args(cls, args):
        return {key: getattr(args, key, None) for key in (*OPTIONS, "deterministic")}

    @classmethod
    def validate(cls, model_name, device="cpu", hparams=None):
        method = get_model_class(model_name)
        if not getattr(method, "embedding", False):
            takers = ", ".join(n for n, c in MODELS.items() if getattr(c, "embedding", False))
            raise ValueError(f"model {model_name!r} is not an embedding method; the embedding task takes: {takers}")
        if device not in cls.devices:
            raise ValueError(f"the embedding task runs on {', '.join(cls.devices)}, not {device!r}")
        given = {k: v for k, v in (hparams or {}).items() if v is not None}
        for key in given:
            if key in OPTIONS and key not in method.options and key not in COMMON:
                takers = ", ".join(n for n, c in MODELS.items() if key in getattr(c, "options", ()))
                raise ValueError(f"--{key.replace('_', '-')} applies to {takers}, not {model_name}")
        if given.get("deterministic") and "deterministic" not in method.options:
            raise ValueError(f"--deterministic applies to deepwalk, node2vec, not {model_name}")
        opts = {**cls.defaults, **METHOD_DEFAULTS.get(model_name, {}), **given}
        for key, (_, kind, _) in OPTIONS.items():
            if kind is not None and opts.get(key) is not None:
                options.check(kind, opts[key], f"{key} (--{key.replace('_', '-')})")
        return method, opts

    @classmethod
    def run(cls, model_name, data, runs=1, seed=0, log=None, device="cpu", interruptible=False, **hparams):
        """Embed ``data`` ``runs`` times (seeds seed, seed+1, ...) with ``model_name`` and score every embedding.

        data: a ``Dataset`` (single label, its own split) or a ``MultiLabelGraph`` (BlogCatalog).
        Summary keys: model, dataset, runs, seed, dim, scores (per metric: mean, std, per run), runs_detail
        (each run's scores, seconds and what the method reported), hparams. Returns (summary, the last
        embedding (N, d) float32). Raises ValueError for an option the method does not take or out of
        range, DGI on a graph without features.
        """
        options.check("positive_int", runs, "runs (--runs)")
        options.check("non_negative_int", seed, "seed (--seed)")
        method, opts = cls.validate(model_name, device, hparams)
        graph = _graph(data)
        x = None
        if method.needs_features:
            x = getattr(data, "x", None)
            if x is None:
                raise ValueError(f"{model_name} encodes node features and {data.name} has none")
            from ..data import row_normalize
            x = row_normalize(x)                 # as DGI's reference preprocesses them
        if model_name == "line" and opts["samples"] is None:
            opts["samples"] = _line_samples(graph)
        # a progress bar (tqdm, when installed) on a terminal, unless the command line was told --quiet
        progress = log is not None and not getattr(log, "quiet", False) and sys.stderr.isatty()
        per_run, Z = [], None
        try:
            for r in range(runs):
                s = seed + r
                t0 = time.perf_counter()
                Z, info = method.embed(graph, x, s, progress=progress, **opts)
                seconds = time.perf_counter() - t0
                if not np.all(np.isfinite(Z)):
                    raise FloatingPointError(f"{model_name} produced a non-finite embedding (seed {s}); "
                                             f"try a smaller --lr")
                scores = _evaluate(Z, data, opts, s)
                per_run.append(dict(seed=s, seconds=seconds, scores=scores, **info))
                if log:
                    log(f"run {r + 1}/{runs} seed {s}: " + cls._line(scores) + f"  ({seconds:.1f} s)")
        except KeyboardInterrupt:
            if not (interruptible and per_run):
                raise
        keys = per_run[0]["scores"] if per_run else {}
        scores = {k: dict(mean=float(np.mean([p["scores"][k] for p in per_run])),
                          std=float(np.std([p["scores"][k] for p in per_run]))) for k in keys}
        summary = dict(model=model_name, dataset=getattr(data, "name", None), runs=len(per_run), seed=seed,
                       device=device, dim=int(Z.shape[1]) if Z is not None else None, scores=scores,
                       runs_detail=per_run, hparams={k: v for k, v in opts.items()
                                                     if k in method.options or k in COMMON})
        if len(per_run) < runs:
            summary.update(interrupted=True, runs_requested=runs)
        return summary, None if Z is None else np.ascontiguousarray(Z, dtype=np.float32)

    @staticmethod
    def _line(scores):
        return "  ".join(f"{k} {v:.4f}" for k, v in scores.items())

    @classmethod
    def report(cls, summary):
        runs = summary["runs"]
        sc = summary["scores"]
        parts = [f"{k} {v['mean']:.4f}" + (f" ± {v['std']:.4f}" if runs > 1 else "") for k, v in sc.items()]
        return (f"{summary['model']} on {summary['dataset']} (d = {summary['dim']}): " + ", ".join(parts)
                + (f" over {runs} runs" if runs > 1 else ""))

    @classmethod
    def saved_metrics(cls, summary):
        return {k: v["mean"] for k, v in summary["scores"].items()}


def _widths(text):
    """--sdne-hidden: comma-separated positive layer widths, such as 1000,100."""
    import argparse
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive widths such as 1000,100, got {text!r}")
    return widths


def _graph(data):
    if isinstance(data, MultiLabelGraph):
        return Graph.from_edge_index(data.edge_index, data.num_nodes)
    if isinstance(data, Dataset):
        return data.graph
    raise TypeError(f"data must be a Dataset or a MultiLabelGraph, got {type(data).__name__}")


def _evaluate(Z, data, opts, seed):
    """{metric: value} of embedding Z on data's labels (module docstring)."""
    if isinstance(data, MultiLabelGraph):
        f = opts["train_fraction"]
        res = evaluate_multilabel(Z, data.labels, train_fractions=(f,), repeats=opts["repeats"], seed=seed)[f]
        return dict(macro_f1=res["macro_f1"]["mean"], micro_f1=res["micro_f1"]["mean"])
    res = classify_split(Z, data.y, data.train_mask, data.test_mask)
    return dict(test_accuracy=res["accuracy"], macro_f1=res["macro_f1"], micro_f1=res["micro_f1"])
