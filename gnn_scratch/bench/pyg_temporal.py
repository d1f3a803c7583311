"""PyTorch Geometric Temporal's recurrent cells, loaded without the package's compiled dependencies.

``torch-geometric-temporal`` 0.56 declares ``torch-sparse`` and ``torch-scatter`` (a long C++ build
from source) and its package ``__init__`` imports them, but its recurrent cells need only torch and
PyG. Install it with ``pip install --no-deps torch-geometric-temporal==0.56.2`` (after torch and
torch-geometric; ``.ci/run`` does) and ``cells()`` loads the cell files directly under a package of
their own, never running the package ``__init__`` (../shared/ORACLES.md).

Used as the oracle of the tests, the peer of ``gnn-scratch bench`` and by scripts/; imports torch.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

_PACKAGE = "_pyg_temporal_recurrent"
_FILES = ("gconv_gru", "gconv_lstm", "temporalgcn", "attentiontemporalgcn", "dcrnn")  # temporalgcn before A3TGCN
_CELLS = None


def recurrent_dir():
    """The installed ``torch_geometric_temporal/nn/recurrent`` folder (found, not imported); ImportError if absent."""
    spec = importlib.util.find_spec("torch_geometric_temporal")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("torch_geometric_temporal is not installed: pip install --no-deps "
                          "torch-geometric-temporal==0.56.2 (after torch and torch-geometric)")
    return Path(next(iter(spec.submodule_search_locations))) / "nn" / "recurrent"


def cells():
    """{name: class} for GConvGRU, GConvLSTM, TGCN, A3TGCN, DCRNN (and DConv), loaded once from their files."""
    global _CELLS
    if _CELLS is None:
        folder = recurrent_dir()
        pkg = types.ModuleType(_PACKAGE)
        pkg.__path__ = [str(folder)]
        sys.modules[_PACKAGE] = pkg
        loaded = {}
        for name in _FILES:
            full = f"{_PACKAGE}.{name}"
            spec = importlib.util.spec_from_file_location(full, folder / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[full] = mod
            spec.loader.exec_module(mod)
            loaded[name] = mod
        _CELLS = dict(GConvGRU=loaded["gconv_gru"].GConvGRU, GConvLSTM=loaded["gconv_lstm"].GConvLSTM,
                      TGCN=loaded["temporalgcn"].TGCN, A3TGCN=loaded["attentiontemporalgcn"].A3TGCN,
                      DCRNN=loaded["dcrnn"].DCRNN, DConv=loaded["dcrnn"].DConv)
    return _CELLS
