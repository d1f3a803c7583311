"""The recurrent-cell contract: one time step forward, one step backward, states in and out.

A cell is a layer called once per time step on the same graph: ``forward(x, graph, H)`` returns the
new state, ``backward(dH)`` returns ``(dX, dH_prev)``. Backpropagation through time is then a loop:
T forwards, then T backwards in reverse order, each backward handing dH_prev to the step before
(``Recurrent`` in ``sequence.py`` writes that loop once, truncation included).

What makes this work with the layer contract (one cache per layer, overwritten by each forward):
a cell's forward pushes a **frame** -- its own saved arrays plus the caches of all its sub-layers
(the ``ChebConv``s, ``Linear``s it calls) -- onto a stack kept in ``_cache``, and its backward pops
the newest frame and puts the sub-layers' caches back before calling their backward. So the
sub-layers keep their one-cache contract, and a cell costs one frame of memory per step taken
since the stack was last emptied. In evaluation mode (``eval()``) each forward first empties the
stack, so inference over a long sequence holds one frame, not T. ``reset()`` empties it by hand;
moving the cell (``to``) or a failed forward drops it.

Cells with two states (``GConvLSTM``: H and C) have ``num_states = 2``: ``forward(x, graph, H, C)``
returns ``(H, C)`` and ``backward(dH, dC)`` returns ``(dX, dH_prev, dC_prev)``.
"""
from ...device import zeros
from ..checks import check_features
from ..module import BackwardBeforeForward, Module


class RecurrentCell(Module):
    """Base class of recurrent graph cells: the frame stack of backpropagation through time.

    Subclasses set ``out_channels`` (the state width) and ``num_states`` (1, or 2 for an LSTM), build
    their sub-layers as attributes, and in ``forward`` call ``self._push(saved)`` once, in ``backward``
    ``saved = self._pop()`` once. ``needs_input_grad = False`` (set on a cell whose input is data)
    lets the cell skip dX: ``backward`` then returns None in its place.
    """

    num_states = 1
    needs_input_grad = True

    # --- the state -----------------------------------------------------------------------------------
    def initial_state(self, x, state, name="H"):
        """``state`` checked to be (N, out_channels) of x's dtype, or zeros on x's device when None."""
        if state is None:
            return zeros((x.shape[0], self.out_channels), x.dtype, like=x)
        return check_features(state, num_rows=x.shape[0], num_cols=self.out_channels, dtype=x.dtype, name=name)

    # --- the frame stack -----------------------------------------------------------------------------
    def _sublayers(self):
        return [m for _, m in self.modules()[1:]]

    def _push(self, saved):
        """Save ``saved`` and every sub-layer's cache as this step's frame (eval mode keeps only this step)."""
        frames = self._cache if (self._cache is not None and self.training) else []
        frames.append((saved, [(m, m._cache, m._output) for m in self._sublayers()]))
        self._cache = frames

    def _pop(self):
        """The newest frame's ``saved``, with every sub-layer's cache of that step put back."""
        frames = self._saved()
        if not frames:
            raise BackwardBeforeForward(
                f"{type(self).__name__}.backward called more times than forward since the last reset: "
                f"every saved step has been differentiated")
        saved, sub = frames.pop()
        for m, cache, output in sub:
            m._cache, m._output = cache, output
        return saved

    @property
    def saved_steps(self):
        """How many steps are saved for backward (frames on the stack)."""
        return 0 if self._cache is None else len(self._cache)

    def reset(self):
        """Drop every saved step (start of a new sequence, or after a truncated backward)."""
        self._cache = None
        return self
