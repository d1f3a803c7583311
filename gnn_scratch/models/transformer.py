"""Node classifiers for many small graphs (PATTERN, CLUSTER; issue 17): the Graph Transformer, GraphGPS and the
benchmarking-gnns GCN they are compared with. Trained by ``--task inductive`` (``tasks/inductive.py``).

All three share one frame, benchmarking-gnns' SBM networks (``nets/SBMs_node_classification``):

    h0  = x W_in + b_in               x = [node features | positional encoding]  (N, in_channels + pe_dim)
    h_l = layer_l(h_{l-1}, batch)     l = 1 .. L, every layer hidden -> hidden
    out = MLPReadout(h_L)             Linear(H, H/2) ReLU Linear(H/2, H/4) ReLU Linear(H/4, C), per node

The input layer is one ``Linear`` over the features and the PE columns together: for one-hot tag
features that is exactly the GT authors' ``Embedding(tags) + Linear(lap_pe)`` (an embedding row is
``onehot @ E``; the sum of the two products is one product with the stacked matrix, and the PE
Linear's bias is the one bias). The task builds x (``tasks.inductive``: one-hot tags, then the
Laplacian eigenvectors with random sign flips in training, or the random-walk PE); ``pe`` /
``pe_dim`` say which PE the model was built for and how many columns it adds (``pe="none"``: x is
the features alone). ``pe_dim=None`` asks the task for the paper's value on the dataset
(``pe_dim_for``); built directly, a model with a PE needs ``pe_dim``.

Backward: the chain rule through the readout, the layers in reverse and the input Linear, each
layer's own backward (derivations/graph_transformer.md, gcn... linear.md, batch_norm.md); the
residual sums add both branches' gradients. Host-only (``devices = ("cpu",)``): the task cuts its
mini-batches of graphs on the host.
"""
import numpy as np

from .. import ops
from ..nn import BatchNorm1d, Dropout, GCNConv, GINConv, Linear, ReLU, SAGEConv, Sequential
from ..nn.checks import positive_int, probability
from ..nn.graph_transformer import GPSLayer, GTLayer
from ..nn.module import Module
from .common import child_seeds
from .registry import register

PE_KINDS = ("laplacian", "rw", "none")
NORM_CHOICES = ("batch_norm", "layer_norm", "none")


def _layers(num_layers):
    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
        raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
    return int(num_layers)


def _norm(norm):
    if norm not in NORM_CHOICES and norm is not None:
        raise ValueError(f"norm must be one of {NORM_CHOICES}, got {norm!r}")
    return None if norm in (None, "none") else norm


def _pe(pe, pe_dim):
    """(pe, pe_dim as an int): pe one of PE_KINDS; pe_dim a positive int for a PE, 0 (or None) for "none"."""
    if pe not in PE_KINDS:
        raise ValueError(f"pe must be one of {PE_KINDS}, got {pe!r}")
    if pe == "none":
        if pe_dim not in (None, 0):
            raise ValueError(f"pe_dim must be None (or 0) when pe='none', got {pe_dim!r}")
        return pe, 0
    if pe_dim is None:
        raise ValueError(f"pe_dim must be a positive int with pe={pe!r} (the inductive task fills in the paper's "
                         f"value for the dataset; a model built directly needs it)")
    return pe, positive_int("pe_dim", pe_dim)


class MLPReadout(Sequential):
    """benchmarking-gnns' ``MLPReadout(H, C, L=2)``: Linear(H, H//2) ReLU Linear(H//2, H//4) ReLU Linear(H//4, C).

    Applied to every node (node classification). x (N, H) -> (N, C). Raises ValueError when H < 4
    (a halving would leave no unit)."""

    def __init__(self, in_channels, out_channels, seed=0, dtype=np.float32):
        H = positive_int("hidden_channels", in_channels)
        if H < 4:
            raise ValueError(f"hidden_channels must be >= 4 for the MLP readout's widths H, H/2, H/4, got {H}")
        s = child_seeds(seed, 3)
        super().__init__(lin1=Linear(H, H // 2, seed=s[0], dtype=dtype), act1=ReLU(),
                         lin2=Linear(H // 2, H // 4, seed=s[1], dtype=dtype), act2=ReLU(),
                         lin3=Linear(H // 4, out_channels, seed=s[2], dtype=dtype))


class _SBMNodeModel(Module):
    """The shared frame (module docstring): input Linear -> ``layer1`` .. ``layerL`` -> MLP readout."""

    inductive = True            # trained on many graphs by tasks/inductive.py (its home task on the command line)
    devices = ("cpu",)
    # The PE width when pe_dim is left None: {pe: value}, overridden per dataset by ``pe_dims_by_dataset``.
    pe_dims = {"laplacian": 10, "rw": 16}
    pe_dims_by_dataset = {}

    @classmethod
    def pe_dim_for(cls, dataset, pe):
        """The PE width this model's paper used for ``dataset`` ("pattern" / "cluster") and ``pe``; 0 for "none"."""
        if pe == "none":
            return 0
        return cls.pe_dims_by_dataset.get((dataset, pe), cls.pe_dims[pe])

    def _frame(self, in_channels, out_channels, hidden_channels, pe, pe_dim, seed, dtype):
        in_channels = positive_int("in_channels", in_channels)
        self.pe, self.pe_dim = _pe(pe, pe_dim)
        self.in_channels, self.hidden_channels = in_channels, positive_int("hidden_channels", hidden_channels)
        s = child_seeds(seed, 2)
        self.input = Linear(in_channels + self.pe_dim, self.hidden_channels, seed=s[0], dtype=dtype)
        self._readout_seed = s[1]

    def _finish(self, out_channels, dtype):
        self.readout = MLPReadout(self.hidden_channels, positive_int("out_channels", out_channels),
                                  seed=self._readout_seed, dtype=dtype)

    def layers(self):
        return [getattr(self, f"layer{l}") for l in range(1, self.num_layers + 1)]

    def input_layer(self):
        """The Linear that reads x (``loop.input_is_data`` skips its dL/dx: the features are data)."""
        return self.input

    def forward(self, x, graph=None):
        width = self.in_channels + self.pe_dim
        if len(getattr(x, "shape", ())) != 2 or x.shape[1] != width:
            pe = f", then {self.pe_dim} {self.pe} PE columns" if self.pe_dim else ""
            raise ValueError(f"x must have shape (N, {width}): {self.in_channels} node features{pe} "
                             f"(tasks.inductive builds it), got {tuple(getattr(x, 'shape', ()))}")
        h = self.input.forward(x, graph)
        for layer in self.layers():
            h = layer.forward(h, graph)
        return self.readout.forward(h, graph)

    def backward(self, grad_out):
        g = self.readout.backward(grad_out)
        for layer in reversed(self.layers()):
            g = layer.backward(g)
        return self.input.backward(g)


@register
class GraphTransformer(_SBMNodeModel):
    """Graph Transformer of Dwivedi & Bresson (2020): GT layers (attention over the edges), LapPE, BatchNorm.

    "A Generalization of Transformer Networks to Graphs" (AAAI'21 DLG workshop), the authors' SBM
    network (graphdeeplearning/graphtransformer, ``nets/SBMs_node_classification/graph_transformer_net.py``):
    h0 = Embedding(tags) + Linear(LapPE) (here one Linear over [onehot(tags) | LapPE]), L
    ``GTLayer`` s (multi-head attention restricted to the graph's edges, O projection, residual,
    BatchNorm, FFN of width 2H, residual, BatchNorm), ``MLPReadout`` to C classes per node.
    Defaults = the paper's best SBM setting (sparse graph, BatchNorm, LapPE; configs
    ``SBMs_GraphTransformer_LapPE_{PATTERN,CLUSTER}_500k_sparse_graph_BN.json``): L = 10, H = 80,
    8 heads, dropout 0, no Q/K/V bias, LapPE of 2 eigenvectors on PATTERN and 10 on CLUSTER (pe_dim
    None picks them) -- 523k parameters on PATTERN. Adam lr 5e-4, batch 32 graphs (their PATTERN
    config says 26), ReduceLROnPlateau (0.5, patience 10, min lr 1e-6; the task's defaults).
    Not reproduced: the authors clamp attention scores to [-5, 5] (``GTLayer``'s docstring).

    Shapes: x (N, in_channels + pe_dim) float over a ``GraphBatch`` (or one ``Graph``); returns
    logits (N, out_channels). Raises ValueError for hidden_channels not divisible by heads, an
    unknown norm or pe, a missing pe_dim, num_layers < 1 or hidden_channels < 4.
    """

    name = "gt"
    model_defaults = dict(hidden_channels=80, num_layers=10, heads=8, dropout=0.0, norm="batch_norm",
                          pe="laplacian", pe_dim=None)
    train_defaults = dict(lr=5e-4, weight_decay=0.0, epochs=1000, batch_size=32)
    pe_dims_by_dataset = {("pattern", "laplacian"): 2, ("cluster", "laplacian"): 10}

    def __init__(self, in_channels, out_channels, hidden_channels=80, num_layers=10, heads=8, dropout=0.0,
                 norm="batch_norm", pe="laplacian", pe_dim=None, seed=0, dtype="float32"):
        super().__init__()
        dtype = np.dtype(dtype)
        self.num_layers = _layers(num_layers)
        self._frame(in_channels, out_channels, hidden_channels, pe, pe_dim, seed, dtype)
        heads, dropout, norm_ = positive_int("heads", heads), probability("dropout", dropout), _norm(norm)
        for l, s in enumerate(child_seeds(seed + 1, self.num_layers), start=1):
            setattr(self, f"layer{l}", GTLayer(self.hidden_channels, heads=heads, dropout=dropout, norm=norm_,
                                               residual=True, qkv_bias=False, seed=s, dtype=dtype))
        self._finish(out_channels, dtype)
        self.config = dict(model=self.name, in_channels=self.in_channels, out_channels=out_channels,
                           hidden_channels=self.hidden_channels, num_layers=self.num_layers, heads=heads,
                           dropout=dropout, norm=norm, pe=self.pe, pe_dim=pe_dim if pe_dim is None else self.pe_dim,
                           seed=seed, dtype=dtype.name)


LOCAL_CONVS = ("gin", "gcn", "none")


@register
class GPS(_SBMNodeModel):
    """GraphGPS of Rampasek et al. (2022): GPS layers (local GIN/GCN + global attention in each graph), LapPE or RWPE.

    "Recipe for a General, Powerful, Scalable Graph Transformer" (NeurIPS 2022), its PATTERN setting
    (rampasek/GraphGPS ``configs/GPS/pattern-GPS.yaml``, "optimized for up to ~500k"): 6 ``GPSLayer`` s
    of width 64, 4 heads, dropout 0, attention dropout 0.5, BatchNorm. Each layer (PyG's GPSConv):
    h = BN(x + conv(x)) + BN(x + MHA(x)), out = BN(h + MLP(h)), attention over all nodes of the
    same graph. Differences from the paper, stated: the local MPNN is ``GINConv`` with the MLP
    Linear-ReLU-Linear (``conv="gin"``, PyG's GPS example) or ``GCNConv`` (``"gcn"``) or none,
    where the paper uses GatedGCN; the PE enters through the input Linear (summed, like GT) where
    GraphGPS concatenates a DeepSet embedding of 10 eigenvectors (dim 16); pe_dim None = 10
    Laplacian eigenvectors (its max_freqs) or 16 random-walk steps; the readout is the shared
    ``MLPReadout`` (GraphGPS: 3 Linear layers of width H). Adam lr 5e-4 with the task's plateau
    schedule (GraphGPS: AdamW lr 1e-3, cosine schedule, 100 epochs), batch 32 graphs.

    Shapes: x (N, in_channels + pe_dim) over a ``GraphBatch``; logits (N, out_channels).
    Attention dropout > 0 runs the dense attention path on the host (``nn.attention``), and
    ``attn_dropout=0`` the fused one. Raises ValueError for a bad option (as ``gt``) or an unknown conv.
    """

    name = "gps"
    model_defaults = dict(hidden_channels=64, num_layers=6, heads=4, dropout=0.0, attn_dropout=0.5, conv="gin",
                          norm="batch_norm", pe="laplacian", pe_dim=None)
    train_defaults = dict(lr=5e-4, weight_decay=0.0, epochs=1000, batch_size=32)

    def __init__(self, in_channels, out_channels, hidden_channels=64, num_layers=6, heads=4, dropout=0.0,
                 attn_dropout=0.5, conv="gin", norm="batch_norm", pe="laplacian", pe_dim=None, seed=0,
                 dtype="float32"):
        super().__init__()
        dtype = np.dtype(dtype)
        if conv not in LOCAL_CONVS:
            raise ValueError(f"conv must be one of {LOCAL_CONVS}, got {conv!r}")
        self.num_layers = _layers(num_layers)
        self._frame(in_channels, out_channels, hidden_channels, pe, pe_dim, seed, dtype)
        H = self.hidden_channels
        heads, dropout = positive_int("heads", heads), probability("dropout", dropout)
        attn_dropout, norm_ = probability("attn_dropout", attn_dropout), _norm(norm)
        if H % heads:
            raise ValueError(f"hidden_channels ({H}) must be divisible by heads ({heads})")
        for l, s in enumerate(child_seeds(seed + 1, self.num_layers), start=1):
            s_conv, s_layer, s2 = child_seeds(s, 3)
            if conv == "gin":
                local = GINConv(Sequential(lin1=Linear(H, H, seed=s_conv, dtype=dtype), act=ReLU(),
                                           lin2=Linear(H, H, seed=s2, dtype=dtype)), dtype=dtype)
            elif conv == "gcn":
                local = GCNConv(H, H, seed=s_conv, dtype=dtype)
            else:
                local = None
            setattr(self, f"layer{l}", GPSLayer(H, local, heads=heads, dropout=dropout, attn_dropout=attn_dropout,
                                                norm=norm_, seed=s_layer, dtype=dtype))
        self._finish(out_channels, dtype)
        self.config = dict(model=self.name, in_channels=self.in_channels, out_channels=out_channels,
                           hidden_channels=H, num_layers=self.num_layers, heads=heads, dropout=dropout,
                           attn_dropout=attn_dropout, conv=conv, norm=norm, pe=self.pe,
                           pe_dim=pe_dim if pe_dim is None else self.pe_dim, seed=seed, dtype=dtype.name)


class GCNBlock(Module):
    """benchmarking-gnns' ``GCNLayer`` (layers/gcn_layer.py, dgl_builtin=False): h' = Dropout(h + ReLU(BN(conv(h)))).

    conv = mean over the in-neighbours then Linear (``SAGEConv(aggr="mean", root_weight=False)``:
    W mean_{j->i} h_j + b; an isolated node aggregates 0), or Kipf & Welling's ``GCNConv``. The
    residual needs in = out width (always here). x (N, H) -> (N, H)."""

    def __init__(self, channels, conv="mean", dropout=0.0, batch_norm=True, seed=0, dtype=np.float32):
        super().__init__()
        s = child_seeds(seed, 2)
        self.conv = (SAGEConv(channels, channels, aggr="mean", root_weight=False, seed=s[0], dtype=dtype)
                     if conv == "mean" else GCNConv(channels, channels, seed=s[0], dtype=dtype))
        self.norm = BatchNorm1d(channels, dtype=dtype) if batch_norm else None
        self.act = ReLU()
        self.drop = Dropout(dropout, seed=s[1])

    def forward(self, x, graph=None):
        z = self.conv.forward(x, graph)
        if self.norm is not None:
            z = self.norm.forward(z, graph)
        z = ops.add_(self.act.forward(z, graph), x)          # the activation's output is a fresh array
        return self.drop.forward(z, graph)

    def backward(self, grad_out):
        g = self.drop.backward(grad_out)
        dz = self.act.backward(g)
        if self.norm is not None:
            dz = self.norm.backward(dz)
        return ops.add_(self.conv.backward(dz), g)          # the residual branch gets g as it is


@register
class SBMGCN(_SBMNodeModel):
    """benchmarking-gnns' GCN for SBM node classification: L residual GCN layers with BatchNorm, MLP readout.

    Dwivedi et al., "Benchmarking Graph Neural Networks" (2020), ``nets/SBMs_node_classification/gcn_net.py``
    with ``configs/SBMs_node_clustering_GCN_{PATTERN,CLUSTER}_500k.json``: h0 = Embedding(tags), 16
    ``GCNBlock`` s of width 172 (mean of the neighbours, Linear, BatchNorm, ReLU, residual, dropout 0),
    ``MLPReadout`` -- 501k parameters on PATTERN. ``conv="gcn"`` swaps in Kipf & Welling's
    symmetric normalisation with self-loops. No positional encoding by default (the paper's
    baseline); ``pe`` adds one through the input Linear like ``gt``. Their Adam lr 1e-3, batch 64,
    plateau patience 5, min lr 1e-5; here lr 1e-3 and batch 64, the plateau schedule the task's.

    Shapes: x (N, in_channels + pe_dim) over a ``GraphBatch`` (or one ``Graph``); logits (N, out_channels).
    Raises ValueError for an unknown conv or pe, num_layers < 1, hidden_channels < 4.
    """

    name = "sbm_gcn"
    model_defaults = dict(hidden_channels=172, num_layers=16, dropout=0.0, conv="mean", pe="none", pe_dim=None)
    train_defaults = dict(lr=1e-3, weight_decay=0.0, epochs=1000, batch_size=64)

    def __init__(self, in_channels, out_channels, hidden_channels=172, num_layers=16, dropout=0.0, conv="mean",
                 pe="none", pe_dim=None, seed=0, dtype="float32"):
        super().__init__()
        dtype = np.dtype(dtype)
        if conv not in ("mean", "gcn"):
            raise ValueError(f"conv must be 'mean' (benchmarking-gnns' GCN layer) or 'gcn' (Kipf & Welling's), "
                             f"got {conv!r}")
        self.num_layers = _layers(num_layers)
        self._frame(in_channels, out_channels, hidden_channels, pe, pe_dim, seed, dtype)
        dropout = probability("dropout", dropout)
        for l, s in enumerate(child_seeds(seed + 1, self.num_layers), start=1):
            setattr(self, f"layer{l}", GCNBlock(self.hidden_channels, conv=conv, dropout=dropout, seed=s,
                                                dtype=dtype))
        self._finish(out_channels, dtype)
        self.config = dict(model=self.name, in_channels=self.in_channels, out_channels=out_channels,
                           hidden_channels=self.hidden_channels, num_layers=self.num_layers, dropout=dropout,
                           conv=conv, pe=self.pe, pe_dim=pe_dim if pe_dim is None else self.pe_dim, seed=seed,
                           dtype=dtype.name)


def num_parameters(model):
    """The number of trained scalars of ``model`` (every parameter array's size)."""
    return int(sum(p.size for _, p, _ in model.named_parameters()))
