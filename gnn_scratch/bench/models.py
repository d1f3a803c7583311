"""Model benchmark: one full-batch training step and one inference forward, gnn_scratch beside PyG.

Each library runs in its own long-lived server process (``worker.py serve``), one pair per graph:
the pair loads the graph once and then serves every model. The parent times them interleaved --
it asks ours for one step, then PyG for one step (in each of PyG's adjacency forms), round after
round -- and every step is timed inside its server, so no pipe latency is counted. Two processes
rather than one, because torch and Numba each bring an OpenMP runtime whose idle threads spin
for a while after a parallel region: in one process each library would run on cores the other
one's threads are still spinning on.

* Ours is built as ``gnn-scratch train`` builds it (the model class's ``model_defaults``; on the
  random graphs 64 hidden units -- GAT: 8 heads x 8), with Adam and L2 5e-4 on every parameter; a
  training step is ``loop.train_step`` inside ``loop.input_is_data`` -- exactly what ``train.fit`` runs.
* The PyG peer is the same chain of layers (``pyg_mirror``) with *our initial weights*, checked to
  compute our eval-mode output on the benchmark graph, then given the same optimiser; it runs
  with every adjacency form PyG accepts (edge_index, EdgeIndex, CSR) and the fastest form is the
  one compared. A form that computes something else, or fails, is reported and left out.
* torch gets numba's thread count.

Peak memory (``memory_config``) runs one library per fresh process: data, model, two training
steps and one inference, then the process's peak resident set.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from .harness import SETTLE_MAX_S, SETTLE_S, Elapsed, GraphSpec, interleave, load_bench_data, num_threads

MODEL_NAMES = ("gcn", "sage", "gat")
WEIGHT_DECAY = 5e-4


def available_models():
    """The registered model names (gat and sage appear once their authors register them)."""
    from ..models import MODELS
    return set(MODELS)


def model_config(name, spec):
    """(model kwargs, lr) for ``name`` on ``spec``: the model class's defaults; 64 hidden units on random graphs."""
    from ..models import get_model_class
    model_cls = get_model_class(name)
    cfg, lr = dict(model_cls.model_defaults), model_cls.train_defaults.get("lr", 0.01)
    if spec.kind == "random":
        if name == "gat":
            cfg.update(hidden_channels=8, heads=8)
        else:
            cfg.update(hidden_channels=64)
    return cfg, lr


def build_ours(name, spec, num_features, num_classes, seed=0):
    """Our model and its Adam optimiser (L2 on every parameter, as the PyG peer gets)."""
    from ..models import build_model
    from ..optim import Adam
    cfg, lr = model_config(name, spec)
    model = build_model(name, in_channels=num_features, out_channels=num_classes, seed=seed, **cfg)
    opt = Adam([{"params": model.parameters(), "weight_decay": WEIGHT_DECAY}], lr=lr)
    return model, opt, lr


def describe(model):
    """(layer descriptions, per-layer parameter dicts) of a chain model, for ``pyg_mirror``."""
    from ..nn import ELU, Dropout, GCNConv, LeakyReLU, Linear, ReLU
    kinds = {Dropout: ("Dropout", ("p",)), ReLU: ("ReLU", ()), ELU: ("ELU", ("alpha",)),
             LeakyReLU: ("LeakyReLU", ("negative_slope",)),
             Linear: ("Linear", ("in_channels", "out_channels")),
             GCNConv: ("GCNConv", ("in_channels", "out_channels", "improved", "add_self_loops", "normalize"))}
    try:
        from ..nn.conv.gat_conv import GATConv
        kinds[GATConv] = ("GATConv", ("in_channels", "out_channels", "heads", "concat", "negative_slope", "dropout",
                                      "add_self_loops"))
    except ImportError:
        pass
    try:
        from ..nn.conv.sage_conv import SAGEConv
        kinds[SAGEConv] = ("SAGEConv", ("in_channels", "out_channels", "aggr", "normalize", "root_weight", "project",
                                        "concat"))
    except ImportError:
        pass
    desc, params = [], []
    for _, m in model.children():
        kind = kinds.get(type(m))
        if kind is None:
            raise ValueError(f"no PyG mirror for layer {type(m).__name__}")
        args = {k: getattr(m, k) for k in kind[1]}
        if "W" in m.params or "W_neigh" in m.params:
            args["bias"] = "b" in m.params
        if kind[0] == "SAGEConv" and (args.pop("concat") or args["aggr"] not in ("mean", "sum", "max")):
            raise ValueError(f"no PyG mirror for SAGEConv(aggr={m.aggr!r}, concat={m.concat})")
        desc.append(dict(type=kind[0], args=_plain(args)))
        params.append(dict(m.params))
    return desc, params


def _plain(d):
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


# ------------------------------------------------------------------------------ in the worker


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


class OursSide:
    """Server state for gnn_scratch: the graph's data, and the current model with its step functions."""

    def __init__(self, cfg):
        self.spec = GraphSpec(**cfg["graph"])
        self.data = load_bench_data(self.spec, cfg.get("data_root"), need_dense=False)
        self.fns, self._ctx = {}, None

    def model(self, msg):
        from ..nn import SoftmaxCrossEntropy
        from ..loop import input_is_data, train_step
        self.drop()
        d = self.data
        model, opt, lr = build_ours(msg["model"], self.spec, d.num_features, d.num_classes)
        loss_fn = SoftmaxCrossEntropy()
        x, g, y, mask = d.x, d.graph, d.y, d.train_mask

        def train():
            train_step(model, x, g, y, mask, opt, loss_fn)

        def infer():
            model.eval()
            model.forward(x, g)
        reply = dict(config=model.config, lr=lr)
        if msg.get("dump"):   # initial weights and eval output, for the PyG mirror and its check
            try:
                desc, params = describe(model)
                model.eval()
                arrays = {f"{i}.{k}": v for i, P in enumerate(params) for k, v in P.items()}
                np.savez(msg["dump"], __eval__=np.asarray(model.forward(x, g)), **arrays)
                reply["desc"] = desc
            except ValueError as e:
                reply["mirror_error"] = str(e)
        self._ctx = input_is_data(model)
        self._ctx.__enter__()
        train()   # compile, build the graph's caches
        self.fns = {"train": train, "infer": infer}
        return reply

    def drop(self):
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
        self.fns, self._ctx = {}, None


class PyGSide:
    """Server state for PyG: the features, labels and every adjacency form; the current mirror per form."""

    def __init__(self, cfg):
        import torch
        from . import pyg_mirror as pm
        torch.set_num_threads(int(cfg["threads"]))
        self.spec = GraphSpec(**cfg["graph"])
        d = load_bench_data(self.spec, cfg.get("data_root"), need_graph=False, need_sparse=False)
        self.x = pm.features(d.x_dense)
        self.y, self.mask = torch.from_numpy(d.y), torch.from_numpy(d.train_mask)
        self.forms = {k: v for k, v in pm.adjacency_forms(d.edge_index, d.num_nodes).items()
                      if not cfg.get("forms") or k in cfg["forms"]}
        self.fns = {}

    def model(self, msg):
        import torch
        from . import pyg_mirror as pm
        self.fns = {}
        desc = msg["desc"]
        with np.load(msg["dump"]) as f:
            expected = f["__eval__"]
            params = [{} for _ in desc]
            for key in f.files:
                if key != "__eval__":
                    i, name = key.split(".", 1)
                    params[int(i)][name] = f[key]
        mirror = {}
        for form, adj in self.forms.items():
            try:
                net = pm.load_weights(pm.build_chain(desc), desc, params)
                net.eval()
                with torch.no_grad():
                    got = net(self.x, adj).numpy()
                diff = float(np.max(np.abs(got - expected)))
                if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
                    raise pm.MirrorError(f"the PyG mirror computes something else (max |diff| = {diff:.3g})")
                opt = torch.optim.Adam(net.parameters(), lr=msg["lr"], weight_decay=WEIGHT_DECAY)
                train = pm.train_step_fn(net, self.x, adj, self.y, self.mask, opt)
                infer = pm.inference_fn(net, self.x, adj)
                train()   # a form PyG cannot train with fails here, not inside the timings
                infer()
            except Exception as e:   # noqa: BLE001
                mirror[form] = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
                _log(f"    pyg {form}: {mirror[form]['error']}")
                continue
            mirror[form] = dict(max_abs_diff=diff)
            self.fns[f"{form}:train"], self.fns[f"{form}:infer"] = train, infer
        return dict(mirror=mirror, forms=sorted({k.split(":")[0] for k in self.fns}))

    def drop(self):
        self.fns = {}


def serve(cfg, stdin=None, stdout=None, sides=None):
    """The server loop of ``worker.py serve``: one JSON command per line in, one JSON reply per line out.

    ``sides``: the (ours, PyG) server-state classes, (``OursSide``, ``PyGSide``) by default; another
    part passes its own (``worker.py`` picks them by ``cfg["part"]``, e.g. ``graphs.py``'s).
    Commands: {"cmd": "graph", "graph": spec} loads another graph; {"cmd": "model", ...} builds a
    model (``OursSide.model`` / ``PyGSide.model``, or the part's);
    {"cmd": "run", "key": k} runs function k once and replies {"t": seconds}; {"cmd": "drop"};
    {"cmd": "quit"}. A failing command replies {"error": ...} and the server goes on.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    ours_cls, pyg_cls = sides or (OursSide, PyGSide)
    Side = ours_cls if cfg["lib"] == "ours" else pyg_cls
    side = Side(cfg)
    print(json.dumps(dict(ready=True)), file=stdout, flush=True)
    for line in stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "quit":
                break
            if msg["cmd"] == "graph":   # the next graph: the old data goes first
                side.drop()
                side = None
                gc.collect()
                side = Side(dict(cfg, graph=msg["graph"]))
                reply = {}
            elif msg["cmd"] == "model":
                reply = side.model(msg)
            elif msg["cmd"] == "drop":
                side.drop()
                reply = {}
            elif msg["cmd"] == "run":
                fn = side.fns[msg["key"]]
                gc.collect(1)
                gc.disable()
                try:
                    t0 = time.perf_counter()
                    fn()
                    reply = dict(t=time.perf_counter() - t0)
                finally:
                    gc.enable()
            else:
                raise ValueError(f"unknown command {msg['cmd']!r}")
        except Exception as e:   # noqa: BLE001
            reply = dict(error=f"{type(e).__name__}: {str(e)[:500]}")
        print(json.dumps(reply), file=stdout, flush=True)


def _maxrss_mb():
    """Peak resident set of this process, MB: /proc/self/status VmHWM, else ru_maxrss.

    VmHWM belongs to this process's address space, so it starts from zero at exec; Linux's
    ru_maxrss is carried over from the parent through fork and exec, and a worker started by a
    large benchmark process would report at least the parent's size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_config(cfg):
    """Worker body of one peak-memory measurement: one library, one model, one graph, a fresh process."""
    spec = GraphSpec(**cfg["graph"])
    lib = cfg["lib"]
    if lib == "ours":
        from ..nn import SoftmaxCrossEntropy
        from ..loop import input_is_data, train_step
        data = load_bench_data(spec, cfg.get("data_root"), need_dense=False)
        data.edge_index = None   # our Graph holds the edges; PyG's (2, E) array is not ours to carry
        base = _maxrss_mb()
        model, opt, _ = build_ours(cfg["model"], spec, data.num_features, data.num_classes)
        loss_fn = SoftmaxCrossEntropy()
        with input_is_data(model):
            for _ in range(2):
                train_step(model, data.x, data.graph, data.y, data.train_mask, opt, loss_fn)
        model.eval()
        model.forward(data.x, data.graph)
    else:
        import torch
        from . import pyg_mirror as pm
        torch.set_num_threads(int(cfg.get("threads") or 1))
        data = load_bench_data(spec, cfg.get("data_root"), need_graph=False, need_dense=True, need_sparse=False)
        xt = pm.features(data.x_dense)
        yt, mt = torch.from_numpy(data.y), torch.from_numpy(data.train_mask)
        adj = pm.adjacency_forms(data.edge_index, data.num_nodes)[cfg["form"]]
        del data.x_dense, data.x
        base = _maxrss_mb()
        net = pm.build_chain(cfg["desc"])
        opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=WEIGHT_DECAY)
        step = pm.train_step_fn(net, xt, adj, yt, mt, opt)
        for _ in range(2):
            step()
        pm.inference_fn(net, xt, adj)()
    return dict(peak_mb=_maxrss_mb(), baseline_mb=base)


# ------------------------------------------------------------------------------ in the parent


def run_worker(cfg, timeout=None, log=_log):
    """Run ``cfg`` in a fresh ``python -m gnn_scratch.bench.worker`` process; its JSON result, or {"error": ...}."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "gnn_scratch.bench.worker", json.dumps(cfg)]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, env=env, timeout=timeout, text=True)
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout} s")
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    why = "killed (out of memory?)" if p.returncode in (-9, 137) else f"exit status {p.returncode}"
    return dict(error=f"worker failed: {why}")


class ServerError(RuntimeError):
    """A benchmark server died or answered with an error."""


class Server:
    """A ``worker.py serve`` process for one library and one graph, driven line by line."""

    def __init__(self, cfg, log=_log):
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.name = cfg["lib"]
        self.p = subprocess.Popen([sys.executable, "-m", "gnn_scratch.bench.worker", "serve", json.dumps(cfg)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env, text=True,
                                  bufsize=1)
        self._read()   # {"ready": true} once the data is loaded

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            code = self.p.wait()
            why = "killed (out of memory?)" if code in (-9, 137) else f"exit status {code}"
            raise ServerError(f"{self.name} server died: {why}")
        reply = json.loads(line)
        if "error" in reply:
            raise ServerError(reply["error"])
        return reply

    def call(self, **msg):
        try:
            self.p.stdin.write(json.dumps(msg) + "\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise ServerError(f"{self.name} server is gone ({e})") from e
        return self._read()

    def timed(self, key):
        """A function that runs ``key`` once in the server and returns the time the server measured."""
        return lambda: Elapsed(self.call(cmd="run", key=key)["t"])

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(json.dumps(dict(cmd="quit")) + "\n")
                self.p.stdin.close()
                self.p.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


# Timed rounds of an inference group at least (not --quick). On the 1M graph the plan's two rounds (a training
# step takes 2-30 s per library form) left an inference row a median of two calls, and that median moved with
# the VM: GCN's forward there was 0.56-0.60x PyG's in three benchmark runs and 0.39-0.49x in the per-op
# profile of the same code. An inference round there takes 12-28 s (PyG's forms included), so five fit in the
# group's 170 s; both libraries get the same rounds.
INFER_MIN_REPEATS = 5


def plan_for(spec, quick=False):
    """(warm-up, repeats, max seconds per interleaved group) for a graph of this size."""
    E = spec.num_edges if spec.kind == "random" else 10_000
    if quick:
        return (1, 2, 2.0)
    if E <= 50_000:
        return (3, 15, 30.0)
    if E <= 2_000_000:
        return (1, 8, 60.0)
    return (1, 2, 170.0)


def phase_repeats(phase, repeats, quick=False):
    """Timed rounds of ``phase`` ("train" or "infer") under a plan of ``repeats``: ``INFER_MIN_REPEATS`` at least
    for inference, except with ``quick``."""
    return max(repeats, INFER_MIN_REPEATS) if phase == "infer" and not quick else repeats


class Pair:
    """Our server and PyG's, kept across graphs (``load`` sends the next graph; a dead server is restarted)."""

    def __init__(self, pyg=True, data_root=None, forms=None, log=_log, part="models"):
        self.libs = ("ours", "pyg") if pyg else ("ours",)
        self.base = dict(data_root=data_root, threads=num_threads(), forms=forms, part=part)
        self.servers, self.log = {}, log

    def load(self, spec):
        """Put ``spec``'s graph in every server; a PyG server that cannot load it is left out (logged)."""
        for lib in self.libs:
            srv = self.servers.get(lib)
            try:
                if srv is None or srv.p.poll() is not None:
                    self.servers[lib] = Server(dict(self.base, lib=lib, graph=spec.__dict__), self.log)
                else:
                    srv.call(cmd="graph", graph=spec.__dict__)
            except ServerError as e:
                self.servers.pop(lib, None)
                if lib == "ours":
                    raise
                self.log(f"  PyG server: {e}")

    def alive(self, lib):
        srv = self.servers.get(lib)
        return srv is not None and srv.p.poll() is None

    def drop_models(self):
        """Ask every live server to drop its current model (a dead one, or one that fails to answer, is left)."""
        for lib in list(self.servers):
            if self.alive(lib):
                try:
                    self.servers[lib].call(cmd="drop")
                except ServerError:
                    pass

    def close(self):
        for srv in self.servers.values():
            srv.close()
        self.servers = {}


def time_graph(spec, models, phases=("train", "infer"), quick=False, pyg=True, forms=None, data_root=None,
               log=_log, plan=None, pair=None):
    """Rows {model, graph, train: {ours, pyg:<form>...}, infer: {...}, mirror} for ``models`` on one graph."""
    warmup, repeats, max_time = plan or plan_for(spec, quick)
    own = pair is None
    pair = Pair(pyg, data_root, forms, log) if own else pair
    rows = []
    tmp = tempfile.mkdtemp(prefix="gnn_bench_")
    try:
        t0 = time.perf_counter()
        pair.load(spec)
        setup_s = time.perf_counter() - t0
        ours = pair.servers["ours"]
        for name in models:
            row = dict(model=name, graph=spec.name, graph_label=spec.label, setup_s=setup_s, settle_s=SETTLE_S,
                       settle_max_s=SETTLE_MAX_S)
            rows.append(row)
            log(f"models: {name} on {spec.label} (warm-up {warmup}, {repeats} rounds, <= {max_time:.0f} s a group)")
            t1 = time.perf_counter()
            try:
                dump = os.path.join(tmp, f"{name}.npz") if pair.alive("pyg") else None
                info = ours.call(cmd="model", model=name, dump=dump)
                row.update(config=info["config"], mirror={})
                fns = {ph: {"ours": ours.timed(ph)} for ph in phases}
                if pair.alive("pyg") and "desc" in info:
                    try:
                        got = pair.servers["pyg"].call(cmd="model", desc=info["desc"], dump=dump, lr=info["lr"])
                        row["mirror"] = got["mirror"]
                        for form in got["forms"]:
                            for ph in phases:
                                fns[ph][f"pyg:{form}"] = pair.servers["pyg"].timed(f"{form}:{ph}")
                    except ServerError as e:
                        row["pyg_error"] = str(e)
                        log(f"  PyG: {e}")
                elif "mirror_error" in info:
                    row["pyg_error"] = info["mirror_error"]
                for ph in phases:
                    row[ph] = interleave(fns[ph], repeats=phase_repeats(ph, repeats, quick), warmup=warmup,
                                         max_time=max_time, settle=SETTLE_S)
                    log(f"  {ph}: " + "  ".join(f"{k} {1e3 * v['median']:.2f} ms" for k, v in row[ph].items()))
            except ServerError as e:
                row["error"] = str(e)
                log(f"  failed: {e}")
                if not pair.alive("ours") or not (pair.alive("pyg") or "pyg" not in pair.libs):
                    pair.load(spec)   # restart what died, for the next model
                    ours = pair.servers["ours"]
            finally:
                pair.drop_models()
            row["wall_s"] = time.perf_counter() - t1
    finally:
        if own:
            pair.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def run(specs, models=MODEL_NAMES, quick=False, pyg=True, data_root=None, log=_log, forms=None):
    """Rows for every (model, graph); models not registered yet are rows saying "not available yet"."""
    have = available_models()
    rows = []
    pair = Pair(pyg, data_root, forms, log)
    try:
        for spec in specs:
            todo = [m for m in models if m in have]
            for m in models:
                if m not in have:
                    rows.append(dict(model=m, graph=spec.name, graph_label=spec.label, error="not available yet"))
                    log(f"models: {m}: not available yet")
            if todo:
                try:
                    rows += time_graph(spec, todo, quick=quick, pyg=pyg, data_root=data_root, log=log, pair=pair)
                except ServerError as e:   # the graph did not even load
                    rows += [dict(model=m, graph=spec.name, graph_label=spec.label, error=str(e)) for m in todo]
                    log(f"models on {spec.label}: {e}")
    finally:
        pair.close()
    return dict(rows=rows, pyg=pyg)
