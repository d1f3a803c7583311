"""The task layer and the model registry: tasks by name, models carrying their defaults, ``train --help``
generated from both, and the floors below the tasks importing none of them."""
import ast
import inspect
import json
import os
import subprocess
import sys

import pytest

from gnn_scratch.cli import MODEL_OPTIONS, home_task, main
from gnn_scratch.data import csbm
from gnn_scratch.models import GAT, GCN, MODELS, SAGE, register, summary_line
from gnn_scratch.tasks import TASKS, Task, get_task, register_task
from gnn_scratch.tasks.graph import GraphClassification
from gnn_scratch.tasks.node import NodeClassification
from gnn_scratch.train import DEFAULTS, build_for, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data():
    return csbm(num_nodes=200, num_val=40, num_test=40, seed=0)


@pytest.fixture
def extra_task():
    """A second task, registered for one test: it must show up everywhere the registry is read."""

    class Echo(Task):
        """Echo: a stand-in task that trains nothing."""

        name = "echo-test"

        @classmethod
        def add_arguments(cls, parser):
            parser.add_argument("--echo-level", type=int, default=3, help="how loud (default 3)")

    register_task(Echo)
    yield Echo
    del TASKS["echo-test"]


# ============================================================================================ tasks
def test_task_registry():
    assert TASKS["node"] is NodeClassification is get_task("node")
    assert all(issubclass(cls, Task) and cls.name == name for name, cls in TASKS.items())
    with pytest.raises(ValueError, match=r"unknown task 'nope'; choose one of \['embedding', 'graph', 'hetero', 'inductive', 'node', 'temporal'\]"):
        get_task("nope")
    with pytest.raises(TypeError, match="not a Task subclass"):
        register_task(int)

    class Other(Task):
        name = "node"
    with pytest.raises(ValueError, match="already registered by NodeClassification"):
        register_task(Other)
    assert TASKS["node"] is NodeClassification


def test_a_registered_task_is_listed_and_its_options_are_chosen_by_task(extra_task, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "echo-test" in out and "Echo: a stand-in task that trains nothing." in out
    assert "--batch-size B" in out and "--echo-level" not in out        # the options of --task node only
    with pytest.raises(SystemExit):
        main(["train", "--task", "echo-test", "--help"])
    out = capsys.readouterr().out
    assert "--echo-level" in out and "--batch-size B" not in out and "--runs" in out


def test_unknown_task_is_refused_in_one_line(capsys):
    assert main(["train", "--task", "nope", "--dataset", "karate", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gnn-scratch train: error: argument --task: invalid choice: 'nope' (choose from 'embedding', 'graph', "
                          "'hetero', 'inductive', 'node', 'temporal'")
    assert "\n" not in err


# ================================================================================== --help
def test_train_help_lists_every_model_and_task_with_the_options_and_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, cls in MODELS.items():
        assert f"  {name}  " in out or f"  {name} " in out, name
        assert summary_line(cls) in out, name
    for name, cls in TASKS.items():
        assert cls.summary_line() in out, name
    flat = " ".join(out.split())                                  # argparse wraps the help lines
    for key, (flags, _, _) in MODEL_OPTIONS.items():
        assert flags[0] in out, key
        takes = {n: c.model_defaults[key] for n, c in MODELS.items() if key in c.model_defaults}
        assert ", ".join(f"{n} {v}" for n, v in takes.items()) in flat, key
    assert "only gat, han, gt, gps; default: gat 8, han 8, gt 8, gps 4" in flat and "only sage; default: sage mean" in flat
    assert "gcn 200, gat 1000, sage 200" in flat                  # --epochs per model
    assert "gcn 100, gat 100, sage None" in flat                  # --patience per model
    for option in ("--task", "--model", "--lr", "--weight-decay", "--epochs", "--patience", "--fanout", "--device"):
        assert option in out, option


# ================================================================================= model defaults
def test_models_carry_the_papers_defaults():
    assert {"gcn": GCN, "gat": GAT, "sage": SAGE}.items() <= MODELS.items()
    assert GCN.model_defaults == dict(hidden_channels=16, dropout=0.5)
    assert GCN.train_defaults == dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=100)
    assert GAT.model_defaults == dict(hidden_channels=8, heads=8, dropout=0.6)
    assert GAT.train_defaults == dict(lr=0.005, weight_decay=5e-4, epochs=1000, patience=100)
    assert SAGE.model_defaults == dict(hidden_channels=64, dropout=0.5, aggr="mean")
    assert SAGE.train_defaults == dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=None)
    for name, cls in {"gcn": GCN, "gat": GAT, "sage": SAGE}.items():
        assert cls.devices == ("cpu", "cuda"), name
        assert dict(DEFAULTS[name]) == {**cls.model_defaults, **cls.train_defaults}   # the old table, derived


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_defaults_agree_with_the_constructor_and_the_task(name):
    cls = MODELS[name]
    params = inspect.signature(cls.__init__).parameters
    for key, value in cls.model_defaults.items():        # a default in two places must be one value
        assert params[key].default == value, (name, key)
        assert key in MODEL_OPTIONS, f"{name}.model_defaults[{key!r}] has no command-line option in cli.MODEL_OPTIONS"
    task = GraphClassification if getattr(cls, "graph_level", False) else NodeClassification
    assert set(cls.train_defaults) <= set(task.defaults), name


@pytest.mark.parametrize("name", sorted(n for n in MODELS if home_task(n) == "node"))
def test_the_trainer_uses_each_model_class_defaults(name, data):
    cls = MODELS[name]
    model, opt, hp = build_for(name, data, 0, {})
    assert hp == {**cls.model_defaults, **cls.train_defaults}
    for key, value in cls.model_defaults.items():
        assert model.config[key] == value, key
    assert {g["lr"] for g in opt.groups} == {cls.train_defaults["lr"]}
    assert max(g["weight_decay"] for g in opt.groups) == cls.train_defaults["weight_decay"]
    summary, _ = run(name, data, epochs=2, hidden_channels=4)   # an override wins, the rest stays
    assert summary["hparams"] == {**cls.model_defaults, **cls.train_defaults, "epochs": 2, "hidden_channels": 4}


def test_cli_options_reach_the_model(capsys):
    assert main(["train", "--model", "gat", "--dataset", "karate", "--heads", "2", "--hidden", "3", "--dropout",
                 "0.1", "--epochs", "2", "--lr", "0.1", "--quiet", "--json"]) == 0
    hp = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hparams"]
    assert hp == dict(hidden_channels=3, heads=2, dropout=0.1, lr=0.1, weight_decay=5e-4, epochs=2, patience=100)


def test_device_support_and_minibatch_support_come_from_the_model_class(data, monkeypatch):
    monkeypatch.setattr(GCN, "devices", ("cpu",))
    with pytest.raises(ValueError, match=r"model 'gcn' cannot train on 'cuda'.* supports: gat, sage"):
        run("gcn", data, device="cuda", epochs=1)            # refused before anything touches a GPU
    with pytest.raises(ValueError, match="needs a model that takes sampled blocks"):
        run("gat", data, batch_size=8, epochs=1)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        run("nope", data)


def test_register_refuses_a_default_the_constructor_does_not_take():
    class Broken:
        name = "broken-test"
        devices = ("cpu",)
        model_defaults = dict(width=3)
        train_defaults = {}

        def __init__(self, in_channels, out_channels, seed=0):
            pass
    with pytest.raises(TypeError, match=r"model_defaults names \['width'\]"):
        register(Broken)
    assert "broken-test" not in MODELS


# =========================================================================================== floors
def _imports(path):
    """The gnn_scratch modules a file imports (relative imports resolved one package up at most)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_shared_loop_and_minibatch_import_no_task():
    loop = _imports(os.path.join(ROOT, "gnn_scratch", "loop.py"))
    minibatch = _imports(os.path.join(ROOT, "gnn_scratch", "minibatch.py"))
    assert not {m for m in loop if "task" in m or "minibatch" in m or m.endswith("train")}, loop
    assert not {m for m in minibatch if "task" in m or m.endswith("train")}, minibatch


@pytest.mark.parametrize("module", ["gnn_scratch.loop", "gnn_scratch.minibatch", "gnn_scratch.tasks.node",
                                    "gnn_scratch.tasks", "gnn_scratch.train", "gnn_scratch.cli"])
def test_each_floor_imports_first_in_a_fresh_interpreter(module):
    """No circle at import time either: whichever module a program imports first, the import completes."""
    code = f"import {module}, gnn_scratch.train as t; assert t.run and t.fit and t.BestEpoch"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
