"""graph6: B. McKay's text format for undirected simple graphs (nauty's ``formats.txt``), and the
project's 1-WL benchmark families stored in it (``<data root>/wl/*.g6``).

A graph6 line is N(n) R(x), every byte in 63..126 (printable):
* N(n), the number of nodes: one byte n + 63 for 0 <= n <= 62; byte 126 then three bytes (18 bits,
  big-endian, 6 bits a byte, each + 63) for 63 <= n <= 258047; bytes 126 126 then six bytes (36 bits)
  for 258048 <= n <= 68719476735.
* R(x): the upper triangle of the adjacency matrix column by column -- x = A[0,1], A[0,2], A[1,2],
  A[0,3], A[1,3], A[2,3], ... (for j = 1..n-1, for i = 0..j-1) -- padded with 0s to a multiple of 6
  bits, 6 bits a byte (most significant first), each + 63.
A file may begin with the header ``>>graph6<<`` (no newline after it). Lines of the sibling formats
sparse6 (``:``) and digraph6 (``&``) are refused with a clear error.

Graphs come back as ``(edge_index, num_nodes)``: edge_index (2, 2m) int64, each edge both ways,
sorted by (source, target), PyG's convention (row 0 = source).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import paths
from .integrity import read_bytes_verified
from .planetoid import DataNotFoundError

HEADER = b">>graph6<<"

# sha256 of the shared 1-WL families (from the project's shared datasets README).
WL_SHA256 = {
    "graph2c.g6": "fae4bfc454bd04363dcd5222772f2973b1193e1ff6f676e822a427323a677ef9",
    "graph3c.g6": "5966edf890849db6cb03626431916231a81a30c9db9a4781a4a8f2e5dc7e6129",
    "graph4c.g6": "d7da485669f2dc74b81c02f18774a07430937684896833d59f138b10debb5005",
    "graph5c.g6": "3c436a6a15f554e3eff3ce9178fddd3d75db6d365b3c6b102b64afe82145050b",
    "graph6c.g6": "2dc8cbb1c05a12b5dcb28b6227cee86d585f203347f6aebb8fcbdb2b9bdf5fd7",
    "graph7c.g6": "ec46e9ec29eddb1d6e41bdea6be940c523ed6024eebe202b4bd176370c90f72e",
    "sr251256.g6": "f55f86eb48cd61c3315c62341cc3a8c59289c58504edb3ab859d7ef2068b9aa4",
}


class Graph6Error(ValueError):
    """A line that is not valid graph6."""


def _decode_n(b: bytes, line_no):
    if len(b) == 0:
        raise Graph6Error(f"line {line_no}: empty graph6 line")
    if b[0] != 126:
        return b[0] - 63, 1
    if len(b) >= 2 and b[1] == 126:
        width, start = 6, 2
    else:
        width, start = 3, 1
    if len(b) < start + width:
        raise Graph6Error(f"line {line_no}: truncated node count")
    n = 0
    for c in b[start:start + width]:
        n = (n << 6) | (c - 63)
    return n, start + width


def parse_graph6(line, line_no=1):
    """One graph6 string (bytes or str, without the newline) -> (edge_index (2, 2m) int64, num_nodes).

    Raises Graph6Error for a sparse6 / digraph6 line, a byte outside 63..126, a wrong length, or
    padding bits that are not zero.
    """
    b = line.encode("ascii") if isinstance(line, str) else bytes(line)
    if b.startswith(HEADER):
        b = b[len(HEADER):]
    b = b.strip()
    if b[:1] in (b":", b"&"):
        raise Graph6Error(f"line {line_no}: this is {'sparse6' if b[:1] == b':' else 'digraph6'}, not graph6")
    arr = np.frombuffer(b, dtype=np.uint8)
    if arr.size and (arr.min() < 63 or arr.max() > 126):
        bad = int(np.flatnonzero((arr < 63) | (arr > 126))[0])
        raise Graph6Error(f"line {line_no}: byte {bad} is {b[bad]!r}, outside the graph6 range 63..126")
    n, off = _decode_n(b, line_no)
    nbits = n * (n - 1) // 2
    nbytes = (nbits + 5) // 6
    body = arr[off:]
    if body.size != nbytes:
        raise Graph6Error(f"line {line_no}: {n} nodes need {nbytes} bytes of adjacency, got {body.size}")
    bits = np.unpackbits((body - 63).astype(np.uint8)[:, None], axis=1)[:, 2:].ravel()   # 6 bits a byte, MSB first
    if bits[nbits:].any():
        raise Graph6Error(f"line {line_no}: the padding bits after the adjacency are not zero")
    # bit k <-> pair (i, j), i < j, in column order: j = 1..n-1, i = 0..j-1
    j = np.repeat(np.arange(n, dtype=np.int64), np.arange(n))
    i = np.arange(nbits, dtype=np.int64) - j * (j - 1) // 2
    on = bits[:nbits].astype(bool)
    src = np.concatenate([i[on], j[on]])
    dst = np.concatenate([j[on], i[on]])
    order = np.lexsort((dst, src))
    return np.stack([src[order], dst[order]]), int(n)


def to_graph6(edge_index, num_nodes) -> bytes:
    """(edge_index, num_nodes) of a simple undirected graph -> its graph6 bytes (no newline).

    Either direction of an edge sets it; self-loops are refused (graph6 has none).
    """
    ei = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    n = int(num_nodes)
    if not 0 <= n <= 68719476735:
        raise Graph6Error(f"num_nodes must lie in 0..68719476735, got {n}")
    if ei.size and (ei.min() < 0 or ei.max() >= n):
        raise Graph6Error(f"edge_index holds node ids outside 0..{n - 1}")
    if np.any(ei[0] == ei[1]):
        raise Graph6Error("graph6 cannot store a self-loop")
    if n <= 62:
        head = bytes([n + 63])
    else:
        width = 3 if n <= 258047 else 6
        head = b"~" * (1 if width == 3 else 2) + bytes(((n >> (6 * (width - 1 - k))) & 63) + 63 for k in range(width))
    nbits = n * (n - 1) // 2
    bits = np.zeros(((nbits + 5) // 6) * 6, dtype=np.uint8)
    i, j = np.minimum(ei[0], ei[1]), np.maximum(ei[0], ei[1])
    bits[j * (j - 1) // 2 + i] = 1
    groups = bits.reshape(-1, 6) @ (1 << np.arange(5, -1, -1))
    return head + bytes((groups + 63).astype(np.uint8).tolist())


def read_graph6(path=None, *, data: bytes | None = None, sha256: str | None = None):
    """Every graph of a graph6 file (one a line) as a list of (edge_index, num_nodes).

    path: the file; or data: its bytes. sha256: when given, the bytes are checked first
    (``ChecksumError`` on a mismatch). Blank lines are skipped; a ``>>graph6<<`` header is allowed.
    """
    if data is None:
        data = read_bytes_verified(path, sha256) if sha256 else Path(path).read_bytes()
    return [parse_graph6(line, k + 1) for k, line in enumerate(data.splitlines()) if line.strip()]


def load_wl_graphs(name: str, root=None):
    """A 1-WL benchmark family of the shared ``wl/`` folder: "graph2c" .. "graph7c" (all connected graphs
    on k nodes) or "sr251256" (the 15 strongly regular graphs with parameters (25, 12, 5, 6)).

    Found like every dataset (``root``, $GNN_SCRATCH_DATA, the cache; ``<root>/wl/<name>.g6``), checked
    against its sha256, and returned as a list of (edge_index, num_nodes). Not downloaded.
    """
    fname = f"{name}.g6" if not str(name).endswith(".g6") else str(name)
    if fname not in WL_SHA256:
        raise ValueError(f"name must be one of {tuple(f[:-3] for f in WL_SHA256)}, got {name!r}")
    folder, searched = paths.find_dir_with([fname], "wl", root)
    if folder is None:
        where = "\n  ".join(str(d) for d in searched)
        raise DataNotFoundError(f"{fname} not found. Looked in:\n  {where}\nSet {paths.ENV_DATA_ROOT} to a data "
                                f"root holding wl/{fname} (or pass root=...).")
    return read_graph6(folder / fname, sha256=WL_SHA256[fname])
