"""Graph-classification benchmark: one GIN training epoch on PROTEINS, gnn_scratch beside PyG.

One epoch is what ``tasks/graph.py: train_fold`` runs per epoch: ``iters`` (50) training steps, each
on ``batch_size`` (32) graphs drawn at random without repetition within the batch, Adam lr 0.01,
GIN with 5 layers (the input counts), 64 hidden units, dropout 0.5, sum readouts. The graph ids of
the 50 batches are drawn once, before any timing, by ``draw_batches`` -- the same function and seed
in both processes, and the parent checks that both sides report the same digest of the ids. Every
timed epoch runs over that same sequence (the model keeps training from epoch to epoch, as it does
in ``train_fold``). The batches are drawn from all the dataset's graphs: drawing is not timed, and
the cost of a batch depends on its graphs, not on which fold they come from.

Cutting each mini-batch out of the dataset is *inside* the timed epoch on both sides, done the way
each library's user does it:

* ours -- ``GraphBatch.select(ids)`` on the batch of the whole dataset, then ``x[nodes]`` and
  ``y[ids]`` (vectorised, no loop over graphs), then ``loop.train_step`` inside ``loop.input_is_data``
  (the features are data: no input gradient, as PyG's x has no requires_grad) -- exactly ``train_fold``.
* PyG, two forms, each its own model and optimiser; the faster one is compared (as in the models
  part):
  - ``index``: the same vectorised cut written in torch on the whole dataset's tensors (node and
    edge pointers per graph, ``repeat_interleave`` offsets, ``x[nodes]``, ``edge_index[:, edges]``
    renumbered, ``batch``): what ``select`` does, with torch ops.
  - ``from_data_list``: ``Batch.from_data_list`` of the graphs' pre-built ``Data`` objects -- the
    collate step of PyG's ``DataLoader``, without its sampler and worker machinery.
  Then forward (train mode), ``F.cross_entropy``, backward, ``Adam.step``, ``loss.item()``.

The PyG model (``PyGGIN``) is the same network built from ``torch_geometric.nn.GINConv`` with
nn = Sequential(Linear, BatchNorm1d, ReLU, Linear), an outer BatchNorm1d + ReLU, ``global_add_pool``
readouts of every layer (the input too), a Linear per readout, dropout on each score, summed.
Before any timing it is given *our initial weights* (``load_gin_weights``) and must reproduce our
eval-mode scores on every graph of the dataset (in a shuffled order, cut with that form's own code)
to rtol 1e-4; a form that does not, or fails, is reported and left out of the timings.

Both libraries run in their own long-lived server (``worker.py serve`` -> ``models.serve`` with this
module's side classes, config ``part="graphs"``; ``models.Pair``), each epoch timed inside its
server, interleaved round by round by ``harness.interleave``; torch gets Numba's thread count
(``torch.set_num_threads``). float32 throughout. The eval-mode check allows rtol 1e-4 with an
absolute floor of 1e-4 x the largest score: with BatchNorm's initial running statistics and sum
readouts the scores reach ~1e4, and float32 summation-order noise scales with them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .harness import SETTLE_MAX_S, SETTLE_S, interleave

FORMS = ("index", "from_data_list")
MODEL = dict(hidden_channels=64, num_layers=5, dropout=0.5)    # GIN's defaults (Xu et al. 2019)
LR = 0.01
MIRROR_RTOL = 1e-4
CUTS = {"ours": "GraphBatch.select(ids), x[nodes], y[ids]",
        "index": "vectorised torch cut of the whole dataset's tensors (repeat_interleave offsets)",
        "from_data_list": "Batch.from_data_list of pre-built Data objects (DataLoader's collate)"}


@dataclass(frozen=True)
class DatasetSpec:
    """A graph-classification dataset: a TU dataset by name (``load_tu``), or ``synthetic`` random graphs."""
    name: str
    kind: str = "tu"          # "tu" or "synthetic"
    num_graphs: int = 0       # synthetic only
    seed: int = 0             # synthetic only

    @property
    def label(self):
        if self.kind == "tu":
            return {"proteins": "PROTEINS", "mutag": "MUTAG", "imdb-binary": "IMDB-BINARY"}.get(self.name, self.name)
        return f"synthetic, {self.num_graphs} graphs"


def synthetic_tu(num_graphs, seed=0, min_nodes=4, max_nodes=24, num_tags=3, num_classes=2):
    """A small ``TUDataset`` of random undirected graphs (for ``--tiny``: no data files needed).

    Graph k has n_k in [min_nodes, max_nodes] nodes and about 2 n_k undirected edges (both ways, no
    repeats, no self-loops; isolated nodes possible), random tags and labels (every class present).
    """
    from ..data.tu import TUDataset
    rng = np.random.default_rng(seed)
    eis, sizes = [], rng.integers(min_nodes, max_nodes + 1, size=num_graphs)
    for n in sizes:
        pairs = rng.integers(0, n, size=(2, 2 * int(n)))
        a, b = np.minimum(pairs[0], pairs[1]), np.maximum(pairs[0], pairs[1])
        key = np.unique(a[a != b] * n + b[a != b])
        src, dst = key // n, key % n
        both = np.unique(np.concatenate([src * n + dst, dst * n + src]))    # sorted by (source, target)
        eis.append(np.stack([both // n, both % n]).astype(np.int64))
    tags = rng.integers(0, num_tags, size=int(sizes.sum()))
    y = np.arange(num_graphs) % num_classes
    y = rng.permutation(y).astype(np.int64)
    return TUDataset("synthetic", eis, sizes, tags.astype(np.int64), y, np.arange(num_tags), np.arange(num_classes),
                     meta=dict(form="synthetic"))


def load_dataset(spec, data_root=None):
    """The ``TUDataset`` of ``spec`` (raises the loader's DataNotFoundError when the files are nowhere)."""
    if spec.kind == "synthetic":
        return synthetic_tu(spec.num_graphs, spec.seed)
    if spec.kind != "tu":
        raise ValueError(f"unknown dataset kind {spec.kind!r}; expected 'tu' or 'synthetic'")
    from ..data.tu import load_tu
    return load_tu(spec.name, root=data_root, form="txt", download=False)


def draw_batches(num_graphs, iters, batch_size, seed=0):
    """(iters, B) int64 graph ids: ``train_fold``'s draw, B = min(batch_size, num_graphs) distinct ids per row."""
    rng = np.random.default_rng(seed)
    B = min(int(batch_size), int(num_graphs))
    return np.stack([rng.permutation(num_graphs)[:B] for _ in range(int(iters))]).astype(np.int64)


def check_ids(num_graphs, seed=0):
    """Every graph id once, shuffled: the graphs of the (untimed) mirror check."""
    return np.random.default_rng(seed + 1).permutation(num_graphs).astype(np.int64)


def digest(a):
    """A short sha256 of an int64 array: both servers must report the same batches."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()[:16]


# ------------------------------------------------------------------------------ in the worker


class OursEpochSide:
    """Server state for gnn_scratch (part "graphs" of ``models.serve``): the dataset batched once, the model."""

    def __init__(self, cfg):
        self.spec = DatasetSpec(**cfg["graph"])
        self.data = load_dataset(self.spec, cfg.get("data_root"))
        self.whole, self.x, self.y = self.data.batch(dtype=np.float32)
        self.fns = {}

    def model(self, msg):
        from ..loop import input_is_data, train_step
        from ..models import build_model
        from ..nn import SoftmaxCrossEntropy
        from ..optim import Adam
        self.drop()
        d, whole, x_all, y_all = self.data, self.whole, self.x, self.y
        model = build_model("gin", in_channels=d.num_features, out_channels=d.num_classes, seed=msg.get("seed", 0),
                            **msg["model_kw"])
        opt = Adam([{"params": model.parameters(), "weight_decay": 0.0}], lr=msg["lr"])
        loss_fn = SoftmaxCrossEntropy()
        batches = draw_batches(d.num_graphs, msg["iters"], msg["batch_size"], msg.get("seed", 0))
        check = check_ids(d.num_graphs, msg.get("seed", 0))
        if msg.get("dump"):   # initial weights and eval-mode scores, for the PyG mirror and its check
            model.eval()
            sub, nodes = whole.select(check)
            scores = np.asarray(model.forward(x_all[nodes], sub))
            np.savez(msg["dump"], __eval__=scores, **model.state_dict())

        def epoch():
            total = 0.0
            with input_is_data(model):    # as train_fold: the features are data (PyG's x has no requires_grad)
                for ids in batches:
                    sub, nodes = whole.select(ids)
                    total += float(train_step(model, x_all[nodes], sub, y_all[ids], None, opt, loss_fn))
            return total

        sub, nodes = whole.select(batches[0])        # compile, warm the allocator; PyG takes one step too
        with input_is_data(model):
            train_step(model, x_all[nodes], sub, y_all[batches[0]], None, opt, loss_fn)
        self.fns = {"epoch": epoch}
        return dict(config=model.config, batches=digest(batches), check=digest(check), num_graphs=d.num_graphs,
                    num_nodes=int(whole.num_nodes), num_edges=int(whole.num_edges))

    def drop(self):
        self.fns = {}


def _pyg_gin_class():
    """``PyGGIN``, defined on first use: torch is imported only in the PyG server."""
    import torch
    import torch.nn.functional as F
    from torch_geometric.nn import GINConv, global_add_pool

    class PyGGIN(torch.nn.Module):
        """Our GIN (``models/gin.py``) in torch / PyG: GINConv(Linear-BN-ReLU-Linear) -> BN -> ReLU,
        a sum readout of every layer and the input, a Linear and dropout per readout, scores summed."""

        def __init__(self, in_channels, out_channels, hidden_channels=64, num_layers=5, dropout=0.5, eps=0.0,
                     train_eps=False):
            super().__init__()
            self.dropout = float(dropout)
            widths = [in_channels] + [hidden_channels] * (num_layers - 1)
            self.convs, self.norms = torch.nn.ModuleList(), torch.nn.ModuleList()
            for l in range(1, num_layers):
                mlp = torch.nn.Sequential(torch.nn.Linear(widths[l - 1], hidden_channels),
                                          torch.nn.BatchNorm1d(hidden_channels), torch.nn.ReLU(),
                                          torch.nn.Linear(hidden_channels, hidden_channels))
                self.convs.append(GINConv(mlp, eps=eps, train_eps=train_eps))
                self.norms.append(torch.nn.BatchNorm1d(hidden_channels))
            self.lins = torch.nn.ModuleList(torch.nn.Linear(w, out_channels) for w in widths)

        def forward(self, x, edge_index, batch, num_graphs):
            h = x
            score = F.dropout(self.lins[0](global_add_pool(h, batch, num_graphs)), self.dropout, self.training)
            for l, (conv, norm) in enumerate(zip(self.convs, self.norms), start=1):
                h = F.relu(norm(conv(h, edge_index)))
                score = score + F.dropout(self.lins[l](global_add_pool(h, batch, num_graphs)), self.dropout,
                                          self.training)
            return score

    return PyGGIN


def build_pyg_gin(config):
    """A ``PyGGIN`` of our GIN's ``config`` (PyG's own initial weights); ValueError for a setting it lacks."""
    if config.get("readout", "sum") != "sum":
        raise ValueError(f"the PyG mirror has sum readouts only, got readout={config['readout']!r}")
    return _pyg_gin_class()(config["in_channels"], config["out_channels"], config["hidden_channels"],
                            config["num_layers"], config["dropout"], config.get("eps", 0.0),
                            config.get("train_eps", False))


def load_gin_weights(net, state):
    """Copy our GIN's ``state_dict`` (name -> array) into ``net``: Linear weights transposed, BN running stats too.

    Raises KeyError when a name of ours has no place in the PyG model (nothing may be left over).
    """
    import torch
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))   # noqa: E731
    used = set()

    def get(name):
        used.add(name)
        return t(state[name])

    def linear(m, prefix):
        m.weight.copy_(get(prefix + ".W").T)
        m.bias.copy_(get(prefix + ".b"))

    def norm(m, prefix):
        m.weight.copy_(get(prefix + ".gamma"))
        m.bias.copy_(get(prefix + ".beta"))
        m.running_mean.copy_(get(prefix + ".running_mean"))
        m.running_var.copy_(get(prefix + ".running_var"))

    with torch.no_grad():
        for l, (conv, bn) in enumerate(zip(net.convs, net.norms), start=1):
            linear(conv.nn[0], f"conv{l}.nn.lin1")
            norm(conv.nn[1], f"conv{l}.nn.norm")
            linear(conv.nn[3], f"conv{l}.nn.lin2")
            conv.eps.copy_(get(f"conv{l}.eps"))
            norm(bn, f"norm{l}")
        for l, lin in enumerate(net.lins):
            linear(lin, f"lin{l}")
    left = set(state) - used
    if left:
        raise KeyError(f"our GIN has parameters the PyG mirror does not place: {sorted(left)}")
    return net


class PyGEpochSide:
    """Server state for PyG: the dataset as whole-dataset tensors and as per-graph ``Data``; a model per form."""

    def __init__(self, cfg):
        import torch
        from torch_geometric.data import Data
        torch.set_num_threads(int(cfg["threads"]))
        self.spec = DatasetSpec(**cfg["graph"])
        d = load_dataset(self.spec, cfg.get("data_root"))
        node_ptr = d.graph_ptr.astype(np.int64)
        edges = np.array([ei.shape[1] for ei in d.edge_index], dtype=np.int64)
        edge_ptr = np.concatenate([[0], np.cumsum(edges)])
        ei_all = np.concatenate([ei + node_ptr[k] for k, ei in enumerate(d.edge_index)], axis=1)
        self.num_graphs = d.num_graphs
        self.x = torch.from_numpy(d.features(dtype=np.float32))
        self.y = torch.from_numpy(d.y.astype(np.int64))
        self.edge_index = torch.from_numpy(np.ascontiguousarray(ei_all, dtype=np.int64))
        self.node_ptr, self.edge_ptr = torch.from_numpy(node_ptr), torch.from_numpy(edge_ptr)
        self.node_count, self.edge_count = self.node_ptr.diff(), self.edge_ptr.diff()
        self.data_list = [Data(x=self.x[node_ptr[k]:node_ptr[k + 1]], edge_index=torch.from_numpy(ei),
                               y=self.y[k:k + 1]) for k, ei in enumerate(d.edge_index)]
        self.forms = [f for f in FORMS if not cfg.get("forms") or f in cfg["forms"]]
        self.fns = {}

    # the two ways of cutting a mini-batch: (x, edge_index, batch, y, B)
    def cut_index(self, ids):
        """``GraphBatch.select`` in torch: ids (B,) int64 tensor."""
        import torch
        B = ids.numel()
        start, n = self.node_ptr[ids], self.node_count[ids]
        new_ptr = torch.zeros(B + 1, dtype=torch.int64)
        torch.cumsum(n, 0, out=new_ptr[1:])
        N = int(new_ptr[-1])
        shift = start - new_ptr[:-1]                                   # old id = new id + shift, per graph
        nodes = torch.arange(N) + torch.repeat_interleave(shift, n, output_size=N)
        e0, m = self.edge_ptr[ids], self.edge_count[ids]
        new_eptr = torch.zeros(B + 1, dtype=torch.int64)
        torch.cumsum(m, 0, out=new_eptr[1:])
        E = int(new_eptr[-1])
        edges = torch.arange(E) + torch.repeat_interleave(e0 - new_eptr[:-1], m, output_size=E)
        edge_index = self.edge_index[:, edges] - torch.repeat_interleave(shift, m, output_size=E)
        batch = torch.repeat_interleave(torch.arange(B), n, output_size=N)
        return self.x[nodes], edge_index, batch, self.y[ids], B

    def cut_from_data_list(self, ids):
        """PyG's collate: ids a list of ints."""
        from torch_geometric.data import Batch
        b = Batch.from_data_list([self.data_list[i] for i in ids])
        return b.x, b.edge_index, b.batch, b.y, b.num_graphs

    def model(self, msg):
        import torch
        import torch.nn.functional as F
        self.fns = {}
        with np.load(msg["dump"]) as f:
            expected = f["__eval__"]
            state = {k: f[k] for k in f.files if k != "__eval__"}
        batches = draw_batches(self.num_graphs, msg["iters"], msg["batch_size"], msg.get("seed", 0))
        check = check_ids(self.num_graphs, msg.get("seed", 0))
        mirror = {}
        for form in self.forms:
            if form == "index":
                cut, arg = self.cut_index, lambda ids: torch.from_numpy(ids)
            else:
                cut, arg = self.cut_from_data_list, lambda ids: ids.tolist()
            try:
                net = load_gin_weights(build_pyg_gin(msg["config"]), state)
                net.eval()
                with torch.no_grad():
                    xb, eib, bb, _, B = cut(arg(check))
                    got = net(xb, eib, bb, B).numpy()
                diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
                rel = diff / max(float(np.max(np.abs(expected))), 1e-30)
                if got.shape != expected.shape or not np.allclose(got, expected, rtol=MIRROR_RTOL,
                                                                  atol=MIRROR_RTOL * float(np.max(np.abs(expected)))):
                    raise ValueError(f"the PyG mirror computes something else (max |diff| = {diff:.3g}, "
                                     f"{rel:.3g} of the largest score)")
                opt = torch.optim.Adam(net.parameters(), lr=msg["lr"])
                args = [arg(ids) for ids in batches]    # ids as each form takes them: converted before timing

                def epoch(net=net, opt=opt, cut=cut, args=args):
                    total = 0.0
                    net.train()
                    for a in args:
                        x, ei, b, y, B = cut(a)
                        opt.zero_grad()
                        loss = F.cross_entropy(net(x, ei, b, B), y)
                        loss.backward()
                        opt.step()
                        total += loss.item()
                    return total

                _step_once(net, opt, cut, args[0])     # a form that cannot train fails here, not in the timings
            except Exception as e:   # noqa: BLE001
                mirror[form] = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
                continue
            mirror[form] = dict(max_abs_diff=diff, max_rel_diff=rel)
            self.fns[f"{form}:epoch"] = epoch
        return dict(mirror=mirror, forms=sorted(k.split(":")[0] for k in self.fns), batches=digest(batches),
                    check=digest(check))

    def drop(self):
        self.fns = {}


def _step_once(net, opt, cut, a):
    import torch.nn.functional as F
    net.train()
    x, ei, b, y, B = cut(a)
    opt.zero_grad()
    F.cross_entropy(net(x, ei, b, B), y).backward()
    opt.step()


# ------------------------------------------------------------------------------ in the parent


def time_dataset(spec, iters=50, batch_size=32, warmup=1, repeats=5, max_time=None, pyg=True, data_root=None,
                 log=print, forms=None, seed=0):
    """The row of one dataset: {model, dataset, epoch: {ours, pyg:<form>...}, mirror, ...}."""
    from .models import Pair, ServerError
    row = dict(model="gin", dataset=spec.name, dataset_label=spec.label, iters=iters, batch_size=batch_size,
               seed=seed, cuts=CUTS, mirror={})
    pair = Pair(pyg, data_root, forms, log, part="graphs")
    tmp = tempfile.mkdtemp(prefix="gnn_bench_graphs_")
    t0 = time.perf_counter()
    try:
        pair.load(spec)
        row["setup_s"] = time.perf_counter() - t0
        ours = pair.servers["ours"]
        dump = os.path.join(tmp, "gin.npz")
        msg = dict(cmd="model", model_kw=dict(MODEL), lr=LR, iters=iters, batch_size=batch_size, seed=seed)
        info = ours.call(dump=dump, **msg)
        row.update(config=info["config"], batches=info["batches"], num_graphs=info["num_graphs"],
                   num_nodes=info["num_nodes"], num_edges=info["num_edges"])
        fns = {"ours": ours.timed("epoch")}
        if pair.alive("pyg"):
            try:
                got = pair.servers["pyg"].call(dump=dump, config=info["config"], **msg)
                if (got["batches"], got["check"]) != (info["batches"], info["check"]):
                    raise ServerError("the PyG server drew other batches than ours "
                                      f"({got['batches']} vs {info['batches']})")
                row["mirror"] = got["mirror"]
                for form, m in got["mirror"].items():
                    if "error" in m:
                        log(f"  pyg {form}: {m['error']}")
                for form in got["forms"]:
                    fns[f"pyg:{form}"] = pair.servers["pyg"].timed(f"{form}:epoch")
            except ServerError as e:
                row["pyg_error"] = str(e)
                log(f"  PyG: {e}")
        log(f"graphs: GIN on {spec.label}, {iters} steps of {batch_size} graphs per epoch "
            f"(warm-up {warmup}, {repeats} rounds" + (f", stopping after {max_time:.0f} s" if max_time else "") + ")")
        row.update(settle_s=SETTLE_S, settle_max_s=SETTLE_MAX_S)
        row["epoch"] = interleave(fns, repeats=repeats, warmup=warmup, max_time=max_time, settle=SETTLE_S)
        log("  epoch: " + "  ".join(f"{k} {1e3 * v['median']:.0f} ms" for k, v in row["epoch"].items()))
    except ServerError as e:
        row["error"] = str(e)
        log(f"graphs on {spec.label}: {e}")
    finally:
        pair.close()
        shutil.rmtree(tmp, ignore_errors=True)
    row["wall_s"] = time.perf_counter() - t0
    return row


def run(specs, iters=50, batch_size=32, warmup=1, repeats=5, max_time=None, pyg=True, data_root=None, log=print,
        forms=None):
    """The "graphs" section of the results: one row per dataset."""
    rows = [time_dataset(s, iters=iters, batch_size=batch_size, warmup=warmup, repeats=repeats, max_time=max_time,
                         pyg=pyg, data_root=data_root, log=log, forms=forms) for s in specs]
    return dict(rows=rows, pyg=pyg)
