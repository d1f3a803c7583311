"""--task inductive (tasks/inductive.py) and its models (models/transformer.py: gt, gps, sbm_gcn): the class-weighted
loss against torch, the plateau schedule against torch, the protocol's numbers recomputed, determinism, the PE
widths, and the refusals. The models' gradient checks are gradcheck cases (gradcheck/graph_transformer_models.py)
run by tests/test_gradcheck.py; the cheap ones run here too."""
import json

import numpy as np
import pytest

from gnn_scratch.cli import main
from gnn_scratch.data import load_sbm, weighted_accuracy
from gnn_scratch.gradcheck.registry import all_cases
from gnn_scratch.models import GPS, MODELS, SBMGCN, GraphTransformer
from gnn_scratch.models.transformer import num_parameters
from gnn_scratch.nn.loss import WeightedSoftmaxCrossEntropy
from gnn_scratch.optim import Adam
from gnn_scratch.tasks import get_task
from gnn_scratch.tasks.inductive import ReduceLROnPlateau, _batch, _chunks, cut

TASK = get_task("inductive")
TINY = dict(hidden_channels=8, num_layers=2)


@pytest.fixture(scope="module")
def cluster():
    return load_sbm("cluster", size=12, cache=False)      # 12/1/1 graphs, 6 classes


@pytest.fixture(scope="module")
def pattern():
    return load_sbm("pattern", size=10, cache=False)      # 10/2/2 graphs, 2 classes


# ================================================================================== the loss
def _torch_benchmarking_loss(torch, Z, y, C):
    """benchmarking-gnns' ``GraphTransformerNet.loss``, line for line (float64)."""
    label = torch.from_numpy(y)
    V = label.size(0)
    label_count = torch.bincount(label)
    label_count = label_count[label_count.nonzero()].squeeze()
    cluster_sizes = torch.zeros(C).long()
    cluster_sizes[torch.unique(label)] = label_count
    weight = (V - cluster_sizes).double() / V
    weight *= (cluster_sizes > 0).double()
    return torch.nn.CrossEntropyLoss(weight=weight)(Z, label)


@pytest.mark.oracle
@pytest.mark.parametrize("C,absent", [(2, None), (6, None), (6, 4)])
def test_weighted_cross_entropy_equals_torch(C, absent):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(C + (absent or 0))
    N = 40
    y = rng.integers(0, C, N)
    if absent is not None:
        y[y == absent] = 0
    Z = rng.standard_normal((N, C)) * 2
    L = WeightedSoftmaxCrossEntropy("balanced")
    ours = float(L.forward(Z, y))
    dZ = L.backward()
    Zt = torch.from_numpy(Z.copy()).requires_grad_(True)
    ref = _torch_benchmarking_loss(torch, Zt, y, C)
    ref.backward()
    assert abs(ours - ref.item()) < 1e-12 * max(1.0, abs(ref.item()))
    np.testing.assert_allclose(dZ, Zt.grad.numpy(), rtol=0, atol=1e-12)
    # fixed weights with a mask: torch over the masked rows only
    w = rng.uniform(0.0, 2.0, C)
    mask = rng.random(N) < 0.6
    L = WeightedSoftmaxCrossEntropy(w)
    ours = float(L.forward(Z, y, mask))
    dZ = L.backward()
    Zt = torch.from_numpy(Z.copy()).requires_grad_(True)
    ref = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(w))(Zt[torch.from_numpy(mask)],
                                                                torch.from_numpy(y[mask]))
    ref.backward()
    assert abs(ours - ref.item()) < 1e-12 * max(1.0, abs(ref.item()))
    np.testing.assert_allclose(dZ, Zt.grad.numpy(), rtol=0, atol=1e-12)
    assert np.all(dZ[~mask] == 0)


def test_weighted_cross_entropy_balances_the_classes():
    # 1 node of class 1 among 5: the balanced loss weighs it 4/5, each class-0 node 1/5 -> equal class shares
    Z = np.zeros((5, 2))
    y = np.array([0, 0, 0, 0, 1])
    L = WeightedSoftmaxCrossEntropy()
    assert np.isclose(float(L.forward(Z, y)), np.log(2))
    g = L.backward()
    assert np.isclose(np.abs(g[4]).sum(), np.abs(g[:4]).sum())     # the single node moves as much as the four
    np.testing.assert_allclose(L.class_weights(y, 2), [1 / 5, 4 / 5])


def test_weighted_cross_entropy_refusals():
    Z = np.zeros((4, 3))
    with pytest.raises(ValueError, match="weight must be 'balanced' or a"):
        WeightedSoftmaxCrossEntropy("inverse")
    with pytest.raises(ValueError, match="finite non-negative"):
        WeightedSoftmaxCrossEntropy([1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        WeightedSoftmaxCrossEntropy([1.0, 1.0]).forward(Z, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"labels y must lie in \[0, 3\)"):
        WeightedSoftmaxCrossEntropy().forward(Z, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"y must be \(4,\) integer labels"):
        WeightedSoftmaxCrossEntropy().forward(Z, np.array([0.0, 1, 2, 0]))
    with pytest.raises(ValueError, match="empty mask"):
        WeightedSoftmaxCrossEntropy().forward(Z, np.array([0, 1, 2, 0]), np.zeros(4, bool))
    with pytest.raises(ValueError, match="sum to 0"):
        WeightedSoftmaxCrossEntropy().forward(Z, np.array([1, 1, 1, 1]))   # torch: NaN


def test_the_cheap_gradient_checks_pass_and_every_model_has_a_case():
    cases = all_cases()
    for name in ("GraphTransformer + weighted loss", "GPS + weighted loss", "SBMGCN + weighted loss"):
        assert name in cases                      # run in full by tests/test_gradcheck.py
    for name in ("WeightedSoftmaxCrossEntropy", "SBMGCN + weighted loss"):
        rows = cases[name]()
        assert rows and all(r.passed for r in rows), [r for r in rows if not r.passed]


# ================================================================================== the schedule
@pytest.mark.oracle
def test_reduce_lr_on_plateau_equals_torch():
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.9, 0.95, 0.89995, 0.91, 0.92, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.4, 0.41, 0.42, 0.43]
    for patience in (0, 1, 2):
        p = np.zeros(1)
        opt = Adam([{"params": [(p, np.zeros(1))]}], lr=5e-4)
        ours = ReduceLROnPlateau(opt, factor=0.5, patience=patience)
        t_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=5e-4)
        ref = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, mode="min", factor=0.5, patience=patience)
        lrs, ref_lrs = [], []
        for m in metrics:
            ours.step(m)
            ref.step(m)
            lrs.append(ours.lr)
            ref_lrs.append(t_opt.param_groups[0]["lr"])
        assert lrs == ref_lrs, patience
        assert min(lrs) < 5e-4                   # the schedule did act


# ================================================================================== the task
def test_a_tiny_run_is_deterministic_and_its_numbers_recompute(cluster):
    kw = dict(epochs=2, batch_size=4, **TINY)
    s1, m1 = TASK.run("gt", cluster, seed=3, **kw)
    s2, m2 = TASK.run("gt", cluster, seed=3, **kw)
    assert s1["test_acc"] == s2["test_acc"] and s1["best_val_acc"] == s2["best_val_acc"]
    for (n, a, _), (_, b, _) in zip(m1.named_parameters(), m2.named_parameters()):
        assert np.array_equal(a, b), n                            # bit for bit
    s3, m3 = TASK.run("gt", cluster, seed=4, **kw)
    assert not all(np.array_equal(a, b) for (_, a, _), (_, b, _) in zip(m1.named_parameters(), m3.named_parameters()))
    # the reported test score = the mean over test batches of weighted_accuracy, the last epoch's model, no flip
    m1.eval()
    accs = []
    for ids in _chunks(len(cluster.test), 4):
        g, x, y = _batch([cluster.test[i] for i in ids], "laplacian", 10, None, np.float32)
        accs.append(weighted_accuracy(np.argmax(m1.forward(x, g), axis=1), y))
    assert s1["test_acc"]["all"] == [pytest.approx(np.mean(accs), abs=1e-12)]
    assert s1["graphs"] == [12, 1, 1] and s1["epochs_run"] == [2] and s1["stopped"] == ["epochs"]
    assert s1["parameters"] == num_parameters(m1)
    assert s1["hparams"]["pe_dim"] == 10 and s1["hparams"]["batch_size"] == 4


def test_training_stops_at_min_lr_and_learns_something(pattern):
    s, _ = TASK.run("sbm_gcn", pattern, epochs=5, min_lr=1e-2, **TINY)        # lr 1e-3 < min_lr: one epoch
    assert s["epochs_run"] == [1] and s["stopped"] == ["min_lr"]
    s, _ = TASK.run("sbm_gcn", pattern, epochs=3, lr=0.01, batch_size=2, **TINY)
    assert s["epochs_run"] == [3] and 0.0 <= s["test_acc"]["mean"] <= 1.0


def test_pe_widths_come_from_the_model_and_the_dataset(pattern, cluster):
    for data, k in ((pattern, 2), (cluster, 10)):
        _, m = TASK.run("gt", data, epochs=1, **TINY, heads=2)
        assert m.pe_dim == k and m.input.in_channels == data.num_features + k    # the GT paper's LapPE size
    _, m = TASK.run("gps", pattern, epochs=1, **TINY, heads=2)
    assert m.pe_dim == 10                                                     # GraphGPS's 10 eigenvectors
    _, m = TASK.run("gps", pattern, epochs=1, **TINY, heads=2, pe="rw")
    assert m.pe == "rw" and m.pe_dim == 16
    _, m = TASK.run("gt", pattern, epochs=1, **TINY, heads=2, pe_dim=3)
    assert m.pe_dim == 3
    _, m = TASK.run("sbm_gcn", pattern, epochs=1, **TINY)
    assert m.pe == "none" and m.input.in_channels == pattern.num_features


def test_the_papers_sizes():
    gt = GraphTransformer(3, 2, pe_dim=2)                  # PATTERN, L=10, H=80, 8 heads
    gcn = SBMGCN(3, 2)                                     # L=16, H=172
    assert num_parameters(gt) == 522982 and num_parameters(gcn) == 500995
    assert len(gt.layers()) == 10 and len(gcn.layers()) == 16
    assert GraphTransformer.model_defaults["norm"] == "batch_norm" and GraphTransformer.train_defaults["lr"] == 5e-4
    assert all(getattr(c, "inductive", False) for c in (GraphTransformer, GPS, SBMGCN))


def test_size_cuts_a_prefix_of_each_split(pattern):
    small = cut(pattern, 5)
    assert (len(small.train), len(small.val), len(small.test)) == (5, 1, 1)
    assert small.train[0] is pattern.train[0] and len(pattern.train) == 10       # the original is untouched
    assert cut(pattern, None) is pattern


def test_refusals(pattern):
    with pytest.raises(ValueError, match="not a node classifier of many graphs; the inductive task takes: gt, gps, "
                                         "sbm_gcn"):
        TASK.run("gcn", pattern)
    with pytest.raises(ValueError, match=r"lr_factor \(--lr-factor\) must be in \(0, 1\)"):
        TASK.run("gt", pattern, lr_factor=1.5)
    with pytest.raises(ValueError, match=r"size \(--size\) 1000 asks for 1000/200/200"):
        TASK.run("gt", pattern, size=1000)
    with pytest.raises(ValueError, match=r"size \(--size\) must be 'small', 'full' or a positive int"):
        TASK.run("gt", pattern, size="huge")
    with pytest.raises(ValueError, match=r"epochs \(--epochs\) must be a positive integer"):
        TASK.run("gt", pattern, epochs=0)
    with pytest.raises(ValueError, match="trains on cpu, not 'cuda'"):
        TASK.run("gt", pattern, device="cuda")
    with pytest.raises(ValueError, match="pe_dim must be a positive int with pe='laplacian'"):
        GraphTransformer(3, 2)
    with pytest.raises(ValueError, match=r"channels \(10\) must be divisible by heads \(8\)"):
        GraphTransformer(3, 2, hidden_channels=10, pe_dim=2)
    with pytest.raises(ValueError, match="conv must be one of"):
        GPS(3, 2, conv="gat", pe_dim=2)
    with pytest.raises(ValueError, match="pe must be one of"):
        SBMGCN(3, 2, pe="sinusoid")
    with pytest.raises(ValueError, match=r"x must have shape \(N, 5\): 3 node features, then 2 laplacian PE columns"):
        GraphTransformer(3, 2, hidden_channels=8, num_layers=1, heads=2, pe_dim=2).forward(
            np.zeros((4, 3), np.float32), None)


# ================================================================================== command line
def test_the_command_line_trains_and_picks_the_task_from_the_model(tmp_path, capsys):
    argv = ["train", "--model", "sbm_gcn", "--dataset", "cluster", "--size", "12", "--data-root", str(tmp_path),
            "--epochs", "1", "--hidden", "8", "--num-layers", "2", "--quiet", "--json"]
    assert main(argv) == 0                                    # no --task: the model's home task, inductive
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["model"] == "sbm_gcn" and out["graphs"] == [12, 1, 1] and out["epochs_run"] == [1]
    assert list(tmp_path.glob("cluster-*.npz"))               # --size generated only the graphs asked for, cached there
    assert main(argv[:1] + ["--task", "inductive"] + argv[1:]) == 0
    capsys.readouterr()
    assert main(["train", "--task", "inductive", "--model", "gt", "--size", "0"]) == 2
    assert "expected small, full or a positive number of training graphs, got '0'" in capsys.readouterr().err
    assert main(["train", "--task", "inductive", "--model", "gcn", "--dataset", "cluster"]) == 2
    assert "the inductive task takes: gt, gps, sbm_gcn" in capsys.readouterr().err


def test_every_new_model_option_has_a_command_line_line():
    from gnn_scratch.cli import MODEL_OPTIONS
    for name in ("gt", "gps", "sbm_gcn"):
        assert set(MODELS[name].model_defaults) <= set(MODEL_OPTIONS), name


def test_heads_that_do_not_divide_the_width_are_refused_before_the_data(capsys, tmp_path):
    from gnn_scratch.cli import main
    assert main(["train", "--model", "gt", "--heads", "3", "--data-root", str(tmp_path)]) == 2
    assert "hidden_channels (--hidden) must be divisible by heads (--heads): gt's 3 heads" in capsys.readouterr().err
