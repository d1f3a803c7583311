"""Temporal datasets (Chickenpox, PedalMe, England COVID, Los-loop), their splits, the forecasting
metrics and the non-learned baselines (gnn_scratch.data.temporal, gnn_scratch.analysis.forecast)."""
import importlib.util
import json
import math
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data_root
from gnn_scratch.analysis import forecast as F
from gnn_scratch.data import ChecksumError, DataNotFoundError
from gnn_scratch.data.temporal import (SHA256, TemporalSignal, WindowedSignal, load_chickenpox, load_england_covid,
                                       load_los_loop, load_pedalme, load_temporal, temporal_signal_split,
                                       tgcn_windows)

FILES = tuple(SHA256)


@pytest.fixture(scope="module")
def troot():
    """The shared data root holding temporal/ (skip when the temporal files are absent)."""
    root = shared_data_root()
    if not all((root / "temporal" / f).is_file() for f in FILES):
        pytest.skip(f"temporal dataset files not found under {root / 'temporal'} (set GNN_SCRATCH_DATA)")
    return root


def raw_json(root, name):
    return json.loads((root / "temporal" / name).read_text())


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $GNN_SCRATCH_DATA and an empty cache: only what a test passes as root (or downloads) is found."""
    monkeypatch.delenv("GNN_SCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


# =============================================================================== PyG Temporal's loaders
def test_chickenpox_sizes_and_alignment(troot):
    ds = load_chickenpox(troot)
    d = raw_json(troot, "chickenpox.json")
    FX = np.array(d["FX"])
    assert (ds.num_nodes, ds.signal.shape, ds.lags, ds.num_snapshots) == (20, (521, 20), 4, 517)
    assert ds.edge_index.shape == (2, 102) and ds.edge_index.dtype == np.int64
    np.testing.assert_array_equal(ds.edge_index, np.array(d["edges"]).T)
    np.testing.assert_array_equal(ds.edge_weight, np.ones(102, dtype=np.float32))
    assert ds.features.dtype == ds.targets.dtype == np.float32 and not ds.is_dynamic
    # snapshot t: features = FX[t:t+4].T, target = FX[t+4], checked against the file at several t
    for t in (0, 1, 250, 516):
        np.testing.assert_array_equal(ds.features[t], FX[t:t + 4].T.astype(np.float32))
        np.testing.assert_array_equal(ds.targets[t], FX[t + 4].astype(np.float32))
    assert ds.meta["node_ids"]["BUDAPEST"] == 4
    g = ds.graph()
    assert g.num_nodes == 20 and g.num_edges == 102


def test_chickenpox_float64_and_other_lags(troot):
    FX = np.array(raw_json(troot, "chickenpox.json")["FX"])
    ds = load_chickenpox(troot, lags=8, dtype=np.float64)
    assert ds.num_snapshots == 513 and ds.features.shape == (513, 20, 8)
    np.testing.assert_array_equal(ds.features[100], FX[100:108].T)
    np.testing.assert_array_equal(ds.targets[-1], FX[-1])
    one = load_chickenpox(troot, lags=1)
    assert one.num_snapshots == 520
    np.testing.assert_array_equal(one.features[:, :, 0], FX[:-1].astype(np.float32))


def test_pedalme(troot):
    ds = load_pedalme(troot)
    d = raw_json(troot, "pedalme_london.json")
    X = np.array(d["X"])
    assert (ds.num_nodes, ds.signal.shape, ds.lags, ds.num_snapshots) == (15, (35, 15), 4, 31)
    np.testing.assert_array_equal(ds.edge_index, np.array(d["edges"]).T)
    np.testing.assert_array_equal(ds.edge_weight, np.array(d["weights"]).astype(np.float32))
    np.testing.assert_array_equal(ds.features[30], X[30:34].T.astype(np.float32))
    np.testing.assert_array_equal(ds.targets[0], X[4].astype(np.float32))


def test_england_covid_is_a_dynamic_graph(troot):
    ds = load_england_covid(troot)
    d = raw_json(troot, "england_covid.json")
    y = np.array(d["y"], dtype=np.float64)
    z = (y - y.mean(axis=0)) / (y.std(axis=0) + 1e-10)
    assert (ds.num_nodes, ds.signal.shape, ds.lags, ds.num_snapshots) == (129, (61, 129), 8, 53)
    assert ds.is_dynamic and len(ds.edge_index) == len(ds.edge_weight) == 53
    for t in (0, 17, 52):
        ei, ew = ds.edges_at(t)
        # snapshot t carries the graph of day t (PyG Temporal), not of day t + lags - 1
        np.testing.assert_array_equal(ei, np.array(d["edge_mapping"]["edge_index"][str(t)]).T)
        np.testing.assert_array_equal(ew, np.array(d["edge_mapping"]["edge_weight"][str(t)], dtype=np.float32))
        np.testing.assert_array_equal(ds.features[t], z[t:t + 8].T.astype(np.float32))
        np.testing.assert_array_equal(ds.targets[t], z[t + 8].astype(np.float32))
    assert ds.edges_at(0)[0].shape[1] != ds.edges_at(1)[0].shape[1]       # the graph really changes
    np.testing.assert_array_equal(ds.meta["raw"], np.array(d["y"]))
    back = ds.signal.astype(np.float64) * (ds.meta["std"] + 1e-10) + ds.meta["mean"]
    np.testing.assert_allclose(back, y, rtol=1e-6, atol=1e-3)
    assert ds.graph(5).num_edges == ds.edges_at(5)[0].shape[1]


def test_load_temporal_by_name(troot):
    assert load_temporal("Chickenpox", troot).num_snapshots == 517
    assert load_temporal("england-covid", troot, lags=4).num_snapshots == 57
    with pytest.raises(ValueError, match="unknown temporal dataset"):
        load_temporal("metr_la", troot)


def test_arrays_are_read_only(troot):
    ds = load_chickenpox(troot)
    with pytest.raises(ValueError):
        ds.features[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        ds.signal[0, 0] = 1.0
    train, _ = temporal_signal_split(ds, 0.5)
    with pytest.raises(ValueError):
        train.targets[0, 0] = 1.0


# =============================================================================== the split
@pytest.mark.parametrize("ratio, n_train", [(0.8, 413), (0.2, 103), (0.5, 258)])
def test_split_sizes_and_invariant(troot, ratio, n_train):
    ds = load_chickenpox(troot)
    train, test = temporal_signal_split(ds, ratio)
    assert n_train == int(ratio * 517)
    assert (train.num_snapshots, test.num_snapshots) == (n_train, 517 - n_train)
    assert (train.start, test.start) == (0, n_train)
    np.testing.assert_array_equal(np.concatenate([train.features, test.features]), ds.features)
    np.testing.assert_array_equal(np.concatenate([train.targets, test.targets]), ds.targets)
    for part in (train, test):
        for s in (0, part.num_snapshots - 1):
            np.testing.assert_array_equal(part.features[s], part.signal[s:s + 4].T)
            np.testing.assert_array_equal(part.targets[s], part.signal[s + 4])
    # the test part's first features are the last train targets: no gap, no overlap of targets
    np.testing.assert_array_equal(test.features[0][:, -1], train.targets[-1])


def test_split_of_a_dynamic_graph(troot):
    ds = load_england_covid(troot)
    train, test = temporal_signal_split(ds, 0.8)
    assert (train.num_snapshots, test.num_snapshots) == (42, 11)
    np.testing.assert_array_equal(test.edges_at(0)[0], ds.edges_at(42)[0])
    np.testing.assert_array_equal(test.edges_at(-1)[1], ds.edges_at(52)[1])


@pytest.mark.oracle
def test_equal_to_pyg_temporal_loaders(troot):
    """Every snapshot (x, edge_index, edge_attr, y) and the 0.2 split equal PyG Temporal's own loaders,
    fed the same file (their web read is bypassed: their logic is run on the shared file)."""
    pytest.importorskip("torch")
    mods = _pyg_temporal_loaders()
    cases = (("chickenpox", "ChickenpoxDatasetLoader", "chickenpox.json", load_chickenpox),
             ("pedalme", "PedalMeDatasetLoader", "pedalme_london.json", load_pedalme),
             ("encovid", "EnglandCovidDatasetLoader", "england_covid.json", load_england_covid))
    for mod, cls_name, fname, ours_loader in cases:
        cls = getattr(mods[mod], cls_name)
        loader = cls.__new__(cls)
        loader._dataset = raw_json(troot, fname)
        theirs = loader.get_dataset()
        ours = ours_loader(troot)
        assert theirs.snapshot_count == ours.num_snapshots
        _assert_same_snapshots(theirs, ours, fname)
        their_train, their_test = mods["signal"].temporal_signal_split(theirs, train_ratio=0.2)
        train, test = temporal_signal_split(ours, 0.2)
        _assert_same_snapshots(their_train, train, fname + " train")
        _assert_same_snapshots(their_test, test, fname + " test")


def _assert_same_snapshots(theirs, ours, what):
    n = 0
    for t, snap in enumerate(theirs):
        x, ei, ew, y = ours.snapshot(t)
        assert np.array_equal(snap.x.numpy(), x), f"{what}: x of snapshot {t}"
        assert np.array_equal(snap.y.numpy(), y), f"{what}: y of snapshot {t}"
        assert np.array_equal(snap.edge_index.numpy(), ei), f"{what}: edge_index of snapshot {t}"
        assert np.array_equal(snap.edge_attr.numpy(), ew), f"{what}: edge_weight of snapshot {t}"
        n += 1
    assert n == ours.num_snapshots


def _pyg_temporal_loaders():
    """PyG Temporal's signal package and three dataset loader modules, loaded from their files under a
    private package name: the package ``__init__`` imports torch_sparse, which the cells do not need
    (see gnn_scratch/bench/pyg_temporal.py)."""
    spec = importlib.util.find_spec("torch_geometric_temporal")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch_geometric_temporal is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    name = "_pyg_temporal_datasets"
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(root)]
        sys.modules[name] = pkg
        sspec = importlib.util.spec_from_file_location(f"{name}.signal", root / "signal" / "__init__.py",
                                                       submodule_search_locations=[str(root / "signal")])
        sig = importlib.util.module_from_spec(sspec)
        sys.modules[f"{name}.signal"] = sig
        sspec.loader.exec_module(sig)
        dpkg = types.ModuleType(f"{name}.dataset")
        dpkg.__path__ = [str(root / "dataset")]
        sys.modules[f"{name}.dataset"] = dpkg
        for f in ("chickenpox", "pedalme", "encovid"):
            s = importlib.util.spec_from_file_location(f"{name}.dataset.{f}", root / "dataset" / f"{f}.py")
            m = importlib.util.module_from_spec(s)
            sys.modules[f"{name}.dataset.{f}"] = m
            s.loader.exec_module(m)
    out = {f: sys.modules[f"{name}.dataset.{f}"] for f in ("chickenpox", "pedalme", "encovid")}
    out["signal"] = sys.modules[f"{name}.signal"]
    return out


# =============================================================================== Los-loop (T-GCN)
def _tgcn_preprocess(data, time_len, rate, seq_len, pre_len):
    """The list-building loops of T-GCN's input_data.preprocess_data, as the independent reference."""
    train_size = int(time_len * rate)
    train_data, test_data = data[0:train_size], data[train_size:time_len]
    trainX, trainY, testX, testY = [], [], [], []
    for i in range(len(train_data) - seq_len - pre_len):
        a = train_data[i: i + seq_len + pre_len]
        trainX.append(a[0: seq_len])
        trainY.append(a[seq_len: seq_len + pre_len])
    for i in range(len(test_data) - seq_len - pre_len):
        b = test_data[i: i + seq_len + pre_len]
        testX.append(b[0: seq_len])
        testY.append(b[seq_len: seq_len + pre_len])
    return np.array(trainX), np.array(trainY), np.array(testX), np.array(testY)


@pytest.fixture(scope="module")
def los_raw(troot):
    folder = troot / "temporal"
    speed = np.genfromtxt(folder / "los_speed.csv", delimiter=",", skip_header=1)
    ids = np.genfromtxt(folder / "los_speed.csv", delimiter=",", max_rows=1, dtype=np.int64)
    adj = np.genfromtxt(folder / "los_adj.csv", delimiter=",")
    return speed, ids, adj


@pytest.mark.parametrize("pre_len", [3, 12])
def test_los_loop_is_tgcn_protocol(troot, los_raw, pre_len):
    speed, ids, adj = los_raw
    ds = load_los_loop(troot, pre_len=pre_len)
    assert isinstance(ds, WindowedSignal)
    assert (ds.num_nodes, ds.raw.shape, ds.train_size) == (207, (2016, 207), 1612)
    np.testing.assert_array_equal(ds.node_ids, ids)
    data1 = speed.astype(np.float32)
    max_value = np.max(data1)
    assert ds.scale == float(max_value) == 70.0
    data1 = data1 / max_value
    np.testing.assert_array_equal(ds.signal, data1)
    trX, trY, teX, teY = _tgcn_preprocess(data1, 2016, 0.8, 12, pre_len)
    assert ds.train_x.shape == (1612 - 12 - pre_len, 12, 207) and ds.test_y.shape == (404 - 12 - pre_len, pre_len, 207)
    for ours, ref in ((ds.train_x, trX), (ds.train_y, trY), (ds.test_x, teX), (ds.test_y, teY)):
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, ref)
    # the adjacency: every non-zero of the file, A[i, j] as an edge j -> i with weight A[i, j]
    nz = adj != 0
    assert ds.edge_index.shape == (2, int(nz.sum())) == (2, 2833)
    np.testing.assert_array_equal(ds.dense_adjacency(), adj.astype(np.float32))
    np.testing.assert_array_equal(ds.edge_weight, adj[ds.edge_index[1], ds.edge_index[0]].astype(np.float32))
    assert ds.graph().num_edges == 2833


def test_tgcn_windows_by_hand():
    part = np.arange(12.0).reshape(6, 2)                   # steps 0..5 of 2 nodes
    x, y = tgcn_windows(part, 2, 1)                        # 6 - 2 - 1 = 3 windows, not 4 (T-GCN's bound)
    assert x.shape == (3, 2, 2) and y.shape == (3, 1, 2)
    np.testing.assert_array_equal(x[2], [[4, 5], [6, 7]])
    np.testing.assert_array_equal(y[2], [[8, 9]])
    with pytest.raises(ValueError, match="too few"):
        tgcn_windows(part, 4, 2)


# =============================================================================== errors
def test_checksum_failure_on_tampered_copy(troot, isolated):
    for fname, load in (("chickenpox.json", load_chickenpox), ("england_covid.json", load_england_covid)):
        bad = isolated / "bad"
        bad.mkdir(exist_ok=True)
        data = bytearray((troot / "temporal" / fname).read_bytes())
        data[len(data) // 2] ^= 0x01
        (bad / fname).write_bytes(bytes(data))
        with pytest.raises(ChecksumError, match=f"checksum mismatch for .*{fname}"):
            load(bad, download=False)
    los = isolated / "los"
    los.mkdir()
    shutil.copy(troot / "temporal" / "los_speed.csv", los / "los_speed.csv")
    (los / "los_adj.csv").write_bytes((troot / "temporal" / "los_adj.csv").read_bytes() + b"\n")
    with pytest.raises(ChecksumError, match="los_adj.csv"):
        load_los_loop(los, download=False)


def test_missing_file_says_where_it_looked(isolated):
    with pytest.raises(DataNotFoundError) as e:
        load_chickenpox(isolated / "nowhere", download=False)
    msg = str(e.value)
    assert "chickenpox.json" in msg and str(isolated / "nowhere") in msg and str(isolated / "cache") in msg
    with pytest.raises(DataNotFoundError, match="los_speed.csv"):
        load_los_loop(isolated / "nowhere", download=False)


def test_download_is_verified(troot, isolated):
    src = f"file://{troot / 'temporal'}"
    ds = load_pedalme(base_url=src)                        # nothing local: fetched into the cache, checked
    assert ds.num_snapshots == 31
    assert (isolated / "cache" / "gnn_scratch" / "temporal" / "pedalme_london.json").is_file()
    bad = isolated / "mirror"
    bad.mkdir()
    data = bytearray((troot / "temporal" / "chickenpox.json").read_bytes())
    data[1000] ^= 0x01
    (bad / "chickenpox.json").write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        load_chickenpox(base_url=f"file://{bad}")
    assert not (isolated / "cache" / "gnn_scratch" / "temporal" / "chickenpox.json").exists()


@pytest.mark.parametrize("lags, err", [(0, ValueError), (-1, ValueError), (521, ValueError), (600, ValueError),
                                       (True, TypeError), (2.0, TypeError), ("4", TypeError)])
def test_bad_lags(troot, lags, err):
    with pytest.raises(err, match="lags"):
        load_chickenpox(troot, lags=lags)


def test_bad_lags_other_loaders(troot):
    with pytest.raises(ValueError, match="lags"):
        load_pedalme(troot, lags=35)
    with pytest.raises(ValueError, match="lags"):
        load_england_covid(troot, lags=61)
    assert load_pedalme(troot, lags=34).num_snapshots == 1


@pytest.mark.parametrize("ratio, err", [(0.0, ValueError), (1.0, ValueError), (1.5, ValueError), (-0.2, ValueError),
                                        (float("nan"), ValueError), ("0.5", TypeError), (None, TypeError),
                                        (0.001, ValueError)])
def test_bad_train_ratio(troot, ratio, err):
    ds = load_chickenpox(troot)
    with pytest.raises(err, match="train_ratio"):
        temporal_signal_split(ds, ratio)


@pytest.mark.parametrize("kwargs, match", [
    (dict(seq_len=0), "seq_len"), (dict(pre_len=0), "pre_len"), (dict(seq_len=1.5), "seq_len"),
    (dict(seq_len=401, pre_len=3), "too few"), (dict(seq_len=12, pre_len=392), "too few"),
    (dict(train_rate=1.0), "train_rate"), (dict(train_rate=0), "train_rate"), (dict(train_rate=0.995), "too few"),
    (dict(dtype=np.int32), "dtype")])
def test_bad_los_loop_arguments(troot, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        load_los_loop(troot, **kwargs)


def test_longest_windows_that_fit(troot):
    ds = load_los_loop(troot, seq_len=389, pre_len=2)      # 404 - 389 - 2 = 13 test windows
    assert ds.test_x.shape == (13, 389, 207)
    ds = load_los_loop(troot, seq_len=400, pre_len=3)      # exactly one test window
    assert ds.test_x.shape[0] == 1


# =============================================================================== synthetic signals
def test_from_series_by_hand():
    series = np.array([[1, 10], [2, 20], [4, 40], [7, 70], [11, 110]], dtype=float)
    s = TemporalSignal.from_series(series, 2, np.array([[0, 1], [1, 0]]), name="toy", dtype=np.float64)
    assert s.num_snapshots == 3
    np.testing.assert_array_equal(s.features[0], [[1, 2], [10, 20]])
    np.testing.assert_array_equal(s.targets[0], [4, 40])
    np.testing.assert_array_equal(s.features[2], [[4, 7], [40, 70]])
    np.testing.assert_array_equal(s.targets[2], [11, 110])
    x, y = F.signal_windows(s)
    np.testing.assert_array_equal(x[2], [[4, 40], [7, 70]])
    np.testing.assert_array_equal(y[2], [[11, 110]])
    with pytest.raises(ValueError, match="finite"):
        TemporalSignal.from_series(np.array([[1.0], [np.nan], [2.0]]), 1, np.zeros((2, 0), int))
    with pytest.raises(ValueError, match="edge_index"):
        TemporalSignal.from_series(series, 2, np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match="one edge_index"):
        TemporalSignal.from_series(series, 2, [np.array([[0], [1]])] * 2)


# =============================================================================== metrics
def test_metrics_by_hand():
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    p = np.ones((2, 2))
    assert F.mse(y, p) == 3.5 and F.mae(y, p) == 1.5 and F.rmse(y, p) == math.sqrt(3.5)
    assert F.accuracy(y, p) == pytest.approx(1 - math.sqrt(14) / math.sqrt(30), abs=1e-15)
    assert F.r2(y, p) == pytest.approx(1 - 14 / 5, abs=1e-15)
    assert F.explained_variance(y, p) == pytest.approx(0.0, abs=1e-15)     # y - p = y - 1: same variance
    m = F.forecast_metrics(y, p, scale=2.0)
    assert m["mse"] == 14.0 and m["mae"] == 3.0 and m["r2"] == pytest.approx(-1.8)
    assert math.isnan(F.forecast_metrics(np.ones(3), np.zeros(3))["r2"])


@pytest.mark.parametrize("a, b, match", [
    (np.zeros((2, 3)), np.zeros((3, 2)), "same shape"), (np.zeros(3), np.array([0, np.nan, 0]), "finite"),
    (np.zeros(0), np.zeros(0), "empty"), (np.array(["a"]), np.array(["b"]), "numeric")])
def test_metric_input_checks(a, b, match):
    with pytest.raises((ValueError, TypeError), match=match):
        F.mse(a, b)


# =============================================================================== baselines
def test_baselines_by_hand():
    x = np.array([[[1.0, 10.0], [2.0, 20.0], [3.0, 60.0]]])             # W=1, L=3, N=2
    np.testing.assert_array_equal(F.last_value(x, 2), [[[3, 60], [3, 60]]])
    train = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    np.testing.assert_array_equal(F.historical_mean(train, x, 2), [[[3, 20], [3, 20]]])
    # T-GCN's HA: mean(1,2,3)=2; window (2,3,2) -> 7/3; window (3,2,7/3) -> 22/9
    np.testing.assert_allclose(F.window_mean(x, 3)[0, :, 0], [2, 7 / 3, 22 / 9], rtol=1e-15)
    np.testing.assert_allclose(F.window_mean(x, 2)[0, :, 1], [30, 110 / 3], rtol=1e-15)
    with pytest.raises(ValueError, match="horizon"):
        F.last_value(x, 0)
    with pytest.raises(ValueError, match="nodes"):
        F.historical_mean(train[:, :1], x)


def test_autoregression_by_hand():
    # one lag: x = 0, 1, 2, 3 -> y = 1, 3, 2, 5; least squares slope 5.5 / 5 = 1.1, intercept 2.75 - 1.65 = 1.1
    x = np.array([0.0, 1, 2, 3]).reshape(4, 1, 1)
    y = np.array([1.0, 3, 2, 5]).reshape(4, 1, 1)
    for shared in (False, True):
        ar = F.fit_autoregression(x, y, shared=shared)
        assert ar.coef.reshape(()) == pytest.approx(1.1, abs=1e-12)
        assert ar.intercept.reshape(()) == pytest.approx(1.1, abs=1e-12)
        assert F.last_value(x).shape == ar.predict(x).shape == (4, 1, 1)
        assert ar.predict(np.array([[[4.0]]])).reshape(()) == pytest.approx(5.5, abs=1e-12)
    # two nodes with different exact rules: per node recovers each, the shared fit cannot
    x2 = np.concatenate([x, x], axis=2)
    y2 = np.concatenate([2 * x + 1, -x + 3], axis=2)
    ar = F.fit_autoregression(x2, y2)
    np.testing.assert_allclose(ar.coef[:, 0, 0], [2, -1], atol=1e-12)
    np.testing.assert_allclose(ar.intercept[:, 0], [1, 3], atol=1e-12)
    shared = F.fit_autoregression(x2, y2, shared=True)       # pooled: slope 0.5, intercept 2
    np.testing.assert_allclose([shared.coef[0, 0], shared.intercept[0]], [0.5, 2.0], atol=1e-12)
    with pytest.raises(ValueError, match="input steps"):
        ar.predict(np.zeros((1, 2, 2)))


def test_autoregression_recovers_an_ar_process():
    rng = np.random.default_rng(0)
    T, N = 20000, 3
    a1 = np.array([0.5, 0.2, -0.3])          # coefficient of x_{t-1}, per node
    a2 = np.array([0.3, -0.4, 0.1])          # of x_{t-2}
    c = np.array([1.0, -2.0, 0.5])
    s = np.zeros((T, N))
    for t in range(2, T):
        s[t] = c + a1 * s[t - 1] + a2 * s[t - 2] + rng.standard_normal(N)
    sig = TemporalSignal.from_series(s[100:], 2, np.zeros((2, 0), np.int64), dtype=np.float64)
    train, test = temporal_signal_split(sig, 0.8)
    xtr, ytr = F.signal_windows(train)
    ar = F.fit_autoregression(xtr, ytr)
    # coef[n, l] multiplies input step l; l = 1 is the most recent (x_{t-1})
    np.testing.assert_allclose(ar.coef[:, 1, 0], a1, atol=0.03)
    np.testing.assert_allclose(ar.coef[:, 0, 0], a2, atol=0.03)
    np.testing.assert_allclose(ar.intercept[:, 0], c, atol=0.06)
    # test MSE close to the noise variance 1, better than persistence and the mean
    xte, yte = F.signal_windows(test)
    res = F.evaluate_baselines(xtr, ytr, xte, yte, train.signal)
    assert 0.9 < res["ar_per_node"]["mse"] < 1.1
    assert res["ar_per_node"]["mse"] < min(res["last_value"]["mse"], res["historical_mean"]["mse"])
    # a shared process: the shared fit finds it too
    s2 = np.zeros((T, N))
    for t in range(2, T):
        s2[t] = 0.2 + 0.6 * s2[t - 1] - 0.2 * s2[t - 2] + rng.standard_normal(N)
    x2, y2 = F.signal_windows(TemporalSignal.from_series(s2, 2, np.zeros((2, 0), np.int64), dtype=np.float64))
    sh = F.fit_autoregression(x2, y2, shared=True)
    np.testing.assert_allclose(sh.coef[:, 0], [-0.2, 0.6], atol=0.02)
    assert sh.intercept[0] == pytest.approx(0.2, abs=0.03)


def test_direct_multi_step_autoregression():
    # noise-free x_t = 0.9 x_{t-1}: step h is predicted with coefficient 0.9**h
    s = 10 * 0.9 ** np.arange(60.0)
    x, y = tgcn_windows(s[:, None], 1, 3)
    ar = F.fit_autoregression(x, y)
    np.testing.assert_allclose(ar.coef[0, 0], [0.9, 0.81, 0.729], rtol=1e-9)
    np.testing.assert_allclose(ar.intercept[0], 0, atol=1e-9)


def test_baselines_on_chickenpox_use_train_only(troot):
    ds = load_chickenpox(troot)
    train, test = temporal_signal_split(ds, 0.2)
    xtr, ytr = F.signal_windows(train)
    xte, yte = F.signal_windows(test)
    preds = F.baseline_forecasts(xtr, ytr, xte, train.signal)
    assert set(preds) == set(F.BASELINES)
    for p in preds.values():
        assert p.shape == yte.shape == (414, 1, 20)
    np.testing.assert_allclose(preds["historical_mean"][0, 0], train.signal.astype(np.float64).mean(axis=0))
    np.testing.assert_array_equal(preds["last_value"][:, 0], test.features[:, :, -1])
    # fitted on the train windows only: the same fit from train data alone predicts the same
    ar = F.fit_autoregression(xtr, ytr, shared=True)
    np.testing.assert_array_equal(preds["ar_shared"], ar.predict(xte))
    res = F.evaluate_baselines(xtr, ytr, xte, yte, train.signal)
    assert res["last_value"]["mse"] == pytest.approx(F.mse(yte, preds["last_value"]))
    assert res["ar_shared"]["mse"] < res["historical_mean"]["mse"] < res["last_value"]["mse"]


def test_los_loop_baselines_in_mph(troot):
    ds = load_los_loop(troot, pre_len=3)
    res = F.evaluate_baselines(ds.train_x, ds.train_y, ds.test_x, ds.test_y, ds.train_signal, scale=ds.scale)
    # the same RMSE as T-GCN computes it: on the scaled data, times max_value
    p = F.last_value(ds.test_x, 3)
    assert res["last_value"]["rmse"] == pytest.approx(F.rmse(ds.test_y, p) * ds.scale, rel=1e-12)
    assert res["last_value"]["mae"] == pytest.approx(
        np.mean(np.abs(ds.test_y.astype(np.float64) * 70 - ds.test_x[:, -1:].astype(np.float64) * 70)), rel=1e-12)
    # speeds: the persistence RMSE is a few mph, the AR beats it
    assert 3 < res["last_value"]["rmse"] < 10
    assert res["ar_per_node"]["rmse"] < res["last_value"]["rmse"]
