"""Graph convolutions, one file each, one code path for host and device."""
from .gat_conv import GATConv
from .gcn_conv import GCNConv
from .graph_conv import GraphConv
from .sage_conv import SAGEConv

__all__ = ["GCNConv", "GATConv", "SAGEConv", "GraphConv"]
