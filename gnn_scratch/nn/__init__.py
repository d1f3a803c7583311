"""Layers with explicit forward and backward passes."""
from .activations import ELU, LeakyReLU, ReLU
from .dropout import Dropout
from .gat_conv import GATConv
from .gcn_conv import GCNConv
from .linear import Linear
from .lstm import LSTM
from .loss import SoftmaxCrossEntropy, accuracy, log_softmax
from .module import BackwardBeforeForward, Module
from .sage_conv import SAGEConv
from .sequential import Sequential

__all__ = ["Module", "BackwardBeforeForward", "Sequential", "Linear", "ReLU", "LeakyReLU", "ELU", "Dropout", "GCNConv",
           "GATConv", "SAGEConv", "LSTM",
           "SoftmaxCrossEntropy", "accuracy", "log_softmax"]
