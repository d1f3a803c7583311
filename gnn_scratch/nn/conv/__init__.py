"""Graph convolutions, one file each, one code path for host and device."""
from .cheb_conv import ChebConv, FirstOrderConv
from .dconv import DConv
from .gat_conv import GATConv
from .gcn_conv import GCNConv
from .gcn2_conv import GCN2Conv
from .gin_conv import GINConv
from .graph_conv import GraphConv
from .han_conv import HANConv
from .pinsage_conv import PinSAGEConv
from .rgcn_conv import RGCNConv
from .sage_conv import SAGEConv
from .spectral_conv import SpectralConv
from .transformer_conv import TransformerConv

__all__ = ["GCNConv", "GATConv", "SAGEConv", "GraphConv", "GINConv", "ChebConv", "FirstOrderConv", "SpectralConv", "GCN2Conv", "DConv", "RGCNConv", "HANConv", "TransformerConv", "PinSAGEConv"]
