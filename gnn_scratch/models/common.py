"""Helpers shared by the models."""
import numpy as np


def child_seeds(seed, n):
    """``n`` independent integer seeds derived from one model seed (numpy SeedSequence)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]
