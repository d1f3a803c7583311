"""The GIN training step's fast paths give the bits of the plain ones.

* ``ops.batch_norm_relu`` / ``batch_norm_relu_backward`` (BatchNorm then ReLU in one pass) equal
  ``relu(batch_norm(...))`` and ``batch_norm_backward(relu_backward(G), ...)`` bit for bit on the
  host kernels, and ``Sequential`` / the GIN model use them;
* ``nn.flat.flatten_parameters`` + the optimisers' one-call update of a flat group equal the
  per-parameter updates bit for bit;
* GIN trained a few steps with both fast paths equals the plain layer-by-layer step, same seed.
"""
import types

import numpy as np
import pytest

from gnn_scratch import ops
from gnn_scratch.bench.graphs import synthetic_tu
from gnn_scratch.kernels import registry
from gnn_scratch.loop import train_step
from gnn_scratch.models import build_model
from gnn_scratch.nn import BatchNorm1d, Linear, ReLU, Sequential, SoftmaxCrossEntropy
from gnn_scratch.nn.flat import flat_span, flatten_parameters
from gnn_scratch.nn.module import _checking, _recording
from gnn_scratch.optim import SGD, Adam


def _bn_inputs(dtype, N=300, F=20, seed=0):
    g = np.random.default_rng(seed)
    x = (1.0 + 2.0 * g.standard_normal((N, F))).astype(dtype)
    G = g.standard_normal((N, F)).astype(dtype)
    gamma = g.uniform(0.5, 1.5, F).astype(dtype)
    beta = g.uniform(-0.5, 0.5, F).astype(dtype)
    return x, G, gamma, beta


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("batch_stats", [True, False])
def test_batch_norm_relu_is_the_composition_bit_for_bit(backend, dtype, affine, batch_stats):
    x, G, gamma, beta = _bn_inputs(dtype)
    if not affine:
        gamma = beta = None
    registry.set_cpu_backend(backend)
    try:
        if batch_stats:
            mean, var = ops.batch_norm_stats(x)
        else:
            mean, var = x.mean(axis=0).astype(dtype) + dtype(0.1), x.var(axis=0).astype(dtype) + dtype(0.3)
        y, pos = ops.relu(ops.batch_norm(x, mean, var, 1e-5, gamma, beta))
        y2, pos2 = ops.batch_norm_relu(x, mean, var, 1e-5, gamma, beta)
        want = ops.batch_norm_backward(ops.relu_backward(G, pos), x, mean, var, 1e-5, gamma, batch_stats)
        got = ops.batch_norm_relu_backward(G, pos2, x, mean, var, 1e-5, gamma, batch_stats)
    finally:
        registry.set_cpu_backend("cpu")
    assert pos2.dtype == np.bool_ and 0.2 < pos2.mean() < 0.8           # both sides of the kink are exercised
    np.testing.assert_array_equal(pos2, pos)
    assert y2.dtype == y.dtype and y2.tobytes() == y.tobytes()
    for w, o in zip(want, got):
        assert o.dtype == w.dtype and o.tobytes() == w.tobytes()


def test_batch_norm_relu_errors_name_the_argument():
    x, G, gamma, beta = _bn_inputs(np.float32, N=10, F=3)
    mean, var = ops.batch_norm_stats(x)
    with pytest.raises(TypeError, match="pos must be the forward's bool mask"):
        ops.batch_norm_relu_backward(G, (G > 0).astype(np.float32), x, mean, var, 1e-5, gamma)
    with pytest.raises(ValueError, match="pos must have shape"):
        ops.batch_norm_relu_backward(G, (G > 0)[:5], x, mean, var, 1e-5, gamma)
    with pytest.raises(ValueError, match="give both gamma and beta"):
        ops.batch_norm_relu(x, mean, var, 1e-5, gamma, None)


def _layer_by_layer(seq, x, G):
    out = x
    for layer in seq.layers():
        out = layer.forward(out)
    dx = G
    for layer in reversed(seq.layers()):
        dx = layer.backward(dx)
    return out, dx


@pytest.mark.parametrize("train", [True, False])
def test_sequential_fuses_batchnorm_relu_with_the_same_bits(train, monkeypatch):
    x, G, _, _ = _bn_inputs(np.float32, N=50, F=6)

    def mlp():
        seq = Sequential(lin=Linear(6, 6, seed=3), bn=BatchNorm1d(6), act=ReLU(), lin2=Linear(6, 6, seed=4))
        return seq.train(train)

    a, b = mlp(), mlp()
    out_a, dx_a = _layer_by_layer(a, x, G)
    calls = []
    real = ops.batch_norm_relu
    monkeypatch.setattr(ops, "batch_norm_relu", lambda *args: calls.append(1) or real(*args))
    out_b = b.forward(x)
    dx_b = b.backward(G)
    assert calls == [1]                                   # the fused op ran, once
    assert b.act._cache is None                           # ... and the ReLU module did not
    assert out_b.tobytes() == out_a.tobytes() and dx_b.tobytes() == dx_a.tobytes()
    for (name, _, ga), (_, _, gb) in zip(a.named_parameters(), b.named_parameters()):
        assert ga.tobytes() == gb.tobytes(), name
    for (name, ra), (_, rb) in zip(a.named_buffers(), b.named_buffers()):
        assert ra.tobytes() == rb.tobytes(), name


def test_flat_span_takes_only_arrays_tiling_one_buffer():
    buf = np.arange(10.0)
    a, b, c = buf[0:4].reshape(2, 2), buf[4:7], buf[7:10]
    assert np.shares_memory(flat_span([a, b, c]), buf) and flat_span([a, b, c]).size == 10
    assert flat_span([b, c]).size == 6 and flat_span([b, c])[0] == 4.0
    assert flat_span([a, c]) is None                      # a gap
    assert flat_span([b, a]) is None                      # out of order
    assert flat_span([a, b, b]) is None                   # one twice
    assert flat_span([buf[::2]]) is None                  # not contiguous
    assert flat_span([np.zeros(3), np.zeros(2)]) is None  # separate arrays
    assert flat_span([]) is None


@pytest.mark.parametrize("opt_cls, kw", [(Adam, dict(lr=0.01, weight_decay=5e-4)), (SGD, dict(lr=0.1, momentum=0.9))])
def test_flat_group_updates_equal_per_parameter_updates(opt_cls, kw):
    def model():
        return Sequential(a=Linear(5, 7, seed=1), b=Linear(7, 3, seed=2))

    flat, plain = model(), model()
    assert flatten_parameters(flat) and flatten_parameters(flat)        # the second call finds it flat already
    for (_, p, g), (_, q, h) in zip(flat.named_parameters(), plain.named_parameters()):
        assert p.tobytes() == q.tobytes() and p.shape == q.shape and g.shape == h.shape
    o_flat, o_plain = opt_cls(flat.parameters(), **kw), opt_cls(plain.parameters(), **kw)
    assert o_flat._flat[0] is not None and o_plain._flat[0] is None
    g = np.random.default_rng(0)
    for _ in range(4):
        o_flat.zero_grad()
        o_plain.zero_grad()
        for (_, _, gf), (_, _, gp) in zip(flat.named_parameters(), plain.named_parameters()):
            assert not gf.any()
            gp += g.standard_normal(gp.shape).astype(gp.dtype)
            gf += gp
        o_flat.step()
        o_plain.step()
        for (name, p, _), (_, q, _) in zip(flat.named_parameters(), plain.named_parameters()):
            assert p.tobytes() == q.tobytes(), name


def test_flatten_leaves_shared_or_mixed_parameters_alone():
    shared = Sequential(a=Linear(3, 3, seed=1), b=Linear(3, 3, seed=2))
    shared.b.params["W"] = shared.a.params["W"]
    assert not flatten_parameters(shared)
    mixed = Sequential(a=Linear(3, 3, seed=1), b=Linear(3, 3, seed=2, dtype=np.float64))
    assert not flatten_parameters(mixed)
    assert not flatten_parameters(Sequential(act=ReLU()))


# ------------------------------------------------------------------ the GIN step, fast against plain
def _plain_gin_forward(self, x, batch):
    h, score = x, None
    for l in range(self.num_layers):
        if l > 0:
            h = self._layer("act", l).forward(self._layer("norm", l).forward(self._layer("conv", l).forward(h, batch)))
        s_l = self._layer("drop", l).forward(self._layer("lin", l).forward(self._layer("pool", l).forward(h, batch)))
        score = s_l if score is None else ops.add_(score, s_l)
    return score


def _plain_gin_backward(self, G):
    dh = None
    for l in reversed(range(self.num_layers)):
        d_score = self._layer("lin", l).backward(self._layer("drop", l).backward(G))
        if l == 0 and not self.needs_input_grad:
            return None
        d_read = self._layer("pool", l).backward(d_score)
        dh = d_read if dh is None else ops.add_(dh, d_read)
        if l > 0:
            dh = self._layer("conv", l).backward(self._layer("norm", l).backward(self._layer("act", l).backward(dh)))
    return dh


def _plain_seq_forward(self, x, graph=None):
    for layer in self.layers():
        x = layer.forward(x, graph)
    return x


def _plain_seq_backward(self, grad_out):
    for layer in reversed(self.layers()):
        grad_out = layer.backward(grad_out)
    return grad_out


def _make_plain(model):
    """The GIN as it ran before the fast paths: one array per parameter, every layer's own forward / backward."""
    for _, m in model.modules():
        for k in list(m.params):
            m.params[k], m.grads[k] = m.params[k].copy(), m.grads[k].copy()
    model.forward = types.MethodType(_recording(_plain_gin_forward), model)
    model.backward = types.MethodType(_checking(_plain_gin_backward), model)
    for l in range(1, model.num_layers):
        seq = getattr(model, f"conv{l}").nn
        seq.forward = types.MethodType(_recording(_plain_seq_forward), seq)
        seq.backward = types.MethodType(_checking(_plain_seq_backward), seq)
    return model


@pytest.mark.parametrize("train_eps", [False, True])
def test_gin_training_steps_equal_the_plain_layer_by_layer_steps(train_eps):
    d = synthetic_tu(24, seed=1)
    whole, x_all, y_all = d.batch(dtype=np.float32)
    runs = []
    for plain in (False, True):
        model = build_model("gin", in_channels=d.num_features, out_channels=d.num_classes, seed=5,
                            hidden_channels=16, num_layers=4, train_eps=train_eps)
        if plain:
            _make_plain(model)
        opt = Adam([{"params": model.parameters(), "weight_decay": 0.0}], lr=0.01)
        assert (opt._flat[0] is None) == plain
        loss_fn, rng, losses = SoftmaxCrossEntropy(), np.random.default_rng(0), []
        for _ in range(4):
            ids = rng.permutation(d.num_graphs)[:8]
            sub, nodes = whole.select(ids)
            losses.append(float(train_step(model, x_all[nodes], sub, y_all[ids], None, opt, loss_fn)))
        model.eval()
        sub, nodes = whole.select(np.arange(d.num_graphs))
        runs.append((losses, model.state_dict(), np.asarray(model.forward(x_all[nodes], sub))))
    (l_fast, s_fast, e_fast), (l_plain, s_plain, e_plain) = runs
    assert l_fast == l_plain
    assert s_fast.keys() == s_plain.keys()
    for k in s_fast:
        assert np.asarray(s_fast[k]).tobytes() == np.asarray(s_plain[k]).tobytes(), k
    assert e_fast.tobytes() == e_plain.tobytes()


@pytest.mark.parametrize("train_eps", [False, True])
def test_gin_with_data_input_skips_conv1_mlp_input_grad_and_keeps_every_parameter_gradient(train_eps, monkeypatch):
    from gnn_scratch.loop import input_is_data
    d = synthetic_tu(12, seed=2)
    whole, x_all, y_all = d.batch(dtype=np.float32)
    sub, nodes = whole.select(np.arange(8))
    grads = []
    for data_input in (False, True):
        model = build_model("gin", in_channels=d.num_features, out_channels=d.num_classes, seed=1,
                            hidden_channels=8, num_layers=3, train_eps=train_eps)
        loss_fn = SoftmaxCrossEntropy()
        lin1 = model.conv1.nn.lin1
        seen = []
        real = lin1.backward
        monkeypatch.setattr(lin1, "backward", lambda G: seen.append(r := real(G)) or r)
        if data_input:
            with input_is_data(model):
                assert lin1.needs_input_grad == train_eps       # a trained eps reads conv1's dH
                loss_fn.forward(model.forward(x_all[nodes], sub), y_all[:8], None)
                assert model.backward(loss_fn.backward()) is None
            assert lin1.needs_input_grad and model.needs_input_grad      # restored
        else:
            loss_fn.forward(model.forward(x_all[nodes], sub), y_all[:8], None)
            assert model.backward(loss_fn.backward()).shape == (sub.num_nodes, d.num_features)
        assert (seen[0] is None) == (data_input and not train_eps)
        grads.append({name: g.copy() for name, _, g in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        assert grads[0][k].tobytes() == grads[1][k].tobytes(), k
