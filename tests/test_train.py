"""Training end to end: one seed on the real datasets against accuracy floors, determinism, save/load, the CLI."""
import json

import numpy as np
import pytest

from gnn_scratch.cli import main
from gnn_scratch.data import csbm, get_dataset
from gnn_scratch.io import load_model, save_model
from gnn_scratch.train import prepare_features, run


@pytest.mark.parametrize("name, floor", [("cora", 0.79), ("citeseer", 0.67)])
def test_gcn_one_seed_reaches_the_floor(data_root, name, floor):
    summary, _ = run("gcn", get_dataset(name, root=data_root), runs=1, seed=0)
    assert summary["test_acc_mean"] >= floor, summary


def test_same_seed_same_result():
    data = csbm(num_nodes=400, num_val=100, num_test=200, seed=1)
    a, ma = run("gcn", data, seed=3, epochs=20)
    b, mb = run("gcn", data, seed=3, epochs=20)
    assert a["test_acc"] == b["test_acc"]
    for (n, p, _), (_, q, _) in zip(ma.named_parameters(), mb.named_parameters()):
        np.testing.assert_array_equal(p, q, err_msg=n)


def test_gcn_learns_the_generated_dataset():
    data = csbm(seed=0)
    summary, _ = run("gcn", data, seed=0)
    assert summary["test_acc_mean"] >= 0.85, summary  # homophily 0.8: far above chance (0.25)


def test_save_and_load_restore_the_same_predictions(tmp_path):
    data = csbm(num_nodes=300, num_val=100, num_test=100, seed=2)
    _, model = run("gcn", data, seed=0, epochs=30)
    path = tmp_path / "m.npz"
    save_model(path, model, extra={"dataset": data.name})
    loaded, extra = load_model(path)
    x = prepare_features(data)
    np.testing.assert_array_equal(loaded.forward(x, data.graph), model.eval().forward(x, data.graph))
    assert extra == {"dataset": data.name}
    with np.load(path, allow_pickle=False) as f:  # readable without unpickling anything
        assert "config" in f.files


def test_load_refuses_a_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a gnn_scratch model"):
        load_model(path)


def test_cli_train_json_save_and_predict(tmp_path, capsys):
    path = tmp_path / "gcn.npz"
    assert main(["train", "--dataset", "karate", "--epochs", "50", "--runs", "2", "--json", "--quiet",
                 "--save", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    for key in ("test_acc_mean", "test_acc_std", "runs", "epoch_ms_median"):
        assert key in summary
    assert summary["runs"] == 2 and 0.0 <= summary["test_acc_mean"] <= 1.0
    assert main(["predict", "--load", str(path), "--dataset", "karate", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert pred["test_acc"] == pytest.approx(summary["test_acc"][-1])


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys):
    assert main(["train", "--model", "nope", "--dataset", "karate", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "argument --model: invalid choice: 'nope'" in err and len(err.strip().splitlines()) == 1
    assert main(["predict", "--load", str(tmp_path / "missing.npz"), "--dataset", "karate"]) == 2
    err = capsys.readouterr().err
    assert "error: argument --load" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("mask", ["train_mask", "val_mask", "test_mask"])
def test_an_empty_mask_is_refused_by_name_before_training(mask):
    """An empty train or val mask has no loss, an empty test mask no accuracy (nan): refused, the mask named."""
    import dataclasses
    data = csbm(num_nodes=200, num_val=50, num_test=50, seed=0)
    empty = dataclasses.replace(data, **{mask: np.zeros_like(getattr(data, mask))})
    with pytest.raises(ValueError, match=f"data.{mask}: .*no node|data.{mask} selects no node"):
        run("gcn", empty, epochs=2)


@pytest.mark.parametrize("content, reason", [
    (b"", "it is empty"),
    (b"hello, not a model\n", "it is not a zip archive"),
    (b"\x93NUMPY\x01\x00", r"it holds a single array \(.npy\)"),
    ("truncated", r"it cannot be read \(BadZipFile"),
    ("config-not-a-model", "its 'config' entry does not describe a model"),
])
def test_load_names_the_file_and_what_is_wrong_with_it(tmp_path, content, reason):
    path = tmp_path / "bad.npz"
    if content == "truncated":
        save_model(path, run("gcn", csbm(num_nodes=300, num_val=100, num_test=100, seed=2), epochs=1)[1])
        path.write_bytes(path.read_bytes()[:200])
    elif content == "config-not-a-model":
        np.savez(path, config=np.array(json.dumps([1, 2])))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"bad.npz is not a gnn_scratch model file \(.*\): {reason}"):
        load_model(path)
    with pytest.raises(IsADirectoryError, match="is a folder, not a model file"):
        load_model(tmp_path)


def test_cli_predict_defaults_to_the_dataset_the_model_was_trained_on(tmp_path, capsys):
    path = tmp_path / "k.npz"
    assert main(["train", "--dataset", "karate", "--epochs", "5", "--quiet", "--save", str(path)]) == 0
    capsys.readouterr()
    assert main(["predict", "--load", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["dataset"] == "karate"
    save_model(tmp_path / "old.npz", load_model(path)[0])         # saved without the dataset's name
    assert main(["predict", "--load", str(tmp_path / "old.npz")]) == 2
    assert "does not record a dataset predict can load" in capsys.readouterr().err


def test_cli_embedding_save_refuses_an_npz_name(tmp_path, capsys):
    assert main(["train", "--task", "embedding", "--model", "deepwalk", "--dataset", "karate",
                 "--save", str(tmp_path / "emb.npz")]) == 2
    assert "written with numpy.save to NAME.npy" in capsys.readouterr().err


def test_run_refuses_data_that_is_not_a_dataset():
    with pytest.raises(TypeError, match=r"got str \(load it first: gnn_scratch.data.get_dataset\('cora'\)\)"):
        run("gcn", "cora")
    with pytest.raises(TypeError, match="data must be a node-classification Dataset"):
        run("gcn", None)


def test_fit_trains_on_a_view_without_test_nodes():
    """``fit`` (unlike ``run``) takes an empty test mask: an inductive split scores its test nodes on another graph
    (scripts/sage_inductive.py)."""
    from types import SimpleNamespace

    from gnn_scratch.train import build_for, fit
    data = csbm(num_nodes=300, num_val=100, num_test=100, seed=2)
    view = SimpleNamespace(name="csbm[no test]", graph=data.graph, y=data.y, num_features=data.num_features,
                           num_classes=data.num_classes, train_mask=data.train_mask, val_mask=data.val_mask,
                           test_mask=np.zeros_like(data.test_mask))
    model, opt, hp = build_for("gcn", view, 0, dict(epochs=3))
    res = fit(model, view, opt, hp["epochs"], hp["patience"], x=prepare_features(data))
    assert np.isnan(res.test_acc) and 0.0 <= res.val_acc <= 1.0
