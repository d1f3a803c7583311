"""A chain of layers sharing one graph: forward in order, backward in reverse."""
from .activations import ReLU
from .module import Module
from .norm import BatchNorm1d


class Sequential(Module):
    """y = f_k(... f_1(x, graph) ..., graph); backward runs the chain rule from f_k down to f_1.

    A ``BatchNorm1d`` followed by a ``ReLU`` (exactly these classes) runs as one fused pass,
    ``BatchNorm1d.forward(x, relu=True)`` -- the same bits, one pass over the activations fewer each
    way; the ReLU module itself is then skipped (its own forward / backward are not called).
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
        """[(layer, fuse_relu)]: each BatchNorm1d -> ReLU pair as one step (the ReLU skipped)."""
        layers = self.layers()
        key = tuple(map(id, layers))
        if self._plan is None or self._plan[0] != key:
            steps, i = [], 0
            while i < len(layers):
                fuse = type(layers[i]) is BatchNorm1d and i + 1 < len(layers) and type(layers[i + 1]) is ReLU
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
