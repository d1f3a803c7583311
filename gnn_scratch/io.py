"""Save a trained model to ``.npz`` and rebuild it: parameters plus the hyper-parameters to rebuild it.

The file holds one array per parameter (``param/<qualified name>``) and ``config``, a JSON string
(a 0-d unicode array), so it loads with ``allow_pickle=False``: reading a model runs no code.
"""
import json
import os
import zipfile

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
    if os.path.isdir(path):
        raise IsADirectoryError(f"{os.fspath(path)!r} is a folder, not a model file (an .npz written by save_model)")
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
    returns (model, extra).

    Errors: FileNotFoundError (no such file), IsADirectoryError (a folder); ValueError naming the file for
    anything that is not a model file ``save_model`` wrote: not an .npz archive at all (empty, truncated, a
    text or .npy file), one without a readable ``config`` entry, another format version."""
    path = find_model_file(path)
    what = f"{path} is not a gnn_scratch model file (an .npz written by save_model or `gnn-scratch train --save`)"
    with open(path, "rb") as fh:
        head = fh.read(6)
    if not head.startswith(b"PK"):     # an .npz is a zip archive; NumPy would try other formats and say so
        kind = "it is empty" if not head else ("it holds a single array (.npy)" if head == b"\x93NUMPY"
                                               else f"it is not a zip archive (it starts with {head!r})")
        raise ValueError(f"{what}: {kind}")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "config" not in f.files:
                raise ValueError(f"{what}: it has no 'config' entry")
            meta = json.loads(str(f["config"]))
            state = {k[len("param/"):]: f[k] for k in f.files if k.startswith("param/")}
    except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:    # truncated, corrupt
        raise ValueError(f"{what}: it cannot be read ({type(e).__name__}: {e})") from None
    if isinstance(meta, dict) and meta.get("format") != FORMAT:     # another version says so before anything else
        raise ValueError(f"{path} has format {meta.get('format')!r}; expected {FORMAT!r}")
    if not (isinstance(meta, dict) and isinstance(meta.get("config"), dict) and "model" in meta["config"]):
        raise ValueError(f"{what}: its 'config' entry does not describe a model")
    config = dict(meta["config"])
    model = build_model(config.pop("model"), **config)
    model.load_state_dict(state)
    return model.eval(), meta.get("extra", {})
