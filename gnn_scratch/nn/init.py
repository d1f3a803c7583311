"""Seeded parameter initialisation."""
import numpy as np


def glorot(rng, fan_in, fan_out, shape=None, dtype=np.float32):
    """Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), so Var = 2 / (fan_in + fan_out)."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape or (fan_in, fan_out)).astype(dtype)


def as_rng(seed):
    """A numpy Generator from a seed, or the Generator itself."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
