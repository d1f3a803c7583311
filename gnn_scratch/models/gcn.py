"""The two-layer GCN of Kipf & Welling (2017) for semi-supervised node classification."""
import numpy as np

from ..nn import GCNConv, Dropout, ReLU, Sequential
from ..nn.checks import positive_int
from .registry import register
from .common import child_seeds


@register
class GCN(Sequential):
    """Two-layer graph convolutional network (Kipf & Welling, 2017).

    dropout -> GCNConv(F_in, hidden) -> ReLU -> dropout -> GCNConv(hidden, C); x: (N, F_in) dense or
    scipy.sparse, returns logits (N, C). Paper hyper-parameters: hidden 16, dropout 0.5, Adam lr
    0.01, L2 5e-4 on the first layer only (``param_groups``), 200 epochs, patience 100.

    In evaluation mode (dropout the identity) with both layers in the order A_hat (H W) (C <= hidden, and
    hidden <= F_in or a sparse x) and a bias on the first, the hidden layer's output times the second layer's W
    runs as one op (``GCNConv.forward_product``): the (N, hidden) activations are never written to memory, the
    same bits as the layers one by one. The layers then keep nothing for a backward; a ``backward`` after such a
    forward first runs the layers one by one on the same input, in evaluation mode and with the parameters as
    they are then, for the caches it needs.
    """

    name = "gcn"
    devices = ("cpu", "cuda")
    model_defaults = dict(hidden_channels=16, dropout=0.5)                          # constructor arguments
    train_defaults = dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=100)    # Adam, early stopping

    def __init__(self, in_channels, out_channels, hidden_channels=16, dropout=0.5, seed=0, dtype="float32"):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        s = child_seeds(seed, 4)
        dtype = np.dtype(dtype)
        super().__init__(
            drop1=Dropout(dropout, seed=s[0]),
            conv1=GCNConv(in_channels, hidden_channels, seed=s[1], dtype=dtype),
            act1=ReLU(),
            drop2=Dropout(dropout, seed=s[2]),
            conv2=GCNConv(hidden_channels, out_channels, seed=s[3], dtype=dtype),
        )
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels,
                           hidden_channels=hidden_channels, dropout=dropout, seed=seed, dtype=dtype.name)

    def _fuses(self, x):
        """Whether the evaluation-mode forward runs as ``forward_product`` then ``forward_transformed``."""
        layers = self.layers()
        return ([type(m) for m in layers] == [Dropout, GCNConv, ReLU, Dropout, GCNConv]
                and not any(m.training for m in layers)
                and self.conv1.fuses_next_product(x) and self.conv2.in_channels == self.conv1.out_channels
                and self.conv2.out_channels <= self.conv2.in_channels)   # conv2's dense input: A_hat (H W)

    def forward(self, x, graph=None):
        if not self._fuses(x):
            return super().forward(x, graph)
        Z = self.conv1.forward_product(self.drop1.forward(x, graph), graph, self.conv2.params["W"], relu=True)
        out = self.conv2.forward_transformed(Z, graph)      # drop2 is the identity in evaluation mode
        self.act1._cache = self.drop2._cache = None         # nothing of an earlier forward stays for a backward
        self._cache = _FusedForward(x, graph)
        return out

    def backward(self, grad_out):
        cache = self._saved()
        if isinstance(cache, _FusedForward):   # the layers kept nothing: run them one by one, as that forward ran
            modes = [(m, m.training) for _, m in self.modules()]
            self.eval()
            try:
                Sequential.forward(self, cache.x, cache.graph)
            finally:
                for m, mode in modes:
                    m.training = mode
        return super().backward(grad_out)

    def param_groups(self, weight_decay):
        """Kipf & Welling's groups: L2 ``weight_decay`` on the first layer, none on the second."""
        return [{"params": self.conv1.parameters(), "weight_decay": weight_decay},
                {"params": self.conv2.parameters(), "weight_decay": 0.0}]


class _FusedForward:
    """The cache of a fused evaluation-mode forward: its input, for a backward that asks for one."""

    def __init__(self, x, graph):
        self.x, self.graph = x, graph
