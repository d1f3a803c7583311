"""The graph-classification task and the GIN model: folds, protocols, mini-batches, the command line, a floor on MUTAG."""
import json

import numpy as np
import pytest

from gnn_scratch import cli
from gnn_scratch.data.tu import stratified_folds
from gnn_scratch.graph import GraphBatch
from gnn_scratch.models import build_model
from gnn_scratch.tasks import get_task
from gnn_scratch.tasks.graph import inner_validation, train_fold


def small_batch(seed=0, B=5):
    rng = np.random.default_rng(seed)
    eis, ns = [], []
    for _ in range(B):
        n = int(rng.integers(2, 7))
        eis.append(rng.integers(0, n, (2, int(rng.integers(1, 12)))))
        ns.append(n)
    return GraphBatch.from_edge_indices(eis, ns)


def test_inner_validation_is_a_stratified_part_of_the_training_fold():
    y = np.array([0] * 40 + [1] * 20)
    train, val = inner_validation(y, 10, seed=3)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(60))
    assert np.bincount(y[val]).tolist() == [4, 2]          # 10 % of each class
    again = inner_validation(y, 10, seed=3)
    assert np.array_equal(val, again[1])


def test_gin_scores_each_graph_as_it_would_alone():
    """Eval mode (BatchNorm on running statistics): graph k's score in a batch equals its score alone."""
    batch = small_batch()
    x = np.random.default_rng(1).standard_normal((batch.num_nodes, 3))
    model = build_model("gin", in_channels=3, out_channels=2, hidden_channels=8, num_layers=3, dtype="float64")
    model.eval()
    Z = model.forward(x, batch)
    assert Z.shape == (batch.num_graphs, 2)
    for k in range(batch.num_graphs):
        alone, nodes = batch.select(np.array([k]))
        np.testing.assert_allclose(model.forward(x[nodes], alone)[0], Z[k], rtol=1e-12, atol=1e-12)


def test_gin_is_invariant_to_node_order_within_a_graph():
    batch = small_batch(2, B=1)
    g = batch.graph(0)
    n = g.num_nodes
    x = np.random.default_rng(4).standard_normal((n, 3))
    perm = np.random.default_rng(5).permutation(n)          # new node v is old node perm[v]
    inv = np.argsort(perm)
    ei = g.edge_index()
    permuted = GraphBatch.from_edge_indices([inv[ei]], [n])
    model = build_model("gin", in_channels=3, out_channels=2, hidden_channels=8, num_layers=4, dtype="float64")
    model.eval()
    np.testing.assert_allclose(model.forward(x[perm], permuted), model.forward(x, GraphBatch.from_graphs([g])),
                               rtol=1e-10, atol=1e-12)


def test_gin_refuses_a_node_task_and_node_models_refuse_the_graph_task():
    task = get_task("graph")
    with pytest.raises(ValueError, match="model 'gcn' gives node outputs, not one score per graph"):
        task.validate("gcn")
    with pytest.raises(ValueError, match=r"folds \(--folds\) must be >= 2"):
        task.validate("gin", hparams=dict(folds=1))
    with pytest.raises(ValueError, match=r"val_folds \(--val-folds\) must be >= 2, got 1"):
        task.validate("gin", hparams=dict(val_folds=1))
    with pytest.raises(ValueError, match=r"model 'gin' gives one score per graph, not per node: train it with --task"):
        get_task("node").validate("gin")


@pytest.fixture(scope="module")
def mutag(data_root):
    from gnn_scratch.data.tu import load_tu
    return load_tu("mutag", root=data_root)


def test_train_fold_learns_mutag(mutag):
    """One fold of MUTAG, 40 short epochs: the held-out fold is classified well above its majority class.

    The fold holds 19 graphs (12 of one class: 63.2 %), so one graph is 5.3 points, and the floor, 0.75, asks
    for 15 of 19 at the best of the last ten epochs. Measured on an Intel Xeon (SkylakeX BLAS kernels), folds
    0 and 1 with seeds 0-3: 0.79-0.89; this seed 0.789 (15 of 19). On the AMD machine it met the old floor,
    0.80: sums rounded in another order by another BLAS kernel move a graph or two."""
    whole, x, y = mutag.batch()
    train_ids, test_ids = stratified_folds(y, 10, seed=0)[0]
    model = build_model("gin", in_channels=mutag.num_features, out_channels=2, hidden_channels=32, seed=0)
    from gnn_scratch.optim import Adam
    opt = Adam([{"params": model.parameters(), "weight_decay": 0.0}], lr=0.01)
    train = dict(epochs=40, batch_size=32, iters_per_epoch=10, lr_step=50, lr_gamma=0.5)
    curves, _ = train_fold(model, opt, whole, x, y, train_ids, {"train": train_ids, "test": test_ids}, train, 0)
    assert curves["train"][-5:].mean() >= 0.85
    assert curves["test"][-10:].max() >= 0.75


def test_the_command_line_runs_both_protocols(data_root, capsys):
    rc = cli.main(["train", "--task", "graph", "--model", "gin", "--dataset", "mutag", "--data-root", str(data_root), "--folds", "2",
                   "--epochs", "2", "--iters-per-epoch", "2", "--hidden", "8", "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["folds"] == 2 and out["protocol"] == "both"
    assert len(out["authors"]["fold_acc"]) == 2 and len(out["authors"]["mean_curve"]) == 2
    assert len(out["honest"]["fold_acc"]) == 2 and all(1 <= e <= 2 for e in out["honest"]["epochs"])
    assert 0.0 <= out["authors"]["mean"] <= 1.0 and 0.0 <= out["honest"]["mean"] <= 1.0


def test_inner_validation_holds_out_one_stratified_part_of_the_training_fold():
    y = np.array([0] * 70 + [1] * 30)
    for k, expected in ((10, [7, 3]), (5, [14, 6]), (2, [35, 15])):
        train, val = inner_validation(y, k, seed=0)
        assert np.bincount(y[val]).tolist() == expected, k
        assert np.intersect1d(train, val).size == 0 and train.size + val.size == y.size


def test_the_authors_protocol_takes_the_best_mean_epoch_and_the_honest_one_never_reads_test_to_choose():
    from gnn_scratch.tasks.graph import _summarise
    authors = [np.array([0.5, 0.9, 0.6]), np.array([0.7, 0.6, 0.9])]     # mean 0.6, 0.75, 0.75: epoch 2 (first best)
    out = _summarise({"authors": authors, "honest": [0.8, 0.7]}, [2, 3])
    assert out["authors"]["epoch"] == 2 and out["authors"]["fold_acc"] == [0.9, 0.6]
    assert out["authors"]["mean"] == pytest.approx(0.75) and out["authors"]["std"] == pytest.approx(0.15)
    assert out["honest"]["epochs"] == [2, 3] and out["honest"]["mean"] == pytest.approx(0.75)


def test_gin_returns_no_input_gradient_while_its_input_is_data():
    from gnn_scratch.loop import input_is_data
    batch = small_batch(3)
    x = np.random.default_rng(0).standard_normal((batch.num_nodes, 3))
    model = build_model("gin", in_channels=3, out_channels=2, hidden_channels=4, num_layers=3, dtype="float64")
    with input_is_data(model):
        Z = model.forward(x, batch)
        assert model.backward(np.ones_like(Z)) is None
    assert model.needs_input_grad
    Z = model.forward(x, batch)
    assert model.backward(np.ones_like(Z)).shape == x.shape


def test_several_cross_validations_and_options_out_of_range(data_root, capsys):
    base = ["train", "--task", "graph", "--model", "gin", "--dataset", "mutag", "--data-root", str(data_root),
            "--epochs", "1", "--iters-per-epoch", "1", "--hidden", "4", "--quiet"]
    assert cli.main(base + ["--folds", "2", "--runs", "2", "--protocol", "authors", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 2 and len(out["authors"]["runs"]) == 2
    for extra, expected in ((["--folds", "1000"], "folds (--folds) must be at most the number of graphs (188"),
                            (["--val-folds", "0"], "--val-folds: expected a positive integer, got '0'"),
                            (["--lr-gamma", "2"], "lr_gamma (--lr-gamma) must be a decay factor in (0, 1]")):
        assert cli.main(base + extra) == 2, extra
        assert expected in capsys.readouterr().err, extra
