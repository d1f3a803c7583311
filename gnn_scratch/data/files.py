"""Finding a dataset's files and reading them verified: the one path every file-backed loader takes.

``read_verified(files, subdir, ...)`` looks for ``subdir/<file>`` under an explicit root, then
``$GNN_SCRATCH_DATA``, then the user cache (``paths``); when the files are nowhere it downloads the
missing ones from ``base_url`` into the cache (``download.download_verified``: checked before they
land); then it reads each file once and checks its sha256 on the very bytes a parser will read
(``integrity.read_bytes_verified``). A missing file without download, or a failed download, is a
``DataNotFoundError`` naming every folder searched.
"""
from __future__ import annotations

import http.client

from . import paths
from .download import download_verified
from .integrity import read_bytes_verified
from .planetoid import DataNotFoundError


def locate(files, subdir, root, download, base_url, checksums, what):
    """The folder holding every name in ``files``: searched, else the cache after downloading the missing ones.

    what: how the error names the files ("blogcatalog.mat", "temporal dataset files [...]").
    """
    folder, searched = paths.find_dir_with(files, subdir, root)
    if folder is not None:
        return folder
    where = "\n  ".join(str(d) for d in searched)
    help_ = (f"Set the environment variable {paths.ENV_DATA_ROOT} to a data root holding {subdir}/{files[0]} "
             f"(or pass root=...), or allow download=True with network access.")
    if not download:
        raise DataNotFoundError(f"{what} not found (download=False). Looked in:\n  {where}\n{help_}")
    cache = paths.cache_root() / subdir
    missing = [f for f in files if not (cache / f).is_file()]
    try:
        download_verified(base_url, missing, checksums, cache)
    # OSError covers URLError, HTTP errors, timeouts and a read-only cache; HTTPException a truncated reply
    except (OSError, http.client.HTTPException) as e:
        raise DataNotFoundError(f"{what} not found and the download from {base_url} into {cache} failed ({e}). "
                                f"Looked in:\n  {where}\n{help_}") from e
    return cache


def read_verified(files, subdir, root, download, base_url, table, checksums=None, what=None):
    """({file name: its bytes, sha256-verified}, the folder they came from).

    table: the published {file name: sha256}; checksums: entries replacing them (tests, private mirrors).
    """
    files = list(files)
    sums = dict(table)
    if checksums is not None:
        sums.update(checksums)
    folder = locate(files, subdir, root, download, base_url, sums, what or ", ".join(files))
    return {f: read_bytes_verified(folder / f, sums[f]) for f in files}, folder
