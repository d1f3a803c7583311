"""The benchmark's code (not its numbers): statistics, the bytes-moved bound, the report, a tiny smoke run."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from numba import get_num_threads

from gnn_scratch.bench import report
from gnn_scratch.kernels import cpu
from gnn_scratch.bench.harness import Shape, bytes_moved, interleave, summarize
from gnn_scratch.bench.scaling import loglog_slope
from gnn_scratch.graph import Graph

REPO = Path(__file__).resolve().parents[1]


def _run_bench(out, *args, timeout=600):
    """``scripts/bench.py *args --out out`` in a child process from this checkout: asserts it exits 0 and
    returns the JSON it wrote."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), *args, "--out", str(out)],
                       env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(out.read_text())


def test_summarize_median_min_max_of_known_lists():
    s = summarize([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    s = summarize([4.0, 1.0, 3.0, 2.0])            # even count: mean of the two middle values
    assert (s["median"], s["min"], s["max"]) == (2.5, 1.0, 4.0)
    assert summarize([0.5])["median"] == 0.5
    with pytest.raises(ValueError, match="no timings"):
        summarize([])


def test_interleave_times_every_function_each_round_in_alternating_order():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    res = interleave(fns, repeats=3, warmup=1)
    assert calls == ["a", "b",            # warm-up
                     "a", "b", "b", "a", "a", "b"]
    assert res["a"]["n"] == res["b"]["n"] == 3


def test_interleave_settles_each_timed_call_with_untimed_calls_of_the_same_function():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    res = interleave(fns, repeats=2, warmup=1, settle=0.002)
    rounds = calls[2:]                                       # after the warm-up
    timed_a = [i for i in range(1, len(rounds)) if rounds[i] == "a" and rounds[i - 1] == "a"]
    assert res["a"]["settled"] == res["b"]["settled"] == res["a"]["n"] == 2
    assert rounds.count("a") > 4 and rounds.count("b") > 4  # settle calls besides the 2 timed ones each
    assert rounds[0] == "a" and timed_a                      # "a" settles first, then its timed call


def test_interleave_settles_no_call_of_a_round_with_a_slow_function(monkeypatch):
    from gnn_scratch.bench import harness
    calls = []

    def slow():
        calls.append("slow")
        time.sleep(0.02)
    fns = {"fast": lambda: calls.append("fast"), "slow": slow}
    monkeypatch.setattr(harness, "SETTLE_MAX_S", 0.01)       # "slow" is too long to be settled ...
    res = interleave(fns, repeats=2, warmup=1, settle=0.005)
    assert calls == ["fast", "slow", "fast", "slow", "slow", "fast"]   # ... and so is "fast": timed alike
    assert res["fast"]["settled"] == res["slow"]["settled"] == 0


def test_the_report_says_which_groups_were_settled():
    def group(settled):
        return {k: dict(median=1.0, min=1.0, max=1.0, n=3, times=[1.0] * 3, settled=settled)
                for k in ("ours", "pyg:csr")}
    rows = [dict(settle_s=0.03, settle_max_s=0.4, train=group(3), infer=group(3)),
            dict(settle_s=0.03, settle_max_s=0.4, train=group(0), infer=group(3)),
            dict(error="not available yet")]
    text = report._settled(rows, ("train", "infer"))
    assert "In 3 of the 4 groups" in text and "at most 0.4 s" in text and "30 ms" in text
    assert "earlier runs" not in text
    old = dict(train={k: {kk: vv for kk, vv in v.items() if kk != "settled"} for k, v in group(3).items()})
    assert "(1 groups from earlier runs do not record it)" in report._settled(rows + [old], ("train", "infer"))
    none = report._settled([dict(settle_s=0.03, settle_max_s=0.4, train=group(0))], ("train",))
    assert "alternated call by call" in none and "Not every timed call below was settled" in none and "over 0.4 s" in none
    no_pyg = [dict(settle_s=0.03, settle_max_s=0.4, train={"ours": group(3)["ours"]})]
    assert report._settled(no_pyg, ("train",)) == ""


def test_inference_groups_get_at_least_five_rounds_and_the_report_says_how_many():
    from gnn_scratch.bench.models import INFER_MIN_REPEATS, phase_repeats
    assert INFER_MIN_REPEATS == 5
    assert phase_repeats("infer", 2) == 5 and phase_repeats("train", 2) == 2     # the 1M graph's plan
    assert phase_repeats("infer", 8) == 8 and phase_repeats("infer", 2, quick=True) == 2

    def group(n):
        return {k: dict(median=1.0, min=1.0, max=1.0, n=n, times=[1.0] * n) for k in ("ours", "pyg:csr")}
    rows = [dict(graph_label="random 1M", train=group(2), infer=group(5)),
            dict(graph_label="random 1M", train=group(2), infer=group(4)),     # a group cut short by max_time
            dict(graph_label="cora", train=group(15), infer=group(15)),
            dict(graph_label="cora", error="not available yet")]
    assert report._rounds(rows) == (" Timed rounds per group: random 1M 2 (training) / 4-5 (inference); "
                                    "cora 15 (training) / 15 (inference).")
    assert report._rounds([dict(graph_label="x", error="failed")]) == ""


def test_bytes_moved_on_a_tiny_known_graph():
    # 3 nodes, 4 edges: 0->1, 2->1, 1->0, 1->2 (rows = destinations: 0 <- 1; 1 <- 0, 2; 2 <- 1)
    g = Graph.from_edge_index(np.array([[0, 2, 1, 1], [1, 1, 0, 2]]), num_nodes=3)
    s = Shape(n_dst=g.num_dst, n_src=g.num_src, E=g.num_edges, F=8, itemsize=4)
    indptr, indices, weights = 4 * 8, 4 * 4, 4 * 4          # (N+1) int64, E int32, E float32
    gathered, written = 4 * 8 * 4, 3 * 8 * 4                 # E rows of 8 floats, N output rows
    assert bytes_moved("spmm_sum", s) == indptr + indices + weights + gathered + written == 288
    assert bytes_moved("spmm_mean", s) == 288 - weights
    assert bytes_moved("spmm_sum_perm", s) == 288 + 4 * 8     # plus t_perm, int64 per edge
    assert bytes_moved("spmm_max", s) == 288 - weights + 3 * 8 * 8   # plus the int64 argmax
    with pytest.raises(ValueError, match="no bytes-moved formula"):
        bytes_moved("nonsense", s)


def test_loglog_slope_recovers_a_power_law():
    e = np.array([1e5, 1e6, 1e7])
    assert loglog_slope(e, 3e-7 * e) == pytest.approx(1.0)
    assert loglog_slope(e, 1e-9 * e ** 1.2) == pytest.approx(1.2)
    assert loglog_slope([1e5], [1.0]) is None


def _fake_results():
    t = lambda m: dict(median=m, min=0.9 * m, max=1.2 * m, n=3, times=[m] * 3)  # noqa: E731
    return {
        "meta": {"machine": {"cpu": "Test CPU @ 1 GHz", "cores": 2, "threads": 2, "date": "2026-01-01 00:00",
                             "versions": {"numpy": "2.0", "torch": None}, "numba_threading_layer": "omp",
                             "loadavg": [1.0, 1.0, 1.0]},
                 "command": "gnn-scratch bench --quick", "mode": "quick", "parts": ["kernels", "models"], "wall_s": 60},
        "kernels": {"rows": [dict(graph="random 1M nodes / 10M edges", kernel="weighted-sum fwd", width=64,
                                  ours=t(0.5), scipy=t(2.0), copy=t(0.1), copy_bandwidth_gbs=10.0, bytes=4_000_000_000,
                                  bound_s=0.4, fraction_of_bound=0.8, speedup_vs_scipy=4.0)],
                    "gat_fused": True},
        "models": {"rows": [dict(model="gcn", graph="cora", graph_label="cora", train={"ours": t(0.002),
                                 "pyg:edge_index": t(0.006), "pyg:csr": t(0.005)},
                                 infer={"ours": t(0.001), "pyg:edge_index": t(0.0015)}, mirror={}),
                            dict(model="gat", graph="cora", graph_label="cora", error="not available yet")]},
        "scaling": {"rows": [dict(edges=10 ** k, nodes=10 ** (k - 1), train={"ours": t(1e-8 * 10 ** k)})
                             for k in (5, 6, 7)], "model": "gcn", "avg_degree": 10, "slope": 1.0, "pyg_slope": None},
    }


def test_report_writes_markdown_tables_and_keeps_hand_written_text(tmp_path):
    results = _fake_results()
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nHand-written intro.\n\n" + report.BEGIN + "\nold\n" + report.END + "\n\n## Notes\nmine\n")
    report.write_markdown(results, str(md), "bench.png")
    text = md.read_text()
    assert "Hand-written intro." in text and "## Notes\nmine" in text and "\nold\n" not in text
    assert "| model | graph | phase | ours ms |" in text
    assert "| cora | training step | 2 (1.8–2.4) | 5 (4.5–6) (csr) |" in text      # PyG best form = csr
    assert "| GCN training step on Cora ≤ 0.5× PyG | 2 ms vs 5 ms (csr) | 0.40× | **PASS** |" in text
    assert "| GCN inference on Cora ≤ 0.5× PyG | 1 ms vs 1.5 ms (edge_index) | 0.67× | **MISS** | 1.33× over the goal" in text
    assert "| weighted-sum fwd (width 64, 1M graph) ≥ 60 % of the bytes-moved bound | 80 %" in text
    assert "| GAT | cora | – | not available yet |" in text
    assert "Test CPU @ 1 GHz" in text and "gnn-scratch bench --quick" in text
    assert "Fitted log-log slope: gnn_scratch **1.000**" in text
    assert "![speed-ups and scaling](bench.png)" in text
    png = report.plot(results, str(tmp_path / "bench.png"))
    assert png and os.path.getsize(png) > 1000


def test_quick_tiny_kernels_smoke_run_writes_the_json(tmp_path):
    res = _run_bench(tmp_path / "r.json", "--quick", "--tiny", "--only", "kernels", timeout=120)
    assert set(res) == {"meta", "kernels"}
    assert res["meta"]["mode"] == "tiny" and res["meta"]["parts"] == ["kernels"]
    assert {"cpu", "cores", "threads", "date", "versions"} <= set(res["meta"]["machine"])
    rows = [r for r in res["kernels"]["rows"] if "error" not in r]
    kernels = {r["kernel"] for r in rows}
    assert {"weighted-sum fwd", "weighted-sum bwd", "mean fwd", "mean bwd", "max fwd", "max bwd", "SDDMM fwd",
            "SDDMM bwd", "edge softmax fwd", "edge softmax bwd"} <= kernels
    for r in rows:
        assert {"ours", "copy", "bytes", "bound_s", "fraction_of_bound", "copy_bandwidth_gbs"} <= set(r)
        assert r["ours"]["median"] > 0 and r["bytes"] > 0
    assert next(r for r in rows if r["kernel"] == "weighted-sum fwd")["scipy"]["median"] > 0
    assert (tmp_path / "r.md").exists()


def test_graphs_option_replaces_only_those_rows_and_lists_the_runs(tmp_path, monkeypatch):
    from gnn_scratch.bench import suite
    from gnn_scratch.bench.harness import GraphSpec
    old_rows = [dict(model="gcn", graph=g, v="old") for g in ("cora", "citeseer", "random-1M")]
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"meta": {"command": "gnn-scratch bench", "parts": list(suite.PARTS), "wall_s": 60.0,
                                        "machine": {"date": "2026-01-01 00:00"}},
                               "models": {"rows": old_rows}}))
    plans = dict(models=dict(specs=[GraphSpec("cora", "planetoid"), GraphSpec("citeseer", "planetoid"),
                                    GraphSpec("random-1M", "random", 10, 20)]),
                 memory=dict(specs=[], forms=()), kernels=dict(specs=[]))
    monkeypatch.setattr(suite, "plan", lambda mode: plans)
    monkeypatch.setattr(suite, "_planetoid_dir", lambda args: "/nowhere")
    monkeypatch.setattr(suite, "_write_report", lambda *a: None)
    seen = []

    def fake_models(specs, **kw):
        seen.append([s.name for s in specs])
        return dict(rows=[dict(model="gcn", graph=s.name, v="new") for s in specs], pyg=False)
    import gnn_scratch.bench.models as bm
    monkeypatch.setattr(bm, "run", fake_models)
    suite.main(["--only", "models", "--graphs", "citeseer", "--out", str(out), "--no-pyg"])
    res = json.loads(out.read_text())
    assert seen == [["citeseer"]]
    assert [(r["graph"], r["v"]) for r in res["models"]["rows"]] == [("cora", "old"), ("citeseer", "new"),
                                                                    ("random-1M", "old")]
    runs = res["meta"]["runs"]
    assert [r["graphs"] for r in runs] == [None, ["citeseer"]] and runs[0]["date"] == "2026-01-01 00:00"
    assert "The numbers below come from these runs" in report.render(res)
    with pytest.raises(ValueError, match="unknown graph"):
        suite.main(["--only", "models", "--graphs", "pubmed", "--out", str(out), "--no-pyg"])
    with pytest.raises(ValueError, match="parts models, memory only"):
        suite.main(["--only", "kernels", "--graphs", "cora", "--out", str(out), "--no-pyg"])


# ----------------------------------------------------------------------------------- graphs (GIN epochs)


def test_draw_batches_is_train_folds_draw_fixed_by_the_seed():
    from gnn_scratch.bench.graphs import digest, draw_batches
    b = draw_batches(10, iters=3, batch_size=4, seed=7)
    rng = np.random.default_rng(7)                      # tasks/graph.py: train_fold's draw, batch after batch
    assert np.array_equal(b, np.stack([rng.permutation(10)[:4] for _ in range(3)]))
    assert b.dtype == np.int64 and all(np.unique(row).size == 4 for row in b)
    assert draw_batches(3, iters=2, batch_size=32).shape == (2, 3)     # B = min(batch_size, num_graphs)
    assert digest(b) == digest(draw_batches(10, 3, 4, seed=7)) != digest(draw_batches(10, 3, 4, seed=8))


def test_synthetic_dataset_is_a_valid_undirected_tu_dataset():
    from gnn_scratch.bench.graphs import synthetic_tu
    d = synthetic_tu(12, seed=3)
    assert d.num_graphs == 12 and set(np.unique(d.y)) == {0, 1} and d.num_features == 3
    for k, ei in enumerate(d.edge_index):
        n = int(d.num_nodes[k])
        key = ei[0] * n + ei[1]
        assert np.array_equal(np.sort(key), key) and np.unique(key).size == key.size   # sorted, no repeats
        assert np.array_equal(np.sort(ei[1] * n + ei[0]), key)                         # both directions
        assert not np.any(ei[0] == ei[1]) and (ei.size == 0 or ei.max() < n)
    whole, x, y = d.batch()
    assert whole.num_graphs == 12 and x.shape == (int(d.num_nodes.sum()), 3) and np.all(x.sum(1) == 1)


def _sorted_edges(ei):
    ei = np.asarray(ei)
    return ei[:, np.lexsort((ei[0], ei[1]))]


@pytest.mark.oracle
def test_pyg_cuts_equal_graphbatch_select():
    """Both PyG ways of cutting a mini-batch give what GraphBatch.select gives: the same nodes, edges, batch."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from gnn_scratch.bench.graphs import DatasetSpec, OursEpochSide, PyGEpochSide, draw_batches
    cfg = dict(graph=DatasetSpec("synthetic", "synthetic", num_graphs=30, seed=1).__dict__, threads=1)
    ours, pyg = OursEpochSide(cfg), PyGEpochSide(cfg)
    for ids in draw_batches(30, iters=3, batch_size=9, seed=2):
        sub, nodes = ours.whole.select(ids)
        for x, ei, batch, y, B in (pyg.cut_index(torch.from_numpy(ids)), pyg.cut_from_data_list(ids.tolist())):
            assert B == 9
            assert np.array_equal(x.numpy(), ours.x[nodes]) and np.array_equal(y.numpy(), ours.y[ids])
            assert np.array_equal(batch.numpy(), sub.batch)
            assert np.array_equal(_sorted_edges(ei.numpy()), _sorted_edges(sub.edge_index()))


@pytest.mark.oracle
def test_pyg_gin_with_our_weights_gives_our_scores_and_every_weight_is_placed():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from gnn_scratch.bench.graphs import MODEL, build_pyg_gin, load_gin_weights, synthetic_tu
    from gnn_scratch.models import build_model
    d = synthetic_tu(16, seed=4)
    whole, x, _ = d.batch()
    ours = build_model("gin", in_channels=d.num_features, out_channels=d.num_classes, seed=5, **MODEL)
    ours.eval()
    expected = np.asarray(ours.forward(x, whole))
    state = ours.state_dict()
    net = load_gin_weights(build_pyg_gin(ours.config), state).eval()
    with torch.no_grad():
        got = net(torch.from_numpy(x), torch.from_numpy(whole.edge_index()), torch.from_numpy(whole.batch), 16).numpy()
    assert got.shape == expected.shape == (16, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    with pytest.raises(KeyError, match="does not place"):
        load_gin_weights(build_pyg_gin(ours.config), dict(state, extra=np.zeros(1, np.float32)))
    with pytest.raises(ValueError, match="sum readouts only"):
        build_pyg_gin(dict(ours.config, readout="mean"))


def test_graphs_report_table_and_target():
    t = lambda m: dict(median=m, min=0.9 * m, max=1.2 * m, n=3, times=[m] * 3)  # noqa: E731
    row = dict(model="gin", dataset="proteins", dataset_label="PROTEINS", iters=50, batch_size=32,
               epoch={"ours": t(0.3), "pyg:index": t(0.8), "pyg:from_data_list": t(1.0)},
               mirror={"index": dict(max_abs_diff=1e-3, max_rel_diff=1e-7),
                       "from_data_list": dict(max_abs_diff=1e-3, max_rel_diff=2e-7)})
    text = report.render({"meta": {}, "graphs": {"rows": [row]}})
    assert "## Graph classification: one GIN training epoch" in text
    assert ("| GIN | PROTEINS | 50 × 32 graphs | 300 (270–360) | 800 (720–960) (index) | "
            "from_data_list 1000 (900–1200) | 2.7× | 0.37 | 2.0e-07 |") in text
    assert "| GIN training epoch on PROTEINS ≤ 0.5× PyG | 300 ms vs 800 ms (index) | 0.37× | **PASS** |" in text
    row["epoch"]["ours"] = t(0.6)
    assert "| 0.75× | **MISS** | 1.50× over the goal" in report.render({"meta": {}, "graphs": {"rows": [row]}})
    empty = report.render({"meta": {}})
    assert "| GIN training epoch on PROTEINS ≤ 0.5× PyG | – | – | **not measured** |" in empty


def test_tiny_graphs_smoke_run_times_gin_epochs_beside_pyg(tmp_path):
    from gnn_scratch.bench.harness import torch_available
    res = _run_bench(tmp_path / "r.json", "--tiny", "--only", "graphs")
    assert set(res) == {"meta", "graphs"} and res["meta"]["parts"] == ["graphs"]
    (row,) = res["graphs"]["rows"]
    assert "error" not in row, row.get("error")
    assert row["dataset"] == "synthetic" and (row["iters"], row["batch_size"]) == (3, 8)
    assert row["config"]["model"] == "gin" and row["config"]["num_layers"] == 5
    assert row["epoch"]["ours"]["n"] >= 1 and row["epoch"]["ours"]["median"] > 0
    if torch_available():
        assert "pyg_error" not in row, row.get("pyg_error")
        assert set(row["mirror"]) == {"index", "from_data_list"}
        for form, m in row["mirror"].items():
            assert "error" not in m and m["max_rel_diff"] <= 1e-4, (form, m)
            assert row["epoch"][f"pyg:{form}"]["median"] > 0
    assert "| GIN | synthetic, 40 graphs | 3 × 8 graphs |" in (tmp_path / "r.md").read_text()


# ----------------------------------------------------------------------------------- temporal (Los-loop epochs)


def test_synthetic_windows_are_shaped_like_los_loop():
    from gnn_scratch.bench.temporal import TemporalSpec, digest, load_signal, num_windows, synthetic_windows
    from gnn_scratch.data.temporal import tgcn_windows
    d = synthetic_windows(num_nodes=10, num_steps=80, seed=2)
    A = d.dense_adjacency()
    assert np.array_equal(A, A.T) and np.all(np.diag(A) == 1) and np.all((A >= 0) & (A <= 1))   # los_adj.csv's form
    assert d.train_size == 64 and d.signal.max() == 1 and d.train_x.dtype == np.float32
    x, y = tgcn_windows(d.signal[:64], 12, 3)
    assert np.array_equal(d.train_x, x) and np.array_equal(d.train_y, y) and d.train_x.shape == (49, 12, 10)
    assert d.graph().num_edges == A.astype(bool).sum()
    spec = TemporalSpec("synthetic", "synthetic", windows=20, num_nodes=10, num_steps=80, seed=2)
    assert num_windows(spec, load_signal(spec)) == 20 and num_windows(TemporalSpec(), d) == 49
    assert digest(d, 20) == digest(load_signal(spec), 20) != digest(d, 21)
    assert digest(d, 20) != digest(synthetic_windows(num_nodes=10, num_steps=80, seed=3), 20)


def test_temporal_batches_are_forecasting_runs_consecutive_windows():
    from gnn_scratch.bench.temporal import batch_ids
    b = batch_ids(1597, 32)
    assert len(b) == 50 and [len(ids) for ids in b[-2:]] == [32, 29]          # Los-loop: the last batch is shorter
    assert np.array_equal(np.concatenate(b), np.arange(1597))


@pytest.mark.parametrize("model, kw", [("tgcn", {}), ("gconv_gru", dict(K=2))])
def test_ours_epoch_is_the_temporal_tasks_epoch(model, kw):
    """One epoch of the benchmark's own loop trains the model to the same bits as ``Forecasting.run`` with epochs=1."""
    from gnn_scratch.bench.temporal import OursTemporalSide, TemporalSpec, synthetic_windows
    from gnn_scratch.tasks.temporal import Forecasting
    spec = TemporalSpec("synthetic", "synthetic", num_nodes=12, num_steps=80, seed=1)
    _, trained = Forecasting.run(model, synthetic_windows(12, 80, 1), seed=3, epochs=1, batch_size=8,
                                 hidden_channels=64, **kw)
    side = OursTemporalSide(dict(graph=spec.__dict__))
    model, epoch, _, batches = side.build(dict(model=model, hidden=64, lr=0.001, batch_size=8, seed=3))
    assert len(batches) == 7 and side.W == 49 and len(batches[-1]) == 1
    before = model.state_dict()
    epoch()
    after, expected = model.state_dict(), trained.state_dict()
    assert set(after) == set(expected)
    for k in expected:
        assert np.array_equal(after[k], expected[k]), k
    assert any(not np.array_equal(before[k], after[k]) for k in after)


@pytest.mark.oracle
def test_block_edges_are_the_graphbatch_of_copies():
    torch = pytest.importorskip("torch")
    from gnn_scratch.bench.temporal import block_edges, synthetic_windows
    from gnn_scratch.graph import GraphBatch
    d = synthetic_windows(num_nodes=9, num_steps=80, seed=4)
    ei, ew = block_edges(torch.from_numpy(d.edge_index), torch.from_numpy(d.edge_weight), 3, 9)
    gb = GraphBatch.from_graphs([d.graph()] * 3)
    ours = gb.edge_index()
    key = lambda e: np.lexsort((e[0], e[1]))   # noqa: E731
    assert np.array_equal(ei.numpy()[:, key(ei.numpy())], ours[:, key(ours)])
    assert np.array_equal(ew.numpy()[key(ei.numpy())], np.asarray(gb.edge_weight)[key(ours)])


@pytest.mark.oracle
@pytest.mark.parametrize("model", ["tgcn", "gconv_gru"])
def test_pyg_temporal_with_our_weights_gives_our_forward_and_training_step(tmp_path, model, pyg_temporal):
    from gnn_scratch.bench.temporal import (OursTemporalSide, PyGForecaster, PyGTemporalSide, TemporalSpec,
                                            load_weights)
    spec = TemporalSpec("synthetic", "synthetic", windows=20, num_nodes=12, num_steps=80, seed=5)
    cfg = dict(graph=spec.__dict__, threads=1)
    msg = dict(cmd="model", model=model, hidden=16, lr=0.01, batch_size=8, seed=2, dump=str(tmp_path / "d.npz"))
    info = OursTemporalSide(cfg).model(msg)
    assert (info["windows"], info["batches"], info["batch_nodes"]) == (20, 3, 8 * 12)
    got = PyGTemporalSide(cfg).model(msg)
    assert got["digest"] == info["digest"] and got["batches"] == 3
    assert got["max_rel_diff"] <= 1e-4 and got["step_rel_diff"] <= 1e-3, got
    with np.load(msg["dump"]) as f:
        state = {k: f[k] for k in f.files if not k.startswith("__")}
        assert not np.allclose(f["__out0__"], f["__out1__"])     # the checked step did change the output
    with pytest.raises(KeyError, match="does not place"):
        load_weights(PyGForecaster.build(model, 16, 3), model, dict(state, extra=np.zeros(1, np.float32)))


def test_temporal_report_table_and_target():
    t = lambda m, k=1.0: dict(median=m, min=0.9 * m, max=1.2 * m, n=3, times=[m, k * m, 1.2 * m])  # noqa: E731
    row = dict(model="tgcn", dataset="los_loop", dataset_label="Los-loop", windows=1597, batches=50, batch_size=32,
               epoch={"ours": t(3.0), "pyg": t(8.0, 0.9)}, mirror=dict(max_abs_diff=1e-7, max_rel_diff=2e-7,
                                                                        step_rel_diff=3e-6))
    text = report.render({"meta": {}, "temporal": {"rows": [row]}})
    assert "## Forecasting: one training epoch on Los-loop" in text
    assert ("| T-GCN | Los-loop | 1597 windows, 50 × ≤ 32 | 3000 (2700–3600) | 8000 (7200–9600) | 2.7× | "
            "0.38 | 0.38 (0.38–0.42) | 2.0e-07 / 3.0e-06 |") in text
    target = "| T-GCN training epoch on Los-loop ≤ 0.5× PyG Temporal | 3000 ms vs 8000 ms | 0.38× | **PASS** |"
    assert target in text
    row["epoch"]["ours"] = t(6.0)
    assert "| 0.75× | **MISS** | 1.50× over the goal" in report.render({"meta": {}, "temporal": {"rows": [row]}})
    empty = report.render({"meta": {}})
    assert "| T-GCN training epoch on Los-loop ≤ 0.5× PyG Temporal | – | – | **not measured** |" in empty
    failed = report.render({"meta": {}, "temporal": {"rows": [dict(model="tgcn", dataset="los_loop",
                                                                    dataset_label="Los-loop", error="boom")]}})
    assert "| T-GCN | Los-loop | – | boom |" in failed and "**not measured** | boom |" in failed


def test_tiny_temporal_smoke_run_times_epochs_beside_pyg_temporal(tmp_path):
    from gnn_scratch.bench.harness import torch_available
    res = _run_bench(tmp_path / "r.json", "--tiny", "--only", "temporal")
    assert set(res) == {"meta", "temporal"} and res["meta"]["parts"] == ["temporal"]
    rows = res["temporal"]["rows"]
    assert [r["model"] for r in rows] == ["tgcn", "gconv_gru"]
    for row in rows:
        assert "error" not in row, row.get("error")
        assert row["dataset"] == "synthetic" and (row["windows"], row["batches"], row["batch_size"]) == (20, 3, 8)
        assert (row["seq_len"], row["pre_len"], row["config"]["hidden_channels"]) == (12, 3, 64)
        assert row["epoch"]["ours"]["n"] >= 1 and row["epoch"]["ours"]["median"] > 0
        pyg_ok = torch_available() and res["temporal"]["pyg"]
        if pyg_ok:
            assert "pyg_error" not in row, row.get("pyg_error")
            assert row["mirror"]["max_rel_diff"] <= 1e-4 and row["epoch"]["pyg"]["median"] > 0
    md = (tmp_path / "r.md").read_text()
    assert "| T-GCN | synthetic, 24 nodes | 20 windows, 3 × ≤ 8 |" in md


# ----------------------------------------------------------------------------------- embeddings (node2vec vs PecanPy)


def test_embeddings_synthetic_graph_is_undirected_and_labelled_by_block():
    from gnn_scratch.bench.embeddings import synthetic_graph
    ei, labels = synthetic_graph(120, blocks=4, seed=3)
    key = set(zip(ei[0].tolist(), ei[1].tolist()))
    assert key == {(b, a) for a, b in key} and all(a != b for a, b in key) and len(key) == ei.shape[1]
    assert labels.shape == (120, 4) and (labels.sum(1) == 1).all()
    same = labels[ei[0]].argmax(1) == labels[ei[1]].argmax(1)
    assert same.mean() > 0.7                       # planted partition: most edges inside a block


def test_embeddings_peer_missing_is_a_stated_reason(tmp_path):
    from gnn_scratch.bench.embeddings import probe_peer
    versions, why = probe_peer(str(tmp_path / "no-such-python"))
    assert versions is None and "not found" in why and "GNN_SCRATCH_PEER_PYTHON" in why


def test_embeddings_peer_shim_adds_only_missing_aliases():
    import warnings

    from gnn_scratch.bench import embeddings_peer

    def present(k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hasattr(np, k)
    had = {k: present(k) for k in embeddings_peer.ALIASES}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = {k: getattr(np, k) for k, v in had.items() if v}
    try:
        added = embeddings_peer._alias_shim()
        assert set(added) == {k for k, v in had.items() if not v}
        for old, new in embeddings_peer.ALIASES.items():
            assert getattr(np, old) is (saved[old] if had[old] else getattr(np, new))
    finally:
        for k in added:
            delattr(np, k)
    assert {k: present(k) for k in embeddings_peer.ALIASES} == had


def test_embeddings_report_table_and_targets():
    t = lambda m: dict(median=m, min=0.9 * m, max=1.2 * m, n=3, times=[m] * 3)  # noqa: E731
    row = dict(dataset="blogcatalog", dataset_label="BlogCatalog", p=0.25, q=0.25, peer_mode="PreComp",
               walks={"ours": t(2.0), "peer": t(40.0)}, sgns={"ours": t(30.0), "peer": t(60.0)},
               pipeline={"ours": t(32.0), "peer": t(100.0)},
               f1={"ours": dict(macro_f1=0.230, repeats=3), "peer": dict(macro_f1=0.235, repeats=3)})
    res = {"meta": {}, "embeddings": {"rows": [row], "threads": 1}}
    text = report.render(res)
    assert "## Shallow embeddings: node2vec walks and skip-gram beside PecanPy + gensim" in text
    assert "| BlogCatalog | 0.25, 0.25 | walks (PreComp) | 2.00 s (1.80–2.40) | 40.00 s (36.00–48.00) | 0.05 |" in text
    assert "| 0.32 | 0.32 (0.32–0.32) | 0.2300 / 0.2350 (3 splits) |" in text
    assert ("| node2vec walks on BlogCatalog ≤ 1.0× PecanPy (p = 0.25, q = 0.25) | 2.00 s vs 40.00 s (PreComp) "
            "| 0.05× | **PASS** |") in text
    assert "Macro-F1 0.2300 vs 0.2350 | 0.32× | **PASS** |" in text
    row["f1"]["peer"]["macro_f1"] = 0.245                          # faster but 0.015 worse: not equal quality
    assert "| 0.32× | **MISS** | Macro-F1 differs by -0.0150 |" in report.render(res)
    del row["walks"]["peer"]
    res["embeddings"]["peer_skipped"] = "peer interpreter 'x' not found"
    assert "| **not measured** | peer interpreter 'x' not found |" in report.render(res)
    assert "| node2vec walks on BlogCatalog ≤ 1.0× PecanPy | – | – | **not measured** |" in report.render({"meta": {}})


def test_tiny_embeddings_smoke_run_times_ours_and_the_peer_when_installed(tmp_path):
    from gnn_scratch.bench.embeddings import peer_python, probe_peer
    res = _run_bench(tmp_path / "r.json", "--tiny", "--only", "embeddings")
    assert set(res) == {"meta", "embeddings"} and res["meta"]["parts"] == ["embeddings"]
    sec = res["embeddings"]
    (row,) = sec["rows"]
    assert "error" not in row, row.get("error")
    assert row["dataset"] == "synthetic" and (row["num_walks"], row["walk_length"], row["dim"]) == (2, 20, 16)
    assert row["ours_setup"]["walks"] == 2 * 200 and row["ours_setup"]["tokens"] <= 2 * 200 * 20
    for key in ("walks", "sgns", "pipeline"):
        assert row[key]["ours"]["n"] >= 1 and row[key]["ours"]["median"] > 0
    assert 0.0 <= row["f1"]["ours"]["macro_f1"] <= 1.0
    versions, why = probe_peer(peer_python())
    if versions is None:                                             # skipped, and the reason is written down
        assert sec["peer"] is None and sec["peer_skipped"] == why and "peer" not in row["walks"]
    else:
        assert "peer_error" not in row, row.get("peer_error")
        assert row["peer_mode"] == "FirstOrderUnweighted" and row["peer_setup"]["walk_steps"] == 19
        for key in ("walks", "sgns", "pipeline"):
            assert row[key]["peer"]["median"] > 0
        assert 0.0 <= row["f1"]["peer"]["macro_f1"] <= 1.0
    assert "| synthetic, 200 nodes | 1, 1 | walks" in (tmp_path / "r.md").read_text()


# ---------------------------------------------------------------- the random-gather ceiling (issue 19 item 3)
_FORMULA_KERNELS = ("spmm_sum", "spmm_sum_perm", "spmm_sum_t", "spmm_mean", "spmm_mean_backward", "spmm_max",
                    "spmm_max_backward", "sddmm_dot", "sddmm_dot_backward", "edge_softmax", "edge_softmax_backward",
                    "gat_forward", "gat_backward")


def test_gathered_bytes_is_the_row_part_of_bytes_moved():
    from gnn_scratch.bench.harness import gathered_bytes
    s = Shape(n_dst=1000, n_src=800, E=10_000, F=64, H=1)
    for k in _FORMULA_KERNELS:
        assert 0 <= gathered_bytes(k, s) < bytes_moved(k, s), k
    assert gathered_bytes("spmm_sum", s) == 10_000 * 64 * 4
    # the transpose, the mean's backward and max all gather one row per edge as well
    assert {gathered_bytes(k, s) for k in ("spmm_sum_perm", "spmm_sum_t", "spmm_mean_backward", "spmm_max")} == \
        {10_000 * 64 * 4}
    assert gathered_bytes("sddmm_dot_backward", s) == 2 * gathered_bytes("sddmm_dot", s)
    assert gathered_bytes("spmm_max_backward", s) == 0 and gathered_bytes("edge_softmax", s) == 0
    # bytes_moved minus the gathered rows no longer grows with E * F for the SpMMs: only index/values do
    big = Shape(n_dst=1000, n_src=800, E=10_000, F=256, H=1)
    assert bytes_moved("spmm_sum", big) - gathered_bytes("spmm_sum", big) - \
        (bytes_moved("spmm_sum", s) - gathered_bytes("spmm_sum", s)) == 1000 * (256 - 64) * 4   # the output only
    with pytest.raises(ValueError, match="no bytes-moved formula"):
        gathered_bytes("nope", s)


def test_gather_bandwidth_yardstick_sums_the_rows_it_says():
    from gnn_scratch.bench.kernels import GatherBandwidth
    g = GatherBandwidth(500, 8, 3000, seed=1)
    assert g.bytes == 3000 * 8 * 4 and g.idx.min() >= 0 and g.idx.max() < 500
    g.fn()
    np.testing.assert_allclose(g.out.sum(axis=0), g.X[g.idx].sum(axis=0), rtol=1e-4, atol=1e-3)
    assert g.bandwidth(dict(median=0.5)) == 2 * g.bytes


def test_kernel_rows_carry_the_gather_bound_and_the_report_shows_it():
    from gnn_scratch.bench import kernels
    from gnn_scratch.bench.harness import random_spec
    res = kernels.run([random_spec(2000, 20_000)], widths=(16,), repeats=2, warmup=1, copy_mb=8, min_time=0.0,
                      log=None)
    rows = [r for r in res["rows"] if "error" not in r]
    spmm = [r for r in rows if r["kernel"] in ("weighted-sum fwd", "mean fwd", "max bwd")]
    assert len(spmm) == 3
    for r in spmm:
        gbw, cbw = 1e9 * r["gather_bandwidth_gbs"], 1e9 * r["copy_bandwidth_gbs"]
        assert gbw > 0 and r["gather"]["median"] > 0
        expect = r["gathered_bytes"] / gbw + (r["bytes"] - r["gathered_bytes"]) / cbw
        assert r["gather_bound_s"] == pytest.approx(expect, rel=1e-12)
        assert r["fraction_of_gather_bound"] == pytest.approx(r["gather_bound_s"] / r["ours"]["median"], rel=1e-12)
    assert next(r for r in spmm if r["kernel"] == "max bwd")["gathered_bytes"] == 0
    assert all("gather_bound_s" not in r for r in rows if r["kernel"].startswith("edge softmax"))
    md = "\n".join(report._kernels_md(res))
    assert "Random row-gather bandwidth over the groups" in md
    wsum = next(r for r in rows if r["kernel"] == "weighted-sum fwd")
    assert f"| {100 * wsum['fraction_of_gather_bound']:.0f} % |" in md
    # a grad_X this small is gathered (row-parallel) on more than one thread: no scatter bound then
    mb = next(r for r in spmm if r["kernel"] == "max bwd")
    assert ("scatter_bound_s" in mb) == cpu.max_backward_scatters(np.empty((2000, 16), np.float32))


def test_max_bwd_where_it_scatters_carries_the_one_thread_and_every_thread_scatter_bounds():
    from gnn_scratch.bench import kernels
    from gnn_scratch.bench.harness import random_spec
    n, E = 20_000, 100_000
    assert cpu.max_backward_scatters(np.empty((n, 16), np.float32))     # 320k items: past L2, the scatter
    res = kernels.run([random_spec(n, E)], widths=(16,), repeats=2, warmup=1, copy_mb=8, min_time=0.0, log=None)
    rows = [r for r in res["rows"] if "error" not in r]
    mb = next(r for r in rows if r["kernel"] == "max bwd")
    # at width 16 a grad_X row is one line: per destination row, the distinct sources that won a column
    assert 0 < n // 2 < mb["updated_lines"] <= E
    assert mb["scatter_threads"] == 1 and mb["scatter"]["median"] > 0 and mb["scatter_ns_per_line"] > 0
    copy_s = mb["bytes"] / (1e9 * mb["copy_bandwidth_gbs"])
    assert mb["scatter_bound_s"] == pytest.approx(mb["updated_lines"] * 1e-9 * mb["scatter_ns_per_line"] + copy_s,
                                                  rel=1e-9)
    assert mb["fraction_of_scatter_bound"] == pytest.approx(mb["scatter_bound_s"] / mb["ours"]["median"], rel=1e-12)
    if get_num_threads() > 1:
        assert mb["scatter_all_threads"] == get_num_threads()
        assert mb["scatter_all_bound_s"] == pytest.approx(
            mb["updated_lines"] * 1e-9 * mb["scatter_all_ns_per_line"] + copy_s, rel=1e-9)
    else:
        assert "scatter_all_bound_s" not in mb
    assert all("scatter_bound_s" not in r for r in rows if r["kernel"] != "max bwd")
    md = "\n".join(report._kernels_md(res))
    assert "| gather / scatter bound ms | of that bound |" in md
    line = next(ln for ln in md.splitlines() if "| max bwd | 16 |" in ln)
    assert line.endswith(f"| {report.ms(mb['scatter_bound_s'])} (scatter, 1 thread) | "
                         f"{100 * mb['fraction_of_scatter_bound']:.0f} % |")
    assert "*Scatter bound*" in md and f"width 16: {mb['scatter_ns_per_line']:.1f}" in md
    if get_num_threads() > 1:
        assert (f"width 16: {mb['scatter_ns_per_line']:.1f} / {mb['scatter_all_ns_per_line']:.1f} "
                f"({get_num_threads()} threads), {100 * mb['fraction_of_scatter_all_bound']:.0f} %") in md


def test_updated_lines_counts_each_rows_distinct_grad_x_lines():
    from gnn_scratch.bench.kernels import updated_lines
    # float32, width 32: two lines a row. Row 0: node 5 wins every column -> lines (5, 0) and (5, 1);
    # row 1: nodes 2 and 3 in the first line, nothing (-1) in the second -> 2; row 2: empty -> 0
    a = np.full((3, 32), -1, dtype=np.int64)
    a[0] = 5
    a[1, :8], a[1, 8:16] = 2, 3
    assert updated_lines(a, 4) == 4
    assert updated_lines(a, 8) == 4 + 2     # float64: four lines a row, row 0 touching all four of node 5's
    # against a brute-force count on random argmax rows, several blocks
    rng = np.random.default_rng(3)
    for F, itemsize in ((48, 4), (8, 4), (20, 4), (12, 8)):    # rows of 3 lines, half a line, straddling lines
        a = rng.integers(-1, 40, size=(300, F))
        brute = sum(len({(int(j) * F + f) * itemsize // 64 for f, j in enumerate(row) if j >= 0}) for row in a)
        assert updated_lines(a, itemsize, block=64) == brute == updated_lines(a.astype(np.int32), itemsize), F
    two = np.array([[0] * 4 + [1] * 4], dtype=np.int64)     # width 8, float32: source rows 0 and 1 share a line
    assert updated_lines(two, 4) == 1


@pytest.mark.parametrize("threads, lines", [(1, 5000), (2, 5000), (3, 5000), (7, 5)])   # 3 and 7: uneven chunks
def test_scatter_yardstick_updates_the_lines_it_says_each_thread_in_its_own_rows(threads, lines):
    from gnn_scratch.bench.kernels import ScatterBandwidth
    s = ScatterBandwidth(1000, 64, lines, threads=threads, seed=2)
    assert s.n_chunks == threads and s.lines == lines == s.rows.size == s.cols.size
    assert s.rows.min() >= 0 and s.rows.max() < 1000 and set(np.unique(s.cols)) <= {0, 16, 32, 48}
    # scatter_lines' chunk c runs updates [M c / n, M (c + 1) / n): their rows are chunk c's slice of A's rows
    n, M = s.n_chunks, s.lines
    for c in range(n):
        rows = s.rows[M * c // n:M * (c + 1) // n]
        assert np.all(rows >= 1000 * c // n) and np.all(rows < 1000 * (c + 1) // n), c
    s.fn()
    expect = np.zeros((1000, 64), dtype=np.float32)
    np.add.at(expect, (s.rows, s.cols), 1)
    np.testing.assert_array_equal(s.A, expect)
    assert s.seconds_per_line(dict(median=0.5)) == 0.5 / lines


def test_kernel_targets_judge_max_bwd_at_30_percent_and_name_the_measured_bound():
    t = lambda m: dict(median=m, min=m, max=m, n=1, times=[m])  # noqa: E731
    base = dict(graph="random 1M nodes / 10M edges", width=64, scipy=None, copy=t(0.1), copy_bandwidth_gbs=10.0,
                bytes=10 ** 9, speedup_vs_scipy=None)
    rows = [dict(base, kernel="max bwd", ours=t(0.4), bound_s=0.1, fraction_of_bound=0.25, gathered_bytes=0,
                 gather_bound_s=0.1, fraction_of_gather_bound=0.25, scatter_bound_s=0.3, fraction_of_scatter_bound=0.75),
            dict(base, kernel="mean bwd", ours=t(0.2), bound_s=0.1, fraction_of_bound=0.5, gathered_bytes=10 ** 8,
                 gather_bound_s=0.18, fraction_of_gather_bound=0.9),
            dict(base, kernel="max fwd", ours=t(0.15), bound_s=0.1, fraction_of_bound=0.67, gathered_bytes=10 ** 8,
                 gather_bound_s=0.12, fraction_of_gather_bound=0.8)]
    got = {r["target"]: r for r in report.targets(dict(kernels=dict(rows=rows)))}
    mb = got["max bwd (width 64, 1M graph) ≥ 30 % of the bytes-moved bound"]
    assert mb["status"] == "MISS" and mb["note"] == \
        "5 points short; at 75 % of its scatter bound (300 ms, on one thread as it runs), measured in its group"
    mean = got["mean bwd (width 64, 1M graph) ≥ 60 % of the bytes-moved bound"]
    assert mean["status"] == "MISS" and mean["note"].endswith("at 90 % of its gather bound (180 ms), measured in its group")
    rows[0].update(scatter_all_bound_s=0.2, fraction_of_scatter_all_bound=0.5, scatter_all_threads=2)
    got = {r["target"]: r for r in report.targets(dict(kernels=dict(rows=rows)))}
    assert got["max bwd (width 64, 1M graph) ≥ 30 % of the bytes-moved bound"]["note"] == (
        "5 points short; at 75 % of its scatter bound (300 ms, on one thread as it runs; 50 % of the 2-thread one, "
        "200 ms), measured in its group")
    fwd = got["max fwd (width 64, 1M graph) ≥ 60 % of the bytes-moved bound"]
    assert fwd["status"] == "PASS" and fwd["note"] == ""
    rows[2].update(fraction_of_bound=0.59, gathered_bytes=0)     # no gathered rows: no measured ceiling to name
    got = {r["target"]: r for r in report.targets(dict(kernels=dict(rows=rows)))}
    assert got["max fwd (width 64, 1M graph) ≥ 60 % of the bytes-moved bound"]["note"] == "1 point short"
    rows[2].update(fraction_of_bound=0.598)
    got = {r["target"]: r for r in report.targets(dict(kernels=dict(rows=rows)))}
    assert got["max fwd (width 64, 1M graph) ≥ 60 % of the bytes-moved bound"]["note"] == "0.2 points short"
    rows[2].update(fraction_of_bound=0.59996)      # shown with the decimals that tell it from the goal
    fwd = {r["target"]: r for r in report.targets(dict(kernels=dict(rows=rows)))}[
        "max fwd (width 64, 1M graph) ≥ 60 % of the bytes-moved bound"]
    assert fwd["status"] == "MISS" and fwd["ratio"] == "59.996 %" and fwd["measured"].startswith("59.996 % (")
    assert fwd["note"].startswith("0.004 points short")
    assert report._pct(0.6, 0.6) == "60 %" and report._pct(0.61, 0.6) == "61 %" and report._pct(0.5996, 0.6) == "59.96 %"
    assert report._pct(0.5999999, 0.6) == "59.99999 %"
    rows[2].update(fraction_of_bound=0.5999999)
    fwd = {r["target"]: r for r in report.targets(dict(kernels=dict(rows=rows)))}[
        "max fwd (width 64, 1M graph) ≥ 60 % of the bytes-moved bound"]
    assert fwd["note"].startswith("0.00001 points short")


def test_kernels_table_without_gather_rows_keeps_its_old_columns():
    md = "\n".join(report._kernels_md(_fake_results()["kernels"]))
    assert "| bound ms | of bound |\n" in md and "gather bound" not in md


def test_openblas_corename_follows_openblas_coretype():
    """The recorded BLAS kernels are OpenBLAS's own answer, and OPENBLAS_CORETYPE changes it."""
    from gnn_scratch.threads import get_blas_threads, openblas_corename
    if get_blas_threads() is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS this process can query")
    core = openblas_corename()
    assert isinstance(core, str) and core
    code = "from gnn_scratch.threads import openblas_corename; print(openblas_corename())"
    env = dict(os.environ, OPENBLAS_CORETYPE="Nehalem")   # SSE4.2 kernels: any x86-64 CPU of the last 15 years
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    if os.uname().machine in ("x86_64", "AMD64"):
        assert got.stdout.strip() == "Nehalem"


def test_report_says_whether_the_blas_kernels_were_forced():
    assert report._blas(None) == "not recorded"
    assert report._blas(dict(openblas_core="Haswell", OPENBLAS_CORETYPE="Haswell")) == \
        "OpenBLAS Haswell (forced by OPENBLAS_CORETYPE=Haswell)"
    assert report._blas(dict(openblas_core="SkylakeX", OPENBLAS_CORETYPE=None)) == \
        "OpenBLAS SkylakeX (chosen by OpenBLAS for this CPU)"
    # OpenBLAS reads the name case-insensitively and ignores one it does not know
    assert report.blas_forced(dict(openblas_core="Haswell", OPENBLAS_CORETYPE="haswell"))
    assert not report.blas_forced(dict(openblas_core="SkylakeX", OPENBLAS_CORETYPE="foo"))
    assert report._blas(dict(openblas_core="SkylakeX", OPENBLAS_CORETYPE="foo")) == \
        "OpenBLAS SkylakeX (OPENBLAS_CORETYPE=foo set, not what OpenBLAS runs)"
    for env in (None, "Haswell"):   # no OpenBLAS found: neither forced nor chosen
        assert report._blas(dict(openblas_core=None, OPENBLAS_CORETYPE=env)) == \
            "unknown (not an OpenBLAS this process can query)"
        assert not report.blas_forced(dict(openblas_core=None, OPENBLAS_CORETYPE=env))


def test_measure_memory_bounds_script_runs_its_kernel_part_on_a_small_graph():
    """``scripts/measure_memory_bounds.py`` unpacks ``kernel_cases``' tuples: it must keep up with their shape."""
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "measure_memory_bounds.py"), "--part", "kernels",
                        "--nodes", "3000", "--edges", "15000", "--width", "16", "--repeats", "1"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "max bwd" in p.stdout and "weighted-sum fwd" in p.stdout


def test_op_times_counts_every_op_call_captures_inputs_and_restores_run():
    """``harness.op_times``: per-op seconds and calls, inputs copied as they were before the call, run restored."""
    from gnn_scratch import ops
    from gnn_scratch.bench.harness import op_times
    from gnn_scratch.kernels import registry
    from gnn_scratch.ops import dense
    real = registry.run
    Y, b = np.ones((3, 4), np.float32), np.arange(4, dtype=np.float32)
    captured = []
    with op_times(capture=captured) as (seconds, calls):
        ops.add_bias(Y, b)                     # in place: Y becomes 1 + b
        ops.add_bias(Y, b)
        ops.col_sum(Y)
    assert calls == {"add_bias": 2, "col_sum": 1}
    assert set(seconds) == {"add_bias", "col_sum"} and all(v > 0 for v in seconds.values())
    assert [c[0] for c in captured] == ["add_bias", "add_bias", "col_sum"]
    np.testing.assert_array_equal(captured[0][2][0], np.ones((3, 4)))          # Y as it was before the first call
    np.testing.assert_array_equal(captured[1][2][0], 1 + b[None, :].repeat(3, 0))
    assert captured[0][2][0] is not Y
    assert registry.run is real and dense.run is real
    with pytest.raises(ValueError):
        with op_times():
            raise ValueError("inside")
    assert registry.run is real and dense.run is real


def test_timed_adds_each_calls_seconds_under_its_key_exceptions_too():
    from gnn_scratch.bench.harness import timed
    acc = {}
    f = timed(acc, "sleep", lambda s: time.sleep(s) or s)
    assert f(0.01) == 0.01 and f(0.01) == 0.01
    assert 0.02 <= acc["sleep"] < 1.0
    boom = timed(acc, "boom", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        boom()
    assert acc["boom"] >= 0.0 and set(acc) == {"sleep", "boom"}
