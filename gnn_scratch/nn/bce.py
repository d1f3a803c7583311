"""Binary cross-entropy with logits (torch's ``BCEWithLogitsLoss``, mean): Deep Graph Infomax's loss
(derivations/dgi.md)."""
from .. import ops


class BCEWithLogitsLoss:
    """L = (1/M) sum_m [ -y_m log sigma(z_m) - (1 - y_m) log(1 - sigma(z_m)) ] over the M entries of Z.

    Computed as max(z, 0) - z y + log(1 + e^-|z|), equal and free of overflow for any z (the naive
    form takes log of 0 once sigma(z) rounds to 0 or 1). Z: logits of any shape, Y: targets of the
    same shape and dtype (0 / 1 labels, or probabilities), never broadcast. Backward:
    dZ = (sigma(Z) - Y) / M. ``forward`` returns a 0-d array of Z's dtype (``float(loss)``, or
    ``device.item``); raises ValueError / TypeError for mismatched shapes or dtypes.
    """

    def forward(self, Z, Y):
        loss, self._cache = ops.bce_with_logits(Z, Y)
        return loss

    def backward(self):
        return ops.bce_with_logits_backward(self._cache)
