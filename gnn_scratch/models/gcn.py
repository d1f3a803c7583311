"""The two-layer GCN of Kipf & Welling (2017) for semi-supervised node classification."""
import numpy as np

from ..nn import GCNConv, Dropout, ReLU, Sequential
from .registry import register
from .common import child_seeds


@register
class GCN(Sequential):
    """Two-layer graph convolutional network (Kipf & Welling, 2017).

    dropout -> GCNConv(F_in, hidden) -> ReLU -> dropout -> GCNConv(hidden, C); x: (N, F_in) dense or
    scipy.sparse, returns logits (N, C). Paper hyper-parameters: hidden 16, dropout 0.5, Adam lr
    0.01, L2 5e-4 on the first layer only (``param_groups``), 200 epochs, patience 100.
    """

    name = "gcn"
    devices = ("cpu", "cuda")
    model_defaults = dict(hidden_channels=16, dropout=0.5)                          # constructor arguments
    train_defaults = dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=100)    # Adam, early stopping

    def __init__(self, in_channels, out_channels, hidden_channels=16, dropout=0.5, seed=0, dtype="float32"):
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

    def param_groups(self, weight_decay):
        """Kipf & Welling's groups: L2 ``weight_decay`` on the first layer, none on the second."""
        return [{"params": self.conv1.parameters(), "weight_decay": weight_decay},
                {"params": self.conv2.parameters(), "weight_decay": 0.0}]
