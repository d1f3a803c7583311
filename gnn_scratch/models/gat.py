"""The graph attention network of Velickovic et al. (2018), Cora architecture."""
import numpy as np

from ..nn import ELU, Dropout, Sequential
from ..nn.checks import positive_int
from ..nn.conv.gat_conv import GATConv
from .registry import register
from .common import child_seeds


@register
class GAT(Sequential):
    """Two-layer graph attention network (Velickovic et al., 2018), Cora architecture.

    dropout -> GATConv(F_in, hidden, heads, concat) -> ELU -> dropout -> GATConv(heads*hidden, C, 1 head, mean).
    x: (N, F_in) (dense or scipy.sparse), returns logits (N, C). Both convolutions drop attention
    coefficients with the same probability ``dropout`` as the features. Paper hyper-parameters
    (Cora, CiteSeer): hidden 8, heads 8, dropout 0.6, Adam lr 0.005, L2 5e-4 on every parameter
    (no ``param_groups``: the trainer then decays all parameters), 1000 epochs, patience 100.
    ``fused`` picks the fused kernels (default) or the composed foundation ops in both layers; the
    GPU takes fused=True only.
    """

    name = "gat"
    devices = ("cpu", "cuda")
    model_defaults = dict(hidden_channels=8, heads=8, dropout=0.6)                  # constructor arguments
    train_defaults = dict(lr=0.005, weight_decay=5e-4, epochs=1000, patience=100)  # Adam, early stopping

    def __init__(self, in_channels, out_channels, hidden_channels=8, heads=8, dropout=0.6, seed=0,
                 dtype="float32", fused=True):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        s = child_seeds(seed, 4)
        dtype = np.dtype(dtype)
        super().__init__(
            drop1=Dropout(dropout, seed=s[0]),
            conv1=GATConv(in_channels, hidden_channels, heads=heads, concat=True, dropout=dropout, seed=s[1],
                          dtype=dtype, fused=fused),
            act1=ELU(),
            drop2=Dropout(dropout, seed=s[2]),
            conv2=GATConv(heads * hidden_channels, out_channels, heads=1, concat=False, dropout=dropout,
                          seed=s[3], dtype=dtype, fused=fused),
        )
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels,
                           hidden_channels=hidden_channels, heads=heads, dropout=dropout, seed=seed,
                           dtype=dtype.name, fused=fused)
