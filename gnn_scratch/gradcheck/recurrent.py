"""Gradient checks through time (derivations/recurrent.md): cells unrolled over several steps, every parameter,
every step's input and the initial state(s), full and truncated BPTT, in float64 on the fixture graphs."""
import numpy as np

from ..nn.recurrent import GConvGRU, Recurrent
from . import DEFAULT_TOL, Row, numerical_gradient, random_test_graph, relative_error, roundoff_floor
from .registry import case

F64 = np.float64


def check_sequence(name, cell, xs, graph, states0, seed=0, bptt=None, **cell_kwargs):
    """Rows for every parameter of ``cell``, every input x_t and every initial state, through
    L = sum_t sum(G_t * H_t) over the outputs of ``Recurrent(cell, bptt)`` (random G_t).

    With ``bptt`` the reference is not the full derivative: it is the sum over chunks of each chunk's
    derivative with the chunk's incoming state held fixed (``truncated_loss``), which is what
    truncation computes.
    """
    rnn = Recurrent(cell, bptt=bptt)
    states0 = tuple(states0)
    rng = np.random.default_rng(seed)
    Gs = [rng.standard_normal((xs[0].shape[0], cell.out_channels)) for _ in xs]
    outs = rnn.forward(xs, graph, *states0, **cell_kwargs)
    floor = roundoff_floor(sum(np.sum(np.abs(G * o)) for G, o in zip(Gs, outs)))
    rnn.zero_grad()
    dxs = rnn.backward(Gs)
    dstates = rnn.state_grad if cell.num_states > 1 else (rnn.state_grad,)

    if bptt is None:
        def loss():
            return sum(float(np.sum(G * o)) for G, o in zip(Gs, rnn.forward(xs, graph, *states0, **cell_kwargs)))
    else:
        loss = truncated_loss(cell, xs, graph, states0, Gs, bptt, cell_kwargs)

    rows = []
    for pname, p, g in rnn.named_parameters():
        err = relative_error(g, numerical_gradient(loss, p), floor)
        rows.append(Row(name, pname, p.shape, err, err < DEFAULT_TOL))
    for t, (x, dx) in enumerate(zip(xs, dxs)):
        err = relative_error(dx, numerical_gradient(loss, x), floor)
        rows.append(Row(name, f"x_{t}", x.shape, err, err < DEFAULT_TOL))
    for k, (s, ds) in enumerate(zip(states0, dstates)):
        err = relative_error(ds, numerical_gradient(loss, s), floor)
        rows.append(Row(name, f"state0[{k}]", s.shape, err, err < DEFAULT_TOL))
    return rows


def truncated_loss(cell, xs, graph, states0, Gs, bptt, cell_kwargs):
    """L_trunc(theta, x, S_0) = sum over chunks c of L_c(theta, x_c, S_c), where S_c, the state entering chunk
    c, is computed once at the unperturbed point and then held fixed (except S_0, a true input):
    the function whose gradient truncated BPTT returns."""
    rnn = Recurrent(cell)
    starts = list(range(0, len(xs), bptt))
    entering = [tuple(states0)]
    for a in starts[1:]:                       # the states at the chunk boundaries, computed once
        rnn.forward(xs[:a], graph, *states0, **cell_kwargs)
        fs = rnn.final_state
        entering.append(tuple(np.array(s) for s in (fs if cell.num_states > 1 else (fs,))))

    def loss():
        total = 0.0
        for c, a in enumerate(starts):
            S = states0 if c == 0 else entering[c]
            outs = rnn.forward(xs[a:a + bptt], graph, *S, **cell_kwargs)
            total += sum(float(np.sum(G * o)) for G, o in zip(Gs[a:a + bptt], outs))
        return total
    return loss


def _sequence(seed, T, n, f):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, f)) for _ in range(T)]


@case("GConvGRU through time")
def gconv_gru():
    g = random_test_graph(0)
    rows = []
    for K, norm in ((1, "sym"), (3, "sym"), (2, "rw"), (2, None)):
        cell = GConvGRU(3, 4, K=K, normalization=norm, seed=K, dtype=F64)
        H0 = 0.5 * np.random.default_rng(K).standard_normal((8, 4))
        rows += check_sequence(f"GConvGRU K={K} {norm} (4 steps)", cell, _sequence(K, 4, 8, 3), g, (H0,), seed=K,
                               **({"lambda_max": 3.0} if norm is None else {}))
    cell = GConvGRU(3, 5, K=2, seed=9, dtype=F64)
    rows += check_sequence("GConvGRU K=2 truncated bptt=2 (5 steps)", cell, _sequence(9, 5, 8, 3), g,
                           (0.5 * np.random.default_rng(9).standard_normal((8, 5)),), seed=9, bptt=2)
    return rows


@case("Forecasters + MSELoss")
def forecasters():
    """Every registered temporal model (cell, ReLU, Linear) under the real loss, on a window read as features
    (one step) and as a sequence (three steps carrying the state): every parameter and every input step."""
    from ..models import MODELS
    from ..nn import MSELoss
    g = random_test_graph(4)
    rng = np.random.default_rng(4)
    rows = []
    for name in sorted(n for n, c in MODELS.items() if getattr(c, "temporal", False)):
        for T, F in ((1, 3), (3, 1)):
            if T > 1 and getattr(MODELS[name], "reads_window", False):
                continue
            model = MODELS[name](in_channels=F, out_channels=2, hidden_channels=4, seed=5, dtype=F64)
            xs = [rng.standard_normal((8, F)) for _ in range(T)]
            Y = rng.standard_normal((8, 2))
            loss_fn = MSELoss()

            def loss(model=model, xs=xs, Y=Y, loss_fn=loss_fn):
                return float(loss_fn.forward(model.forward(xs, g), Y))
            value = loss()
            model.zero_grad()
            dxs = model.backward(loss_fn.backward())
            floor = roundoff_floor(abs(value))
            label = f"{name} ({'features' if T == 1 else 'sequence'})"
            for pname, p, gr in model.named_parameters():
                err = relative_error(gr, numerical_gradient(loss, p), floor)
                rows.append(Row(label, pname, p.shape, err, err < DEFAULT_TOL))
            for t, (x, dx) in enumerate(zip(xs, dxs)):
                err = relative_error(dx, numerical_gradient(loss, x), floor)
                rows.append(Row(label, f"x_{t}", x.shape, err, err < DEFAULT_TOL))
    return rows
