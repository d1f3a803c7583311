"""The layer contract: parameters and their gradients, an explicit forward and backward.

A layer keeps ``params`` and ``grads`` (dicts with the same keys, arrays of the same shapes).
``forward(x, graph)`` computes the output and overwrites one cache with what ``backward`` needs;
``backward(grad_out)`` returns the gradient of the loss w.r.t. ``x`` and *adds* into ``grads``
(fan-out -- an input used on two paths -- is correct only if every path's gradient is added).
Gradients are zeroed in one place: ``zero_grad``. The graph is an argument, never layer state, so
a trained layer runs on graphs it never saw. ``buffers`` (a dict) holds state that is kept but not
trained (BatchNorm's running statistics): ``to`` moves it and ``state_dict`` saves it with the
parameters; the optimiser never sees it.

The upstream gradient is checked here, once for every layer: ``Module.__init_subclass__`` wraps each
subclass's ``forward`` to record the (shape, dtype) of an array it returns, and its ``backward`` to
refuse a ``grad_out`` of another shape (ValueError) or dtype (TypeError) before any kernel runs (a
wrong-shaped gradient would make a sparse kernel read rows it does not own). A forward that returns
no array (a tuple, a loss) records nothing, and a failed forward drops the cache.
"""
import functools

import numpy as np

from .. import ops
from ..device import check_device, copy_, to, to_host
from . import checks


class BackwardBeforeForward(RuntimeError):
    """Raised when ``backward`` is called with no ``forward`` before it."""


def _output_spec(out):
    """(shape, dtype) of an array (host, device or sparse), None for anything else."""
    if hasattr(out, "shape") and hasattr(out, "dtype"):
        return tuple(out.shape), np.dtype(out.dtype)
    return None


def check_grad_out(grad_out, spec, name="grad_out"):
    """Raise unless ``grad_out`` has the (shape, dtype) ``spec`` of the forward's output."""
    shape, dtype = spec
    if not (hasattr(grad_out, "shape") and hasattr(grad_out, "dtype")):
        raise TypeError(f"{name} must be an array of shape {shape} and dtype {dtype} like the forward's output, "
                        f"got {type(grad_out).__name__}")
    if tuple(grad_out.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} like the forward's output, got {tuple(grad_out.shape)}")
    if grad_out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} like the forward's output, got {grad_out.dtype}")


def _recording(forward):
    """``forward`` that records its output's (shape, dtype); only the outermost call of a super() chain records."""
    @functools.wraps(forward)
    def forward_recording(self, *args, **kwargs):
        if self._in_forward:
            return forward(self, *args, **kwargs)
        self._output = None
        self._in_forward = True
        checks.forward_depth += 1
        try:
            if checks.forward_depth == 1:       # the user's call: its inputs are scanned once, here
                checks.scan_inputs(self, args, kwargs)
            out = forward(self, *args, **kwargs)
        except BaseException:
            self._cache = None                  # a failed forward leaves nothing for backward to trust
            raise
        finally:
            self._in_forward = False
            checks.forward_depth -= 1
        self._output = _output_spec(out)
        return out
    forward_recording._records_output = True
    return forward_recording


def _checking(backward):
    """``backward`` that first checks its upstream gradient against the recorded output (outermost call only)."""
    @functools.wraps(backward)
    def backward_checking(self, *args, **kwargs):
        if self._in_backward:
            return backward(self, *args, **kwargs)
        if self._output is not None and (args or "grad_out" in kwargs):
            check_grad_out(args[0] if args else kwargs["grad_out"], self._output)
        self._in_backward = True
        try:
            return backward(self, *args, **kwargs)
        finally:
            self._in_backward = False
    backward_checking._checks_grad_out = True
    return backward_checking


class Module:
    """Base class: a node of the model tree holding ``params``, ``grads`` and child modules."""

    _output = None          # (shape, dtype) of the last forward's output, checked against grad_out
    _in_forward = False     # inside a forward (a subclass calling super().forward is not recorded twice)
    _in_backward = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "forward" in own and not getattr(own["forward"], "_records_output", False):
            cls.forward = _recording(own["forward"])
        if "backward" in own and not getattr(own["backward"], "_checks_grad_out", False):
            cls.backward = _checking(own["backward"])

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}       # state that is not trained (BatchNorm's running statistics): moved and saved
        self.training = True
        self._cache = None

    # --- the two methods every layer writes -------------------------------------------------
    def forward(self, x, graph=None):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, x, graph=None):
        return self.forward(x, graph)

    # --- bookkeeping -------------------------------------------------------------------------
    def add_param(self, name, value):
        """Register a parameter and a zero gradient of the same shape and dtype."""
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def _saved(self):
        """The forward cache, or a clear error when backward comes first."""
        if self._cache is None:
            raise BackwardBeforeForward(
                f"{type(self).__name__}.backward called before forward: there is nothing to differentiate")
        return self._cache

    @property
    def param_dtype(self):
        """The dtype of the parameters (of the first one), None for a layer without any."""
        for p in self.params.values():
            return np.dtype(p.dtype)
        return None

    def children(self):
        """Direct child modules, in attribute order: (name, module) pairs."""
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def modules(self, prefix=""):
        """This module and all descendants: (qualified name, module) pairs, depth first."""
        out = [(prefix, self)]
        for name, child in self.children():
            out += child.modules(f"{prefix}.{name}" if prefix else name)
        return out

    def named_parameters(self):
        """Every parameter of the tree: (qualified name, param array, grad array) triples."""
        return [(f"{mod_name}.{k}" if mod_name else k, m.params[k], m.grads[k])
                for mod_name, m in self.modules() for k in m.params]

    def named_buffers(self):
        """Every buffer of the tree (state kept but not trained): (qualified name, array) pairs."""
        return [(f"{mod_name}.{k}" if mod_name else k, v)
                for mod_name, m in self.modules() for k, v in getattr(m, "buffers", {}).items()]

    def parameters(self):
        """(param, grad) array pairs of the whole tree; the optimiser updates them in place."""
        return [(p, g) for _, p, g in self.named_parameters()]

    def zero_grad(self):
        """Set every gradient of the tree to zero, in place."""
        for _, _, g in self.named_parameters():
            ops.zero_(g)

    def train(self, mode=True):
        """Switch the tree to training (dropout active) or evaluation mode; returns self."""
        for _, m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Move every parameter, gradient and buffer of the tree to ``device`` ("cuda" or "cpu"); returns self.

        The arrays are replaced in the ``params`` / ``grads`` dicts (a device copy, or a host copy
        back), and forward caches are dropped. An optimiser holds the arrays themselves, so create
        it after moving the model; its state is then created on the parameters' device. Raises
        RuntimeError when there is no GPU (nor the numba CUDA simulator), and ValueError (one line,
        before anything moves) when a layer's ``check_device_support()`` says an option of it has
        no device path.
        """
        if check_device(device) != "cpu":   # refuse before anything moves, naming the option that has no device path
            for _, m in self.modules():
                if hasattr(m, "check_device_support"):
                    m.check_device_support()
        for _, m in self.modules():
            for arrays in (m.params, m.grads, getattr(m, "buffers", {})):
                for k in arrays:
                    arrays[k] = to(arrays[k], device)
            m._cache = None
        return self

    def state_dict(self):
        """Copies of every parameter and buffer, by qualified name."""
        return {name: np.array(to_host(p)) for name, p in self._state_arrays().items()}

    def _state_arrays(self):
        return {**{name: p for name, p, _ in self.named_parameters()}, **dict(self.named_buffers())}

    def load_state_dict(self, state):
        """Copy parameters in place from ``state``; names and shapes must match exactly."""
        own = self._state_arrays()
        missing, extra = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or extra:
            raise ValueError(f"state does not match the model: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for name, p in own.items():
            v = np.asarray(state[name])
            if v.shape != p.shape:
                raise ValueError(f"parameter {name} must have shape {p.shape}, got {v.shape}")
            copy_(p, v)
