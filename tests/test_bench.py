"""The benchmark's code (not its numbers): statistics, the bytes-moved bound, the report, a tiny smoke run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnn_scratch.bench import report
from gnn_scratch.bench.harness import Shape, bytes_moved, interleave, summarize
from gnn_scratch.bench.scaling import loglog_slope
from gnn_scratch.graph import Graph

REPO = Path(__file__).resolve().parents[1]


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
    out = tmp_path / "r.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--tiny", "--only", "kernels",
                        "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(out.read_text())
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
