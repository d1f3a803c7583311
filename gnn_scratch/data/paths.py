"""Where dataset files are looked for, in order, and where downloads go.

A *data root* is laid out like the project's shared datasets folder::

    <root>/planetoid/ind.cora.x, ind.cora.y, ...

Search order for a dataset's folder:
    1. the ``root`` argument given by the caller,
    2. the environment variable ``GNN_SCRATCH_DATA``,
    3. the user cache ``$XDG_CACHE_HOME/gnn_scratch`` (``~/.cache/gnn_scratch`` when unset).
A root may also point straight at the dataset folder (``<root>/ind.cora.x``). Downloads go to (3).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_ROOT = "GNN_SCRATCH_DATA"


def cache_root() -> Path:
    """The user cache folder for downloads: ``$XDG_CACHE_HOME/gnn_scratch`` or ``~/.cache/gnn_scratch``."""
    base = os.environ.get("XDG_CACHE_HOME")
    # an empty XDG_CACHE_HOME means unset, per the XDG base-directory spec
    base = Path(base) if base else Path.home() / ".cache"
    return base / "gnn_scratch"


def candidate_dirs(subdir: str, root=None) -> list[Path]:
    """The folders to search for files of ``subdir`` (e.g. "planetoid"), in search order, no repeats.

    For each root (argument, $GNN_SCRATCH_DATA, cache) both ``<root>/<subdir>`` and ``<root>``
    itself are candidates, so a root may name the data root or the dataset folder directly.
    """
    roots = []
    if root is not None:
        roots.append(Path(root).expanduser())
    env = os.environ.get(ENV_DATA_ROOT)
    if env:
        roots.append(Path(env).expanduser())
    out = []
    for r in roots:
        for d in (r / subdir, r):
            if d not in out:
                out.append(d)
    cache = cache_root() / subdir
    if cache not in out:
        out.append(cache)
    return out


def find_dir_with(files, subdir: str, root=None):
    """First candidate folder (see ``candidate_dirs``) holding every name in ``files``, else None.

    Returns (folder or None, list of folders searched).
    """
    dirs = candidate_dirs(subdir, root)
    for d in dirs:
        if all((d / f).is_file() for f in files):
            return d, dirs
    return None, dirs
