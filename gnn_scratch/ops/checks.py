"""What every op checks before its kernel runs: the shapes it can know and one float dtype (metadata only).

A kernel trusts its arguments: handed an X with fewer rows than the graph's sources, a Numba or CUDA
SpMM reads memory it does not own and returns garbage (or worse). So each op states what it expects
through these two helpers; a mismatch raises one line naming the op, the argument and the expected
shape (ValueError) or dtype (TypeError). A dimension given as a string ("F") is free.
"""
import numpy as np

from ..device import issparse

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _fmt(dims):
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def shape(op, name, a, *dims):
    """Raise ValueError unless ``a.shape`` matches ``dims`` (ints must be equal, strings are free); returns a."""
    got = getattr(a, "shape", None)
    if got is not None and len(got) == len(dims):
        for g, d in zip(got, dims):          # a plain loop: this runs a few hundred times per training step
            if g != d and d.__class__ is not str:
                break
        else:
            return a
    raise ValueError(f"ops.{op}: {name} must have shape {_fmt(dims)}, got "
                     f"{tuple(got) if got is not None else type(a).__name__}")


def same_shape(op, ref_name, ref, **others):
    """Raise ValueError unless every array of ``others`` has the shape of ``ref``."""
    for name, a in others.items():
        if tuple(getattr(a, "shape", ())) != tuple(ref.shape) or not hasattr(a, "shape"):
            raise ValueError(f"ops.{op}: {name} must have the shape of {ref_name} {tuple(ref.shape)}, got "
                             f"{tuple(a.shape) if hasattr(a, 'shape') else type(a).__name__}")


def one_float(op, **arrays):
    """Raise TypeError unless the arrays share one dtype, float32 or float64; returns it."""
    items = iter(arrays.items())
    first, a = next(items)
    dtype = getattr(a, "dtype", None)
    # ``is None`` first: NumPy reads None as float64, so ``np.dtype(np.float64) == None`` holds
    if dtype is None or dtype not in _FLOATS:
        raise TypeError(f"ops.{op}: {first} must be float32 or float64, got {dtype if dtype is not None else type(a).__name__}")
    for name, b in items:
        other = getattr(b, "dtype", None)
        if other is None or other != dtype:
            raise TypeError(f"ops.{op}: {name} must have the dtype of {first} ({dtype}), got "
                            f"{getattr(b, 'dtype', type(b).__name__)}")
    return dtype


def dense(op, name, a):
    """Raise TypeError for a sparse matrix where the op reads a dense array."""
    if type(a) is not np.ndarray and issparse(a):
        raise TypeError(f"ops.{op}: {name} must be a dense array, got a sparse {type(a).__name__}")
    return a
