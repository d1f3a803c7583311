"""Signals that evolve on a graph over time: Chickenpox Hungary, PedalMe London, England COVID (the
PyTorch Geometric Temporal loaders) and Los-loop (the T-GCN protocol).

Two kinds of temporal data, two containers:

* ``TemporalSignal`` -- PyG Temporal's *snapshot* view. A series ``signal`` (T, N) on N nodes is cut
  into S = T - lags snapshots; snapshot s has node features ``features[s] = signal[s : s+lags].T``
  (N, lags) and target ``targets[s] = signal[s + lags]`` (N,): "predict the next step from the last
  ``lags`` steps". The graph is fixed (``edge_index`` (2, E)) or, for England COVID, one graph per
  snapshot (a tuple of S edge arrays; ``is_dynamic``). ``temporal_signal_split`` cuts it in time.
* ``WindowedSignal`` -- T-GCN's *window* view of Los-loop: the series scaled by its maximum, split
  80/20 in time, and inside each part sliding windows of ``seq_len`` inputs and ``pre_len`` outputs,
  as arrays ``train_x`` (W, seq_len, N), ``train_y`` (W, pre_len, N) and the same for test.

Files (layout of the project's shared ``temporal/`` folder, see the datasets README):

    chickenpox.json       keys edges (E, 2) [source, target], node_ids {name: id}, FX (T=521, N=20)
    pedalme_london.json   keys edges (E, 2), weights (E,), X (T=35, N=15)
    england_covid.json    keys time_periods (=61), y (T=61, N=129) daily case counts,
                          edge_mapping {edge_index: {"<day>": (E_day, 2)}, edge_weight: {"<day>": (E_day,)}}
    los_speed.csv         header row = 207 detector ids, then T=2016 rows of speeds (mph), 5-minute steps
    los_adj.csv           207 x 207 weighted adjacency, no header

Files are located like every other dataset (``paths.find_dir_with``: the ``root`` argument, then
$GNN_SCRATCH_DATA, then the user cache; ``<root>/temporal/`` or the folder itself). With
``download=True`` and no local copy they are fetched from their canonical sources -- the ``dataset/``
folder of benedekrozemberczki/pytorch_geometric_temporal (the URLs PyG Temporal's own loaders read)
and the data folder of lehaifeng/T-GCN -- into the cache, all or nothing. Every file's sha256 is checked
against ``SHA256`` before a byte of it is parsed (``ChecksumError`` on a mismatch).

Arrays are float32 by default (PyG Temporal hands out ``torch.FloatTensor`` s, T-GCN casts to
float32); ``dtype=np.float64`` keeps the double precision the JSON files are written in. Every array
of a loaded dataset is read-only (a training loop that normalises in place gets an error, not a
silently changed dataset): copy it first.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field

import numpy as np

from .files import read_verified

PYG_TEMPORAL_URL = "https://raw.githubusercontent.com/benedekrozemberczki/pytorch_geometric_temporal/master/dataset"
# T-GCN keeps los_speed.csv / los_adj.csv in the data folder of each of its implementations; this is the
# PyTorch one (T-GCN-PyTorch/main.py reads "data/los_speed.csv"). The checksums below guard whatever it serves.
TGCN_URL = "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/T-GCN/T-GCN-PyTorch/data"

SUBDIR = "temporal"

# sha256 of each file as published (from the project's shared datasets README).
SHA256 = {
    "chickenpox.json": "724b48cfb274b2ecbb855bdb99b970b5ef9dd3671694fa477435dc1e08293735",
    "england_covid.json": "497056cc4585b58951fd5cd17554fe0c535f68ea0c907a5b5727ae30e3913450",
    "los_adj.csv": "7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76",
    "los_speed.csv": "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4",
    "pedalme_london.json": "8c42b893441901fb805c4f0f937543d5bb9297884ac3dec7622a3e9f7c35a79b",
}

# Known sizes (T steps, N nodes); checked after parsing so that a wrong file fails loudly.
SIZES = {"chickenpox": (521, 20), "pedalme": (35, 15), "england_covid": (61, 129), "los_loop": (2016, 207)}

TEMPORAL_DATASETS = ("chickenpox", "pedalme", "england_covid", "los_loop")


# =============================================================================== argument checks
def _check_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_ratio(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float in (0, 1), got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def _check_float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"dtype must be a float dtype (float32 or float64), got {dt}")
    return dt


def _readonly(a):
    a.flags.writeable = False
    return a


def _check_edges(ei, ew, num_nodes, what):
    """(2, E) int64 edge_index, (E,) weights or None; ids in range, weights finite."""
    ei = np.ascontiguousarray(ei, dtype=np.int64)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise ValueError(f"{what}: edge_index must have shape (2, E), got {ei.shape}")
    if ei.size and (ei.min() < 0 or ei.max() >= num_nodes):
        raise ValueError(f"{what}: edge_index holds node ids in [{ei.min()}, {ei.max()}], "
                         f"outside [0, {num_nodes})")
    if ew is not None:
        ew = np.asarray(ew)
        if ew.shape != (ei.shape[1],):
            raise ValueError(f"{what}: edge_weight must have shape ({ei.shape[1]},), got {ew.shape}")
        if ew.dtype.kind not in "fiu" or not np.all(np.isfinite(ew)):
            raise ValueError(f"{what}: edge_weight must be finite numbers")
    return ei, ew


# =============================================================================== the snapshot container
@dataclass(eq=False)
class TemporalSignal:
    """A signal on N nodes cut into S snapshots of ``lags`` past steps and one next step (PyG Temporal's
    ``StaticGraphTemporalSignal`` / ``DynamicGraphTemporalSignal``, as stacked arrays).

    Shapes (T steps, N nodes, S = T - lags snapshots, E edges):

        signal:      (T, N) float        the series the snapshots are cut from
        features:    (S, N, lags) float  features[s] = signal[s : s + lags].T
        targets:     (S, N) float        targets[s] = signal[s + lags]
        edge_index:  (2, E) int64        row 0 = source, row 1 = target; for a dynamic graph a tuple of
                                         S such arrays, one per snapshot
        edge_weight: (E,) float or None  (a tuple of S arrays for a dynamic graph)
        start:       int                 index of this signal's snapshot 0 in the signal it was split from
                                         (0 for a loaded dataset)

    The invariant features[s] = signal[s:s+lags].T, targets[s] = signal[s+lags] holds for every
    snapshot, also after ``temporal_signal_split`` (each part keeps the stretch of the series its
    snapshots read). Build one from a series with ``TemporalSignal.from_series``.
    """

    name: str
    edge_index: object
    edge_weight: object
    num_nodes: int
    signal: np.ndarray
    lags: int
    features: np.ndarray
    targets: np.ndarray
    start: int = 0
    meta: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        N = _check_int(self.num_nodes, "num_nodes")
        L = _check_int(self.lags, "lags")
        self.num_nodes, self.lags = N, L
        sig, X, Y = self.signal, self.features, self.targets
        for name, a, nd in (("signal", sig, 2), ("features", X, 3), ("targets", Y, 2)):
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.ndim != nd:
                raise ValueError(f"{name} must be a {nd}-D float array, got "
                                 f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
        T, S = sig.shape[0], X.shape[0]
        if sig.shape[1] != N:
            raise ValueError(f"signal must have shape (T, {N}), got {sig.shape}")
        if T - L != S or X.shape != (S, N, L) or Y.shape != (S, N):
            raise ValueError(f"with signal {sig.shape} and lags={L}, features must have shape ({T - L}, {N}, {L}) "
                             f"and targets ({T - L}, {N}); got {X.shape} and {Y.shape}")
        if isinstance(self.edge_index, (list, tuple)):
            ws = self.edge_weight if self.edge_weight is not None else (None,) * len(self.edge_index)
            if len(self.edge_index) != S or len(ws) != S:
                raise ValueError(f"a dynamic graph needs one edge_index and one edge_weight per snapshot ({S}), "
                                 f"got {len(self.edge_index)} and {len(ws)}")
            pairs = [_check_edges(e, w, N, f"{self.name} snapshot {t}") for t, (e, w) in enumerate(zip(self.edge_index, ws))]
            self.edge_index = tuple(p[0] for p in pairs)
            self.edge_weight = None if self.edge_weight is None else tuple(p[1] for p in pairs)
        else:
            self.edge_index, self.edge_weight = _check_edges(self.edge_index, self.edge_weight, N, self.name)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_series(cls, series, lags, edge_index, edge_weight=None, *, name="signal", dtype=np.float32,
                    meta=None):
        """Cut ``series`` (T, N) into T - lags snapshots (PyG Temporal's ``_get_targets_and_features``).

        series: (T, N) finite numbers; lags: int in [1, T - 1].
        edge_index: (2, E) ints (a fixed graph) or a list of T - lags of them (one graph per snapshot);
        edge_weight: (E,) or a matching list, or None. dtype: float dtype of signal/features/targets and
        of the weights. Raises ValueError for lags outside [1, T-1], a non-finite series, bad edges.
        """
        dt = _check_float_dtype(dtype)
        a = np.asarray(series, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
            raise ValueError(f"series must have shape (T, N) with T >= 2 and N >= 1, got {a.shape}")
        if not np.all(np.isfinite(a)):
            t, n = np.argwhere(~np.isfinite(a))[0]
            raise ValueError(f"series must be finite; entry (step {t}, node {n}) is {a[t, n]}")
        T, N = a.shape
        L = _check_int(lags, "lags")
        if L >= T:
            raise ValueError(f"lags must be < the number of time steps T={T} (at least one snapshot), got {L}")
        sig = a.astype(dt)
        win = np.lib.stride_tricks.sliding_window_view(sig, L, axis=0)      # (T-L+1, N, L): win[s] = sig[s:s+L].T
        X = np.ascontiguousarray(win[:T - L])
        Y = np.ascontiguousarray(sig[L:])

        def weights(w):
            return None if w is None else np.asarray(w, dtype=np.float64).astype(dt)

        if isinstance(edge_index, (list, tuple)):
            ew = None if edge_weight is None else [weights(w) for w in edge_weight]
        else:
            ew = weights(edge_weight)
        out = cls(name=name, edge_index=edge_index, edge_weight=ew, num_nodes=N, signal=sig, lags=L,
                  features=X, targets=Y, meta=dict(meta or {}))
        return out._freeze()

    def _freeze(self):
        for a in (self.signal, self.features, self.targets):
            _readonly(a)
        for group in (self.edge_index, self.edge_weight):
            for a in (group if isinstance(group, tuple) else (group,)):
                if a is not None:
                    _readonly(a)
        return self

    # ------------------------------------------------------------------ access
    @property
    def num_snapshots(self) -> int:
        """S = T - lags (PyG Temporal's ``snapshot_count``)."""
        return int(self.targets.shape[0])

    snapshot_count = num_snapshots

    def __len__(self):
        return self.num_snapshots

    @property
    def is_dynamic(self) -> bool:
        """True when every snapshot has its own graph (England COVID)."""
        return isinstance(self.edge_index, tuple)

    def _index(self, t):
        S = self.num_snapshots
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"snapshot index must be an int, got {type(t).__name__}")
        if not -S <= t < S:
            raise IndexError(f"snapshot index {t} out of range for {S} snapshots")
        return int(t) % S

    def edges_at(self, t):
        """(edge_index (2, E_t), edge_weight (E_t,) or None) of snapshot ``t``."""
        t = self._index(t)
        if self.is_dynamic:
            return self.edge_index[t], None if self.edge_weight is None else self.edge_weight[t]
        return self.edge_index, self.edge_weight

    def snapshot(self, t):
        """(x (N, lags), edge_index, edge_weight, y (N,)) of snapshot ``t``: PyG Temporal's
        ``Data(x, edge_index, edge_attr, y)`` of ``signal[t]``."""
        t = self._index(t)
        ei, ew = self.edges_at(t)
        return self.features[t], ei, ew, self.targets[t]

    def graph(self, t=0):
        """The ``gnn_scratch.graph.Graph`` (destination-major CSR, weights kept) of snapshot ``t``
        (the one fixed graph unless ``is_dynamic``)."""
        from gnn_scratch.graph import Graph  # loading data never needs the kernels

        ei, ew = self.edges_at(t)
        return Graph.from_edge_index(ei, self.num_nodes, ew)

    def __repr__(self):
        E = (f"E per snapshot in [{min(e.shape[1] for e in self.edge_index)}, "
             f"{max(e.shape[1] for e in self.edge_index)}]" if self.is_dynamic else f"E={self.edge_index.shape[1]}")
        return (f"TemporalSignal({self.name!r}, T={self.signal.shape[0]}, N={self.num_nodes}, {E}, "
                f"lags={self.lags}, snapshots={self.num_snapshots}, start={self.start}, dynamic={self.is_dynamic})")


def temporal_signal_split(signal: TemporalSignal, train_ratio: float = 0.8):
    """Split snapshots in time as PyG Temporal's ``temporal_signal_split``: the first
    ``int(train_ratio * S)`` snapshots train, the rest test (no shuffling, no gap).

    Returns (train, test) TemporalSignals. Each keeps the stretch of the series its snapshots read
    (train: signal[0 : n_train + lags], test: signal[n_train : T]), so the first ``lags`` steps of the
    test series are the last train targets -- exactly what PyG Temporal's test snapshots see as features.
    ``test.start`` = n_train (its snapshot 0 is snapshot n_train of the whole).

    train_ratio: float strictly in (0, 1). Raises ValueError outside it, and where the ratio leaves
    either part without a snapshot (PyG Temporal returns an empty iterator there; an empty train or test
    set is never meant, so this says so instead).
    """
    if not isinstance(signal, TemporalSignal):
        raise TypeError(f"signal must be a TemporalSignal, got {type(signal).__name__}")
    r = _check_ratio(train_ratio, "train_ratio")
    S, L = signal.num_snapshots, signal.lags
    n = int(r * S)
    if n < 1 or n >= S:
        raise ValueError(f"train_ratio={r} gives {n} train and {S - n} test snapshots out of {S}; "
                         f"both parts need at least one")

    def part(lo, hi, sig_lo, sig_hi, start):
        ei, ew = signal.edge_index, signal.edge_weight
        if signal.is_dynamic:
            ei = ei[lo:hi]
            ew = None if ew is None else ew[lo:hi]
        return TemporalSignal(name=signal.name, edge_index=ei, edge_weight=ew, num_nodes=signal.num_nodes,
                              signal=signal.signal[sig_lo:sig_hi], lags=L, features=signal.features[lo:hi],
                              targets=signal.targets[lo:hi], start=signal.start + start,
                              meta=dict(signal.meta))._freeze()

    T = signal.signal.shape[0]
    return part(0, n, 0, n + L, 0), part(n, S, n, T, n)


# =============================================================================== reading files
def _read(files, root, download, base_url, checksums):
    """{file name: its bytes}, each verified against its sha256 before it is returned (``files.read_verified``)."""
    return read_verified(files, SUBDIR, root, download, base_url, SHA256, checksums,
                         f"temporal dataset files {list(files)}")[0]


def _json(data: bytes, fname, keys):
    try:
        d = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{fname}: not valid JSON ({e})") from None
    missing = [k for k in keys if not isinstance(d, dict) or k not in d]
    if missing:
        raise ValueError(f"{fname}: missing key(s) {missing}")
    return d


def _series(values, fname, key, expected):
    a = np.asarray(values, dtype=np.float64)
    if a.shape != expected:
        raise ValueError(f"{fname}: {key} must have shape {expected}, got {a.shape}")
    return a


def _edge_pairs(values, fname, key):
    """A JSON list of [source, target] pairs -> (2, E) int64 (PyG Temporal: ``np.array(edges).T``)."""
    a = np.asarray(values)
    if a.ndim != 2 or a.shape[1] != 2 or a.dtype.kind not in "iu":
        raise ValueError(f"{fname}: {key} must be a list of [source, target] integer pairs, got shape {a.shape} "
                         f"dtype {a.dtype}")
    return a.T.astype(np.int64)


# =============================================================================== PyG Temporal's three loaders
def load_chickenpox(root=None, lags: int = 4, *, dtype=np.float32, download: bool = True,
                    base_url: str = PYG_TEMPORAL_URL, checksums=None) -> TemporalSignal:
    """Chickenpox Hungary (Rozemberczki et al. 2021, PyG Temporal's ``ChickenpoxDatasetLoader``):
    weekly chickenpox cases in the 20 counties of Hungary, 2005-2014, already standardised in the file.

    Exactly the loader's semantics: edges = ``np.array(edges).T`` (102 directed county pairs including
    20 self-loops, each neighbour pair both ways), edge weights all ones, features of snapshot t =
    FX[t : t+lags].T (N, lags), target = FX[t+lags] (N,), T - lags snapshots (517 for lags 4).
    PyG Temporal's example trains GConvGRU on ``temporal_signal_split(dataset, train_ratio=0.2)``.

    root: data root (``<root>/temporal/chickenpox.json``) or the folder itself; then $GNN_SCRATCH_DATA,
        then the cache, then a download from ``base_url`` (with ``download=True``).
    lags: int in [1, 520]. dtype: float dtype of the arrays (float32 as PyG Temporal's tensors).
    checksums: file name -> sha256 replacing the published table (for tests and mirrors).
    Raises DataNotFoundError (where it looked), ChecksumError, ValueError (bad lags, malformed file).
    meta: ``node_ids`` {county name: node id}, ``file``.
    """
    fname = "chickenpox.json"
    d = _json(_read([fname], root, download, base_url, checksums)[fname], fname, ("edges", "FX", "node_ids"))
    T, N = SIZES["chickenpox"]
    fx = _series(d["FX"], fname, "FX", (T, N))
    ei = _edge_pairs(d["edges"], fname, "edges")
    return TemporalSignal.from_series(fx, lags, ei, np.ones(ei.shape[1]), name="chickenpox", dtype=dtype,
                                      meta={"node_ids": dict(d["node_ids"]), "file": fname})


def load_pedalme(root=None, lags: int = 4, *, dtype=np.float32, download: bool = True,
                 base_url: str = PYG_TEMPORAL_URL, checksums=None) -> TemporalSignal:
    """PedalMe London (PyG Temporal's ``PedalMeDatasetLoader``): weekly bicycle-delivery demand in 15
    London localities, 35 weeks, 31 snapshots with its default lags of 4.

    Exactly the loader's semantics: edges = ``np.array(edges).T`` (225 = all 15 x 15 ordered pairs,
    self-loops included), edge weights = the file's ``weights`` (in (0, 1]), features of snapshot t =
    X[t : t+lags].T, target = X[t+lags]. The series is used as the file holds it (no scaling).

    Arguments, errors and the search order as ``load_chickenpox``; lags in [1, 34].
    """
    fname = "pedalme_london.json"
    d = _json(_read([fname], root, download, base_url, checksums)[fname], fname, ("edges", "weights", "X"))
    T, N = SIZES["pedalme"]
    x = _series(d["X"], fname, "X", (T, N))
    ei = _edge_pairs(d["edges"], fname, "edges")
    w = np.asarray(d["weights"], dtype=np.float64)
    return TemporalSignal.from_series(x, lags, ei, w, name="pedalme", dtype=dtype, meta={"file": fname})


def load_england_covid(root=None, lags: int = 8, *, dtype=np.float32, download: bool = True,
                       base_url: str = PYG_TEMPORAL_URL, checksums=None) -> TemporalSignal:
    """England COVID (Panagopoulos et al. 2021, PyG Temporal's ``EnglandCovidDatasetLoader``): daily
    reported COVID-19 cases in 129 English NUTS3 regions, 3 March - 12 May 2020, on a directed, weighted
    mobility graph that changes every day. A *dynamic* graph: the result has ``is_dynamic`` True and
    ``edge_index`` / ``edge_weight`` are tuples with one array per snapshot.

    Exactly the loader's semantics (``DynamicGraphTemporalSignal``):
    * the signal is ``y`` standardised per region over *all* 61 days, (y - mean) / (std + 1e-10), with
      numpy's population std -- test days included, as PyG Temporal does;
    * snapshot t (t = 0 .. 61 - lags - 1) has features signal[t : t+lags].T, target signal[t+lags], and
      the graph of day t, ``edge_mapping["edge_index"][str(t)]`` (read as [source, target] pairs) with
      weights ``edge_mapping["edge_weight"][str(t)]`` (people moving between regions, raw counts). Note:
      day t is the *first* day of the lag window, not the last; that is PyG Temporal's choice, kept.
    * 53 snapshots with the default lags 8. Every day's graph has a self-loop at every region.

    meta: ``raw`` (61, 129) int64 case counts, ``mean`` and ``std`` (129,) float64 (to undo the
    standardisation: raw = signal * (std + 1e-10) + mean), ``file``.
    Arguments, errors and the search order as ``load_chickenpox``; lags in [1, 60].
    """
    fname = "england_covid.json"
    d = _json(_read([fname], root, download, base_url, checksums)[fname], fname,
              ("edge_mapping", "time_periods", "y"))
    T, N = SIZES["england_covid"]
    if d["time_periods"] != T:
        raise ValueError(f"{fname}: time_periods must be {T}, got {d['time_periods']!r}")
    raw = _series(d["y"], fname, "y", (T, N))
    L = _check_int(lags, "lags")
    if L >= T:
        raise ValueError(f"lags must be < the number of time steps T={T} (at least one snapshot), got {L}")
    mean = raw.mean(axis=0)
    std = raw.std(axis=0)
    signal = (raw - mean) / (std + 1e-10)
    em = d["edge_mapping"]
    if not isinstance(em, dict) or "edge_index" not in em or "edge_weight" not in em:
        raise ValueError(f"{fname}: edge_mapping must hold edge_index and edge_weight")
    eis, ews = [], []
    for t in range(T - L):
        key = str(t)
        if key not in em["edge_index"] or key not in em["edge_weight"]:
            raise ValueError(f"{fname}: edge_mapping has no graph for day {t}")
        eis.append(_edge_pairs(em["edge_index"][key], fname, f"edge_index[{key!r}]"))
        ews.append(np.asarray(em["edge_weight"][key], dtype=np.float64))
    raw_int = np.asarray(d["y"], dtype=np.int64)
    return TemporalSignal.from_series(signal, L, eis, ews, name="england_covid", dtype=dtype,
                                      meta={"raw": _readonly(raw_int), "mean": _readonly(mean),
                                            "std": _readonly(std), "file": fname})


# =============================================================================== T-GCN's Los-loop windows
@dataclass(eq=False)
class WindowedSignal:
    """A series cut into sliding (input, output) windows inside a train and a test stretch (T-GCN).

    Shapes (T steps, N nodes, W windows):

        raw:         (T, N) float   the series as read (Los-loop: speeds in mph)
        signal:      (T, N) float   raw / scale, what the windows are cut from
        scale:       float          the divisor (T-GCN: the maximum of the whole series); predictions
                                    times ``scale`` are back in the units of ``raw``
        train_x:     (W_train, seq_len, N), train_y: (W_train, pre_len, N)   from signal[:train_size]
        test_x:      (W_test, seq_len, N),  test_y:  (W_test, pre_len, N)    from signal[train_size:]
        edge_index:  (2, E) int64, edge_weight: (E,) float    the weighted adjacency's non-zeros
        node_ids:    (N,) int64     the detector ids of the header row

    Window w of a part P is x = P[w : w+seq_len], y = P[w+seq_len : w+seq_len+pre_len].
    """

    name: str
    edge_index: np.ndarray
    edge_weight: np.ndarray
    num_nodes: int
    raw: np.ndarray
    signal: np.ndarray
    scale: float
    seq_len: int
    pre_len: int
    train_size: int
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    node_ids: np.ndarray
    meta: dict = field(default_factory=dict, repr=False)

    @property
    def train_signal(self) -> np.ndarray:
        """(train_size, N) the scaled training stretch (what a baseline may be fitted on)."""
        return self.signal[:self.train_size]

    @property
    def test_signal(self) -> np.ndarray:
        """(T - train_size, N) the scaled test stretch."""
        return self.signal[self.train_size:]

    def dense_adjacency(self) -> np.ndarray:
        """(N, N) the adjacency as T-GCN reads it: A[target, source] = weight (symmetric for Los-loop)."""
        A = np.zeros((self.num_nodes, self.num_nodes), dtype=self.edge_weight.dtype)
        A[self.edge_index[1], self.edge_index[0]] = self.edge_weight
        return A

    def graph(self):
        """The ``gnn_scratch.graph.Graph`` of the weighted adjacency (self-loops of the file included)."""
        from gnn_scratch.graph import Graph  # loading data never needs the kernels

        return Graph.from_edge_index(self.edge_index, self.num_nodes, self.edge_weight)

    def __repr__(self):
        return (f"WindowedSignal({self.name!r}, T={self.signal.shape[0]}, N={self.num_nodes}, "
                f"E={self.edge_index.shape[1]}, seq_len={self.seq_len}, pre_len={self.pre_len}, "
                f"train_size={self.train_size}, train windows={self.train_x.shape[0]}, "
                f"test windows={self.test_x.shape[0]}, scale={self.scale})")


def tgcn_windows(part, seq_len, pre_len, what="series"):
    """T-GCN's ``preprocess_data`` windows of one stretch ``part`` (L, N): W = L - seq_len - pre_len
    windows (T-GCN's ``range(len(data) - seq_len - pre_len)``, which leaves out the last window that
    would fit), x[w] = part[w : w+seq_len], y[w] = part[w+seq_len : w+seq_len+pre_len].

    Returns (x (W, seq_len, N), y (W, pre_len, N)), contiguous copies. Raises ValueError when W < 1.
    """
    part = np.asarray(part)
    L = part.shape[0]
    W = L - seq_len - pre_len
    if W < 1:
        raise ValueError(f"the {what} has {L} steps: too few for windows of seq_len={seq_len} inputs and "
                         f"pre_len={pre_len} outputs (T-GCN's protocol needs more than seq_len + pre_len = "
                         f"{seq_len + pre_len} steps)")
    win = np.lib.stride_tricks.sliding_window_view(part, seq_len + pre_len, axis=0)[:W]   # (W, N, seq+pre)
    win = win.transpose(0, 2, 1)
    return np.ascontiguousarray(win[:, :seq_len]), np.ascontiguousarray(win[:, seq_len:])


def _parse_csv_floats(data: bytes, fname, header: bool):
    text = data.decode("ascii")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    head = None
    if header:
        head, lines = lines[0], lines[1:]
    try:
        a = np.loadtxt(io.StringIO("\n".join(lines)), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{fname}: expected comma-separated numbers ({e})") from None
    return head, a


def load_los_loop(root=None, seq_len: int = 12, pre_len: int = 3, train_rate: float = 0.8, *,
                  dtype=np.float32, download: bool = True, base_url: str = TGCN_URL,
                  checksums=None) -> WindowedSignal:
    """Los-loop (Zhao et al. 2019, "T-GCN: A Temporal Graph Convolutional Network for Traffic
    Prediction"; lehaifeng/T-GCN): speeds of 207 loop detectors on Los Angeles highways, 2016 steps of
    5 minutes (7 days), with T-GCN's protocol reproduced step by step:

    1. ``los_speed.csv`` is read as ``pd.read_csv`` reads it (first row = header of detector ids), then
       ``np.mat(data, dtype=float32)``: a (2016, 207) float32 array (``dtype`` changes this; float32 is T-GCN).
    2. scaled by the maximum of the *whole* series, test part included (``max_value = np.max(data1);
       data1 = data1 / max_value``; Los-loop's max is 70 mph). ``scale`` = max_value; predictions times
       ``scale`` are mph. T-GCN reports RMSE and MAE in mph (it multiplies the scaled errors by max_value).
    3. split in time: train = the first ``int(T * train_rate)`` steps (1612 for 0.8), test = the rest (404).
    4. sliding windows inside each part separately (none straddles the split), T-GCN's
       ``preprocess_data``: W = len(part) - seq_len - pre_len windows (its loop bound leaves out the last
       window that would fit; kept), x = part[i : i+seq_len], y = part[i+seq_len : i+seq_len+pre_len].
       Los-loop with seq_len 12: 1597 / 389 windows for pre_len 3; pre_len 6, 9, 12 = 30, 45, 60 minutes
       (each horizon is its own run of the protocol, with its own, shorter, window lists).
    5. ``los_adj.csv`` (207 x 207, symmetric, 0/1 diagonal included, weights in (0, 1]) as T-GCN reads it
       (``pd.read_csv(header=None)``), kept *raw*: its non-zeros become edge_index + edge_weight with
       A[i, j] read as an edge j -> i (row = target, T-GCN's A @ X; the matrix is symmetric anyway).
       T-GCN's ``calculate_laplacian`` then adds I and normalises, D^-1/2 (A + I) D^-1/2 -- on top of the
       file's own unit diagonal, so the self-weight becomes 2; that is the model's business, not done here.

    seq_len, pre_len: ints >= 1; train_rate: float in (0, 1). Raises ValueError when either part is too
    short for one window, DataNotFoundError (where it looked), ChecksumError. Search order and download
    as ``load_chickenpox`` (default source: the data folder of lehaifeng/T-GCN's PyTorch implementation).
    """
    dt = _check_float_dtype(dtype)
    seq_len = _check_int(seq_len, "seq_len")
    pre_len = _check_int(pre_len, "pre_len")
    rate = _check_ratio(train_rate, "train_rate")
    T, N = SIZES["los_loop"]
    blobs = _read(["los_speed.csv", "los_adj.csv"], root, download, base_url, checksums)
    head, speed = _parse_csv_floats(blobs["los_speed.csv"], "los_speed.csv", header=True)
    try:
        node_ids = np.array([int(float(s)) for s in head.split(",")], dtype=np.int64)
    except ValueError:
        raise ValueError("los_speed.csv: the header row must hold the integer detector ids") from None
    if speed.shape != (T, N) or node_ids.shape != (N,):
        raise ValueError(f"los_speed.csv must hold a header of {N} ids and {T} rows of {N} speeds, got "
                         f"{node_ids.shape[0]} ids and {speed.shape}")
    _, A = _parse_csv_floats(blobs["los_adj.csv"], "los_adj.csv", header=False)
    if A.shape != (N, N) or not np.all(np.isfinite(A)) or (A < 0).any():
        raise ValueError(f"los_adj.csv must be a finite non-negative ({N}, {N}) matrix, got {A.shape}")
    if not np.all(np.isfinite(speed)):
        raise ValueError("los_speed.csv holds a non-finite speed")

    raw = speed.astype(dt)                                     # np.mat(data, dtype=np.float32)
    max_value = raw.max()                                      # np.max(data1)
    signal = raw / max_value                                   # in dt, as T-GCN divides its float32 matrix
    time_len = raw.shape[0]
    train_size = int(time_len * rate)
    if train_size < 1 or train_size >= time_len:
        raise ValueError(f"train_rate={rate} gives {train_size} train steps out of {time_len}; both parts "
                         f"need steps")
    train_x, train_y = tgcn_windows(signal[:train_size], seq_len, pre_len, f"train part ({train_rate=})")
    test_x, test_y = tgcn_windows(signal[train_size:time_len], seq_len, pre_len, f"test part ({train_rate=})")

    tgt, src = np.nonzero(A)                                    # row-major: sorted by target, then source
    edge_index = np.stack([src, tgt]).astype(np.int64)
    edge_weight = A[tgt, src].astype(dt)
    out = WindowedSignal(name="los_loop", edge_index=edge_index, edge_weight=edge_weight, num_nodes=N, raw=raw,
                         signal=signal, scale=float(max_value), seq_len=seq_len, pre_len=pre_len,
                         train_size=train_size, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                         node_ids=node_ids, meta={"files": ("los_speed.csv", "los_adj.csv"),
                                                  "train_rate": rate, "minutes_per_step": 5})
    for a in (out.edge_index, out.edge_weight, out.raw, out.signal, out.train_x, out.train_y, out.test_x,
              out.test_y, out.node_ids):
        _readonly(a)
    return out


# =============================================================================== by name
def load_temporal(name: str, root=None, **kwargs):
    """Load a temporal dataset by name: "chickenpox", "pedalme", "england_covid" (a ``TemporalSignal``),
    "los_loop" (a ``WindowedSignal``); kwargs go to the loader (lags / seq_len, pre_len, train_rate, ...)."""
    loaders = {"chickenpox": load_chickenpox, "pedalme": load_pedalme, "england_covid": load_england_covid,
               "los_loop": load_los_loop}
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in loaders:
        raise ValueError(f"unknown temporal dataset {name!r}; choose one of {', '.join(TEMPORAL_DATASETS)}")
    return loaders[key](root, **kwargs)
