"""The propagation models of Kipf & Welling (2017), Table 3: Chebyshev filters, their first-order truncations, an MLP.

Each is a two-layer network with the paper's hyper-parameters (its §5.2; Table 3 is §6.2): hidden 16,
dropout 0.5 on each layer's input, Adam lr 0.01, L2 5e-4 on every weight of the *first* layer only
("in case of multiple variables Θ_i per layer, we impose L2 regularization on all weight matrices
of the first layer"), 200 epochs at most with early stopping after 10 epochs. The paper stops on the
validation *loss* (window 10); this repository's trainer stops after ``patience`` epochs in which
neither the validation loss nor the validation accuracy improved, and reports the test accuracy of
the epoch of best validation accuracy (``loop.BestEpoch``). The renormalisation-trick row of the
table is ``gcn`` (``models/gcn.py``, patience 100 by default: pass ``patience=10`` for Table 3's
protocol, as ``scripts/kipf_table3.py`` does).

    Table 3 row                          model               propagation (one layer)
    Chebyshev filter, K = 3 / K = 2      cheb (K=3 / K=2)    Σ_{k=0}^{K} T_k(L~) X Θ_k     = ChebConv(K + 1)
    1st-order model                      first_order         X Θ_0 + D^-1/2 A D^-1/2 X Θ_1
    Single parameter                     single_param        (I + D^-1/2 A D^-1/2) X Θ
    Renormalization trick                gcn                 D~^-1/2 A~ D~^-1/2 X Θ
    1st-order term only                  first_order_term    D^-1/2 A D^-1/2 X Θ
    Multi-layer perceptron               mlp                 X Θ
"""
import numpy as np

from ..nn import Dropout, Linear, ReLU, Sequential
from ..nn.checks import positive_int
from ..nn.conv.cheb_conv import ChebConv, FirstOrderConv
from .common import child_seeds
from .registry import register

TABLE3_TRAINING = dict(lr=0.01, weight_decay=5e-4, epochs=200, patience=10)


class TwoLayer(Sequential):
    """dropout -> layer(F_in, hidden) -> ReLU -> dropout -> layer(hidden, C), L2 on the first layer only."""

    devices = ("cpu", "cuda")
    model_defaults = dict(hidden_channels=16, dropout=0.5)
    train_defaults = dict(TABLE3_TRAINING)

    def layer(self, in_channels, out_channels, seed, dtype):
        raise NotImplementedError

    def _build(self, in_channels, out_channels, hidden_channels, dropout, seed, dtype, **extra):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        s = child_seeds(seed, 4)
        dtype = np.dtype(dtype)
        super().__init__(
            drop1=Dropout(dropout, seed=s[0]),
            conv1=self.layer(in_channels, hidden_channels, s[1], dtype),
            act1=ReLU(),
            drop2=Dropout(dropout, seed=s[2]),
            conv2=self.layer(hidden_channels, out_channels, s[3], dtype),
        )
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels,
                           hidden_channels=hidden_channels, dropout=dropout, **extra, seed=seed, dtype=dtype.name)

    def param_groups(self, weight_decay):
        """Kipf & Welling's groups: L2 ``weight_decay`` on every parameter of the first layer, none on the second."""
        return [{"params": self.conv1.parameters(), "weight_decay": weight_decay},
                {"params": self.conv2.parameters(), "weight_decay": 0.0}]


@register
class Cheb(TwoLayer):
    """Two-layer Chebyshev network, Kipf & Welling's Table 3 "Chebyshev filter K" (K = polynomial degree).

    Each layer is Σ_{k=0}^{K} T_k(L~) X Θ_k with L~ = L - I (normalised Laplacian, lambda_max = 2):
    ``ChebConv(K + 1, normalization="sym")``, since PyG (and Defferrard et al.) count the K + 1 terms
    where Kipf & Welling's Eq. 5 counts the degree. ``--K 3`` is their "K = 3" row (4 terms, 3 hops).
    """

    name = "cheb"
    model_defaults = dict(hidden_channels=16, dropout=0.5, K=3)

    def __init__(self, in_channels, out_channels, hidden_channels=16, dropout=0.5, K=3, seed=0, dtype="float32"):
        if isinstance(K, (bool, np.bool_)) or not isinstance(K, (int, np.integer)) or K < 0:
            raise ValueError(f"K (the Chebyshev degree) must be an int >= 0, got {K!r}")
        self.K = int(K)
        self._build(in_channels, out_channels, hidden_channels, dropout, seed, dtype, K=self.K)

    def layer(self, in_channels, out_channels, seed, dtype):
        return ChebConv(in_channels, out_channels, self.K + 1, normalization="sym", seed=seed, dtype=dtype)


class _FirstOrderModel(TwoLayer):
    variant = None

    def __init__(self, in_channels, out_channels, hidden_channels=16, dropout=0.5, seed=0, dtype="float32"):
        self._build(in_channels, out_channels, hidden_channels, dropout, seed, dtype)

    def layer(self, in_channels, out_channels, seed, dtype):
        return FirstOrderConv(in_channels, out_channels, variant=self.variant, seed=seed, dtype=dtype)


@register
class FirstOrder(_FirstOrderModel):
    """Two-layer first-order model, Kipf & Welling's Table 3: X Θ_0 + D^-1/2 A D^-1/2 X Θ_1 per layer."""

    name = "first_order"
    variant = "first_order"


@register
class SingleParameter(_FirstOrderModel):
    """Two-layer single-parameter model, Kipf & Welling's Table 3: (I + D^-1/2 A D^-1/2) X Θ per layer."""

    name = "single_param"
    variant = "single_param"


@register
class FirstOrderTerm(_FirstOrderModel):
    """Two-layer "1st-order term only" model, Kipf & Welling's Table 3: D^-1/2 A D^-1/2 X Θ per layer."""

    name = "first_order_term"
    variant = "first_order_term"


@register
class MLP(TwoLayer):
    """Two-layer perceptron, Kipf & Welling's Table 3 baseline: X Θ per layer, the graph unused."""

    name = "mlp"

    def __init__(self, in_channels, out_channels, hidden_channels=16, dropout=0.5, seed=0, dtype="float32"):
        self._build(in_channels, out_channels, hidden_channels, dropout, seed, dtype)

    def layer(self, in_channels, out_channels, seed, dtype):
        return Linear(in_channels, out_channels, seed=seed, dtype=dtype)
