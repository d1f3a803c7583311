"""Datasets: Planetoid Cora / CiteSeer, a CSBM generator, Zachary's karate club (nodes); TU MUTAG, PROTEINS,
IMDB-BINARY (graphs).

    get_dataset("cora")                      # the public Planetoid split, checksummed files
    get_dataset("csbm", homophily=0.3)       # synthetic, no file needed
    x = row_normalize(ds.x)                  # the GCN paper's feature preprocessing

Every node-classification loader returns a ``Dataset`` (see ``dataset.py`` for the fields and their
shapes); the graph-classification sets are ``tu.TUDataset`` s (``load_tu``).
"""
from __future__ import annotations

from .csbm import csbm
from .dataset import Dataset, index_to_mask, row_normalize, undirected_edge_index
from .download import download_verified
from .generated_tasks import clique_detection, subgraph_matching
from .integrity import ChecksumError, RestrictedUnpickler, load_pickle_verified, sha256_file
from .karate import karate_club
from .neighbors_match import NeighborsMatch, tree_neighbors_match
from .paths import ENV_DATA_ROOT, cache_root
from .planetoid import PLANETOID_URL, DataNotFoundError, load_planetoid
from .graph6 import load_wl_graphs, parse_graph6, read_graph6
from .tu import load_tu_folds, stratified_folds
from .tu import TUDataset, load_tu
from .temporal import TEMPORAL_DATASETS, TemporalSignal, WindowedSignal, load_temporal, temporal_signal_split
from .blogcatalog import MultiLabelGraph, load_blogcatalog, load_karate_adjlist   # node embeddings (issue 15)
from .hetero import HETERO_DATASETS, HeteroDataset, load_acm, load_dblp, load_heco   # heterogeneous graphs (issue 14)
from .sbm import (SBM_DATASETS, SBMBatch, SBMDataset, SBMGraph, load_sbm, make_batch,   # PATTERN, CLUSTER (issue 17)
                  weighted_accuracy)
from .bipartite import BipartiteInteractions, generate_bipartite   # a generated user-item graph (issue 18)

NODE_DATASETS = ("cora", "citeseer", "csbm", "karate")
GRAPH_DATASETS = ("mutag", "proteins", "imdb-binary")
EMBEDDING_DATASETS = ("blogcatalog",)        # multi-label, for the embedding task (which takes the node sets too)
DATASETS = NODE_DATASETS + GRAPH_DATASETS + TEMPORAL_DATASETS + EMBEDDING_DATASETS + HETERO_DATASETS + SBM_DATASETS


def get_dataset(name: str, root=None, **kwargs):
    """Load a dataset by name: "cora", "citeseer" (files, see ``load_planetoid``), "csbm", "karate" (a
    ``Dataset``); "mutag", "proteins", "imdb-binary" (files, a ``TUDataset``: see ``load_tu``);
    "chickenpox", "pedalme", "england_covid", "los_loop" (files, see ``data.temporal.load_temporal``);
    "blogcatalog" (a file, a ``MultiLabelGraph``: see ``load_blogcatalog``); "acm", "dblp" (files, a
    ``HeteroDataset``: see ``data.hetero.load_heco``); "pattern", "cluster" (generated SBMs of
    benchmarking-gnns, cached on disk, an ``SBMDataset``: see ``data.sbm.load_sbm``; root = the cache folder).

    root: data root for the file-backed datasets (ignored by the generated ones).
    kwargs: passed on to ``load_planetoid``, ``csbm`` or ``karate_club``.
    """
    key = name.lower() if isinstance(name, str) else name
    if key in ("cora", "citeseer"):
        return load_planetoid(key, root=root, **kwargs)
    if key == "csbm":
        return csbm(**kwargs)
    if key == "karate":
        return karate_club(**kwargs)
    if key in GRAPH_DATASETS:
        return load_tu(key, root=root, **kwargs)
    if isinstance(key, str) and key.replace("-", "_") in TEMPORAL_DATASETS:
        return load_temporal(key, root=root, **kwargs)
    if key == "blogcatalog":
        return load_blogcatalog(root=root, **kwargs)
    if key in HETERO_DATASETS:
        return load_heco(key, root=root, **kwargs)
    if key in SBM_DATASETS:                     # "pattern", "cluster" (issue 17): generated, cached on disk
        return load_sbm(key, root=root, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


__all__ = ["subgraph_matching", "clique_detection", "tree_neighbors_match", "NeighborsMatch",
    "Dataset", "get_dataset", "load_planetoid", "load_tu", "TUDataset", "NODE_DATASETS", "GRAPH_DATASETS", "csbm", "karate_club", "row_normalize",
    "undirected_edge_index", "index_to_mask", "ChecksumError", "DataNotFoundError", "RestrictedUnpickler",
    "load_pickle_verified", "sha256_file", "download_verified", "cache_root", "ENV_DATA_ROOT",
    "PLANETOID_URL", "DATASETS", "load_tu_folds", "stratified_folds", "load_wl_graphs", "parse_graph6", "read_graph6",
    "TEMPORAL_DATASETS", "TemporalSignal", "WindowedSignal", "load_temporal", "temporal_signal_split",
]

# the per-dataset temporal loaders (issue 16), beside load_temporal above
from .temporal import load_chickenpox, load_england_covid, load_los_loop, load_pedalme

__all__ += ["load_chickenpox", "load_pedalme", "load_england_covid", "load_los_loop"]

__all__ += ["MultiLabelGraph", "load_blogcatalog", "load_karate_adjlist", "EMBEDDING_DATASETS"]
__all__ += ["HETERO_DATASETS", "HeteroDataset", "load_acm", "load_dblp", "load_heco"]
__all__ += ["SBM_DATASETS", "SBMDataset", "SBMGraph", "SBMBatch", "load_sbm", "make_batch", "weighted_accuracy"]
__all__ += ["BipartiteInteractions", "generate_bipartite"]
