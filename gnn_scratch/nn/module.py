"""The layer contract: parameters and their gradients, an explicit forward and backward.

A layer keeps ``params`` and ``grads`` (dicts with the same keys, arrays of the same shapes).
``forward(x, graph)`` computes the output and overwrites one cache with what ``backward`` needs;
``backward(grad_out)`` returns the gradient of the loss w.r.t. ``x`` and *adds* into ``grads``
(fan-out -- an input used on two paths -- is correct only if every path's gradient is added).
Gradients are zeroed in one place: ``zero_grad``. The graph is an argument, never layer state, so
a trained layer runs on graphs it never saw.
"""
import numpy as np

from .. import ops
from ..device import check_device, copy_, to, to_host


class BackwardBeforeForward(RuntimeError):
    """Raised when ``backward`` is called with no ``forward`` before it."""


class Module:
    """Base class: a node of the model tree holding ``params``, ``grads`` and child modules."""

    def __init__(self):
        self.params = {}
        self.grads = {}
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
        """Move every parameter and gradient of the tree to ``device`` ("cuda" or "cpu"); returns self.

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
            for arrays in (m.params, m.grads):
                for k in arrays:
                    arrays[k] = to(arrays[k], device)
            m._cache = None
        return self

    def state_dict(self):
        """Copies of every parameter, by qualified name."""
        return {name: np.array(to_host(p)) for name, p, _ in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy parameters in place from ``state``; names and shapes must match exactly."""
        own = {name: p for name, p, _ in self.named_parameters()}
        missing, extra = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or extra:
            raise ValueError(f"state does not match the model: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for name, p in own.items():
            v = np.asarray(state[name])
            if v.shape != p.shape:
                raise ValueError(f"parameter {name} must have shape {p.shape}, got {v.shape}")
            copy_(p, v)
