"""Heterogeneous-graph benchmark: one HAN (and one RGCN) training step on DBLP, gnn_scratch beside PyG.

One step is what ``tasks/hetero.py: _fit`` runs per epoch before its evaluation: ``loop.train_step``
(forward in training mode, ``SoftmaxCrossEntropy`` on the training nodes, backward, one Adam step
with coupled L2 weight decay on every parameter, OpenBLAS on one thread), full batch. Data: HeCo's
DBLP (``data.load_dblp``, split 20): target 4057 authors, 4 classes, 80 training nodes.

* ``han`` -- ``models.hetero.HAN`` with its ``model_defaults`` (hidden 64 = 8 heads x 8, attention
  dropout 0.6) and ``train_defaults`` (Adam lr 0.005, weight decay 0.001) on the authors' features
  (334 columns, sparse) and the metapath graphs APA (11k edges), APCPA (5.0M) and APTPA (7.0M),
  built by ``HAN.inputs``. PyG: ``bench.pyg_hetero.han_twin`` -- ``torch_geometric.nn.HANConv`` then a
  ``Linear``, on the same metapath graphs' ``edge_index`` and the dense features.
* ``rgcn`` -- ``models.hetero.RGCN`` (hidden 64, dropout 0.5, full W_r; Adam lr 0.01, weight decay
  5e-4) over the 6 typed relations (3 and their inverses: 26k nodes, 240k edges). PyG:
  ``bench.pyg_hetero.rgcn_twin`` (a Linear per featured type, a table for the featureless one, two
  ``RGCNConv``).

PyG's step: ``model.train()``, ``zero_grad``, ``F.cross_entropy`` on the training rows, ``backward``,
``torch.optim.Adam(lr, weight_decay)`` -- ``pyg_hetero.train``'s step.

Before any timing the PyG twin is given *our initial weights* (``load_weights``: it fails on any
parameter of either side it cannot place) and, with dropout 0 on both sides, must give our output
(rtol 1e-4, absolute floor 1e-4 x the largest logit), our training loss (rtol 1e-4) and, for HAN,
our semantic attention (β is nearly uniform at initialisation, so the centred scores log β - mean
are compared, to 1e-3 of their spread: the logits alone barely see q and k_lin then); after one
training step the change of the output must agree too (``step_rel_diff`` <= 1e-2: Adam's first
step is about lr x sign(gradient), so a wrong or missing gradient shows there; float32 noise is
~1e-5). Then both sides time their model with
the real dropout, from the same initial weights. Both servers report a digest of the features,
edges, labels and training nodes they read; the parent checks they agree.

Each library runs in its own long-lived server (``worker.py serve`` with this module's side
classes, config ``part="hetero"``; ``models.Pair``), each step is timed inside its server and the
two are interleaved round by round (``harness.interleave``); torch gets Numba's thread count.
``--tiny`` runs ``synthetic_dblp``: DBLP's schema at a small size, no data files.
"""
from __future__ import annotations

import gc
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .harness import interleave

MODELS = ("han", "rgcn")
MIRROR_RTOL = 1e-4
BETA_RTOL = 1e-3     # semantic scores w_r - mean(w), against their spread (float32 noise is ~1e-6 of it)
STEP_RTOL = 1e-2     # a missing or wrong gradient moves the logits by O(1) of the change; float32 ~1e-5
LABELS = {"han": "HAN", "rgcn": "RGCN"}


@dataclass(frozen=True)
class HeteroSpec:
    """A heterogeneous dataset: HeCo's DBLP (``load_dblp``), or ``synthetic`` (``synthetic_dblp``)."""
    name: str = "dblp"
    kind: str = "dblp"          # "dblp" or "synthetic"
    num_authors: int = 0        # synthetic only
    seed: int = 0               # synthetic only

    @property
    def label(self):
        if self.kind == "dblp":
            return "DBLP"
        return f"synthetic DBLP-like, {self.num_authors} authors"


def synthetic_dblp(num_authors=60, seed=0, split=5):
    """A small ``HeteroDataset`` with DBLP's schema (for ``--tiny``: no data files needed).

    Node types author (target, sparse features), paper (sparse), term (dense), conference (none);
    relations paper -> author / conference / term and their inverses; metapaths APA, APCPA, APTPA
    (the names and edge types of ``data.hetero.SPECS["dblp"]``). Papers: 2 per author, each with
    1-3 authors, one conference, 2-5 terms; 4 classes, ``split`` training nodes per class, then
    validation and test halves of the rest. Deterministic in ``seed``.
    """
    import scipy.sparse as sp
    from ..data.hetero import SPECS, HeteroDataset
    from ..graph.hetero import HeteroGraph
    spec = SPECS["dblp"]
    rng = np.random.default_rng(seed)
    C = len(spec.class_sizes)
    n = {"author": int(num_authors), "paper": 2 * int(num_authors), "term": max(8, int(num_authors) // 2),
         "conference": 4}
    if n["author"] < 4 * C:
        raise ValueError(f"num_authors must be at least {4 * C} (a few nodes of each class per split), "
                         f"got {num_authors}")
    P = n["paper"]
    k_a, k_t = rng.integers(1, 4, P), rng.integers(2, 6, P)
    pa = np.stack([np.repeat(np.arange(P), k_a), rng.integers(0, n["author"], k_a.sum())])
    pc = np.stack([np.arange(P), rng.integers(0, n["conference"], P)])
    pt = np.stack([np.repeat(np.arange(P), k_t), rng.integers(0, n["term"], k_t.sum())])

    def bag(rows, cols):      # 0/1 bag-of-words rows, as HeCo's a_feat / p_feat
        return sp.random(rows, cols, density=0.1, format="csr", dtype=np.float32, random_state=rng,
                         data_rvs=np.ones)
    x = {"author": bag(n["author"], 24), "paper": bag(P, 40),
         "term": rng.standard_normal((n["term"], 12)).astype(np.float32)}
    (PA, _, _), (PC, _, _), (PT, _, _) = spec.relations
    graph = HeteroGraph(n, {PA: pa, PC: pc, PT: pt}, x).with_inverse()
    y = np.arange(n["author"]) % C
    rng.shuffle(y)
    train = np.concatenate([np.flatnonzero(y == c)[:split] for c in range(C)])
    rest = rng.permutation(np.setdiff1d(np.arange(n["author"]), train))
    val, test = rest[:rest.size // 2], rest[rest.size // 2:]
    return HeteroDataset(name="synthetic", graph=graph, target=spec.target, y=y.astype(np.int64), num_classes=C,
                         train_idx=np.sort(train), val_idx=np.sort(val), test_idx=np.sort(test),
                         metapaths={k: list(v) for k, v in spec.metapaths.items()}, split=split)


def load_dataset(spec, data_root=None):
    """The ``HeteroDataset`` of ``spec`` (raises the loader's DataNotFoundError when the files are nowhere)."""
    if spec.kind == "synthetic":
        return synthetic_dblp(spec.num_authors, spec.seed)
    if spec.kind != "dblp":
        raise ValueError(f"unknown dataset kind {spec.kind!r}; expected 'dblp' or 'synthetic'")
    from ..data import load_dblp
    return load_dblp(root=data_root, download=False)


def setting(name):
    """(model kwargs, lr, weight decay) of ``name``: the class's ``model_defaults`` and ``train_defaults``."""
    from ..models import get_model_class
    if name not in MODELS:
        raise ValueError(f"unknown hetero model {name!r}; the hetero benchmark runs {', '.join(MODELS)}")
    cls = get_model_class(name)
    return dict(cls.model_defaults), float(cls.train_defaults["lr"]), float(cls.train_defaults["weight_decay"])


def digest(xs, edges, y, train_idx):
    """A short sha256 of dense features ``xs``, edge lists ``edges`` ((2, E) edge_index, (E,) edge type or None;
    each put in one canonical order, so the order an edge list comes in does not matter), labels and
    training nodes: both servers must agree."""
    h = hashlib.sha256()
    for x in xs:
        h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    for ei, et in edges:
        ei = np.asarray(ei, dtype=np.int64)
        keys = (ei[0], ei[1]) if et is None else (np.asarray(et, dtype=np.int64), ei[0], ei[1])
        order = np.lexsort(keys)
        h.update(np.ascontiguousarray(ei[:, order]).tobytes())
        if et is not None:
            h.update(np.ascontiguousarray(np.asarray(et, dtype=np.int64)[order]).tobytes())
    h.update(np.asarray(y, dtype=np.int64).tobytes())
    h.update(np.sort(np.asarray(train_idx, dtype=np.int64)).tobytes())
    return h.hexdigest()[:16]


def _dense(x):
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


# ------------------------------------------------------------------------------ in the worker


class OursHeteroSide:
    """Server state for gnn_scratch (part "hetero" of ``models.serve``): the dataset, the model, its step."""

    def __init__(self, cfg):
        self.spec = HeteroSpec(**cfg["graph"])
        self.data = load_dataset(self.spec, cfg.get("data_root"))
        self.fns, self.model_ = {}, None

    def build(self, name, seed=0, **override):
        """(model, inputs (x, graph), step function) as ``tasks.hetero._fit`` builds them; ``override`` replaces
        model defaults (the mirror check's dropout 0)."""
        from ..loop import train_step
        from ..models import get_model_class
        from ..nn import SoftmaxCrossEntropy
        from ..optim import Adam
        from ..tasks.hetero import _masks
        d = self.data
        kw, lr, wd = setting(name)
        cls = get_model_class(name)
        model = cls(out_channels=d.num_classes, seed=seed, **cls.data_arguments(d), **{**kw, **override})
        x, graph = cls.inputs(d, dtype=model.config.get("dtype", "float32"))
        view = _masks(d)
        opt = Adam([{"params": model.parameters(), "weight_decay": wd}], lr=lr)
        loss_fn = SoftmaxCrossEntropy()

        def step():     # _fit's training step
            return float(train_step(model, x, graph, view.y, view.train_mask, opt, loss_fn))
        return model, (x, graph), step

    def describe(self, name, inputs):
        """(digest, sizes) of what ``name`` reads."""
        d, (x, graph) = self.data, inputs
        if name == "han":
            xs = [_dense(x[d.target])]
            edges = [(g.edge_index(), None) for g in graph.values()]
            sizes = dict(nodes=int(d.graph.num_nodes[d.target]),
                         edges={et[1]: int(g.num_edges) for et, g in graph.items()})
        else:
            g, edge_type = graph
            xs = [_dense(x[t]) for t in d.graph.node_types if t in x]
            edges = [(g.edge_index(), np.asarray(edge_type)[np.asarray(g.edge_id)])]
            sizes = dict(nodes=int(g.num_nodes), edges={"relations": int(g.num_edges)},
                         relations=len(d.graph.edge_types))
        sizes.update(target=d.target, target_nodes=int(d.y.shape[0]), train_nodes=int(len(d.train_idx)),
                     classes=int(d.num_classes))
        return digest(xs, edges, d.y, d.train_idx), sizes

    def model(self, msg):
        from ..threads import blas_threads
        self.drop()
        name, seed = msg["model"], msg.get("seed", 0)
        model, inputs, step = self.build(name, seed)
        state = model.state_dict()
        if msg.get("dump"):       # initial weights, output before / after one step with dropout 0, for PyG
            check, _, check_step = self.build(name, seed, dropout=0.0)
            same = check.state_dict()
            if set(same) != set(state) or any(not np.array_equal(same[k], state[k]) for k in state):
                raise RuntimeError(f"{name} with dropout 0 is initialised differently from {name} with its dropout")

            def forward():
                check.eval()
                with blas_threads(1):
                    return np.array(check.forward(*inputs))
            out0 = forward()
            extra = {}
            if hasattr(check, "semantic_attention"):      # HAN: β per metapath of that forward
                extra["__beta0__"] = np.array(list(check.semantic_attention().values()), dtype=np.float64)
            loss0 = check_step()
            np.savez(msg["dump"], __out0__=out0, __out1__=forward(), __loss0__=np.float64(loss0), **extra, **state)
            del check, check_step
            gc.collect()
        step()          # compile, build the caches; PyG takes a step too before timing
        self.fns, self.model_ = {"step": step}, model
        dig, sizes = self.describe(name, inputs)
        return dict(config=model.config, digest=dig, **sizes)

    def drop(self):
        self.fns, self.model_ = {}, None


def pyg_names(name, key):
    """(PyG twin's parameter name, function our array -> its layout) for our parameter ``key`` of ``name``."""
    T = lambda a: a.T                     # noqa: E731 -- Linear: ours (F_in, F_out), torch (F_out, F_in)
    row = lambda a: a[None]               # noqa: E731 -- HANConv's lin_src / lin_dst (1, H, D), q (1, C)
    same = lambda a: a                    # noqa: E731
    parts = key.split(".")
    if name == "han":
        if key.startswith("conv.proj.") and parts[-1] in ("W", "b"):
            return ".".join(parts[:-1]) + (".weight" if parts[-1] == "W" else ".bias"), T if parts[-1] == "W" else same
        if parts[:2] in (["conv", "lin_src"], ["conv", "lin_dst"]) or key == "conv.q":
            return key, row
        if parts[-2:-1] in (["k_lin"], ["lin"]) and parts[-1] in ("W", "b"):
            return ".".join(parts[:-1]) + (".weight" if parts[-1] == "W" else ".bias"), T if parts[-1] == "W" else same
    elif name == "rgcn":
        if parts[0] == "input" and parts[1].startswith("emb_"):
            return f"embs.{parts[1][4:]}", same
        if parts[0] == "input" and parts[1].startswith("lin_") and parts[-1] in ("W", "b"):
            return f"lins.{parts[1][4:]}." + ("weight" if parts[-1] == "W" else "bias"), T if parts[-1] == "W" else same
        if parts[0] in ("conv1", "conv2"):
            return key, same                 # RGCNConv: the same names and layouts as PyG's
    raise KeyError(f"our {name} parameter {key!r} has no place in the PyG twin")


def load_weights(net, name, state):
    """Copy our model's ``state_dict`` (name -> array) into the PyG twin ``net``. Raises KeyError when a parameter
    of ours has no place in the twin, or a parameter of the twin gets no value; ValueError on a shape mismatch."""
    import torch
    params = dict(net.named_parameters())
    placed = set()
    with torch.no_grad():
        for key, value in state.items():
            pname, f = pyg_names(name, key)
            if pname not in params:
                raise KeyError(f"our {name} parameter {key!r} maps to {pname!r}, which the PyG twin does not have")
            v = torch.from_numpy(np.ascontiguousarray(f(np.asarray(value))))
            if tuple(v.shape) != tuple(params[pname].shape):
                raise ValueError(f"our {key!r} gives shape {tuple(v.shape)} for PyG's {pname!r}, which has "
                                 f"{tuple(params[pname].shape)}")
            params[pname].copy_(v)
            placed.add(pname)
    left = set(params) - placed
    if left:
        raise KeyError(f"the PyG {name} twin has parameters ours does not fill: {sorted(left)}")
    return net


def set_dropout(name, net, p):
    """The twin's dropout probability (HAN: the attention dropout of HANConv; RGCN: between the layers)."""
    if name == "han":
        net.conv.dropout = float(p)
    else:
        net.dropout = float(p)


class PyGHeteroSide:
    """Server state for PyG: the dataset; per model the twin, its inputs as tensors, its training step."""

    def __init__(self, cfg):
        import torch
        torch.set_num_threads(int(cfg["threads"]))
        self.spec = HeteroSpec(**cfg["graph"])
        self.data = load_dataset(self.spec, cfg.get("data_root"))
        self.fns = {}

    def twin(self, name, seed=0):
        """(module, inputs, step function (returns the loss)) with PyG's own initial weights and dropout 0."""
        import torch
        import torch.nn.functional as F
        from .pyg_hetero import TWINS
        d = self.data
        kw, lr, wd = setting(name)
        net, inputs = TWINS[name](d, seed=seed, dtype="float32", **{**kw, "dropout": 0.0})
        y = torch.as_tensor(np.asarray(d.y, dtype=np.int64))
        idx = torch.as_tensor(np.asarray(d.train_idx, dtype=np.int64))
        box = {}

        def reset(state, dropout):
            """Our initial weights, this dropout, a fresh Adam."""
            load_weights(net, name, state)
            set_dropout(name, net, dropout)
            box["opt"] = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd)

        def step():
            opt = box["opt"]
            net.train()
            opt.zero_grad()
            loss = F.cross_entropy(net(*inputs)[idx], y[idx])
            loss.backward()
            opt.step()
            return loss.item()
        return net, inputs, step, reset

    def describe(self, name, inputs):
        d = self.data
        if name == "han":
            x_dict, ei_dict = inputs
            xs = [x_dict[d.target].numpy()]
            edges = [(ei.numpy(), None) for ei in ei_dict.values()]
        else:
            x_dict, ei, et = inputs
            xs = [x_dict[t].numpy() for t in d.graph.node_types if t in x_dict]
            edges = [(ei.numpy(), et.numpy())]
        return digest(xs, edges, d.y, d.train_idx)

    def model(self, msg):
        import torch
        self.fns = {}
        name = msg["model"]
        with np.load(msg["dump"]) as f:
            out0, out1, loss0 = f["__out0__"], f["__out1__"], float(f["__loss0__"])
            beta0 = f["__beta0__"] if "__beta0__" in f.files else None
            state = {k: f[k] for k in f.files if not k.startswith("__")}
        net, inputs, step, reset = self.twin(name, msg.get("seed", 0))
        reset(state, 0.0)

        def forward():
            net.eval()
            with torch.no_grad():
                return net(*inputs).numpy()
        got0 = forward()
        diff = float(np.max(np.abs(got0 - out0))) if got0.shape == out0.shape else float("inf")
        scale = max(float(np.max(np.abs(out0))), 1e-30)
        if got0.shape != out0.shape or not np.allclose(got0, out0, rtol=MIRROR_RTOL, atol=MIRROR_RTOL * scale):
            raise ValueError(f"the PyG {name} twin computes something else from our weights (max |diff| = "
                             f"{diff:.3g}, {diff / scale:.3g} of the largest logit)")
        extra = {}
        if beta0 is not None:          # β ≈ uniform at initialisation: compare the centred scores log β - mean
            net.eval()
            with torch.no_grad():
                _, attn = net.conv(*inputs, return_semantic_attention_weights=True)
            s_pyg, s_ours = (np.log(np.asarray(b, dtype=np.float64)) for b in (attn[self.data.target].numpy(), beta0))
            s_pyg, s_ours = s_pyg - s_pyg.mean(), s_ours - s_ours.mean()
            extra["beta_rel_diff"] = float(np.max(np.abs(s_pyg - s_ours)) / max(float(np.max(np.abs(s_ours))), 1e-30))
            if extra["beta_rel_diff"] > BETA_RTOL:
                raise ValueError(f"the PyG {name} twin's semantic attention differs from ours: β "
                                 f"{attn[self.data.target].tolist()} vs {beta0.tolist()} (centred log β differ by "
                                 f"{extra['beta_rel_diff']:.3g} of ours)")
        loss = step()                  # dropout 0: the step ours took in the check
        loss_rel = abs(loss - loss0) / max(abs(loss0), 1e-30)
        if loss_rel > MIRROR_RTOL:
            raise ValueError(f"the PyG {name} twin's training loss is {loss:.6g}, ours {loss0:.6g}")
        got1 = forward()
        d_ours, d_pyg = out1 - out0, got1 - got0
        step_rel = float(np.linalg.norm(d_pyg - d_ours) / max(float(np.linalg.norm(d_ours)), 1e-30))
        if step_rel > STEP_RTOL:
            raise ValueError(f"one training step of the PyG {name} twin changes the logits differently from ours "
                             f"(relative difference of the changes {step_rel:.3g}): a gradient differs")
        p_drop = setting(name)[0]["dropout"]
        reset(state, p_drop)           # what is timed: our initial weights, the real dropout, a fresh Adam
        step()                         # the step ours took before timing
        self.fns = {"step": step}
        return dict(digest=self.describe(name, inputs), max_abs_diff=diff, max_rel_diff=diff / scale,
                    loss_rel_diff=loss_rel, step_rel_diff=step_rel, dropout=p_drop, **extra)

    def drop(self):
        self.fns = {}
        gc.collect()


# ------------------------------------------------------------------------------ in the parent


def time_model(pair, spec, name, info_base, warmup, repeats, max_time, tmp, log, seed=0):
    """The row of one model: {model, dataset, step: {ours, pyg}, mirror, sizes, ...}."""
    from .models import ServerError
    kw, lr, wd = setting(name)
    row = dict(model=name, dataset=spec.name, dataset_label=spec.label, lr=lr, weight_decay=wd, seed=seed,
               **info_base)
    t0 = time.perf_counter()
    try:
        ours = pair.servers["ours"]
        pyg = pair.alive("pyg")
        dump = os.path.join(tmp, f"{name}.npz") if pyg else None
        info = ours.call(cmd="model", model=name, seed=seed, dump=dump)
        row.update({k: v for k, v in info.items() if k != "digest"})
        fns = {"ours": ours.timed("step")}
        if pyg:
            try:
                got = pair.servers["pyg"].call(cmd="model", model=name, seed=seed, dump=dump)
                if got["digest"] != info["digest"]:
                    raise ServerError(f"the PyG server read other data than ours ({got['digest']} vs "
                                      f"{info['digest']})")
                row["mirror"] = {k: got[k] for k in ("max_abs_diff", "max_rel_diff", "loss_rel_diff",
                                                     "step_rel_diff", "beta_rel_diff") if k in got}
                fns["pyg"] = pair.servers["pyg"].timed("step")
            except ServerError as e:
                row["pyg_error"] = str(e)
                log(f"  PyG: {e}")
        log(f"hetero: {LABELS[name]} on {spec.label}, "
            + ", ".join(f"{k} {v:,}" for k, v in info["edges"].items()) + f" edges (warm-up {warmup}, "
            f"{repeats} rounds" + (f", stopping after {max_time:.0f} s" if max_time else "") + ")")
        row["step"] = interleave(fns, repeats=repeats, warmup=warmup, max_time=max_time)
        log("  step: " + "  ".join(f"{k} {1e3 * v['median']:.0f} ms" for k, v in row["step"].items()))
    except ServerError as e:
        row["error"] = str(e)
        log(f"hetero {name} on {spec.label}: {e}")
    finally:
        pair.drop_models()
    row["wall_s"] = time.perf_counter() - t0
    return row


def _revive(pair, lib, spec, log):
    """Start ``lib``'s server afresh on ``spec`` (the other one keeps its data); logged and left out if it fails."""
    from .models import Server, ServerError
    try:
        pair.servers[lib] = Server(dict(pair.base, lib=lib, graph=spec.__dict__), log)
    except ServerError as e:
        pair.servers.pop(lib, None)
        log(f"  {lib} server: {e}")


def run(specs, models=MODELS, warmup=1, repeats=5, max_time=None, pyg=True, data_root=None, log=print):
    """The "hetero" section of the results: one row per (dataset, model)."""
    from .harness import num_threads
    from .models import Pair, ServerError
    rows = []
    pair = Pair(pyg, data_root, None, log, part="hetero")
    tmp = tempfile.mkdtemp(prefix="gnn_bench_hetero_")
    try:
        for spec in specs:
            t0 = time.perf_counter()
            try:
                pair.load(spec)
            except ServerError as e:
                rows += [dict(model=m, dataset=spec.name, dataset_label=spec.label, error=str(e)) for m in models]
                log(f"hetero on {spec.label}: {e}")
                continue
            base = dict(setup_s=time.perf_counter() - t0)
            for m in models:
                if pyg and "pyg" in pair.servers and not pair.alive("pyg"):
                    _revive(pair, "pyg", spec, log)    # died on the last model (out of memory?): a fresh one
                rows.append(time_model(pair, spec, m, base, warmup, repeats, max_time, tmp, log))
    finally:
        pair.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(rows=rows, pyg=pyg, threads=num_threads())
