"""Checksums and a restricted unpickler: the two guards between a downloaded file and our process.

A pickle can run arbitrary code while it loads, so every pickled dataset file is (1) checked
against a sha256 hard-coded in the loader *before* it is opened as a pickle, and (2) unpickled by
``RestrictedUnpickler``, which resolves only the few numpy / scipy.sparse / builtin names that
those files contain and refuses every other global (``os.system``, ``builtins.eval``, ...).
"""
from __future__ import annotations

import collections
import hashlib
import io
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp


class ChecksumError(ValueError):
    """A file's sha256 differs from the expected value."""


def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_digest(path, expected: str, actual: str) -> None:
    if actual != expected.lower():
        raise ChecksumError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}. "
            "The file is corrupt or not the published one; delete it and load again.")


def verify_sha256(path, expected: str) -> None:
    """Raise ``ChecksumError`` naming the file, expected and actual hash unless they match."""
    _check_digest(path, expected, sha256_file(path))


# numpy's array-rebuild helper lives in numpy.core (numpy 1) or numpy._core (numpy 2); take it
# from ndarray's own reduce so that neither deprecated module path is imported here.
_reconstruct = np.empty(0).__reduce__()[0]

# (module, name) as written in the pickle -> the object it may resolve to. Python 2 pickles name
# builtins "__builtin__" and sparse matrices "scipy.sparse.csr" (a module scipy has since renamed).
ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("scipy.sparse.csr", "csr_matrix"): sp.csr_matrix,
    ("scipy.sparse._csr", "csr_matrix"): sp.csr_matrix,
    ("scipy.sparse", "csr_matrix"): sp.csr_matrix,
    ("collections", "defaultdict"): collections.defaultdict,
    ("__builtin__", "list"): list,
    ("builtins", "list"): list,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the globals in ``ALLOWED_GLOBALS``; any other raises."""

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load global '{module}.{name}': only numpy arrays, scipy.sparse "
                "csr matrices, defaultdict and list are allowed in a dataset pickle") from None


def read_bytes_verified(path, sha256: str) -> bytes:
    """The bytes of ``path`` after checking their sha256.

    The bytes are read once, hashed, and then used from memory, so the file cannot change between
    the check and the use.
    """
    data = Path(path).read_bytes()
    _check_digest(path, sha256, hashlib.sha256(data).hexdigest())
    return data


def load_pickle_verified(path, sha256: str):
    """Verify ``path``'s sha256, then unpickle it with ``RestrictedUnpickler`` (latin1, for Python 2 pickles)."""
    data = read_bytes_verified(path, sha256)
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
