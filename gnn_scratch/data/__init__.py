"""Datasets for node classification: Planetoid Cora / CiteSeer, a CSBM generator, Zachary's karate club.

    get_dataset("cora")                      # the public Planetoid split, checksummed files
    get_dataset("csbm", homophily=0.3)       # synthetic, no file needed
    x = row_normalize(ds.x)                  # the GCN paper's feature preprocessing

Every loader returns a ``Dataset`` (see ``dataset.py`` for the fields and their shapes).
"""
from __future__ import annotations

from .csbm import csbm
from .dataset import Dataset, index_to_mask, row_normalize, undirected_edge_index
from .download import download_verified
from .generated_tasks import clique_detection, subgraph_matching
from .integrity import ChecksumError, RestrictedUnpickler, load_pickle_verified, sha256_file
from .karate import karate_club
from .paths import ENV_DATA_ROOT, cache_root
from .planetoid import PLANETOID_URL, DataNotFoundError, load_planetoid

DATASETS = ("cora", "citeseer", "csbm", "karate")


def get_dataset(name: str, root=None, **kwargs) -> Dataset:
    """Load a dataset by name: "cora", "citeseer" (files, see ``load_planetoid``), "csbm", "karate".

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
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


__all__ = ["subgraph_matching", "clique_detection",
    "Dataset", "get_dataset", "load_planetoid", "csbm", "karate_club", "row_normalize",
    "undirected_edge_index", "index_to_mask", "ChecksumError", "DataNotFoundError", "RestrictedUnpickler",
    "load_pickle_verified", "sha256_file", "download_verified", "cache_root", "ENV_DATA_ROOT",
    "PLANETOID_URL", "DATASETS",
]
