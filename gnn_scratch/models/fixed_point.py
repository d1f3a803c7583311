"""The original GNN of Scarselli et al. (2009) as a registered node classifier (``--model fixed_point``)."""
import numpy as np

from ..nn.fixed_point import FixedPointGNN
from ..nn.checks import positive_int
from .registry import register


@register
class FixedPoint(FixedPointGNN):
    """Scarselli et al.'s fixed-point GNN (2009): states at x = F_w(x, l), trained by Almeida–Pineda.

    x (N, F) node labels (dense or scipy-sparse), returns logits (N, C); see
    ``gnn_scratch.nn.fixed_point.FixedPointGNN`` for the arguments and derivations/fixed_point_gnn.md
    for the maths. Defaults (chosen on Cora's validation set): the nonlinear (three-layer FNN) transition
    averaged over in-edges (a sum diverges on Cora's hubs), state dimension 16, transition hidden 32,
    output hidden 16, the contraction penalty (β = 1, μ = 0.9 on the rows of ∂F/∂x), dropout 0.5 on the
    labels, tolerance 1e-5 in float32 with at most 500 Jacobi iterations; Adam lr 0.01, L2 2e-3, 300
    epochs, patience 100. Host only: tanh and the per-edge Jacobian blocks have no device op yet.
    """

    name = "fixed_point"
    devices = ("cpu",)
    # Only the keys the command line has options for (cli.MODEL_OPTIONS: --hidden, --dropout); the other
    # defaults are the constructor's own (state_dim=16, aggr="mean", mu=0.9, penalty_weight=1.0, ...).
    model_defaults = dict(hidden_channels=32, dropout=0.5)
    train_defaults = dict(lr=0.01, weight_decay=2e-3, epochs=300, patience=100)

    def __init__(self, in_channels, out_channels, state_dim=16, hidden_channels=32, output_hidden=16,
                 transition="nonlinear", aggr="mean", mu=0.9, contraction_norm="inf", penalty_weight=1.0,
                 tol=None, max_iter=500, unroll_steps=None, dropout=0.5, seed=0, dtype="float32"):
        hidden_channels = positive_int("hidden_channels", hidden_channels)
        dtype = np.dtype(dtype)
        super().__init__(in_channels, out_channels, state_dim=state_dim, hidden_channels=hidden_channels,
                         output_hidden=output_hidden, transition=transition, aggr=aggr, mu=mu,
                         contraction_norm=contraction_norm, penalty_weight=penalty_weight, tol=tol,
                         max_iter=max_iter, unroll_steps=unroll_steps, dropout=dropout, seed=seed, dtype=dtype)
        self.config = dict(model=self.name, in_channels=in_channels, out_channels=out_channels, state_dim=state_dim,
                           hidden_channels=hidden_channels, output_hidden=output_hidden, transition=transition,
                           aggr=aggr, mu=mu, contraction_norm=contraction_norm, penalty_weight=penalty_weight,
                           tol=tol, max_iter=max_iter, unroll_steps=unroll_steps, dropout=dropout, seed=seed,
                           dtype=dtype.name)
