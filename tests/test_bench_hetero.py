"""The "hetero" part of the benchmark (``bench/hetero.py``): its synthetic data, its digest, that its step is the
hetero task's, the PyG mirror check, the report and a ``--tiny`` smoke run (not its numbers)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gnn_scratch.bench import report
from gnn_scratch.bench.hetero import (MODELS, HeteroSpec, OursHeteroSide, digest, load_dataset, pyg_names,
                                      synthetic_dblp)

REPO = Path(__file__).resolve().parents[1]
TINY = HeteroSpec("synthetic", "synthetic", num_authors=40, seed=1)


def test_synthetic_dblp_has_dblps_schema_and_a_valid_split():
    from gnn_scratch.data.hetero import SPECS
    d = synthetic_dblp(num_authors=40, seed=1)
    spec = SPECS["dblp"]
    g = d.graph
    assert d.target == spec.target == "author" and d.num_classes == 4
    assert g.node_types == ["author", "paper", "term", "conference"]
    rels = [et for et, _, _ in spec.relations]
    assert g.edge_types == rels + [(b, "rev_" + n, a) for a, n, b in rels]
    assert d.metapaths == {k: list(v) for k, v in spec.metapaths.items()}
    assert sp.issparse(g.x_dict["author"]) and sp.issparse(g.x_dict["paper"])
    assert isinstance(g.x_dict["term"], np.ndarray) and g.x_dict["conference"] is None
    assert np.array_equal(np.bincount(d.y[d.train_idx], minlength=4), [5, 5, 5, 5])
    parts = np.concatenate([d.train_idx, d.val_idx, d.test_idx])
    assert np.array_equal(np.sort(parts), np.arange(40))                   # disjoint, and every author in one
    mp = d.metapath_graphs()
    assert list(mp) == ["APA", "APCPA", "APTPA"] and all(m.shape == (40, 40) for m in mp.values())
    assert mp["APCPA"].num_edges > mp["APA"].num_edges > 0                   # 4 conferences: dense, as DBLP's
    assert load_dataset(TINY).graph.num_edges == g.num_edges
    with pytest.raises(ValueError, match="num_authors must be at least 16"):
        synthetic_dblp(num_authors=10)


def _han_digest(d):
    return digest([d.graph.x_dict["author"].toarray()], [(m.edge_index(), None) for m in d.metapath_graphs().values()],
                  d.y, d.train_idx)


def test_digest_ignores_the_order_of_edges_and_nothing_else():
    d = synthetic_dblp(num_authors=40, seed=1)
    x = d.graph.x_dict["author"].toarray()
    ei = d.metapath_graphs()["APA"].edge_index()
    et = np.arange(ei.shape[1]) % 3
    base = digest([x], [(ei, et)], d.y, d.train_idx)
    perm = np.random.default_rng(0).permutation(ei.shape[1])
    assert digest([x], [(ei[:, perm], et[perm])], d.y, d.train_idx[::-1]) == base
    assert digest([x], [(ei, np.roll(et, 1))], d.y, d.train_idx) != base
    other = ei.copy()
    other[0, 0] = (other[0, 0] + 1) % 40
    assert digest([x], [(other, et)], d.y, d.train_idx) != base
    assert digest([x + 1], [(ei, et)], d.y, d.train_idx) != base
    assert digest([x], [(ei, et)], np.roll(d.y, 1), d.train_idx) != base
    assert _han_digest(d) == _han_digest(synthetic_dblp(num_authors=40, seed=1)) != _han_digest(
        synthetic_dblp(num_authors=40, seed=2))


@pytest.mark.parametrize("name", MODELS)
def test_ours_step_is_the_hetero_tasks_training_step(name):
    """One step of the benchmark trains the model to the same bits as the hetero task's one-epoch run."""
    from gnn_scratch.tasks.hetero import HeteroClassification
    _, trained = HeteroClassification.run(name, load_dataset(TINY), seed=3, epochs=1)
    side = OursHeteroSide(dict(graph=TINY.__dict__))
    model, _, step = side.build(name, seed=3)
    assert model.config == trained.config                                    # model_defaults, as the task's
    before = model.state_dict()
    loss = step()
    after, expected = model.state_dict(), trained.state_dict()
    assert set(after) == set(expected) and np.isfinite(loss) and loss > 0
    for k in expected:
        assert np.array_equal(after[k], expected[k]), k
    assert all(not np.array_equal(before[k], after[k]) for k in after if not k.startswith("input.emb_"))


def test_ours_side_dumps_the_check_and_times_its_own_dropout(tmp_path):
    side = OursHeteroSide(dict(graph=TINY.__dict__))
    info = side.model(dict(cmd="model", model="han", seed=0, dump=str(tmp_path / "d.npz")))
    assert info["config"]["dropout"] == 0.6 and info["config"]["heads"] == 8
    assert (info["target_nodes"], info["train_nodes"], info["classes"]) == (40, 20, 4)
    assert list(info["edges"]) == ["APA", "APCPA", "APTPA"]
    assert info["digest"] == _han_digest(load_dataset(TINY))
    with np.load(tmp_path / "d.npz") as f:
        assert f["__out0__"].shape == (40, 4) and not np.allclose(f["__out0__"], f["__out1__"])
        assert float(f["__loss0__"]) > 0
        init = {k: f[k] for k in f.files if not k.startswith("__")}
    fresh = side.build("han", seed=0)[0].state_dict()
    assert set(init) == set(fresh) and all(np.array_equal(init[k], fresh[k]) for k in fresh)   # the initial weights
    assert set(side.fns) == {"step"}
    side.drop()
    assert side.fns == {} and side.model_ is None


def test_every_parameter_of_ours_has_a_pyg_name():
    side = OursHeteroSide(dict(graph=TINY.__dict__))
    for name in MODELS:
        model = side.build(name)[0]
        names = {pyg_names(name, k)[0] for k in model.state_dict()}
        assert len(names) == len(model.state_dict())                    # one to one
    with pytest.raises(KeyError, match="no place in the PyG twin"):
        pyg_names("han", "conv.bogus")


@pytest.mark.oracle
@pytest.mark.parametrize("name", MODELS)
def test_pyg_twin_with_our_weights_gives_our_logits_loss_and_step(tmp_path, name):
    pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from gnn_scratch.bench.hetero import PyGHeteroSide, load_weights, setting
    from gnn_scratch.bench.pyg_hetero import TWINS
    cfg = dict(graph=TINY.__dict__, threads=1)
    msg = dict(cmd="model", model=name, seed=2, dump=str(tmp_path / "d.npz"))
    info = OursHeteroSide(cfg).model(msg)
    pyg = PyGHeteroSide(cfg)
    got = pyg.model(msg)
    assert got["digest"] == info["digest"]
    assert got["max_rel_diff"] <= 1e-4 and got["loss_rel_diff"] <= 1e-4 and got["step_rel_diff"] <= 1e-3, got
    assert ("beta_rel_diff" in got) == (name == "han") and got.get("beta_rel_diff", 0) <= 1e-3
    assert got["dropout"] == setting(name)[0]["dropout"] > 0 and set(pyg.fns) == {"step"}
    assert np.isfinite(pyg.fns["step"]())
    with np.load(msg["dump"]) as f:
        state = {k: f[k] for k in f.files if not k.startswith("__")}
        bad = {k: f[k] for k in f.files}
    net, _ = TWINS[name](load_dataset(TINY), dtype="float32", **setting(name)[0])
    with pytest.raises(KeyError, match="no place in the PyG twin"):
        load_weights(net, name, dict(state, extra=np.zeros(1, np.float32)))
    with pytest.raises(KeyError, match="ours does not fill"):
        load_weights(net, name, {k: v for k, v in list(state.items())[1:]})
    # the check fails when the twin computes something else: one weight off
    key = "lin.W" if name == "han" else "conv2.root"
    np.savez(msg["dump"], **dict(bad, **{key: bad[key] * 1.5}))
    with pytest.raises(ValueError, match="computes something else"):
        PyGHeteroSide(cfg).model(msg)
    moved = bad["__out0__"] + 2 * (bad["__out1__"] - bad["__out0__"])     # our step twice as far: another gradient
    np.savez(msg["dump"], **dict(bad, __out1__=moved))
    with pytest.raises(ValueError, match="a gradient differs"):
        PyGHeteroSide(cfg).model(msg)
    if name == "han":     # q or k_lin off: the logits hardly move at initialisation, β's scores do
        for key in ("conv.q", "conv.k_lin.W"):
            np.savez(msg["dump"], **dict(bad, **{key: bad[key] * 1.5}))
            with pytest.raises(ValueError, match="semantic attention differs"):
                PyGHeteroSide(cfg).model(msg)


def test_hetero_report_table_and_target():
    t = lambda m, k=1.0: dict(median=m, min=0.9 * m, max=1.2 * m, n=3, times=[m, k * m, 1.2 * m])  # noqa: E731
    row = dict(model="han", dataset="dblp", dataset_label="DBLP", target="author", target_nodes=4057,
               edges={"APA": 11113, "APCPA": 5000495, "APTPA": 7043571}, step={"ours": t(2.0), "pyg": t(10.0, 0.9)},
               mirror=dict(max_abs_diff=1e-7, max_rel_diff=2e-7, loss_rel_diff=0.0, step_rel_diff=3e-6,
                           beta_rel_diff=4e-7))
    rgcn = dict(model="rgcn", dataset="dblp", dataset_label="DBLP", nodes=26128, relations=6,
                edges={"relations": 239566}, step={"ours": t(0.1), "pyg": t(0.2)},
                mirror=dict(max_abs_diff=1e-7, max_rel_diff=2e-7, loss_rel_diff=0.0, step_rel_diff=3e-6))
    text = report.render({"meta": {}, "hetero": {"rows": [row, rgcn], "threads": 2}})
    assert "## Heterogeneous graphs: one HAN / RGCN training step on DBLP" in text and "2 thread(s)" in text
    assert ("| HAN | DBLP | 4057 authors; APA 11.1k, APCPA 5M, APTPA 7.04M edges | 2000 (1800–2400) | "
            "10000 (9000–12000) | 5.0× | 0.20 | 0.20 (0.20–0.22) | 2.0e-07 / 0.0e+00 / 3.0e-06; β 4.0e-07 |"
            ) in text
    assert ("| RGCN | DBLP | 26128 nodes, 6 relations, 240k edges | 100 (90–120) | 200 (180–240) | 2.0× | 0.50 | "
            "0.50 (0.50–0.50) | 2.0e-07 / 0.0e+00 / 3.0e-06 |") in text
    assert "| HAN training step on DBLP ≤ 0.5× PyG | 2000 ms vs 10000 ms | 0.20× | **PASS** |" in text
    row["step"]["ours"] = t(7.0)
    assert "| 0.70× | **MISS** | 1.40× over the goal" in report.render({"meta": {}, "hetero": {"rows": [row]}})
    assert "| HAN training step on DBLP ≤ 0.5× PyG | – | – | **not measured** |" in report.render({"meta": {}})
    failed = report.render({"meta": {}, "hetero": {"rows": [dict(model="han", dataset="dblp", dataset_label="DBLP",
                                                                  error="boom")]}})
    assert "| HAN | DBLP | – | boom |" in failed and "**not measured** | boom |" in failed
    no_pyg = dict(row, step={"ours": t(2.0)}, pyg_error="the PyG server died")
    del no_pyg["mirror"]
    text = report.render({"meta": {}, "hetero": {"rows": [no_pyg]}})
    assert "| – | – | – | – | failed: the PyG server died |" in text
    assert "**not measured** | the PyG server died" in text


def test_tiny_hetero_smoke_run_keeps_the_other_parts(tmp_path):
    """``--tiny --only hetero`` into a results file that holds another part: both sections end up in the report."""
    from gnn_scratch.bench.harness import torch_available
    out = tmp_path / "r.json"
    t = dict(median=3.0, min=2.7, max=3.6, n=3, times=[3.0, 2.7, 3.6])
    other = dict(rows=[dict(model="tgcn", dataset="los_loop", dataset_label="Los-loop", windows=1597, batches=50,
                            batch_size=32, epoch={"ours": t, "pyg": t})])
    runs = [dict(command="gnn-scratch bench --only temporal", parts=["temporal"])]
    out.write_text(json.dumps({"meta": {"runs": runs}, "temporal": other}))
    env = dict(os.environ, PYTHONPATH=str(REPO), NUMBA_NUM_THREADS="1")    # a loaded machine stalls 2-thread torch
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--tiny", "--only", "hetero",
                        "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert set(res) == {"meta", "temporal", "hetero"} and res["temporal"] == other
    assert [r["parts"] for r in res["meta"]["runs"]] == [["temporal"], ["hetero"]]
    rows = res["hetero"]["rows"]
    assert [r["model"] for r in rows] == ["han", "rgcn"] and res["hetero"]["threads"] == 1
    pyg_ok = torch_available() and res["hetero"]["pyg"]
    for row in rows:
        assert "error" not in row, row.get("error")
        assert row["dataset"] == "synthetic" and row["target_nodes"] == 60 and row["train_nodes"] == 20
        assert row["step"]["ours"]["n"] == 2 and row["step"]["ours"]["median"] > 0
        if pyg_ok:
            assert "pyg_error" not in row, row.get("pyg_error")
            assert row["mirror"]["max_rel_diff"] <= 1e-4 and row["step"]["pyg"]["n"] == 2
    md = (tmp_path / "r.md").read_text()
    assert "| HAN | synthetic DBLP-like, 60 authors | 60 authors; APA " in md
    assert "| RGCN | synthetic DBLP-like, 60 authors | 214 nodes, 6 relations, " in md
    assert "## Forecasting: one training epoch on Los-loop" in md and "| T-GCN | Los-loop |" in md


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(num_blocks=2), dict(num_bases=3)])
def test_rgcn_twin_takes_our_decompositions(kw):
    """The RGCN twin with bases or blocks holds our weights and gives our logits (blocks: the hidden layer only)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from gnn_scratch.bench.hetero import load_weights
    from gnn_scratch.bench.pyg_hetero import rgcn_twin
    from gnn_scratch.models.hetero import RGCN
    d = load_dataset(TINY)
    ours = RGCN(out_channels=d.num_classes, seed=1, dropout=0.0, **RGCN.data_arguments(d), **kw)
    net, inputs = rgcn_twin(d, dropout=0.0, **kw)
    load_weights(net, "rgcn", ours.state_dict())
    ours.eval()
    net.eval()
    want = ours.forward(*RGCN.inputs(d))
    with torch.no_grad():
        got = net(*inputs).numpy()
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
