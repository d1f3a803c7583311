"""gnn_scratch: graph neural networks from scratch in NumPy and Numba, every backward derived by hand."""
from .graph import Graph, GraphError

__version__ = "0.1.0"
__all__ = ["Graph", "GraphError", "__version__"]
