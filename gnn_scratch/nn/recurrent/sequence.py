"""A cell unrolled over a sequence, with backpropagation through time, full or truncated.

``Recurrent(cell)`` runs ``cell`` over inputs x_0 .. x_{T-1} on one graph, carrying the state:
    S_0 = initial state (zeros by default),  S_{t+1} = cell(x_t, graph, S_t),  output [H_1 .. H_T]
and its backward walks the steps in reverse, adding each step's upstream gradient dL/dH_t to the
gradient carried back from step t + 1 (derivations/recurrent.md, "Through time").

Truncated BPTT (``bptt=k``): the steps are cut into chunks of k (steps 0..k-1, k..2k-1, ...) and no
gradient crosses a chunk boundary: the state a chunk starts from is treated as a constant. The
parameter gradient is then the sum over chunks of each chunk's own gradient -- what detaching the
state every k steps gives in an autograd framework, at the cost of forgetting dependencies longer
than k steps. The forward is unchanged.
"""
from ... import ops
from ...device import zeros_like
from ..checks import positive_int
from ..module import Module
from .cell import RecurrentCell


class Recurrent(Module):
    """Unroll ``cell`` (a ``RecurrentCell``) over a sequence; ``bptt`` None (full) or k (truncated at k steps).

    forward(xs, graph, *state, **cell_kwargs): xs a sequence of T >= 1 inputs (each (N, F_in), e.g. a
    list, or an array (T, N, F_in)); ``state`` the initial state(s) (H, or H, C for an LSTM cell;
    omitted = zeros); ``cell_kwargs`` go to every step (e.g. lambda_max). Returns the list of the T
    outputs H_1 .. H_T ((N, out_channels) each); ``final_state`` holds the last state(s).
    backward(grads): ``grads`` a list of T upstream gradients dL/dH_t, None where step t's output
    feeds no loss (e.g. all but the last for a model reading only the final state). Returns the list
    of T input gradients (None entries when the cell's ``needs_input_grad`` is False) and sets
    ``state_grad`` to the gradient(s) w.r.t. the initial state(s) (zeros beyond the first chunk's
    reach under truncation). Raises ValueError for an empty sequence or a ``grads`` of another length.
    """

    def __init__(self, cell, bptt=None):
        super().__init__()
        if not isinstance(cell, RecurrentCell):
            raise TypeError(f"cell must be a RecurrentCell (GConvGRU, GConvLSTM, TGCN, DCRNN, ...), "
                            f"got {type(cell).__name__}")
        self.cell = cell
        self.bptt = None if bptt is None else positive_int("bptt", bptt)
        self.final_state = None
        self.state_grad = None

    def __repr__(self):
        return f"Recurrent({self.cell!r}, bptt={self.bptt})"

    def forward(self, xs, graph=None, *state, **cell_kwargs):
        T = len(xs)
        if T == 0:
            raise ValueError("xs must hold at least one time step, got an empty sequence")
        if len(state) > self.cell.num_states:
            raise ValueError(f"{type(self.cell).__name__} has {self.cell.num_states} state(s), "
                             f"got {len(state)} initial states")
        self.cell.reset()
        state = tuple(state) + (None,) * (self.cell.num_states - len(state))
        outputs = []
        for t in range(T):
            out = self.cell.forward(xs[t], graph, *state, **cell_kwargs)
            state = out if isinstance(out, tuple) else (out,)
            outputs.append(state[0])
        self._cache = T
        self.final_state = state if self.cell.num_states > 1 else state[0]
        return outputs

    def backward(self, grads):
        T = self._saved()
        if len(grads) != T:
            raise ValueError(f"grads must hold one gradient per step ({T}), got {len(grads)}")
        n = self.cell.num_states
        carried = None                                    # dL/dS_{t+1} from the steps after t, per state
        dxs = [None] * T
        for t in reversed(range(T)):
            dS = list(carried) if carried is not None else [None] * n
            if grads[t] is not None:
                dS[0] = grads[t] if dS[0] is None else ops.add_(dS[0], grads[t])
            like = grads[t] if grads[t] is not None else next((d for d in dS if d is not None), None)
            if like is None:                              # nothing reaches this step: no loss at or after t yet
                like = self._zero_like_state()
            dS = [zeros_like(like) if d is None else d for d in dS]
            dx, *dprev = self.cell.backward(*dS)
            dxs[t] = dx
            cut = self.bptt is not None and t % self.bptt == 0 and t > 0
            carried = None if cut else dprev
        self.state_grad = None if carried is None else (tuple(carried) if n > 1 else carried[0])
        self._cache = None
        return dxs

    def _zero_like_state(self):
        out = self.final_state if self.cell.num_states == 1 else self.final_state[0]
        return zeros_like(out)
