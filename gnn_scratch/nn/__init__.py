"""Layers with explicit forward and backward passes."""
from .activations import ELU, LeakyReLU, PReLU, ReLU
from .bce import BCEWithLogitsLoss
from .bilinear import Bilinear
from .dropout import Dropout
from .embedding import Embedding
from .conv import ChebConv, FirstOrderConv, GATConv, GCN2Conv, GCNConv, GINConv, GraphConv, HANConv, RGCNConv, SAGEConv, SpectralConv
from .fixed_point import FixedPointGNN, FixedPointNotConverged
from .message_passing import MessagePassing
from .linear import Linear
from .lstm import LSTM
from .bilstm import BiLSTM, SequenceLSTM
from .loss import MSELoss, SoftmaxCrossEntropy, accuracy, log_softmax
from .module import BackwardBeforeForward, Module
from .pair_norm import PairNorm
from .norm import BatchNorm, BatchNorm1d
from .readout import GlobalAddPool, GlobalMaxPool, GlobalMeanPool
from .sequential import Sequential
from .layer_norm import LayerNorm
from .attention import MultiheadAttention
from .conv.transformer_conv import TransformerConv
from .graph_transformer import GPSLayer, GTLayer
from .conv.pinsage_conv import PinSAGEConv

__all__ = ["Module", "BackwardBeforeForward", "Sequential", "MessagePassing", "Linear", "ReLU", "LeakyReLU", "ELU", "Dropout", "GCNConv",
           "GATConv", "SAGEConv", "GraphConv", "ChebConv", "FirstOrderConv", "SpectralConv", "LSTM", "BiLSTM", "SequenceLSTM", "FixedPointGNN", "FixedPointNotConverged",
           "SoftmaxCrossEntropy", "MSELoss", "accuracy", "log_softmax", "GINConv", "BatchNorm1d", "BatchNorm", "GlobalAddPool",
           "GlobalMeanPool", "GlobalMaxPool", "PairNorm", "GCN2Conv", "PReLU", "Bilinear", "BCEWithLogitsLoss", "Embedding", "RGCNConv", "HANConv",
           "LayerNorm", "MultiheadAttention", "TransformerConv", "GTLayer", "GPSLayer", "PinSAGEConv"]
