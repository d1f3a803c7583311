"""PinSage (Ying et al., KDD 2018): importance neighbourhoods, the max-margin ranking loss, curriculum training
with hard negatives, and recommendation metrics. The convolution is ``nn.conv.PinSAGEConv``; the generated
user-item data ``data.bipartite``.

    from gnn_scratch.pinsage import importance_neighbourhoods
    nb = importance_neighbourhoods(graph, num_walks=50, walk_length=2, k=10, hops=2, nodes=items)
"""
from .neighbourhoods import importance_blocks, importance_neighbourhoods, restrict_sources  # noqa: F401
