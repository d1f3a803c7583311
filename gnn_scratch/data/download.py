"""Download files into a folder with sha256 verification, all-or-nothing, using only urllib.

Each file is streamed to a hidden temporary file in the destination folder and hashed while it is
written. Only when *every* requested file has arrived and matched its checksum are they renamed
into place (``os.replace``, atomic on one file system), so an interrupted or corrupted download
never leaves a partial or bad file where a later load would find it.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .integrity import ChecksumError

DEFAULT_TIMEOUT_S = 30.0


def _fetch_to_temp(url: str, folder: Path, name: str, timeout: float):
    """Stream ``url`` to a temp file in ``folder``; return (temp path, sha256 hex)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                h.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), h.hexdigest()


def download_verified(base_url: str, names, checksums, folder, timeout: float = DEFAULT_TIMEOUT_S):
    """Download ``<base_url>/<name>`` for each name into ``folder``, checking ``checksums[name]``.

    base_url: URL prefix without the trailing slash (any scheme urllib opens: https, http, file).
    names: iterable of file names; checksums: name -> expected sha256 hex.
    All or nothing: on a network error or a checksum mismatch every temp file is deleted, nothing
    is renamed into ``folder``, and the error is raised (``ChecksumError`` names the URL and both
    hashes; network failures raise ``urllib.error.URLError`` / ``OSError``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base_url = base_url.rstrip("/")
    done = []  # (temp path, final path)
    try:
        for name in names:
            url = f"{base_url}/{name}"
            tmp, actual = _fetch_to_temp(url, folder, name, timeout)
            done.append((tmp, folder / name))
            expected = checksums[name].lower()
            if actual != expected:
                raise ChecksumError(
                    f"checksum mismatch for {name} downloaded from {url}: expected sha256 {expected}, "
                    f"got {actual}. The download was deleted; nothing was written to {folder}.")
    except BaseException:
        for tmp, _ in done:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in done:
        os.replace(tmp, final)
    return [final for _, final in done]
