"""Layers with explicit forward and backward passes."""
from .activations import ELU, LeakyReLU, ReLU
from .dropout import Dropout
from .conv import GATConv, GCNConv, GraphConv, SAGEConv
from .message_passing import MessagePassing
from .linear import Linear
from .lstm import LSTM
from .loss import SoftmaxCrossEntropy, accuracy, log_softmax
from .module import BackwardBeforeForward, Module
from .sequential import Sequential

__all__ = ["Module", "BackwardBeforeForward", "Sequential", "MessagePassing", "Linear", "ReLU", "LeakyReLU", "ELU", "Dropout", "GCNConv",
           "GATConv", "SAGEConv", "GraphConv", "LSTM",
           "SoftmaxCrossEntropy", "accuracy", "log_softmax"]
