"""Layer-wise inference over chunks of nodes: in memory (``local``) and on a Dask cluster (``inference``).

``layerwise_inference_local`` and the chunk helpers import no Dask. ``layerwise_inference_dask`` and
``connect`` are loaded on first use (PEP 562 ``__getattr__``), so ``import gnn_scratch.distributed``
works without the ``distributed`` extra; calling them without Dask raises ImportError naming it.
"""
from .local import (BIPARTITE_SIZES, BipartiteGraph, GatherPlan, GeneratedFeatures, ImportanceNeighbourhood,
                    chunk_bounds, gather_plan, iter_chunks, layerwise_inference_local, load_embeddings)

__all__ = ["BIPARTITE_SIZES", "BipartiteGraph", "GatherPlan", "GeneratedFeatures", "ImportanceNeighbourhood",
           "chunk_bounds", "connect", "gather_plan", "iter_chunks", "layerwise_inference_dask",
           "layerwise_inference_local", "load_embeddings"]

_DASK_NAMES = ("connect", "layerwise_inference_dask")


def __getattr__(name):
    if name in _DASK_NAMES:
        from . import inference
        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
