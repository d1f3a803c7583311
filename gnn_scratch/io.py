"""Save a trained model to ``.npz`` and rebuild it: parameters plus the hyper-parameters to rebuild it.

The file holds one array per parameter (``param/<qualified name>``) and ``config``, a JSON string
(a 0-d unicode array), so it loads with ``allow_pickle=False``: reading a model runs no code.
"""
import json
import os

import numpy as np

from .models import build_model

FORMAT = "gnn_scratch.model/1"


def npz_path(path):
    """The file ``numpy.savez`` writes for ``path``: ``path`` itself when it ends in .npz, else ``path``.npz."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def find_model_file(path):
    """The file a model saved as ``path`` is in: ``path`` when that file exists, else ``path``.npz (the name
    ``save_model`` wrote for a name without the suffix). FileNotFoundError naming both when neither exists."""
    for candidate in dict.fromkeys((os.fspath(path), npz_path(path))):
        if os.path.isfile(candidate):
            return candidate
    tried = " nor ".join(repr(c) for c in dict.fromkeys((os.fspath(path), npz_path(path))))
    raise FileNotFoundError(f"no model file {tried}")


def save_model(path, model, extra=None):
    """Write ``model`` (which must carry a ``config`` dict) to ``path`` (.npz added when missing, as
    ``numpy.savez`` adds it); ``extra`` is stored with the config. Returns the path written."""
    if not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} has no config: only registry models can be saved")
    meta = dict(format=FORMAT, config=model.config, extra=extra or {})
    arrays = {f"param/{k}": v for k, v in model.state_dict().items()}
    path = npz_path(path)
    np.savez(path, config=np.array(json.dumps(meta)), **arrays)
    return path


def load_model(path):
    """Rebuild the model saved at ``path`` (with or without its .npz suffix, ``find_model_file``);
    returns (model, extra)."""
    path = find_model_file(path)
    with np.load(path, allow_pickle=False) as f:
        if "config" not in f.files:
            raise ValueError(f"{path} is not a gnn_scratch model file: it has no 'config' entry")
        meta = json.loads(str(f["config"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} has format {meta.get('format')!r}; expected {FORMAT!r}")
        state = {k[len("param/"):]: f[k] for k in f.files if k.startswith("param/")}
    config = dict(meta["config"])
    model = build_model(config.pop("model"), **config)
    model.load_state_dict(state)
    return model.eval(), meta.get("extra", {})
