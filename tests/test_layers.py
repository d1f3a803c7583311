"""Layers, loss and optimisers: forward values against independent formulas, and their contracts."""
import numpy as np
import pytest

from gnn_scratch import ops
from gnn_scratch.graph import Graph
from gnn_scratch.nn import (ELU, BackwardBeforeForward, Dropout, GCNConv, LeakyReLU, Linear, ReLU,
                            SoftmaxCrossEntropy, log_softmax)
from gnn_scratch.optim import SGD, Adam, SparseAdam

EI = np.array([[0, 1, 2, 2, 3, 1, 1, 4],
               [1, 0, 2, 1, 1, 0, 0, 4]])  # self-loops on 2 and 4, repeated 1->0, node 5 isolated


def pyg_gcn_dense(EI, N, X, W, b):
    """GCNConv as PyG defines it, written densely: loops replaced by one loop each, repeats summed."""
    A = np.zeros((N, N))
    for j, i in EI.T:
        if i != j:
            A[i, j] += 1
    A += np.eye(N)
    d = A.sum(axis=1)
    return (A / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]) @ X @ W + b


@pytest.mark.parametrize("fin, fout", [(4, 3), (3, 6)])
def test_gcnconv_equals_pyg_definition(fin, fout):
    g = Graph.from_edge_index(EI, num_nodes=6)
    X = np.random.default_rng(0).standard_normal((6, fin))
    conv = GCNConv(fin, fout, seed=1, dtype=np.float64)
    conv.params["b"][:] = np.arange(fout)
    np.testing.assert_allclose(conv(X, g), pyg_gcn_dense(EI, 6, X, conv.params["W"], conv.params["b"]), rtol=1e-12)


@pytest.mark.oracle
def test_gcnconv_equals_torch_geometric_when_installed():
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.nn")
    g = Graph.from_edge_index(EI, num_nodes=6)
    X = np.random.default_rng(0).standard_normal((6, 4))
    conv = GCNConv(4, 3, seed=1, dtype=np.float64)
    ref = pyg.GCNConv(4, 3).double()
    with torch.no_grad():
        ref.lin.weight.copy_(torch.from_numpy(conv.params["W"].T))
        ref.bias.copy_(torch.from_numpy(conv.params["b"]))
        expected = ref(torch.from_numpy(X), torch.from_numpy(EI)).numpy()
    np.testing.assert_allclose(conv(X, g), expected, rtol=1e-10, atol=1e-12)


def test_backward_before_forward_raises():
    for layer in (Linear(2, 2), ReLU(), ELU(), LeakyReLU(), GCNConv(2, 2)):
        with pytest.raises(BackwardBeforeForward):
            layer.backward(np.ones((3, 2), np.float32))


def test_activations_forward_values():
    x = np.array([[-2.0, -0.5, 0.0, 1.5]])
    np.testing.assert_array_equal(ReLU()(x), [[0, 0, 0, 1.5]])
    np.testing.assert_allclose(LeakyReLU(0.2)(x), [[-0.4, -0.1, 0, 1.5]])
    np.testing.assert_allclose(ELU()(x), [[np.exp(-2) - 1, np.exp(-0.5) - 1, 0, 1.5]])


def test_dropout_is_identity_in_eval_and_unbiased_in_training():
    x = np.ones((200, 50), np.float32)
    d = Dropout(0.3, seed=0)
    y = d(x)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert abs(y.mean() - 1.0) < 0.03 and abs((y == 0).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(d.backward(x), y)  # same mask, same scale
    assert d.eval()(x) is x
    with pytest.raises(ValueError, match="\\[0, 1\\)"):
        Dropout(1.0)


def test_same_seed_same_dropout_mask():
    x = np.ones((10, 10), np.float32)
    np.testing.assert_array_equal(Dropout(0.5, seed=7)(x), Dropout(0.5, seed=7)(x))


def test_log_softmax_is_stable_and_loss_is_correct():
    Z = np.array([[1000.0, 0.0], [0.0, 1000.0], [1.0, 2.0]])
    assert np.isfinite(log_softmax(Z)).all()
    L = SoftmaxCrossEntropy()
    loss = L.forward(Z, np.array([0, 0, 1]), np.array([True, False, True]))
    assert loss == pytest.approx(np.log1p(np.exp(-1.0)) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="no node"):
        L.forward(Z, np.array([0, 0, 1]), np.zeros(3, bool))
    with pytest.raises(ValueError, match="labels"):
        L.forward(Z, np.array([0, 5, 1]))


def test_adam_first_steps_match_the_formula():
    p, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    opt = Adam([(p, g)], lr=0.1)
    opt.step()
    # at t=1, m_hat = g and v_hat = g^2: the step is lr * sign(g) (up to eps)
    np.testing.assert_allclose(p, [1.0 - 0.1, -2.0 - 0.1], rtol=1e-7)
    g[:] = [-0.5, 0.0]
    opt.step()
    m = 0.9 * 0.1 * np.array([0.5, 0.25]) + 0.1 * g
    v = 0.999 * 0.001 * np.array([0.5, 0.25]) ** 2 + 0.001 * g ** 2
    p1 = np.array([1.0, -2.0]) - 0.1 * np.array([0.5, 0.25]) / (np.array([0.5, 0.25]) + 1e-8)
    expected = p1 - 0.1 * (m / (1 - 0.9 ** 2)) / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_sgd_momentum_and_per_group_weight_decay():
    p1, g1 = np.array([1.0]), np.array([0.0])
    p2, g2 = np.array([1.0]), np.array([0.0])
    opt = SGD([{"params": [(p1, g1)], "weight_decay": 0.5}, {"params": [(p2, g2)]}], lr=0.1, momentum=0.9)
    opt.step()
    np.testing.assert_allclose(p1, [1.0 - 0.1 * 0.5])  # the decayed group moves on decay alone
    np.testing.assert_allclose(p2, [1.0])
    opt.step()
    v = 0.9 * 0.5 + 0.5 * 0.95
    np.testing.assert_allclose(p1, [0.95 - 0.1 * v])
    with pytest.raises(ValueError, match="lr"):
        SGD([(p1, g1)], lr=-1)


@pytest.mark.parametrize("make, error, message", [
    (lambda ps: Adam(ps, lr=float("nan")), ValueError, "lr must be a finite number"),
    (lambda ps: Adam(ps, lr=float("inf")), ValueError, "lr must be a finite number"),
    (lambda ps: Adam(ps, lr=-0.1), ValueError, "lr must be >= 0"),
    (lambda ps: Adam(ps, betas=(0.9, 1.0)), ValueError, r"betas must both be in \[0, 1\)"),
    (lambda ps: Adam(ps, betas=(1.5, 0.999)), ValueError, r"betas must both be in \[0, 1\)"),
    (lambda ps: Adam(ps, betas=(float("nan"), 0.999)), ValueError, r"betas\[0\] must be a finite number"),
    (lambda ps: Adam(ps, betas=0.9), TypeError, "betas must be a pair"),
    (lambda ps: Adam(ps, eps=-1.0), ValueError, "eps must be >= 0"),
    (lambda ps: Adam(ps, weight_decay=float("nan")), ValueError, "weight_decay must be a finite number"),
    (lambda ps: SGD(ps, momentum=-1.0), ValueError, "momentum must be >= 0"),
    (lambda ps: SGD(ps, lr="0.1"), TypeError, "lr must be a finite number, got '0.1'"),
    (lambda ps: SGD([{"params": ps}, {"params": ps, "lr": -1.0}]), ValueError, r"lr \(parameter group 1\) must"),
    (lambda ps: SparseAdam(ps, betas=(0.9, 1.0)), ValueError, "betas must both be in"),
])
def test_optimisers_refuse_hyper_parameters_out_of_range(make, error, message):
    """A NaN, infinite or out-of-range rate would turn every weight into NaN at the first step: refused at once."""
    ps = [(np.ones(3), np.ones(3))]
    with pytest.raises(error, match=message):
        make(ps)


def test_optimisers_keep_the_hyper_parameters_as_given():
    """The checks change no value or type (a float32 lr reaches the update as float32, as before)."""
    lr = np.float32(0.01)
    opt = Adam([(np.ones(2), np.ones(2))], lr=lr, betas=[0.8, 0.9])
    assert type(opt.groups[0]["lr"]) is np.float32 and opt.groups[0]["betas"] == [0.8, 0.9]


def test_gradients_accumulate_until_zeroed():
    lin = Linear(3, 2, seed=0, dtype=np.float64)
    x = np.ones((4, 3))
    for _ in range(2):
        lin(x)
        lin.backward(np.ones((4, 2)))
    np.testing.assert_allclose(lin.grads["b"], [8.0, 8.0])
    lin.zero_grad()
    assert not lin.grads["W"].any()


def test_layer_is_stateless_in_the_graph():
    """One layer on two different graphs: the graph is an argument, the normalisation is cached per graph."""
    conv = GCNConv(2, 2, seed=0, dtype=np.float64)
    g1 = Graph.from_edge_index(EI, num_nodes=6)
    g2 = Graph.from_edge_index(np.array([[0, 1], [1, 2]]), num_nodes=3)
    X1, X2 = np.ones((6, 2)), np.ones((3, 2))
    assert conv(X1, g1).shape == (6, 2) and conv(X2, g2).shape == (3, 2)
    assert ops.gcn_norm(g1, np.float64)[0].num_edges == 6 + 6  # 6 non-loop edges kept, one loop per node


def test_gcn_improved_keeps_an_existing_loop_weight_as_pyg():
    # edges 0->0, 1->0, 1->1: the existing loops keep weight 1, only node 2's added loop gets 2
    g = Graph.from_edge_index(np.array([[0, 1, 1], [0, 0, 1]]), num_nodes=3)
    gh, val = ops.gcn_norm(g, np.float64, improved=True)
    A = gh.to_scipy(val).toarray()
    d = np.array([2.0, 1.0, 2.0])
    np.testing.assert_allclose(A[0, 0], 1 / d[0])
    np.testing.assert_allclose(A[2, 2], 2 / d[2])
    with pytest.raises(ValueError, match="requires normalize"):
        GCNConv(2, 2, normalize=False)


def test_dropout_backward_follows_what_forward_did():
    d = Dropout(0.5, seed=0)
    with pytest.raises(BackwardBeforeForward):
        d.backward(np.ones((2, 2)))
    x = np.ones((4, 4))
    y = d(x)
    d.eval()  # switching mode between forward and backward must not skip the mask
    np.testing.assert_array_equal(d.backward(x), y)


def test_losses_refuse_a_nan_or_infinite_loss_on_host_arrays():
    """A NaN / Inf logit on a row the loss reads gives a NaN loss: an error naming the cause, not a silent NaN."""
    from gnn_scratch.nn.loss import MSELoss, WeightedSoftmaxCrossEntropy
    Z = np.zeros((3, 2), np.float32)
    Z[0, 0] = np.nan
    y = np.array([0, 1, 1])
    for loss in (SoftmaxCrossEntropy(), WeightedSoftmaxCrossEntropy(weight=np.ones(2))):
        with pytest.raises(ValueError, match="the loss is nan: the logits Z hold NaN or Inf"):
            loss.forward(Z, y)
        assert np.isfinite(loss.forward(Z, y, np.array([False, True, True])))    # the NaN row is masked out
    with pytest.raises(ValueError, match="the loss is inf: P or Y hold NaN or Inf"):
        MSELoss().forward(np.array([1.0, np.inf]), np.zeros(2))


def test_activations_refuse_a_list_by_name():
    """A non-array used to pass the dtype check as float64 (NumPy reads None as float64) and fail deeper."""
    for act, op in ((ReLU(), "relu"), (ELU(), "elu"), (LeakyReLU(), "leaky_relu")):
        with pytest.raises(TypeError, match=rf"ops.{op}: x must be float32 or float64, got list"):
            act.forward([[1.0, -1.0]])
