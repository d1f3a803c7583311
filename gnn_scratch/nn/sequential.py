"""A chain of layers sharing one graph: forward in order, backward in reverse."""
from .activations import ReLU
from .module import Module


class Sequential(Module):
    """y = f_k(... f_1(x, graph) ..., graph); backward runs the chain rule from f_k down to f_1.

    A layer whose class sets ``fuses_relu`` (``BatchNorm1d``, ``GCNConv``, ``SAGEConv``) followed by a ``ReLU``
    (exactly that class) runs as one step, ``layer.forward(x, graph, relu=True)`` -- the same bits, with fewer
    passes over the activations (BatchNorm: one fewer each way; GCNConv in evaluation mode: the bias and the ReLU
    in its SpMM's pass; SAGEConv in evaluation mode: the mean, bias, self term and ReLU in one pass); the ReLU
    module itself is then skipped (its own forward / backward are not called).
    """

    def __init__(self, **layers):
        super().__init__()
        self._order = list(layers)
        for name, layer in layers.items():
            setattr(self, name, layer)
        self._plan = None

    def layers(self):
        return [getattr(self, name) for name in self._order]

    def _steps(self):
        """[(layer, fuse_relu)]: each (fuses_relu layer) -> ReLU pair as one step (the ReLU skipped)."""
        layers = self.layers()
        key = tuple(map(id, layers))
        if self._plan is None or self._plan[0] != key:
            steps, i = [], 0
            while i < len(layers):
                fuse = (getattr(type(layers[i]), "fuses_relu", False) and i + 1 < len(layers)
                        and type(layers[i + 1]) is ReLU)
                steps.append((layers[i], fuse))
                i += 2 if fuse else 1
            self._plan = (key, steps)
        return self._plan[1]

    def forward(self, x, graph=None):
        steps = self._steps()
        self._cache = steps
        for layer, fuse in steps:
            x = layer.forward(x, graph, relu=True) if fuse else layer.forward(x, graph)
        return x

    def backward(self, grad_out):
        for layer, _ in reversed(self._saved()):
            if grad_out is None:  # below a sparse input there is nothing left to differentiate
                break
            grad_out = layer.backward(grad_out)
        return grad_out
