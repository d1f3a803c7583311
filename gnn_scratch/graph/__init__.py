"""Graphs: the destination-major CSR ``Graph`` and its containers.

* ``csr.Graph``     -- one graph (or a bipartite block), rows = destinations, validated once;
* ``batch.GraphBatch`` -- many graphs as one block-diagonal ``Graph`` plus ``graph_ptr``;
* ``hetero.HeteroGraph`` -- typed nodes and relations, one ``Graph`` per relation, metapath graphs.
"""
from .batch import GraphBatch
from .csr import INDEX_DTYPE, INDPTR_DTYPE, Graph, GraphError

__all__ = ["Graph", "GraphBatch", "GraphError", "INDEX_DTYPE", "INDPTR_DTYPE"]

from .hetero import HeteroGraph, Homogeneous   # heterogeneous graphs (issue 14)

__all__ += ["HeteroGraph", "Homogeneous"]

from .positional import laplacian_eigen, laplacian_pe, random_sign_flip, random_walk_pe   # positional encodings (issue 17)

__all__ += ["laplacian_eigen", "laplacian_pe", "random_walk_pe", "random_sign_flip"]
