"""The loss on the host: the reference's NumPy is the fast path (O(N C), once per step, vectorised).

A node-classification loss touches N x C numbers once; a Numba kernel would save nothing worth
a second implementation to keep equal. Contract: ``loss_reference``.
"""
from .loss_reference import accuracy_counts, cross_entropy, cross_entropy_backward  # noqa: F401
