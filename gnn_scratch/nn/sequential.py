"""A chain of layers sharing one graph: forward in order, backward in reverse."""
from .module import Module


class Sequential(Module):
    """y = f_k(... f_1(x, graph) ..., graph); backward runs the chain rule from f_k down to f_1."""

    def __init__(self, **layers):
        super().__init__()
        self._order = list(layers)
        for name, layer in layers.items():
            setattr(self, name, layer)

    def layers(self):
        return [getattr(self, name) for name in self._order]

    def forward(self, x, graph=None):
        for layer in self.layers():
            x = layer.forward(x, graph)
        return x

    def backward(self, grad_out):
        for layer in reversed(self.layers()):
            if grad_out is None:  # below a sparse input there is nothing left to differentiate
                break
            grad_out = layer.backward(grad_out)
        return grad_out
