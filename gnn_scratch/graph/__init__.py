"""Graphs: the destination-major CSR ``Graph`` and its containers.

* ``csr.Graph``     -- one graph (or a bipartite block), rows = destinations, validated once;
* ``batch.GraphBatch`` -- many graphs as one block-diagonal ``Graph`` plus ``graph_ptr``.
"""
from .csr import INDEX_DTYPE, INDPTR_DTYPE, Graph, GraphError

__all__ = ["Graph", "GraphError", "INDEX_DTYPE", "INDPTR_DTYPE"]
